// Access classification of Modbus requests: ../shared/reference/protocols.md §2.1.
//
//   FC 1–4, 24                       read
//   FC 5, 15 (coils)                 control  (Modicon's "force single/multiple coil": coils drive outputs,
//                                              and `control` is the class for forcing equipment)
//   FC 6, 16, 22, 23                 write
//   FC 7, 11, 12, 17                 diagnostic
//   FC 8                             diagnostic; sub 0x0001 restart, 0x0004 listen-only → lifecycle;
//                                    0x0003 delimiter, 0x000A clear counters, 0x0014 clear overrun,
//                                    0x0015 get/clear Modbus Plus statistics → config; other named ones diagnostic
//   FC 20 / 21                       file
//   FC 43 MEI 13 / 14                config / diagnostic
//   FC 90 UMAS                       by UMAS function code (UMAS.swift)
//   FC 9, 13, 18, 40, 125, 126       program_download (legacy Modicon programming, firmware replacement)
//   FC 10, 14 (poll)                 read;  FC 19 (reset comm link) lifecycle;  FC 127 diagnostic
//   anything else                    control: a function we cannot interpret may change the device's
//                                    state, so a read-only policy must never let it through, and we do
//                                    not claim a program transfer we cannot see.
import Records

/// How a Modbus request is classified for policy: its access class and names.
public struct ModbusClassification: Sendable {
    /// The access class.
    public var access: AccessClass
    /// The function's name.
    public var function: StaticString
    /// The sub-function (FC 8 sub-function, FC 43 MEI type, FC 90 UMAS code); -1 when none.
    public var subfunction: Int32
    /// The sub-function's name; empty when none.
    public var subfunctionName: StaticString

    /// Classifies a PDU as the operation it requests (for a response: the operation it answers).
    public static func of(_ pdu: ModbusPDU) -> ModbusClassification {
        of(functionCode: pdu.functionCode, subfunction: pdu.subfunction, meiType: pdu.meiType, direction: pdu.direction)
    }

    /// Classifies from the fields that decide it: the function code, the FC 8 sub-function or FC 90 UMAS
    /// code (-1: none), the FC 43 MEI type (-1: none), and whether the PDU is a request.
    public static func of(functionCode fc: FunctionCode, subfunction: Int32, meiType: Int16,
                          direction: ModbusDirection) -> ModbusClassification {
        var c = ModbusClassification(access: baseAccess(fc), function: fc.name, subfunction: -1, subfunctionName: "")
        switch fc {
        case .diagnostics where subfunction >= 0:
            let sub = UInt16(truncatingIfNeeded: subfunction)
            c.subfunction = subfunction
            c.subfunctionName = DiagnosticsSubfunction.name(sub)
            switch sub {
            case 0x0001, 0x0004: c.access = .lifecycle
            case 0x0003, 0x000A, 0x0014, 0x0015: c.access = .config
            case 0x0000, 0x0002, 0x000B...0x0013: c.access = .diagnostic
            default: c.access = .control
            }
        case .encapsulatedInterfaceTransport where meiType >= 0:
            let mei = UInt8(truncatingIfNeeded: meiType)
            c.subfunction = Int32(mei)
            c.subfunctionName = MEI.name(mei)
            c.access = mei == MEI.readDeviceIdentification ? .diagnostic : mei == MEI.canopenGeneralReference ? .config : .control
        case .umas where subfunction >= 0:
            let code = UInt8(truncatingIfNeeded: subfunction)
            c.subfunction = subfunction
            c.subfunctionName = UMAS.name(code)
            // In a response the byte is a status (0xFE/0xFD), not a function: the caller takes the
            // class from the matched request.
            c.access = direction == .request ? UMAS.access(code) : .control
        default:
            break
        }
        return c
    }

    /// The class of a function code before looking at any sub-function.
    public static func baseAccess(_ fc: FunctionCode) -> AccessClass {
        switch fc.rawValue {
        case 0x01...0x04, 0x18, 0x0A, 0x0E: .read
        case 0x05, 0x0F: .control
        case 0x06, 0x10, 0x16, 0x17: .write
        case 0x07, 0x08, 0x0B, 0x0C, 0x11, 0x7F: .diagnostic
        case 0x14, 0x15: .file
        case 0x2B: .diagnostic
        case 0x09, 0x0D, 0x12, 0x28, 0x7D, 0x7E: .programDownload
        case 0x13: .lifecycle
        default: .control
        }
    }
}
