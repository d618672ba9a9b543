import Testing
import Wire
@testable import Detection

/// The scan counter's open-addressing table against the `Dictionary` it replaced, kept here as the model.
@Suite struct DistinctCounterTests {
    struct Model {
        struct Window { var start: Int64; var values: [Int64]; var count: Int; var fired: Bool }
        let window: Int64, capacity: Int
        var table: [AggregationKey: Window] = [:]
        var resets: UInt64 = 0

        mutating func add(_ key: AggregationKey, value: Int64, distinct: Bool, threshold: Int, time: PacketTime) -> Bool {
            let t = time.totalMicroseconds
            if var w = table[key] {
                defer { table[key] = w }
                if t - w.start >= window { w.start = t; w.values = []; w.count = 0; w.fired = false }
                if distinct {
                    if w.values.contains(value) { return false }
                    if w.values.count < threshold { w.values.append(value) }
                }
                w.count += 1
                if !w.fired && w.count >= threshold { w.fired = true; return true }
                return false
            }
            if table.count >= capacity { table.removeAll(); resets += 1 }
            table[key] = Window(start: t, values: distinct ? [value] : [], count: 1, fired: threshold <= 1)
            return threshold <= 1
        }
    }

    @Test(arguments: [16, 100, 5_000])
    func answersWhatTheDictionaryAnswered(capacity: Int) {
        var counter = DistinctCounter(windowMicroseconds: 1_000_000, capacity: capacity)
        var model = Model(window: 1_000_000, capacity: max(16, capacity))
        var x: UInt64 = 0x9E37_79B9
        var fired = 0
        for step in 0..<60_000 {
            x = x &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let key = AggregationKey(rule: UInt8(x >> 60), source: IPAddress(v4: UInt32(truncatingIfNeeded: x >> 20) % 300),
                                     destination: IPAddress(v4: UInt32(truncatingIfNeeded: x >> 40) % 7), unit: Int32(x >> 61))
            let value = Int64(x >> 33) % 9, distinct = x & 1 == 0, threshold = Int(x >> 50) % 6 + 1
            let time = PacketTime(seconds: Int64(step / 700), microseconds: Int32(step % 700))
            let a = counter.add(key, value: value, distinct: distinct, threshold: threshold, time: time)
            let b = model.add(key, value: value, distinct: distinct, threshold: threshold, time: time)
            #expect(a == b, "step \(step)")
            if a != b { return }
            if a { fired += 1 }
        }
        #expect(counter.resets == model.resets)
        #expect(counter.count == model.table.count)
        #expect(fired > 100)
        if capacity < 1_000 { #expect(counter.resets > 0) }
    }

    /// Few keys and values, time walking across thousands of windows, thresholds 0 to 4: window resets of keys that
    /// hold a list (their first value kept in place, a list from the second) come by the thousand, next to capacity
    /// resets, and every answer is the model's.
    @Test(arguments: [(16, 3), (16, 40), (20, 25), (1_000, 60)])
    func answersWhatTheDictionaryAnsweredAcrossWindows(capacity: Int, keys: Int) {
        var resetsWithList = 0
        for seed in UInt64(1)...20 {
            var counter = DistinctCounter(windowMicroseconds: 1_000, capacity: capacity)
            var model = Model(window: 1_000, capacity: max(16, capacity))
            var x: UInt64 = seed &* 0x9E37_79B9_7F4A_7C15
            var t: Int64 = 0
            for step in 0..<20_000 {
                x = x &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                let r = x >> 11
                let key = AggregationKey(rule: UInt8(r % 3), source: IPAddress(v4: UInt32((r >> 8) % UInt64(keys))), destination: IPAddress(v4: 1))
                let value = Int64((r >> 20) % 4), distinct = (r >> 30) % 5 != 0, threshold = Int((r >> 33) % 5)
                t += Int64((r >> 40) % 300)
                let time = PacketTime(seconds: t / 1_000_000, microseconds: Int32(t % 1_000_000))
                let i = counter.find(key)
                if counter.slots[i].used && t - counter.slots[i].window.start >= 1_000 && counter.slots[i].window.list >= 0 { resetsWithList += 1 }
                let a = counter.add(key, value: value, distinct: distinct, threshold: threshold, time: time)
                let b = model.add(key, value: value, distinct: distinct, threshold: threshold, time: time)
                #expect(a == b, "seed \(seed) step \(step)")
                if a != b { return }
            }
            #expect(counter.resets == model.resets)
        }
        #expect(resetsWithList > 100)
    }

    /// A key's list freed by a capacity reset and taken by another key, then the first key back, then window resets:
    /// answered as the model answers.
    @Test func aListFreedByACapacityResetServesAnotherKey() {
        var counter = DistinctCounter(windowMicroseconds: 1_000_000, capacity: 16)
        var model = Model(window: 1_000_000, capacity: 16)
        func key(_ n: UInt32) -> AggregationKey { AggregationKey(rule: 1, source: IPAddress(v4: n), destination: IPAddress(v4: 9)) }
        var calls = 0
        func add(_ k: AggregationKey, _ v: Int64, _ threshold: Int, _ second: Int64) {
            let t = PacketTime(seconds: second, microseconds: 0)
            let a = counter.add(k, value: v, distinct: true, threshold: threshold, time: t)
            let b = model.add(k, value: v, distinct: true, threshold: threshold, time: t)
            #expect(a == b, "call \(calls)")
            calls += 1
        }
        for n in 0..<16 { add(key(UInt32(n)), 1, 3, 0); add(key(UInt32(n)), 2, 3, 0) }   // 16 keys, each with a list
        add(key(100), 5, 3, 0)                                                          // capacity reset: lists freed
        add(key(100), 6, 3, 0); add(key(100), 7, 3, 0)                                  // takes a freed list, fires
        add(key(0), 1, 3, 0); add(key(0), 1, 3, 0); add(key(0), 2, 3, 0); add(key(0), 3, 3, 0)
        add(key(100), 5, 3, 2); add(key(100), 5, 3, 2); add(key(100), 8, 3, 2); add(key(100), 9, 3, 2)   // window reset
        add(key(0), 4, 1, 5); add(key(0), 4, 1, 5); add(key(0), 3, 1, 5)
        #expect(counter.resets == model.resets && counter.resets == 1)
    }
}
