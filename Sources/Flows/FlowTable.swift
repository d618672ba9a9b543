import Wire

/// Bounds and timeouts of the flow table.
public struct FlowTableLimits: Sendable {
    /// Live flows at most; the least recently seen is evicted (and counted) to make room.
    public var maximumFlows = 1 << 18
    /// Idle timeout for TCP flows, seconds of packet time.
    public var tcpIdleTimeout: Int64 = 600
    /// Idle timeout for UDP and other flows.
    public var udpIdleTimeout: Int64 = 120
    /// How long a closed TCP flow lingers to absorb stragglers (final ACKs) before its record is written.
    public var closedLinger: Int64 = 120
    /// Creates the defaults.
    public init() {}
}

/// An open-addressing flow table with a fixed, preallocated capacity.
///
/// Linear probing over a power-of-two index of slot numbers, with backward-shift deletion (no
/// tombstones); slots live in one preallocated array. Two intrusive LRU lists (active, closed) make
/// idle expiry and eviction O(1) per flow. Nothing here allocates per packet.
public struct FlowTable {
    /// The slots; only those reachable from the index are live.
    public var slots: [FlowState?]
    private var index: [Int32]          // -1 empty, else slot number
    private var hashes: [UInt64]        // hash per slot, for probing without touching the slot
    private var keys: [FlowKey]         // key per slot: probing compares these, never copies a slot
    private var freeSlots: [Int32]
    private let mask: Int
    /// The bounds in force.
    public let limits: FlowTableLimits
    private var heads: (Int32, Int32) = (-1, -1)   // most recently seen, per list
    private var tails: (Int32, Int32) = (-1, -1)   // least recently seen, per list
    /// Live flows.
    public private(set) var count = 0
    private let capacity: Int

    /// Creates a table for `limits.maximumFlows` flows.
    public init(limits: FlowTableLimits = .init()) {
        self.limits = limits
        let capacity = max(16, limits.maximumFlows)
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        mask = size - 1
        index = [Int32](repeating: -1, count: size)
        // Slots grow on demand up to the cap (amortised, then reused): a small capture costs little memory.
        hashes = []; keys = []; slots = []; freeSlots = []
        self.capacity = capacity
    }

    /// Whether the table is at its cap.
    public var isFull: Bool { count >= limits.maximumFlows }

    /// The slot of `key`, if live.

    public func find(_ key: FlowKey, hash: UInt64) -> Int32? {
        var i = Int(truncatingIfNeeded: hash) & mask
        while true {
            let s = index[i]
            if s < 0 { return nil }
            if hashes[Int(s)] == hash && keys[Int(s)] == key { return s }
            i = (i + 1) & mask
        }
    }

    /// Inserts a new flow; the table must not be full (evict first).

    public mutating func insert(_ state: FlowState, hash: UInt64) -> Int32 {
        let s: Int32
        if let reused = freeSlots.popLast() { s = reused } else {
            precondition(slots.count < capacity, "flow table full: evict before inserting")
            s = Int32(slots.count)
            slots.append(nil); hashes.append(0)
            keys.append(state.key)
        }
        slots[Int(s)] = state
        hashes[Int(s)] = hash
        keys[Int(s)] = state.key
        var i = Int(truncatingIfNeeded: hash) & mask
        while index[i] >= 0 { i = (i + 1) & mask }
        index[i] = s
        count += 1
        link(s, list: 0)
        return s
    }

    /// Removes a flow and returns its state.
    public mutating func remove(_ s: Int32) -> FlowState {
        unlink(s)
        var i = Int(truncatingIfNeeded: hashes[Int(s)]) & mask
        while index[i] != s { i = (i + 1) & mask }
        // Backward-shift deletion keeps every probe chain unbroken.
        var j = i
        while true {
            j = (j + 1) & mask
            let t = index[j]
            if t < 0 { break }
            let home = Int(truncatingIfNeeded: hashes[Int(t)]) & mask
            // Move t back to i if its home is not cyclically in (i, j].
            let inRange = i <= j ? (home > i && home <= j) : (home > i || home <= j)
            if !inRange { index[i] = t; i = j }
        }
        index[i] = -1
        let state = slots[Int(s)]!
        slots[Int(s)] = nil
        freeSlots.append(s)
        count -= 1
        return state
    }

    /// Marks a flow as just seen (moves it to the front of its list).
    public mutating func touch(_ s: Int32) {
        guard let list = slots[Int(s)]?.list else { return }
        if (list == 0 ? heads.0 : heads.1) == s { return }
        unlink(s); link(s, list: list)
    }

    /// Moves a flow to the closed list (it lingers there for stragglers).
    public mutating func markClosed(_ s: Int32) {
        guard slots[Int(s)]?.list == 0 else { return }
        unlink(s); link(s, list: 1)
    }

    /// The least recently seen flow of the closed list, then of the active list.
    public func oldest(closed: Bool) -> Int32? {
        let t = closed ? tails.1 : tails.0
        return t >= 0 ? t : nil
    }

    /// The flow to evict when full: a closed one if any, else the least recently seen.
    public var evictionCandidate: Int32? { oldest(closed: true) ?? oldest(closed: false) }

    mutating func link(_ s: Int32, list: UInt8) {
        let head = list == 0 ? heads.0 : heads.1
        slots[Int(s)]!.list = list
        slots[Int(s)]!.previous = -1
        slots[Int(s)]!.next = head
        if head >= 0 { slots[Int(head)]!.previous = s }
        if list == 0 { heads.0 = s; if tails.0 < 0 { tails.0 = s } } else { heads.1 = s; if tails.1 < 0 { tails.1 = s } }
    }

    mutating func unlink(_ s: Int32) {
        let f = slots[Int(s)]!
        if f.previous >= 0 { slots[Int(f.previous)]!.next = f.next } else if f.list == 0 { heads.0 = f.next } else { heads.1 = f.next }
        if f.next >= 0 { slots[Int(f.next)]!.previous = f.previous } else if f.list == 0 { tails.0 = f.previous } else { tails.1 = f.previous }
        slots[Int(s)]!.previous = -1; slots[Int(s)]!.next = -1
    }
}
