import Testing
import Wire
@testable import Modbus

/// The engine prefetches `perPacketStateBytes` of a flow's state before its packets arrive (a constant, so that the
/// prefetch folds): it must still reach the end of the session's quiet part when fields move.
@Test func perPacketStateBytesReachTheEndOfTheQuietPart() {
    #expect(ModbusDissector.perPacketStateBytes == ModbusDissector.perPacketStateBytesFromLayout)
    #expect(ModbusDissector.perPacketStateBytes <= MemoryLayout<ModbusDissector>.size)
}

/// The whole state fits two cache lines (a 128-byte pool slot), and what a quiet polling delivery touches fits the
/// first: one line prefetched and brought in a packet.
@Test func stateFitsTwoLinesAndTheQuietPartOne() {
    #expect(MemoryLayout<ModbusDissector>.size <= 128)
    #expect(ModbusDissector.quietBytes <= 64)
    #expect(ModbusDissector.perPacketStateBytes == 64)
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

/// A quiet polling flow with the default limits, once set up, writes only the state's first line: requests (nothing
/// pending) and the answers to them, including a write's echo and a byte-count mismatch, leave the second untouched.
@Test func quietPollingWritesOnlyTheFirstLine() {
    let h = Harness(records: false)
    h.dissector = ModbusDissector()   // the default limits: nothing behind `tables`
    func secondLine() -> [UInt8] { withUnsafeBytes(of: h.dissector) { Array($0[64..<MemoryLayout<ModbusDissector>.size]) } }
    // The flow's first exchange sets up what is written once (sides, the table's first entry).
    h.send(adu(1, "03 0000 0002"))
    h.send(adu(1, "03 04 0001 0002"), from: .responder)
    let before = secondLine()
    for t in UInt16(2)...40 {
        h.send(adu(t, "03 0010 0002"))
        h.send(adu(t, t == 30 ? "03 02 0001" : "03 04 0001 0002"), from: .responder, after: 20_000)
        h.send(adu(t &+ 100, unit: 2, "06 0005 1234"), after: 30_000)
        h.send(adu(t &+ 100, unit: 2, "06 0005 1234"), from: .responder)
    }
    #expect(secondLine() == before)
    #expect(h.anomalyKinds == ["byte_count_mismatch"])
    #expect(h.operations.count == 79)
    #expect(h.dissector.session.pendingCount == 0)
}

/// Entry 0 filed on the quiet path keeps its place among later pipelined requests: the oldest times out first, and
/// its time is what the timeout is measured from.
@Test func quietEntryZeroIsTheOldestOfPipelinedRequests() {
    let h = Harness(records: false)
    h.dissector = ModbusDissector()
    h.send(adu(1, "03 0000 0002"))
    h.send(adu(2, "03 0000 0002"), after: 4_000_000)
    h.send(adu(3, "03 0000 0002"), after: 4_000_000)
    #expect(h.dissector.session.pendingCount == 3)
    #expect(h.dissector.session.oldestIndex() == 0)
    // 10.5 s after the first: it alone has timed out.
    h.send(adu(2, "03 04 0001 0002"), from: .responder, after: 2_500_000)
    #expect(h.dissector.session.pendingCount == 1)
    #expect(h.dissector.session.entry(2).inUse && !h.dissector.session.entry(0).inUse)
    #expect(h.anomalies.isEmpty)
}

/// Entry 0's fields kept in the second line (a sub-function here) are reset when a common request is filed after a
/// request that had them: entry 0 reads as that request alone.
@Test func quietEntryZeroDropsAnEarlierRequestsOtherFields() {
    let h = Harness(records: false)
    h.dissector = ModbusDissector()
    h.send(adu(1, "08 0000 A537"))
    #expect(h.dissector.session.entry(0).subfunction == 0)
    h.send(adu(1, "08 0000 A537"), from: .responder)
    h.send(adu(2, "03 0010 0002"))
    let e = h.dissector.session.entry(0)
    #expect(e.inUse && e.transactionID == 2 && e.rawFunctionCode == 3 && e.address == 0x10 && e.quantity == 2)
    #expect(e.subfunction == -1 && e.meiType == -1 && e.andMask == -1 && e.orMask == -1 && e.storedLength == 0)
    #expect(h.dissector.session.entries.count == 1)
}
