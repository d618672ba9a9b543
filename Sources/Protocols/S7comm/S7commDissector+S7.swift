import Wire
import Records

/// S7comm PDUs: classification, operations, request/ack pairing and records.
extension S7commDissector {
    /// Handles one complete S7comm PDU (it passed `S7Header.looksLikeS7`).
    mutating func handleS7(_ message: ByteView, side: FlowSide, sink: EventSink) {
        guard let pdu = S7PDU.parse(message) else { return }
        sink.countPDU(.s7comm)
        if pdu.truncated {
            sink.emit(Anomaly(layer: "s7comm", kind: "s7_length_mismatch", offset: 6,
                              value: Int64(pdu.header.headerLength + pdu.header.parameterLength + pdu.header.dataLength)), sender: side)
        }
        if negotiatedPDUSize > 0 && message.count > negotiatedPDUSize {
            sink.emit(Anomaly(layer: "s7comm", kind: "pdu_exceeds_negotiated_size", offset: 0, value: Int64(message.count)), sender: side)
        }
        switch pdu.header.rosctr {
        case 1: handleJob(pdu, side: side, sink: sink)
        case 2, 3: handleAck(pdu, side: side, sink: sink)
        case 7: handleUserdata(pdu, side: side, sink: sink)
        default:
            sink.emit(Anomaly(layer: "s7comm", kind: "unknown_rosctr", offset: 1, value: Int64(pdu.header.rosctr)), sender: side)
            if sink.pduRecordsEnabled {
                sink.beginRecord(.pdu, protocolName: "s7comm", objectKey: "s7comm", sender: side)
                S7PDURecord.writeHeader(pdu, to: &sink.json)
                sink.endRecord()
            }
        }
    }

    // MARK: Jobs

    mutating func handleJob(_ pdu: S7PDU, side: FlowSide, sink: EventSink) {
        let f = pdu.functionCode
        let pi = (f == 0x28 || f == 0x29) ? S7PIService.parse(pdu.parameters) : nil
        let access: AccessClass = f.map { S7Classification.job(function: $0, piService: pi?.name ?? .empty) } ?? .control
        if let f = f {
            var req = PendingRequest()
            req.side = side; req.pduReference = pdu.header.pduReference; req.frame = sink.frame; req.time = sink.time
            req.functionCode = f; req.function = S7Names.function(f); req.access = access
            let op = Operation(appProtocol: .s7comm, access: access, functionCode: UInt16(f), function: S7Names.function(f))
            switch f {
            case 0x04, 0x05:
                let count = pdu.parameters.count >= 2 ? Int(pdu.parameters.u8(1)) : 0
                req.itemCount = count
                emitItemOperations(op, pdu.parameters, offset: 2, count: count, request: &req, side: side, sink: sink)
            case 0x1A...0x1F:
                var o = op
                if let b = S7BlockTransfer.parse(pdu.parameters, rosctr: 1)?.block { note(block: b, request: &req, operation: &o) }
                sink.emit(o, sender: side)
            case 0x28, 0x29:
                var o = op
                if let pi = pi {
                    req.service = ShortName(pi.name)
                    o.subfunction = S7PIService.code(pi.name)
                    if f == 0x28 { o.function = S7PIService.operationName(pi.name); req.function = o.function }
                    if let b = pi.block(0) { note(block: b, request: &req, operation: &o) }
                }
                sink.emit(o, sender: side)
            default:
                sink.emit(op, sender: side)
            }
            remember(req, sink: sink)
        } else {
            sink.emit(Anomaly(layer: "s7comm", kind: "job_without_parameters", offset: pdu.header.headerLength), sender: side)
        }
        guard sink.pduRecordsEnabled else { return }
        sink.beginRecord(.pdu, protocolName: "s7comm", objectKey: "s7comm", sender: side)
        S7PDURecord.writeHeader(pdu, to: &sink.json)
        S7PDURecord.writeJob(pdu, to: &sink.json)
        sink.json.field("access", access.name)
        sink.endRecord()
    }

    /// One operation per Read/Write Var (or cyclic) item, carrying its area, DB, address and size;
    /// the first item also describes the pending request.
    func emitItemOperations(_ op: Operation, _ p: ByteView, offset: Int, count: Int, request req: inout PendingRequest,
                            side: FlowSide, sink: EventSink) {
        var it = S7VarSpecIterator(p, offset: offset, count: count)
        var first = true
        while let s = it.next() {
            var o = op
            if s.hasAddress {
                o.area = Int16(s.area)
                if s.area == 0x84 || s.area == 0x85 { o.dbNumber = Int32(s.dbNumber) }
                o.address = Int64(s.byteAddress)
                o.quantity = Int64(s.byteCount)
            }
            if first {
                first = false
                req.area = o.area; req.dbNumber = o.dbNumber; req.address = o.address; req.quantity = o.quantity
            }
            sink.emit(o, sender: side)
        }
        if first { sink.emit(op, sender: side) }
    }

    /// Notes a block name in the pending request and the operation (DB blocks carry their number).
    func note(block b: S7BlockName, request req: inout PendingRequest, operation o: inout Operation) {
        if let t = b.typeCode { req.blockType = Int16(t) }
        if let n = b.number {
            req.blockNumber = Int32(n)
            if b.typeCode == 0x0A { o.dbNumber = Int32(n) }
        }
    }

    /// Files a request as pending; whatever it displaces is logged as unanswered.
    mutating func remember(_ req: PendingRequest, sink: EventSink) {
        guard sink.transactionRecordsEnabled else {
            // Records off: the table only needs the key (see `PendingTable.insertKey`).
            if pending.insertKey(side: req.side, pduReference: req.pduReference, userdata: req.userdata) == .evicted
                && !reportedPendingOverflow {
                reportedPendingOverflow = true
                sink.emit(Anomaly(layer: "s7comm", kind: "pending_requests_overflow", offset: 0, value: Int64(PendingTable.capacity)), sender: req.side)
            }
            return
        }
        guard let old = pending.insert(req) else { return }
        let sameKey = old.side == req.side && old.pduReference == req.pduReference && old.userdata == req.userdata
        if !sameKey && !reportedPendingOverflow {
            // Once per flow: a peer that never answers would otherwise raise one per request.
            reportedPendingOverflow = true
            sink.emit(Anomaly(layer: "s7comm", kind: "pending_requests_overflow", offset: 0, value: Int64(PendingTable.capacity)), sender: req.side)
        }
        if sink.transactionRecordsEnabled {
            S7TransactionRecord.write(old, response: nil, status: sameKey ? "superseded" : "evicted", sink: sink)
        }
    }

    // MARK: Acks

    mutating func handleAck(_ pdu: S7PDU, side: FlowSide, sink: EventSink) {
        let h = pdu.header
        let f = pdu.functionCode
        if f == 0xF0, h.rosctr == 3, h.errorClass == 0, let s = S7SetupCommunication.parse(pdu.parameters) {
            negotiatedPDUSize = s.pduSize
        }
        if sink.transactionRecordsEnabled {
            var r = S7ResponseSummary(frame: sink.frame, time: sink.time, rosctr: h.rosctr,
                                      errorClass: h.errorClass, errorCode: h.errorCode)
            if let f = f, pdu.parameters.count >= 2 {
                let count = Int(pdu.parameters.u8(1))
                if f == 0x04 {
                    var it = S7DataItemIterator(pdu.data, count: count)
                    while let item = it.next() { if item.returnCode == 0xFF { r.itemsOK += 1 } else { r.itemsFailed += 1 } }
                } else if f == 0x05 {
                    for i in 0..<min(count, pdu.data.count) { if pdu.data.u8(i) == 0xFF { r.itemsOK += 1 } else { r.itemsFailed += 1 } }
                }
            }
            if let req = pending.take(side: side.opposite, pduReference: h.pduReference, userdata: false) {
                S7TransactionRecord.write(req, response: r, status: r.failed ? "error" : "ok", sink: sink)
            } else {
                var orphan = PendingRequest()
                orphan.side = side.opposite; orphan.pduReference = h.pduReference; orphan.frame = sink.frame; orphan.time = sink.time
                orphan.functionCode = f ?? 0; orphan.function = f.map { S7Names.function($0) } ?? "Unknown"
                S7TransactionRecord.write(orphan, response: r, status: "unmatched_response", sink: sink)
            }
        } else {
            pending.remove(side: side.opposite, pduReference: h.pduReference, userdata: false)
        }
        guard sink.pduRecordsEnabled else { return }
        sink.beginRecord(.pdu, protocolName: "s7comm", objectKey: "s7comm", sender: side)
        S7PDURecord.writeHeader(pdu, to: &sink.json)
        S7PDURecord.writeAck(pdu, to: &sink.json)
        sink.json.field("access", AccessClass.response.name)
        sink.endRecord()
    }

    // MARK: Userdata

    mutating func handleUserdata(_ pdu: S7PDU, side: FlowSide, sink: EventSink) {
        guard let u = S7UserdataParameters.parse(pdu.parameters) else {
            sink.emit(Anomaly(layer: "s7comm", kind: "bad_userdata_parameters", offset: pdu.header.headerLength,
                              value: Int64(pdu.parameters.count)), sender: side)
            if sink.pduRecordsEnabled {
                sink.beginRecord(.pdu, protocolName: "s7comm", objectKey: "s7comm", sender: side)
                S7PDURecord.writeHeader(pdu, to: &sink.json)
                sink.endRecord()
            }
            return
        }
        let data = S7UserdataData.parse(pdu.data)
        let access: AccessClass = u.isRequest ? S7Classification.userdata(group: u.group, subfunction: u.subfunction) : .response
        let name = u.group == 0 ? "Mode transition" : S7Names.subfunction(group: u.group, u.subfunction)

        var req = PendingRequest()
        req.side = side; req.pduReference = pdu.header.pduReference; req.userdata = true
        req.frame = sink.frame; req.time = sink.time
        req.group = u.group; req.subfunction = u.subfunction; req.function = name; req.access = access
        if u.group == 0x4 && u.subfunction == 0x01, let d = data, d.returnCode == 0xFF, let (id, index) = S7SZL.idAndIndex(d.payload) {
            req.szlID = Int32(id); req.szlIndex = Int32(index)
        }

        if u.isRequest {
            var op = Operation(appProtocol: .s7comm, access: access,
                               functionCode: UInt16(u.group) << 8 | UInt16(u.subfunction), function: name)
            op.subfunction = Int32(u.subfunction)
            if u.group == 0x2 && u.subfunction != 0x04, let d = data, d.payload.count >= 4 {
                let count = Int(d.payload.u16be(0))
                req.itemCount = count
                emitItemOperations(op, d.payload, offset: 4, count: count, request: &req, side: side, sink: sink)
            } else {
                sink.emit(op, sender: side)
            }
            remember(req, sink: sink)
        } else if sink.transactionRecordsEnabled {
            if u.isResponse {
                var r = S7ResponseSummary(frame: sink.frame, time: sink.time, rosctr: 7)
                r.userdataErrorCode = u.errorCode
                if let d = data { r.returnCode = Int(d.returnCode) }
                if let q = pending.take(side: side.opposite, pduReference: pdu.header.pduReference, userdata: true) {
                    S7TransactionRecord.write(q, response: r, status: r.failed ? "error" : "ok", sink: sink)
                } else {
                    S7TransactionRecord.write(req, response: r, status: "unmatched_response", sink: sink)
                }
            } else {
                S7TransactionRecord.write(req, response: nil, status: "push", sink: sink)
            }
        } else if u.isResponse {
            pending.remove(side: side.opposite, pduReference: pdu.header.pduReference, userdata: true)
        }

        // Userdata messages longer than one PDU come as data units sharing a reference; the last one
        // is decoded over all of them (SZL lists, block lists).
        var completeLane: (start: Int, count: Int)?
        if u.extended, let d = data {
            let key = UInt32(u.group) << 16 | UInt32(u.subfunction) << 8 | UInt32(u.dataUnitReference)
            var s = state(side)
            if !u.lastDataUnit {
                if !s.userdataActive || s.userdataKey != key {
                    userdataBuffer.reset(side); s.userdataActive = true; s.userdataKey = key
                }
                if !userdataBuffer.append(d.payload, side: side) {
                    sink.emit(Anomaly(layer: "s7comm", kind: "userdata_reassembly_overflow", offset: 0,
                                      value: Int64(userdataBuffer.count(side) + d.payload.count)), sender: side)
                    userdataBuffer.reset(side); s.userdataActive = false
                }
            } else if s.userdataActive && s.userdataKey == key {
                s.userdataActive = false
                if userdataBuffer.append(d.payload, side: side) {
                    completeLane = userdataBuffer.laneRange(side)
                } else {
                    sink.emit(Anomaly(layer: "s7comm", kind: "userdata_reassembly_overflow", offset: 0,
                                      value: Int64(userdataBuffer.count(side) + d.payload.count)), sender: side)
                }
                userdataBuffer.reset(side)
            }
            setState(s, side)
        }

        guard sink.pduRecordsEnabled else { return }
        if let lane = completeLane {
            var storage = userdataBuffer.takeStorage()
            storage.withUnsafeBytes { raw in
                writeUserdataRecord(pdu, u, complete: ByteView(raw).slice(from: lane.start, length: lane.count),
                                    access: access, side: side, sink: sink)
            }
            userdataBuffer.restore(&storage)
        } else {
            writeUserdataRecord(pdu, u, complete: nil, access: access, side: side, sink: sink)
        }
    }

    func writeUserdataRecord(_ pdu: S7PDU, _ u: S7UserdataParameters, complete: ByteView?, access: AccessClass,
                             side: FlowSide, sink: EventSink) {
        sink.beginRecord(.pdu, protocolName: "s7comm", objectKey: "s7comm", sender: side)
        S7PDURecord.writeHeader(pdu, to: &sink.json)
        S7PDURecord.writeUserdata(pdu, u, complete: complete, to: &sink.json)
        sink.json.field("access", access.name)
        sink.endRecord()
    }
}
