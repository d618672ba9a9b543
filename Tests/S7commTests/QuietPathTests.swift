import Testing
import Wire
import Records
@testable import S7comm

/// With records off, Read/Write Var jobs and Ack_Data take `readWriteVar`; with records on, the layered path. Both
/// must emit the same operations, anomalies and PDU counts for the same bytes.
@Suite struct QuietPathTests {
    /// Everything an operation says, comparable.
    static func describe(_ o: Records.Operation) -> String {
        "\(o.appProtocol) \(o.access) \(o.functionCode) \(o.function) \(o.subfunction) \(o.unitID) \(o.sourceAddress) \(o.area) "
            + "\(o.dbNumber) \(o.address) \(o.quantity) \(o.broadcast) \(o.sender) \(o.unitRepeated) \(o.frame) \(o.time.totalMicroseconds)"
    }

    static func describe(_ a: Anomaly) -> String {
        "\(a.layer) \(a.kind) \(a.offset) \(String(describing: a.value)) \(a.frame) \(a.sender)"
    }

    /// Feeds `segments` to a recording and a quiet harness and compares what they emitted.
    static func expectSameEvents(_ segments: [([UInt8], FlowSide)]) {
        let recording = Harness(records: true, transactions: true), quiet = Harness(records: false, transactions: false)
        for (bytes, side) in segments { recording.feed(bytes, side: side); quiet.feed(bytes, side: side) }
        recording.finish(); quiet.finish()
        #expect(recording.operations.map(describe) == quiet.operations.map(describe))
        #expect(recording.anomalies.map(describe) == quiet.anomalies.map(describe))
        #expect(recording.sink.pduCounts == quiet.sink.pduCounts)
        #expect(!quiet.operations.isEmpty)
    }

    static func job(_ ref: Int, function: UInt8 = 0x04, items: [[UInt8]], count: Int? = nil, data: [UInt8] = []) -> [UInt8] {
        S7Wire.dt(S7Wire.s7(rosctr: 1, ref: ref, params: [function, UInt8(count ?? items.count)] + items.flatMap { $0 }, data: data))
    }

    static func ack(_ ref: Int, function: UInt8 = 0x04, count: Int = 1, data: [UInt8] = [0xFF, 0x04, 0x00, 0x08, 0x2A]) -> [UInt8] {
        S7Wire.dt(S7Wire.s7(rosctr: 3, ref: ref, params: [function, UInt8(count)], data: data))
    }

    static let setup = S7Wire.dt(S7Wire.s7(rosctr: 1, ref: 1, params: S7Wire.hex("f0000001000101e0")))
    static let setupAck = S7Wire.dt(S7Wire.s7(rosctr: 3, ref: 1, params: S7Wire.hex("f0000001000100f0")))

    @Test func readAndWriteVarItems() {
        let db = S7Wire.item(area: 0x84, db: 7, byte: 12, bit: 3, transportSize: 0x04, count: 5)
        let marker = S7Wire.item(area: 0x83, byte: 100, count: 2)
        let timer = S7Wire.item(area: 0x1D, byte: 9, transportSize: 0x1D, count: 1)
        let instance = S7Wire.item(area: 0x85, db: 3, byte: 0, transportSize: 0x06, count: 1)
        let dbread: [UInt8] = [0x12, 0x07, 0xB0, 0x01, 0x08, 0x00, 0x05, 0x00, 0x10]
        let symbolic: [UInt8] = [0x12, 0x04, 0xB2, 0x01, 0x02, 0x03]
        let malformed: [UInt8] = [0x13, 0x0A, 0x10]
        Self.expectSameEvents([
            (Self.setup, .initiator), (Self.setupAck, .responder),
            (Self.job(2, items: [db, marker, timer, instance]), .initiator), (Self.ack(2), .responder),
            (Self.job(3, items: [dbread, symbolic]), .initiator), (Self.ack(3), .responder),
            (Self.job(4, items: [db, malformed]), .initiator),
            (Self.job(5, items: [malformed]), .initiator),
            (Self.job(6, items: [], count: 0), .initiator),
            (Self.job(7, items: [db], count: 3), .initiator),
            (Self.job(8, function: 0x05, items: [db], data: [0x00, 0x04, 0x00, 0x08, 0x01]), .initiator),
            (Self.ack(8, function: 0x05, data: [0xFF]), .responder),
            (Self.ack(99), .responder),
        ])
    }

    @Test func framingAndOddPDUs() {
        let item = S7Wire.item(area: 0x84, db: 1, byte: 0, count: 4)
        let two = Self.job(10, items: [item]) + Self.job(11, items: [item, item])
        let split = Self.job(12, items: [item])
        // A job whose declared parameter length runs past the PDU, one larger than the negotiated size, a DT without
        // EOT and its end, a job on an unusual function, an Ack (rosctr 2) and garbage before a job.
        var truncated = Self.job(13, items: [item]); truncated[16] = 0x40
        let big = Self.job(14, items: Array(repeating: item, count: 30))
        let first = S7Wire.dt(S7Wire.s7(rosctr: 1, ref: 15, params: [0x04, 0x01] + item).prefix(10).map { $0 }, eot: false)
        let rest = S7Wire.dt(Array(S7Wire.s7(rosctr: 1, ref: 15, params: [0x04, 0x01] + item).dropFirst(10)))
        Self.expectSameEvents([
            (Self.setup, .initiator), (Self.setupAck, .responder),
            (two, .initiator), (Array(split.prefix(9)), .initiator), (Array(split.dropFirst(9)), .initiator),
            (truncated, .initiator), (big, .initiator), (first, .initiator), (rest, .initiator),
            (Self.job(16, function: 0x1A, items: []), .initiator),
            (S7Wire.dt(S7Wire.s7(rosctr: 2, ref: 16, params: [])), .responder),
            ([0x00, 0x01, 0x02] + Self.job(17, items: [item]), .initiator),
        ])
    }

    @Test("connection set-up on the quiet path: CR and CC, setup communication and the size its ack grants")
    func connectionSetUp() {
        let cr = S7Wire.connectionRequest()
        var cc = cr; cc[5] = 0xD0
        var shortCR = cr; shortCR[4] = 5                       // LI too small for a CR: bad_cotp_header
        var longCR = cr; longCR[4] = UInt8(cr.count - 4)       // LI past the TPKT: bad_cotp_header
        let item = S7Wire.item(area: 0x84, db: 1, byte: 0, count: 4)
        let refused = S7Wire.dt(S7Wire.s7(rosctr: 3, ref: 1, params: S7Wire.hex("f000000100010020"), errorClass: 0x81, errorCode: 4))
        let clipped = S7Wire.dt(S7Wire.s7(rosctr: 3, ref: 1, params: S7Wire.hex("f00000010001")))
        let small = S7Wire.dt(S7Wire.s7(rosctr: 3, ref: 1, params: S7Wire.hex("f000000100010040")))   // 64 octets
        Self.expectSameEvents([
            (cr, .initiator), (cc, .responder), (shortCR, .initiator), (longCR, .initiator),
            (Self.setup, .initiator), (refused, .responder), (Self.job(2, items: Array(repeating: item, count: 6)), .initiator),
            (Self.setup, .initiator), (clipped, .responder), (Self.job(3, items: Array(repeating: item, count: 6)), .initiator),
            (Self.setup, .initiator), (small, .responder), (Self.job(4, items: Array(repeating: item, count: 6)), .initiator),
            (Self.job(5, items: [item]), .initiator),
        ])
        let quiet = Harness(records: false, transactions: false)
        for (bytes, side) in [(cr, FlowSide.initiator), (cc, .responder), (Self.setup, .initiator), (small, .responder)] {
            quiet.feed(bytes, side: side)
        }
        #expect(quiet.dissector.negotiatedPDUSize == 64)
        #expect(quiet.anomalies.isEmpty)
        #expect(quiet.operations.count == 1)
    }

    @Test func pendingOverflowIsReportedOnce() {
        let item = S7Wire.item(area: 0x84, db: 1, byte: 0, count: 4)
        Self.expectSameEvents((0..<70).map { (Self.job(100 + $0, items: [item]), FlowSide.initiator) })
    }
}
