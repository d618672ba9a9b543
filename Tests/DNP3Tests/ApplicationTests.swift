import Testing
import Wire
import Records
@testable import DNP3

@Suite("DNP3 application layer")
struct ApplicationTests {
    @Test("header: control bits, function, IIN on responses only")
    func header() throws {
        let req = try ByteView.with([0xF5, 0x01]) { v throws(DNP3ApplicationError) in try DNP3ApplicationHeader.parse(v) }
        #expect(req.fir && req.fin && req.con && req.uns && req.sequence == 5 && req.iin == nil && req.length == 2)
        let rsp = try ByteView.with([0xC3, 0x81, 0x90, 0x02]) { v throws(DNP3ApplicationError) in try DNP3ApplicationHeader.parse(v) }
        #expect(rsp.iin == 0x9002 && rsp.length == 4)
        #expect(throws: DNP3ApplicationError.truncatedHeader(need: 4, have: 3)) {
            try ByteView.with([0xC3, 0x81, 0x90]) { v throws(DNP3ApplicationError) in try DNP3ApplicationHeader.parse(v) }
        }
    }

    @Test("every defined function code has a name and a class", arguments: Array(0x00...0x21) + [0x81, 0x82, 0x83])
    func functionNames(code: Int) {
        let f = DNP3FunctionCode(rawValue: UInt8(code))
        #expect(f.isKnown && f.name.description != "unknown")
    }

    @Test("access classes", arguments: [
        (0x00, "session"), (0x03, "control"), (0x04, "control"), (0x05, "control"), (0x06, "control"),
        (0x07, "control"), (0x0C, "control"), (0x0D, "lifecycle"), (0x0E, "lifecycle"), (0x12, "lifecycle"),
        (0x13, "config"), (0x14, "config"), (0x15, "config"), (0x16, "config"), (0x17, "time"), (0x18, "time"),
        (0x19, "file"), (0x1E, "file"), (0x1F, "program_download"), (0x20, "auth"), (0x21, "auth"),
        (0x81, "response"), (0x82, "response"), (0x83, "auth"),
    ])
    func accessByFunction(code: Int, access: String) {
        #expect(DNP3FunctionCode(rawValue: UInt8(code)).baseAccess.name.description == access)
    }

    @Test("READ and WRITE are refined by their objects", arguments: [
        ([0xC0, 0x01, 0x3C, 0x01, 0x06], "read"),                                       // class 0 poll
        ([0xC0, 0x01, 0x00, 0xFE, 0x06], "diagnostic"),                                 // g0v254: all attributes
        ([0xC0, 0x01, 0x32, 0x01, 0x07, 0x01], "time"),                                 // read time
        ([0xC0, 0x02, 0x32, 0x01, 0x07, 0x01, 0, 0, 0, 0, 0, 0], "time"),               // time sync
        ([0xC0, 0x02, 0x50, 0x01, 0x00, 0x07, 0x07, 0x00], "session"),                  // clear IIN1.7
        ([0xC0, 0x02, 0x29, 0x02, 0x17, 0x01, 0x03, 0x10, 0x00, 0x00], "write"),        // write analog output
    ] as [([UInt8], String)])
    func accessByObjects(app: [UInt8], access: String) {
        let h = Harness()
        h.feed(Wire3.request(app))
        #expect(h.pdus.first?["access"] as? String == access)
        #expect(h.sink.operations.first?.access.name.description == access)
    }

    @Test("IIN flags are named")
    func iinFlags() {
        let h = Harness()
        h.feed(Wire3.response([0xC0, 0x81, 0x92, 0x24]), side: .responder)
        let p = h.pdus[0]
        #expect(p["iin"] as? Int == 0x9224)
        #expect(p["iin_flags"] as? [String] == ["device_restart", "need_time", "class_1_events", "config_corrupt", "parameter_error"])
    }

    /// One response carrying `objects`, decoded; returns the objects array.
    func decode(_ objects: [UInt8], function: UInt8 = 0x81, side: FlowSide = .responder) -> (objects: [[String: Any]], anomalies: [String]) {
        let h = Harness()
        let app: [UInt8] = function >= 0x81 ? [0xC0, function, 0x00, 0x00] + objects : [0xC0, function] + objects
        h.feed(function >= 0x81 ? Wire3.response(app) : Wire3.request(app), side: side)
        return (h.pdus.first?.objects ?? [], h.anomalies)
    }

    @Test("g1 binary inputs: packed bits and with flags")
    func binaryInputs() {
        let r = decode([0x01, 0x01, 0x00, 0x03, 0x0C, 0b0000_0101, 0x00, 0x01, 0x02, 0x00, 0x00, 0x01, 0x81, 0x01])
        #expect(r.objects.count == 2)
        let bits = r.objects[0]["points"] as? [[String: Any]] ?? []
        #expect(bits.map { $0["index"] as? Int } == [3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
        #expect(bits.map { $0["value"] as? Bool } == [true, false, true, false, false, false, false, false, false, false])
        let flags = r.objects[1]["points"] as? [[String: Any]] ?? []
        #expect(flags.map { $0["value"] as? Bool } == [true, false])
        #expect(flags.map { $0["flags"] as? Int } == [0x81, 0x01])
        #expect(r.anomalies.isEmpty)
    }

    @Test("g2 binary input events with absolute and relative time")
    func binaryEvents() {
        let t: UInt64 = 1_700_000_000_123
        let r = decode([0x02, 0x02, 0x17, 0x01, 0x05, 0x81] + Wire3.le48(t) + [0x02, 0x03, 0x17, 0x01, 0x06, 0x01] + Wire3.le16(250))
        let e = r.objects[0]["points"] as? [[String: Any]] ?? []
        #expect(e.first?["index"] as? Int == 5 && e.first?["value"] as? Bool == true)
        #expect(e.first?["time"] as? String == "2023-11-14T22:13:20.123000Z")
        let rel = r.objects[1]["points"] as? [[String: Any]] ?? []
        #expect(rel.first?["relative_time_ms"] as? Int == 250 && rel.first?["value"] as? Bool == false)
    }

    @Test("g3/g4 double-bit inputs and events")
    func doubleBit() {
        let r = decode([0x03, 0x01, 0x00, 0x00, 0x03, 0b1110_0100, 0x04, 0x01, 0x17, 0x01, 0x02, 0x81])
        let packed = r.objects[0]["points"] as? [[String: Any]] ?? []
        #expect(packed.map { $0["state"] as? String } == ["intermediate", "off", "on", "indeterminate"])
        let ev = r.objects[1]["points"] as? [[String: Any]] ?? []
        #expect(ev.first?["state"] as? String == "on" && ev.first?["index"] as? Int == 2)
    }

    @Test("g10/g11 binary outputs and events")
    func binaryOutputs() {
        let r = decode([0x0A, 0x02, 0x00, 0x00, 0x01, 0x81, 0x01, 0x0B, 0x02, 0x17, 0x01, 0x01, 0x01] + Wire3.le48(0))
        #expect((r.objects[0]["points"] as? [[String: Any]])?.map { $0["value"] as? Bool } == [true, false])
        #expect((r.objects[1]["points"] as? [[String: Any]])?.first?["time"] as? String == "1970-01-01T00:00:00.000000Z")
    }

    @Test("g12v1 CROB: control code, count, times, status")
    func crob() {
        let r = decode([0x0C, 0x01, 0x28, 0x01, 0x00] + Wire3.le16(7) + [0x41, 0x02] + Wire3.le32(1000) + Wire3.le32(500) + [0x00],
                       function: 0x05, side: .initiator)
        let p = r.objects[0]["points"] as? [[String: Any]] ?? []
        #expect(p.count == 1)
        #expect(p[0]["index"] as? Int == 7)
        #expect(p[0]["operation"] as? String == "PULSE_ON" && p[0]["trip_close"] as? String == "CLOSE")
        #expect(p[0]["count"] as? Int == 2 && p[0]["on_time"] as? Int == 1000 && p[0]["off_time"] as? Int == 500)
        #expect(p[0]["status_name"] as? String == "SUCCESS")
        #expect(r.objects[0]["name"] as? String == "control_relay_output_block")
        #expect(r.objects[0]["prefix"] as? String == "index" && r.objects[0]["prefix_size"] as? Int == 2)
    }

    @Test("g20/g21/g22 counters", arguments: [
        ([0x14, 0x01, 0x00, 0x02, 0x02, 0x01] + Wire3.le32(123456), 123456, false),
        ([0x14, 0x06, 0x00, 0x00, 0x00] + Wire3.le16(65535), 65535, false),
        ([0x15, 0x01, 0x00, 0x00, 0x00, 0x01] + Wire3.le32(9), 9, false),
        ([0x15, 0x05, 0x00, 0x00, 0x00, 0x01] + Wire3.le32(9) + Wire3.le48(1000), 9, true),
        ([0x16, 0x02, 0x17, 0x01, 0x04, 0x01] + Wire3.le16(77), 77, false),
    ] as [([UInt8], Int, Bool)])
    func counters(objects: [UInt8], value: Int, timed: Bool) {
        let r = decode(objects)
        let p = r.objects.first?["points"] as? [[String: Any]] ?? []
        #expect(p.first?["value"] as? Int == value)
        #expect((p.first?["time"] != nil) == timed)
        #expect(r.anomalies.isEmpty)
    }

    @Test("g30/g32 analog inputs and events, integer and float")
    func analogInputs() {
        let r = decode([0x1E, 0x01, 0x00, 0x00, 0x00, 0x01] + Wire3.le32(UInt32(bitPattern: -5))
                       + [0x1E, 0x05, 0x00, 0x01, 0x01, 0x01] + Wire3.le32(Float(2.5).bitPattern)
                       + [0x1E, 0x04, 0x00, 0x02, 0x02] + Wire3.le16(300)
                       + [0x20, 0x03, 0x17, 0x01, 0x03, 0x01] + Wire3.le32(42) + Wire3.le48(5000)
                       + [0x20, 0x06, 0x17, 0x01, 0x04, 0x01] + (0..<8).map { UInt8((Double(-1.25).bitPattern >> (8 * UInt64($0))) & 0xFF) })
        let values = r.objects.map { (($0["points"] as? [[String: Any]])?.first?["value"]) }
        #expect(values[0] as? Int == -5)
        #expect(values[1] as? Double == 2.5)
        #expect(values[2] as? Int == 300)
        #expect(values[3] as? Int == 42)
        #expect(values[4] as? Double == -1.25)
        #expect((r.objects[3]["points"] as? [[String: Any]])?.first?["time"] as? String == "1970-01-01T00:00:05.000000Z")
        #expect(r.anomalies.isEmpty)
    }

    @Test("g40 analog output status and g41 analog output command")
    func analogOutputs() {
        let r = decode([0x28, 0x02, 0x00, 0x00, 0x00, 0x01] + Wire3.le16(1234)
                       + [0x29, 0x01, 0x17, 0x01, 0x03] + Wire3.le32(99) + [0x04])
        #expect((r.objects[0]["points"] as? [[String: Any]])?.first?["value"] as? Int == 1234)
        let cmd = (r.objects[1]["points"] as? [[String: Any]])?.first
        #expect(cmd?["value"] as? Int == 99 && cmd?["index"] as? Int == 3 && cmd?["status_name"] as? String == "NOT_SUPPORTED")
    }

    @Test("g50 time, g52 delay, g60 class data, g80 IIN")
    func timeClassIIN() {
        let r = decode([0x32, 0x01, 0x07, 0x01] + Wire3.le48(86_400_000)
                       + [0x34, 0x02, 0x07, 0x01] + Wire3.le16(150)
                       + [0x3C, 0x02, 0x06]
                       + [0x50, 0x01, 0x00, 0x00, 0x0F] + Wire3.le16(0x0090))
        #expect(r.objects.map { $0["name"] as? String } == ["time_and_date", "time_delay_fine", "class_1_data", "internal_indications"])
        #expect((r.objects[0]["points"] as? [[String: Any]])?.first?["time"] as? String == "1970-01-02T00:00:00.000000Z")
        #expect((r.objects[1]["points"] as? [[String: Any]])?.first?["delay_ms"] as? Int == 150)
        #expect(r.objects[2]["range"] as? String == "all" && r.objects[2]["points"] == nil)
        let iin = r.objects[3]["points"] as? [[String: Any]] ?? []
        #expect(iin.count == 16 && iin.filter { $0["value"] as? Bool == true }.map { $0["index"] as? Int } == [4, 7])
    }

    @Test("g0 device attributes: strings and unsigned integers")
    func deviceAttributes() {
        let r = decode([0x00, 0xFC, 0x00, 0x00, 0x00, 0x01, 0x04] + Array("ACME".utf8)
                       + [0x00, 0xEF, 0x00, 0x00, 0x00, 0x02, 0x02] + Wire3.le16(2048))
        let p0 = (r.objects[0]["points"] as? [[String: Any]])?.first
        #expect(p0?["attribute"] as? Int == 252 && p0?["value"] as? String == "ACME")
        #expect((r.objects[1]["points"] as? [[String: Any]])?.first?["value"] as? Int == 2048)
        #expect(r.anomalies.isEmpty)
    }

    @Test("READ requests: headers only, index prefixes listed")
    func readHeaders() {
        let r = decode([0x01, 0x02, 0x17, 0x03, 0x01, 0x05, 0x09, 0x1E, 0x00, 0x01] + Wire3.le16(0) + Wire3.le16(99)
                       + [0x3C, 0x02, 0x06, 0x3C, 0x03, 0x06], function: 0x01, side: .initiator)
        #expect(r.objects.count == 4)
        #expect(r.objects[0]["indices"] as? [Int] == [1, 5, 9])
        #expect(r.objects[1]["start"] as? Int == 0 && r.objects[1]["stop"] as? Int == 99 && r.objects[1]["points"] == nil)
        #expect(r.anomalies.isEmpty)
    }

    @Test("unknown group with an object-size prefix is named unknown and skipped")
    func unknownGroupSized() {
        // g200v1, qualifier 0x5B: count 1, 2-octet size prefix 3, then 3 octets; then a known g30v1.
        let r = decode([0xC8, 0x01, 0x5B, 0x01] + Wire3.le16(3) + [0xAA, 0xBB, 0xCC]
                       + [0x1E, 0x01, 0x00, 0x00, 0x00, 0x01] + Wire3.le32(5))
        #expect(r.objects.map { $0["name"] as? String } == ["unknown", "analog_input"])
        #expect((r.objects[0]["points"] as? [[String: Any]])?.first?["length"] as? Int == 3)
        #expect((r.objects[1]["points"] as? [[String: Any]])?.first?["value"] as? Int == 5)
        #expect(r.anomalies == ["unknown_object_group"])
    }

    @Test("unknown group without a size: flagged, parsing stops, the record says why")
    func unknownGroupUnsized() {
        let h = Harness()
        h.feed(Wire3.response([0xC0, 0x81, 0x00, 0x00, 0xC8, 0x01, 0x00, 0x00, 0x01, 0x11, 0x22, 0x1E, 0x01, 0x06]), side: .responder)
        let p = h.pdus[0]
        #expect(p.objects.isEmpty)
        #expect((p["object_error"] as? [String: Any])?["kind"] as? String == "unknown_object_size")
        #expect(h.anomalies == ["unknown_object_size"])
        #expect(h.functionCodes == [0x81])
    }

    @Test("object errors", arguments: [
        ([0x1E, 0x01], "truncated_object_header"),
        ([0x1E, 0x01, 0x00, 0x05, 0x02], "invalid_range"),
        ([0x1E, 0x01, 0x7A, 0x00], "reserved_qualifier"),
        ([0x1E, 0x01, 0x00, 0x00, 0x03, 0x01], "truncated_objects"),
        ([0x01, 0x01, 0x17, 0x01, 0x00, 0x01], "invalid_prefix"),
    ] as [([UInt8], String)])
    func objectErrors(objects: [UInt8], kind: String) {
        #expect(decode(objects).anomalies == [kind])
    }

    @Test("request from the outstation or response from the master is a direction anomaly")
    func direction() {
        let h = Harness()
        h.feed(Wire3.frame(control: 0x44, destination: 1, source: 10, userData: [0xC0, 0xC0, 0x01, 0x3C, 0x01, 0x06]), side: .responder)
        h.feed(Wire3.frame(control: 0xC4, destination: 10, source: 1, userData: [0xC1, 0xC0, 0x81, 0x00, 0x00]))
        #expect(h.anomalies == ["direction_mismatch", "direction_mismatch"])
    }

    @Test("unknown function code and truncated header are reported")
    func badFunction() {
        let h = Harness()
        h.feed(Wire3.request([0xC0, 0x55]))
        h.feed(Wire3.request([0xC0], transportSequence: 1))
        #expect(h.anomalies == ["unknown_function_code", "truncated_application_header"])
        #expect(h.pdus.count == 2)
        #expect(h.pdus[0]["function"] as? String == "unknown")
    }
}
