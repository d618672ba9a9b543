import Testing
@testable import S7comm

/// The engine prefetches `perPacketStateBytes` of a flow's state (a constant, so that the prefetch folds): it must
/// reach the pending table's first keys, which a request or its acknowledgement scans.
@Test func perPacketStateBytesReachThePendingTablesFirstKeys() {
    #expect(S7commDissector.perPacketKeysEnd <= S7commDissector.perPacketStateBytes)
    #expect(S7commDissector.perPacketStateBytes <= MemoryLayout<S7commDissector>.size)
}
