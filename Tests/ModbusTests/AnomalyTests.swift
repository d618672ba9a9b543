// Every anomaly kind the Modbus dissector reports, each with its frame and byte offset.
import Testing
import Records
import Wire
@testable import Modbus

struct AnomalyCase: Sendable, CustomTestStringConvertible {
    let kind: String
    /// Frame that must carry the anomaly.
    let frame: UInt64
    /// Offset in the bytes delivered with that frame.
    let offset: Int
    let value: Int64?
    var testDescription: String { kind }
}

let anomalyCases: [AnomalyCase] = [
    AnomalyCase(kind: "bad_protocol_id", frame: 2, offset: 2, value: 0x0102),
    AnomalyCase(kind: "bad_length", frame: 1, offset: 4, value: 1),
    AnomalyCase(kind: "resync", frame: 1, offset: 6, value: 6),
    AnomalyCase(kind: "unknown_function_code", frame: 1, offset: 7, value: 50),
    AnomalyCase(kind: "unknown_exception_code", frame: 2, offset: 8, value: 12),
    AnomalyCase(kind: "illegal_quantity", frame: 1, offset: 10, value: 126),
    AnomalyCase(kind: "bad_coil_value", frame: 1, offset: 10, value: 0x00FF),
    AnomalyCase(kind: "byte_count_mismatch", frame: 2, offset: 8, value: 4),
    AnomalyCase(kind: "response_mismatch", frame: 2, offset: 7, value: 4),
    AnomalyCase(kind: "unsolicited_response", frame: 1, offset: 0, value: 77),
    AnomalyCase(kind: "request_flood", frame: 5, offset: 0, value: 5),
    AnomalyCase(kind: "exception_storm", frame: 6, offset: 8, value: 3),
]

/// Runs the scenario that must produce `kind`.
func anomalyScenario(_ kind: String) -> Harness {
    var limits = ModbusLimits()
    limits.requestFloodThreshold = 5
    limits.exceptionStormThreshold = 3
    limits.exceptionStormWindowMicroseconds = 1_000_000
    let h = Harness(limits: limits)
    switch kind {
    case "bad_protocol_id":
        h.send(adu(1, "03 0000 0001"))
        h.send(adu(2, "03 0000 0001", protocolID: 0x0102))
    case "bad_length":
        h.send(hex("0001 0000 0001 01") + adu(2, "03 0000 0001"))
    case "resync":
        h.send(hex("AA BB CC DD EE FF") + adu(2, "03 0000 0001"))
    case "unknown_function_code":
        h.send(adu(1, "32 0000"))
    case "unknown_exception_code":
        h.send(adu(1, "03 0000 0001"))
        h.send(adu(1, "83 0C"), from: .responder)
    case "illegal_quantity":
        h.send(adu(1, "03 0000 007E"))
    case "bad_coil_value":
        h.send(adu(1, "05 0001 00FF"))
    case "byte_count_mismatch":
        // Eight coils asked for: they fit in one byte, the response carries four.
        h.send(adu(2, "01 0000 0008"))
        h.send(adu(2, "01 04 FF000000"), from: .responder)
    case "response_mismatch":
        h.send(adu(1, "03 0000 0001"))
        h.send(adu(1, "04 02 0001"), from: .responder)
    case "unsolicited_response":
        h.send(adu(77, "03 02 0001"), from: .responder)
    case "request_flood":
        for i in 1...7 { h.send(adu(UInt16(i), "03 0000 0001")) }
    case "exception_storm":
        for i in 1...3 {
            h.send(adu(UInt16(i), "2B 0D 00"))
            h.send(adu(UInt16(i), "AB 01"), from: .responder, after: 100_000)
        }
    default:
        Issue.record("no scenario for \(kind)")
    }
    return h
}

@Suite("Anomalies")
struct AnomalyTests {
    @Test("each anomaly kind is reported with its frame, offset and value", arguments: anomalyCases)
    func kind(_ c: AnomalyCase) {
        let h = anomalyScenario(c.kind)
        let found = h.anomalies.filter { $0.kind.description == c.kind }
        #expect(found.count == 1, "\(h.anomalyKinds)")
        guard let a = found.first else { return }
        #expect(a.layer.description == "modbus")
        #expect(a.frame == c.frame)
        #expect(a.offset == c.offset)
        #expect(a.value == c.value)
    }

    @Test("a request flood is reported once per run of unanswered requests, and re-armed by a response")
    func floodOnce() {
        let h = anomalyScenario("request_flood")
        for i in 8...20 { h.send(adu(UInt16(i), "03 0000 0001")) }
        #expect(h.anomalyKinds.filter { $0 == "request_flood" }.count == 1)
        h.send(adu(20, "03 02 0000"), from: .responder)
        for i in 21...25 { h.send(adu(UInt16(i), "03 0000 0001")) }
        #expect(h.anomalyKinds.filter { $0 == "request_flood" }.count == 2)
    }

    @Test("exceptions spread wider than the window are not a storm")
    func noStorm() {
        var limits = ModbusLimits()
        limits.exceptionStormThreshold = 3
        limits.exceptionStormWindowMicroseconds = 1_000_000
        let h = Harness(limits: limits)
        for i in 1...6 {
            h.send(adu(UInt16(i), "03 FFFF 0001"), after: 700_000)
            h.send(adu(UInt16(i), "83 02"), from: .responder)
        }
        #expect(!h.anomalyKinds.contains("exception_storm"))
    }

    @Test("an echo that differs from its request is a response mismatch")
    func echoMismatch() {
        let h = Harness()
        h.send(adu(1, "05 0001 1234"))                            // pymodbus answers this with FF00
        h.send(adu(1, "05 0001 FF00"), from: .responder)
        #expect(h.anomalyKinds == ["bad_coil_value", "response_mismatch"])
    }
}

