import Wire

// Small helpers for building text records into a reusable byte buffer without `String` work.

extension Array where Element == UInt8 {
    /// Appends a static ASCII string.
    @inlinable mutating func append(ascii s: StaticString) {
        s.withUTF8Buffer { self.append(contentsOf: $0) }
    }

    /// Appends a signed decimal integer.
    @inlinable mutating func append(decimal v: Int) {
        if v < 0 { append(UInt8(ascii: "-")); writeDecimal(UInt64(0 &- Int64(v)), to: &self) }
        else { writeDecimal(UInt64(v), to: &self) }
    }

    /// Appends a signed 64-bit decimal integer.
    @inlinable mutating func append(decimal v: Int64) {
        if v < 0 { append(UInt8(ascii: "-")); writeDecimal(UInt64(bitPattern: 0 &- v), to: &self) }
        else { writeDecimal(UInt64(v), to: &self) }
    }
}

extension Array where Element == UInt8 {
    /// Appends the UTF-8 of `s`, handing each byte for which `special` holds to `replace` instead;
    /// runs of ordinary bytes are copied in bulk (escaping is on every field of every record).
    @inline(__always)
    mutating func append(_ s: String, special: (UInt8) -> Bool, replace: (UInt8, inout [UInt8]) -> Void) {
        var s = s
        s.withUTF8 { append(bytes: UnsafeRawBufferPointer($0), special: special, replace: replace) }
    }

    /// `append(_:special:replace:)` over UTF-8 bytes (inline alert texts: no `String` made for them).
    @inline(__always)
    mutating func append(bytes buf: UnsafeRawBufferPointer, special: (UInt8) -> Bool, replace: (UInt8, inout [UInt8]) -> Void) {
        var run = 0
        for i in 0..<buf.count where special(buf[i]) {
            if i > run { append(contentsOf: UnsafeRawBufferPointer(rebasing: buf[run..<i])) }
            replace(buf[i], &self)
            run = i + 1
        }
        if run < buf.count { append(contentsOf: UnsafeRawBufferPointer(rebasing: buf[run...])) }
    }
}

/// C0 controls and DEL other than TAB, LF and CR: no text format we write can carry them safely
/// (receivers truncate at NUL or rewrite them as `#0xx`), so every text encoder writes a space instead.
@inlinable func isUnsafeControl(_ b: UInt8) -> Bool {
    (b < 0x20 && b != 0x09 && b != 0x0A && b != 0x0D) || b == 0x7F
}

/// Transport names as CEF `proto` and LEEF `proto` expect them (upper case).
func transportLabel(_ t: Transport) -> StaticString? {
    switch t {
    case .tcp: "TCP"
    case .udp: "UDP"
    case .icmp: "ICMP"
    case .icmpv6: "IPv6-ICMP"
    case .other: nil
    }
}

/// Milliseconds since the epoch (CEF `rt`, `start`, `end`).
@inlinable func epochMilliseconds(_ t: PacketTime) -> Int64 {
    t.seconds &* 1000 &+ Int64(t.microseconds / 1000)
}
