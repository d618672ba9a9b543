import Testing
import Wire
import Flows

/// The tests' flow hash key (the table only stores the hashes it is given).
private let testHashKey = FlowHashKey(value: 0x0123_4567_89AB_CDEF)

private func key(_ i: Int) -> FlowKey {
    FlowKey(lowIP: IPAddress(v4: 0x0A00_0001), highIP: IPAddress(v4: 0x0A00_0002), lowPort: UInt16(1000 + i),
            highPort: 502, ipProtocol: 6, vlan: 0)
}

private func state(_ k: FlowKey, _ t: Int64 = 0) -> FlowState {
    FlowState(key: k, initiatorIsLow: true, midstream: false, firstSeen: PacketTime(seconds: t, microseconds: 0),
              lastSeen: PacketTime(seconds: t, microseconds: 0), firstFrame: 1)
}

@Test func insertFindRemove() {
    var limits = FlowTableLimits(); limits.maximumFlows = 64
    let t = FlowTable(limits: limits)
    var slots: [Int32] = []
    for i in 0..<64 { slots.append(t.insert(state(key(i)), hash: key(i).fastHash(testHashKey))) }
    #expect(t.count == 64 && t.isFull)
    for i in 0..<64 { #expect(t.find(key(i), hash: key(i).fastHash(testHashKey)) == slots[i]) }
    // Remove every other flow: the rest must still be found (backward-shift deletion keeps probe chains).
    for i in stride(from: 0, to: 64, by: 2) { _ = t.remove(slots[i]) }
    for i in 0..<64 { #expect((t.find(key(i), hash: key(i).fastHash(testHashKey)) != nil) == (i % 2 == 1)) }
    #expect(t.count == 32)
}

@Test func collidingHashesStillResolve() {
    var limits = FlowTableLimits(); limits.maximumFlows = 16
    let t = FlowTable(limits: limits)
    // Every key on the same hash: a worst case for linear probing.
    var slots: [Int32] = []
    for i in 0..<10 { slots.append(t.insert(state(key(i)), hash: 42)) }
    _ = t.remove(slots[3])
    for i in 0..<10 { #expect((t.find(key(i), hash: 42) != nil) == (i != 3)) }
}

@Test func evictionCandidateIsLeastRecentlySeenClosedFirst() {
    var limits = FlowTableLimits(); limits.maximumFlows = 8
    let t = FlowTable(limits: limits)
    let a = t.insert(state(key(1)), hash: key(1).fastHash(testHashKey))
    let b = t.insert(state(key(2)), hash: key(2).fastHash(testHashKey))
    let c = t.insert(state(key(3)), hash: key(3).fastHash(testHashKey))
    #expect(t.evictionCandidate == a)
    t.touch(a)
    #expect(t.evictionCandidate == b)
    t.markClosed(c)
    #expect(t.evictionCandidate == c)
    _ = t.remove(c)
    #expect(t.evictionCandidate == b)
}

/// TCP and other flows are listed apart (their idle timeouts differ), and eviction still takes the least recently
/// seen of all.
@Test func activeFlowsAreListedByTransportAndEvictedByRecency() {
    var limits = FlowTableLimits(); limits.maximumFlows = 8
    let t = FlowTable(limits: limits)
    var udp = key(2); udp.ipProtocol = 17
    let a = t.insert(state(key(1)), hash: key(1).fastHash(testHashKey))
    let b = t.insert(state(udp), hash: udp.fastHash(testHashKey))
    let c = t.insert(state(key(3)), hash: key(3).fastHash(testHashKey))
    #expect(t.oldest(.activeTCP) == a && t.oldest(.activeOther) == b && t.evictionCandidate == a)
    t.touch(a)
    #expect(t.oldest(.activeTCP) == c && t.oldest(.activeOther) == b && t.evictionCandidate == b)
    t.touch(b)
    #expect(t.evictionCandidate == c)
    t.markClosed(a)
    #expect(t.oldest(.closed) == a && t.evictionCandidate == a)
}

/// A reference for the flow table's recency lists: each list an array, least recently seen first.
private struct RecencyModel {
    var lists: [[Int32]] = [[], [], []]       // by `LRUList` raw value
    var order: [Int32: Int] = [:]             // when each flow last moved to the front
    var clock = 0
    mutating func moveToFront(_ s: Int32, list l: Int) {
        for i in 0..<3 { lists[i].removeAll { $0 == s } }
        lists[l].append(s); order[s] = clock; clock += 1
    }
    func list(of s: Int32) -> Int { lists.firstIndex { $0.contains(s) }! }
    mutating func remove(_ s: Int32) { for i in 0..<3 { lists[i].removeAll { $0 == s } }; order[s] = nil }
    func oldest(_ l: LRUList) -> Int32? { lists[Int(l.rawValue)].first }
    func oldestActive() -> Int32? {
        switch (oldest(.activeTCP), oldest(.activeOther)) {
        case let (a?, b?): return order[a]! < order[b]! ? a : b
        case let (a, b): return a ?? b
        }
    }
    var evictionCandidate: Int32? { oldest(.closed) ?? oldestActive() }

    /// Inserts `k`'s flow into `table` and the model alike; its slot.
    mutating func insert(_ k: FlowKey, at t: Int64, into table: FlowTable) -> Int32 {
        let s = table.insert(state(k, t), hash: k.fastHash(testHashKey))
        moveToFront(s, list: Int((k.ipProtocol == 6 ? LRUList.activeTCP : .activeOther).rawValue))
        return s
    }
    /// Closes flow `s` in `table` and the model alike (a closed flow stays where it is).
    mutating func close(_ s: Int32, in table: FlowTable) {
        table.markClosed(s)
        if list(of: s) != Int(LRUList.closed.rawValue) { moveToFront(s, list: Int(LRUList.closed.rawValue)) }
    }
    /// The flow to end: `any`, or with `evicting` the eviction candidate, which must be the model's (nil, with the
    /// issue recorded, when not: a wrong candidate may be a slot already removed, and removing it twice would not return).
    func ending(_ any: Int32, evicting: Bool, in table: FlowTable, round: Int) -> Int32? {
        guard evicting else { return any }
        guard let c = table.evictionCandidate, c == evictionCandidate else {
            Issue.record("round \(round): eviction candidate \(String(describing: table.evictionCandidate)), model \(String(describing: evictionCandidate))")
            return nil
        }
        return c
    }
}

/// The recency lists keep the order of a plain model of them (arrays, least recently seen first) through inserts,
/// touches at once and deferred (`touchLater`, also in runs longer than its buffer), closes, and removals of any flow.
@Test(arguments: [48, 3_000]) func recencyOrderIsThatOfAPlainModel(maximumFlows: Int) {
    var limits = FlowTableLimits(); limits.maximumFlows = maximumFlows
    let table = FlowTable(limits: limits)
    var model = RecencyModel()
    var random: UInt64 = 0x9E37_79B9_7F4A_7C15
    func next(_ n: Int) -> Int {
        random = random &* 6364136223846793005 &+ 1442695040888963407
        return Int((random >> 33) % UInt64(n))
    }
    func agree() -> Bool {
        table.oldest(.activeTCP) == model.oldest(.activeTCP) && table.oldest(.activeOther) == model.oldest(.activeOther)
            && table.oldest(.closed) == model.oldest(.closed) && table.oldest(closed: false) == model.oldestActive()
    }
    var live: [Int32] = [], nextKey = 0
    for round in 0..<60_000 {
        // The table grows to a few thousand flows, then shrinks and grows again (rings grow and compact).
        let growing = (round / 15_000) % 2 == 0
        switch next(100) {
        case 0..<(growing ? 20 : 4) where !table.isFull:
            // TCP and UDP flows: two active lists, merged by recency for eviction.
            var k = key(nextKey); nextKey += 1
            if next(2) == 0 { k.ipProtocol = 17 }
            live.append(model.insert(k, at: 0, into: table))
        case 20..<22 where !live.isEmpty:
            model.close(live[next(live.count)], in: table)
        case 22..<(growing ? 24 : 36) where !live.isEmpty:
            // The eviction candidate, or any flow (a flow ends on its own packet too).
            guard let s = model.ending(live[next(live.count)], evicting: next(2) == 0, in: table, round: round) else { return }
            _ = table.remove(s); model.remove(s)
            live.removeAll { $0 == s }
        case 36..<38:
            guard agree() else { Issue.record("round \(round): the lists differ from the model"); return }
        default:
            guard !live.isEmpty else { continue }
            // Now and then a run of deferred touches longer than the pending buffer.
            for _ in 0..<(next(1_000) == 0 ? 3_000 : 1) {
                let s = live[next(live.count)], seen = next(3) != 0
                if next(2) == 0 { table.touchLater(s, if: seen) } else if seen { table.touch(s) }
                if seen { model.moveToFront(s, list: model.list(of: s)) }
            }
        }
    }
    #expect(agree())
    // Ending all flows at once takes them in the order draining them one by one does.
    let closedOrder = model.lists[Int(LRUList.closed.rawValue)]
    let activeOrder = (model.lists[Int(LRUList.activeTCP.rawValue)] + model.lists[Int(LRUList.activeOther.rawValue)]).sorted { model.order[$0]! < model.order[$1]! }
    #expect(table.endOrder(closed: true) == closedOrder && table.endOrder(closed: false) == activeOrder)
    // Both drain in the same least-recently-seen order.
    while let s = model.evictionCandidate {
        guard table.evictionCandidate == s else { Issue.record("drain: \(String(describing: table.evictionCandidate)), model \(s)"); return }
        _ = table.remove(s); model.remove(s)
    }
    #expect(table.evictionCandidate == nil)
}

/// Idle queries (`oldest(_:idle:at:)`, what a sweep asks) answer as the plain model's least recently seen flow and its
/// last-seen second would, also when packet time goes back (reported with `clockWentBack`, as the engine does):
/// flows moved to the front at an earlier second then sit in front of later ones, and the table must look past a
/// queue's first entry. Touches follow the engine's rule (a move on a flow's first packet in a second).
@Test(arguments: [(300, 0), (300, 200), (5_000, 50)]) func idleQueriesAreThoseOfAPlainModel(maximumFlows: Int, backwardsEvery: Int) {
    var limits = FlowTableLimits(); limits.maximumFlows = maximumFlows
    let table = FlowTable(limits: limits)
    var model = RecencyModel()
    var random: UInt64 = 0x2545_F491_4F6C_DD1D &+ UInt64(backwardsEvery)
    func next(_ n: Int) -> Int {
        random = random &* 6364136223846793005 &+ 1442695040888963407
        return Int((random >> 33) % UInt64(n))
    }
    var now: Int64 = 1_000, live: [Int32] = [], nextKey = 0
    let timeouts: [LRUList: Int64] = [.activeTCP: 40, .activeOther: 12, .closed: 20]
    func lastSeen(_ s: Int32) -> Int64 { table.slots[Int(s)].lastSeen.seconds }
    // The engine's packet step for flow `s` at `now`.
    func see(_ s: Int32, deferred: Bool) {
        let seen = lastSeen(s) != now
        if deferred { table.touchLater(s, if: seen) } else if seen { table.touch(s) }
        if seen { model.moveToFront(s, list: model.list(of: s)) }
        table.slots[Int(s)].lastSeen = PacketTime(seconds: now, microseconds: 0)
    }
    func expected(_ l: LRUList) -> Int32? {
        guard let s = model.oldest(l), lastSeen(s) + timeouts[l]! <= now else { return nil }
        return s
    }
    for round in 0..<40_000 {
        switch next(1_000) {
        case 0..<8:
            // The clock: mostly forward a second or a few, now and then back.
            if backwardsEvery > 0 && next(backwardsEvery) == 0 {
                now -= Int64(1 + next(30)); table.clockWentBack()
            } else {
                now += Int64(1 + next(next(4) == 0 ? 25 : 2))
            }
        case 8..<20:
            // A sweep: every list's idle flows, oldest first, as long as the model has any.
            for l in [LRUList.closed, .activeTCP, .activeOther] {
                while true {
                    let got = table.oldest(l, idle: timeouts[l]!, at: now)
                    guard got == expected(l) else {
                        Issue.record("round \(round): idle \(l) \(String(describing: got)), model \(String(describing: expected(l)))")
                        return
                    }
                    guard let s = got else { break }
                    _ = table.remove(s); model.remove(s); live.removeAll { $0 == s }
                }
            }
        case 20..<(live.count < maximumFlows * 3 / 4 ? 320 : 200) where !table.isFull:
            var k = key(nextKey); nextKey += 1
            if next(3) == 0 { k.ipProtocol = 17 }
            live.append(model.insert(k, at: now, into: table))
        case 320..<340 where !live.isEmpty:
            // A packet that closes its flow.
            let s = live[next(live.count)]
            see(s, deferred: true)
            model.close(s, in: table)
        case 340..<360 where !live.isEmpty:
            // An eviction or a flow ending on its own packet.
            guard let s = model.ending(live[next(live.count)], evicting: next(2) == 0, in: table, round: round) else { return }
            _ = table.remove(s); model.remove(s); live.removeAll { $0 == s }
        default:
            guard !live.isEmpty else { continue }
            see(live[next(live.count)], deferred: next(4) != 0)
        }
    }
    while let s = model.evictionCandidate {
        guard table.evictionCandidate == s else { Issue.record("drain: \(String(describing: table.evictionCandidate)), model \(s)"); return }
        _ = table.remove(s); model.remove(s)
    }
    #expect(table.evictionCandidate == nil)
}

@Test func prefetchHintsNameTheFlowsSlotOrNothing() {
    var limits = FlowTableLimits(); limits.maximumFlows = 256
    let t = FlowTable(limits: limits)
    var slots: [Int32] = []
    for i in 0..<200 { slots.append(t.insert(state(key(i)), hash: key(i).fastHash(testHashKey))) }
    // The hint finds the slot by the hash's tag alone (no key compare): with distinct hashes, the flow's own slot.
    for i in 0..<200 {
        t.prefetchIndex(hash: key(i).fastHash(testHashKey))
        #expect(t.prefetchSlot(hash: key(i).fastHash(testHashKey)) == slots[i])
    }
    #expect(t.prefetchSlot(hash: key(999).fastHash(testHashKey)) == -1)
    // The pipeline: a packet's hash goes in `distance` positions ahead; its slot comes out three quarters of the
    // way later (index, then state, then the answer), for packets whose hash was known.
    var answers: [Int32] = []
    for position in UInt64(1)...UInt64(40) {
        let i = Int(position % 200)
        let hash: UInt64? = position % 5 == 0 ? nil : key(i).fastHash(testHashKey)
        answers.append(t.prefetchAhead(hash: hash, position: position &+ 8, distance: 8))
    }
    for step in UInt64(7)...UInt64(40) {
        let entered = step - 6   // the step that entered the packet answered now (8 ahead then, 2 ahead now)
        let expected: Int32 = entered % 5 == 0 ? -1 : slots[Int(entered % 200)]
        #expect(answers[Int(step) - 1] == expected, "step \(step)")
    }
    #expect(t.prefetchAhead(hash: nil, position: 1_000, distance: 8) == -1)
}

/// A flow that ends while its packets are in the prefetch pipeline: `candidate` may still name its slot, but the
/// slot's key is then `vacantKey` (no packet's) until a new flow takes the slot, so the caller's key comparison
/// sends the packet to `find`, never to the ended flow's state.
@Test func candidateOfAnEndedFlowNamesAVacantSlot() {
    var limits = FlowTableLimits(); limits.maximumFlows = 64
    let t = FlowTable(limits: limits)
    var slots: [Int32] = []
    for i in 0..<20 { slots.append(t.insert(state(key(i)), hash: key(i).fastHash(testHashKey))) }
    // Step n enters a packet of flow n - 1 as position n + 8; it is looked up at step n + 4.
    for step in UInt64(1)...UInt64(12) {
        _ = t.prefetchAhead(hash: key(Int(step - 1)).fastHash(testHashKey), position: step &+ 8, distance: 8)
    }
    let position: UInt64 = 9 + 8   // flow 8's packet: entered at step 9, not looked up before step 13
    #expect(t.candidate(at: position) == -1)
    _ = t.prefetchAhead(hash: nil, position: 13 &+ 8, distance: 8)
    #expect(t.candidate(at: position) == slots[8])
    let ended = t.remove(slots[8])
    #expect(ended.key == key(8))
    #expect(t.candidate(at: position) == slots[8])
    #expect(t.slots[Int(slots[8])].key == FlowTable.vacantKey)
    #expect(t.slots[Int(slots[8])].key != key(8))
    #expect(t.find(key(8), hash: key(8).fastHash(testHashKey)) == nil)
    // A new flow with the same key takes the freed slot: the candidate is that flow, the one `find` returns.
    let again = t.insert(state(key(8)), hash: key(8).fastHash(testHashKey))
    #expect(again == slots[8])
    #expect(t.slots[Int(t.candidate(at: position))].key == key(8))
    #expect(t.find(key(8), hash: key(8).fastHash(testHashKey)) == again)
}

/// Flows are moved into and out of their slots (no copies): a flow's buffers go with the state `remove` hands out, the
/// freed slot keeps only `vacantKey`, and a reused slot takes the next flow's state whole. The table then goes with a
/// live flow and a free slot in it (its deinit releases the live one only).
@Test func flowStatesMoveInAndOutOfTheirSlots() {
    var limits = FlowTableLimits(); limits.maximumFlows = 16
    let t = FlowTable(limits: limits)
    var s = state(key(1))
    s.initiatorCarry = [1, 2, 3]
    let slot = t.insert(s, hash: key(1).fastHash(testHashKey))
    #expect(t.slots[Int(slot)].initiatorCarry == [1, 2, 3] && t.slots[Int(slot)].key == key(1))
    let removed = t.remove(slot)
    #expect(removed.initiatorCarry == [1, 2, 3] && removed.key == key(1))
    #expect(t.slots[Int(slot)].key == FlowTable.vacantKey)
    let again = t.insert(state(key(2)), hash: key(2).fastHash(testHashKey))
    #expect(again == slot && t.slots[Int(again)].key == key(2) && t.slots[Int(again)].initiatorCarry.isEmpty)
    let other = t.insert(state(key(3)), hash: key(3).fastHash(testHashKey))
    _ = t.remove(other)
    #expect(t.count == 1 && t.find(key(2), hash: key(2).fastHash(testHashKey)) == again && t.find(key(3), hash: key(3).fastHash(testHashKey)) == nil)
}
