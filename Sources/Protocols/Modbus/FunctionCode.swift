// Modbus function codes, exception codes and sub-function tables.
//
// Sources: Modbus Application Protocol Specification V1.1b3 §5.1 (public codes 1–127, user-defined
// ranges 65–72 and 100–110), §6 (per-code layouts), §7 (exception codes), Annex A (reserved codes);
// Zeek `scripts/base/protocols/modbus/consts.zeek` for the legacy Modicon program/poll codes;
// ../shared/reference/protocols.md §2.1 for the names we log.
//
//   code byte:  bit 7 = exception flag (responses only), bits 0–6 = function code 1–127
//
// Names are snake_case `StaticString`s from switch tables, so naming a PDU allocates nothing.

/// A Modbus function code (bits 0–6 of the PDU's first byte); unknown values are kept, never lost.
public struct FunctionCode: RawRepresentable, Hashable, Sendable {
    /// The code, 0–127 (the exception bit is never part of it).
    public var rawValue: UInt8
    /// Wraps a code; the exception bit is cleared.
    @inlinable public init(rawValue: UInt8) { self.rawValue = rawValue & 0x7F }

    // Concrete comparisons, so that `switch` over codes compiles to integer compares rather than
    // generic Equatable dispatch (measurable on the per-PDU path).
    @inlinable public static func == (a: FunctionCode, b: FunctionCode) -> Bool { a.rawValue == b.rawValue }
    @inlinable public static func ~= (pattern: FunctionCode, value: FunctionCode) -> Bool { pattern.rawValue == value.rawValue }

    /// §6.1, 0x01.
    @inlinable public static var readCoils: FunctionCode { FunctionCode(rawValue: 0x01) }
    /// §6.2, 0x02.
    @inlinable public static var readDiscreteInputs: FunctionCode { FunctionCode(rawValue: 0x02) }
    /// §6.3, 0x03.
    @inlinable public static var readHoldingRegisters: FunctionCode { FunctionCode(rawValue: 0x03) }
    /// §6.4, 0x04.
    @inlinable public static var readInputRegisters: FunctionCode { FunctionCode(rawValue: 0x04) }
    /// §6.5, 0x05.
    @inlinable public static var writeSingleCoil: FunctionCode { FunctionCode(rawValue: 0x05) }
    /// §6.6, 0x06.
    @inlinable public static var writeSingleRegister: FunctionCode { FunctionCode(rawValue: 0x06) }
    /// §6.7, 0x07 (serial line only in the spec, seen on TCP).
    @inlinable public static var readExceptionStatus: FunctionCode { FunctionCode(rawValue: 0x07) }
    /// §6.8, 0x08 (serial line only in the spec, seen on TCP).
    @inlinable public static var diagnostics: FunctionCode { FunctionCode(rawValue: 0x08) }
    /// §6.9, 0x0B.
    @inlinable public static var getCommEventCounter: FunctionCode { FunctionCode(rawValue: 0x0B) }
    /// §6.10, 0x0C.
    @inlinable public static var getCommEventLog: FunctionCode { FunctionCode(rawValue: 0x0C) }
    /// §6.11, 0x0F.
    @inlinable public static var writeMultipleCoils: FunctionCode { FunctionCode(rawValue: 0x0F) }
    /// §6.12, 0x10.
    @inlinable public static var writeMultipleRegisters: FunctionCode { FunctionCode(rawValue: 0x10) }
    /// §6.13, 0x11.
    @inlinable public static var reportServerID: FunctionCode { FunctionCode(rawValue: 0x11) }
    /// §6.14, 0x14.
    @inlinable public static var readFileRecord: FunctionCode { FunctionCode(rawValue: 0x14) }
    /// §6.15, 0x15.
    @inlinable public static var writeFileRecord: FunctionCode { FunctionCode(rawValue: 0x15) }
    /// §6.16, 0x16.
    @inlinable public static var maskWriteRegister: FunctionCode { FunctionCode(rawValue: 0x16) }
    /// §6.17, 0x17.
    @inlinable public static var readWriteMultipleRegisters: FunctionCode { FunctionCode(rawValue: 0x17) }
    /// §6.18, 0x18.
    @inlinable public static var readFIFOQueue: FunctionCode { FunctionCode(rawValue: 0x18) }
    /// §6.19–6.21, 0x2B: Encapsulated Interface Transport (MEI 13 CANopen, MEI 14 device identification).
    @inlinable public static var encapsulatedInterfaceTransport: FunctionCode { FunctionCode(rawValue: 0x2B) }
    /// Schneider Electric UMAS (Unity), 0x5A; Annex A reserved.
    @inlinable public static var umas: FunctionCode { FunctionCode(rawValue: 0x5A) }

    /// Where the code sits in the spec's code space.
    public enum Category: Sendable {
        /// A public function code defined in §6.
        case publicCode
        /// 65–72 and 100–110 (§5.1): the user decides what they mean.
        case userDefined
        /// A code a vendor uses that the public spec reserves (UMAS, Modicon programming, firmware).
        case vendor
        /// Neither defined nor known from any vendor: a scanner, a fuzzer or a broken client.
        case unassigned
    }

    /// The code's category.
    @inlinable @inline(__always) public var category: Category {
        switch rawValue {
        case 1...8, 11, 12, 15...17, 20...24, 43: .publicCode
        case 65...72, 100...110: .userDefined
        case 9, 10, 13, 14, 18, 19, 40, 41, 90, 91, 125, 126, 127: .vendor
        default: .unassigned
        }
    }

    /// The code's name (snake_case; `unknown` for unassigned codes).
    public var name: StaticString {
        switch rawValue {
        case 0x01: "read_coils"
        case 0x02: "read_discrete_inputs"
        case 0x03: "read_holding_registers"
        case 0x04: "read_input_registers"
        case 0x05: "write_single_coil"
        case 0x06: "write_single_register"
        case 0x07: "read_exception_status"
        case 0x08: "diagnostics"
        case 0x0B: "get_comm_event_counter"
        case 0x0C: "get_comm_event_log"
        case 0x0F: "write_multiple_coils"
        case 0x10: "write_multiple_registers"
        case 0x11: "report_server_id"
        case 0x14: "read_file_record"
        case 0x15: "write_file_record"
        case 0x16: "mask_write_register"
        case 0x17: "read_write_multiple_registers"
        case 0x18: "read_fifo_queue"
        case 0x2B: "encapsulated_interface_transport"
        // Vendor and legacy Modicon codes (names as in Zeek's consts.zeek).
        case 0x09: "program_484"
        case 0x0A: "poll_484"
        case 0x0D: "program_584_984"
        case 0x0E: "poll_584_984"
        case 0x12: "program_884_u84"
        case 0x13: "reset_comm_link_884_u84"
        case 0x28: "program_concept"
        case 0x29: "multiple_function_codes"
        case 0x5A: "umas"
        case 0x5B: "object_messaging"
        case 0x7D: "firmware_replacement"
        case 0x7E: "program_584_984_2"
        case 0x7F: "report_local_address"
        case 65...72, 100...110: "user_defined"
        default: "unknown"
        }
    }
}

/// A Modbus exception code (§7), carried in the byte after an exception response's function code.
public struct ExceptionCode: RawRepresentable, Hashable, Sendable {
    /// The code byte.
    public var rawValue: UInt8
    /// Wraps a code byte.
    @inlinable public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// Whether the spec (or the legacy Modicon table, for 7) names this code.
    @inlinable public var isKnown: Bool {
        switch rawValue { case 1...8, 10, 11: true; default: false }
    }

    /// The code's name.
    public var name: StaticString {
        switch rawValue {
        case 0x01: "illegal_function"
        case 0x02: "illegal_data_address"
        case 0x03: "illegal_data_value"
        case 0x04: "server_device_failure"
        case 0x05: "acknowledge"
        case 0x06: "server_device_busy"
        case 0x07: "negative_acknowledge"
        case 0x08: "memory_parity_error"
        case 0x0A: "gateway_path_unavailable"
        case 0x0B: "gateway_target_device_failed_to_respond"
        default: "unknown"
        }
    }
}

/// Diagnostics (FC 8) sub-function names, §6.8.1.
public enum DiagnosticsSubfunction {
    /// Sub-function 0x0001: restart communications option.
    @inlinable public static var restartCommunications: UInt16 { 0x0001 }
    /// Sub-function 0x0004: force listen-only mode (the device stops answering: a denial of service).
    @inlinable public static var forceListenOnly: UInt16 { 0x0004 }

    /// The sub-function's name.
    public static func name(_ code: UInt16) -> StaticString {
        switch code {
        case 0x00: "return_query_data"
        case 0x01: "restart_communications_option"
        case 0x02: "return_diagnostic_register"
        case 0x03: "change_ascii_input_delimiter"
        case 0x04: "force_listen_only_mode"
        case 0x0A: "clear_counters_and_diagnostic_register"
        case 0x0B: "return_bus_message_count"
        case 0x0C: "return_bus_communication_error_count"
        case 0x0D: "return_bus_exception_error_count"
        case 0x0E: "return_server_message_count"
        case 0x0F: "return_server_no_response_count"
        case 0x10: "return_server_nak_count"
        case 0x11: "return_server_busy_count"
        case 0x12: "return_bus_character_overrun_count"
        // 0x13 and 0x15 are Modbus Plus leftovers (Annex A reserves them; stacks such as pymodbus still send them).
        case 0x13: "return_iop_overrun_count"
        case 0x14: "clear_overrun_counter_and_flag"
        case 0x15: "get_clear_modbus_plus_statistics"
        default: "reserved"
        }
    }
}

/// Encapsulated Interface Transport (FC 43) MEI types and device-identification objects, §6.19–6.21.
public enum MEI {
    /// MEI type 13: CANopen general reference.
    @inlinable public static var canopenGeneralReference: UInt8 { 0x0D }
    /// MEI type 14: read device identification.
    @inlinable public static var readDeviceIdentification: UInt8 { 0x0E }

    /// The MEI type's name.
    public static func name(_ type: UInt8) -> StaticString {
        switch type {
        case 0x0D: "canopen_general_reference"
        case 0x0E: "read_device_identification"
        default: "reserved"
        }
    }

    /// The read-device-id code's name (request byte 2 of MEI 14).
    public static func readDeviceIDCodeName(_ code: UInt8) -> StaticString {
        switch code {
        case 1: "basic"
        case 2: "regular"
        case 3: "extended"
        case 4: "specific"
        default: "reserved"
        }
    }

    /// A device-identification object's name (§6.21, table of object ids).
    public static func objectName(_ id: UInt8) -> StaticString {
        switch id {
        case 0x00: "vendor_name"
        case 0x01: "product_code"
        case 0x02: "major_minor_revision"
        case 0x03: "vendor_url"
        case 0x04: "product_name"
        case 0x05: "model_name"
        case 0x06: "user_application_name"
        case 0x07...0x7F: "reserved"
        default: "private"
        }
    }
}
