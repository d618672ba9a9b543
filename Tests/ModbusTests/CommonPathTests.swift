// The per-PDU fast path (CommonPDUs.swift) must do exactly what the general path does: same fields for
// the PDUs it takes, the general path for every other PDU, and the same operations and anomalies either way.
import Testing
import Records
import Wire
@testable import Modbus

/// A small deterministic generator (xorshift64*), so that failures reproduce.
struct TestRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed | 1 }
    mutating func next() -> UInt64 {
        state ^= state >> 12; state ^= state << 25; state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    mutating func byte() -> UInt8 { UInt8(truncatingIfNeeded: next()) }

    /// A 16-bit value near the edges that the layouts check (0, 1, the quantity limits, the address space's end), or any.
    mutating func edgy16() -> UInt16 {
        let edges: [UInt16] = [0, 1, 2, 8, 16, 120, 121, 122, 123, 124, 125, 126, 1967, 1968, 1969, 1999, 2000, 2001,
                               0xFF00, 0x00FF, 0xFFFF, 0xFFFE, 0xFF80, 65_535 - 124]
        return below(3) == 0 ? UInt16(truncatingIfNeeded: next()) : edges[below(edges.count)]
    }

    /// A PDU of function `fc`: a well-formed layout most of the time, with one field or the length disturbed otherwise.
    mutating func pdu(_ fc: UInt8, _ direction: ModbusDirection) -> [UInt8] {
        func be(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xFF)] }
        var p: [UInt8] = [fc]
        let code = fc & 0x7F
        switch (code, direction) {
        case (1...4, .request), (5, .request), (6, .request), (5, .response), (6, .response), (15, .response), (16, .response):
            p += be(edgy16()) + be(edgy16())
        case (15, .request), (16, .request):
            let q = below(4) == 0 ? edgy16() : UInt16(1 + below(code == 15 ? 40 : 20))
            let n = code == 15 ? (Int(q) + 7) / 8 : 2 * Int(q)
            let declared = below(5) == 0 ? Int(byte()) : n
            p += be(edgy16()) + be(q) + [UInt8(truncatingIfNeeded: declared)] + (0..<min(n, 250)).map { _ in byte() }
        case (1...4, .response):
            let n = below(4) == 0 ? Int(byte()) : 2 * below(20) + (code <= 2 ? below(2) : 0)
            p += [UInt8(truncatingIfNeeded: below(5) == 0 ? Int(byte()) : n)] + (0..<min(n, 252)).map { _ in byte() }
        default:
            p += (0..<below(8)).map { _ in byte() }
        }
        // Disturb the length now and then: one byte more or less, or a cut.
        switch below(8) {
        case 0: p.append(byte())
        case 1: if p.count > 1 { p.removeLast() }
        case 2: p = Array(p.prefix(below(p.count + 1)))
        default: break
        }
        return p
    }
}

@Suite("Common-PDU fast path")
struct CommonPathTests {
    static let codes: [UInt8] = [1, 2, 3, 4, 5, 6, 15, 16, 0x81, 0x83, 0x90, 7, 8, 0x17, 0x2B, 0]

    @Test("a PDU is taken by the fast path exactly when the parser finds it a well-formed FC 1-6, 15 or 16, with the same fields")
    func fieldsAgreeWithTheParser() {
        var r = TestRandom(seed: 0x5EED)
        var taken = 0
        for _ in 0..<200_000 {
            let fc = Self.codes[r.below(Self.codes.count)]
            let direction: ModbusDirection = r.below(2) == 0 ? .request : .response
            let bytes = r.pdu(fc, direction)
            ByteView.with(bytes) { view in
                let pdu = ModbusPDU.parse(view, direction: direction)
                let common = ModbusFields.common(view, direction: direction)
                let wellFormed = pdu.problems.isEmpty && !pdu.isException && [1, 2, 3, 4, 5, 6, 15, 16].contains(pdu.rawFunctionCode)
                #expect((common != nil) == wellFormed, "\(direction) \(bytes)")
                if let f = common {
                    taken += 1
                    let g = pdu.fields
                    #expect(f.rawFunctionCode == g.rawFunctionCode && f.address == g.address && f.quantity == g.quantity
                            && f.value == g.value && f.byteCount == g.byteCount && f.andMask == g.andMask && f.orMask == g.orMask
                            && f.subfunction == g.subfunction && f.meiType == g.meiType, "\(direction) \(bytes)")
                }
            }
        }
        #expect(taken > 20_000, "the generator exercises the fast path")
    }

    /// An ADU around `pdu` (its length field follows the PDU, even when the PDU is cut).
    static func adu(_ tid: UInt16, _ unit: UInt8, _ pdu: [UInt8]) -> [UInt8] {
        let n = UInt16(pdu.count + 1)
        return [UInt8(tid >> 8), UInt8(tid & 0xFF), 0, 0, UInt8(n >> 8), UInt8(n & 0xFF), unit] + pdu
    }

    /// What policy and detection receive, field by field.
    static func describe(_ o: Records.Operation) -> String {
        "\(o.appProtocol) \(o.access) \(o.functionCode) \(o.function) \(o.subfunction) \(o.unitID) \(o.address) \(o.quantity) "
            + "\(o.broadcast) \(o.sender) \(o.frame) \(o.time.totalMicroseconds) \(o.unitRepeated)"
    }

    @Test("an operation says whether the flow's previous request addressed the same unit")
    func unitRepeated() {
        for records in [false, true] {
            let h = Harness(records: records)
            for (i, unit) in [1, 1, 2, 2, 1, 0, 0].enumerated() {
                // Request 3 takes the general path (FC 43), the others the fast one when records are off.
                h.send(Self.adu(UInt16(i), UInt8(unit), i == 3 ? [0x2B, 0x0E, 0x01, 0x00] : [0x03, 0, 0, 0, 1]))
                h.send(Self.adu(UInt16(i), UInt8(unit), i == 3 ? [0xAB, 0x02] : [0x03, 0x02, 0, 1]), from: .responder)
            }
            #expect(h.operations.map(\.unitRepeated) == [false, true, false, true, false, false, true], "records \(records)")
        }
    }

    static func describe(_ a: Anomaly) -> String {
        "\(a.layer) \(a.kind) \(a.offset) \(a.value.map(String.init) ?? "-") \(a.frame) \(a.sender)"
    }

    @Test("records off (fast path) and records on (general path) give the same operations and anomalies", arguments: [1, 2, 3, 4])
    func sameOperationsAndAnomalies(seed: UInt64) {
        var limits = ModbusLimits()
        limits.maximumPendingRequests = 3
        limits.requestFloodThreshold = 6
        limits.exceptionStormThreshold = 3
        limits.responseTimeoutMicroseconds = 40_000
        let fast = Harness(records: false, limits: limits), general = Harness(records: true, limits: limits)
        var r = TestRandom(seed: seed)
        var tid: UInt16 = 0
        for _ in 0..<6_000 {
            // Mostly request/response pairs, with pipelining, reuse of transaction ids, other units, wrong
            // functions, unsolicited responses, exceptions, garbage and time jumps past the response timeout.
            tid &+= UInt16(r.below(3))
            let unit = UInt8(r.below(4) == 0 ? r.below(3) : 1)
            let side: FlowSide = r.below(2) == 0 ? .initiator : .responder
            var bytes: [UInt8]
            switch r.below(20) {
            case 0: bytes = (0..<r.below(12)).map { _ in r.byte() }
            case 1: bytes = Self.adu(tid, unit, [0x83, 0x02])
            default: bytes = Self.adu(tid, unit, r.pdu(Self.codes[r.below(Self.codes.count)], side == .initiator ? .request : .response))
            }
            if r.below(6) == 0 { bytes += Self.adu(tid &+ 1, unit, [0x03, 0, 0, 0, 2]) }
            let after = Int64(r.below(10) == 0 ? 50_000 : 1_000)
            fast.send(bytes, from: side, after: after)
            general.send(bytes, from: side, after: after)
        }
        fast.finish(); general.finish()
        #expect(fast.operations.count > 300)
        #expect(fast.operations.map(Self.describe) == general.operations.map(Self.describe))
        #expect(fast.anomalies.map(Self.describe) == general.anomalies.map(Self.describe))
        #expect(fast.dissector.session.pendingCount == general.dissector.session.pendingCount)
    }

    @Test("the polling case pairs a response only with the one pending request of the same key and function")
    func pollingResponseChecks() {
        // Each case: one request, then one response that differs from a fitting answer in one way.
        let cases: [(request: [UInt8], response: [UInt8], tid: UInt16, unit: UInt8, kinds: [String])] = [
            ([0x03, 0, 0, 0, 2], [0x03, 0x04, 0, 1, 0, 2], 7, 1, []),
            ([0x03, 0, 0, 0, 2], [0x04, 0x04, 0, 1, 0, 2], 7, 1, ["response_mismatch"]),
            ([0x03, 0, 0, 0, 2], [0x03, 0x02, 0, 1], 7, 1, ["byte_count_mismatch"]),
            ([0x06, 0, 9, 0, 1], [0x06, 0, 9, 0, 2], 7, 1, ["response_mismatch"]),
            ([0x10, 0, 9, 0, 1, 2, 0, 1], [0x10, 0, 9, 0, 2], 7, 1, ["response_mismatch"]),
            ([0x03, 0, 0, 0, 2], [0x03, 0x04, 0, 1, 0, 2], 8, 1, ["unsolicited_response"]),
            ([0x03, 0, 0, 0, 2], [0x03, 0x04, 0, 1, 0, 2], 7, 2, ["unsolicited_response"]),
        ]
        for (n, c) in cases.enumerated() {
            var seen: [[String]] = []
            for records in [false, true] {
                let h = Harness(records: records)
                h.send(Self.adu(7, 1, c.request))
                h.send(Self.adu(c.tid, c.unit, c.response), from: .responder)
                seen.append(h.anomalies.map { "\($0.kind)" })
                // A fitting answer frees the entry; an unsolicited one leaves the request pending.
                #expect(h.dissector.session.pendingCount == (c.kinds == ["unsolicited_response"] ? 1 : 0), "case \(n)")
            }
            #expect(seen[0] == c.kinds, "case \(n)")
            #expect(seen[0] == seen[1], "case \(n)")
        }
    }
}
