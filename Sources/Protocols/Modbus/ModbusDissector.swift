// The engine's entry point into Modbus/TCP: framing → parser → session → classification → sink.
//
// Per call: expire timed-out requests, then cut the bytes into ADUs (Framing.swift), parse each PDU
// (Parser.swift), report what is wrong with it, and then
//   request  → one Operation for policy, a pending-table entry, a `pdu` record;
//   response → pair it with its request (Session.swift), check it fits, a `pdu` record and one paired
//              `modbus` transaction record (matched, or unmatched with a reason).
// Anomaly kinds: bad_protocol_id, bad_length, resync, unknown_function_code, unknown_exception_code,
// illegal_quantity, bad_coil_value, byte_count_mismatch, response_mismatch, unsolicited_response,
// request_flood, exception_storm. (`not_modbus_on_modbus_port` comes from the engine when `probe` rejects.)
import Wire
import Records

/// Per-flow Modbus/TCP state: the engine's entry point into this protocol.
public struct ModbusDissector: AppDissector {
    /// Modbus/TCP.
    public static var appProtocol: AppProtocol { .modbus }
    /// TCP/UDP 502 (IANA "mbap").
    public static func isWellKnownPort(_ port: UInt16) -> Bool { port == 502 }
    /// The largest ADU we accept (UMAS frames beyond the spec's 260 bytes included).
    public static var maximumPDUSize: Int { Int(MBAPHeader.toleratedLength) + 6 }

    /// Accepts only bytes that are Modbus ADUs by content (see `MBAPHeader.plausibility`); the port
    /// plays no part, so garbage on 502 is rejected and Modbus on any other port is found.
    public static func probe(_ bytes: ByteView, side: FlowSide, transport: Transport) -> ProbeVerdict {
        var offset = 0, seen = 0
        while offset < bytes.count {
            switch MBAPHeader.plausibility(bytes, at: offset) {
            case .implausible: return .reject
            case .incomplete: return seen > 0 ? .accept : .needMoreData
            case .plausible:
                seen += 1
                offset += Int(bytes.u16be(offset + 4)) + 6
            }
        }
        return seen > 0 ? .accept : .needMoreData
    }

    /// Bounds and thresholds (pending table, timeout, flood, storm).
    public var limits: ModbusLimits {
        get { session.limits }
        set { session.limits = newValue }
    }

    /// What the sink says about the current delivery, read once per call: every read of a class
    /// property costs a dynamic exclusivity check, which is measurable per PDU.
    struct Delivery {
        var frame: UInt64
        var time: PacketTime
        var pduRecords: Bool
        var transactionRecords: Bool
        init(_ sink: EventSink) {
            frame = sink.frame; time = sink.time
            pduRecords = sink.pduRecordsEnabled; transactionRecords = sink.transactionRecordsEnabled
        }
    }

    var initiatorFraming = ModbusFraming()
    var responderFraming = ModbusFraming()
    var session = ModbusSession()
    var requesterSide: FlowSide? = nil
    var isUDP = false

    /// A fresh flow: both directions synced, nothing pending.
    public init() {}

    /// Frames, parses, pairs and reports every whole ADU in `bytes`; returns the bytes used (ADUs and
    /// skipped garbage). A partial ADU at the end is left for the engine to present again.
    public mutating func consume(_ bytes: ByteView, side: FlowSide, sink: EventSink) -> Int {
        if requesterSide == nil {
            requesterSide = Self.requesterSide(of: sink.flow)
            isUDP = sink.flow.transport == .udp
        }
        // Modbus/UDP: every datagram is one or more whole ADUs, so each starts in sync.
        if isUDP { if side == .initiator { initiatorFraming = ModbusFraming() } else { responderFraming = ModbusFraming() } }
        let delivery = Delivery(sink)
        if session.pendingCount > 0 { expireRequests(at: delivery.time, sink: sink) }
        var offset = 0
        while true {
            let step = side == .initiator ? initiatorFraming.next(bytes, from: offset) : responderFraming.next(bytes, from: offset)
            switch step {
            case let .adu(o, header):
                handleADU(bytes, at: o, header: header, side: side, delivery: delivery, sink: sink)
                offset = o + header.aduLength
            case let .badHeader(o, kind, value):
                sink.emit(Anomaly(layer: "modbus", kind: kind == .protocolID ? "bad_protocol_id" : "bad_length",
                                  offset: kind == .protocolID ? o + 2 : o + 4, value: Int64(value)), sender: side)
                offset = o
            case let .resynced(o, skipped):
                sink.emit(Anomaly(layer: "modbus", kind: "resync", offset: o, value: Int64(skipped)), sender: side)
                offset = o
            case let .needMoreData(consumed):
                return consumed
            }
        }
    }

    /// Bytes are missing from `side`: hunt for the next plausible ADU (pending requests stay; their
    /// responses may still come, or they time out).
    public mutating func gap(side: FlowSide, length: Int, sink: EventSink) {
        if side == .initiator { initiatorFraming.lostSync() } else { responderFraming.lostSync() }
    }

    /// The flow ended: every pending request is reported unanswered (`timeout` or `no_response`).
    public mutating func finish(sink: EventSink) {
        while let i = session.oldestIndex() {
            let timedOut = sink.time.microseconds(since: session.entries[i].time) > session.limits.responseTimeoutMicroseconds
            reportUnanswered(i, reason: timedOut ? "timeout" : "no_response", sink: sink)
        }
    }

    /// The side that sends requests: the one talking to port 502 when exactly one side uses it
    /// (a midstream pickup may have guessed the initiator wrong), else the initiator.
    static func requesterSide(of flow: FlowContext) -> FlowSide {
        isWellKnownPort(flow.initiator.port) && !isWellKnownPort(flow.responder.port) ? .responder : .initiator
    }

    // MARK: - One ADU

    mutating func handleADU(_ bytes: ByteView, at offset: Int, header h: MBAPHeader, side: FlowSide, delivery d: Delivery, sink: EventSink) {
        let pduBytes = bytes.slice(from: offset + MBAPHeader.size, length: h.pduLength)
        let direction: ModbusDirection = side == (requesterSide ?? .initiator) ? .request : .response
        let pdu = ModbusPDU.parse(pduBytes, direction: direction)
        sink.countPDU(.modbus)
        reportProblems(pdu, at: offset + MBAPHeader.size, side: side, sink: sink)
        if h.length > MBAPHeader.maximumLength && pdu.functionCode != .umas {
            sink.emit(Anomaly(layer: "modbus", kind: "bad_length", offset: offset + 4, value: Int64(h.length)), sender: side)
        }
        if direction == .request {
            handleRequest(pdu, bytes: pduBytes, header: h, at: offset, side: side, delivery: d, sink: sink)
        } else {
            handleResponse(pdu, bytes: pduBytes, header: h, at: offset, side: side, delivery: d, sink: sink)
        }
    }

    mutating func handleRequest(_ pdu: ModbusPDU, bytes: ByteView, header h: MBAPHeader, at offset: Int, side: FlowSide,
                                delivery d: Delivery, sink: EventSink) {
        let c = ModbusClassification.of(pdu)
        sink.emit(Self.operation(pdu, bytes: bytes, header: h, classification: c), sender: side)
        if let i = session.evictionCandidate() { reportUnanswered(i, reason: "evicted", sink: sink) }
        session.insert(transactionID: h.transactionID, unitID: h.unitID, pdu: pdu, classification: c, bytes: bytes,
                       storing: d.transactionRecords, frame: d.frame, time: d.time)
        if session.noteRequest() {
            sink.emit(Anomaly(layer: "modbus", kind: "request_flood", offset: offset,
                              value: Int64(session.requestsSinceResponse)), sender: side)
        }
        if d.pduRecords {
            writePDURecord(pdu, bytes: bytes, header: h, classification: c, request: nil, side: side, sink: sink)
        }
    }

    mutating func handleResponse(_ pdu: ModbusPDU, bytes: ByteView, header h: MBAPHeader, at offset: Int, side: FlowSide,
                                 delivery d: Delivery, sink: EventSink) {
        let match = session.match(transactionID: h.transactionID, unitID: h.unitID, functionCode: pdu.functionCode)
        var c = ModbusClassification.of(pdu)
        if let m = match {
            let request = session.entries[m.index]
            c = request.classification
            if !m.sameFunction {
                sink.emit(Anomaly(layer: "modbus", kind: "response_mismatch", offset: offset + MBAPHeader.size,
                                  value: Int64(pdu.rawFunctionCode)), sender: side)
            } else if !pdu.isException {
                checkFit(request: request.pdu, response: pdu, at: offset + MBAPHeader.size, side: side, sink: sink)
            }
        } else {
            sink.emit(Anomaly(layer: "modbus", kind: "unsolicited_response", offset: offset,
                              value: Int64(h.transactionID)), sender: side)
        }
        if session.noteResponse(exception: pdu.isException, at: d.time) {
            sink.emit(Anomaly(layer: "modbus", kind: "exception_storm", offset: offset + MBAPHeader.size + 1,
                              value: Int64(session.limits.exceptionStormThreshold)), sender: side)
        }
        if d.pduRecords {
            var request: PendingRequest? = nil
            if let m = match { request = session.entries[m.index] }
            writePDURecord(pdu, bytes: bytes, header: h, classification: c, request: request, side: side, sink: sink)
        }
        if d.transactionRecords {
            writeTransaction(requestIndex: match?.index, response: pdu, responseBytes: bytes, header: h,
                             classification: c, reason: match == nil ? "unsolicited" : "", responder: side, sink: sink)
        }
        if let m = match { session.remove(m.index) }
    }

    /// A response that does not fit its request: wrong byte count for the quantity, or an echo that differs.
    func checkFit(request q: ModbusPDU, response r: ModbusPDU, at base: Int, side: FlowSide, sink: EventSink) {
        var expectedBytes: Int32 = -1
        switch r.functionCode {
        case .readCoils, .readDiscreteInputs: if q.quantity > 0 { expectedBytes = (q.quantity + 7) / 8 }
        case .readHoldingRegisters, .readInputRegisters, .readWriteMultipleRegisters: if q.quantity > 0 { expectedBytes = 2 * q.quantity }
        default: break
        }
        if expectedBytes >= 0 && r.byteCount >= 0 && r.byteCount != expectedBytes {
            sink.emit(Anomaly(layer: "modbus", kind: "byte_count_mismatch", offset: base + 1, value: Int64(r.byteCount)), sender: side)
            return
        }
        let echoDiffers: Bool
        switch r.functionCode {
        case .writeSingleCoil, .writeSingleRegister: echoDiffers = r.address != q.address || r.value != q.value
        case .writeMultipleCoils, .writeMultipleRegisters: echoDiffers = r.address != q.address || r.quantity != q.quantity
        case .maskWriteRegister: echoDiffers = r.address != q.address || r.andMask != q.andMask || r.orMask != q.orMask
        case .diagnostics: echoDiffers = r.subfunction != q.subfunction
        case .encapsulatedInterfaceTransport: echoDiffers = r.meiType != q.meiType
        default: echoDiffers = false
        }
        if echoDiffers {
            sink.emit(Anomaly(layer: "modbus", kind: "response_mismatch", offset: base + 1, value: Int64(r.address)), sender: side)
        }
    }

    /// One anomaly per problem the parser flagged.
    func reportProblems(_ pdu: ModbusPDU, at base: Int, side: FlowSide, sink: EventSink) {
        let p = pdu.problems
        guard !p.isEmpty else { return }
        let o = base + pdu.problemOffset, v = pdu.problemValue
        if p.contains(.unknownFunction) {
            sink.emit(Anomaly(layer: "modbus", kind: "unknown_function_code", offset: base, value: Int64(pdu.functionCode.rawValue)), sender: side)
        }
        if p.contains(.unknownException) {
            sink.emit(Anomaly(layer: "modbus", kind: "unknown_exception_code", offset: base + 1, value: Int64(pdu.exceptionCode ?? 0)), sender: side)
        }
        if p.contains(.illegalQuantity) { sink.emit(Anomaly(layer: "modbus", kind: "illegal_quantity", offset: o, value: v), sender: side) }
        if p.contains(.badCoilValue) { sink.emit(Anomaly(layer: "modbus", kind: "bad_coil_value", offset: base + 3, value: Int64(pdu.value)), sender: side) }
        if p.contains(.byteCountMismatch) { sink.emit(Anomaly(layer: "modbus", kind: "byte_count_mismatch", offset: o, value: v), sender: side) }
        if p.contains(.badLength) { sink.emit(Anomaly(layer: "modbus", kind: "bad_length", offset: o, value: v), sender: side) }
    }

    /// Reports pending request `index` as unanswered (paired record with `matched: false`) and frees it.
    mutating func reportUnanswered(_ index: Int, reason: StaticString, sink: EventSink) {
        if sink.transactionRecordsEnabled {
            writeTransaction(requestIndex: index, response: nil, responseBytes: .empty, header: nil,
                             classification: session.entries[index].classification, reason: reason,
                             responder: (requesterSide ?? .initiator).opposite, sink: sink)
        }
        session.remove(index)
    }

    mutating func expireRequests(at now: PacketTime, sink: EventSink) {
        while let i = session.expired(at: now) { reportUnanswered(i, reason: "timeout", sink: sink) }
    }

    /// The policy view of a request.
    static func operation(_ pdu: ModbusPDU, bytes: ByteView, header h: MBAPHeader, classification c: ModbusClassification) -> Operation {
        var op = Operation(appProtocol: .modbus, access: c.access, functionCode: UInt16(pdu.functionCode.rawValue), function: c.function)
        op.subfunction = c.subfunction
        op.unitID = Int32(h.unitID)
        op.broadcast = h.unitID == 0
        switch pdu.functionCode {
        case .readWriteMultipleRegisters:
            // The write half is what the class is about.
            op.address = Int64(pdu.writeAddress); op.quantity = Int64(max(0, pdu.writeQuantity))
        case .readFileRecord, .writeFileRecord:
            // First sub-request: record number and length (file number is in the record).
            // PDU: 0 FC, 1 byte count, 2 reference type, 3 file, 5 record number, 7 record length.
            if bytes.count >= 9 { op.address = Int64(bytes.u16be(5)); op.quantity = Int64(bytes.u16be(7)) }
        default:
            op.address = Int64(pdu.address); op.quantity = Int64(max(0, pdu.quantity))
        }
        return op
    }
}
