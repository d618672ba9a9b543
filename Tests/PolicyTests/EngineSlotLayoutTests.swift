import Testing
@testable import Detection

/// What the detector's quiet check reads of an engine-slot entry lies in its first 16 bytes: entries are 16-aligned,
/// so those never straddle two cache lines, while the whole 32-byte entry does for every other slot (the array's
/// elements begin 48 bytes into a page).
@Test func quietFieldsLeadTheEngineSlotEntry() {
    typealias E = Detector.EngineSlot
    for offset in [MemoryLayout<E>.offset(of: \E.serial)! + 8, MemoryLayout<E>.offset(of: \E.lastUnit)! + 4,
                   MemoryLayout<E>.offset(of: \E.quietAccess)! + 2, MemoryLayout<E>.offset(of: \E.quietProtocol)! + 1,
                   MemoryLayout<E>.offset(of: \E.flags)! + 1] {
        #expect(offset <= 16)
    }
    #expect(MemoryLayout<E>.stride == 32)
    var e = E()
    e.reversed = true; e.protocolDenied = true
    #expect(e.reversed && e.protocolDenied && !e.hasConduitMasks)
    e.reversed = false
    #expect(!e.reversed && e.protocolDenied)
}

/// A tracked flow's cached verdict is fresh memory for each of up to 100,000 flows: the verdict and the two fields
/// beside it, with the zones derived from the verdict rather than stored (72 bytes with them).
@Test func aTrackedFlowsStateIsFiftySixBytes() {
    #expect(MemoryLayout<Detector.FlowState>.stride == 56)
    var s = Detector.FlowState(verdict: .noPolicy)
    #expect(s.initiatorZone == -1 && s.responderZone == -1)
    s.verdict.initiator.zone = 3; s.verdict.responder.zone = 5
    #expect(s.initiatorZone == 3 && s.responderZone == 5)
    s.verdict.reversed = true
    #expect(s.initiatorZone == 5 && s.responderZone == 3)
}
