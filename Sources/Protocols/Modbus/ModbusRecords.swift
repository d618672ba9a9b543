// The two record shapes Modbus writes into the sink:
//
//   pdu    (`zonewatch dissect`, one per PDU)   modbus: {transaction_id, unit_id, length, function_code
//          (exception bit cleared, as tshark does), function, pdu_type, access, exception_code / exception,
//          decoded fields (ModbusJSON.swift), request_frame + response_time on a paired response, problems}
//   modbus (`modbus.jsonl`, one per transaction) modbus: {transaction_id, unit_id, function_code, function,
//          access, subfunction / subfunction_name, broadcast, matched, reason (when unmatched: timeout,
//          no_response, evicted, unsolicited), request_frame, response_frame, response_time (seconds),
//          request: {...}, response: {...}}
import Wire
import Records

extension ModbusDissector {
    /// Writes one `pdu` record; `requestIndex` is the pending entry a response answers (nil: none).
    func writePDURecord(_ pdu: ModbusPDU, bytes: ByteView, header h: MBAPHeader, classification c: ModbusClassification,
                        request requestIndex: Int?, side: FlowSide, sink: EventSink) {
        let request = requestIndex.map { session.entry($0) }
        sink.beginRecord(.pdu, protocolName: "modbus", objectKey: "modbus", sender: side)
        sink.json.field("transaction_id", Int(h.transactionID))
        sink.json.field("unit_id", Int(h.unitID))
        sink.json.field("length", Int(h.length))
        sink.json.field("function_code", Int(pdu.functionCode.rawValue))
        sink.json.field("function", pdu.functionCode.name)
        sink.json.field("pdu_type", pdu.direction.name)
        sink.json.field("access", c.access.name)
        if h.unitID == 0 { sink.json.field("broadcast", true) }
        ModbusJSON.writeFields(pdu, bytes: bytes, request: requestIndex.flatMap { session.request($0) }, into: &sink.json)
        if let r = request {
            sink.json.field("request_frame", r.frame)
            sink.json.key("response_time"); sink.json.fixed6(sink.time.microseconds(since: r.time))
        }
        ModbusJSON.writeProblems(pdu.problems, into: &sink.json)
        sink.endRecord()
    }

    /// Writes one paired transaction. `requestIndex` is the pending entry (nil for an unsolicited
    /// response); `response` is nil for an unanswered request. `reason` is empty when matched.
    func writeTransaction(requestIndex: Int?, response: ModbusPDU?, responseBytes: ByteView, header: MBAPHeader?,
                          classification c: ModbusClassification, reason: StaticString, responder: FlowSide, sink: EventSink) {
        if let i = requestIndex {
            // The request's bytes live in the session's tables; borrow them for the length of the write.
            let entry = session.entry(i)
            let requestPDU = session.request(i) ?? ModbusPDU()
            session.withStoredRequest(i) { stored in
                Self.writeTransaction(request: entry, requestPDU: requestPDU, requestBytes: stored, response: response,
                                      responseBytes: responseBytes, header: header, classification: c, reason: reason,
                                      requester: responder.opposite, sink: sink)
            }
        } else {
            Self.writeTransaction(request: nil, requestPDU: ModbusPDU(), requestBytes: .empty, response: response, responseBytes: responseBytes,
                                  header: header, classification: c, reason: reason, requester: responder.opposite, sink: sink)
        }
    }

    static func writeTransaction(request: PendingRequest?, requestPDU: ModbusPDU, requestBytes: ByteView, response: ModbusPDU?, responseBytes: ByteView,
                                 header: MBAPHeader?, classification c: ModbusClassification, reason: StaticString,
                                 requester: FlowSide, sink: EventSink) {
        if let q = request {
            sink.beginRecord(.modbus, protocolName: "modbus", objectKey: "modbus", sender: requester, frame: q.frame, time: q.time)
        } else {
            sink.beginRecord(.modbus, protocolName: "modbus", objectKey: "modbus", sender: requester.opposite)
        }
        let transactionID = request?.transactionID ?? header?.transactionID ?? 0
        let unitID = request?.unitID ?? header?.unitID ?? 0
        let fc = request?.functionCode ?? response?.functionCode ?? FunctionCode(rawValue: 0)
        sink.json.field("transaction_id", Int(transactionID))
        sink.json.field("unit_id", Int(unitID))
        sink.json.field("function_code", Int(fc.rawValue))
        sink.json.field("function", fc.name)
        sink.json.field("access", c.access.name)
        if c.subfunction >= 0 {
            sink.json.field("subfunction", Int(c.subfunction))
            sink.json.field("subfunction_name", c.subfunctionName)
        }
        sink.json.field("broadcast", unitID == 0)
        sink.json.field("matched", request != nil && response != nil)
        if reason.utf8CodeUnitCount > 0 { sink.json.field("reason", reason) }
        if let q = request { sink.json.field("request_frame", q.frame) }
        if response != nil { sink.json.field("response_frame", sink.frame) }
        if let q = request, response != nil {
            sink.json.key("response_time"); sink.json.fixed6(sink.time.microseconds(since: q.time))
        }
        if request != nil {
            sink.json.key("request"); sink.json.beginObject()
            ModbusJSON.writeFields(requestPDU, bytes: requestBytes, request: nil, into: &sink.json)
            ModbusJSON.writeProblems(requestPDU.problems, into: &sink.json)
            sink.json.endObject()
        }
        if let r = response {
            sink.json.key("response"); sink.json.beginObject()
            if r.functionCode != fc { sink.json.field("function_code", Int(r.functionCode.rawValue)) }
            ModbusJSON.writeFields(r, bytes: responseBytes, request: request == nil ? nil : requestPDU, into: &sink.json)
            ModbusJSON.writeProblems(r.problems, into: &sink.json)
            sink.json.endObject()
        }
        sink.endRecord()
    }
}
