#if canImport(Glibc)
import Glibc
#endif
import CPrefetch
import Wire

/// Bounds and timeouts of the flow table.
public struct FlowTableLimits: Sendable {
    /// Live flows at most; the least recently seen is evicted (and counted) to make room.
    public var maximumFlows = 1 << 18
    /// Idle timeout for TCP flows, seconds of packet time.
    public var tcpIdleTimeout: Int64 = 600
    /// Idle timeout for UDP and other flows.
    public var udpIdleTimeout: Int64 = 120
    /// How long a closed TCP flow lingers to absorb stragglers (final ACKs, retransmitted SYN-ACKs) before its
    /// record is written.
    public var closedLinger: Int64 = 120
    /// Creates the defaults.
    public init() {}
}

/// An open-addressing flow table with a hard cap.
///
/// Linear probing over a power-of-two index whose entries carry the upper hash bits beside the slot number,
/// so a probe touches only the index until the one key comparison; backward-shift deletion (no tombstones).
/// The index grows with the live flows (kept at most a quarter full: 8 bytes an entry, and at half full the longer
/// probe runs cost the 10,000-flow foundation capture ~2 % more time than the bigger index does); the key compared is the one in the flow's
/// state (its first cache line, which the packet touches next anyway). The recency lists (active TCP, active other and
/// closed, for idle expiry and eviction) are each flow's order of its last move to the front, in an array of their
/// own, and per list a queue sorted lazily (`RecencyQueue`, `settle`); slots are taken in order up to the cap and
/// then reused: nothing here allocates per packet in steady state.
///
/// A final class, owned by one engine on one thread: callers reach the arrays in place (a struct held in a
/// class property is copied, buffers retained, on some accesses), and exclusivity checks are off.
public final class FlowTable {
    /// Flow states by slot (the first `slotCount` used; the block holds the cap, its pages touched as flows come);
    /// a slot not reachable from the index is free and holds no state, only `vacantKey`'s bytes (see `remove`). A raw
    /// pointer, not an array: the engine reaches it from another module several times per packet, and there a
    /// class's array property costs a dynamic exclusivity check, a uniqueness check and a bounds check per access.
    /// Slot numbers come only from this table; the block never moves.
    @inlinable public var slots: UnsafeMutablePointer<FlowState> { slotStore }
    @usableFromInline let slotStore: UnsafeMutablePointer<FlowState>
    /// Slots used so far (live or free).
    @inlinable public var slotCount: Int { initialisedSlots }
    @exclusivity(unchecked) @usableFromInline var initialisedSlots = 0
    // 0 empty, else (hash << 32) | (slot + 1) (`entry`); raw for the same reasons as the slots (and huge pages).
    @exclusivity(unchecked) @usableFromInline var index: UnsafeMutablePointer<UInt64>
    @exclusivity(unchecked) private var indexSize: Int
    @exclusivity(unchecked) private var freeSlots: [Int32] = []
    /// Community IDs by slot, valid where the slot's state says so (`FlowState.communityIDStored`). Apart from the
    /// states and zeroed by the kernel on first write: most runs compute none, and those that do (records) compute
    /// each once and read it a few times.
    public let communityIDs: UnsafeMutablePointer<InlineText>
    /// Each side's last UDP datagrams by slot (`2 * slot + side`; a slot's two in one cache line), to tell a capture's
    /// copy of a datagram from a new one (`RecentDatagrams`). Apart from the states, zeroed by the kernel on first
    /// write: only UDP flows with payload touch it, and a print names its flow's serial, so a reused slot's old prints
    /// do not match.
    public let recentDatagrams: UnsafeMutablePointer<RecentDatagrams>
    /// Recency by slot: the order of the flow's latest move to the front (a counter over the table's life). The
    /// recency lists are these orders sorted; `queues` keeps them sorted lazily. 8 bytes a flow, written once per
    /// move and nothing else: a doubly linked list rewrote the flow's and two neighbours' links at each move (three
    /// scattered lines; with 100,000 flows, 5 % of the mixed plant's time).
    @usableFromInline let orders: UnsafeMutablePointer<UInt64>
    /// Membership by slot: (`LRUList` raw value + 1) << 30 | the slot's generation (counts the flows it held, mod
    /// 2^30); no list bits: a free slot. A queue entry is the flow's own exactly when the list and the generation
    /// match (a reused slot's earlier flow, or the flow before it closed, left entries behind).
    let membership: UnsafeMutablePointer<UInt32>
    /// Each `LRUList`'s queue (by raw value), see `RecencyQueue`.
    let queues = UnsafeMutablePointer<RecencyQueue>.allocate(capacity: 3)
    /// Entries a queue's run holds: it holds at most twice its flows and 1,025 (`join`), so that after a slide there
    /// is room for as many appends as the entries slid.
    private let runCapacity: Int
    /// `RecencyEntry.sortByOrder`'s bucket bounds, two arrays of `RecencyEntry.radix` a level.
    private let radixBounds = UnsafeMutablePointer<Int>.allocate(capacity: 2 * RecencyEntry.radix * RecencyEntry.levels)
    /// Second marks (a ring of `markCapacity`, oldest at `markStart`): (order, second) when an idle query came at a
    /// second later than the last mark's, in increasing order. Moves to the front with that order or later happened
    /// in that second or later, as long as packet time does not go back (`clockWentBack` drops them all): what lets
    /// an idle query stop at a queue's least entry without checking it (`settle`).
    private let markOrders = UnsafeMutablePointer<UInt64>.allocate(capacity: FlowTable.markCapacity)
    private let markSeconds = UnsafeMutablePointer<Int64>.allocate(capacity: FlowTable.markCapacity)
    @exclusivity(unchecked) private var markStart = 0, markCount = 0
    /// At least the longest idle timeout, in seconds with a sweep (older least entries are checked).
    private static let markCapacity = 4096
    /// Flows seen again (their first packet in a second of packet time) since `orders` was last brought up to
    /// date, in order. `touchLater` notes one with a store and no branch; every use of the orders first applies them
    /// (`applyPendingTouches`): entry i gets order `nextOrder + i`, exactly what touching each at once would have
    /// given. New and closed flows' moves queue here too (`insert`, `markClosed`), so that each entry takes one order.
    @usableFromInline let pendingTouches = UnsafeMutablePointer<Int32>.allocate(capacity: FlowTable.pendingCapacity)
    @exclusivity(unchecked) @usableFromInline var pendingCount = 0
    @usableFromInline static let pendingCapacity = 1024
    /// `prefetchAhead`'s packets in flight by position mod 32: [4i] position, [4i+1] flow hash, [4i+2] slot once
    /// looked up (UInt64.max: none), [4i+3] unused.
    @usableFromInline let aheadRing = UnsafeMutablePointer<UInt64>.allocate(capacity: 128)
    @exclusivity(unchecked) @usableFromInline var mask: Int
    private let capacity: Int
    /// The bounds in force.
    public let limits: FlowTableLimits
    /// The next move to the front's order number (`orders`), pending touches not counted.
    @exclusivity(unchecked) private var nextOrder: UInt64 = 0
    /// Live flows.
    @exclusivity(unchecked) public private(set) var count = 0

    /// The key of the flows' hashes (`FlowKey.fastHash`): the table's callers hash with it.
    public let hashKey: FlowHashKey

    /// Creates a table for `limits.maximumFlows` flows, hashed under `hashKey` (random unless a test fixes it).
    public init(limits: FlowTableLimits = .init(), hashKey: FlowHashKey = .random()) {
        self.limits = limits
        self.hashKey = hashKey
        capacity = max(16, limits.maximumFlows)
        precondition(capacity < 1 << 30, "flow table: at most 2^30 flows")
        mask = 1023
        indexSize = 1024
        index = FlowTable.allocateIndex(1024)
        // Address space for every slot up front: pages are touched (huge pages: 2 MiB at a time) only as flows come,
        // and the block never moves (doubling it copied every flow's state into fresh pages, page faults included).
        slotStore = FlowTable.allocateSlots(capacity)
        orders = LargeBlock.allocate(capacity * 8).bindMemory(to: UInt64.self, capacity: capacity)
        membership = LargeBlock.mapZeroed(capacity * 4).bindMemory(to: UInt32.self, capacity: capacity)
        runCapacity = 4 * capacity + 4096
        // Zeroed memory holds valid (empty) texts.
        communityIDs = LargeBlock.mapZeroed(capacity * MemoryLayout<InlineText>.stride).bindMemory(to: InlineText.self, capacity: capacity)
        recentDatagrams = LargeBlock.mapZeroed(2 * capacity * MemoryLayout<RecentDatagrams>.stride)
            .bindMemory(to: RecentDatagrams.self, capacity: 2 * capacity)
        aheadRing.initialize(repeating: 0, count: 128)
        for l in 0..<3 { (queues + l).initialize(to: RecencyQueue(runCapacity: runCapacity)) }
    }

    deinit {
        // Only live flows' slots hold a state (`remove` moves it out): those the index names.
        for k in 0..<indexSize where index[k] != 0 { (slots + Int(FlowTable.slot(of: index[k]))).deinitialize(count: 1) }
        FlowTable.releaseSlots(slots)
        free(orders)
        LargeBlock.unmap(UnsafeMutableRawPointer(membership), bytes: capacity * 4)
        for l in 0..<3 { queues[l].release(runCapacity: runCapacity) }
        queues.deallocate()
        markOrders.deallocate(); markSeconds.deallocate()
        radixBounds.deallocate()
        LargeBlock.unmap(UnsafeMutableRawPointer(communityIDs), bytes: capacity * MemoryLayout<InlineText>.stride)
        LargeBlock.unmap(UnsafeMutableRawPointer(recentDatagrams), bytes: 2 * capacity * MemoryLayout<RecentDatagrams>.stride)
        FlowTable.releaseIndex(index, size: indexSize)
        aheadRing.deallocate()
        pendingTouches.deallocate()
    }

    @inline(__always) @usableFromInline static func entry(_ hash: UInt64, _ slot: Int32) -> UInt64 {
        tag(hash) | UInt64(UInt32(bitPattern: slot) &+ 1)
    }

    /// What an index entry keeps of its flow's hash (its upper half): the hash's lower half, from which the home
    /// position comes (see `home`).
    @inlinable @inline(__always) static func tag(_ hash: UInt64) -> UInt64 { hash << 32 }

    @inlinable @inline(__always) static func slot(of entry: UInt64) -> Int32 {
        Int32(bitPattern: UInt32(truncatingIfNeeded: entry) &- 1)
    }

    /// The index position where the flow with `hash` probes first: from the hash's lower half, which every entry
    /// keeps as its tag, so that deletion and growth find an entry's home from the entry alone (`home(entry:)`;
    /// reading each neighbour's hash by slot was a cache miss per entry shifted with 100,000 flows).
    @inlinable @inline(__always) func home(_ hash: UInt64) -> Int { Int(truncatingIfNeeded: hash) & mask }

    /// `home` of the flow whose index entry is `entry`.
    @inlinable @inline(__always) func home(entry: UInt64) -> Int { Int(truncatingIfNeeded: entry >> 32) & mask }

    /// Doubles the index (rehashing every live flow) while it is more than a quarter full.
    private func growIfNeeded() {
        guard (count + 1) * 4 > indexSize else { return }
        var size = indexSize
        while (count + 1) * 4 > size { size <<= 1 }
        let fresh = FlowTable.allocateIndex(size)
        let m = size - 1
        for k in 0..<indexSize where index[k] != 0 {
            let e = index[k]
            var i = Int(truncatingIfNeeded: e >> 32) & m   // `home(entry:)` in the new size
            while fresh[i] != 0 { i = (i + 1) & m }
            fresh[i] = e
        }
        FlowTable.releaseIndex(index, size: indexSize)
        index = fresh
        indexSize = size
        mask = m
    }

    /// A block of `count` slots on a cache-line boundary (the state's stride is whole lines: a slot's hot
    /// fields then sit in exactly the lines `FlowState` plans for). A block of 2 MiB or more asks for
    /// transparent huge pages: every packet lands on a random flow, and with 4 KiB pages that is a TLB miss on
    /// top of the cache miss.
    private static func allocateSlots(_ count: Int) -> UnsafeMutablePointer<FlowState> {
        allocateBlock(count * MemoryLayout<FlowState>.stride).bindMemory(to: FlowState.self, capacity: count)
    }

    /// A zeroed index of `size` entries (the kernel's zeroed pages: writing zeros over them first was a pass over the
    /// whole index at each doubling). Release with `releaseIndex`.
    ///
    /// Its pages are made writable at once (`MADV_POPULATE_WRITE`; every page takes entries at the rehash anyway): left
    /// to faults, a page was first read (a probe), which maps the shared zero page, then written, which replaces that
    /// entry, and every replaced entry is a TLB shootdown, an interrupt to each core running another worker (most of
    /// the shootdowns of two workers on the mixed plant). Where the advice is missing, pages fault in as before.
    private static func allocateIndex(_ size: Int) -> UnsafeMutablePointer<UInt64> {
        let block = LargeBlock.mapZeroed(size * 8)
        _ = madvise(block, size * 8, 23 /* MADV_POPULATE_WRITE */)
        return block.bindMemory(to: UInt64.self, capacity: size)
    }

    private static func releaseIndex(_ index: UnsafeMutablePointer<UInt64>, size: Int) {
        LargeBlock.unmap(UnsafeMutableRawPointer(index), bytes: size * 8)
    }

    private static func allocateBlock(_ bytes: Int) -> UnsafeMutableRawPointer { LargeBlock.allocate(bytes) }

    private static func releaseSlots(_ slots: UnsafeMutablePointer<FlowState>) { free(slots) }


    /// Whether the table is at its cap.
    public var isFull: Bool { count >= limits.maximumFlows }

    /// The slot of `key`, if live.
    @inlinable
    public func find(_ key: FlowKey, hash: UInt64) -> Int32? {
        let tag = UInt32(truncatingIfNeeded: hash)   // `tag(hash)`, compared as the entry's upper half
        var i = home(hash)
        while true {
            let e = index[i]
            if e == 0 { return nil }
            if UInt32(truncatingIfNeeded: e >> 32) == tag {
                let s = FlowTable.slot(of: e)
                if slots[Int(s)].key == key { return s }
            }
            i = (i + 1) & mask
        }
    }

    /// Starts loading the index entry where the flow with `hash` would be (for a packet a few places ahead).
    @inlinable
    public func prefetchIndex(hash: UInt64) {
        zw_prefetch(index + home(hash))
    }

    /// Starts loading the cache lines (see `FlowState`) of the flow with `hash`, when the index
    /// (prefetched a little earlier) names a candidate: the first entry with the hash's tag. There is no key
    /// comparison (that would wait for the very line being prefetched); a wrong guess only wastes a prefetch.
    /// Returns the candidate's slot (-1 none), for a later hint about its application state.
    @discardableResult @inlinable @inline(__always)
    public func prefetchSlot(hash: UInt64) -> Int32 {
        let tag = UInt32(truncatingIfNeeded: hash)   // `tag(hash)`, compared as the entry's upper half
        var i = home(hash)
        for _ in 0..<4 {
            let e = index[i]
            if e == 0 { return -1 }
            if UInt32(truncatingIfNeeded: e >> 32) == tag {
                // The per-packet lines (see `FlowState`); a dissected flow's per-flow lines are asked for later,
                // once its application is known (`prefetchFlowLines`).
                let state = UnsafeRawPointer(slots + Int(FlowTable.slot(of: e)))
                zw_prefetch(state); zw_prefetch(state + 64)
                return FlowTable.slot(of: e)
            }
            i = (i + 1) & mask
        }
        return -1
    }

    /// One step of the flow prefetch pipeline, once per packet, before the packet is processed: `hash` is the flow
    /// hash of the packet `distance` places ahead, numbered `position` (nil: not known). Starts loading that
    /// packet's index entry; looks up the packet `distance / 2` ahead in the index (its entry has had time to
    /// arrive) and starts loading its flow state; returns the slot of the packet `distance / 4` ahead (its state
    /// has had time to arrive; -1: none), for a hint about what the state points to. With thousands of
    /// interleaved flows these are otherwise dependent cache misses on every packet. Hints only: lookups see no
    /// difference, and a stale slot (the flow ended meanwhile) only wastes a prefetch. `distance` must be a
    /// multiple of 4 of at most 16 (packets in flight live in a ring of 32 positions).
    @inlinable @inline(__always)
    public func prefetchAhead(hash: UInt64?, position: UInt64, distance: UInt64) -> Int32 {
        if let h = hash {
            let i = Int(position & 31) &* 4
            aheadRing[i] = position; aheadRing[i &+ 1] = h; aheadRing[i &+ 2] = UInt64.max
            prefetchIndex(hash: h)
        }
        let near = position &- distance / 2, j = Int(near & 31) &* 4
        if aheadRing[j] == near {
            aheadRing[j &+ 2] = UInt64(bitPattern: Int64(prefetchSlot(hash: aheadRing[j &+ 1])))
        }
        let nearest = position &- (distance &- distance / 4), k = Int(nearest & 31) &* 4
        guard aheadRing[k] == nearest else { return -1 }
        let s = Int32(truncatingIfNeeded: aheadRing[k &+ 2])
        return s >= 0 && Int(s) < slotCount ? s : -1
    }

    /// The slot `prefetchAhead` found for the packet numbered `position`, or -1 when there is none. It held the
    /// flow's state then (or another flow's whose hash shares the tag); the flow may have ended since, and the slot
    /// may hold a new flow or be vacant (`vacantKey`). The caller compares keys: with a match this is the flow
    /// `find` would return (keys are unique among live flows), without probing.
    @inlinable @inline(__always)
    public func candidate(at position: UInt64) -> Int32 {
        let k = Int(position & 31) &* 4
        guard aheadRing[k] == position else { return -1 }
        return Int32(truncatingIfNeeded: aheadRing[k &+ 2])
    }

    /// Puts the packet numbered `position` (with flow hash `hash`) into the prefetch pipeline late, if it is not in
    /// it (the lookahead had missed it), and starts loading its index entry. Its slot is looked up by the
    /// pipeline's own stage if that is still to come, else by `lookUpAhead`. A hint only.
    @inline(__always)
    public func noteAhead(position: UInt64, hash: UInt64) {
        let i = Int(position & 31) &* 4
        guard aheadRing[i] != position else { return }
        aheadRing[i] = position; aheadRing[i &+ 1] = hash; aheadRing[i &+ 2] = UInt64.max
        prefetchIndex(hash: hash)
    }

    /// Looks up (and starts loading) the flow state of the packet numbered `position` in the prefetch pipeline
    /// when it has no slot yet (`noteAhead`), for `candidate(at:)`. A hint only.
    @inline(__always)
    public func lookUpAhead(position: UInt64) {
        let i = Int(position & 31) &* 4
        guard aheadRing[i] == position, aheadRing[i &+ 2] == UInt64.max else { return }
        aheadRing[i &+ 2] = UInt64(bitPattern: Int64(prefetchSlot(hash: aheadRing[i &+ 1])))
    }

    /// The key a removed flow's slot keeps until it is reused: no packet has it (VLAN 0xFFFF is reserved by
    /// 802.1Q, and a decoded packet has addresses and a protocol).
    public static let vacantKey = FlowKey(lowIP: IPAddress(v4: 0), highIP: IPAddress(v4: 0), lowPort: 0, highPort: 0,
                                          ipProtocol: 0, vlan: 0xFFFF)

    /// Inserts a new flow; the table must not be full (evict first).
    ///
    /// The state is moved into its slot (a free slot holds no state: `remove` moved it out): a copy retained its
    /// four buffers, and the copy left behind and the slot's vacant state released them again, a dozen reference
    /// counts a flow.
    public func insert(_ state: consuming FlowState, hash: UInt64) -> Int32 {
        growIfNeeded()
        let list = state.key.ipProtocol == 6 ? LRUList.activeTCP : .activeOther
        state.hashLow = UInt32(truncatingIfNeeded: hash)
        let s: Int32
        if let reused = freeSlots.popLast() {
            s = reused
        } else {
            precondition(initialisedSlots < capacity, "flow table full: evict before inserting")
            s = Int32(initialisedSlots)
            initialisedSlots += 1
        }
        (slots + Int(s)).initialize(to: state)
        var i = home(hash)
        while index[i] != 0 { i = (i + 1) & mask }
        index[i] = FlowTable.entry(hash, s)
        count += 1
        join(s, Int(list.rawValue), generation: (membership[Int(s)] &+ 1) & FlowTable.generationMask)
        return s
    }

    /// Removes a flow and returns its state (moved out: the slot holds none until reused, only the bytes of
    /// `vacantKey` where the key was).
    public func remove(_ s: Int32) -> FlowState {
        // Its pending moves apply first (a move to the closed list must not find the slot's next flow). Its queue
        // entry stays until it comes first (or a rebuild drops it).
        applyPendingTouches()
        leave(s)
        var i = home(UInt64(slots[Int(s)].hashLow))
        while FlowTable.slot(of: index[i]) != s {
            // A flow not in the index (a bug: removed twice, or lists out of step with the index) would probe forever.
            precondition(index[i] != 0, "flow table: removing a flow the index does not hold")
            i = (i + 1) & mask
        }
        // Backward-shift deletion keeps every probe chain unbroken.
        var j = i
        while true {
            j = (j + 1) & mask
            let t = index[j]
            if t == 0 { break }
            let h = home(entry: t)
            // Move t back to i unless its home lies cyclically in (i, j].
            let inRange = i <= j ? (h > i && h <= j) : (h > i || h <= j)
            if !inRange { index[i] = t; i = j }
        }
        index[i] = 0
        freeSlots.append(s)
        count -= 1
        let state = (slots + Int(s)).move()
        markVacant(s)
        return state
    }

    /// Removes every flow at once, leaving the table as `remove` on each would (free slots, lists, an empty index),
    /// in one pass over the slots and one over the index: their states are deinitialised, not handed back. For ends
    /// that nobody sees flow by flow, where `endOrder`'s order and the backward shifts are wasted (`Engine.finish`).
    public func removeAll() {
        applyPendingTouches()
        freeSlots.reserveCapacity(freeSlots.count + count)
        for s in 0..<initialisedSlots where membership[s] >> 30 != 0 {
            leave(Int32(s))
            freeSlots.append(Int32(s))
            (slots + s).deinitialize(count: 1)
            markVacant(Int32(s))
        }
        index.update(repeating: 0, count: indexSize)
        count = 0
    }

    /// Calls `body` with every live flow's slot and list (pending moves applied first), in slot order: the states are
    /// read in memory order, not in the recency order `endOrder` gives.
    public func forEachFlow(_ body: (Int32, LRUList) -> Void) {
        applyPendingTouches()
        for s in 0..<initialisedSlots {
            let list = membership[s] >> 30
            if list != 0 { body(Int32(s), LRUList(rawValue: UInt8(list &- 1))!) }
        }
    }

    /// What a slot `prefetchAhead` named before the flow ended is read for (raw, the slot holding no state): a key
    /// that matches no packet (VLAN 0xFFFF is reserved, protocol 0 and no addresses), so that the caller's key
    /// comparison (`candidate`) fails, and no application, so that no dissector state is prefetched for it.
    private func markVacant(_ s: Int32) {
        let raw = UnsafeMutableRawPointer(slots + Int(s))
        raw.storeBytes(of: FlowTable.vacantKey, toByteOffset: FlowTable.keyOffset, as: FlowKey.self)
        raw.storeBytes(of: 0, toByteOffset: FlowTable.applicationOffset, as: UInt8.self)
    }

    private static let keyOffset = MemoryLayout<FlowState>.offset(of: \FlowState.key)!
    private static let applicationOffset = MemoryLayout<FlowState>.offset(of: \FlowState.application)!

    /// Marks a flow as just seen (moves it to the front of its list).
    public func touch(_ s: Int32) {
        applyPendingTouches()
        orders[Int(s)] = nextOrder
        nextOrder &+= 1
        forgetMovedLeast()
    }

    /// Forgets each queue's known least recently seen flow if it moved to the front since (its order changed): the
    /// only change to the lists that can make another flow the least (joining flows come last; leaving ones are
    /// forgotten by `leave`).
    @inline(__always)
    private func forgetMovedLeast() {
        for l in 0..<3 {
            let s = queues[l].least
            if s >= 0 && orders[Int(s)] != queues[l].leastOrder { queues[l].least = -1 }
        }
    }

    /// `touch(s)` if `seen`, deferred until the lists are next used (see `pendingTouches`).
    @inlinable @inline(__always)
    public func touchLater(_ s: Int32, if seen: Bool) {
        pendingTouches[pendingCount] = s
        pendingCount &+= seen ? 1 : 0
        if pendingCount == FlowTable.pendingCapacity { applyPendingTouches() }
    }

    /// Gives the flows `touchLater` noted their orders, in the order noted.
    @inlinable @inline(__always)
    func applyPendingTouches() {
        if pendingCount > 0 { relinkPending() }
    }

    /// Applies the pending entries (`applyPendingTouches`).
    @usableFromInline @inline(never)
    func relinkPending() {
        let n = pendingCount, pending = pendingTouches, orders = self.orders
        let base = nextOrder
        // Touches are plain stores, none waiting on another: the core overlaps their misses by itself.
        for i in 0..<n {
            let e = UInt32(bitPattern: pending[i]), order = base &+ UInt64(truncatingIfNeeded: i)
            if e < FlowTable.closeTag { orders[Int(e)] = order } else { close(Int32(bitPattern: e & ~FlowTable.closeTag), order: order) }
        }
        nextOrder = base &+ UInt64(truncatingIfNeeded: n)
        pendingCount = 0
        forgetMovedLeast()
    }

    /// A `pendingTouches` entry's tag (above the slot) for a move to the closed list (`markClosed`).
    static let closeTag: UInt32 = 1 << 30

    /// Moves flow `s` to the front of the closed list with `order` (a pending entry's), unless it is there already.
    @inline(never)
    private func close(_ s: Int32, order: UInt64) {
        let l = Int(LRUList.closed.rawValue), q = queues + l
        let m = membership[Int(s)]
        guard m >> 30 != UInt32(l &+ 1) else { return }
        leave(s)
        // `join`'s, with the order given: pending entries are being applied (a rebuild sees the orders so far,
        // at most the flows' own, which is all a queue entry needs).
        if q.pointee.entryCount > 2 &* q.pointee.members &+ 1024 { rebuild(l) }
        membership[Int(s)] = UInt32(l &+ 1) << 30 | m & FlowTable.generationMask
        q.pointee.members &+= 1
        q.pointee.append(RecencyEntry(order: order, slot: s, generation: m & FlowTable.generationMask), runCapacity: runCapacity)
        orders[Int(s)] = order
    }

    /// The order the next pending entry will get.
    @inline(__always) private var orderOfNextPending: UInt64 { nextOrder &+ UInt64(truncatingIfNeeded: pendingCount) }

    /// Queues a move to the front (an order) for flow `s` behind the pending touches.
    @inline(__always)
    private func notePending(_ s: Int32) {
        pendingTouches[pendingCount] = s
        pendingCount &+= 1
        if pendingCount == FlowTable.pendingCapacity { applyPendingTouches() }
    }

    /// Flow `s` joins list `l` at the front as the slot's flow numbered `generation`.
    private func join(_ s: Int32, _ l: Int, generation: UInt32) {
        let q = queues + l
        // Entries of flows gone from the list (ended, closed) are dropped when they come first; a queue holding many
        // more of them than flows is rebuilt, which drops them all: the queues stay within twice the flows listed.
        if q.pointee.entryCount > 2 &* q.pointee.members &+ 1024 {
            applyPendingTouches()
            rebuild(l)
        }
        membership[Int(s)] = UInt32(l &+ 1) << 30 | generation
        q.pointee.members &+= 1
        q.pointee.append(RecencyEntry(order: orderOfNextPending, slot: s, generation: generation), runCapacity: runCapacity)
        notePending(s)
    }

    private static let generationMask: UInt32 = (1 << 30) - 1

    /// Flow `s` leaves its list (if any); the slot keeps its generation.
    @inline(__always)
    private func leave(_ s: Int32) {
        let m = membership[Int(s)]
        if m >> 30 != 0 {
            let q = queues + (Int(m >> 30) &- 1)
            q.pointee.members &-= 1
            if q.pointee.least == s { q.pointee.least = -1 }
        }
        membership[Int(s)] = m & FlowTable.generationMask
    }

    /// Moves a flow to the closed list (it lingers there for stragglers); nothing if it is there already. Deferred
    /// like a touch (`close`): the flow's membership is a random line, a miss on the packet path.
    public func markClosed(_ s: Int32) {
        zw_prefetch(membership + Int(s))   // for `close`, a batch later
        pendingTouches[pendingCount] = Int32(bitPattern: UInt32(bitPattern: s) | FlowTable.closeTag)
        pendingCount &+= 1
        if pendingCount == FlowTable.pendingCapacity { applyPendingTouches() }
    }

    /// Notes that packet time went back: moves to the front from here on may come at earlier seconds than earlier
    /// ones (the second marks go). The caller reports every step back of the seconds of the times it gives flows
    /// (their `lastSeen`) and of the `now` of idle queries.
    public func clockWentBack() {
        markCount = 0
    }

    /// Notes an idle query at second `now` (a mark, if later than the last).
    @inline(__always)
    private func mark(_ now: Int64) {
        if markCount > 0 && markSeconds[(markStart &+ markCount &- 1) & (FlowTable.markCapacity &- 1)] >= now { return }
        if markCount == FlowTable.markCapacity { markStart = (markStart &+ 1) & (FlowTable.markCapacity &- 1); markCount &-= 1 }
        let i = (markStart &+ markCount) & (FlowTable.markCapacity &- 1)
        markOrders[i] = orderOfNextPending; markSeconds[i] = now
        markCount &+= 1
    }

    /// The second of the latest mark at or before `order` (moves to the front with that order happened then or later),
    /// or nil: none (the order is older than the marks, or from before packet time last went back).
    private func markedSecond(before order: UInt64) -> Int64? {
        // The last mark whose order is at most `order`: marks are in increasing order.
        var low = 0, high = markCount
        while low < high {
            let mid = (low &+ high) / 2
            if markOrders[(markStart &+ mid) & (FlowTable.markCapacity &- 1)] <= order { low = mid &+ 1 } else { high = mid }
        }
        return low == 0 ? nil : markSeconds[(markStart &+ low &- 1) & (FlowTable.markCapacity &- 1)]
    }

    /// The least recently seen flow of list `l` (pending touches applied), or, with `timeout`, that flow only if
    /// idle for `timeout` seconds at `now` (`lastSeen.seconds + timeout <= now`), else nil.
    ///
    /// The queue's least entry is the flow's own and exact, or it names a flow gone from the list (dropped), or one
    /// moved to the front since (its entry is put back with its order now: into the queue's heap, or, when enough
    /// moves happened since the last rebuild to pay for one, by rebuilding the whole queue). Entries' orders are at
    /// most their flows', so an exact least entry is the least recently seen flow. An idle query stops at the least
    /// entry unchecked when a second mark says it moved to the front within the timeout: every flow listed moved to
    /// the front at that order or later, so in that second or later.
    private func settle(_ l: Int, timeout: Int64?, now: Int64) -> Int32? {
        let q = queues + l
        let known = q.pointee.least
        if known >= 0 {
            // Known since the last settle (nothing moved to the front or left the list since).
            guard let timeout else { return known }
            return slots[Int(known)].lastSeen.seconds + timeout <= now ? known : nil
        }
        let target = UInt32(l &+ 1)
        while true {
            // The least entry: the run's first, or the heap's top when less.
            var fromHeap = false
            var e: RecencyEntry
            if q.pointee.runStart < q.pointee.runEnd {
                e = q.pointee.run[q.pointee.runStart]
                if q.pointee.heapCount > 0 && q.pointee.heap[0].order < e.order { e = q.pointee.heap[0]; fromHeap = true }
            } else if q.pointee.heapCount > 0 {
                e = q.pointee.heap[0]; fromHeap = true
            } else {
                return nil
            }
            if let timeout, let second = markedSecond(before: e.order), second + timeout > now { return nil }
            let m = membership[Int(e.slot)]
            guard m == target << 30 | e.generation else {
                // Not a flow of this list any more.
                if fromHeap { q.pointee.popHeap() } else { q.pointee.runStart &+= 1 }
                continue
            }
            let order = orders[Int(e.slot)]
            if order == e.order {
                q.pointee.least = e.slot; q.pointee.leastOrder = order
                guard let timeout else { return e.slot }
                return slots[Int(e.slot)].lastSeen.seconds + timeout <= now ? e.slot : nil
            }
            if nextOrder &- q.pointee.rebuiltAt >= UInt64(q.pointee.entryCount / 2) { rebuild(l); continue }
            if fromHeap { q.pointee.popHeap() } else { q.pointee.runStart &+= 1 }
            q.pointee.push(RecencyEntry(order: order, slot: e.slot, generation: e.generation))
        }
    }

    /// Rebuilds list `l`'s queue (pending touches applied): its flows' entries with their orders now, sorted, the
    /// others dropped; the heap empties.
    @inline(never)
    private func rebuild(_ l: Int) {
        let q = queues + l
        let orders = self.orders, membership = self.membership, run = q.pointee.run
        let target = UInt32(l &+ 1) << 30
        var k = 0, low = UInt64.max, high: UInt64 = 0
        // Kept entries are written over the run from its start (never past the one being read), the heap's after
        // them. The entries' flows' orders and membership are random lines (100,000 flows' orders are 800 KB):
        // read a few entries on.
        func gather(_ entries: UnsafeMutablePointer<RecencyEntry>, from start: Int, to end: Int) {
            let ahead = 16
            var i = start
            while i < end {
                if i &+ ahead < end {
                    let a = Int(entries[i &+ ahead].slot)
                    zw_prefetch(orders + a); zw_prefetch(membership + a)
                }
                let e = entries[i]
                i &+= 1
                guard membership[Int(e.slot)] == target | e.generation else { continue }
                let order = orders[Int(e.slot)]
                run[k] = RecencyEntry(order: order, slot: e.slot, generation: e.generation)
                low = min(low, order); high = max(high, order)
                k &+= 1
            }
        }
        gather(run, from: q.pointee.runStart, to: q.pointee.runEnd)
        gather(q.pointee.heap, from: 0, to: q.pointee.heapCount)
        RecencyEntry.sortByOrder(run, count: k, low: low, high: high, bounds: radixBounds)
        q.pointee.runStart = 0; q.pointee.runEnd = k; q.pointee.heapCount = 0
        q.pointee.rebuiltAt = nextOrder
    }

    /// Starts loading the line of slot `s` that holds the streams (the third, see `FlowStateLayoutTests`).
    @inlinable @inline(__always)
    public func prefetchStreamLines(of s: Int32) {
        zw_prefetch(UnsafeRawPointer(slots + Int(s)) + 128)
    }

    /// Starts loading the per-flow line of slot `s` (past the per-packet ones: the third, with the streams, see
    /// `FlowStateLayoutTests`): a dissected flow's records read the first packet's time and number from it.
    @inlinable @inline(__always)
    public func prefetchFlowLines(of s: Int32) {
        zw_prefetch(UnsafeRawPointer(slots + Int(s)) + 128)
    }

    /// The flow listed just after `s` in its list's queue (the next more recently seen, or a guess at it; -1 none):
    /// the one a sweep likely ends after `s`, oldest first. A hint only, read right after `oldest` (which put `s`
    /// first), before `s` is removed: a live flow, but its place may be out of date.
    public func newerNeighbour(of s: Int32) -> Int32 {
        let m = membership[Int(s)]
        guard m >> 30 != 0 else { return -1 }
        let q = queues + (Int(m >> 30) &- 1)
        let run = q.pointee.run, end = q.pointee.runEnd
        var i = q.pointee.runStart
        // `s` is first, or a few on (entries of flows just ended before it); the next listed flow's entry follows.
        let stop = min(end, i &+ 4)
        while i < stop && run[i].slot != s { i &+= 1 }
        guard i < stop else { return -1 }
        i &+= 1
        let last = min(end, i &+ 2)
        while i < last {
            let n = run[i]
            if membership[Int(n.slot)] == (m & ~FlowTable.generationMask) | n.generation { return n.slot }
            i &+= 1
        }
        return -1
    }

    /// Starts loading all of slot `s`'s lines and its list membership: what ending the flow reads (a
    /// sweep ends flows a few apart in memory, each a chain of misses otherwise). A hint only.
    @inline(__always)
    public func prefetchWholeFlow(_ s: Int32) {
        let state = UnsafeRawPointer(slots + Int(s))
        var line = 0
        while line < MemoryLayout<FlowState>.stride { zw_prefetch(state + line); line += 64 }
        zw_prefetch(membership + Int(s))
    }

    /// Starts loading the index entry where flow `s`'s probe starts: what `remove` reads first (the flow's slot
    /// should be in cache: its `hashLow` is read here). A hint only.
    @inline(__always)
    public func prefetchIndexEntry(of s: Int32) {
        zw_prefetch(index + home(UInt64(slots[Int(s)].hashLow)))
    }

    /// The least recently seen flow of `list`.
    public func oldest(_ list: LRUList) -> Int32? {
        applyPendingTouches()
        return least(Int(list.rawValue))
    }

    /// `oldest` of list `l`, pending touches applied: the known one or none without a call (evictions ask for all
    /// three lists' per new flow).
    @inline(__always)
    private func least(_ l: Int) -> Int32? {
        let q = queues + l
        let known = q.pointee.least
        if known >= 0 { return known }
        if q.pointee.runStart == q.pointee.runEnd && q.pointee.heapCount == 0 { return nil }
        return settle(l, timeout: nil, now: 0)
    }

    /// The least recently seen flow of `list` if it was last seen `timeout` seconds or more before `now`
    /// (`lastSeen.seconds + timeout <= now`), else nil: `oldest(list)` and that test, without bringing the list up
    /// to date when no flow of it can be that old.
    public func oldest(_ list: LRUList, idle timeout: Int64, at now: Int64) -> Int32? {
        applyPendingTouches()
        mark(now)
        return settle(Int(list.rawValue), timeout: timeout, now: now)
    }

    /// Every closed flow, or (`closed` false) every active one, least recently seen first: the flows `oldest(closed:)`
    /// gives if each is removed in turn and nothing else changes, for ending them all.
    public func endOrder(closed: Bool) -> [Int32] {
        applyPendingTouches()
        // A rebuilt queue's run is its flows in order, exactly.
        let lists = closed ? [Int(LRUList.closed.rawValue)] : [Int(LRUList.activeTCP.rawValue), Int(LRUList.activeOther.rawValue)]
        var runs: [(UnsafeMutablePointer<RecencyEntry>, Int)] = []
        for l in lists {
            rebuild(l)
            // One entry a listed flow: a flow listed twice (a stale entry outliving 2^30 reuses of its slot) would be
            // ended twice, and the second removal would probe for it forever.
            precondition(queues[l].runEnd &- queues[l].runStart == queues[l].members, "flow table: recency queue out of step")
            runs.append((queues[l].run, queues[l].runEnd))
        }
        var order = [Int32]()
        order.reserveCapacity(runs.reduce(0) { $0 + $1.1 })
        if runs.count == 1 {
            let (a, n) = runs[0]
            for i in 0..<n { order.append(a[i].slot) }
            return order
        }
        // Both active lists merged by order (as `lessRecentlySeen` picks between their least).
        let (a, n) = runs[0], (b, m) = runs[1]
        var i = 0, j = 0
        while i < n && j < m {
            if a[i].order < b[j].order { order.append(a[i].slot); i &+= 1 } else { order.append(b[j].slot); j &+= 1 }
        }
        while i < n { order.append(a[i].slot); i &+= 1 }
        while j < m { order.append(b[j].slot); j &+= 1 }
        return order
    }

    /// The least recently seen closed flow, or (`closed` false) the least recently seen of all active ones.
    public func oldest(closed: Bool) -> Int32? {
        applyPendingTouches()
        if closed { return least(Int(LRUList.closed.rawValue)) }
        guard let a = least(Int(LRUList.activeTCP.rawValue)) else { return least(Int(LRUList.activeOther.rawValue)) }
        guard let b = least(Int(LRUList.activeOther.rawValue)) else { return a }
        return orders[Int(a)] < orders[Int(b)] ? a : b
    }

    /// Of two flows (either may be absent), the one that moved to the front of its list less recently.
    public func lessRecentlySeen(_ a: Int32?, _ b: Int32?) -> Int32? {
        guard let a else { return b }
        guard let b else { return a }
        applyPendingTouches()
        return orders[Int(a)] < orders[Int(b)] ? a : b
    }

    /// The flow to evict when full: a closed one if any, else the least recently seen.
    public var evictionCandidate: Int32? { oldest(closed: true) ?? oldest(closed: false) }
}

/// The flow table's recency lists. Active flows are listed by transport because their idle timeouts differ: in one
/// list, a TCP flow within its 600 s kept every UDP flow seen after it alive past its 120 s.
public enum LRUList: UInt8, Sendable {
    case activeTCP = 0, closed = 1, activeOther = 2
}

/// A flow's place in a recency queue as of when the entry was made: the order of its move to the front.
struct RecencyEntry {
    var order: UInt64
    var slot: Int32
    /// The slot's generation when the entry was made (`FlowTable.membership`).
    var generation: UInt32

    /// Sorts `count` entries at `entries` by order (their orders differ, from `low` to `high`) in place: an MSD
    /// radix sort (American flag sort) on the orders' span, at most 11 bits a level, small buckets by insertion. In
    /// place because ending a million flows sorts them all, and a second buffer was 16 MB more peak memory.
    /// `bounds`: 2 * `radix` * `levels` integers.
    static func sortByOrder(_ entries: UnsafeMutablePointer<RecencyEntry>, count n: Int, low: UInt64, high: UInt64,
                            bounds: UnsafeMutablePointer<Int>) {
        guard n > 1 else { return }
        sort(entries, count: n, low: low, bits: 64 - (high &- low).leadingZeroBitCount, level: 0, bounds: bounds)
    }

    /// Sorts by the `bits` low bits of `order - low` (the higher ones are equal).
    private static func sort(_ a: UnsafeMutablePointer<RecencyEntry>, count n: Int, low: UInt64, bits: Int, level: Int,
                             bounds: UnsafeMutablePointer<Int>) {
        if n <= 32 || bits == 0 {
            // Insertion sort.
            var i = 1
            while i < n {
                let e = a[i]
                var j = i
                while j > 0 && a[j &- 1].order > e.order { a[j] = a[j &- 1]; j &-= 1 }
                a[j] = e
                i &+= 1
            }
            return
        }
        // Digit width: at most 11 bits, and about a bucket per four entries (clearing the buckets costs too).
        let width = min(bits, 11, max(4, Int.bitWidth - n.leadingZeroBitCount - 2))
        let shift = UInt64(bits &- width), mask = UInt64(1 << width &- 1), digits = 1 << width
        @inline(__always) func digit(_ e: RecencyEntry) -> Int { Int(truncatingIfNeeded: ((e.order &- low) >> shift) & mask) }
        let heads = bounds + 2 &* radix &* level, tails = heads + radix
        heads.update(repeating: 0, count: digits)
        for i in 0..<n { heads[digit(a[i])] &+= 1 }
        var sum = 0
        for d in 0..<digits { let c = heads[d]; heads[d] = sum; sum &+= c; tails[d] = sum }
        // Each entry is swapped straight into its bucket's next place (cycle by cycle).
        for d in 0..<digits {
            while heads[d] < tails[d] {
                var e = a[heads[d]]
                var ed = digit(e)
                while ed != d {
                    let target = heads[ed]
                    heads[ed] &+= 1
                    swap(&e, &a[target])
                    ed = digit(e)
                }
                a[heads[d]] = e
                heads[d] &+= 1
            }
        }
        guard shift > 0 else { return }
        // Each bucket by the next bits (its start: the previous bucket's end).
        var start = 0
        for d in 0..<digits {
            let end = tails[d]
            if end &- start > 1 {
                sort(a + start, count: end &- start, low: low, bits: Int(shift), level: level &+ 1, bounds: bounds)
            }
            start = end
        }
    }
    /// Buckets of a radix sort level at most (11 bits), and levels at most (64 bits, at least 4 a level).
    static let radix = 2048, levels = 16
}

/// One `LRUList`'s flows, least recently seen first, kept lazily: a run of entries sorted by order (new entries come
/// last with the highest order yet) and a min-heap by order of entries put back out of turn (`FlowTable.settle`).
/// Each listed flow has exactly one entry, with at most its order; entries of flows gone from the list stay until
/// they come first or the queue is rebuilt.
struct RecencyQueue {
    /// The run: [runStart, runEnd) of a block of `FlowTable.runCapacity` entries (address space, pages touched as
    /// used: it never moves).
    let run: UnsafeMutablePointer<RecencyEntry>
    var runStart = 0, runEnd = 0
    /// The heap: `heapCount` of `heapCapacity` entries.
    var heap = UnsafeMutablePointer<RecencyEntry>.allocate(capacity: 0)
    var heapCount = 0, heapCapacity = 0
    /// Flows listed.
    var members = 0
    /// The least recently seen flow when known (-1: settle to find it): kept while it does not move to the front or
    /// leave the list (a flow joining comes last, one moving to the front stays behind it).
    var least: Int32 = -1
    /// Its order then.
    var leastOrder: UInt64 = 0
    /// `FlowTable.nextOrder` at the last rebuild.
    var rebuiltAt: UInt64 = 0

    /// Entries held (listed flows' and stale ones).
    var entryCount: Int { runEnd &- runStart &+ heapCount }

    init(runCapacity: Int) {
        run = RecencyQueue.mapRun(runCapacity)
    }

    /// A block for `count` entries: zeroed anonymous memory, in small pages (read and written in order: huge pages
    /// would only zero 2 MiB at a time where a few hundred KB are used).
    static func mapRun(_ count: Int) -> UnsafeMutablePointer<RecencyEntry> {
        guard let block = mmap(nil, count * MemoryLayout<RecencyEntry>.stride, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0),
              block != MAP_FAILED else { fatalError("out of memory (\(count) recency entries)") }
        return block.bindMemory(to: RecencyEntry.self, capacity: count)
    }

    func release(runCapacity: Int) {
        LargeBlock.unmap(UnsafeMutableRawPointer(run), bytes: runCapacity * MemoryLayout<RecencyEntry>.stride)
        heap.deallocate()
    }

    /// Appends an entry with an order above every entry's.
    @inline(__always)
    mutating func append(_ e: RecencyEntry, runCapacity: Int) {
        // Slid down once more was consumed than is left (and at the block's end): the pages in use stay within about
        // twice the entries held (a flood consumes the run as fast as it grows).
        if runEnd == runCapacity || runStart > max(4096, runEnd &- runStart) { slide() }
        run[runEnd] = e
        runEnd &+= 1
    }

    /// Moves the run to the block's start (at the block's end, it holds at most half the block: `FlowTable.runCapacity`).
    @inline(never)
    private mutating func slide() {
        let live = runEnd &- runStart
        memmove(run, run + runStart, live * MemoryLayout<RecencyEntry>.stride)
        runStart = 0; runEnd = live
    }

    /// Removes the heap's top.
    @inline(never)
    mutating func popHeap() {
        heapCount &-= 1
        guard heapCount > 0 else { return }
        let last = heap[heapCount]
        var i = 0
        while true {
            var c = 2 &* i &+ 1
            if c >= heapCount { break }
            if c &+ 1 < heapCount && heap[c &+ 1].order < heap[c].order { c &+= 1 }
            if heap[c].order >= last.order { break }
            heap[i] = heap[c]; i = c
        }
        heap[i] = last
    }

    /// Adds an entry out of turn (to the heap).
    @inline(never)
    mutating func push(_ e: RecencyEntry) {
        if heapCount == heapCapacity {
            let bigger = max(64, heapCapacity &* 2)
            let fresh = UnsafeMutablePointer<RecencyEntry>.allocate(capacity: bigger)
            fresh.moveInitialize(from: heap, count: heapCount)
            heap.deallocate()
            heap = fresh; heapCapacity = bigger
        }
        var i = heapCount
        heapCount &+= 1
        while i > 0 {
            let p = (i &- 1) / 2
            if heap[p].order <= e.order { break }
            heap[i] = heap[p]; i = p
        }
        heap[i] = e
    }

}
