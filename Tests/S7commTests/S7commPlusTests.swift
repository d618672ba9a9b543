import Testing
import Wire
import Records
@testable import S7comm

/// S7comm-plus identification: never parsed as S7comm, header/opcode/function summarised.
@Suite struct S7commPlusTests {
    static func hex(_ s: String) -> [UInt8] { S7Wire.hex(s) }
    func hex(_ s: String) -> [UInt8] { S7Wire.hex(s) }

    /// One complete frame: header with the data length, data part, trailer.
    static func frame(_ version: UInt8, _ data: [UInt8]) -> [UInt8] {
        [0x72, version] + S7Wire.be16(data.count) + data + [0x72, version, 0x00, 0x00]
    }

    /// V1 CreateObject request (S7-1200 session setup).
    static let v1Create = frame(1, hex("31000004ca0000000100000120360000011d00000000"))
    /// V2 GetMultiVariables request from an HMI; no digest (S7-1200).
    static let v2Get = frame(2, hex("310000054c00000013000003be340000000000000000"))
    /// V3 SetVariable request (from a public S7-1500 capture): 0x20 + 32-byte digest before the data part.
    static let v3Set = hex("72030056202c0a948c9b3f73ff34254b54cbe1909491882e3ce7ad38037efd9c520a93da8c31000004f200000003000003b534000003b5018e35000100000004e88969001200000000896a001300896b0004000000030000000072030000")
    /// A V2 response.
    static let v2Response = hex("72020011320000054200000002340000000000000072020000")

    @Test func versionsOpcodesAndFunctions() {
        let h = Harness()
        h.feed(S7Wire.dt(Self.v1Create))
        h.feed(S7Wire.dt(Self.v2Get))
        h.feed(S7Wire.dt(Self.v3Set))
        h.feed(S7Wire.dt(Self.v2Response), side: .responder)
        #expect(h.s7.isEmpty)
        #expect(h.plus.count == 4)
        #expect(h.pdus.allSatisfy { ($0["network"] as? [String: Any])?["protocol"] as? String == "s7comm_plus" })
        let (v1, v2, v3, res) = (h.plus[0], h.plus[1], h.plus[2], h.plus[3])
        #expect(v1.int("version") == 1 && v1.str("opcode_name") == "Request" && v1.str("function") == "CreateObject")
        #expect(v1.int("sequence_number") == 1 && v1.int("session_id") == 0x120 && v1.bool("integrity_protected") == false)
        #expect(v2.int("version") == 2 && v2.str("function") == "GetMultiVariables" && v2.int("session_id") == 0x3BE)
        #expect(v2.str("access") == "read" && v2.bool("integrity_protected") == false)
        #expect(v3.int("version") == 3 && v3.int("digest_length") == 32 && v3.bool("integrity_protected") == true)
        #expect(v3.str("integrity") == "header_digest")
        #expect(v3.str("function") == "SetVariable" && v3.int("session_id") == 0x3B5 && v3.str("access") == "write")
        #expect(v3.int("sequence_number") == 3)
        #expect(res.str("opcode_name") == "Response" && res.str("function") == "SetMultiVariables" && res["session_id"] == nil)
        #expect(h.operations.map(\.appProtocol) == [.s7commPlus, .s7commPlus, .s7commPlus])
        #expect(h.operations.map(\.functionCode) == [0x04CA, 0x054C, 0x04F2])
        #expect(h.anomalies.isEmpty)
    }

    @Test func v2TrailingDigestOfS71500() {
        // Request data ending with integrity id 0x0d, digest length 0x20 and 32 digest bytes.
        let data = hex("310000054c000000130000038834000000") + [0x0D, 0x20] + [UInt8](repeating: 0x5A, count: 32)
        let h = Harness()
        h.feed(S7Wire.dt(Self.frame(2, data)))
        #expect(h.plus[0].str("integrity") == "trailer_digest" && h.plus[0].bool("integrity_protected") == true)
    }

    @Test func fragmentedMessageKeepsTheFirstFragmentsOpcode() {
        // First fragment has no trailer; the inner one continues the data part (its bytes are not an opcode);
        // the last carries the trailer.
        let first = hex("7202000e3200000586000000053400001200")
        let inner = hex("720200080004c0a8000200a3")
        let last = hex("7202000400000000") + hex("72020000")
        let h = Harness()
        h.feed(S7Wire.dt(first), side: .responder)
        h.feed(S7Wire.dt(inner), side: .responder)
        h.feed(S7Wire.dt(last), side: .responder)
        #expect(h.plus.map { $0.str("fragment") } == ["first", "inner", "last"])
        #expect(h.plus.allSatisfy { $0.str("function") == "GetVarSubStreamed" && $0.int("opcode") == 0x32 })
        #expect(h.anomalies.isEmpty)
    }

    /// A message whose last frame never came is reported when its flow ends, as a COTP message left in reassembly is:
    /// a `truncated_at_end` anomaly (`s7comm_plus`, the data-part bytes of its frames so far) when a peer ended the
    /// flow, a count when the capture did; a whole message leaves nothing. The plus state then holds it
    /// (`holdsUnfinishedMessage`), so that the engine does not end the flow wholesale.
    @Test(arguments: [false, true], [FlowSide.initiator, .responder])
    func aFragmentedMessageCutByTheFlowsEndIsReported(atCaptureBoundary: Bool, side: FlowSide) {
        let first = hex("7202000e3200000586000000053400001200")
        let inner = hex("720200080004c0a8000200a3")
        let last = hex("7202000400000000") + hex("72020000")
        let whole = Harness()
        for f in [first, inner, last] { whole.feed(S7Wire.dt(f), side: side) }
        let wholeHolds = whole.dissector.holdsUnfinishedMessage   // (a failed expectation on the state would print all of it)
        #expect(!wholeHolds)
        whole.finish()
        #expect(!whole.anomalies.contains { $0.kind.description == "truncated_at_end" })

        let h = Harness()
        for f in [first, inner] { h.feed(S7Wire.dt(f), side: side) }
        let holds = h.dissector.holdsUnfinishedMessage, quiet = h.dissector.finishesQuietly(transactionRecords: false)
        #expect(holds && !quiet)
        h.sink.endingAtCaptureBoundary = atCaptureBoundary
        h.finish()
        let cut = h.anomalies.filter { $0.kind.description == "truncated_at_end" }
        // The data parts: 14 bytes of the first frame, 8 of the inner one.
        if atCaptureBoundary {
            #expect(cut.isEmpty && h.sink.cutByCapture == (1, 22))
        } else {
            #expect(cut.count == 1 && cut.first?.layer.description == "s7comm_plus" && cut.first?.value == 22
                    && cut.first?.sender == side)
        }
        let holdsAfter = h.dissector.holdsUnfinishedMessage
        #expect(!holdsAfter)
    }

    @Test func keepAlives() {
        let h = Harness()
        h.feed(S7Wire.dt(hex("72ff0300")))
        h.feed(S7Wire.dt(hex("72fe00100000000000000c950000000000000000")))
        #expect(h.plus[0].str("version_name") == "Keep Alive" && h.plus[0].int("keepalive_sequence") == 3)
        #expect(h.plus[1].str("version_name") == "Ext. Keep Alive" && h.plus[1]["opcode"] == nil)
    }

    @Test func neverMisparsedAsS7comm() {
        // Even bytes that would pass the S7comm gate after the 0x72 byte stay S7comm-plus.
        let h = Harness()
        h.feed(S7Wire.dt([0x72, 0x32, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x04, 0x01]))
        #expect(h.s7.isEmpty && h.plus.count == 1)
    }

    @Test func badTrailerIsAnAnomaly() {
        let h = Harness()
        var f = Self.v2Response
        f[f.count - 4] = 0x71
        h.feed(S7Wire.dt(f))
        #expect(h.anomalies.contains { $0.kind.description == "bad_trailer" })
    }

    @Test func gapEndsAFragmentedMessage() {
        let h = Harness()
        h.feed(S7Wire.dt(hex("7202000e3200000586000000053400001200")), side: .responder)
        h.gap(.responder)
        h.feed(S7Wire.dt(Self.v2Response), side: .responder)
        #expect(h.plus.last?["fragment"] == nil && h.plus.last?.str("function") == "SetMultiVariables")
    }
}
