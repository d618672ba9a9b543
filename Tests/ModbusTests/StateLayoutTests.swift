import Testing
@testable import Modbus

/// The engine prefetches `perPacketStateBytes` of a flow's state before its packets arrive (a constant, so that the
/// prefetch folds): it must still reach the end of the session's entry 0 when fields move.
@Test func perPacketStateBytesReachTheEndOfEntryZero() {
    #expect(ModbusDissector.perPacketStateBytes == ModbusDissector.perPacketStateBytesFromLayout)
    #expect(ModbusDissector.perPacketStateBytes <= MemoryLayout<ModbusDissector>.size)
}
