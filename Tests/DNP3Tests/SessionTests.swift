import Testing
import Wire
import Records
@testable import DNP3

@Suite("DNP3 operations, select-before-operate, pairing, UDP")
struct SessionTests {
    static let crob: [UInt8] = [0x0C, 0x01, 0x28, 0x01, 0x00, 0x03, 0x00, 0x03, 0x01] + Wire3.le32(100) + Wire3.le32(0) + [0x00]

    @Test("every request becomes an Operation with addresses and range")
    func operations() throws {
        let h = Harness()
        h.feed(Wire3.request([0xC0, 0x01, 0x1E, 0x02, 0x01] + Wire3.le16(4) + Wire3.le16(13), destination: 0xFFFF, source: 3))
        h.feed(Wire3.response([0xC0, 0x81, 0x00, 0x00]), side: .responder)
        let op = try #require(h.sink.operations.first)
        #expect(h.sink.operations.count == 1)
        #expect(op.appProtocol == .dnp3 && op.functionCode == 1 && op.function.description == "READ")
        #expect(op.unitID == 0xFFFF && op.sourceAddress == 3 && op.broadcast)
        #expect(op.address == 4 && op.quantity == 10 && op.frame == 1 && op.sender == .initiator)
    }

    @Test("SELECT then OPERATE with the same objects and next sequence: no anomaly")
    func sboMatched() {
        let h = Harness()
        h.feed(Wire3.request([0xC3, 0x03] + Self.crob), seconds: 1)
        h.feed(Wire3.request([0xC4, 0x04] + Self.crob, transportSequence: 1), seconds: 2)
        #expect(h.anomalies.isEmpty)
        #expect(h.sink.operations.map { $0.access.name.description } == ["control", "control"])
    }

    @Test("OPERATE anomalies", arguments: [
        ("none", "operate_without_select"),
        ("objects", "operate_select_mismatch"),
        ("sequence", "operate_select_mismatch"),
        ("late", "operate_select_expired"),
        ("other-outstation", "operate_without_select"),
    ])
    func sboAnomalies(variant: String, kind: String) {
        let h = Harness()
        if variant != "none" { h.feed(Wire3.request([0xC3, 0x03] + Self.crob), seconds: 1) }
        var objects = Self.crob
        if variant == "objects" { objects[9] = 0x99 }
        let seq: UInt8 = variant == "sequence" ? 0xC6 : 0xC4
        h.feed(Wire3.request([seq, 0x04] + objects, transportSequence: 1, destination: variant == "other-outstation" ? 11 : 10),
               seconds: variant == "late" ? 30 : 2)
        #expect(h.anomalies == [kind])
    }

    @Test("request and response are paired into one dnp3 record")
    func pairing() throws {
        let h = Harness(records: false, transactions: true)
        h.feed(Wire3.request([0xC5, 0x01, 0x3C, 0x01, 0x06]), seconds: 10)
        h.feed(Wire3.response([0xC5, 0x81, 0x80, 0x00]), side: .responder, seconds: 10)
        let recs = h.records(.dnp3)
        #expect(recs.count == 1)
        let d = try #require(recs[0]["dnp3"] as? [String: Any])
        #expect(d["status"] as? String == "complete" && d["sequence"] as? Int == 5)
        #expect((d["request"] as? [String: Any])?["function"] as? String == "READ")
        #expect((d["response"] as? [String: Any])?["iin_flags"] as? [String] == ["device_restart"])
        #expect(recs[0]["frame"] as? Int == 1)
        #expect(h.records(.pdu).isEmpty)
    }

    @Test("multi-fragment response, unsolicited response, no-ack request, unanswered request")
    func pairingKinds() throws {
        let h = Harness(records: false, transactions: true)
        h.feed(Wire3.request([0xC2, 0x01, 0x3C, 0x01, 0x06]))
        h.feed(Wire3.response([0xA2, 0x81, 0x00, 0x00], transportSequence: 0), side: .responder)  // FIR, CON
        h.feed(Wire3.request([0xC2, 0x00], transportSequence: 1))                                // confirm: no record
        h.feed(Wire3.response([0x03, 0x81, 0x00, 0x00], transportSequence: 1), side: .responder)  // middle
        h.feed(Wire3.response([0x44, 0x81, 0x00, 0x00], transportSequence: 2), side: .responder)  // FIN
        h.feed(Wire3.response([0xF0, 0x82, 0x00, 0x00], transportSequence: 3), side: .responder)  // unsolicited
        h.feed(Wire3.request([0xC7, 0x06] + Self.crob, transportSequence: 2))                    // DIRECT_OPERATE_NR
        let quietBefore = h.dissector.finishesQuietly(transactionRecords: true)
        h.feed(Wire3.request([0xC8, 0x0D], transportSequence: 3))                                 // COLD_RESTART, no answer
        // `finish` has a record to write for it, and nothing to report without records (the engine then skips it).
        let quiet = (h.dissector.finishesQuietly(transactionRecords: true), h.dissector.finishesQuietly(transactionRecords: false))
        #expect(quietBefore && quiet == (false, true))
        h.finish()
        let d = h.records(.dnp3).compactMap { $0["dnp3"] as? [String: Any] }
        #expect(d.map { $0["status"] as? String } == ["complete", "unsolicited", "no_response_expected", "unanswered"])
        #expect((d[0]["response"] as? [String: Any])?["fragments"] as? Int == 3)
        #expect((d[3]["request"] as? [String: Any])?["function"] as? String == "COLD_RESTART")
    }

    @Test("UDP: one frame per datagram, trailing padding reported, truncated frames reported")
    func udp() {
        let h = Harness(transport: .udp)
        h.feed(Wire3.frame(control: 0xC9, destination: 100, source: 1, userData: []) + [UInt8](repeating: 0xAA, count: 8))
        h.feed(Wire3.request([0xC0, 0x01, 0x3C, 0x01, 0x06]))
        h.feed(Array(Wire3.request([0xC1, 0x01, 0x3C, 0x01, 0x06], transportSequence: 1).prefix(12)))
        for s in Wire3.segmented(TransportTests.bigResponse(points: 100), segmentSize: 249) { h.feed(s, side: .responder) }
        #expect(h.pdus.count == 3)
        #expect(h.functionCodes == [1, 0x81])
        #expect(h.anomalies == ["garbage_skipped", "truncated_frame"])
    }
}
