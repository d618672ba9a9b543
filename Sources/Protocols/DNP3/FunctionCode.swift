import Records

// IEEE 1815-2012 §4.2.2.5 / Table 4-1: application-layer function codes. Names follow opendnp3
// (`FunctionCode.h`) and Zeek (`consts.zeek`); classes follow ../shared/reference/protocols.md §2.2.
//
//   0x00 CONFIRM            0x0D COLD_RESTART           0x1A CLOSE_FILE
//   0x01 READ               0x0E WARM_RESTART           0x1B DELETE_FILE
//   0x02 WRITE              0x0F INITIALIZE_DATA        0x1C GET_FILE_INFO
//   0x03 SELECT             0x10 INITIALIZE_APPLICATION 0x1D AUTHENTICATE_FILE
//   0x04 OPERATE            0x11 START_APPLICATION      0x1E ABORT_FILE
//   0x05 DIRECT_OPERATE     0x12 STOP_APPLICATION       0x1F ACTIVATE_CONFIG
//   0x06 DIRECT_OPERATE_NR  0x13 SAVE_CONFIGURATION     0x20 AUTH_REQUEST
//   0x07 IMMED_FREEZE       0x14 ENABLE_UNSOLICITED     0x21 AUTH_REQUEST_NO_ACK
//   0x08 IMMED_FREEZE_NR    0x15 DISABLE_UNSOLICITED    0x81 RESPONSE
//   0x09 FREEZE_CLEAR       0x16 ASSIGN_CLASS           0x82 UNSOLICITED_RESPONSE
//   0x0A FREEZE_CLEAR_NR    0x17 DELAY_MEASURE          0x83 AUTH_RESPONSE
//   0x0B FREEZE_AT_TIME     0x18 RECORD_CURRENT_TIME
//   0x0C FREEZE_AT_TIME_NR  0x19 OPEN_FILE

/// A DNP3 application function code (IEEE 1815-2012 Table 4-1); unknown codes are kept.
public struct DNP3FunctionCode: RawRepresentable, Hashable, Sendable {
    /// The code.
    public var rawValue: UInt8
    /// Wraps a code.
    @inlinable public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// 0x00 CONFIRM.
    public static var confirm: Self { .init(rawValue: 0x00) }
    /// 0x01 READ.
    public static var read: Self { .init(rawValue: 0x01) }
    /// 0x02 WRITE.
    public static var write: Self { .init(rawValue: 0x02) }
    /// 0x03 SELECT.
    public static var select: Self { .init(rawValue: 0x03) }
    /// 0x04 OPERATE.
    public static var operate: Self { .init(rawValue: 0x04) }
    /// 0x05 DIRECT_OPERATE.
    public static var directOperate: Self { .init(rawValue: 0x05) }
    /// 0x06 DIRECT_OPERATE_NR.
    public static var directOperateNoResponse: Self { .init(rawValue: 0x06) }
    /// 0x81 RESPONSE.
    public static var response: Self { .init(rawValue: 0x81) }
    /// 0x82 UNSOLICITED_RESPONSE.
    public static var unsolicitedResponse: Self { .init(rawValue: 0x82) }
    /// 0x83 AUTH_RESPONSE.
    public static var authResponse: Self { .init(rawValue: 0x83) }

    /// Whether the code is one an outstation sends (0x81–0x83): responses carry IIN.
    @inlinable public var isResponse: Bool { rawValue >= 0x81 && rawValue <= 0x83 }

    /// Whether the code is defined by IEEE 1815-2012.
    @inlinable public var isKnown: Bool { rawValue <= 0x21 || isResponse }

    /// Whether the outstation answers this request (the `_NR` variants and CONFIRM get no response).
    public var expectsResponse: Bool {
        switch rawValue {
        case 0x00, 0x06, 0x08, 0x0A, 0x0C, 0x21: return false
        default: return !isResponse
        }
    }

    /// The name.
    public var name: StaticString {
        switch rawValue {
        case 0x00: "CONFIRM"
        case 0x01: "READ"
        case 0x02: "WRITE"
        case 0x03: "SELECT"
        case 0x04: "OPERATE"
        case 0x05: "DIRECT_OPERATE"
        case 0x06: "DIRECT_OPERATE_NR"
        case 0x07: "IMMED_FREEZE"
        case 0x08: "IMMED_FREEZE_NR"
        case 0x09: "FREEZE_CLEAR"
        case 0x0A: "FREEZE_CLEAR_NR"
        case 0x0B: "FREEZE_AT_TIME"
        case 0x0C: "FREEZE_AT_TIME_NR"
        case 0x0D: "COLD_RESTART"
        case 0x0E: "WARM_RESTART"
        case 0x0F: "INITIALIZE_DATA"
        case 0x10: "INITIALIZE_APPLICATION"
        case 0x11: "START_APPLICATION"
        case 0x12: "STOP_APPLICATION"
        case 0x13: "SAVE_CONFIGURATION"
        case 0x14: "ENABLE_UNSOLICITED"
        case 0x15: "DISABLE_UNSOLICITED"
        case 0x16: "ASSIGN_CLASS"
        case 0x17: "DELAY_MEASURE"
        case 0x18: "RECORD_CURRENT_TIME"
        case 0x19: "OPEN_FILE"
        case 0x1A: "CLOSE_FILE"
        case 0x1B: "DELETE_FILE"
        case 0x1C: "GET_FILE_INFO"
        case 0x1D: "AUTHENTICATE_FILE"
        case 0x1E: "ABORT_FILE"
        case 0x1F: "ACTIVATE_CONFIG"
        case 0x20: "AUTH_REQUEST"
        case 0x21: "AUTH_REQUEST_NO_ACK"
        case 0x81: "RESPONSE"
        case 0x82: "UNSOLICITED_RESPONSE"
        case 0x83: "AUTH_RESPONSE"
        default: "unknown"
        }
    }

    /// `name`, with READ (nearly every request of a polling plant) decided inline: `name`'s table stays a call.
    @inlinable public var commonName: StaticString { rawValue == 0x01 ? "READ" : name }

    /// The access class by function alone (protocols.md §2.2); `DNP3Classifier` refines READ and WRITE by objects.
    public var baseAccess: AccessClass {
        switch rawValue {
        case 0x00: .session
        case 0x01: .read
        case 0x02: .write
        case 0x03...0x0C: .control
        case 0x0D, 0x0E, 0x0F, 0x10, 0x11, 0x12: .lifecycle
        case 0x13, 0x14, 0x15, 0x16: .config
        case 0x17, 0x18: .time
        case 0x19...0x1E: .file
        case 0x1F: .programDownload
        case 0x20, 0x21, 0x83: .auth
        case 0x81, 0x82: .response
        default: .diagnostic
        }
    }

    /// Whether the request's object headers carry no object data (only index prefixes): READ,
    /// the freezes, ENABLE/DISABLE_UNSOLICITED and ASSIGN_CLASS. Time objects (g50) still carry
    /// data in a FREEZE_AT_TIME.
    @inlinable public func objectsAreHeadersOnly(group: UInt8) -> Bool {
        let only = headersOnlyGroups
        return only.all || (only.allButTime && group != 50)
    }

    /// `objectsAreHeadersOnly(group:)` for every group (`all`) or every group but 50 (`allButTime`): a walk over a
    /// fragment's headers decides this once, not per header.
    // Compares rather than a switch: the switch stayed a call in the quiet frame path.
    @inlinable @inline(__always) public var headersOnlyGroups: (all: Bool, allButTime: Bool) {
        let all = rawValue == 0x01   // READ
        // The freezes (0x07...0x0C), ENABLE/DISABLE_UNSOLICITED and ASSIGN_CLASS (0x14...0x16).
        return (all, all || rawValue &- 0x07 <= 0x0C - 0x07 || rawValue &- 0x14 <= 0x16 - 0x14)
    }
}
