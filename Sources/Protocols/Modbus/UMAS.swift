// Schneider Electric UMAS (Unity), carried in Modbus function code 0x5A.
//
// Layout (lirasenlared.blogspot.com "The Unity (UMAS) protocol", Kaspersky ICS-CERT 2022 "The secrets of
// Schneider Electric's UMAS protocol"; codes as in ../shared/reference/protocols.md §2.1):
//
//   offset  size  field
//   0       1     Modbus function code 0x5A
//   1       1     pairing key (session byte; 0x00 before a reservation)
//   2       1     UMAS function code (request) / status 0xFE OK, 0xFD error (response)
//   3       n     function data
//
// Upload/download are named from the PLC's point of view in UMAS and reversed with respect to
// ATT&CK: UMAS "upload" 0x30–0x32 moves logic PC→PLC (program_download), "download" 0x33–0x35 moves
// it PLC→PC (program_upload). We classify by where the logic goes (protocols.md §0 item 2).
import Records

/// UMAS function codes and their access classes.
public enum UMAS {
    /// Response status: success.
    @inlinable public static var responseOK: UInt8 { 0xFE }
    /// Response status: error.
    @inlinable public static var responseError: UInt8 { 0xFD }

    /// The UMAS function's name.
    public static func name(_ code: UInt8) -> StaticString {
        switch code {
        case 0x01: "init_comm"
        case 0x02: "read_id"
        case 0x03: "read_project_info"
        case 0x04: "read_plc_info"
        case 0x06: "read_card_info"
        case 0x0A: "repeat"
        case 0x10: "take_plc_reservation"
        case 0x11: "release_plc_reservation"
        case 0x12: "keep_alive"
        case 0x20: "read_memory_block"
        case 0x22: "read_variables"
        case 0x23: "write_variables"
        case 0x24: "read_coils_registers"
        case 0x25: "write_coils_registers"
        case 0x30: "initialize_upload"
        case 0x31: "upload_block"
        case 0x32: "end_strategy_upload"
        case 0x33: "initialize_download"
        case 0x34: "download_block"
        case 0x35: "end_strategy_download"
        case 0x39: "read_eth_master_data"
        case 0x40: "start_plc"
        case 0x41: "stop_plc"
        case 0x50: "monitor_plc"
        case 0x58: "check_plc"
        case 0x60: "set_breakpoint"
        case 0x70: "read_io_object"
        case 0x71: "write_io_object"
        case 0x73: "get_status_module"
        case 0xFE: "response_ok"
        case 0xFD: "response_error"
        default: "unknown"
        }
    }

    /// The access class of a UMAS request (protocols.md §2.1, UMAS table). Codes we cannot name are
    /// `control`: they may change the PLC's state, so a read-only policy never lets them through.
    public static func access(_ code: UInt8) -> AccessClass {
        switch code {
        case 0x01, 0x0A, 0x12, 0x11: .session
        case 0x10: .auth
        case 0x02, 0x03, 0x04, 0x06, 0x39, 0x58, 0x73: .diagnostic
        case 0x20, 0x22, 0x24, 0x50, 0x70: .read
        case 0x23, 0x25, 0x71: .write
        case 0x30, 0x31, 0x32, 0x60: .programDownload
        case 0x33, 0x34, 0x35: .programUpload
        case 0x40, 0x41: .lifecycle
        default: .control
        }
    }
}
