import Foundation
import Records
import Wire
@testable import Modbus

/// Bytes from hex text; spaces and newlines are ignored so that test vectors can group fields.
func hex(_ text: String) -> [UInt8] {
    let digits = text.filter { !$0.isWhitespace }
    precondition(digits.count % 2 == 0, "odd hex: \(text)")
    var out: [UInt8] = []
    var i = digits.startIndex
    while i < digits.endIndex {
        let j = digits.index(i, offsetBy: 2)
        out.append(UInt8(digits[i..<j], radix: 16)!)
        i = j
    }
    return out
}

/// One Modbus/TCP ADU: MBAP header (transaction id, protocol id 0, length, unit id) + PDU.
func adu(_ transactionID: UInt16, unit: UInt8 = 1, _ pdu: String, protocolID: UInt16 = 0) -> [UInt8] {
    let p = hex(pdu)
    let length = UInt16(p.count + 1)
    return [UInt8(transactionID >> 8), UInt8(transactionID & 0xFF), UInt8(protocolID >> 8), UInt8(protocolID & 0xFF),
            UInt8(length >> 8), UInt8(length & 0xFF), unit] + p
}

/// Parses a PDU given as hex and returns it with its JSON fields (as `writeFields` writes them).
func decode(_ pduHex: String, _ direction: ModbusDirection, request: ModbusPDU? = nil) -> (ModbusPDU, String) {
    ByteView.with(hex(pduHex)) { view in
        let pdu = ModbusPDU.parse(view, direction: direction)
        var w = JSONWriter()
        w.beginObject()
        ModbusJSON.writeFields(pdu, bytes: view, request: request, into: &w)
        w.endObject()
        return (pdu, String(decoding: w.bytes, as: UTF8.self))
    }
}

/// Drives a `ModbusDissector` the way the engine does: per-side carry of unconsumed bytes, frame
/// numbers and packet times, then collects what the dissector wrote.
final class Harness {
    var dissector = ModbusDissector()
    let sink = EventSink()
    private(set) var frame: UInt64 = 0
    private(set) var time = PacketTime(seconds: 1_700_000_000, microseconds: 0)
    private var carry: [[UInt8]] = [[], []]

    /// PDU records' `modbus` objects, in order.
    private(set) var pdus: [[String: Any]] = []
    /// Whole PDU records.
    private(set) var pduRecords: [[String: Any]] = []
    /// Transaction records' `modbus` objects.
    private(set) var transactions: [[String: Any]] = []
    /// Whole transaction records.
    private(set) var transactionRecords: [[String: Any]] = []
    private(set) var anomalies: [Anomaly] = []
    private(set) var operations: [Records.Operation] = []

    init(serverPort: UInt16 = 502, clientPort: UInt16 = 50_000, records: Bool = true, limits: ModbusLimits = .default,
         transport: Transport = .tcp) {
        sink.flow = FlowContext(initiator: Endpoint(ip: IPAddress(v4: 0x0A00_0001), port: clientPort),
                                responder: Endpoint(ip: IPAddress(v4: 0x0A00_0002), port: serverPort), transport: transport)
        sink.pduRecordsEnabled = records
        sink.transactionRecordsEnabled = records
        dissector.limits = limits
    }

    /// Delivers `bytes` from `side` as one packet `microseconds` after the previous one; returns what the
    /// dissector consumed of (carry + bytes).
    @discardableResult
    func send(_ bytes: [UInt8], from side: FlowSide = .initiator, after microseconds: Int64 = 1_000) -> Int {
        frame += 1
        time = time.adding(microseconds: microseconds)
        sink.frame = frame; sink.time = time
        let s = Int(side.rawValue)
        carry[s].append(contentsOf: bytes)
        let used = carry[s].withUnsafeBytes { dissector.consume(ByteView($0), side: side, sink: sink) }
        precondition(used >= 0 && used <= carry[s].count, "consumed \(used) of \(carry[s].count)")
        carry[s].removeFirst(used)
        // Over UDP the engine hands each datagram over whole and drops what is left.
        if sink.flow.transport == .udp { carry[s].removeAll() }
        collect()
        return used
    }

    /// Bytes left unconsumed on `side`.
    func pending(_ side: FlowSide) -> Int { carry[Int(side.rawValue)].count }

    /// A hole of `length` bytes in `side`'s stream.
    func gap(_ side: FlowSide, length: Int = 100) {
        carry[Int(side.rawValue)].removeAll()
        dissector.gap(side: side, length: length, sink: sink)
        collect()
    }

    /// The flow ends `microseconds` after the last packet.
    func finish(after microseconds: Int64 = 1_000) {
        time = time.adding(microseconds: microseconds)
        sink.time = time
        dissector.finish(sink: sink)
        collect()
    }

    /// Anomaly kinds seen, in order.
    var anomalyKinds: [String] { anomalies.map { $0.kind.description } }

    fileprivate func clearAll() {
        pdus = []; pduRecords = []; transactions = []; transactionRecords = []; anomalies = []; operations = []
    }

    private func collect() {
        for (kind, into) in [(RecordKind.pdu, 0), (RecordKind.modbus, 1)] {
            let text = String(decoding: sink.lines[kind.rawValue], as: UTF8.self)
            for line in text.split(separator: "\n") {
                let object = try! JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
                let modbus = object["modbus"] as! [String: Any]
                if into == 0 { pduRecords.append(object); pdus.append(modbus) } else { transactionRecords.append(object); transactions.append(modbus) }
            }
            sink.lines[kind.rawValue].removeAll(keepingCapacity: true)
        }
        anomalies += sink.anomalies; sink.anomalies.removeAll()
        operations += sink.operations; sink.operations.removeAll()
    }
}

extension Harness {
    /// Forgets what was collected so far (the flow's state stays).
    func clearCollected() { clearAll() }
}
