import Testing
@testable import Flows
import Wire

/// The flow state's layout is a performance contract (see `FlowState`): what an in-order packet of an established
/// flow touches lies in the first two cache lines of a slot, the streams (general path only) in the next, and
/// slots are whole lines so that those lines do not straddle.
@Suite struct FlowStateLayoutTests {
    @Test func strideIsWholeCacheLines() {
        #expect(MemoryLayout<FlowState>.stride % 64 == 0, "stride \(MemoryLayout<FlowState>.stride): pad FlowState")
    }

    /// Three lines: each flow's state is fresh memory the kernel zeroes (25.6 MB of it for 100,000 flows at four lines).
    /// Two streams fit in the third line with the per-flow fields only at 16 bytes each (their rarely used parts in a
    /// `TCPStreamBacklog`).
    @Test func aFlowTakesThreeCacheLines() {
        #expect(MemoryLayout<FlowState>.stride == 192)
        #expect(MemoryLayout<TCPStream>.size <= 16)
    }

    @Test func perPacketFieldsLieInTheFirstTwoCacheLines() {
        // Ends of the fields the engine's one-pass path and the dissectors' delivery read or write.
        let ends = [MemoryLayout<FlowState>.offset(of: \FlowState.key)! + MemoryLayout<FlowKey>.size,
                    MemoryLayout<FlowState>.offset(of: \FlowState.lastSeen)! + MemoryLayout<PacketTime>.size,
                    MemoryLayout<FlowState>.offset(of: \FlowState.application)! + 1,
                    MemoryLayout<FlowState>.offset(of: \FlowState.streamSummary)! + 1,
                    MemoryLayout<FlowState>.offset(of: \FlowState.applicationSlot)! + 4,
                    MemoryLayout<FlowState>.offset(of: \FlowState.inOrder)! + 8,
                    MemoryLayout<FlowState>.offset(of: \FlowState.checksumSides)! + 1,
                    MemoryLayout<FlowState>.offset(of: \FlowState.serial)! + 8,
                    MemoryLayout<FlowState>.offset(of: \FlowState.initiatorCarry)! + 8,
                    MemoryLayout<FlowState>.offset(of: \FlowState.responderCarry)! + 8]
        for end in ends { #expect(end <= 128, "a per-packet field ends at \(end)") }
        #expect(MemoryLayout<FlowState>.offset(of: \FlowState.initiatorStream)! >= 128)
    }

    @Test func perFlowFieldsAndStreamsLieInTheLineFlowTablePrefetches() {
        // `FlowTable.prefetchFlowLines` and `prefetchStreamLines` ask for the third line (from 128), whose fields
        // a dissected flow's records and the engine's general path read.
        let fields = [(MemoryLayout<FlowState>.offset(of: \FlowState.firstSeen)!, MemoryLayout<PacketTime>.size),
                      (MemoryLayout<FlowState>.offset(of: \FlowState.firstFrame)!, 8),
                      (MemoryLayout<FlowState>.offset(of: \FlowState.initiatorStream)!, MemoryLayout<TCPStream>.size),
                      (MemoryLayout<FlowState>.offset(of: \FlowState.responderStream)!, MemoryLayout<TCPStream>.size)]
        for (offset, size) in fields {
            #expect(offset >= 128 && offset + size <= 192, "a field at \(offset) of \(size) bytes")
        }
    }

    @Test func slotsAreCacheLineAligned() {
        let table = FlowTable()
        #expect(UInt(bitPattern: table.slots) % 64 == 0)
    }
}
