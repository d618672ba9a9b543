import Foundation
import Testing
import Wire
import Records
@testable import DNP3

/// Builds DNP3 wire bytes for tests: link frames with real CRCs, transport segments.
enum Wire3 {
    static func crc(_ bytes: [UInt8]) -> UInt16 {
        ByteView.with(bytes) { DNP3CRC.compute($0, from: 0, count: bytes.count) }
    }

    /// One link frame: header + user data in CRC'd blocks.
    static func frame(control: UInt8 = 0xC4, destination: UInt16 = 10, source: UInt16 = 1, userData: [UInt8]) -> [UInt8] {
        var h: [UInt8] = [0x05, 0x64, UInt8(userData.count + 5), control,
                          UInt8(destination & 0xFF), UInt8(destination >> 8), UInt8(source & 0xFF), UInt8(source >> 8)]
        let c = crc(h); h += [UInt8(c & 0xFF), UInt8(c >> 8)]
        var i = 0
        while i < userData.count {
            let block = Array(userData[i..<min(i + 16, userData.count)])
            let bc = crc(block)
            h += block + [UInt8(bc & 0xFF), UInt8(bc >> 8)]
            i += 16
        }
        return h
    }

    /// A request from the master (DIR=1, PRM=1, unconfirmed user data) carrying one whole fragment.
    static func request(_ app: [UInt8], transportSequence: UInt8 = 0, destination: UInt16 = 10, source: UInt16 = 1) -> [UInt8] {
        frame(control: 0xC4, destination: destination, source: source, userData: [0xC0 | (transportSequence & 0x3F)] + app)
    }

    /// A response from the outstation (DIR=0, PRM=1) carrying one whole fragment.
    static func response(_ app: [UInt8], transportSequence: UInt8 = 0, destination: UInt16 = 1, source: UInt16 = 10) -> [UInt8] {
        frame(control: 0x44, destination: destination, source: source, userData: [0xC0 | (transportSequence & 0x3F)] + app)
    }

    /// Splits a fragment into transport segments (≤ 249 octets each) and wraps each in a link frame.
    static func segmented(_ app: [UInt8], segmentSize: Int = 249, firstSequence: UInt8 = 0, control: UInt8 = 0x44,
                          destination: UInt16 = 1, source: UInt16 = 10) -> [[UInt8]] {
        var out: [[UInt8]] = [], i = 0, seq = firstSequence
        while i < app.count {
            let end = min(i + segmentSize, app.count)
            var th = seq & 0x3F
            if i == 0 { th |= 0x40 }
            if end == app.count { th |= 0x80 }
            out.append(frame(control: control, destination: destination, source: source, userData: [th] + Array(app[i..<end])))
            i = end; seq = (seq &+ 1) & 0x3F
        }
        return out
    }

    static func le16(_ v: UInt16) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8)] }
    static func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8((v >> (8 * UInt32($0))) & 0xFF) } }
    static func le48(_ v: UInt64) -> [UInt8] { (0..<6).map { UInt8((v >> (8 * UInt64($0))) & 0xFF) } }
}

/// Runs a dissector the way the engine does: unconsumed tails are re-presented with the next bytes.
final class Harness {
    let sink = EventSink()
    var dissector = DNP3Dissector()
    var tails: [[UInt8]] = [[], []]
    var frame: UInt64 = 0

    init(transport: Transport = .tcp, records: Bool = true, transactions: Bool = false) {
        sink.pduRecordsEnabled = records
        sink.transactionRecordsEnabled = transactions
        sink.flow = FlowContext(initiator: Endpoint(ip: IPAddress(v4: 0x0A00_0001), port: 40000),
                                responder: Endpoint(ip: IPAddress(v4: 0x0A00_0002), port: 20000), transport: transport)
    }

    /// Feeds one segment (or datagram) from `side`, as packet number `frame` (auto-incremented when nil).
    func feed(_ bytes: [UInt8], side: FlowSide = .initiator, frame: UInt64? = nil, seconds: Int64? = nil) {
        self.frame = frame ?? (self.frame + 1)
        sink.frame = self.frame
        sink.time = PacketTime(seconds: seconds ?? Int64(self.frame), microseconds: 0)
        let s = Int(side.rawValue)
        let input = sink.flow.transport == .udp ? bytes : tails[s] + bytes
        let used = ByteView.with(input) { dissector.consume($0, side: side, sink: sink) }
        #expect(used >= 0 && used <= input.count)
        tails[s] = sink.flow.transport == .udp ? [] : Array(input[used...])
        #expect(tails[s].count <= DNP3Dissector.maximumPDUSize)
    }

    func finish() { dissector.finish(sink: sink) }

    /// The `dnp3` objects of the pdu records written so far.
    var pdus: [[String: Any]] { records(.pdu).compactMap { $0["dnp3"] as? [String: Any] } }
    /// The whole pdu records.
    func records(_ kind: RecordKind) -> [[String: Any]] {
        let text = String(decoding: sink.lines[kind.rawValue], as: UTF8.self)
        return text.split(separator: "\n").map { line in
            let object = try? JSONSerialization.jsonObject(with: Data(line.utf8))
            #expect(object != nil, "invalid JSON: \(line)")
            return object as? [String: Any] ?? [:]
        }
    }
    /// Anomaly kinds emitted so far.
    var anomalies: [String] { sink.anomalies.map { $0.kind.description } }
    /// Function codes of the pdu records, in order.
    var functionCodes: [Int] { pdus.compactMap { $0["function_code"] as? Int } }
}

extension Dictionary where Key == String, Value == Any {
    /// The objects array of a dnp3 record.
    var objects: [[String: Any]] { self["objects"] as? [[String: Any]] ?? [] }
    /// The points of the first object.
    var points: [[String: Any]] { objects.first?["points"] as? [[String: Any]] ?? [] }
}
