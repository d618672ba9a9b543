import Testing
import Wire
import Records
@testable import Detection

/// The aggregator's window table against a `Dictionary` (what it replaced), under random inserts, updates and
/// removals: the removals' backward shifts must leave every key where a probe finds it, across the table's end too,
/// and keys that differ in one field only must not pile up in one run.
@Suite struct WindowTableTests {
    /// Linear probing's invariant: every slot from a held key's home up to its slot is used (a probe for it never
    /// meets a free slot first).
    static func holdsInvariant(_ t: WindowTable) -> Bool {
        for i in t.used.indices where t.used[i] {
            var j = t.home(t.slots[i].key)
            while j != i { if !t.used[j] { return false }; j = (j + 1) & t.mask }
        }
        return t.slots.count >= 2 * t.count
    }

    /// The longest run of used slots (cyclically).
    static func longestRun(_ t: WindowTable) -> Int {
        var longest = 0, run = 0
        for i in 0..<(2 * t.used.count) { run = t.used[i % t.used.count] ? run + 1 : 0; longest = max(longest, run) }
        return min(longest, t.used.count)
    }

    @Test(arguments: [2, 40, 3_000])
    func holdsWhatADictionaryHolds(keys: Int) {
        var table = WindowTable(initial: 8)
        var model: [AggregationKey: Aggregator.Entry] = [:]
        var rng = SplitMix(seed: UInt64(keys))
        // Few distinct addresses and rules: keys collide in the table's home slots, runs form and are cut.
        func key() -> AggregationKey {
            AggregationKey(rule: UInt8(rng.next() % 4), source: IPAddress(v4: UInt32(rng.next() % UInt64(keys))),
                           destination: IPAddress(v4: UInt32(rng.next() % 3)))
        }
        for step in 0..<40_000 {
            let k = key()
            switch rng.next() % 3 {
            case 0:
                if let i = table.find(k) {
                    #expect(model[k] != nil)
                    table[i].repeats += 1
                    model[k]?.repeats += 1
                } else {
                    #expect(model[k] == nil)
                    let e = Aggregator.Entry(windowEnd: Int64(step), order: UInt64(step), template: Int32(step & 0xFFFF))
                    table.insert(k, e); model[k] = e
                }
            default:
                if let i = table.find(k) {
                    let e = table.remove(at: i)
                    #expect(model.removeValue(forKey: k).map { $0.order == e.order && $0.repeats == e.repeats } == true)
                } else {
                    #expect(model[k] == nil)
                }
            }
            #expect(table.count == model.count)
            if step % 97 == 0 { #expect(Self.holdsInvariant(table), "step \(step)") }
        }
        for (k, e) in model {
            let i = table.find(k)
            #expect(i != nil && table[i!].order == e.order && table[i!].repeats == e.repeats)
        }
        #expect(table.used.filter { $0 }.count == model.count)
        table.removeAll()
        #expect(table.count == 0 && model.keys.allSatisfy { table.find($0) == nil })
    }

    /// Runs that cross the table's end: keys whose probes start in its last two slots, removed in every order of five.
    @Test func runsAcrossTheEndStayFindable() {
        let probe = WindowTable(initial: 8, hashKey: 62443)   // 16 slots; held below half
        var atEnd: [AggregationKey] = []
        var n: UInt32 = 0
        while atEnd.count < 5 {
            let k = AggregationKey(rule: 1, source: IPAddress(v4: n), destination: IPAddress(v4: 7))
            if probe.home(k) >= probe.mask - 1 { atEnd.append(k) }
            n += 1
        }
        func orders(_ a: [Int]) -> [[Int]] {
            a.count <= 1 ? [a] : a.indices.flatMap { i in orders(Array(a[..<i] + a[(i + 1)...])).map { [a[i]] + $0 } }
        }
        for order in orders(Array(0..<5)) {
            var t = WindowTable(initial: 8, hashKey: 62443)
            for (i, k) in atEnd.enumerated() { t.insert(k, Aggregator.Entry(windowEnd: 0, order: UInt64(i), template: 0)) }
            #expect(t.mask == probe.mask && t.used[0], "the run wraps round")
            var left = Set(0..<5)
            for r in order {
                guard let i = t.find(atEnd[r]) else { Issue.record("key \(r) lost"); break }
                #expect(t.remove(at: i).order == UInt64(r))
                left.remove(r)
                #expect(Self.holdsInvariant(t), "order \(order)")
                for l in left { #expect(t.find(atEnd[l]).map { t[$0].order } == UInt64(l), "order \(order)") }
            }
        }
    }

    /// Keys that differ only in `extra` (a conduit-protocol alert per destination port of a scan) or only in the unit
    /// spread over the table: with their slot taken from bits those fields did not reach, all shared one run, and
    /// every lookup walked it.
    @Test(arguments: [(true, 4_096), (false, 256)])
    func keysDifferingInOneFieldSpread(byExtra: Bool, count: Int) {
        var t = WindowTable()
        let base = AggregationKey(rule: 9, source: IPAddress(v4: 0x0A00_0001), destination: IPAddress(v4: 0x0A00_0002), protocolCode: 0x86)
        for v in 0..<count {
            var k = base
            if byExtra { k.extra = Int64(v) } else { k.unit = Int32(v) }
            t.insert(k, Aggregator.Entry(windowEnd: 0, order: UInt64(v), template: 0))
        }
        #expect(t.count == count && Self.holdsInvariant(t))
        #expect(Self.longestRun(t) <= 64, "longest run \(Self.longestRun(t)) of \(t.slots.count) slots")
    }

    /// No difference between two keys cancels whatever the table's key: flipping a word's top bit and the next
    /// word's bits 63 and 31 (what one multiply and one fold let through unchanged) gives different hashes.
    @Test func aChosenDifferenceDoesNotCancelUnderEveryKey() {
        let a = AggregationKey(rule: 2, source: IPAddress(high: 0x2001_0DB8_0000_0001, low: 0x1234), destination: IPAddress(v4: 0x0A00_0002))
        var b = a
        b.source = IPAddress(high: a.source.high ^ (1 << 63), low: a.source.low ^ (1 << 63 | 1 << 31))
        var equal = 0
        for _ in 0..<1_000 { let k = TableHash.randomKey(); if a.mixed(k) == b.mixed(k) { equal += 1 } }
        #expect(equal == 0, "equal under \(equal) of 1,000 keys")
        // The flow cache's keys go through the same rounds (then the process's Hasher).
        func flow(_ ip: IPAddress) -> Detector.FlowKey {
            Detector.FlowKey(FlowContext(initiator: Endpoint(ip: ip, port: 40_000), responder: Endpoint(ip: IPAddress(v4: 0x0A00_0002), port: 502),
                                         transport: .tcp))
        }
        #expect(flow(a.source).hashValue != flow(b.source).hashValue)
    }

    /// Keys an attacker can craft to share one word before the tables' keyed hashing: IPv6 sources whose halves cancel
    /// out in a fold (`low = t ^ high · c`), to one destination. They spread over the window table and the address set
    /// as any keys do (before, all of them went into one run, and every lookup walked it).
    @Test func craftedIPv6SourcesSpread() {
        let c: UInt64 = 0x9E37_79B9_7F4A_7C15, t: UInt64 = 0x0123_4567_89AB_CDEF
        var table = WindowTable()
        var set = AddressSet(capacity: 16)
        for i in 0..<UInt64(4_096) {
            let high = 0x2001_0DB8_0000_0000 | i
            let source = IPAddress(high: high, low: t ^ (high &* c))
            table.insert(AggregationKey(rule: 2, source: source, destination: IPAddress(v4: 0x0A00_0002)),
                         Aggregator.Entry(windowEnd: 0, order: i, template: 0))
            set.insert(source)
        }
        #expect(table.count == 4_096 && set.count == 4_096 && Self.holdsInvariant(table))
        #expect(Self.longestRun(table) <= 64, "window table: longest run \(Self.longestRun(table))")
        var longest = 0, run = 0
        for i in 0..<(2 * set.used.count) { run = set.used[i % set.used.count] ? run + 1 : 0; longest = max(longest, run) }
        #expect(min(longest, set.used.count) <= 64, "address set: longest run \(longest)")
    }
}
