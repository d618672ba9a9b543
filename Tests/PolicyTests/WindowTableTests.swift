import Testing
import Wire
@testable import Detection

/// The aggregator's window table against a `Dictionary` (what it replaced), under random inserts, updates and
/// removals: the removals' backward shifts must leave every key where a probe finds it.
@Suite struct WindowTableTests {
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
        }
        for (k, e) in model {
            let i = table.find(k)
            #expect(i != nil && table[i!].order == e.order && table[i!].repeats == e.repeats)
        }
        #expect(table.occupied.count == model.count)
        table.removeAll()
        #expect(table.count == 0 && model.keys.allSatisfy { table.find($0) == nil })
    }
}
