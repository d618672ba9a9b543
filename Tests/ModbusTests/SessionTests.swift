// Request/response pairing, unanswered and unsolicited PDUs, and the operations handed to policy.
import Testing
import Records
import Wire
@testable import Modbus

@Suite("Pairing and operations")
struct SessionTests {
    @Test("a response is paired with its request: one transaction with both sides and the round trip")
    func paired() {
        let h = Harness()
        h.send(adu(7, unit: 3, "03 006B 0003"))
        h.send(adu(7, unit: 3, "03 06 022B 0000 0064"), from: .responder, after: 2_500)
        #expect(h.transactions.count == 1)
        let t = h.transactions[0]
        #expect(t["matched"] as? Bool == true)
        #expect(t["reason"] == nil)
        #expect(t["transaction_id"] as? Int == 7)
        #expect(t["unit_id"] as? Int == 3)
        #expect(t["function"] as? String == "read_holding_registers")
        #expect(t["access"] as? String == "read")
        #expect(t["request_frame"] as? Int == 1)
        #expect(t["response_frame"] as? Int == 2)
        #expect(t["response_time"] as? Double == 0.0025)
        #expect((t["request"] as? [String: Any])?["quantity"] as? Int == 3)
        #expect((t["response"] as? [String: Any])?["values"] as? [Int] == [555, 0, 100])
        // The record is the requester's: source is the client, stamped with the request's frame.
        let record = h.transactionRecords[0]
        #expect((record["source"] as? [String: Any])?["port"] as? Int == 50_000)
        #expect(record["frame"] as? Int == 1)
        // The response's PDU record points back at its request.
        #expect(h.pdus[1]["request_frame"] as? Int == 1)
        #expect(h.pdus[1]["pdu_type"] as? String == "response")
        #expect(h.anomalies.isEmpty)
    }

    @Test("pipelined requests are paired by transaction id and unit id, in any response order")
    func pipelined() {
        let h = Harness()
        h.send(adu(1, unit: 1, "03 0000 0001") + adu(2, unit: 1, "04 0000 0001") + adu(1, unit: 2, "01 0000 0008"))
        h.send(adu(1, unit: 2, "01 01 A5"), from: .responder)
        h.send(adu(2, unit: 1, "04 02 0004"), from: .responder)
        h.send(adu(1, unit: 1, "03 02 0003"), from: .responder)
        #expect(h.transactions.count == 3)
        #expect(h.transactions.allSatisfy { $0["matched"] as? Bool == true })
        #expect(h.transactions.map { $0["function_code"] as? Int } == [1, 4, 3])
        #expect(h.transactions.map { $0["unit_id"] as? Int } == [2, 1, 1])
        #expect((h.transactions[0]["response"] as? [String: Any])?["values"] as? [Int] == [1, 0, 1, 0, 0, 1, 0, 1])
        #expect(h.anomalies.isEmpty)
        #expect(h.dissector.session.pendingCount == 0)
    }

    @Test("a request left unanswered past the timeout is reported as timed out; its late response is unsolicited")
    func timeout() {
        let h = Harness()
        h.send(adu(1, "03 0000 0001"))
        h.send(adu(2, "03 0000 0001"), after: 10_500_000)
        #expect(h.transactions.count == 1)
        #expect(h.transactions[0]["matched"] as? Bool == false)
        #expect(h.transactions[0]["reason"] as? String == "timeout")
        #expect(h.transactions[0]["request_frame"] as? Int == 1)
        #expect(h.transactions[0]["response"] == nil)
        h.send(adu(1, "03 02 0009"), from: .responder)
        #expect(h.transactions.last?["reason"] as? String == "unsolicited")
        #expect(h.anomalyKinds == ["unsolicited_response"])
    }

    @Test("requests still pending when the flow ends are reported with reason no_response")
    func finish() {
        let h = Harness()
        h.send(adu(1, "06 0001 0003") + adu(2, "06 0002 0004"))
        h.finish()
        #expect(h.transactions.map { $0["reason"] as? String } == ["no_response", "no_response"])
        #expect(h.dissector.session.pendingCount == 0)
    }

    @Test("a broadcast (unit 0) is marked as such in the operation and the transaction")
    func broadcast() {
        let h = Harness()
        h.send(adu(1, unit: 0, "06 0008 0058"))
        h.finish()
        #expect(h.operations.first?.broadcast == true)
        #expect(h.transactions.first?["broadcast"] as? Bool == true)
        #expect(h.pdus.first?["broadcast"] as? Bool == true)
    }

    @Test("a full pending table evicts its oldest request, reported as evicted")
    func eviction() {
        var limits = ModbusLimits()
        limits.maximumPendingRequests = 2
        let h = Harness(limits: limits)
        h.send(adu(1, "03 0000 0001"))
        h.send(adu(2, "03 0000 0001"))
        h.send(adu(3, "03 0000 0001"))
        #expect(h.transactions.count == 1)
        #expect(h.transactions[0]["transaction_id"] as? Int == 1)
        #expect(h.transactions[0]["reason"] as? String == "evicted")
        #expect(h.dissector.session.entries.count == 2)
    }

    @Test("the pending table and the request arena are allocated once and then reused")
    func reuse() {
        let h = Harness()
        for i in 0..<500 {
            h.send(adu(UInt16(i), "10 0001 0002 04 000A 0102"))
            h.send(adu(UInt16(i), "10 0001 0002"), from: .responder)
        }
        #expect(h.transactions.count == 500)
        #expect(h.dissector.session.entries.count == 1)
        #expect(h.dissector.session.arena.count == ModbusSession.slotSize)
    }

    @Test("without paired records the request bytes are not copied at all")
    func noRecordsNoCopies() {
        let h = Harness(records: false)
        for i in 0..<10 { h.send(adu(UInt16(i), "03 0000 0001")); h.send(adu(UInt16(i), "03 02 0001"), from: .responder) }
        #expect(h.dissector.session.arena.isEmpty)
        #expect(h.operations.count == 10)
        #expect(h.pdus.isEmpty && h.transactions.isEmpty)
    }

    @Test("with the server as the flow's initiator, requests still come from the side that talks to 502")
    func serverInitiated() {
        let h = Harness(serverPort: 4446, clientPort: 502)
        h.send(adu(1, unit: 10, "81 06"))                       // from 502: a response
        h.send(adu(2, unit: 10, "01 0000 0001"), from: .responder)  // from 4446: a request
        #expect(h.pdus.map { $0["pdu_type"] as? String } == ["response", "request"])
        #expect(h.operations.count == 1)
    }

    @Test("on a non-standard port the initiator is the client")
    func otherPort() {
        let h = Harness(serverPort: 5020, clientPort: 40_000)
        h.send(adu(1, "03 0000 0001"))
        h.send(adu(1, "03 02 0001"), from: .responder)
        #expect(h.pdus.map { $0["pdu_type"] as? String } == ["request", "response"])
        #expect(h.transactions.first?["matched"] as? Bool == true)
    }

    @Test("each request becomes one operation with unit, address, quantity and sub-function")
    func operations() {
        let h = Harness()
        h.send(adu(1, unit: 9, "10 0064 0002 04 000A 0102"))
        h.send(adu(2, unit: 9, "17 0003 0006 000E 0003 06 00FF 00FF 00FF"))
        h.send(adu(3, unit: 9, "08 0004 0000"))
        h.send(adu(4, unit: 9, "5A 01 40 FF00"))
        h.send(adu(5, unit: 9, "14 07 06 0004 0001 0002"))
        h.send(adu(6, unit: 9, "05 0010 FF00"))
        h.send(adu(1, unit: 9, "10 0064 0002"), from: .responder)   // responses are not operations
        #expect(h.operations.count == 6)
        let o = h.operations
        #expect(o[0].access == .write && o[0].functionCode == 16 && o[0].unitID == 9 && o[0].address == 100 && o[0].quantity == 2)
        #expect(o[0].function.description == "write_multiple_registers" && o[0].appProtocol == .modbus && !o[0].broadcast)
        #expect(o[1].access == .write && o[1].address == 14 && o[1].quantity == 3)
        #expect(o[2].access == .lifecycle && o[2].subfunction == 4)
        #expect(o[3].access == .lifecycle && o[3].subfunction == 0x40 && o[3].function.description == "umas")
        #expect(o[4].access == .file && o[4].address == 1 && o[4].quantity == 2)
        #expect(o[5].access == .control && o[5].address == 16 && o[5].quantity == 1)
        #expect(o.allSatisfy { $0.sender == .initiator })
        #expect(o.map { $0.frame } == [1, 2, 3, 4, 5, 6])
    }
}
