import Wire
import Records

/// Per-direction framing and reassembly state: 12 bytes (one byte a flag, the userdata key last), so that both sides'
/// states share the dissector state's first cache line with the rest of what every PDU reads.
struct S7SideState {
    /// After a gap or a bad TPKT header: only a plausible TPKT header may end the search.
    var resynchronising = false
    /// The COTP message being reassembled overflowed; drop its DTs until EOT.
    var cotpDiscarding = false
    /// Whether DT TPDUs without EOT of the message being reassembled were taken (only "none or some" matters: a count
    /// here took 8 bytes a side).
    var cotpFragmentsPending = false
    /// Whether userdata fragments are pending.
    var userdataActive = false
    /// Whether an S7comm-plus message is in progress (frames without trailer seen).
    var plusActive = false
    /// Opcode, function and sequence number of that message (from its first fragment).
    var plusOpcode: UInt8 = 0
    var plusFunction: UInt16 = 0
    var plusSequence: UInt16 = 0
    /// The data-part bytes of that message's frames so far: what a flow ending before its last frame cut. 16 bits
    /// (saturating at 65,535), in the 2 bytes the side's state had spare: 32 took the pending table's first keys out
    /// of the state's first line.
    var plusBytes: UInt16 = 0
    /// The userdata message being reassembled: group << 16 | sub-function << 8 | data unit reference.
    var userdataKey: UInt32 = 0
}

/// Per-flow S7comm state: the engine's entry point for TPKT (RFC 1006) / COTP (ISO 8073) on TCP 102
/// and the S7comm and S7comm-plus PDUs they carry.
///
/// Each call to `consume` frames TPKTs out of the stream bytes of one direction (several per call, or
/// one across calls: the engine re-presents what is left unconsumed), reassembles COTP DT sequences,
/// and decodes each complete S7comm PDU into one `pdu` record, operations for policy, pending-request
/// pairing for `s7comm.jsonl`, and anomalies. S7comm-plus frames are identified and summarised, never
/// parsed as S7comm.
public struct S7commDissector: AppDissector {
    /// The most bytes one side may have in COTP or userdata reassembly.
    public static let reassemblyLimit = 16 * 1024

    /// S7comm (S7comm-plus frames on the same flows are reported under their own name).
    public static var appProtocol: AppProtocol { .s7comm }
    /// ISO-TSAP, TCP 102 (RFC 1006).
    public static func isWellKnownPort(_ port: UInt16) -> Bool { port == 102 }
    /// The TPKT length field's maximum.
    public static var maximumPDUSize: Int { 65535 }
    /// The flow context is only read when records are written.
    public static var readsFlowContextAfterFirstDelivery: Bool { false }
    /// One line: the PDU size, both sides' states and the pending table's counter and inline keys (`perPacketKeysEnd`);
    /// the rest of the keys, the requests and the buffers are read only with many requests in flight, records on or
    /// segmented messages.
    public static var perPacketStateBytes: Int { 64 }
    /// The end of the pending table's inline keys in the state (what `perPacketStateBytes` must reach).
    static var perPacketKeysEnd: Int { MemoryLayout<Self>.offset(of: \Self.pending)! + PendingTable.keysOffset + 4 * PendingTable.inlineKeyCount }

    /// A TPKT version 3 header with a COTP TPDU of a known type behind it.
    public static func probe(_ bytes: ByteView, side: FlowSide, transport: Transport) -> ProbeVerdict {
        guard transport == .tcp else { return .reject }
        switch TPKT.isPlausibleStart(bytes, at: 0) {
        case .some(true): return .accept
        case .some(false): return .reject
        case .none: return bytes.count > 0 && bytes.u8(0) != 3 ? .reject : .needMoreData
        }
    }

    // Declaration order is layout order. What every PDU reads (the PDU size, both sides' states, the pending table's
    // counter and inline keys) is the state's first 64 bytes: one cache line a packet, with 100,000 flows rarely in
    // cache. The table's request array, its overflow keys and the reassembly buffers (touched only by pairing with
    // records on, many requests in flight, segmented messages) follow. 112 bytes in all (448 with the key array
    // inline and 64-bit counters), which the kernel zeroes at a flow's first touch.
    /// The PDU size granted in setup communication (0 until seen): the wire's 16-bit field, stored as such.
    var negotiatedPDUSizeField: UInt16 = 0
    /// Whether non-S7 COTP payload was already reported for this flow (once is enough).
    var reportedForeignPayload = false
    /// Whether the pending-request bound was already reported for this flow.
    var reportedPendingOverflow = false
    var initiatorState = S7SideState()
    var responderState = S7SideState()
    var pending = PendingTable()
    var cotpBuffer = ReassemblyBuffer()
    var userdataBuffer = ReassemblyBuffer()

    /// The PDU size granted in setup communication (0 until seen).
    var negotiatedPDUSize: Int {
        @inline(__always) get { Int(negotiatedPDUSizeField) }
        @inline(__always) set { negotiatedPDUSizeField = UInt16(truncatingIfNeeded: newValue) }
    }

    /// A fresh flow: nothing allocated until the flow needs reassembly or pairing.
    public init() {}

    @inline(__always) func state(_ side: FlowSide) -> S7SideState { side == .initiator ? initiatorState : responderState }
    @inline(__always) mutating func setState(_ s: S7SideState, _ side: FlowSide) {
        if side == .initiator { initiatorState = s } else { responderState = s }
    }

    /// Frames and handles every whole TPKT in `bytes`; returns the bytes used (a partial TPKT is left).
    public mutating func consume(_ bytes: ByteView, side: FlowSide, sink: EventSink) -> Int {
        // The per-packet case first: the delivery is one whole TPKT (valid header, its length the delivery's) and the
        // side is in sync. What the loop below does for it (one iteration), without the loop: its set-up (values
        // hoisted for later iterations, spilled to the stack) cost about a sixth of a quiet PDU's handling.
        let n = bytes.count
        if n >= TPKT.minimumLength, let base = bytes.raw.baseAddress, !state(side).resynchronising,
           base.load(as: UInt8.self) == 3, base.load(fromByteOffset: 1, as: UInt8.self) == 0,
           Int(UInt16(bigEndian: base.loadUnaligned(fromByteOffset: 2, as: UInt16.self))) == n {
            if sink.recordsEnabled || !readWriteVar(base, length: n, side: side, sink: sink) {
                handleTPKT(bytes, side: side, sink: sink)
            }
            return n
        }
        return consumeTPKTs(bytes, side: side, sink: sink)
    }

    /// `consume` for any delivery: every whole TPKT in it, resynchronising after a bad header.
    @inline(never)
    mutating func consumeTPKTs(_ bytes: ByteView, side: FlowSide, sink: EventSink) -> Int {
        var offset = 0
        let recordsOff = !sink.recordsEnabled
        while offset < bytes.count {
            if state(side).resynchronising {
                let next = TPKT.resynchronisationPoint(bytes, from: offset)
                if next > offset {
                    sink.emit(Anomaly(layer: "s7comm", kind: "tpkt_resync_skipped", offset: offset, value: Int64(next - offset)), sender: side)
                }
                offset = next
                guard offset < bytes.count, TPKT.isPlausibleStart(bytes, at: offset) == true else { return offset }
                var s = state(side); s.resynchronising = false; setState(s, side)
            }
            switch TPKT.header(bytes, at: offset) {
            case .needMoreData:
                return offset
            case .invalid:
                sink.emit(Anomaly(layer: "s7comm", kind: "bad_tpkt_header", offset: offset, value: Int64(bytes.u8(offset))), sender: side)
                var s = state(side); s.resynchronising = true; setState(s, side)
            case .valid(let length):
                guard bytes.has(length, at: offset) else { return offset }
                if recordsOff, let base = bytes.raw.baseAddress, readWriteVar(base + offset, length: length, side: side, sink: sink) {
                    offset += length
                    continue
                }
                handleTPKT(bytes.slice(from: offset, length: length), side: side, sink: sink)
                offset += length
            }
        }
        return offset
    }

    /// Drops `side`'s partial messages and resynchronises on the next plausible TPKT header.
    public mutating func gap(side: FlowSide, length: Int, sink: EventSink) {
        // Whatever was half-assembled in this direction is now wrong; requests may still be answered.
        var s = state(side)
        s.resynchronising = true
        s.cotpDiscarding = false; s.cotpFragmentsPending = false
        s.userdataActive = false; s.plusActive = false; s.plusBytes = 0
        setState(s, side)
        cotpBuffer.reset(side); userdataBuffer.reset(side)
    }

    /// Whether a COTP message (DTs without EOT) or a userdata message (fragments) is in reassembly on either side, or
    /// an S7comm-plus message still waits for its last frame.
    public var holdsUnfinishedMessage: Bool {
        initiatorState.cotpFragmentsPending || initiatorState.userdataActive || initiatorState.plusActive
            || responderState.cotpFragmentsPending || responderState.userdataActive || responderState.plusActive
    }

    /// Messages in reassembly, and pending requests as transaction records, are what `finish` reports.
    public func finishesQuietly(transactionRecords: Bool) -> Bool {
        !holdsUnfinishedMessage && (!transactionRecords || pending.live == 0)
    }

    /// Reports each message left in reassembly, and an S7comm-plus message without its last frame
    /// (`EventSink.unfinishedAtEnd`, with its bytes so far), logs requests still waiting for an ack as unanswered and
    /// resets the flow's state.
    public mutating func finish(sink: EventSink) {
        for side in [FlowSide.initiator, .responder] {
            let s = state(side)
            if s.cotpFragmentsPending { sink.unfinishedAtEnd(layer: "s7comm", bytes: cotpBuffer.count(side), sender: side) }
            if s.userdataActive { sink.unfinishedAtEnd(layer: "s7comm", bytes: userdataBuffer.count(side), sender: side) }
            if s.plusActive { sink.unfinishedAtEnd(layer: "s7comm_plus", bytes: Int(s.plusBytes), sender: side) }
        }
        if sink.transactionRecordsEnabled {
            pending.drain { S7TransactionRecord.write($0, response: nil, status: "unanswered", sink: sink) }
        } else {
            pending.drain { _ in }
        }
        initiatorState = S7SideState(); responderState = S7SideState()
        cotpBuffer.reset(.initiator); cotpBuffer.reset(.responder)
        userdataBuffer.reset(.initiator); userdataBuffer.reset(.responder)
    }

    // MARK: - COTP

    /// Handles one TPKT: its COTP TPDU(s) and, for DT, the message they carry.
    mutating func handleTPKT(_ tpkt: ByteView, side: FlowSide, sink: EventSink) {
        var tpdu = tpkt.suffix(from: TPKT.headerLength)
        // Class-0 DT (LI 2, code 0xF_), nearly every TPDU of an S7 connection: what COTPHeader.parse
        // would say about it (user data at 3, EOT in bit 8 of TPDU-NR) without building the header.
        if tpdu.count >= 3 && tpdu.u8(0) == 2 && tpdu.u8(1) >> 4 == COTPType.dt.rawValue {
            handleDT(tpdu.suffix(from: 3), endOfMessage: tpdu.u8(2) & 0x80 != 0, side: side, sink: sink)
            return
        }
        // TPDUs that cannot carry user data may be followed by another TPDU (X.224 concatenation).
        for _ in 0..<4 {
            guard let h = COTPHeader.parse(tpdu) else {
                sink.emit(Anomaly(layer: "s7comm", kind: "bad_cotp_header", offset: TPKT.headerLength,
                                  value: tpdu.count > 1 ? Int64(tpdu.u8(1)) : nil), sender: side)
                return
            }
            switch h.type {
            case .dt:
                handleDT(tpdu.suffix(from: h.userDataOffset), endOfMessage: h.endOfTSDU, side: side, sink: sink)
                return
            case .cr, .cc, .dr, .dc, .ed, .er:
                if h.type == .dr || h.type == .dc {   // the connection is going away: drop partial messages
                    var s = state(side); s.cotpDiscarding = false; s.cotpFragmentsPending = false; setState(s, side)
                    cotpBuffer.reset(side)
                }
                writeCOTPRecord(tpdu, h, side: side, sink: sink)
                return
            case .ak, .rj, .ea:
                writeCOTPRecord(tpdu, h, side: side, sink: sink)
                guard h.userDataOffset < tpdu.count else { return }
                tpdu = tpdu.suffix(from: h.userDataOffset)
            }
        }
    }

    /// Handles the user data of one DT TPDU.
    mutating func handleDT(_ user: ByteView, endOfMessage: Bool, side: FlowSide, sink: EventSink) {
        var s = state(side)
        if !endOfMessage {
            guard !s.cotpDiscarding else { return }
            if cotpBuffer.append(user, side: side) {
                s.cotpFragmentsPending = true
            } else {
                sink.emit(Anomaly(layer: "s7comm", kind: "cotp_reassembly_overflow", offset: 0,
                                  value: Int64(cotpBuffer.count(side) + user.count)), sender: side)
                cotpBuffer.reset(side); s.cotpDiscarding = true; s.cotpFragmentsPending = false
            }
            setState(s, side)
            return
        }
        if s.cotpDiscarding {   // the tail of a message already dropped
            s.cotpDiscarding = false; setState(s, side)
            return
        }
        guard cotpBuffer.count(side) > 0 || s.cotpFragmentsPending else {
            handleMessage(user, side: side, sink: sink)
            return
        }
        s.cotpFragmentsPending = false; setState(s, side)
        guard cotpBuffer.append(user, side: side) else {
            sink.emit(Anomaly(layer: "s7comm", kind: "cotp_reassembly_overflow", offset: 0,
                              value: Int64(cotpBuffer.count(side) + user.count)), sender: side)
            cotpBuffer.reset(side)
            return
        }
        let lane = cotpBuffer.laneRange(side)
        cotpBuffer.reset(side)
        var storage = cotpBuffer.takeStorage()
        storage.withUnsafeBytes { raw in
            handleMessage(ByteView(raw).slice(from: lane.start, length: lane.count), side: side, sink: sink)
        }
        cotpBuffer.restore(&storage)
    }

    /// Dispatches one complete COTP message by its first byte.
    mutating func handleMessage(_ message: ByteView, side: FlowSide, sink: EventSink) {
        guard message.count > 0 else { return }
        switch message.u8(0) {
        case 0x32 where S7Header.looksLikeS7(message):
            handleS7(message, side: side, sink: sink)
        case 0x72 where message.count >= 4:
            handlePlus(message, side: side, sink: sink)
        case 0x32:
            sink.emit(Anomaly(layer: "s7comm", kind: "bad_s7_header", offset: 0,
                              value: message.count > 1 ? Int64(message.u8(1)) : nil), sender: side)
        default:
            if !reportedForeignPayload {
                reportedForeignPayload = true
                sink.emit(Anomaly(layer: "s7comm", kind: "not_s7_cotp_payload", offset: 0, value: Int64(message.u8(0))), sender: side)
            }
        }
    }

    /// Writes the `pdu` record of a COTP TPDU other than DT.
    func writeCOTPRecord(_ tpdu: ByteView, _ h: COTPHeader, side: FlowSide, sink: EventSink) {
        guard sink.pduRecordsEnabled else { return }
        sink.beginRecord(.pdu, protocolName: "s7comm", objectKey: "s7comm", sender: side)
        sink.json.key("cotp"); sink.json.beginObject()
        sink.json.field("type", h.type.name)
        sink.json.field("type_code", Int(h.code >> 4))
        sink.json.field("type_name", h.type.longName)
        sink.json.field("length_indicator", h.lengthIndicator)
        sink.json.field("dst_ref", Int(h.destinationReference))
        switch h.type {
        case .cr, .cc:
            sink.json.field("src_ref", Int(h.sourceReference))
            sink.json.field("class", Int(h.classOrReason))
            sink.json.field("credit", Int(h.code & 0x0F))
            var it = COTPParameterIterator(tpdu, header: h)
            while let p = it.next() {
                switch p.code {
                case 0xC0 where p.value.count == 1:
                    let e = Int(p.value.u8(0))
                    sink.json.field("tpdu_size", e >= 7 && e <= 13 ? 1 << e : 0)
                case 0xC1, 0xC2:
                    let isSource = p.code == 0xC1
                    sink.json.key(isSource ? "src_tsap" : "dst_tsap"); sink.json.hex(p.value)
                    if p.value.count == 2 {
                        // S7 TSAPs: connection type, then rack (high 3 bits) and slot (low 5 bits).
                        let b = p.value.u8(1)
                        sink.json.key(isSource ? "src_tsap_connection_type" : "dst_tsap_connection_type")
                        sink.json.string(COTPNames.s7ConnectionType(p.value.u8(0)))
                        sink.json.field(isSource ? "src_tsap_rack" : "dst_tsap_rack", Int(b >> 5))
                        sink.json.field(isSource ? "src_tsap_slot" : "dst_tsap_slot", Int(b & 0x1F))
                    } else if p.value.count > 2 && isPrintable(p.value) {
                        sink.json.key(isSource ? "src_tsap_text" : "dst_tsap_text"); sink.json.string(bytes: p.value)
                    }
                case 0xF0:
                    var v = 0
                    for i in 0..<min(p.value.count, 4) { v = v << 8 | Int(p.value.u8(i)) }
                    sink.json.field("preferred_max_tpdu_size", v * 128)
                default:
                    sink.json.key(COTPNames.parameterName(p.code)); sink.json.hex(p.value)
                }
            }
        case .dr:
            sink.json.field("src_ref", Int(h.sourceReference))
            sink.json.field("reason", Int(h.classOrReason))
            sink.json.field("reason_name", COTPNames.disconnectReason(h.classOrReason))
        case .dc:
            sink.json.field("src_ref", Int(h.sourceReference))
        case .er:
            sink.json.field("reject_cause", Int(h.classOrReason))
            sink.json.field("reject_cause_name", COTPNames.rejectCause(h.classOrReason))
        case .ak, .rj, .ea, .ed:
            sink.json.field("number", Int(h.number))
        case .dt:
            break
        }
        sink.json.endObject()
        sink.json.field("access", h.type == .cr || h.type == .cc || h.type == .dr || h.type == .dc ? "session" : "response")
        sink.endRecord()
    }

    func isPrintable(_ v: ByteView) -> Bool {
        for i in 0..<v.count where v.u8(i) < 0x20 || v.u8(i) > 0x7E { return false }
        return true
    }
}
