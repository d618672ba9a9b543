import Wire
import Records

// The JSON written for DNP3 (only when the sink asks for records, so it may grow the writer's buffer):
//
//   pdu (`zonewatch dissect`), one per application fragment or per link frame without one:
//     dnp3: source, destination, link_function, link_function_code, dir, prm, fcb/fcv (primary) or
//           dfc (secondary), role, length, crc_ok [, bad_crc: header|data]
//           [, transport: {fir, fin, sequence, segments}, function_code, function, sequence, fir, fin,
//              con, uns, iin, iin_flags, objects: [...], object_error, access]
//   dnp3 (`dnp3.jsonl`), one per request/response exchange, unsolicited response or lone request:
//     dnp3: source, destination, sequence, status, request{...}, response{...}, duration

/// Writers for DNP3 records.
enum DNP3Records {
    /// Writes the link-layer fields of a frame.
    static func writeLink(_ h: DNP3LinkHeader, crcOK: Bool, badCRC: StaticString?, to json: inout JSONWriter) {
        json.field("source", Int(h.source))
        json.field("destination", Int(h.destination))
        json.field("link_function", h.functionName)
        json.field("link_function_code", Int(h.function))
        json.field("dir", h.fromMaster)
        json.field("prm", h.primary)
        if h.primary { json.field("fcb", h.frameCountBit); json.field("fcv", h.frameCountValid) }
        else { json.field("dfc", h.frameCountValid) }
        json.field("role", h.fromMaster ? "master" : "outstation")
        json.field("length", Int(h.length))
        json.field("crc_ok", crcOK)
        if let badCRC { json.field("bad_crc", badCRC) }
    }

    /// Writes IIN as a number and as named flags.
    static func writeIIN(_ iin: UInt16, to json: inout JSONWriter) {
        json.field("iin", Int(iin))
        json.key("iin_flags"); json.beginArray()
        for bit in stride(from: 15, through: 0, by: -1) where iin & (1 << UInt16(bit)) != 0 {
            json.string(DNP3IIN.flagName(bit: bit))
        }
        json.endArray()
    }

    /// Writes the application-layer fields of one fragment, objects with their points included.
    static func writeApplication(_ fragment: ByteView, header ah: DNP3ApplicationHeader, transport th: DNP3TransportHeader,
                                 segments: Int, access: AccessClass, to json: inout JSONWriter) {
        json.key("transport"); json.beginObject()
        json.field("fir", th.fir); json.field("fin", th.fin); json.field("sequence", Int(th.sequence)); json.field("segments", segments)
        json.endObject()
        json.field("function_code", Int(ah.function.rawValue))
        json.field("function", ah.function.name)
        json.field("sequence", Int(ah.sequence))
        json.field("fir", ah.fir); json.field("fin", ah.fin); json.field("con", ah.con); json.field("uns", ah.uns)
        if let iin = ah.iin { writeIIN(iin, to: &json) }
        json.key("objects"); json.beginArray()
        var parser = DNP3ObjectParser(fragment: fragment, objectsAt: ah.length, function: ah.function)
        var failure: DNP3ObjectError?
        while true {
            do throws(DNP3ObjectError) {
                guard let h = try parser.next() else { break }
                DNP3PointWriter.write(h, fragment: fragment, to: &json)
            } catch {
                failure = error
                break
            }
        }
        json.endArray()
        if let failure {
            json.key("object_error"); json.beginObject()
            json.field("kind", failure.kind); json.field("offset", failure.offset)
            if fragment.has(2, at: failure.offset) {
                // The header that failed, as far as it could be read (Wireshark lists it too).
                json.field("group", Int(fragment.u8(failure.offset))); json.field("variation", Int(fragment.u8(failure.offset + 1)))
            }
            json.endObject()
        }
        json.field("access", access.name)
    }

    /// Writes one `dnp3.jsonl` record for a request slot and/or a response.
    static func writeTransaction(_ sink: EventSink, request r: DNP3PendingRequest?, requestSide: FlowSide,
                                 response: DNP3ApplicationHeader?, responseAddresses: (UInt16, UInt16)?,
                                 fragments: Int, status: StaticString) {
        if let r {
            sink.beginRecord(.dnp3, protocolName: "dnp3", objectKey: "dnp3", sender: requestSide, frame: r.frame, time: r.time)
        } else {
            sink.beginRecord(.dnp3, protocolName: "dnp3", objectKey: "dnp3", sender: requestSide)
        }
        if let r {
            sink.json.field("source", Int(r.source)); sink.json.field("destination", Int(r.destination))
            sink.json.field("sequence", Int(r.sequence))
        } else if let (outstation, master) = responseAddresses, let response {
            // Unsolicited or unmatched: the outstation sent it, so it is the source here.
            sink.json.field("source", Int(outstation)); sink.json.field("destination", Int(master))
            sink.json.field("sequence", Int(response.sequence))
        }
        sink.json.field("status", status)
        if let r {
            let f = DNP3FunctionCode(rawValue: r.function)
            sink.json.key("request"); sink.json.beginObject()
            sink.json.field("function_code", Int(r.function)); sink.json.field("function", f.name)
            sink.json.field("access", r.access.name); sink.json.field("frame", r.frame)
            sink.json.endObject()
        }
        if let response {
            sink.json.key("response"); sink.json.beginObject()
            sink.json.field("function_code", Int(response.function.rawValue)); sink.json.field("function", response.function.name)
            sink.json.field("frame", r?.responseFrame ?? sink.frame)
            if fragments > 1 { sink.json.field("last_frame", sink.frame) }
            sink.json.field("fragments", fragments)
            if let iin = response.iin { writeIIN(iin, to: &sink.json) }
            sink.json.endObject()
            if let r { sink.json.key("duration"); sink.json.fixed6(sink.time.microseconds(since: r.time)) }
        }
        sink.endRecord()
    }
}
