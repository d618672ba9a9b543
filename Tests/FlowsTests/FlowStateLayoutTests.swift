import Testing
@testable import Flows

/// The flow state's layout is a performance contract (see `FlowState`): what a packet touches lies in the
/// first three cache lines of a slot, and slots are whole lines so that those lines do not straddle.
@Suite struct FlowStateLayoutTests {
    @Test func strideIsWholeCacheLines() {
        #expect(MemoryLayout<FlowState>.stride % 64 == 0, "stride \(MemoryLayout<FlowState>.stride): adjust FlowState.padding")
    }

    @Test func perPacketFieldsLieInTheFirstThreeCacheLines() {
        // Each stream's first 16 bytes (next sequence number, synchronised flag, held segments) are per packet.
        let responder = MemoryLayout<FlowState>.offset(of: \FlowState.responderStream)!
        #expect(responder + 16 <= 192, "responderStream at \(responder)")
        for offset in [MemoryLayout<FlowState>.offset(of: \FlowState.lastSeen)!,
                       MemoryLayout<FlowState>.offset(of: \FlowState.application)!,
                       MemoryLayout<FlowState>.offset(of: \FlowState.responderCarry)!,
                       MemoryLayout<FlowState>.offset(of: \FlowState.initiatorStream)!] {
            #expect(offset < responder)
        }
        #expect(MemoryLayout<FlowState>.offset(of: \FlowState.firstSeen)! >= responder)
    }

    @Test func slotsAreCacheLineAligned() {
        let table = FlowTable()
        #expect(UInt(bitPattern: table.slots) % 64 == 0)
    }
}
