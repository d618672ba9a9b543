import Testing
import Wire
import Flows

private func key(_ i: Int) -> FlowKey {
    FlowKey(lowIP: IPAddress(v4: 0x0A00_0001), highIP: IPAddress(v4: 0x0A00_0002), lowPort: UInt16(1000 + i),
            highPort: 502, ipProtocol: 6, vlan: 0)
}

private func state(_ k: FlowKey, _ t: Int64 = 0) -> FlowState {
    FlowState(key: k, initiatorIsLow: true, midstream: false, firstSeen: PacketTime(seconds: t, microseconds: 0),
              lastSeen: PacketTime(seconds: t, microseconds: 0), firstFrame: 1, communityID: InlineText())
}

@Test func insertFindRemove() {
    var limits = FlowTableLimits(); limits.maximumFlows = 64
    let t = FlowTable(limits: limits)
    var slots: [Int32] = []
    for i in 0..<64 { slots.append(t.insert(state(key(i)), hash: key(i).fastHash)) }
    #expect(t.count == 64 && t.isFull)
    for i in 0..<64 { #expect(t.find(key(i), hash: key(i).fastHash) == slots[i]) }
    // Remove every other flow: the rest must still be found (backward-shift deletion keeps probe chains).
    for i in stride(from: 0, to: 64, by: 2) { _ = t.remove(slots[i]) }
    for i in 0..<64 { #expect((t.find(key(i), hash: key(i).fastHash) != nil) == (i % 2 == 1)) }
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
    let a = t.insert(state(key(1)), hash: key(1).fastHash)
    let b = t.insert(state(key(2)), hash: key(2).fastHash)
    let c = t.insert(state(key(3)), hash: key(3).fastHash)
    #expect(t.evictionCandidate == a)
    t.touch(a)
    #expect(t.evictionCandidate == b)
    t.markClosed(c)
    #expect(t.evictionCandidate == c)
    _ = t.remove(c)
    #expect(t.evictionCandidate == b)
}

@Test func prefetchHintsNameTheFlowsSlotOrNothing() {
    var limits = FlowTableLimits(); limits.maximumFlows = 256
    let t = FlowTable(limits: limits)
    var slots: [Int32] = []
    for i in 0..<200 { slots.append(t.insert(state(key(i)), hash: key(i).fastHash)) }
    // The hint finds the slot by the hash's tag alone (no key compare): with distinct hashes, the flow's own slot.
    for i in 0..<200 {
        t.prefetchIndex(hash: key(i).fastHash)
        #expect(t.prefetchSlot(hash: key(i).fastHash) == slots[i])
    }
    #expect(t.prefetchSlot(hash: key(999).fastHash) == -1)
    // The pipeline: a packet's hash goes in `distance` positions ahead; its slot comes out three quarters of the
    // way later (index, then state, then the answer), for packets whose hash was known.
    var answers: [Int32] = []
    for position in UInt64(1)...UInt64(40) {
        let i = Int(position % 200)
        let hash: UInt64? = position % 5 == 0 ? nil : key(i).fastHash
        answers.append(t.prefetchAhead(hash: hash, position: position &+ 8, distance: 8))
    }
    for step in UInt64(7)...UInt64(40) {
        let entered = step - 6   // the step that entered the packet answered now (8 ahead then, 2 ahead now)
        let expected: Int32 = entered % 5 == 0 ? -1 : slots[Int(entered % 200)]
        #expect(answers[Int(step) - 1] == expected, "step \(step)")
    }
    #expect(t.prefetchAhead(hash: nil, position: 1_000, distance: 8) == -1)
}
