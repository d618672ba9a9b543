// The decoded shape of one Modbus PDU: scalars and offsets into the caller's bytes, never copies.
//
// Modbus Application Protocol V1.1b3 §4.1: PDU = function code (1 byte) + data (0–252 bytes).
// Fields that a function does not carry stay at -1 (or `.none`); the data the PDU carries
// (register values, coil bits, file records, device-identification objects, raw vendor data)
// is described by `data` (an offset and a length inside the PDU) and `payload` (how to read it).

/// Whether a PDU travels client → server or server → client.
public enum ModbusDirection: UInt8, Sendable {
    /// Client → server.
    case request
    /// Server → client.
    case response

    /// The record value (`request` / `response`).
    public var name: StaticString { self == .request ? "request" : "response" }
}

/// How to read the bytes a PDU carries (`ModbusPDU.data`).
public enum ModbusPayload: UInt8, Sendable {
    /// Nothing beyond the scalar fields.
    case none
    /// Packed coil/input bits, least significant bit first (§6.1).
    case bits
    /// Big-endian 16-bit registers.
    case registers
    /// FC 20 request: 7-byte sub-requests (reference type, file, record, length).
    case fileReadRequests
    /// FC 20 response: sub-responses (length, reference type, registers).
    case fileReadResponses
    /// FC 21 request/response: groups (reference type, file, record, length, registers).
    case fileWriteGroups
    /// FC 43 / MEI 14 response: device-identification objects (id, length, value).
    case deviceObjects
    /// FC 12 response: one event byte each.
    case events
    /// Bytes we do not interpret (user-defined, vendor, diagnostics data of odd length, CANopen).
    case raw
}

/// Problems the parser finds in a single PDU; the session and framing layers add their own.
public struct ModbusPDUProblems: OptionSet, Sendable {
    public var rawValue: UInt8
    @inlinable public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// The function code is not public, user-defined or a known vendor code.
    @inlinable public static var unknownFunction: ModbusPDUProblems { ModbusPDUProblems(rawValue: 1 << 0) }
    /// A quantity is outside the spec's bounds (e.g. > 125 registers, > 2000 coils, 0).
    @inlinable public static var illegalQuantity: ModbusPDUProblems { ModbusPDUProblems(rawValue: 1 << 1) }
    /// FC 5 value other than 0x0000 / 0xFF00.
    @inlinable public static var badCoilValue: ModbusPDUProblems { ModbusPDUProblems(rawValue: 1 << 2) }
    /// A byte-count field disagrees with the bytes present or with the quantity it describes.
    @inlinable public static var byteCountMismatch: ModbusPDUProblems { ModbusPDUProblems(rawValue: 1 << 3) }
    /// The PDU is shorter or longer than its function's layout (the MBAP length does not fit it).
    @inlinable public static var badLength: ModbusPDUProblems { ModbusPDUProblems(rawValue: 1 << 4) }
    /// An exception code outside §7's table.
    @inlinable public static var unknownException: ModbusPDUProblems { ModbusPDUProblems(rawValue: 1 << 5) }
}

/// One decoded Modbus PDU.
public struct ModbusPDU: Sendable {
    /// The first PDU byte as sent (with the exception bit).
    public var rawFunctionCode: UInt8 = 0
    /// Request or response.
    public var direction: ModbusDirection = .request
    /// The exception code when bit 7 of the function code is set; nil otherwise.
    public var exceptionCode: UInt8? = nil

    /// Starting address / reference (FC 1–6, 15, 16, 22, 24) or read address (FC 23).
    public var address: Int32 = -1
    /// Number of coils or registers (FC 1–4, 15, 16) or read quantity (FC 23).
    public var quantity: Int32 = -1
    /// Write address (FC 23).
    public var writeAddress: Int32 = -1
    /// Write quantity (FC 23).
    public var writeQuantity: Int32 = -1
    /// The byte-count field where the function has one (16-bit for FC 24 responses).
    public var byteCount: Int32 = -1
    /// FC 5/6 value, FC 7 output data, FC 11/12 status word.
    public var value: Int32 = -1
    /// FC 22 AND mask.
    public var andMask: Int32 = -1
    /// FC 22 OR mask.
    public var orMask: Int32 = -1
    /// FC 8 sub-function; FC 90 UMAS function code (request) or status (response).
    public var subfunction: Int32 = -1
    /// FC 43 MEI type.
    public var meiType: Int16 = -1
    /// MEI 14 read-device-id code.
    public var readDeviceIDCode: Int16 = -1
    /// MEI 14 object id (request) or next object id (response).
    public var objectID: Int16 = -1
    /// MEI 14 conformity level.
    public var conformityLevel: Int16 = -1
    /// MEI 14 "more follows" (0x00 / 0xFF).
    public var moreFollows: Int16 = -1
    /// MEI 14 number of objects; FC 24 FIFO count; FC 11/12 event count.
    public var count: Int32 = -1
    /// FC 12 message count.
    public var messageCount: Int32 = -1
    /// FC 90 UMAS pairing key.
    public var pairingKey: Int16 = -1

    /// Offset of the carried data inside the PDU.
    public var dataOffset = 0
    /// Length of the carried data.
    public var dataLength = 0
    /// How to read the carried data.
    public var payload: ModbusPayload = .none

    /// What the parser found wrong.
    public var problems: ModbusPDUProblems = []
    /// Offset inside the PDU of the first problem found.
    public var problemOffset = 0
    /// A numeric detail of the first problem (the bad value).
    public var problemValue: Int64 = 0

    /// Creates an empty PDU.
    @inlinable public init() {}

    /// The function code with the exception bit cleared.
    @inlinable public var functionCode: FunctionCode { FunctionCode(rawValue: rawFunctionCode) }
    /// Whether this is an exception response.
    @inlinable public var isException: Bool { rawFunctionCode & 0x80 != 0 }

    /// Records a problem; the first one keeps its offset and value.
    @inlinable mutating func flag(_ p: ModbusPDUProblems, at offset: Int, value: Int64) {
        if problems.isEmpty { problemOffset = offset; problemValue = value }
        problems.insert(p)
    }

    /// Sets the carried data region.
    @inlinable mutating func carry(_ kind: ModbusPayload, from offset: Int, length: Int) {
        payload = kind; dataOffset = offset; dataLength = max(0, length)
    }
}

/// The scalar fields of a PDU that pairing compares and a pending request keeps: a `ModbusPDU` without its
/// carried data and problems (32 bytes, cheap to pass on the per-PDU path).
struct ModbusFields {
    /// The first PDU byte as sent.
    var rawFunctionCode: UInt8
    /// FC 43 MEI type (-1: none).
    var meiType: Int16 = -1
    /// Address (-1: none).
    var address: Int32 = -1
    /// Quantity (-1: none).
    var quantity: Int32 = -1
    /// FC 5/6 value, FC 7 output data, FC 11/12 status (-1: none).
    var value: Int32 = -1
    /// Byte-count field (-1: none).
    var byteCount: Int32 = -1
    /// FC 22 AND mask (-1: none).
    var andMask: Int32 = -1
    /// FC 22 OR mask (-1: none).
    var orMask: Int32 = -1
    /// FC 8 sub-function, FC 90 UMAS code or status (-1: none).
    var subfunction: Int32 = -1

    /// The function code with the exception bit cleared.
    @inline(__always) var functionCode: FunctionCode { FunctionCode(rawValue: rawFunctionCode) }
}

extension ModbusPDU {
    /// The scalar fields pairing needs.
    @inline(__always) var fields: ModbusFields {
        ModbusFields(rawFunctionCode: rawFunctionCode, meiType: meiType, address: address, quantity: quantity, value: value,
                     byteCount: byteCount, andMask: andMask, orMask: orMask, subfunction: subfunction)
    }
}
