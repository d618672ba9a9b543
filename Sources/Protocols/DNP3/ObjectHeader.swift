import Wire

// IEEE 1815-2012 §4.2.2.7.3: each object header is followed by its objects.
//
//   offset  size    field
//   0       1       GROUP
//   1       1       VARIATION
//   2       1       QUALIFIER: bit 7 reserved, bits 4-6 OBJECT PREFIX CODE, bits 0-3 RANGE SPECIFIER CODE
//   3       0..8    RANGE
//
//   range code  range field                          prefix code  before each object
//   0x0/0x1/0x2 start, stop: u8 / u16 / u32          0            nothing
//   0x3/0x4/0x5 virtual address u8/u16/u32 (obs.)    1 / 2 / 3    index u8 / u16 / u32
//   0x6         none: every point, no objects        4 / 5 / 6    object size u8 / u16 / u32
//   0x7/0x8/0x9 count: u8 / u16 / u32                7            reserved
//   0xB         count u8, free-format objects
//   0xA, 0xC-F  reserved
//
// In requests that only name points (READ, the freezes, ASSIGN_CLASS, (DIS)ENABLE_UNSOLICITED) the
// objects are absent; index prefixes are still there.

/// Why an object header or its objects could not be parsed; the offset is within the fragment.
public enum DNP3ObjectError: Error, Equatable, Sendable {
    /// The header runs past the fragment.
    case truncatedHeader(at: Int)
    /// A reserved prefix or range code.
    case reservedQualifier(at: Int, qualifier: UInt8)
    /// A start/stop range with stop < start.
    case invalidRange(at: Int, start: UInt32, stop: UInt32)
    /// Objects of an unknown or variable size with no size prefix: the rest cannot be parsed.
    case unknownObjectSize(at: Int, group: UInt8, variation: UInt8)
    /// Packed objects with a prefix, which the spec does not allow.
    case invalidPrefix(at: Int, qualifier: UInt8)
    /// The objects run past the fragment.
    case truncatedObjects(at: Int, need: Int, have: Int)

    /// The anomaly kind.
    public var kind: StaticString {
        switch self {
        case .truncatedHeader: "truncated_object_header"
        case .reservedQualifier: "reserved_qualifier"
        case .invalidRange: "invalid_range"
        case .unknownObjectSize: "unknown_object_size"
        case .invalidPrefix: "invalid_prefix"
        case .truncatedObjects: "truncated_objects"
        }
    }

    /// The offset in the fragment.
    public var offset: Int {
        switch self {
        case .truncatedHeader(let a), .reservedQualifier(let a, _), .invalidRange(let a, _, _),
             .unknownObjectSize(let a, _, _), .invalidPrefix(let a, _), .truncatedObjects(let a, _, _): a
        }
    }

    /// A numeric detail for the anomaly.
    public var value: Int64 {
        switch self {
        case .truncatedHeader(let a): Int64(a)
        case .reservedQualifier(_, let q), .invalidPrefix(_, let q): Int64(q)
        case .invalidRange(_, let s, _): Int64(s)
        case .unknownObjectSize(_, let g, let v): Int64(g) << 8 | Int64(v)
        case .truncatedObjects(_, let need, _): Int64(need)
        }
    }
}

/// How an object header selects points.
public enum DNP3RangeKind: Sendable, Equatable {
    /// Start and stop indices.
    case startStop
    /// A count of objects (indices come from prefixes, if any).
    case count
    /// Every point of the type (range code 6).
    case all
    /// An obsolete virtual address (range codes 3–5); one object.
    case virtualAddress
}

/// One parsed object header and where its objects lie in the fragment.
public struct DNP3ObjectHeader: Sendable, Equatable {
    /// Object group.
    public var group: UInt8
    /// Object variation.
    public var variation: UInt8
    /// The QUALIFIER octet.
    public var qualifier: UInt8
    /// Offset of the header in the fragment.
    public var offset: Int
    /// How the range selects points.
    public var rangeKind: DNP3RangeKind
    /// First index (start/stop) or the virtual address; 0 otherwise.
    public var start: UInt32
    /// Last index (start/stop); 0 otherwise.
    public var stop: UInt32
    /// Number of objects (or of indices named, in headers-only requests).
    public var count: Int
    /// Offset of the first object (or prefix) after the header.
    public var dataOffset: Int
    /// Octets of objects and prefixes after the header.
    public var dataLength: Int
    /// Whether the objects carry no data (only prefixes, if any).
    public var headersOnly: Bool
    /// The catalog size of one object.
    public var size: DNP3ObjectSize

    /// Bits 4–6 of the qualifier.
    @inlinable public var prefixCode: UInt8 { (qualifier >> 4) & 0x07 }
    /// Bits 0–3 of the qualifier.
    @inlinable public var rangeCode: UInt8 { qualifier & 0x0F }
    /// Octets of prefix before each object.
    @inlinable public var prefixSize: Int { DNP3ObjectHeader.prefixSize(code: prefixCode) }
    /// Whether the prefix is a point index (codes 1–3).
    @inlinable public var prefixIsIndex: Bool { prefixCode >= 1 && prefixCode <= 3 }
    /// Whether the prefix is an object size (codes 4–6).
    @inlinable public var prefixIsSize: Bool { prefixCode >= 4 && prefixCode <= 6 }
    /// Offset just past the objects: where the next header starts.
    @inlinable public var end: Int { dataOffset + dataLength }

    /// Octets of a prefix of `code`.
    @inlinable public static func prefixSize(code: UInt8) -> Int {
        switch code {
        case 1, 4: 1
        case 2, 5: 2
        case 3, 6: 4
        default: 0
        }
    }
}

/// Reads an unsigned little-endian integer of 1, 2 or 4 octets.
@inlinable func readUInt(_ bytes: ByteView, _ offset: Int, size: Int) -> UInt32 {
    switch size {
    case 1: UInt32(bytes.u8(offset))
    case 2: UInt32(bytes.u16le(offset))
    default: bytes.u32le(offset)
    }
}

/// Walks the object headers of one application fragment, validating every length against the
/// fragment before it is used. Allocation-free: a value type over borrowed bytes.
public struct DNP3ObjectParser {
    /// The fragment.
    public let fragment: ByteView
    /// Where the next header starts.
    public private(set) var offset: Int
    /// The fragment's function (decides whether objects carry data).
    public let function: DNP3FunctionCode

    /// Starts after the application header at `offset`.
    public init(fragment: ByteView, objectsAt offset: Int, function: DNP3FunctionCode) {
        self.fragment = fragment; self.offset = offset; self.function = function
    }

    /// The next header, nil at the end of the fragment; after an error the walk cannot continue.
    /// Inlined into its callers' loops (the object summary runs it on every fragment), so the header
    /// value is not materialised and returned through memory.
    @inline(__always) public mutating func next() throws(DNP3ObjectError) -> DNP3ObjectHeader? {
        guard offset < fragment.count else { return nil }
        let at = offset
        guard fragment.has(3, at: at) else { throw .truncatedHeader(at: at) }
        let group = fragment.u8(at), variation = fragment.u8(at + 1), qualifier = fragment.u8(at + 2)
        let prefixCode = (qualifier >> 4) & 0x07, rangeCode = qualifier & 0x0F
        guard prefixCode != 7 else { throw .reservedQualifier(at: at, qualifier: qualifier) }

        var kind = DNP3RangeKind.count, start: UInt32 = 0, stop: UInt32 = 0, count = 0, rangeSize = 0
        switch rangeCode {
        case 0x0, 0x1, 0x2:
            let w = rangeCode == 0 ? 1 : rangeCode == 1 ? 2 : 4
            rangeSize = 2 * w
            guard fragment.has(rangeSize, at: at + 3) else { throw .truncatedHeader(at: at) }
            start = readUInt(fragment, at + 3, size: w); stop = readUInt(fragment, at + 3 + w, size: w)
            guard stop >= start else { throw .invalidRange(at: at, start: start, stop: stop) }
            kind = .startStop; count = Int(stop - start) + 1
        case 0x3, 0x4, 0x5:
            rangeSize = rangeCode == 3 ? 1 : rangeCode == 4 ? 2 : 4
            guard fragment.has(rangeSize, at: at + 3) else { throw .truncatedHeader(at: at) }
            start = readUInt(fragment, at + 3, size: rangeSize)
            kind = .virtualAddress; count = 1
        case 0x6:
            kind = .all; count = 0
        case 0x7, 0x8, 0x9, 0xB:
            rangeSize = rangeCode == 8 ? 2 : rangeCode == 9 ? 4 : 1
            guard fragment.has(rangeSize, at: at + 3) else { throw .truncatedHeader(at: at) }
            count = Int(readUInt(fragment, at + 3, size: rangeSize))
        default:
            throw .reservedQualifier(at: at, qualifier: qualifier)
        }

        let size = DNP3ObjectCatalog.size(group: group, variation: variation)
        let dataOffset = at + 3 + rangeSize
        let prefix = DNP3ObjectHeader.prefixSize(code: prefixCode)
        let headersOnly = function.objectsAreHeadersOnly(group: group) || size == .none || kind == .all
        let available = fragment.count - dataOffset
        var length = 0

        func need(_ n: Int) throws(DNP3ObjectError) {
            guard n <= available else { throw .truncatedObjects(at: at, need: n, have: available) }
        }

        if headersOnly {
            length = count * prefix            // count < 2^32, prefix ≤ 4: no overflow
            try need(length)
        } else if prefixCode >= 4 {
            // Object-size prefix: step object by object (each step consumes ≥ 1 octet, so this is bounded).
            var o = dataOffset
            for _ in 0..<count {
                try need(o + prefix - dataOffset)
                let n = Int(readUInt(fragment, o, size: prefix))
                try need(o + prefix + n - dataOffset)
                o += prefix + n
            }
            length = o - dataOffset
        } else {
            switch size {
            case .fixed(let n):
                length = count * (prefix + n); try need(length)
            case .variationLength:
                length = count * (prefix + Int(variation)); try need(length)
            case .bits(let b):
                guard prefix == 0 else { throw .invalidPrefix(at: at, qualifier: qualifier) }
                length = (count * b + 7) / 8; try need(length)
            case .deviceAttribute:
                var o = dataOffset
                for _ in 0..<count {
                    try need(o + prefix + 2 - dataOffset)
                    let n = Int(fragment.u8(o + prefix + 1))
                    try need(o + prefix + 2 + n - dataOffset)
                    o += prefix + 2 + n
                }
                length = o - dataOffset
            case .none:
                length = 0
            case .variable, .unknown:
                throw .unknownObjectSize(at: at, group: group, variation: variation)
            }
        }

        offset = dataOffset + length
        return DNP3ObjectHeader(group: group, variation: variation, qualifier: qualifier, offset: at,
                                rangeKind: kind, start: start, stop: stop, count: count,
                                dataOffset: dataOffset, dataLength: length, headersOnly: headersOnly, size: size)
    }
}
