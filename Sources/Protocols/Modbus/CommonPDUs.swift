// The per-PDU fast path: requests and normal responses of the function codes that make up nearly all
// polling traffic (1–6, 15, 16), laid out exactly as the spec says, on a flow whose records are off.
//
// Such a PDU is read straight into `ModbusFields` (no `ModbusPDU`: its data region, payload kind and problem
// fields only matter for records and anomalies, and there are neither) and then paired, classified and
// handed to policy by the same session and operation code as every other PDU. The checks below are the
// general parser's checks for these layouts, so a PDU is taken here exactly when `ModbusPDU.parse` would
// find nothing wrong with it; anything else (another function code, an exception, a bad length, an
// illegal quantity, a byte count that does not fit, records on) goes the general way. The tests and the
// fuzz target compare the operations and anomalies of both paths on the same streams.
import Wire
import Records

extension ModbusFields {
    /// The fields of `pdu` when it is a well-formed request (`direction` `.request`) or normal response of
    /// FC 1–6, 15 or 16; nil for everything else.
    // `@inline(always)`: as a hint the inliner left it a call in `consumeQuietly` (~40 instructions a PDU more).
    @inline(always)
    static func common(_ pdu: ByteView, direction: ModbusDirection) -> ModbusFields? {
        let n = pdu.count
        guard n >= 2 else { return nil }
        let fc = pdu.loadU8(0)
        var f = ModbusFields(rawFunctionCode: fc)
        if direction == .request {
            switch fc {
            case 0x01, 0x02, 0x03, 0x04:
                // Address and quantity, 1–2000 coils/inputs or 1–125 registers, inside the address space.
                guard n == 5 else { return nil }
                f.address = Int32(pdu.loadBE16(1)); f.quantity = Int32(pdu.loadBE16(3))
                guard quantityFits(f.quantity, maximum: fc <= 0x02 ? 2000 : 125, address: f.address) else { return nil }
            case 0x05, 0x06:
                // Address and value; a coil is 0x0000 or 0xFF00.
                guard n == 5 else { return nil }
                f.address = Int32(pdu.loadBE16(1)); f.value = Int32(pdu.loadBE16(3)); f.quantity = 1
                guard fc == 0x06 || f.value == 0 || f.value == 0xFF00 else { return nil }
            case 0x0F, 0x10:
                // Address, quantity (1–1968 coils, 1–123 registers), byte count covering exactly the values.
                guard n >= 6 else { return nil }
                f.address = Int32(pdu.loadBE16(1)); f.quantity = Int32(pdu.loadBE16(3)); f.byteCount = Int32(pdu.loadU8(5))
                guard quantityFits(f.quantity, maximum: fc == 0x0F ? 1968 : 123, address: f.address),
                      Int(f.byteCount) == n - 6,
                      f.byteCount == (fc == 0x0F ? (f.quantity + 7) / 8 : 2 * f.quantity) else { return nil }
            default:
                return nil
            }
        } else {
            switch fc {
            case 0x01, 0x02, 0x03, 0x04:
                // Byte count covering exactly the data; registers: an even count of at most 250.
                f.byteCount = Int32(pdu.loadU8(1))
                guard Int(f.byteCount) == n - 2, fc <= 0x02 || (f.byteCount % 2 == 0 && f.byteCount <= 250) else { return nil }
            case 0x05, 0x06:
                // The echo of the request.
                guard n == 5 else { return nil }
                f.address = Int32(pdu.loadBE16(1)); f.value = Int32(pdu.loadBE16(3)); f.quantity = 1
                guard fc == 0x06 || f.value == 0 || f.value == 0xFF00 else { return nil }
            case 0x0F, 0x10:
                // Address and quantity written.
                guard n == 5 else { return nil }
                f.address = Int32(pdu.loadBE16(1)); f.quantity = Int32(pdu.loadBE16(3))
                guard quantityFits(f.quantity, maximum: fc == 0x0F ? 1968 : 123, address: f.address) else { return nil }
            default:
                return nil
            }
        }
        return f
    }

    /// The access class and name of request function `code` (1–6, 15, 16): `ModbusClassification.baseAccess`
    /// and `FunctionCode.name`, as constants (a static table would cost a `swift_once` check on every request).
    @inline(__always)
    static func commonOperation(_ code: UInt8) -> (AccessClass, StaticString) {
        switch code {
        case 0x01: (.read, "read_coils")
        case 0x02: (.read, "read_discrete_inputs")
        case 0x03: (.read, "read_holding_registers")
        case 0x04: (.read, "read_input_registers")
        case 0x05: (.control, "write_single_coil")
        case 0x06: (.write, "write_single_register")
        case 0x0F: (.control, "write_multiple_coils")
        default: (.write, "write_multiple_registers")
        }
    }

    /// `ModbusPDU.checkQuantity` passes: 1 ≤ `q` ≤ `maximum` and the range ends inside the address space.
    @inline(__always)
    static func quantityFits(_ q: Int32, maximum: Int32, address a: Int32) -> Bool {
        q >= 1 && q <= maximum && Int64(a) + Int64(q) <= 65_536
    }
}

extension ModbusDissector {
    /// Handles every whole, in-sync ADU from `offset` on whose PDU is a common one, as `handleCommonADU` does,
    /// and returns the offset of the first one it leaves (or the end): the per-delivery loop of the usual case,
    /// one call for all its ADUs. The caller checks that no records are written. Out of line: inlined, its loop's
    /// set-up would be paid by every delivery of the general loop, records on or not.
    @inline(never)
    mutating func consumeCommon(_ bytes: ByteView, from start: Int, side: FlowSide, direction: ModbusDirection,
                                delivery d: Delivery, sink: EventSink) -> Int {
        var offset = start
        // Nothing here changes the framing state: a hunting side stays hunting, a synced one synced.
        guard !hunting(side) else { return offset }
        while let length = Self.wholeADULength(bytes, at: offset, hunting: false) {
            let header = MBAPHeader(transactionID: bytes.loadBE16(offset), protocolID: 0, length: length, unitID: bytes.loadU8(offset + 6))
            guard handleCommonADU(bytes, at: offset, header: header, side: side, direction: direction, delivery: d, sink: sink) else { break }
            offset += Int(length) + 6
        }
        return offset
    }

    /// Handles the ADU at `offset` (with `header`) when no records are written, its length is within the spec
    /// and its PDU is a common one (`ModbusFields.common`): what `handleADU` would do, without building a
    /// `ModbusPDU`. Returns false, having done nothing, for any other ADU.
    ///
    /// The polling case (a request with nothing pending, the response to the one pending request) runs inline;
    /// anomalies, eviction and pipelined requests go through out-of-line calls, which keeps this loop's frame small.
    @inline(__always)
    mutating func handleCommonADU(_ bytes: ByteView, at offset: Int, header h: MBAPHeader, side: FlowSide,
                                  direction: ModbusDirection, delivery d: Delivery, sink: EventSink) -> Bool {
        guard !d.pduRecords && !d.transactionRecords else { return false }
        return handleQuietADU(bytes, at: offset, header: h, side: side, direction: direction, delivery: d, sink: sink)
    }

    /// `handleCommonADU` when the caller knows that no records are written.
    @inline(__always)
    mutating func handleQuietADU(_ bytes: ByteView, at offset: Int, header h: MBAPHeader, side: FlowSide,
                                 direction: ModbusDirection, delivery d: Delivery, sink: EventSink) -> Bool {
        guard h.length <= MBAPHeader.maximumLength,
              let f = ModbusFields.common(bytes.clampedSlice(from: offset + MBAPHeader.size, length: h.pduLength), direction: direction)
        else { return false }
        handleCommon(f, transactionID: h.transactionID, unitID: h.unitID, at: offset, side: side, direction: direction,
                     delivery: d, sink: sink)
        return true
    }

    /// What `handleADU` does for the common PDU `f` of the ADU at `offset`, records off.
    ///
    /// The polling case (a request with nothing pending, the response to the one pending request) runs inline;
    /// anomalies, eviction and pipelined requests go through out-of-line calls, which keeps the caller's frame small.
    @inline(always)
    mutating func handleCommon(_ f: ModbusFields, transactionID: UInt16, unitID: UInt8, at offset: Int, side: FlowSide,
                               direction: ModbusDirection, delivery d: Delivery, sink: EventSink) {
        sink.countPDU(.modbus)
        if direction == .request {
            // `operation(_:bytes:header:)` for these codes: no sub-function, the class of the function code.
            let (access, name) = ModbusFields.commonOperation(f.rawFunctionCode)
            var op = Operation(appProtocol: .modbus, access: access, functionCode: UInt16(f.rawFunctionCode), function: name)
            op.unitID = Int32(unitID)
            op.broadcast = unitID == 0
            // A common request's quantity is at least 1 (`common`): `max(0, _)` is for the general path's -1 (none).
            op.address = Int64(f.address); op.quantity = Int64(f.quantity)
            op.unitRepeated = noteRequestUnit(unitID)
            sink.emit(op, sender: side)
            if session.pendingCount == 0 {
                session.insertFirst(transactionID: transactionID, unitID: unitID, fields: f, frame: d.frame, time: d.time)
            } else {
                insertBehindPending(transactionID: transactionID, unitID: unitID, fields: f, delivery: d, sink: sink)
            }
            if session.noteRequest() { reportFlood(at: offset, side: side, sink: sink) }
        } else {
            if session.answersOnlyPending(transactionID: transactionID, unitID: unitID, functionCode: f.rawFunctionCode) {
                // `match` found entry 0 with the same function: the fit check, then the entry is freed.
                if let (kind, value) = Self.misfit(request: session.firstEntryForCommonFit, response: f) {
                    Self.report(kind, offset: offset + MBAPHeader.size + 1, value: value, side: side, sink: sink)
                }
                // Not an exception: this only ends a request run (the flood counter).
                session.noteResponse()
                session.removeOnlyPending()
            } else {
                handleCommonResponseOtherwise(f, transactionID: transactionID, unitID: unitID, at: offset, side: side, sink: sink)
            }
        }
    }

    /// A request while others are pending: evicts the oldest when the table is full, then files the request.
    @inline(never)
    mutating func insertBehindPending(transactionID: UInt16, unitID: UInt8, fields f: ModbusFields, delivery d: Delivery,
                                      sink: EventSink) {
        if let i = session.evictionCandidate() { reportUnanswered(i, reason: "evicted", sink: sink) }
        session.insert(transactionID: transactionID, unitID: unitID, fields: f, keeping: nil, bytes: .empty,
                       storing: false, frame: d.frame, time: d.time)
    }

    /// A common response that is not the answer to the one pending request with its function code: pairing
    /// against the whole table, a function mismatch, or nothing to pair with (`handleResponse`'s other cases).
    @inline(never)
    mutating func handleCommonResponseOtherwise(_ f: ModbusFields, transactionID: UInt16, unitID: UInt8, at offset: Int,
                                                side: FlowSide, sink: EventSink) {
        let match = session.match(transactionID: transactionID, unitID: unitID, functionCode: f.functionCode)
        if let m = match {
            if !m.sameFunction {
                sink.emit(Anomaly(layer: "modbus", kind: "response_mismatch", offset: offset + MBAPHeader.size,
                                  value: Int64(f.rawFunctionCode)), sender: side)
            } else {
                checkFit(request: session.entry(m.index), response: f, at: offset + MBAPHeader.size, side: side, sink: sink)
            }
            session.noteResponse()
            session.remove(m.index)
        } else {
            sink.emit(Anomaly(layer: "modbus", kind: "unsolicited_response", offset: offset,
                              value: Int64(transactionID)), sender: side)
            session.noteResponse()
        }
    }

    /// Reports a request flood (`noteRequest` said the threshold was reached).
    @inline(never)
    func reportFlood(at offset: Int, side: FlowSide, sink: EventSink) {
        sink.emit(Anomaly(layer: "modbus", kind: "request_flood", offset: offset,
                          value: Int64(session.requestsSinceResponse)), sender: side)
    }

    /// Emits one Modbus anomaly (out of line: the callers are per-PDU paths where anomalies are rare).
    @inline(never)
    static func report(_ kind: StaticString, offset: Int, value: Int64, side: FlowSide, sink: EventSink) {
        sink.emit(Anomaly(layer: "modbus", kind: kind, offset: offset, value: value), sender: side)
    }
}
