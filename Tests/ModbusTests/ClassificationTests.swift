// The access class and names of each request: the table in ../shared/reference/protocols.md §2.1.
import Testing
import Records
import Wire
@testable import Modbus

struct ClassCase: Sendable, CustomTestStringConvertible {
    let pdu: String
    let access: AccessClass
    let function: String
    let subfunction: Int32
    let subfunctionName: String
    init(_ pdu: String, _ access: AccessClass, _ function: String, _ subfunction: Int32 = -1, _ subfunctionName: String = "") {
        self.pdu = pdu; self.access = access; self.function = function; self.subfunction = subfunction; self.subfunctionName = subfunctionName
    }
    var testDescription: String { "\(pdu) → \(access.name)" }
}

let classCases: [ClassCase] = [
    ClassCase("01 0000 0001", .read, "read_coils"),
    ClassCase("02 0000 0001", .read, "read_discrete_inputs"),
    ClassCase("03 0000 0001", .read, "read_holding_registers"),
    ClassCase("04 0000 0001", .read, "read_input_registers"),
    ClassCase("05 0000 FF00", .control, "write_single_coil"),
    ClassCase("06 0000 0001", .write, "write_single_register"),
    ClassCase("07", .diagnostic, "read_exception_status"),
    ClassCase("08 0000 1234", .diagnostic, "diagnostics", 0, "return_query_data"),
    ClassCase("08 0001 0000", .lifecycle, "diagnostics", 1, "restart_communications_option"),
    ClassCase("08 0002 0000", .diagnostic, "diagnostics", 2, "return_diagnostic_register"),
    ClassCase("08 0003 0A00", .config, "diagnostics", 3, "change_ascii_input_delimiter"),
    ClassCase("08 0004 0000", .lifecycle, "diagnostics", 4, "force_listen_only_mode"),
    ClassCase("08 000A 0000", .config, "diagnostics", 10, "clear_counters_and_diagnostic_register"),
    ClassCase("08 000B 0000", .diagnostic, "diagnostics", 11, "return_bus_message_count"),
    ClassCase("08 0012 0000", .diagnostic, "diagnostics", 18, "return_bus_character_overrun_count"),
    ClassCase("08 0014 0000", .config, "diagnostics", 20, "clear_overrun_counter_and_flag"),
    ClassCase("08 0063 0000", .control, "diagnostics", 99, "reserved"),
    ClassCase("0B", .diagnostic, "get_comm_event_counter"),
    ClassCase("0C", .diagnostic, "get_comm_event_log"),
    ClassCase("0F 0000 0001 01 01", .control, "write_multiple_coils"),
    ClassCase("10 0000 0001 02 0001", .write, "write_multiple_registers"),
    ClassCase("11", .diagnostic, "report_server_id"),
    ClassCase("14 07 06 0001 0000 0001", .file, "read_file_record"),
    ClassCase("15 09 06 0001 0000 0001 0000", .file, "write_file_record"),
    ClassCase("16 0000 FFFF 0000", .write, "mask_write_register"),
    ClassCase("17 0000 0001 0000 0001 02 0000", .write, "read_write_multiple_registers"),
    ClassCase("18 0000", .read, "read_fifo_queue"),
    ClassCase("2B 0D 00", .config, "encapsulated_interface_transport", 13, "canopen_general_reference"),
    ClassCase("2B 0E 01 00", .diagnostic, "encapsulated_interface_transport", 14, "read_device_identification"),
    ClassCase("2B 0F 00", .control, "encapsulated_interface_transport", 15, "reserved"),
    ClassCase("5A 00 01", .session, "umas", 0x01, "init_comm"),
    ClassCase("5A 00 10", .auth, "umas", 0x10, "take_plc_reservation"),
    ClassCase("5A 01 11", .session, "umas", 0x11, "release_plc_reservation"),
    ClassCase("5A 00 02", .diagnostic, "umas", 0x02, "read_id"),
    ClassCase("5A 01 22", .read, "umas", 0x22, "read_variables"),
    ClassCase("5A 01 23", .write, "umas", 0x23, "write_variables"),
    ClassCase("5A 01 30", .programDownload, "umas", 0x30, "initialize_upload"),
    ClassCase("5A 01 31", .programDownload, "umas", 0x31, "upload_block"),
    ClassCase("5A 01 32", .programDownload, "umas", 0x32, "end_strategy_upload"),
    ClassCase("5A 01 33", .programUpload, "umas", 0x33, "initialize_download"),
    ClassCase("5A 01 34", .programUpload, "umas", 0x34, "download_block"),
    ClassCase("5A 01 35", .programUpload, "umas", 0x35, "end_strategy_download"),
    ClassCase("5A 01 40", .lifecycle, "umas", 0x40, "start_plc"),
    ClassCase("5A 01 41", .lifecycle, "umas", 0x41, "stop_plc"),
    ClassCase("5A 01 60", .programDownload, "umas", 0x60, "set_breakpoint"),
    ClassCase("5A 01 99", .control, "umas", 0x99, "unknown"),
    ClassCase("7D 00", .programDownload, "firmware_replacement"),
    ClassCase("7E 00", .programDownload, "program_584_984_2"),
    ClassCase("28 00", .programDownload, "program_concept"),
    ClassCase("09 00", .programDownload, "program_484"),
    ClassCase("0D 00", .programDownload, "program_584_984"),
    ClassCase("12 00", .programDownload, "program_884_u84"),
    ClassCase("13 00", .lifecycle, "reset_comm_link_884_u84"),
    ClassCase("41 00", .control, "user_defined"),
    ClassCase("6E 00", .control, "user_defined"),
    ClassCase("32 00", .control, "unknown"),
]

@Suite("Classification")
struct ClassificationTests {
    @Test("each request gets its access class and names", arguments: classCases)
    func classify(_ c: ClassCase) {
        let (pdu, _) = decode(c.pdu, .request)
        let k = ModbusClassification.of(pdu)
        #expect(k.access == c.access)
        #expect(k.function.description == c.function)
        #expect(k.subfunction == c.subfunction)
        #expect(k.subfunctionName.description == c.subfunctionName)
    }

    @Test("a UMAS response takes its class from the request it answers")
    func umasResponse() {
        let h = Harness()
        h.send(adu(1, unit: 0xFF, "5A 01 41 FF00"))
        h.send(adu(1, unit: 0xFF, "5A 01 FE"), from: .responder)
        #expect(h.pdus.map { $0["access"] as? String } == ["lifecycle", "lifecycle"])
        #expect(h.transactions.first?["subfunction_name"] as? String == "stop_plc")
    }
}
