import Wire
import Records

// IEEE 1815-2012 Annex A: the layout of one object of the groups we decode (little-endian).
//
//   flags octet (g1, g2, g3, g4, g10, g11, g20–g23, g30–g33, g40, g42): bit0 ONLINE, 1 RESTART,
//     2 COMM_LOST, 3 REMOTE_FORCED, 4 LOCAL_FORCED, 5 CHATTER_FILTER / ROLLOVER / OVER_RANGE,
//     6 (analog) REFERENCE_ERR / (double-bit) state LSB, 7 STATE (binary) / state MSB (double-bit)
//   time48: milliseconds since 1970-01-01T00:00:00Z, u48; reltime16: ms after the CTO (g51)
//   counters:  [flags] u16|u32 [time48]     analogs: [flags|status] i16|i32|f32|f64 [time48]
//   g41 analog output command: i16|i32|f32|f64 then control status
//   g12v1 CROB: control code(1) count(1) on-time ms u32 off-time ms u32 status(1)
//     control code: bits 0-3 op (NUL, PULSE_ON, PULSE_OFF, LATCH_ON, LATCH_OFF), bit 4 QUEUE,
//     bit 5 CLEAR, bits 6-7 trip/close (NUL, CLOSE, TRIP)
//   g50v1/v3 time48; v2 time48 + interval u32; v4 time48 + interval u32 + units u8
//   g52 v1 delay seconds u16, v2 delay ms u16
//   g0 attribute: data type (1 VSTR, 2 UINT, 3 INT, 4 FLT, 5 OSTR, 6 BSTR, 254/255 lists), length, value

/// Writes object headers and their point values into a record.
public enum DNP3PointWriter {
    /// Points written per object header; the rest are counted, not listed.
    public static let maximumPointsPerHeader = 1024

    /// Writes `{"group": ..., "points": [...]}` for one header.
    public static func write(_ h: DNP3ObjectHeader, fragment: ByteView, to json: inout JSONWriter) {
        json.beginObject()
        json.field("group", Int(h.group))
        json.field("variation", Int(h.variation))
        json.field("name", DNP3ObjectCatalog.name(group: h.group, variation: h.variation))
        json.field("qualifier", Int(h.qualifier))
        json.field("prefix", h.prefixIsIndex ? "index" : h.prefixIsSize ? "size" : "none")
        if h.prefixSize > 0 { json.field("prefix_size", h.prefixSize) }
        switch h.rangeKind {
        case .startStop: json.field("range", "start_stop"); json.field("start", Int(h.start)); json.field("stop", Int(h.stop))
        case .count: json.field("range", "count"); json.field("count", h.count)
        case .all: json.field("range", "all")
        case .virtualAddress: json.field("range", "virtual_address"); json.field("start", Int(h.start))
        }
        if h.size == .unknown || h.size == .variable { json.field("object_size", "prefixed") }
        if h.headersOnly {
            if h.prefixSize > 0 && h.count > 0 {
                json.key("indices"); json.beginArray()
                var o = h.dataOffset
                for _ in 0..<min(h.count, maximumPointsPerHeader) {
                    json.uint(UInt64(readUInt(fragment, o, size: h.prefixSize))); o += h.prefixSize
                }
                json.endArray()
            }
        } else if h.count > 0 {
            writePoints(h, fragment: fragment, to: &json)
        }
        json.endObject()
    }

    static func writePoints(_ h: DNP3ObjectHeader, fragment: ByteView, to json: inout JSONWriter) {
        json.key("points"); json.beginArray()
        let shown = min(h.count, maximumPointsPerHeader)
        if case .bits(let b) = h.size {
            for i in 0..<shown {
                let bit = i * b, octet = fragment.u8(h.dataOffset + bit / 8)
                let v = (octet >> UInt8(bit % 8)) & (b == 2 ? 0x03 : 0x01)
                json.beginObject()
                json.field("index", Int(h.start) + i)
                if b == 2 { json.field("value", Int(v)); json.field("state", doubleBitName(v)) } else { json.field("value", v != 0) }
                json.endObject()
            }
        } else {
            var o = h.dataOffset
            for i in 0..<shown {
                var index: Int64 = -1
                var size: Int
                switch h.size {
                case .fixed(let n): size = n
                case .variationLength: size = Int(h.variation)
                default: size = 0
                }
                if h.prefixIsIndex { index = Int64(readUInt(fragment, o, size: h.prefixSize)) }
                if h.prefixIsSize { size = Int(readUInt(fragment, o, size: h.prefixSize)) }
                o += h.prefixSize
                if h.size == .deviceAttribute && !h.prefixIsSize { size = 2 + Int(fragment.u8(o + 1)) }
                if !h.prefixIsIndex {
                    switch h.rangeKind {
                    case .startStop: index = Int64(h.start) + Int64(i)
                    case .virtualAddress: index = Int64(h.start)
                    default: break
                    }
                }
                json.beginObject()
                if index >= 0 { json.field("index", Int(index)) }
                writeValue(h, fragment.slice(from: o, length: size), to: &json)
                json.endObject()
                o += size
            }
        }
        json.endArray()
        if h.count > shown { json.field("points_not_listed", h.count - shown) }
    }

    /// Writes the fields of one object (`v` is exactly the object's octets).
    static func writeValue(_ h: DNP3ObjectHeader, _ v: ByteView, to json: inout JSONWriter) {
        let g = h.group, variation = h.variation
        switch g {
        case 1, 2, 10, 11, 13:
            guard v.count >= 1 else { return }
            let flags = v.u8(0)
            json.field("value", flags & 0x80 != 0); json.field("flags", Int(flags))
            writeTimeTail(v, from: 1, to: &json)
        case 3, 4:
            guard v.count >= 1 else { return }
            let flags = v.u8(0), state = (flags >> 6) & 0x03
            json.field("value", Int(state)); json.field("state", doubleBitName(state)); json.field("flags", Int(flags))
            writeTimeTail(v, from: 1, to: &json)
        case 12 where variation == 1 || variation == 2:
            guard v.count >= 11 else { return }
            writeCROB(v, to: &json)
        case 20, 21, 22, 23:
            writeCounter(v, to: &json)
        case 30, 31, 32, 33, 34, 40, 41, 42, 43:
            writeAnalog(g, variation, v, to: &json)
        case 50, 51:
            guard v.count >= 6 else { return }
            json.key("time"); writeTime48(v, at: 0, to: &json)
            if v.count >= 10 { json.field("interval", Int(v.u32le(6))) }
            if v.count >= 11 { json.field("interval_units", Int(v.u8(10))) }
        case 52:
            guard v.count >= 2 else { return }
            json.field("delay_ms", Int(v.u16le(0)) * (variation == 1 ? 1000 : 1))
        case 0:
            writeDeviceAttribute(variation, v, to: &json)
        case 101, 110, 111, 112, 113:
            json.key("value"); json.hex(v)
        case 102:
            guard v.count >= 1 else { return }
            json.field("value", Int(v.u8(0)))
        case 121, 122:
            guard v.count >= 7 else { return }
            json.field("flags", Int(v.u8(0))); json.field("association", Int(v.u16le(1))); json.field("value", Int(v.u32le(3)))
            if v.count >= 13 { json.key("time"); writeTime48(v, at: 7, to: &json) }
        default:
            json.field("length", v.count)
        }
    }

    /// Counters g20–g23: layout follows from the object size.
    static func writeCounter(_ v: ByteView, to json: inout JSONWriter) {
        switch v.count {
        case 2: json.field("value", Int(v.u16le(0)))
        case 4: json.field("value", Int(v.u32le(0)))
        case 3, 9: json.field("value", Int(v.u16le(1))); json.field("flags", Int(v.u8(0)))
        case 5, 11: json.field("value", Int(v.u32le(1))); json.field("flags", Int(v.u8(0)))
        default: json.field("length", v.count); return
        }
        if v.count == 9 { json.key("time"); writeTime48(v, at: 3, to: &json) }
        if v.count == 11 { json.key("time"); writeTime48(v, at: 5, to: &json) }
    }

    enum AnalogValue { case i16, i32, f32, f64, u16, u32 }

    /// Analog layout: value type, where the flags/status octet is (0 first, 1 last, -1 none), time.
    static func analogLayout(_ g: UInt8, _ v: UInt8) -> (AnalogValue, Int, Bool)? {
        switch (g, v) {
        case (30, 1), (31, 1), (32, 1), (33, 1), (40, 1), (42, 1), (43, 1): return (.i32, 0, false)
        case (30, 2), (31, 2), (32, 2), (33, 2), (40, 2), (42, 2), (43, 2): return (.i16, 0, false)
        case (30, 3), (31, 5): return (.i32, -1, false)
        case (30, 4), (31, 6): return (.i16, -1, false)
        case (30, 5), (31, 7), (32, 5), (33, 5), (40, 3), (42, 5), (43, 5): return (.f32, 0, false)
        case (30, 6), (31, 8), (32, 6), (33, 6), (40, 4), (42, 6), (43, 6): return (.f64, 0, false)
        case (31, 3), (32, 3), (33, 3), (42, 3), (43, 3): return (.i32, 0, true)
        case (31, 4), (32, 4), (33, 4), (42, 4), (43, 4): return (.i16, 0, true)
        case (32, 7), (33, 7), (42, 7), (43, 7): return (.f32, 0, true)
        case (32, 8), (33, 8), (42, 8), (43, 8): return (.f64, 0, true)
        case (41, 1): return (.i32, 1, false)
        case (41, 2): return (.i16, 1, false)
        case (41, 3): return (.f32, 1, false)
        case (41, 4): return (.f64, 1, false)
        case (34, 1): return (.u16, -1, false)
        case (34, 2): return (.u32, -1, false)
        case (34, 3): return (.f32, -1, false)
        default: return nil
        }
    }

    static func writeAnalog(_ g: UInt8, _ variation: UInt8, _ v: ByteView, to json: inout JSONWriter) {
        guard let (kind, flagPosition, hasTime) = analogLayout(g, variation) else { json.field("length", v.count); return }
        let width: Int
        switch kind {
        case .i16, .u16: width = 2
        case .i32, .u32, .f32: width = 4
        case .f64: width = 8
        }
        let valueAt = flagPosition == 0 ? 1 : 0
        guard v.count >= valueAt + width + (flagPosition == 1 ? 1 : 0) + (hasTime ? 6 : 0) else { json.field("length", v.count); return }
        json.key("value")
        switch kind {
        case .i16: json.int(Int64(Int16(bitPattern: v.u16le(valueAt))))
        case .i32: json.int(Int64(Int32(bitPattern: v.u32le(valueAt))))
        case .u16: json.int(Int64(v.u16le(valueAt)))
        case .u32: json.int(Int64(v.u32le(valueAt)))
        case .f32: json.double(Double(Float(bitPattern: v.u32le(valueAt))))
        case .f64: json.double(Double(bitPattern: v.u64le(valueAt)))
        }
        if flagPosition == 0 { json.field(g == 43 ? "status" : "flags", Int(v.u8(0))) }
        if flagPosition == 1 {
            let status = v.u8(valueAt + width)
            json.field("status", Int(status)); json.field("status_name", commandStatusName(status))
        }
        if hasTime { json.key("time"); writeTime48(v, at: valueAt + width, to: &json) }
    }

    static func writeCROB(_ v: ByteView, to json: inout JSONWriter) {
        let code = v.u8(0)
        json.field("control_code", Int(code))
        json.field("operation", operationName(code & 0x0F))
        json.field("trip_close", tripCloseName(code >> 6))
        json.field("queue", code & 0x10 != 0)
        json.field("clear", code & 0x20 != 0)
        json.field("count", Int(v.u8(1)))
        json.field("on_time", Int(v.u32le(2)))
        json.field("off_time", Int(v.u32le(6)))
        let status = v.u8(10) & 0x7F
        json.field("status", Int(status)); json.field("status_name", commandStatusName(status))
    }

    static func writeDeviceAttribute(_ variation: UInt8, _ v: ByteView, to json: inout JSONWriter) {
        json.field("attribute", Int(variation))
        guard v.count >= 2 else { return }
        let type = v.u8(0), length = Int(v.u8(1))
        let value = v.slice(from: 2, length: length)
        json.field("data_type", Int(type))
        switch type {
        case 1: json.key("value"); json.string(bytes: value)
        case 2 where value.count >= 1 && value.count <= 8:
            var n: UInt64 = 0
            for i in 0..<value.count { n |= UInt64(value.u8(i)) << UInt64(8 * i) }
            json.key("value"); json.uint(n)
        default: json.key("value"); json.hex(value)
        }
    }

    /// Writes a 48-bit millisecond timestamp as RFC 3339 text.
    static func writeTime48(_ v: ByteView, at offset: Int, to json: inout JSONWriter) {
        guard v.has(6, at: offset) else { json.null(); return }
        let ms = Int64(v.u32le(offset)) | Int64(v.u16le(offset + 4)) << 32
        json.time(PacketTime(seconds: ms / 1000, microseconds: Int32(ms % 1000) * 1000))
    }

    /// Event time after the flags octet: absolute (6 octets) or relative to the CTO (2 octets).
    static func writeTimeTail(_ v: ByteView, from offset: Int, to json: inout JSONWriter) {
        let rest = v.count - offset
        if rest >= 6 { json.key("time"); writeTime48(v, at: offset, to: &json) }
        else if rest == 2 { json.field("relative_time_ms", Int(v.u16le(offset))) }
    }

    static func doubleBitName(_ s: UInt8) -> StaticString {
        switch s {
        case 0: "intermediate"
        case 1: "off"
        case 2: "on"
        default: "indeterminate"
        }
    }

    static func operationName(_ op: UInt8) -> StaticString {
        switch op {
        case 0: "NUL"
        case 1: "PULSE_ON"
        case 2: "PULSE_OFF"
        case 3: "LATCH_ON"
        case 4: "LATCH_OFF"
        default: "unknown"
        }
    }

    static func tripCloseName(_ tc: UInt8) -> StaticString {
        switch tc {
        case 0: "NUL"
        case 1: "CLOSE"
        case 2: "TRIP"
        default: "reserved"
        }
    }

    /// Control status codes of the status field of g12v1 and g41 objects (IEEE 1815-2012 Annex A).
    static func commandStatusName(_ s: UInt8) -> StaticString {
        switch s {
        case 0: "SUCCESS"
        case 1: "TIMEOUT"
        case 2: "NO_SELECT"
        case 3: "FORMAT_ERROR"
        case 4: "NOT_SUPPORTED"
        case 5: "ALREADY_ACTIVE"
        case 6: "HARDWARE_ERROR"
        case 7: "LOCAL"
        case 8: "TOO_MANY_OBJS"
        case 9: "NOT_AUTHORIZED"
        case 10: "AUTOMATION_INHIBIT"
        case 11: "PROCESSING_LIMITED"
        case 12: "OUT_OF_RANGE"
        case 126: "NON_PARTICIPATING"
        case 127: "UNDEFINED"
        default: "reserved"
        }
    }
}
