import Testing
import Wire
import Records
@testable import S7comm

/// Userdata: groups, sub-functions, SZL decoding, fragments, clock, block lists, cyclic data.
@Suite struct UserdataTests {
    static func text(_ s: String, _ width: Int) -> [UInt8] { Array((Array(s.utf8) + [UInt8](repeating: 0, count: width)).prefix(width)) }

    /// SZL 0x0011 as an S7-300 returns it: module, basic hardware, basic firmware.
    static let moduleIdentification: [UInt8] = [0x00, 0x11, 0x00, 0x00, 0x00, 28, 0x00, 3]
        + [0x00, 0x01] + text("6ES7 315-2EH14-0AB0 ", 20) + [0xC0, 0x00, 0x00, 0x00, 0x00, 0x01]
        + [0x00, 0x06] + text("6ES7 315-2EH14-0AB0 ", 20) + [0xC0, 0x00, 0x00, 0x00, 0x00, 0x01]
        + [0x00, 0x07] + text("", 20) + [0xC0, 0x00, 0x56, 0x03, 0x02, 0x07]

    /// SZL 0x001C component identification: PLC name, module name, plant id, copyright, serial, type name.
    static let componentIdentification: [UInt8] = {
        var e: [UInt8] = [0x00, 0x1C, 0x00, 0x00, 0x00, 34, 0x00, 6]
        for (i, s) in [(1, "S7300 station_1"), (2, "PLC_1"), (3, "Line 4"), (4, "Original Siemens Equipment"),
                       (5, "S C-B1U393142011"), (7, "CPU 315-2 PN/DP")] {
            e += [0x00, UInt8(i)] + text(s, 32)
        }
        return e
    }()

    @Test func lastDataUnitFlag() {
        let h = Harness()
        h.feed(S7Wire.dt(S7Wire.userdata(ref: 1, type: 8, group: 4, sub: 1, extended: true, dataUnit: 5, last: false, payload: [0x00, 0x1C, 0, 0, 0, 34, 0, 1])), side: .responder)
        h.feed(S7Wire.dt(S7Wire.userdata(ref: 2, type: 8, group: 4, sub: 1, extended: true, dataUnit: 5, last: true, payload: [UInt8](repeating: 0x41, count: 34))), side: .responder)
        #expect(h.s7.count == 2)
        #expect(h.s7[0].bool("last_data_unit") == false)
        #expect(h.s7[1].bool("last_data_unit") == true)
    }

    @Test func szlRequestAndModuleIdentification() {
        let h = Harness()
        h.feed(S7Wire.dt(S7Wire.userdata(ref: 0x100, type: 4, group: 4, sub: 1, payload: [0x00, 0x11, 0x00, 0x00])))
        h.feed(S7Wire.dt(S7Wire.userdata(ref: 0x100, type: 8, group: 4, sub: 1, seq: 2, extended: true, payload: Self.moduleIdentification)), side: .responder)
        let req = h.s7[0], res = h.s7[1]
        #expect(req.int("rosctr") == 7 && req["function_code"] == nil)
        #expect(req.int("group") == 4 && req.int("subfunction") == 1 && req.str("function") == "Read SZL")
        #expect(req.int("szl_id") == 0x11 && req.int("szl_index") == 0 && req.str("szl_name") == "Module identification")
        #expect(req.str("access") == "diagnostic" && res.str("access") == "response")
        let modules = res.obj("szl")?.arr("module_identification") ?? []
        #expect(modules.count == 3)
        #expect(modules[0].str("order_number") == "6ES7 315-2EH14-0AB0")
        #expect(modules[1].int("hardware_revision") == 1)
        #expect(modules[2].str("version") == "V3.2.7")
        #expect(h.operations.count == 1 && h.operations[0].functionCode == 0x0401 && h.operations[0].subfunction == 1)
        #expect(h.tx.first?.str("status") == "ok" && h.tx.first?.int("szl_id") == 0x11)
    }

    /// A component identification split in two data units (as snap7 and S7-300 do with PDU size 240),
    /// decoded over both when the last arrives.
    @Test func fragmentedComponentIdentification() {
        let full = Self.componentIdentification
        let cut = 100
        let h = Harness()
        h.feed(S7Wire.dt(S7Wire.userdata(ref: 2, type: 4, group: 4, sub: 1, payload: [0x00, 0x1C, 0x00, 0x00])))
        h.feed(S7Wire.dt(S7Wire.userdata(ref: 2, type: 8, group: 4, sub: 1, seq: 2, extended: true, dataUnit: 0xD5, last: false, payload: Array(full[..<cut]))), side: .responder)
        h.feed(S7Wire.dt(S7Wire.userdata(ref: 3, type: 4, group: 4, sub: 1, seq: 2, extended: true, returnCode: 0x0A, transportSize: 0, payload: [])))
        h.feed(S7Wire.dt(S7Wire.userdata(ref: 3, type: 8, group: 4, sub: 1, seq: 2, extended: true, dataUnit: 0xD5, last: true, payload: Array(full[cut...]))), side: .responder)
        #expect(h.s7.count == 4)
        #expect(h.s7[1].obj("szl") == nil)                 // a first fragment alone is not decoded
        let last = h.s7[3]
        #expect(last.int("reassembled_length") == full.count)
        #expect(last.int("szl_id") == 0x1C)
        let c = last.obj("szl")?.obj("component_identification")
        #expect(c?.str("plc_name") == "S7300 station_1")
        #expect(c?.str("module_name") == "PLC_1")
        #expect(c?.str("plant_identification") == "Line 4")
        #expect(c?.str("serial_number") == "S C-B1U393142011")
        #expect(c?.str("module_type_name") == "CPU 315-2 PN/DP")
    }

    @Test func operatingModeFromSZL0424() {
        let h = Harness()
        let payload: [UInt8] = [0x04, 0x24, 0x00, 0x00, 0x00, 20, 0x00, 1] + [0x51, 0x44, 0xFF, 0x08] + [UInt8](repeating: 0, count: 16)
        h.feed(S7Wire.dt(S7Wire.userdata(ref: 1, type: 8, group: 4, sub: 1, extended: true, payload: payload)), side: .responder)
        #expect(h.s7[0].obj("szl")?.str("operating_mode") == "RUN")
    }

    @Test func clockReadAndSet() {
        let h = Harness()
        let ts: [UInt8] = [0x00, 0x20, 0x24, 0x05, 0x17, 0x13, 0x45, 0x09, 0x12, 0x35]   // 2024-05-17 13:45:09.123, Thursday(5)
        h.feed(S7Wire.dt(S7Wire.userdata(ref: 1, type: 4, group: 7, sub: 1, returnCode: 0x0A, transportSize: 0, payload: [])))
        h.feed(S7Wire.dt(S7Wire.userdata(ref: 1, type: 8, group: 7, sub: 1, extended: true, payload: ts)), side: .responder)
        h.feed(S7Wire.dt(S7Wire.userdata(ref: 2, type: 4, group: 7, sub: 2, payload: ts)))
        #expect(h.s7[1].str("clock") == "2024-05-17T13:45:09.123")
        #expect(h.s7[2].str("clock") == "2024-05-17T13:45:09.123")
        #expect(h.s7[0].str("access") == "read" && h.s7[2].str("access") == "time")
        #expect(h.operations.map(\.access) == [.read, .time])
    }

    @Test func passwordIsNeverLogged() {
        let h = Harness()
        h.feed(S7Wire.dt(S7Wire.userdata(ref: 1, type: 4, group: 5, sub: 1, payload: Array("secret12".utf8))))
        #expect(h.s7[0].str("access") == "auth" && h.s7[0].str("function") == "PLC password")
        let line = String(describing: h.pdus[0])
        #expect(!line.contains("secret") && !line.contains("736563726574"))
    }

    @Test func blockListsAndInfo() {
        let h = Harness()
        h.feed(S7Wire.dt(S7Wire.userdata(ref: 1, type: 8, group: 3, sub: 1, extended: true,
                                         payload: [0x30, 0x38, 0x00, 0x02, 0x30, 0x41, 0x00, 0x05])), side: .responder)
        h.feed(S7Wire.dt(S7Wire.userdata(ref: 2, type: 4, group: 3, sub: 2, payload: [0x30, 0x41])))
        h.feed(S7Wire.dt(S7Wire.userdata(ref: 3, type: 4, group: 3, sub: 3, payload: Array("0A00001A".utf8))))
        let counts = h.s7[0].arr("block_counts") ?? []
        #expect(counts.map { $0.str("block_type") } == ["OB", "DB"] && counts.map { $0.int("count") } == [2, 5])
        #expect(h.s7[1].str("block_type") == "DB")
        #expect(h.s7[2].obj("block")?.int("block_number") == 1)
        #expect(h.s7.allSatisfy { $0.int("group") == 3 })
    }

    @Test func cyclicSubscriptionItemsAndPushes() {
        let h = Harness()
        let items = S7Wire.item(area: 0x84, db: 300, byte: 4, transportSize: 4, count: 1) + S7Wire.item(area: 0x84, db: 200, byte: 0, transportSize: 4, count: 1)
        h.feed(S7Wire.dt(S7Wire.userdata(ref: 1, type: 4, group: 2, sub: 1, payload: [0x00, 0x02, 0x01, 0x01] + items)))
        h.feed(S7Wire.dt(S7Wire.userdata(ref: 0, type: 0, group: 2, sub: 1, extended: true,
                                         payload: [0x00, 0x02, 0xFF, 0x04, 0x00, 0x10, 0x30, 0x00, 0xFF, 0x04, 0x00, 0x10, 0x00, 0x60])), side: .responder)
        #expect(h.s7[0].int("interval_timebase") == 1 && (h.s7[0].arr("items") ?? []).count == 2)
        #expect((h.s7[1].arr("data_items") ?? []).map { $0.str("value") } == ["3000", "0060"])
        #expect(h.operations.count == 2 && h.operations.allSatisfy { $0.access == .read && $0.dbNumber >= 200 })
        #expect(h.tx.contains { $0.str("status") == "push" })
    }

    @Test func modeTransitionPush() {
        let h = Harness()
        // Parameter head 0x010010 as CPUs send it, group 0, sub-function = new mode (STOP).
        let pdu = S7Wire.s7(rosctr: 7, ref: 0, params: [0x01, 0x00, 0x10, 0x10, 0x00, 0x00, 0x00, 0x00])
        h.feed(S7Wire.dt(pdu), side: .responder)
        #expect(h.s7[0].int("group") == 0 && h.s7[0].str("mode") == "STOP" && h.s7[0].str("access") == "response")
        #expect(h.operations.isEmpty)
    }

    @Test(arguments: [
        (UInt8(1), UInt8(0x02), AccessClass.read), (1, 0x08, .write), (1, 0x09, .write), (1, 0x0C, .lifecycle),
        (1, 0x0E, .config), (1, 0x16, .diagnostic), (2, 0x01, .read), (2, 0x04, .session), (3, 0x01, .diagnostic),
        (4, 0x01, .diagnostic), (4, 0x0B, .write), (4, 0x13, .read), (5, 0x01, .auth), (7, 0x01, .read),
        (7, 0x02, .time), (7, 0x04, .time), (0xF, 0x01, .programDownload), (0xF, 0x07, .programUpload),
    ])
    func userdataClasses(group: UInt8, sub: UInt8, access: AccessClass) {
        #expect(S7Classification.userdata(group: group, subfunction: sub) == access)
    }

    @Test func shortUserdataParametersAreAnomalies() {
        let h = Harness()
        h.feed(S7Wire.dt(S7Wire.s7(rosctr: 7, ref: 1, params: [0x00, 0x01, 0x12])))
        #expect(h.s7.count == 1 && h.s7[0].int("rosctr") == 7 && h.s7[0]["group"] == nil)
        #expect(h.anomalies.contains { $0.kind.description == "bad_userdata_parameters" })
    }
}
