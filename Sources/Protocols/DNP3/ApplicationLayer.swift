import Wire

// IEEE 1815-2012 §4.2.2: application fragment header.
//
//   offset  size  field
//   0       1     APPLICATION CONTROL: FIR(0x80) FIN(0x40) CON(0x20) UNS(0x10) SEQ(0x0F)
//   1       1     FUNCTION CODE
//   2       2     IIN (responses 0x81–0x83 only): octet 1 = IIN1, octet 2 = IIN2
//   2 or 4  ...   object headers, each followed by its objects
//
// IIN1: bit0 ALL_STATIONS, 1 CLASS_1_EVENTS, 2 CLASS_2_EVENTS, 3 CLASS_3_EVENTS, 4 NEED_TIME,
//       5 LOCAL_CONTROL, 6 DEVICE_TROUBLE, 7 DEVICE_RESTART.
// IIN2: bit0 NO_FUNC_CODE_SUPPORT, 1 OBJECT_UNKNOWN, 2 PARAMETER_ERROR, 3 EVENT_BUFFER_OVERFLOW,
//       4 ALREADY_EXECUTING, 5 CONFIG_CORRUPT, 6 RESERVED_2, 7 RESERVED_1.

/// Why an application fragment could not be parsed.
public enum DNP3ApplicationError: Error, Equatable, Sendable {
    /// Fewer octets than the header needs.
    case truncatedHeader(need: Int, have: Int)
}

/// The application-layer header of one fragment (IEEE 1815-2012 §4.2.2).
public struct DNP3ApplicationHeader: Sendable, Equatable {
    /// The APPLICATION CONTROL octet.
    public var control: UInt8
    /// The function code.
    public var function: DNP3FunctionCode
    /// IIN1 << 8 | IIN2 for responses; nil for requests.
    public var iin: UInt16?

    /// FIR: first fragment of a message.
    @inlinable public var fir: Bool { control & 0x80 != 0 }
    /// FIN: last fragment of a message.
    @inlinable public var fin: Bool { control & 0x40 != 0 }
    /// CON: the receiver must confirm.
    @inlinable public var con: Bool { control & 0x20 != 0 }
    /// UNS: unsolicited (or the confirm of an unsolicited response).
    @inlinable public var uns: Bool { control & 0x10 != 0 }
    /// The 4-bit application sequence number.
    @inlinable public var sequence: UInt8 { control & 0x0F }
    /// Octets the header occupies (2, or 4 with IIN).
    @inlinable public var length: Int { iin == nil ? 2 : 4 }

    /// Creates a header from its fields.
    public init(control: UInt8, function: DNP3FunctionCode, iin: UInt16? = nil) {
        self.control = control; self.function = function; self.iin = iin
    }

    /// Parses the header at the start of a fragment.
    public static func parse(_ bytes: ByteView) throws(DNP3ApplicationError) -> DNP3ApplicationHeader {
        guard bytes.count >= 2 else { throw .truncatedHeader(need: 2, have: bytes.count) }
        let function = DNP3FunctionCode(rawValue: bytes.u8(1))
        guard function.isResponse else { return DNP3ApplicationHeader(control: bytes.u8(0), function: function) }
        guard bytes.count >= 4 else { throw .truncatedHeader(need: 4, have: bytes.count) }
        return DNP3ApplicationHeader(control: bytes.u8(0), function: function, iin: bytes.u16be(2))
    }
}

/// Internal indications (IEEE 1815-2012 §4.2.2.7.2), IIN1 in the high octet.
public struct DNP3IIN: OptionSet, Sendable {
    /// IIN1 << 8 | IIN2.
    public var rawValue: UInt16
    /// Wraps the two octets.
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// IIN1.0: a broadcast message was received.
    public static let broadcast = DNP3IIN(rawValue: 0x0100)
    /// IIN1.1: class 1 events are available.
    public static let class1Events = DNP3IIN(rawValue: 0x0200)
    /// IIN1.2: class 2 events are available.
    public static let class2Events = DNP3IIN(rawValue: 0x0400)
    /// IIN1.3: class 3 events are available.
    public static let class3Events = DNP3IIN(rawValue: 0x0800)
    /// IIN1.4: the outstation needs time synchronisation.
    public static let needTime = DNP3IIN(rawValue: 0x1000)
    /// IIN1.5: some outputs are in local control.
    public static let localControl = DNP3IIN(rawValue: 0x2000)
    /// IIN1.6: device trouble.
    public static let deviceTrouble = DNP3IIN(rawValue: 0x4000)
    /// IIN1.7: the device restarted.
    public static let deviceRestart = DNP3IIN(rawValue: 0x8000)
    /// IIN2.0: function code not supported.
    public static let noFunctionCodeSupport = DNP3IIN(rawValue: 0x0001)
    /// IIN2.1: requested object unknown.
    public static let objectUnknown = DNP3IIN(rawValue: 0x0002)
    /// IIN2.2: parameter error.
    public static let parameterError = DNP3IIN(rawValue: 0x0004)
    /// IIN2.3: event buffer overflow.
    public static let eventBufferOverflow = DNP3IIN(rawValue: 0x0008)
    /// IIN2.4: operation already executing.
    public static let alreadyExecuting = DNP3IIN(rawValue: 0x0010)
    /// IIN2.5: configuration corrupt.
    public static let configCorrupt = DNP3IIN(rawValue: 0x0020)
    /// IIN2.6: reserved.
    public static let reserved2 = DNP3IIN(rawValue: 0x0040)
    /// IIN2.7: reserved.
    public static let reserved1 = DNP3IIN(rawValue: 0x0080)

    /// The record name of bit `bit` (0 = IIN2.0 ... 15 = IIN1.7).
    public static func flagName(bit: Int) -> StaticString {
        switch bit {
        case 8: "broadcast"
        case 9: "class_1_events"
        case 10: "class_2_events"
        case 11: "class_3_events"
        case 12: "need_time"
        case 13: "local_control"
        case 14: "device_trouble"
        case 15: "device_restart"
        case 0: "no_func_code_support"
        case 1: "object_unknown"
        case 2: "parameter_error"
        case 3: "event_buffer_overflow"
        case 4: "already_executing"
        case 5: "config_corrupt"
        case 6: "reserved_2"
        default: "reserved_1"
        }
    }
}
