import Wire
import Records
import CPrefetch

/// What makes two alerts "identical" for aggregation: the rule and a few scalars, never strings,
/// so that a repeat is recognised with one hash lookup and no allocation.
struct AggregationKey: Hashable {
    var rule: UInt8
    var source: IPAddress
    var destination: IPAddress
    var protocolCode: UInt8 = 0
    var function: UInt16 = 0
    var subfunction: Int32 = -1
    var unit: Int32 = -1
    var extra: Int64 = 0

    /// The fields folded into one word under `key` (`TableHash`: each table hashes with a random key of its own),
    /// for the detector's open-addressing tables: a key is hashed for every alert raised, every scan-counter update
    /// and every new ICS flow.
    @inline(__always) func mixed(_ key: UInt64) -> UInt64 {
        var h = TableHash.round(TableHash.round(key, source), destination)
        h = TableHash.round(h, UInt64(rule) << 56 | UInt64(protocolCode) << 48 | UInt64(function) << 32 | UInt64(UInt32(bitPattern: subfunction)))
        h = TableHash.round(h, UInt64(UInt32(bitPattern: unit)))
        return TableHash.finish(TableHash.round(h, UInt64(bitPattern: extra)))
    }
}

/// Keyed hashing for the detector's own hash tables (`WindowTable`, `DistinctCounter`, `AddressSet`, the flow
/// cache's keys): each word goes through its own multiply-xorshift round after the one before, from a random key
/// per table. Unkeyed, with words folded together first, keys an attacker sends could share one slot (IPv6 sources
/// whose halves cancel out, IPv4 sources searched offline, ports or units in bits the slot did not take), and each
/// lookup walked a run as long as the table: 60,000 such alerts took 8–9 s of CPU instead of 0.3 s.
enum TableHash {
    /// A random key for one table.
    static func randomKey() -> UInt64 { UInt64.random(in: .min ... .max) }

    /// `h` and `word`: a bijection of `h ^ word` (an odd multiplier, the high half folded down, another multiplier).
    /// The second multiply carries the folded bits upward: with one, a difference in a word's top bit came out as the
    /// same two bits whatever the key, so a chosen difference in the next word cancelled it (pairs of keys collided
    /// under every key).
    @inline(__always) static func round(_ h: UInt64, _ word: UInt64) -> UInt64 {
        let x = (h ^ word) &* 0x9E37_79B9_7F4A_7C15
        return (x ^ (x >> 32)) &* 0xD6E8_FEB8_6659_FD93
    }

    /// `round` of an address's two words, high then low (every table here that hashes an address takes both).
    @inline(__always) static func round(_ h: UInt64, _ ip: IPAddress) -> UInt64 { round(round(h, ip.high), ip.low) }

    /// The last avalanche: every bit of the result depends on every bit of `h` (slots are taken from high bits).
    @inline(__always) static func finish(_ h: UInt64) -> UInt64 {
        let x = (h ^ (h >> 33)) &* 0xFF51_AFD7_ED55_8CCD
        return x ^ (x >> 33)
    }
}

/// Folds repeated identical alerts within a window of packet time.
///
/// The first alert of a key is emitted at once (count 1), so a live SIEM sees it without delay.
/// Repeats within `window` after it are only counted; when the window closes (or at the end of input)
/// one summary alert is emitted with `count` = the number of repeats and `start`/`end` = the first
/// and last repeat. Summing `event.count` over all records therefore gives the exact number of
/// occurrences: nothing is dropped silently.
/// The whole seconds of packet time sweeps fall on (`Aggregator.nextSweep`), in the aggregator's own arithmetic
/// (microseconds, wrapping as `PacketTime.totalMicroseconds` does), so that a `--workers` engine deciding which
/// operations would sweep computes exactly what the merge's aggregator will.
public enum SweepClock {
    /// The start (µs) of the whole second `t` (µs) lies in.
    @inlinable @inline(__always) public static func second(ofMicroseconds t: Int64) -> Int64 {
        let r = t % 1_000_000
        return r < 0 ? t &- r &- 1_000_000 : t &- r
    }

    /// The start (µs) of the whole second `time` lies in.
    @inlinable @inline(__always) public static func second(of time: PacketTime) -> Int64 { second(ofMicroseconds: time.totalMicroseconds) }
}

struct Aggregator {
    struct Entry {
        var windowEnd: Int64
        var order: UInt64
        var repeats: Int = 0
        var firstRepeat: PacketTime = .zero
        var lastRepeat: PacketTime = .zero
        var lastFrame: UInt64 = 0
        /// Index of the emitted alert in `templates`.
        var template: Int32
    }

    let window: Int64
    let capacity: Int
    var entries: WindowTable
    /// The alerts that opened the windows, by `Entry.template`: kept out of the table so that inserting a window
    /// moves a few words instead of a whole alert (about 900 instructions per insert in an alert storm).
    var templates: [Alert] = []
    /// Indices of `templates` whose windows closed, reused by the next windows.
    var freeTemplates: [Int32] = []
    /// Windows in the order they opened: with a fixed window length that is (nearly) the order they close,
    /// so a sweep pops from the front instead of scanning the table.
    var queue: [(end: Int64, order: UInt64, key: AggregationKey)] = []
    var head = 0
    /// Packet time (µs) from which the next sweep is due: the start of the whole second after the last one swept to.
    /// Sweeps close windows on whole seconds of packet time, whichever event first reaches a new second (an
    /// operation, an anomaly, a tick), and never go back but at a clock step (`stepFloor`): so the windows closed
    /// before any event depend only on the latest second reached, not on which event reached it. `--workers` relies
    /// on this: an operation that changes nothing else is not sent to the merge at all once its worker has sent
    /// something of that second.
    var nextSweep: Int64 = .min
    /// Packet time (µs) below which an event is a step back of more than `PacketTime.clockStepSeconds` from the last
    /// second swept to: a clock discontinuity, at which every window closes (`sweepDue`).
    var stepFloor: Int64 = .min
    var sequence: UInt64 = 0
    /// Repeats folded into summaries so far.
    var folded: UInt64 = 0
    /// Summaries emitted.
    var summaries: UInt64 = 0
    /// Times the table was full and flushed early.
    var overflows: UInt64 = 0

    init(windowMicroseconds: Int64, capacity: Int) {
        window = max(1, windowMicroseconds); self.capacity = max(16, capacity)
        // Room for a few thousand open windows up front (address space; pages are touched as windows open): grown
        // by doubling, the tables reallocated as an alert storm's windows piled up, until the first ones closed.
        // The window table too (its 8,192 slots, 1.1 MB, are written once here): grown from 64 as windows opened,
        // it doubled in the middle of a long plant replay when its open windows first passed a power of two, so a
        // capture twice as long made allocations more (scripts/bench allocs: 3 more for the 5M plant than the 2.5M).
        let initial = min(self.capacity, 4096)
        entries = WindowTable(initial: initial)
        templates.reserveCapacity(initial); freeTemplates.reserveCapacity(initial)
        queue.reserveCapacity(initial)
    }

    /// Counts a repeat of `key` at `time` and returns true; returns false when `key` has no open window
    /// (the caller then builds the alert and calls `open`).
    mutating func fold(_ key: AggregationKey, time: PacketTime, frame: UInt64, alerts: inout [Alert]) -> Bool {
        guard let index = entries.find(key) else { return false }
        let t = time.totalMicroseconds
        if t >= entries[index].windowEnd {
            let e = entries.remove(at: index)
            if e.repeats > 0 { emitSummary(e, into: &alerts) }
            freeTemplates.append(e.template)
            return false
        }
        entries[index].repeats += 1
        if entries[index].repeats == 1 { entries[index].firstRepeat = time }
        entries[index].lastRepeat = time
        entries[index].lastFrame = frame
        folded &+= 1
        return true
    }

    /// Whether `open` needs `makeRoom` first.
    var isFull: Bool { entries.count >= capacity }

    /// Flushes every window when the table is full (before `open`, after the new alert was emitted).
    @inline(__always) mutating func makeRoom(alerts: inout [Alert]) {
        if entries.count >= capacity { overflows &+= 1; flushAll(into: &alerts) }
    }

    /// Opens a window for a freshly emitted alert (`makeRoom` first).
    mutating func open(_ key: AggregationKey, alert: consuming Alert) {
        let end = alert.time.totalMicroseconds &+ window
        sequence &+= 1
        let t: Int32
        if let f = freeTemplates.popLast() { t = f; templates[Int(f)] = alert } else { t = Int32(templates.count); templates.append(alert) }
        entries.insert(key, Entry(windowEnd: end, order: sequence, template: t))
        queue.append((end, sequence, key))
    }

    /// Emits the summaries of windows that closed by the start of `time`'s whole second, when that second is later
    /// than the last one swept to (one sweep per second of packet time at most).
    @inline(__always) mutating func sweep(_ time: PacketTime, into alerts: inout [Alert]) {
        // Checked on every operation and anomaly: only the comparisons are inlined.
        let t = time.totalMicroseconds
        if t >= nextSweep || t < stepFloor { sweepDue(t, into: &alerts) }
    }

    /// The start of the whole second of packet time `t` (µs) lies in (`SweepClock.second`).
    @inline(__always) static func wholeSecond(_ t: Int64) -> Int64 { SweepClock.second(ofMicroseconds: t) }

    /// The sweep for an event at `t` ≥ `nextSweep`, or below `stepFloor` (a clock step: every window closes first).
    mutating func sweepDue(_ t: Int64, into alerts: inout [Alert]) {
        // Time went back by more than a clock step: on the old timeline these windows would stay open (and fold
        // repeats) until packet time caught up, hours after a sensor's clock was set back. They close now.
        if t < stepFloor { flushAll(into: &alerts) }
        let second = Self.wholeSecond(t)
        while head < queue.count && queue[head].end <= second {
            let item = queue[head]
            head += 1
            // The key may have been closed already (by `fold`) and reopened: only its current window counts.
            if let i = entries.find(item.key), entries[i].order == item.order {
                let e = entries.remove(at: i)
                if e.repeats > 0 { emitSummary(e, into: &alerts) }
                freeTemplates.append(e.template)
            }
        }
        if head == queue.count { queue.removeAll(keepingCapacity: true); head = 0 }
        else if head > 4096 && head * 2 > queue.count { queue.removeFirst(head); head = 0 }
        nextSweep = second &+ 1_000_000
        stepFloor = second &- PacketTime.clockStepSeconds &* 1_000_000
    }

    /// Emits every pending summary (end of input, or a full table), in the order the windows opened.
    mutating func flushAll(into alerts: inout [Alert]) {
        // Sort (order, position) pairs, not the entries: an entry carries a whole alert, and moving thousands of
        // them through a merge sort was most of an alert storm's end-of-input cost.
        var pending: [(order: UInt64, index: Int)] = []
        pending.reserveCapacity(entries.count)
        // Slot by slot: a list of the occupied slots first was an array grown as it filled, its allocations as many
        // as the open windows' count needed (the end of the 5M plant made one more than the 2.5M's).
        for i in entries.used.indices where entries.used[i] && entries[i].repeats > 0 { pending.append((entries[i].order, i)) }
        pending.sort { $0.order < $1.order }
        for p in pending { emitSummary(entries[p.index], into: &alerts) }
        entries.removeAll()
        templates.removeAll(keepingCapacity: true); freeTemplates.removeAll(keepingCapacity: true)
        queue.removeAll(keepingCapacity: true); head = 0
    }

    mutating func emitSummary(_ e: Entry, into alerts: inout [Alert]) {
        var a = templates[Int(e.template)]
        a.count = e.repeats
        a.firstSeen = e.firstRepeat
        a.lastSeen = e.lastRepeat
        a.time = e.lastRepeat
        a.frame = e.lastFrame
        let seconds = window / 1_000_000
        // Appended in place: `message +=` with an interpolation allocated the piece and the grown message.
        a.messageText.append(" (repeated "); a.messageText.append(decimal: e.repeats)
        a.messageText.append(e.repeats == 1 ? " more time within " : " more times within ")
        a.messageText.append(decimal: seconds); a.messageText.append(" s)")
        summaries &+= 1
        alerts.append(a)
    }
}

/// Counts distinct values per key within a window of packet time (scans and sweeps).
struct DistinctCounter {
    /// A key's window. Its distinct values: `first` alone (when `hasFirst`) until a second comes, then `lists[list]`
    /// (`list` -1: none yet). Most keys see one value in their window (a flow addresses one unit): they take no list.
    struct Window { var start: Int64; var first: Int64; var count: Int; var list: Int32; var fired: Bool; var hasFirst: Bool }
    /// One slot of the table: a key and its window, or free.
    struct Slot { var key: AggregationKey; var window: Window; var used: Bool }
    let window: Int64
    let capacity: Int
    /// Open addressing with linear probing over `AggregationKey.mixed` (a `Dictionary` seeded and ran SipHash for every
    /// update, and probed twice to insert: most of what a flow's first ICS request cost). Keys are only ever removed
    /// all at once (`capacity` reached), so no slot needs a tombstone. At most half full: it doubles before that,
    /// up to the size `capacity` keys need.
    private(set) var slots: [Slot]
    private var mask: Int
    /// This table's `TableHash` key.
    let hashKey = TableHash.randomKey()
    /// Keys held.
    private(set) var count = 0
    var resets: UInt64 = 0
    /// The windows' value lists from their second distinct value on, kept out of the table so that a new key inserts
    /// a few words (an array in the table's values made every insert and probe move and retain it); lists of windows
    /// dropped by a reset are reused by the keys that need one next, keeping their capacity. (Every new key took a
    /// list before: a heap block and a miss on it per new unit-scan key, one per Modbus or DNP3 flow.)
    var lists: [[Int64]] = []
    var freeLists: [Int32] = []

    init(windowMicroseconds: Int64, capacity: Int) {
        window = max(1, windowMicroseconds); self.capacity = max(16, capacity)
        slots = DistinctCounter.emptySlots(64); mask = 63
    }

    static func emptySlots(_ n: Int) -> [Slot] {
        let free = Slot(key: AggregationKey(rule: 0, source: IPAddress(v4: 0), destination: IPAddress(v4: 0)),
                        window: Window(start: 0, first: 0, count: 0, list: -1, fired: false, hasFirst: false), used: false)
        // Filled after the huge-page advice: the table's last size (32,768 slots of 96 bytes by default) is ~3 MiB, a
        // new key's probe a miss in it, and the flows' first requests prefetch their unit-scan slot (`prefetch`).
        return [Slot](unsafeUninitializedCapacity: n) { b, count in
            LargeBlock.adviseHugePages(UnsafeMutableRawPointer(b.baseAddress!), bytes: n * MemoryLayout<Slot>.stride)
            b.initialize(repeating: free)
            count = n
        }
    }

    /// The slot holding `key`, or the free slot where it would go.
    @inline(__always) func find(_ key: AggregationKey) -> Int {
        var i = Int(truncatingIfNeeded: key.mixed(hashKey) >> 17) & mask
        while slots[i].used && slots[i].key != key { i = (i &+ 1) & mask }
        return i
    }

    /// Starts loading the slot where `find(key)` begins (a hint: the table is a few MiB, a miss per new key).
    /// Mutating though it changes nothing: called on a class's stored counter, a non-mutating call copied the counter
    /// (a retain and a release of each of its three arrays, per identified Modbus or DNP3 flow).
    @inline(__always) mutating func prefetch(_ key: AggregationKey) {
        let i = Int(truncatingIfNeeded: key.mixed(hashKey) >> 17) & mask
        slots.withUnsafeBufferPointer { b in
            let p = UnsafeRawPointer(b.baseAddress! + i)
            zw_prefetch(p); zw_prefetch(p + MemoryLayout<Slot>.size - 1)
        }
    }

    /// Adds `value` (or, with `distinct: false`, one more event) for `key`; true exactly once per window,
    /// when the count reaches `threshold`.
    mutating func add(_ key: AggregationKey, value: Int64, distinct: Bool, threshold: Int, time: PacketTime) -> Bool {
        let t = time.totalMicroseconds
        var i = find(key)
        if slots[i].used {
            // A new window when this one has passed, or when time went back beyond its length (a clock set back:
            // the old window would otherwise gather values until time caught up with it).
            if t &- slots[i].window.start >= window || slots[i].window.start &- t >= window {
                // A new window, reset in place (a list the key has stays its own, emptied).
                slots[i].window.start = t
                let l = Int(slots[i].window.list)
                if l >= 0 { lists[l].removeAll(keepingCapacity: true) }
                slots[i].window.hasFirst = false
                slots[i].window.count = 0
                slots[i].window.fired = false
            }
            if distinct && !recordsNew(value, at: i, threshold: threshold) { return false }
            slots[i].window.count += 1
            if !slots[i].window.fired && slots[i].window.count >= threshold {
                slots[i].window.fired = true
                return true
            }
            return false
        }
        if count >= capacity {
            for j in slots.indices { slots[j].used = false }
            count = 0; resets &+= 1
            freeLists.removeAll(keepingCapacity: true)
            for l in lists.indices.reversed() { freeLists.append(Int32(l)) }
            i = find(key)
        } else if (count + 1) * 2 > slots.count {
            grow()
            i = find(key)
        }
        let fired = threshold <= 1
        slots[i] = Slot(key: key, window: Window(start: t, first: value, count: 1, list: -1, fired: fired, hasFirst: distinct), used: true)
        count += 1
        return fired
    }

    /// Whether `value` is new in slot `i`'s window, recorded if so (up to `threshold` values, as a list keeps them):
    /// the first in the window itself, a list taken only for a second.
    private mutating func recordsNew(_ value: Int64, at i: Int, threshold: Int) -> Bool {
        let l = Int(slots[i].window.list)
        if l >= 0 {
            if lists[l].contains(value) { return false }
            if lists[l].count < threshold { lists[l].append(value) }
            return true
        }
        if !slots[i].window.hasFirst {
            slots[i].window.first = value; slots[i].window.hasFirst = true
            return true
        }
        if slots[i].window.first == value { return false }
        let n: Int
        if let f = freeLists.popLast() {
            n = Int(f)
            lists[n].removeAll(keepingCapacity: true)
        } else {
            n = lists.count
            var values: [Int64] = []
            values.reserveCapacity(min(threshold, 16))
            lists.append(values)
        }
        lists[n].append(slots[i].window.first)
        if lists[n].count < threshold { lists[n].append(value) }
        slots[i].window.list = Int32(n)
        return true
    }

    /// Doubles the table and files every key again; past 4,096 slots, grows straight to the size `capacity` keys
    /// need: a table that got that far usually fills (a plant's new flows each add a key), and each intermediate
    /// size was fresh pages faulted in and a copy (~1,400 page faults on the 100,000-flow plant).
    mutating func grow() {
        let old = slots
        var size = old.count * 2
        if old.count >= 4096 { while size < capacity * 2 { size *= 2 } }
        slots = DistinctCounter.emptySlots(size); mask = slots.count - 1
        for s in old where s.used { slots[find(s.key)] = s }
    }
}

/// A set of addresses by open addressing with one multiply-shift hash: `Set<IPAddress>` hashed two words through
/// SipHash for every unzoned endpoint of every new flow.
struct AddressSet {
    var keys: [IPAddress]
    var used: [Bool]
    var mask: Int
    /// This set's `TableHash` key.
    let hashKey = TableHash.randomKey()
    /// Addresses held.
    private(set) var count = 0

    init(capacity: Int = 1024) {
        let n = max(16, capacity.nextPowerOfTwo)
        keys = Array(repeating: IPAddress(high: 0, low: 0), count: n); used = Array(repeating: false, count: n); mask = n - 1
    }

    @inline(__always) func home(_ ip: IPAddress) -> Int {
        let x = TableHash.finish(TableHash.round(hashKey, ip))
        return Int(truncatingIfNeeded: x >> 32) & mask
    }

    /// Whether `ip` is in the set.
    func contains(_ ip: IPAddress) -> Bool {
        var i = home(ip)
        while used[i] {
            if keys[i] == ip { return true }
            i = (i + 1) & mask
        }
        return false
    }

    /// Adds `ip` (no effect when present).
    mutating func insert(_ ip: IPAddress) {
        if (count + 1) * 2 > keys.count { grow() }
        var i = home(ip)
        while used[i] {
            if keys[i] == ip { return }
            i = (i + 1) & mask
        }
        keys[i] = ip; used[i] = true; count += 1
    }

    /// Empties the set, keeping its storage.
    mutating func removeAll() {
        guard count > 0 else { return }
        for i in used.indices { used[i] = false }
        count = 0
    }

    mutating func grow() {
        let old = keys, oldUsed = used
        let n = keys.count * 2
        keys = Array(repeating: IPAddress(high: 0, low: 0), count: n); used = Array(repeating: false, count: n); mask = n - 1
        count = 0
        for i in old.indices where oldUsed[i] { insert(old[i]) }
    }
}

extension Int {
    /// The smallest power of two not below `self` (1 for 0).
    var nextPowerOfTwo: Int { self <= 1 ? 1 : 1 << (Int.bitWidth - (self - 1).leadingZeroBitCount) }
}
