import Wire

/// Alert text (an alert's message) held inline up to `inlineCapacity` bytes, longer text as a `String`.
///
/// Alerts are raised at packet rate in some captures (protocol anomalies, operations a conduit denies): a `String`
/// message of more than 15 bytes was a heap allocation per alert, another per summary that appended to it. Inline
/// text is built, copied into the aggregation window and written out with none.
public struct AlertText: Sendable, Equatable, CustomStringConvertible {
    /// Bytes held inline; longer text spills to a `String`.
    public static let inlineCapacity = 240

    private var words: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
                        UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
                        UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)
        = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    private var inlineCount = 0
    /// The whole text once it no longer fits inline (then `inlineCount` is 0).
    private var spilled: String?

    /// An empty text.
    public init() {}

    /// The bytes of `text`.
    public init(_ text: String) {
        var t = text
        t.withUTF8 { append(UnsafeRawBufferPointer($0)) }
    }

    /// Length in bytes.
    public var count: Int { spilled?.utf8.count ?? inlineCount }

    /// Whether the text is empty.
    public var isEmpty: Bool { count == 0 }

    /// Whether the text is held inline (no heap storage).
    public var isInline: Bool { spilled == nil }

    /// Runs `body` over the UTF-8 bytes.
    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        if var s = spilled { return try s.withUTF8 { try body(UnsafeRawBufferPointer($0)) } }
        return try withUnsafeBytes(of: words) { try body(UnsafeRawBufferPointer(rebasing: $0[0..<inlineCount])) }
    }

    /// The text as a `String` (allocates beyond 15 bytes: for tests and cold paths).
    public var string: String { spilled ?? withBytes { String(decoding: $0, as: UTF8.self) } }

    public var description: String { string }

    /// Appends UTF-8 bytes (whole characters: the pieces of a message are whole strings and numbers).
    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        guard !bytes.isEmpty else { return }
        if spilled != nil { spilled!.append(String(decoding: bytes, as: UTF8.self)); return }
        let n = inlineCount
        if n + bytes.count <= Self.inlineCapacity {
            withUnsafeMutableBytes(of: &words) { w in
                UnsafeMutableRawBufferPointer(rebasing: w[n..<(n + bytes.count)]).copyMemory(from: bytes)
            }
            inlineCount = n + bytes.count
            return
        }
        var text = withBytes { String(decoding: $0, as: UTF8.self) }
        text.append(String(decoding: bytes, as: UTF8.self))
        spilled = text
        inlineCount = 0
    }

    /// Appends a literal.
    public mutating func append(_ s: StaticString) {
        if s.hasPointerRepresentation {
            append(UnsafeRawBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
        } else {
            append(s.description)
        }
    }

    /// Appends a string.
    public mutating func append(_ s: String) {
        var s = s
        s.withUTF8 { append(UnsafeRawBufferPointer($0)) }
    }

    /// Appends `value` in decimal, as `\(value)` writes it.
    public mutating func append(decimal value: Int64) {
        // At most 20 digits and a sign, formatted on the stack.
        var buffer: (UInt64, UInt64, UInt64) = (0, 0, 0)
        withUnsafeMutableBytes(of: &buffer) { b in
            var n = b.count, m = value.magnitude
            repeat { n -= 1; b[n] = UInt8(ascii: "0") &+ UInt8(m % 10); m /= 10 } while m != 0
            if value < 0 { n -= 1; b[n] = UInt8(ascii: "-") }
            append(UnsafeRawBufferPointer(rebasing: b[n...]))
        }
    }

    /// Appends `value` in decimal.
    public mutating func append(decimal value: Int) { append(decimal: Int64(value)) }

    /// Appends the address as `IPAddress.description` writes it (an IPv4 address formatted on the stack).
    public mutating func append(_ ip: IPAddress) {
        guard ip.isIPv4 else { append(ip.description); return }
        var buffer: (UInt64, UInt64) = (0, 0)
        withUnsafeMutableBytes(of: &buffer) { b in
            var n = 0
            for i in 0..<4 {
                if i > 0 { b[n] = UInt8(ascii: "."); n += 1 }
                let octet = UInt8(truncatingIfNeeded: ip.v4 >> UInt32(24 - 8 * i))
                if octet >= 100 { b[n] = UInt8(ascii: "0") &+ octet / 100; n += 1 }
                if octet >= 10 { b[n] = UInt8(ascii: "0") &+ (octet / 10) % 10; n += 1 }
                b[n] = UInt8(ascii: "0") &+ octet % 10; n += 1
            }
            append(UnsafeRawBufferPointer(rebasing: b[0..<n]))
        }
    }

    /// Empties the text (keeps nothing on the heap).
    public mutating func removeAll() { inlineCount = 0; spilled = nil }

    public static func == (a: AlertText, b: AlertText) -> Bool {
        a.withBytes { x in b.withBytes { y in x.elementsEqual(y) } }
    }
}
