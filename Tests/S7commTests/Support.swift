import Foundation
import Testing
import Wire
import Records
@testable import S7comm

/// Builds TPKT/COTP/S7 wire bytes for tests.
enum S7Wire {
    /// Hex text (spaces and newlines ignored) to bytes.
    static func hex(_ s: String) -> [UInt8] {
        let digits = s.filter { $0.isHexDigit }
        var out: [UInt8] = [], i = digits.startIndex
        while i < digits.endIndex {
            let j = digits.index(i, offsetBy: 2)
            out.append(UInt8(digits[i..<j], radix: 16)!)
            i = j
        }
        return out
    }

    static func be16(_ v: Int) -> [UInt8] { [UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }

    /// A TPKT around `tpdu`.
    static func tpkt(_ tpdu: [UInt8]) -> [UInt8] { [0x03, 0x00] + be16(tpdu.count + 4) + tpdu }

    /// A class-0 DT TPDU in a TPKT.
    static func dt(_ payload: [UInt8], eot: Bool = true, number: UInt8 = 0) -> [UInt8] {
        tpkt([0x02, 0xF0, (eot ? 0x80 : 0x00) | number] + payload)
    }

    /// An S7comm PDU: header (with error class/code for acks), parameters, data.
    static func s7(rosctr: UInt8, ref: Int, params: [UInt8], data: [UInt8] = [], errorClass: UInt8 = 0, errorCode: UInt8 = 0) -> [UInt8] {
        var h: [UInt8] = [0x32, rosctr, 0x00, 0x00] + be16(ref) + be16(params.count) + be16(data.count)
        if rosctr == 2 || rosctr == 3 { h += [errorClass, errorCode] }
        return h + params + data
    }

    /// A userdata PDU: short (request) or extended (response) parameter form.
    static func userdata(ref: Int, type: UInt8, group: UInt8, sub: UInt8, seq: UInt8 = 0, extended: Bool = false,
                         dataUnit: UInt8 = 0, last: Bool = true, errorCode: Int = 0,
                         returnCode: UInt8 = 0xFF, transportSize: UInt8 = 0x09, payload: [UInt8]) -> [UInt8] {
        var p: [UInt8] = [0x00, 0x01, 0x12, extended ? 0x08 : 0x04, extended ? 0x12 : 0x11, type << 4 | group, sub, seq]
        if extended { p += [dataUnit, last ? 0x00 : 0x01] + be16(errorCode) }
        let d: [UInt8] = [returnCode, transportSize] + be16(payload.count) + payload
        return s7(rosctr: 7, ref: ref, params: p, data: d)
    }

    /// An S7ANY item address.
    static func item(area: UInt8, db: Int = 0, byte: Int, bit: Int = 0, transportSize: UInt8 = 0x02, count: Int) -> [UInt8] {
        let address = byte << 3 | bit
        return [0x12, 0x0A, 0x10, transportSize] + be16(count) + be16(db) + [area, UInt8((address >> 16) & 0xFF), UInt8((address >> 8) & 0xFF), UInt8(address & 0xFF)]
    }

    /// COTP CR with calling/called TSAPs and TPDU size.
    static func connectionRequest(srcTSAP: [UInt8] = [0x01, 0x00], dstTSAP: [UInt8] = [0x01, 0x02], tpduSize: UInt8 = 0x0A) -> [UInt8] {
        let params: [UInt8] = [0xC0, 0x01, tpduSize, 0xC1, UInt8(srcTSAP.count)] + srcTSAP + [0xC2, UInt8(dstTSAP.count)] + dstTSAP
        let fixed: [UInt8] = [0xE0, 0x00, 0x00, 0x00, 0x01, 0x00]
        return tpkt([UInt8(fixed.count + params.count)] + fixed + params)
    }
}

/// Runs the dissector the way the engine does: unconsumed tails are re-presented with the next bytes.
final class Harness {
    let sink = EventSink()
    var dissector = S7commDissector()
    var tails: [[UInt8]] = [[], []]
    var frame: UInt64 = 0
    /// Lines of all record kinds, parsed, in order of writing (drained from the sink after each feed).
    var pdus: [[String: Any]] = []
    var transactions: [[String: Any]] = []
    var operations: [Records.Operation] = []
    var anomalies: [Anomaly] = []

    init(records: Bool = true, transactions: Bool = true) {
        sink.pduRecordsEnabled = records
        sink.transactionRecordsEnabled = transactions
        sink.flow = FlowContext(initiator: Endpoint(ip: IPAddress(v4: 0x0A00_0001), port: 40000),
                                responder: Endpoint(ip: IPAddress(v4: 0x0A00_0002), port: 102), transport: .tcp)
    }

    /// Feeds one segment from `side` as the next packet.
    func feed(_ bytes: [UInt8], side: FlowSide = .initiator) {
        frame += 1
        sink.frame = frame
        sink.time = PacketTime(seconds: Int64(frame), microseconds: 0)
        let s = Int(side.rawValue)
        let input = tails[s] + bytes
        let used = ByteView.with(input) { dissector.consume($0, side: side, sink: sink) }
        #expect(used >= 0 && used <= input.count)
        tails[s] = Array(input[min(used, input.count)...])
        drain()
    }

    func gap(_ side: FlowSide = .initiator, length: Int = 100) {
        tails[Int(side.rawValue)] = []
        dissector.gap(side: side, length: length, sink: sink)
        drain()
    }

    func finish() { dissector.finish(sink: sink); drain() }

    func drain() {
        pdus += lines(.pdu)
        transactions += lines(.s7comm)
        operations += sink.operations; sink.operations.removeAll()
        anomalies += sink.anomalies; sink.anomalies.removeAll()
    }

    private func lines(_ kind: RecordKind) -> [[String: Any]] {
        let text = String(decoding: sink.lines[kind.rawValue], as: UTF8.self)
        sink.lines[kind.rawValue].removeAll()
        return text.split(separator: "\n").map { line in
            let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8))
            #expect(obj != nil, "invalid JSON: \(line)")
            return obj as? [String: Any] ?? [:]
        }
    }

    /// The `s7comm` objects of the pdu records so far.
    var s7: [[String: Any]] { pdus.compactMap { $0["s7comm"] as? [String: Any] } }
    /// The `s7comm_plus` objects of the pdu records so far.
    var plus: [[String: Any]] { pdus.compactMap { $0["s7comm_plus"] as? [String: Any] } }
    /// The `s7comm` objects of the transaction records so far.
    var tx: [[String: Any]] { transactions.compactMap { $0["s7comm"] as? [String: Any] } }
}

extension Dictionary where Key == String, Value == Any {
    func int(_ k: String) -> Int? { (self[k] as? NSNumber)?.intValue }
    func str(_ k: String) -> String? { self[k] as? String }
    func bool(_ k: String) -> Bool? { (self[k] as? NSNumber)?.boolValue }
    func obj(_ k: String) -> [String: Any]? { self[k] as? [String: Any] }
    func arr(_ k: String) -> [[String: Any]]? { self[k] as? [[String: Any]] }
}
