import Wire

/// Builds one JSON text into a reusable byte buffer, placing commas and colons itself.
///
/// Keys are `StaticString`s, so building a record allocates nothing once the buffer has grown to
/// its working size. Strings are escaped per RFC 8259; bytes that are not valid UTF-8 are written
/// as `\u00XX` so that output stays valid JSON whatever a capture holds.
public struct JSONWriter {
    /// The text written so far.
    public var bytes: [UInt8]
    @usableFromInline var needsComma = false

    /// Creates a writer with `capacity` bytes reserved.
    public init(capacity: Int = 4096) { bytes = []; bytes.reserveCapacity(capacity) }

    /// Empties the buffer, keeping its capacity.
    @inlinable public mutating func reset() { bytes.removeAll(keepingCapacity: true); needsComma = false }

    @inlinable mutating func separate() { if needsComma { bytes.append(UInt8(ascii: ",")) } }

    /// Opens an object `{`.
    @inlinable public mutating func beginObject() { separate(); bytes.append(UInt8(ascii: "{")); needsComma = false }
    /// Closes an object `}`.
    @inlinable public mutating func endObject() { bytes.append(UInt8(ascii: "}")); needsComma = true }
    /// Opens an array `[`.
    @inlinable public mutating func beginArray() { separate(); bytes.append(UInt8(ascii: "[")); needsComma = false }
    /// Closes an array `]`.
    @inlinable public mutating func endArray() { bytes.append(UInt8(ascii: "]")); needsComma = true }

    /// Writes `"key":`.
    @inlinable public mutating func key(_ k: StaticString) {
        separate()
        bytes.append(UInt8(ascii: "\""))
        k.withUTF8Buffer { bytes.append(contentsOf: $0) }
        bytes.append(UInt8(ascii: "\"")); bytes.append(UInt8(ascii: ":"))
        needsComma = false
    }

    /// Writes `"key":` for a key known only at run time (escaped).
    public mutating func key(_ k: String) {
        separate(); writeEscaped(k.utf8); bytes.append(UInt8(ascii: ":")); needsComma = false
    }

    /// Writes a static string value (assumed to need no escaping: table names, enum names).
    @inlinable public mutating func string(_ s: StaticString) {
        separate()
        bytes.append(UInt8(ascii: "\""))
        s.withUTF8Buffer { bytes.append(contentsOf: $0) }
        bytes.append(UInt8(ascii: "\""))
        needsComma = true
    }

    /// Writes a string value, escaped.
    public mutating func string(_ s: String) { separate(); writeEscaped(s.utf8); needsComma = true }

    /// Writes inline text as a string value, escaped.
    public mutating func string(_ t: InlineText) { separate(); t.withBytes { writeEscaped($0) }; needsComma = true }
    /// An alert text as a JSON string.
    public mutating func string(_ t: AlertText) { separate(); t.withBytes { writeEscaped($0) }; needsComma = true }

    /// Writes raw bytes from the wire as a string value, escaped (invalid UTF-8 → `\u00XX`).
    public mutating func string(bytes view: ByteView) {
        separate(); writeEscaped(view.raw); needsComma = true
    }

    /// Writes bytes as a lowercase hex string value.
    public mutating func hex(_ view: ByteView) {
        separate(); bytes.append(UInt8(ascii: "\""))
        let digits: StaticString = "0123456789abcdef"
        for b in view.raw {
            bytes.append(digits.utf8Start[Int(b >> 4)]); bytes.append(digits.utf8Start[Int(b & 0xF)])
        }
        bytes.append(UInt8(ascii: "\"")); needsComma = true
    }

    /// Writes a signed integer.
    @inlinable public mutating func int(_ v: Int64) {
        separate()
        if v < 0 { bytes.append(UInt8(ascii: "-")); writeDecimal(UInt64(bitPattern: 0 &- v), to: &bytes) }
        else { writeDecimal(UInt64(v), to: &bytes) }
        needsComma = true
    }
    /// Writes a signed integer.
    @inlinable public mutating func int(_ v: Int) { int(Int64(v)) }
    /// Writes an unsigned integer.
    @inlinable public mutating func uint(_ v: UInt64) { separate(); writeDecimal(v, to: &bytes); needsComma = true }

    /// Writes a number with six decimals from an integer count of millionths (e.g. seconds from µs).
    @inlinable public mutating func fixed6(_ millionths: Int64) {
        separate()
        var v = millionths
        if v < 0 { bytes.append(UInt8(ascii: "-")); v = 0 &- v }
        writeDecimal(UInt64(v / 1_000_000), to: &bytes)
        bytes.append(UInt8(ascii: "."))
        var frac = v % 1_000_000, div: Int64 = 100_000
        while div > 0 { bytes.append(UInt8(ascii: "0") &+ UInt8(frac / div)); frac %= div; div /= 10 }
        needsComma = true
    }

    /// Writes a floating-point value (allocates through `description`; not for the per-packet path).
    public mutating func double(_ v: Double) {
        guard v.isFinite else { null(); return }
        separate(); bytes.append(contentsOf: v.description.utf8); needsComma = true
    }

    /// Writes `true` or `false`.
    @inlinable public mutating func bool(_ v: Bool) {
        separate()
        // Not two array literals: swiftc 6.3 names their outlined static copies per module (…Tv_, …Tv0_)
        // in different orders, the linker keeps one copy, and every inlined call wrote the opposite value.
        let text: StaticString = v ? "true" : "false"
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
        needsComma = true
    }

    /// Writes `null`.
    public mutating func null() {
        separate()
        let text: StaticString = "null"
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
        needsComma = true
    }

    /// Writes an IP address as a string value.
    public mutating func ip(_ a: IPAddress) {
        separate(); bytes.append(UInt8(ascii: "\"")); a.write(to: &bytes); bytes.append(UInt8(ascii: "\"")); needsComma = true
    }

    /// Writes a packet time as an RFC 3339 string value.
    public mutating func time(_ t: PacketTime) {
        separate(); bytes.append(UInt8(ascii: "\"")); t.writeRFC3339(to: &bytes); bytes.append(UInt8(ascii: "\"")); needsComma = true
    }

    /// Appends an already-encoded JSON value verbatim.
    public mutating func rawValue(_ json: some Sequence<UInt8>) { separate(); bytes.append(contentsOf: json); needsComma = true }

    // Convenience: key and value in one call.
    /// `"k": v`.
    @inlinable public mutating func field(_ k: StaticString, _ v: Int) { key(k); int(Int64(v)) }
    /// `"k": v`.
    @inlinable public mutating func field(_ k: StaticString, _ v: UInt64) { key(k); uint(v) }
    /// `"k": v`.
    public mutating func field(_ k: StaticString, _ v: Bool) { key(k); bool(v) }
    /// `"k": "v"`.
    @inlinable public mutating func field(_ k: StaticString, _ v: StaticString) { key(k); string(v) }
    /// `"k": "v"`.
    public mutating func field(_ k: StaticString, _ v: String) { key(k); string(v) }

    @usableFromInline mutating func writeEscaped<C: Collection>(_ s: C) where C.Element == UInt8 {
        bytes.append(UInt8(ascii: "\""))
        // Fast path: text that needs no escaping at all (names, addresses, most values) is copied in one go.
        let copied = s.withContiguousStorageIfAvailable { buffer -> Bool in
            for b in buffer where b < 0x20 || b >= 0x7F || b == 0x22 || b == 0x5C { return false }
            bytes.append(contentsOf: buffer)
            return true
        } ?? false
        if copied { bytes.append(UInt8(ascii: "\"")); return }
        var it = s.makeIterator()
        var pending: [UInt8] = []   // only used for multi-byte sequences
        while let b = it.next() {
            if b < 0x80 {
                switch b {
                case 0x22: bytes.append(0x5C); bytes.append(0x22)
                case 0x5C: bytes.append(0x5C); bytes.append(0x5C)
                case 0x0A: bytes.append(0x5C); bytes.append(UInt8(ascii: "n"))
                case 0x0D: bytes.append(0x5C); bytes.append(UInt8(ascii: "r"))
                case 0x09: bytes.append(0x5C); bytes.append(UInt8(ascii: "t"))
                case 0..<0x20, 0x7F: escapeByte(b)
                default: bytes.append(b)
                }
                continue
            }
            // Validate one UTF-8 sequence; copy it if valid, else escape its lead byte.
            let need = b >= 0xF0 && b <= 0xF4 ? 3 : b >= 0xE0 && b <= 0xEF ? 2 : b >= 0xC2 && b <= 0xDF ? 1 : -1
            if need < 0 { escapeByte(b); continue }
            pending.removeAll(keepingCapacity: true); pending.append(b)
            var ok = true
            for _ in 0..<need {
                guard let c = it.next() else { ok = false; break }
                pending.append(c)
                if c & 0xC0 != 0x80 { ok = false; break }
            }
            if ok { bytes.append(contentsOf: pending) } else { for p in pending { if p < 0x80 && p >= 0x20 && p != 0x22 && p != 0x5C && p != 0x7F { bytes.append(p) } else { escapeByte(p) } } }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    @usableFromInline mutating func escapeByte(_ b: UInt8) {
        let digits: StaticString = "0123456789abcdef"
        let prefix: StaticString = "\\u00"   // no array literal here: see `bool(_:)`
        prefix.withUTF8Buffer { bytes.append(contentsOf: $0) }
        bytes.append(digits.utf8Start[Int(b >> 4)]); bytes.append(digits.utf8Start[Int(b & 0xF)])
    }
}
