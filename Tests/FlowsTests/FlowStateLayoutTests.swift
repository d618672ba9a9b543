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

    /// Four lines: each flow's state is fresh memory the kernel zeroes (32 MiB of it for 100,000 flows at five lines).
    /// Two streams fit in the third and fourth lines with the per-flow fields only at 45 bytes each.
    @Test func aFlowTakesFourCacheLines() {
        #expect(MemoryLayout<FlowState>.stride == 256)
        #expect(MemoryLayout<TCPStream>.size <= 45)
    }

    @Test func perPacketFieldsLieInTheFirstTwoCacheLines() {
        // Ends of the fields the engine's one-pass path and the dissectors' delivery read or write.
        let ends = [MemoryLayout<FlowState>.offset(of: \FlowState.key)! + MemoryLayout<FlowKey>.size,
                    MemoryLayout<FlowState>.offset(of: \FlowState.lastSeen)! + MemoryLayout<PacketTime>.size,
                    MemoryLayout<FlowState>.offset(of: \FlowState.application)! + 1,
                    MemoryLayout<FlowState>.offset(of: \FlowState.streamSummary)! + 1,
                    MemoryLayout<FlowState>.offset(of: \FlowState.applicationSlot)! + 4,
                    MemoryLayout<FlowState>.offset(of: \FlowState.inOrder)! + 8,
                    MemoryLayout<FlowState>.offset(of: \FlowState.serial)! + 8,
                    MemoryLayout<FlowState>.offset(of: \FlowState.initiatorCarry)! + 8,
                    MemoryLayout<FlowState>.offset(of: \FlowState.responderCarry)! + 8]
        for end in ends { #expect(end <= 128, "a per-packet field ends at \(end)") }
        #expect(MemoryLayout<FlowState>.offset(of: \FlowState.initiatorStream)! >= 128)
    }

    @Test func perFlowFieldsLieFromTheLineFlowTablePrefetchesFrom() {
        // `FlowTable.prefetchFlowLines` asks for the lines from 192 on for a dissected flow, whose records read these.
        for offset in [MemoryLayout<FlowState>.offset(of: \FlowState.firstSeen)!,
                       MemoryLayout<FlowState>.offset(of: \FlowState.firstFrame)!] {
            #expect(offset >= 192, "a per-flow field at \(offset)")
        }
    }

    @Test func slotsAreCacheLineAligned() {
        let table = FlowTable()
        #expect(UInt(bitPattern: table.slots) % 64 == 0)
    }
}
