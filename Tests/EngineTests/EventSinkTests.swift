import Testing
import Wire
import Records

/// The sink's raw blocks: a burst of operations in one delivery grows the operation block; the PDU counters in
/// their own block must survive that (growing once freed the counter block, so counts went to freed memory and
/// the sink's deinit freed it twice).
@Test func operationBurstKeepsPDUCountsAndOrder() {
    do {
        let sink = EventSink()
        sink.countPDU(.modbus)
        for i in 0..<300 {
            sink.emit(Operation(appProtocol: .modbus, access: .read, functionCode: UInt16(i), function: "read"), sender: .initiator)
            sink.countPDU(.modbus)
        }
        #expect(sink.operationCount == 300)
        #expect(sink.pduCounts[Int(AppProtocol.modbus.rawValue)] == 301)
        var codes: [UInt16] = []
        sink.drainOperations { codes.append($0.functionCode) }
        #expect(codes == (0..<300).map { UInt16($0) })
        #expect(sink.operationCount == 0)
    }
    // A second sink after the first is gone: with the counter block freed twice, malloc aborts around here.
    let again = EventSink()
    again.countPDU(.dnp3)
    #expect(again.pduCounts[Int(AppProtocol.dnp3.rawValue)] == 1)
}
