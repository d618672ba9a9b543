import Testing
@testable import Flows

/// The recency queues' in-place radix sort orders entries by order whatever the orders' span: dense (a plant's
/// orders), sparse with outliers far off (a long run's oldest flow beside new ones; many narrow levels), and tiny.
@Test(arguments: [(2, 0), (33, 1), (1_000, 0), (1_000, 40), (5_000, 63), (100_000, 0), (100_000, 30)])
func recencyEntriesSortByOrder(count: Int, outlierBits: Int) {
    var random: UInt64 = 0x9E37_79B9_7F4A_7C15 &+ UInt64(count)
    func next() -> UInt64 {
        random = random &* 6364136223846793005 &+ 1442695040888963407
        return random >> 11
    }
    // Distinct orders: a shuffled dense range from a base, a few moved far up.
    var orders = (0..<count).map { UInt64(1_000_000 + $0 * 3) }
    for i in stride(from: orders.count - 1, to: 0, by: -1) { orders.swapAt(i, Int(next() % UInt64(i + 1))) }
    if outlierBits > 0 { for i in stride(from: 0, to: count, by: 97) { orders[i] = orders[i] | 1 << UInt64(outlierBits) } }
    let entries = UnsafeMutablePointer<RecencyEntry>.allocate(capacity: count)
    defer { entries.deallocate() }
    for i in 0..<count { entries[i] = RecencyEntry(order: orders[i], slot: Int32(i), generation: 7) }
    let bounds = UnsafeMutablePointer<Int>.allocate(capacity: 2 * RecencyEntry.radix * RecencyEntry.levels)
    defer { bounds.deallocate() }
    RecencyEntry.sortByOrder(entries, count: count, low: orders.min()!, high: orders.max()!, bounds: bounds)
    let sorted = orders.sorted()
    var same = true
    for i in 0..<count where entries[i].order != sorted[i] || orders[Int(entries[i].slot)] != entries[i].order { same = false }
    #expect(same)
}
