import Testing
import Wire
@testable import Modbus

/// The engine prefetches `perPacketStateBytes` of a flow's state before its packets arrive (a constant, so that the
/// prefetch folds): it must still reach the end of the session's entry 0 when fields move.
@Test func perPacketStateBytesReachTheEndOfEntryZero() {
    #expect(ModbusDissector.perPacketStateBytes == ModbusDissector.perPacketStateBytesFromLayout)
    #expect(ModbusDissector.perPacketStateBytes <= MemoryLayout<ModbusDissector>.size)
}

/// The whole state fits two cache lines (a 128-byte pool slot), entry 0 the first: a flow costs two lines of memory
/// the kernel zeroes at first touch, and a PDU reads both.
@Test func stateFitsTwoLines() {
    #expect(MemoryLayout<ModbusDissector>.size <= 128)
    #expect(MemoryLayout<PendingRequest>.size <= 64)
}

/// A session copied before it grows its tables (pipelining) keeps its own: the session is a value.
@Test func sessionTablesAreCopiedOnChange() {
    var s = ModbusSession()
    ByteView.with([0x03, 0x00, 0x01, 0x00, 0x02]) { pdu in
        let q = ModbusFields.common(pdu, direction: .request)!
        s.insertFirst(transactionID: 1, unitID: 1, fields: q, frame: 1, time: .zero)
        s.insert(transactionID: 2, unitID: 1, fields: q, keeping: nil, bytes: pdu, storing: false, frame: 2, time: .zero)
    }
    let copy = s
    s.remove(1)
    #expect(s.pendingCount == 1 && copy.pendingCount == 2)
    #expect(copy.entry(1).inUse && !s.entry(1).inUse)
}
