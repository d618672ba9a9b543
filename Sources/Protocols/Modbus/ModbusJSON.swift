// JSON fields of a Modbus PDU, shared by the per-PDU records (`zonewatch dissect`) and the paired
// transaction records (`modbus.jsonl`). Keys are static strings and values are numbers, static names or
// bytes escaped straight from the packet, so writing a record allocates nothing once the sink's buffer
// has grown. Field names:
//
//   address, quantity, write_address, write_quantity, byte_count, value, coil, output_data, status,
//   and_mask, or_mask, subfunction, subfunction_name, mei_type, mei_name, read_device_id_code,
//   read_device_id, object_id, conformity_level, more_follows, next_object_id, number_of_objects,
//   objects [{id, name, value | value_hex}], fifo_count, event_count, message_count, events,
//   pairing_key, umas_function, umas_function_name, umas_status, values, records, data (hex)
import Wire
import Records

/// Writes Modbus PDU fields into a `JSONWriter`.
public enum ModbusJSON {
    /// Writes the decoded fields of `pdu` (whose bytes are `bytes`). `request` is the request a
    /// response answers, when known (it gives the number of coils a bit-packed response carries).
    public static func writeFields(_ pdu: ModbusPDU, bytes: ByteView, request: ModbusPDU?, into json: inout JSONWriter) {
        let fc = pdu.functionCode
        if let code = pdu.exceptionCode {
            json.field("exception_code", Int(code))
            json.field("exception", ExceptionCode(rawValue: code).name)
            return
        }
        if pdu.address >= 0 { json.field(fc == .readWriteMultipleRegisters ? "read_address" : "address", Int(pdu.address)) }
        if pdu.quantity >= 0 && !(fc == .writeSingleCoil || fc == .writeSingleRegister || fc == .maskWriteRegister) {
            json.field(fc == .readWriteMultipleRegisters ? "read_quantity" : "quantity", Int(pdu.quantity))
        }
        if pdu.writeAddress >= 0 { json.field("write_address", Int(pdu.writeAddress)) }
        if pdu.writeQuantity >= 0 { json.field("write_quantity", Int(pdu.writeQuantity)) }
        if pdu.byteCount >= 0 { json.field("byte_count", Int(pdu.byteCount)) }
        if pdu.value >= 0 {
            switch fc {
            case .writeSingleCoil:
                json.field("value", Int(pdu.value))
                if pdu.value == 0xFF00 || pdu.value == 0 { json.field("coil", pdu.value == 0xFF00) }
            case .readExceptionStatus: json.field("output_data", Int(pdu.value))
            case .getCommEventCounter, .getCommEventLog: json.field("status", Int(pdu.value))
            default: json.field("value", Int(pdu.value))
            }
        }
        if pdu.andMask >= 0 { json.field("and_mask", Int(pdu.andMask)) }
        if pdu.orMask >= 0 { json.field("or_mask", Int(pdu.orMask)) }
        switch fc {
        case .diagnostics where pdu.subfunction >= 0:
            json.field("subfunction", Int(pdu.subfunction))
            json.field("subfunction_name", DiagnosticsSubfunction.name(UInt16(truncatingIfNeeded: pdu.subfunction)))
        case .umas where pdu.subfunction >= 0:
            json.field("pairing_key", Int(pdu.pairingKey))
            let code = UInt8(truncatingIfNeeded: pdu.subfunction)
            if pdu.direction == .request {
                json.field("umas_function", Int(code)); json.field("umas_function_name", UMAS.name(code))
            } else {
                json.key("umas_status")
                switch code {
                case UMAS.responseOK: json.string("ok")
                case UMAS.responseError: json.string("error")
                default: json.int(Int(code))
                }
            }
        default: break
        }
        if pdu.meiType >= 0 {
            json.field("mei_type", Int(pdu.meiType)); json.field("mei_name", MEI.name(UInt8(truncatingIfNeeded: pdu.meiType)))
        }
        if pdu.readDeviceIDCode >= 0 {
            json.field("read_device_id_code", Int(pdu.readDeviceIDCode))
            json.field("read_device_id", MEI.readDeviceIDCodeName(UInt8(truncatingIfNeeded: pdu.readDeviceIDCode)))
        }
        if pdu.conformityLevel >= 0 { json.field("conformity_level", Int(pdu.conformityLevel)) }
        if pdu.moreFollows >= 0 { json.field("more_follows", pdu.moreFollows == 0xFF) }
        if pdu.objectID >= 0 { json.field(pdu.direction == .request ? "object_id" : "next_object_id", Int(pdu.objectID)) }
        if pdu.count >= 0 {
            switch fc {
            case .encapsulatedInterfaceTransport: json.field("number_of_objects", Int(pdu.count))
            case .readFIFOQueue: json.field("fifo_count", Int(pdu.count))
            default: json.field("event_count", Int(pdu.count))
            }
        }
        if pdu.messageCount >= 0 { json.field("message_count", Int(pdu.messageCount)) }
        writePayload(pdu, bytes: bytes, request: request, into: &json)
    }

    /// Writes what the PDU carries (`values`, `records`, `objects`, `events` or `data`).
    static func writePayload(_ pdu: ModbusPDU, bytes: ByteView, request: ModbusPDU?, into json: inout JSONWriter) {
        let data = bytes.slice(from: pdu.dataOffset, length: pdu.dataLength)
        switch pdu.payload {
        case .none:
            break
        case .bits:
            var n = data.count * 8
            if pdu.direction == .request, pdu.quantity > 0 { n = min(n, Int(pdu.quantity)) }
            if pdu.direction == .response, let q = request?.quantity, q > 0 { n = min(n, Int(q)) }
            json.key("values"); json.beginArray()
            for i in 0..<n { json.int(Int((data.u8(i >> 3) >> UInt8(i & 7)) & 1)) }
            json.endArray()
        case .registers:
            json.key("values"); writeRegisters(data, into: &json)
        case .fileReadRequests:
            json.key("records"); json.beginArray()
            var o = 0
            while data.has(7, at: o) {
                json.beginObject()
                json.field("reference_type", Int(data.u8(o)))
                json.field("file_number", Int(data.u16be(o + 1)))
                json.field("record_number", Int(data.u16be(o + 3)))
                json.field("record_length", Int(data.u16be(o + 5)))
                json.endObject()
                o += 7
            }
            json.endArray()
        case .fileReadResponses:
            json.key("records"); json.beginArray()
            var o = 0
            while data.has(2, at: o) {
                let m = Int(data.u8(o))
                guard m >= 1 else { break }
                json.beginObject()
                json.field("reference_type", Int(data.u8(o + 1)))
                json.key("values"); writeRegisters(data.slice(from: o + 2, length: m - 1), into: &json)
                json.endObject()
                o += 1 + m
            }
            json.endArray()
        case .fileWriteGroups:
            json.key("records"); json.beginArray()
            var o = 0
            while data.has(7, at: o) {
                let words = Int(data.u16be(o + 5))
                json.beginObject()
                json.field("reference_type", Int(data.u8(o)))
                json.field("file_number", Int(data.u16be(o + 1)))
                json.field("record_number", Int(data.u16be(o + 3)))
                json.field("record_length", words)
                json.key("values"); writeRegisters(data.slice(from: o + 7, length: 2 * words), into: &json)
                json.endObject()
                o += 7 + 2 * words
            }
            json.endArray()
        case .deviceObjects:
            json.key("objects"); json.beginArray()
            var o = 0
            while data.has(2, at: o) {
                let id = data.u8(o), m = Int(data.u8(o + 1))
                guard data.has(m, at: o + 2) else { break }
                let value = data.slice(from: o + 2, length: m)
                json.beginObject()
                json.field("id", Int(id)); json.field("name", MEI.objectName(id))
                // Objects 0–6 are ASCII strings by the spec; others are device-defined bytes.
                if id <= 6 { json.key("value"); json.string(bytes: value) } else { json.key("value_hex"); json.hex(value) }
                json.endObject()
                o += 2 + m
            }
            json.endArray()
        case .events:
            json.key("events"); json.beginArray()
            for i in 0..<data.count { json.int(Int(data.u8(i))) }
            json.endArray()
        case .raw:
            json.key("data"); json.hex(data)
        }
    }

    /// `[r0, r1, ...]` from big-endian 16-bit registers (an odd trailing byte is ignored).
    static func writeRegisters(_ data: ByteView, into json: inout JSONWriter) {
        json.beginArray()
        var o = 0
        while data.has(2, at: o) { json.int(Int(data.u16be(o))); o += 2 }
        json.endArray()
    }

    /// Writes the names of the parser's problems as `problems: [...]` (nothing when there are none).
    static func writeProblems(_ p: ModbusPDUProblems, into json: inout JSONWriter) {
        guard !p.isEmpty else { return }
        json.key("problems"); json.beginArray()
        if p.contains(.unknownFunction) { json.string("unknown_function_code") }
        if p.contains(.illegalQuantity) { json.string("illegal_quantity") }
        if p.contains(.badCoilValue) { json.string("bad_coil_value") }
        if p.contains(.byteCountMismatch) { json.string("byte_count_mismatch") }
        if p.contains(.badLength) { json.string("bad_length") }
        if p.contains(.unknownException) { json.string("unknown_exception_code") }
        json.endArray()
    }
}
