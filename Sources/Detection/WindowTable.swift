import Wire

/// The aggregator's open windows by key (`Aggregator`): open addressing with linear probing over
/// `AggregationKey.mixed`, removal by backward shift (no tombstones: in an alert storm windows open and close all the
/// time). A `Dictionary` seeded a `Hasher` and ran SipHash for every lookup, insert and removal: ~6 % of the hostile
/// mix's replay, whose 199,492 alerts each look their key up and most open a window.
struct WindowTable {
    /// One slot: a key and its window, valid where `used` says so.
    struct Slot {
        var key: AggregationKey
        var entry: Aggregator.Entry
        /// What a free slot holds.
        static let free = Slot(key: AggregationKey(rule: 0, source: IPAddress(v4: 0), destination: IPAddress(v4: 0)),
                               entry: Aggregator.Entry(windowEnd: 0, order: 0, template: 0))
    }
    /// Slots, a power of two; at most half of them used.
    private(set) var slots: [Slot]
    private(set) var used: [Bool]
    private(set) var mask: Int
    /// This table's `TableHash` key.
    let hashKey: UInt64
    /// Windows held.
    private(set) var count = 0

    /// A table for `initial` windows before its first growth. Small by default: every slot is written when the table
    /// is made (an alert storm's table doubles a few times, each growth filing its windows again).
    init(initial: Int = 64, hashKey: UInt64 = TableHash.randomKey()) {
        self.hashKey = hashKey
        let n = max(16, (2 * initial).nextPowerOfTwo)
        slots = Array(repeating: Slot.free, count: n)
        used = Array(repeating: false, count: n)
        mask = n - 1
    }

    /// Where `key`'s probe starts.
    @inline(__always) func home(_ key: AggregationKey) -> Int { Int(truncatingIfNeeded: key.mixed(hashKey) >> 17) & mask }

    /// The slot holding `key`'s window, or nil.
    @inline(__always) func find(_ key: AggregationKey) -> Int? {
        var i = home(key)
        while used[i] {
            if slots[i].key == key { return i }
            i = (i &+ 1) & mask
        }
        return nil
    }

    /// The window in slot `i` (`find`), read or changed in place.
    subscript(i: Int) -> Aggregator.Entry {
        get { slots[i].entry }
        _modify { yield &slots[i].entry }
    }

    /// Files `entry` under `key`, which holds no window.
    mutating func insert(_ key: AggregationKey, _ entry: Aggregator.Entry) {
        if (count + 1) * 2 > slots.count { grow() }
        var i = home(key)
        while used[i] { i = (i &+ 1) & mask }
        slots[i] = Slot(key: key, entry: entry)
        used[i] = true
        count += 1
    }

    /// Removes the window in slot `i` and returns it. The slots after it in its run move back where their keys' probes
    /// would still find them, so that no probe stops early at the gap.
    mutating func remove(at i: Int) -> Aggregator.Entry {
        let removed = slots[i].entry
        var gap = i
        var j = (i &+ 1) & mask
        while used[j] {
            let h = home(slots[j].key)
            // Slot j may fill the gap when its home does not lie cyclically in (gap, j].
            if (j &- h) & mask >= (j &- gap) & mask {
                slots[gap] = slots[j]
                gap = j
            }
            j = (j &+ 1) & mask
        }
        used[gap] = false
        count -= 1
        return removed
    }

    /// Drops every window (the table keeps its size).
    mutating func removeAll() {
        for i in used.indices where used[i] { used[i] = false }
        count = 0
    }

    /// Doubles the table and files every window again.
    private mutating func grow() {
        let oldSlots = slots, oldUsed = used
        let n = slots.count * 2
        slots = Array(repeating: Slot.free, count: n)
        used = Array(repeating: false, count: n)
        mask = n - 1
        count = 0
        for i in oldUsed.indices where oldUsed[i] { insert(oldSlots[i].key, oldSlots[i].entry) }
    }
}
