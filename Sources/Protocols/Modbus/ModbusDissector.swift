// The engine's entry point into Modbus/TCP: framing → parser → session → classification → sink.
//
// Per call: expire timed-out requests, then cut the bytes into ADUs (Framing.swift), parse each PDU
// (Parser.swift), report what is wrong with it, and then
//   request  → one Operation for policy, a pending-table entry, a `pdu` record;
//   response → pair it with its request (Session.swift), check it fits, a `pdu` record and one paired
//              `modbus` transaction record (matched, or unmatched with a reason).
// Whole, in-sync ADUs are cut straight from the bytes; a well-formed request or response of FC 1–6, 15 or
// 16 with records off is handled without a parsed `ModbusPDU` (CommonPDUs.swift), everything else here. With records
// off, a delivery of exactly one such ADU (a request with nothing pending, or the answer to the one pending request)
// is the per-packet case: it runs inline in `consumeQuietly`, and whatever is unusual about it (anomalies,
// pipelining, expiry) is an out-of-line call.
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
    /// The flow context is read once, at the first delivery (`prepare`: which side requests, TCP or UDP).
    public static var readsFlowContextAfterFirstDelivery: Bool { false }
    /// The first line: a quiet polling delivery reads and writes nothing beyond it (the second holds what exceptions,
    /// pipelining, hunts, limits and records need). A constant, so that the engine's prefetch folds it
    /// (`perPacketStateBytesFromLayout` says what it must be; a test keeps them equal).
    public static var perPacketStateBytes: Int { 64 }
    /// `perPacketStateBytes` from the layout: the end of the session's quiet part, in cache lines.
    static var perPacketStateBytesFromLayout: Int { (quietBytes + 63) & ~63 }
    /// Bytes from the state's start to the end of what a quiet polling delivery touches.
    static var quietBytes: Int { MemoryLayout<Self>.offset(of: \Self.session)! + ModbusSession.quietBytes }

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
                offset += Int(bytes.loadBE16(offset + 4)) + 6
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
        /// The delivery of a sink whose records are known to be off (no flag reads).
        @inline(__always) init(quiet sink: EventSink) {
            frame = sink.frame; time = sink.time
            pduRecords = false; transactionRecords = false
        }
    }

    // 128 bytes, two cache lines; a quiet polling delivery (a request with nothing pending, or the answer to the one
    // pending request, records off) reads and writes only the first: these 6 bytes, then the session's quiet part (56
    // bytes). The session's second part and the framers' skip counts fill the second line (a test keeps the size and
    // the split). With entry 0 as one line and the counters, sides and framers in the other, every delivery read both
    // lines and a request wrote both.
    /// What `prepare` has left to do: one byte, so that a delivery tests it with one compare (`requesterSide` as an
    /// optional beside an `isUDP` flag took two, and the direction a third).
    var preparation = Preparation.firstDelivery
    /// The side that sends requests (`.initiator` until the first delivery decides it).
    var requesterSide: FlowSide = .initiator
    /// `initiatorFraming.hunting`, apart from its skip count: read by every delivery.
    var initiatorHunting = false
    /// `responderFraming.hunting`.
    var responderHunting = false
    /// The unit id of the flow's previous request (-1: none yet), for `Operation.unitRepeated`.
    var lastRequestUnit: Int16 = -1
    var session = ModbusSession()
    /// `initiatorFraming.skipped` (only a hunt reads it).
    var initiatorSkipped: UInt32 = 0
    /// `responderFraming.skipped`.
    var responderSkipped: UInt32 = 0

    /// The initiator's framer, from its two parts.
    var initiatorFraming: ModbusFraming {
        get { ModbusFraming(hunting: initiatorHunting, skippedCount: initiatorSkipped) }
        set { initiatorHunting = newValue.hunting; initiatorSkipped = newValue.skippedCount }
    }
    /// The responder's framer, from its two parts.
    var responderFraming: ModbusFraming {
        get { ModbusFraming(hunting: responderHunting, skippedCount: responderSkipped) }
        set { responderHunting = newValue.hunting; responderSkipped = newValue.skippedCount }
    }
    /// Whether `side`'s framer is hunting (`mutating`, so that a call reads the flag in place, not from a copy of the
    /// state).
    @inline(__always) mutating func hunting(_ side: FlowSide) -> Bool { side == .initiator ? initiatorHunting : responderHunting }

    /// A fresh flow: both directions synced, nothing pending.
    public init() {}

    /// Frames, parses, pairs and reports every whole ADU in `bytes`; returns the bytes used (ADUs and
    /// skipped garbage). A partial ADU at the end is left for the engine to present again.
    @inlinable
    public mutating func consume(_ bytes: ByteView, side: FlowSide, sink: EventSink) -> Int {
        // Two out-of-line bodies behind one test, so that neither pays for the other's frame: records off (`replay`
        // without logs, the per-packet case) and records on (`zonewatch dissect`, `--out`). Inlinable, so that the
        // engine calls the one it needs directly.
        if sink.recordsEnabled { return consumeRecording(bytes, side: side, sink: sink) }
        let handled = consumeQuietly(bytes, side: side, sink: sink)
        return handled >= 0 ? handled : consumeQuietlyRest(bytes, side: side, sink: sink)
    }

    /// What every delivery starts with: the flow's sides known, requests that timed out reported, the packet's
    /// stamp and this side's direction.
    @inline(__always)
    mutating func beginDelivery(side: FlowSide, sink: EventSink) -> (Delivery, ModbusDirection) {
        if preparation != .done { prepare(side: side, sink: sink) }
        let delivery = Delivery(sink)
        if session.pendingCount > 0 && session.anyExpired(at: delivery.time) { expireRequests(at: delivery.time, sink: sink) }
        return (delivery, side == requesterSide ? .request : .response)
    }

    /// `consume` with records off for the usual delivery, one whole in-sync ADU holding a common PDU: the bytes used;
    /// -1 for any other delivery, with only the delivery's preliminaries done (`prepare`, expiry), which
    /// `consumeQuietlyRest` then takes from the start. Every other case is left to the caller so that no exit from here
    /// needs the delivery's values in place for a call.
    @inline(never) @usableFromInline
    mutating func consumeQuietly(_ bytes: ByteView, side: FlowSide, sink: EventSink) -> Int {
        // `beginDelivery` without reading the record flags: `consume` came here because both are off.
        if preparation != .done { prepare(side: side, sink: sink) }
        let delivery = Delivery(quiet: sink)
        if session.pendingCount > 0 && session.anyExpired(at: delivery.time) { expireRequests(at: delivery.time, sink: sink) }
        let direction: ModbusDirection = side == requesterSide ? .request : .response
        // The usual case, inline: the delivery is one whole, in-sync ADU holding a common PDU (CommonPDUs.swift).
        // No loop here: a loop's hoisted values cost spills and reloads on every call, and several ADUs in one
        // delivery are rare enough for `consumeQuietlyRest` (whose loop takes them the same way).
        // `wholeADULength` and `handleQuietADU`'s length bound in one test, for an ADU that is the whole delivery:
        // 8...260 bytes (MBAP length 2...254), protocol id 0, the MBAP length the delivery's.
        let n = bytes.count
        if n >= MBAPHeader.size + 1 && n <= Int(MBAPHeader.maximumLength) + 6
            && !hunting(side)
            && bytes.loadBE16(2) == 0 && Int(bytes.loadBE16(4)) + 6 == n {
            let pdu = bytes.sliceWithin(from: MBAPHeader.size, length: n - MBAPHeader.size)
            // A request and a response each with its own copy of the parse and the handling, the direction a constant
            // in each: one shared copy kept the fields of both in the same registers, and spilled them.
            if direction == .request {
                if let f = ModbusFields.common(pdu, direction: .request) {
                    handleCommon(f, transactionID: bytes.loadBE16(0), unitID: bytes.loadU8(6), at: 0, side: side,
                                 direction: .request, delivery: delivery, sink: sink)
                    return n
                }
            } else if let f = ModbusFields.common(pdu, direction: .response) {
                handleCommon(f, transactionID: bytes.loadBE16(0), unitID: bytes.loadU8(6), at: 0, side: side,
                             direction: .response, delivery: delivery, sink: sink)
                return n
            }
        }
        return -1
    }

    /// `consumeQuietly` for a delivery it declined (several ADUs, other PDUs, partial or bad headers, hunts): the
    /// general loop, the flow already prepared and expired requests reported (the delivery's stamp and direction are as
    /// they were there).
    @inline(never) @usableFromInline
    mutating func consumeQuietlyRest(_ bytes: ByteView, side: FlowSide, sink: EventSink) -> Int {
        consumeSteps(bytes, from: 0, side: side, direction: side == requesterSide ? .request : .response,
                     delivery: Delivery(quiet: sink), sink: sink)
    }

    /// `consume` with records on.
    @inline(never) @usableFromInline
    mutating func consumeRecording(_ bytes: ByteView, side: FlowSide, sink: EventSink) -> Int {
        let (delivery, direction) = beginDelivery(side: side, sink: sink)
        return consumeSteps(bytes, from: 0, side: side, direction: direction, delivery: delivery, sink: sink)
    }

    /// The general loop: every whole ADU from `start` on, framing steps for the rest.
    @inline(__always)
    mutating func consumeSteps(_ bytes: ByteView, from start: Int, side: FlowSide, direction: ModbusDirection,
                               delivery: Delivery, sink: EventSink) -> Int {
        let common = !delivery.pduRecords && !delivery.transactionRecords
        var offset = start
        while true {
            // Common PDUs of whole, in-sync ADUs, all in one call (CommonPDUs.swift).
            if common {
                offset = consumeCommon(bytes, from: offset, side: side, direction: direction, delivery: delivery, sink: sink)
                // All of it: what the steps below would conclude, without them.
                if offset == bytes.count { return offset }
            }
            // In sync with a whole, well-formed ADU at `offset` (what `ModbusFraming.next` answers with `.adu`,
            // without building its step), read straight from the bytes.
            let isHunting = hunting(side)
            if let length = Self.wholeADULength(bytes, at: offset, hunting: isHunting) {
                let header = MBAPHeader(transactionID: bytes.loadBE16(offset), protocolID: 0, length: length,
                                        unitID: bytes.loadU8(offset + 6))
                handleADU(bytes, at: offset, header: header, side: side, direction: direction, delivery: delivery, sink: sink)
                offset += Int(length) + 6
                continue
            }
            // In sync and fewer than 4 bytes left (none, usually): nothing to judge yet (`next` would say the same).
            if !isHunting && !bytes.has(4, at: offset) { return offset }
            let (next, done) = frame(bytes, from: offset, side: side, direction: direction, delivery: delivery, sink: sink)
            if done { return next }
            offset = next
        }
    }

    /// Once per flow: which side sends requests, and whether it is Modbus/UDP; then, for UDP, resynchronises
    /// `side` (every datagram is one or more whole ADUs, so each starts in sync).
    @inline(never)
    mutating func prepare(side: FlowSide, sink: EventSink) {
        if preparation == .firstDelivery {
            requesterSide = Self.requesterSide(of: sink.flow)
            preparation = sink.flow.transport == .udp ? .everyDatagram : .done
        }
        if preparation == .everyDatagram {
            if side == .initiator { initiatorFraming = ModbusFraming() } else { responderFraming = ModbusFraming() }
        }
    }

    /// What a delivery must do before its bytes are read.
    enum Preparation: UInt8 {
        /// Nothing (Modbus/TCP, sides known).
        case done
        /// Learn the sides and the transport (the flow's first delivery).
        case firstDelivery
        /// Resynchronise the sending side (Modbus/UDP: every datagram starts in sync).
        case everyDatagram
    }

    /// One framing step at `offset` for whatever the common case does not cover (partial or bad headers, hunts,
    /// resynchronisation): the offset to go on from, or (`done`) the bytes consumed.
    @inline(never)
    mutating func frame(_ bytes: ByteView, from offset: Int, side: FlowSide, direction: ModbusDirection, delivery: Delivery,
                        sink: EventSink) -> (offset: Int, done: Bool) {
        let step = side == .initiator ? initiatorFraming.next(bytes, from: offset) : responderFraming.next(bytes, from: offset)
        switch step {
        case let .adu(o, header):
            if !handleCommonADU(bytes, at: o, header: header, side: side, direction: direction, delivery: delivery, sink: sink) {
                handleADU(bytes, at: o, header: header, side: side, direction: direction, delivery: delivery, sink: sink)
            }
            return (o + header.aduLength, false)
        case let .badHeader(o, kind, value):
            sink.emit(Anomaly(layer: "modbus", kind: kind == .protocolID ? "bad_protocol_id" : "bad_length",
                              offset: kind == .protocolID ? o + 2 : o + 4, value: Int64(value)), sender: side)
            return (o, false)
        case let .resynced(o, skipped):
            sink.emit(Anomaly(layer: "modbus", kind: "resync", offset: o, value: Int64(skipped)), sender: side)
            return (o, false)
        case let .needMoreData(consumed):
            return (consumed, true)
        }
    }

    /// The MBAP length of the ADU at `offset` when the framer is in sync and the ADU is whole with a sound
    /// header (protocol id 0, length 2...tolerated); nil for anything `ModbusFraming.next` must judge.
    @inline(__always)
    static func wholeADULength(_ bytes: ByteView, at offset: Int, hunting: Bool) -> UInt16? {
        guard !hunting, bytes.has(MBAPHeader.size + 1, at: offset) else { return nil }
        let length = bytes.loadBE16(offset + 4)
        guard bytes.loadBE16(offset + 2) == 0, length >= 2, length <= MBAPHeader.toleratedLength,
              bytes.has(Int(length) + 6, at: offset) else { return nil }
        return length
    }

    /// Bytes are missing from `side`: hunt for the next plausible ADU (pending requests stay; their
    /// responses may still come, or they time out).
    public mutating func gap(side: FlowSide, length: Int, sink: EventSink) {
        if side == .initiator { initiatorFraming.lostSync() } else { responderFraming.lostSync() }
    }

    /// Pending requests are all `finish` reports, and only as transaction records.
    public func finishesQuietly(transactionRecords: Bool) -> Bool { !transactionRecords || session.pendingCount == 0 }

    /// The flow ended: every pending request is reported unanswered (`timeout` or `no_response`).
    public mutating func finish(sink: EventSink) {
        // (Reading only the state's first line when at most entry 0 is pending: the second is cold by a flow's end.)
        while let i = session.oldestIndex() {
            let timedOut = sink.time.microseconds(since: session.entryTime(i)) > session.responseTimeoutMicroseconds
            reportUnanswered(i, reason: timedOut ? "timeout" : "no_response", sink: sink)
        }
    }

    /// The side that sends requests: the one talking to port 502 when exactly one side uses it
    /// (a midstream pickup may have guessed the initiator wrong), else the initiator.
    static func requesterSide(of flow: FlowContext) -> FlowSide {
        isWellKnownPort(flow.initiator.port) && !isWellKnownPort(flow.responder.port) ? .responder : .initiator
    }

    // MARK: - One ADU

    /// The general path for one ADU (anything `handleCommonADU` leaves: other functions, exceptions, faults, records).
    @inline(never)
    mutating func handleADU(_ bytes: ByteView, at offset: Int, header h: MBAPHeader, side: FlowSide, direction: ModbusDirection,
                            delivery d: Delivery, sink: EventSink) {
        let pduBytes = bytes.clampedSlice(from: offset + MBAPHeader.size, length: h.pduLength)
        let pdu = ModbusPDU.parse(pduBytes, direction: direction)
        sink.countPDU(.modbus)
        if !pdu.problems.isEmpty { reportProblems(pdu, at: offset + MBAPHeader.size, side: side, sink: sink) }
        if h.length > MBAPHeader.maximumLength && pdu.functionCode != .umas {
            sink.emit(Anomaly(layer: "modbus", kind: "bad_length", offset: offset + 4, value: Int64(h.length)), sender: side)
        }
        if direction == .request {
            handleRequest(pdu, bytes: pduBytes, header: h, at: offset, side: side, delivery: d, sink: sink)
        } else {
            handleResponse(pdu, bytes: pduBytes, header: h, at: offset, side: side, delivery: d, sink: sink)
        }
    }

    @inline(__always)
    mutating func handleRequest(_ pdu: ModbusPDU, bytes: ByteView, header h: MBAPHeader, at offset: Int, side: FlowSide,
                                delivery d: Delivery, sink: EventSink) {
        var op = Self.operation(pdu, bytes: bytes, header: h)
        op.unitRepeated = noteRequestUnit(h.unitID)
        sink.emit(op, sender: side)
        if let i = session.evictionCandidate() { reportUnanswered(i, reason: "evicted", sink: sink) }
        session.insert(transactionID: h.transactionID, unitID: h.unitID, fields: pdu.fields,
                       keeping: d.pduRecords || d.transactionRecords ? pdu : nil, bytes: bytes,
                       storing: d.transactionRecords, frame: d.frame, time: d.time)
        if session.noteRequest() {
            sink.emit(Anomaly(layer: "modbus", kind: "request_flood", offset: offset,
                              value: Int64(session.requestsSinceResponse)), sender: side)
        }
        if d.pduRecords {
            writePDURecord(pdu, bytes: bytes, header: h, classification: ModbusClassification.of(pdu), request: nil, side: side, sink: sink)
        }
    }

    @inline(__always)
    mutating func handleResponse(_ pdu: ModbusPDU, bytes: ByteView, header h: MBAPHeader, at offset: Int, side: FlowSide,
                                 delivery d: Delivery, sink: EventSink) {
        let match = session.match(transactionID: h.transactionID, unitID: h.unitID, functionCode: pdu.functionCode)
        if let m = match {
            if !m.sameFunction {
                sink.emit(Anomaly(layer: "modbus", kind: "response_mismatch", offset: offset + MBAPHeader.size,
                                  value: Int64(pdu.rawFunctionCode)), sender: side)
            } else if !pdu.isException {
                checkFit(request: session.entry(m.index), response: pdu.fields, at: offset + MBAPHeader.size, side: side, sink: sink)
            }
        } else {
            sink.emit(Anomaly(layer: "modbus", kind: "unsolicited_response", offset: offset,
                              value: Int64(h.transactionID)), sender: side)
        }
        if session.noteResponse(exception: pdu.isException, at: d.time) {
            sink.emit(Anomaly(layer: "modbus", kind: "exception_storm", offset: offset + MBAPHeader.size + 1,
                              value: Int64(session.limits.exceptionStormThreshold)), sender: side)
        }
        if d.pduRecords || d.transactionRecords {
            // A paired response is classified as the operation it answers.
            let c = match.map { session.entry($0.index).classification } ?? ModbusClassification.of(pdu)
            if d.pduRecords {
                writePDURecord(pdu, bytes: bytes, header: h, classification: c, request: match?.index, side: side, sink: sink)
            }
            if d.transactionRecords {
                writeTransaction(requestIndex: match?.index, response: pdu, responseBytes: bytes, header: h,
                                 classification: c, reason: match == nil ? "unsolicited" : "", responder: side, sink: sink)
            }
        }
        if let m = match { session.remove(m.index) }
    }

    /// Whether the flow's previous request addressed `unit` too; remembers `unit` for the next one.
    @inline(__always)
    mutating func noteRequestUnit(_ unit: UInt8) -> Bool {
        defer { lastRequestUnit = Int16(unit) }
        return lastRequestUnit == Int16(unit)
    }

    /// A response that does not fit its request: wrong byte count for the quantity, or an echo that differs.
    @inline(__always)
    func checkFit(request q: PendingRequest, response r: ModbusFields, at base: Int, side: FlowSide, sink: EventSink) {
        if let (kind, value) = Self.misfit(request: q, response: r) {
            Self.report(kind, offset: base + 1, value: value, side: side, sink: sink)
        }
    }

    /// The anomaly kind and value when response `r` does not fit request `q` (both at PDU offset 1): a byte count
    /// that is wrong for the quantity, else an echo that differs; nil when it fits.
    @inline(__always)
    static func misfit(request q: PendingRequest, response r: ModbusFields) -> (kind: StaticString, value: Int64)? {
        var expectedBytes: Int32 = -1
        switch r.functionCode {
        case .readCoils, .readDiscreteInputs: if q.quantity > 0 { expectedBytes = (q.quantity + 7) / 8 }
        case .readHoldingRegisters, .readInputRegisters, .readWriteMultipleRegisters: if q.quantity > 0 { expectedBytes = 2 * q.quantity }
        default: break
        }
        if expectedBytes >= 0 && r.byteCount >= 0 && r.byteCount != expectedBytes {
            return ("byte_count_mismatch", Int64(r.byteCount))
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
        return echoDiffers ? ("response_mismatch", Int64(r.address)) : nil
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
                             classification: session.entry(index).classification, reason: reason,
                             responder: requesterSide.opposite, sink: sink)
        }
        session.remove(index)
    }

    @inline(never)
    mutating func expireRequests(at now: PacketTime, sink: EventSink) {
        while let i = session.expired(at: now) { reportUnanswered(i, reason: "timeout", sink: sink) }
    }

    /// The policy view of a request.
    @inline(__always)
    static func operation(_ pdu: ModbusPDU, bytes: ByteView, header h: MBAPHeader) -> Operation {
        let fc = pdu.functionCode
        var op = Operation(appProtocol: .modbus, access: .read, functionCode: UInt16(fc.rawValue), function: fc.name)
        switch fc {
        case .diagnostics, .encapsulatedInterfaceTransport, .umas:
            // Classes decided by a sub-function.
            let c = ModbusClassification.of(pdu)
            op.access = c.access; op.subfunction = c.subfunction
        default:
            op.access = ModbusClassification.baseAccess(fc)
        }
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
