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
}
