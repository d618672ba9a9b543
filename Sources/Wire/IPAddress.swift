/// An IPv4 or IPv6 address held in two integers (no heap storage), IPv4 as ::ffff:a.b.c.d internally.
public struct IPAddress: Hashable, Comparable, Sendable {
    /// High 64 bits of the 128-bit form.
    public var high: UInt64
    /// Low 64 bits of the 128-bit form.
    public var low: UInt64

    /// Creates an address from its 128-bit form.
    @inlinable public init(high: UInt64, low: UInt64) { self.high = high; self.low = low }

    /// An IPv4 address from its 32-bit big-endian value (as on the wire).
    @inlinable public init(v4 value: UInt32) { self.high = 0; self.low = 0xFFFF_0000_0000 | UInt64(value) }

    /// Whether this is an IPv4 address.
    @inlinable public var isIPv4: Bool { high == 0 && (low >> 32) == 0xFFFF }

    /// The IPv4 value (valid when `isIPv4`).
    @inlinable public var v4: UInt32 { UInt32(truncatingIfNeeded: low) }

    /// Bit `i` counted from the most significant bit of the 128-bit form.
    @inlinable public func bit(_ i: Int) -> Bool {
        i < 64 ? (high >> UInt64(63 - i)) & 1 == 1 : (low >> UInt64(127 - i)) & 1 == 1
    }

    @inlinable public static func < (a: IPAddress, b: IPAddress) -> Bool { a.high < b.high || (a.high == b.high && a.low < b.low) }
    @inlinable public static func == (a: IPAddress, b: IPAddress) -> Bool { a.high == b.high && a.low == b.low }

    /// The 4 (IPv4) or 16 (IPv6) address bytes in network order, as hashed by Community ID.
    public var networkBytes: [UInt8] {
        if isIPv4 { return withUnsafeBytes(of: v4.bigEndian) { Array($0) } }
        var out = [UInt8](); out.reserveCapacity(16)
        withUnsafeBytes(of: high.bigEndian) { out.append(contentsOf: $0) }
        withUnsafeBytes(of: low.bigEndian) { out.append(contentsOf: $0) }
        return out
    }

    /// Writes the dotted-quad text of an IPv4 address at `p` (at most 15 bytes); returns how many. IPv4 only.
    @inlinable @inline(__always)
    public func writeIPv4(at p: UnsafeMutablePointer<UInt8>) -> Int {
        let v = v4
        var k = 0
        for i in 0..<4 {
            if i > 0 { p[k] = UInt8(ascii: "."); k &+= 1 }
            k &+= StackText.writeDecimal(UInt64((v >> UInt32(24 - 8 * i)) & 0xFF), at: p + k)
        }
        return k
    }

    /// Writes the textual form (dotted quad, or RFC 5952 compressed IPv6) into `out` without allocating
    /// beyond `out`'s growth.
    public func write(to out: inout [UInt8]) {
        if isIPv4 {
            StackText.append(to: &out) { writeIPv4(at: $0) }
            return
        }
        // The eight groups computed, not stored (an array of them was a heap allocation per address written).
        @inline(__always) func group(_ i: Int) -> UInt16 {
            UInt16(truncatingIfNeeded: (i < 4 ? high : low) >> UInt64(48 - 16 * (i & 3)))
        }
        // RFC 5952: compress the longest run (length ≥ 2) of zero groups, the first on a tie.
        var bestStart = -1, bestLen = 0, i = 0
        while i < 8 {
            if group(i) == 0 {
                var j = i; while j < 8 && group(j) == 0 { j += 1 }
                if j - i > bestLen && j - i >= 2 { bestStart = i; bestLen = j - i }
                i = j
            } else { i += 1 }
        }
        i = 0
        while i < 8 {
            if i == bestStart {
                out.append(UInt8(ascii: ":")); if i == 0 { out.append(UInt8(ascii: ":")) }
                i += bestLen
                continue
            }
            writeHex(group(i), to: &out)
            if i < 7 { out.append(UInt8(ascii: ":")) }
            i += 1
        }
    }

    /// Parses dotted-quad IPv4 or textual IPv6; nil when the text is not an address.
    public init?(_ text: some StringProtocol) {
        let s = String(text)
        if s.contains(":") {
            guard let v = IPAddress.parseV6(s) else { return nil }
            self = v
        } else {
            let parts = s.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 4 else { return nil }
            var value: UInt32 = 0
            for p in parts {
                guard !p.isEmpty, p.count <= 3, let n = UInt32(p), n <= 255 else { return nil }
                value = value << 8 | n
            }
            self.init(v4: value)
        }
    }

    private static func parseV6(_ s: String) -> IPAddress? {
        let chars = Array(s.utf8)
        var halves: [String] = []
        var start = 0, i = 0
        while i < chars.count {
            if i + 1 < chars.count && chars[i] == UInt8(ascii: ":") && chars[i + 1] == UInt8(ascii: ":") {
                halves.append(String(decoding: chars[start..<i], as: UTF8.self)); i += 2; start = i
            } else { i += 1 }
        }
        halves.append(String(decoding: chars[start..<chars.count], as: UTF8.self))
        guard halves.count <= 2 else { return nil }
        func groups(_ part: String) -> [UInt16]? {
            if part.isEmpty { return [] }
            var out: [UInt16] = []
            let items = part.split(separator: ":", omittingEmptySubsequences: false)
            for (index, item) in items.enumerated() {
                if index == items.count - 1, item.contains("."), let v4 = IPAddress(item), v4.isIPv4 {
                    out.append(UInt16(v4.v4 >> 16)); out.append(UInt16(v4.v4 & 0xFFFF))
                    continue
                }
                guard !item.isEmpty, item.count <= 4, let g = UInt16(item, radix: 16) else { return nil }
                out.append(g)
            }
            return out
        }
        guard let head = groups(halves[0]) else { return nil }
        var all: [UInt16]
        if halves.count == 2 {
            guard let tail = groups(halves[1]), head.count + tail.count <= 7 else { return nil }
            all = head + [UInt16](repeating: 0, count: 8 - head.count - tail.count) + tail
        } else {
            guard head.count == 8 else { return nil }
            all = head
        }
        var hi: UInt64 = 0, lo: UInt64 = 0
        for i in 0..<4 { hi = hi << 16 | UInt64(all[i]) }
        for i in 4..<8 { lo = lo << 16 | UInt64(all[i]) }
        return IPAddress(high: hi, low: lo)
    }
}

extension IPAddress: CustomStringConvertible {
    /// The textual form.
    public var description: String {
        var out: [UInt8] = []; write(to: &out)
        return String(decoding: out, as: UTF8.self)
    }
}

/// Appends the decimal digits of `value`, one `append` each: for a number's few bytes this measured faster than
/// building them on the stack and appending them at once (`StackText`, which pays for an address or a time).
@inlinable public func writeDecimal(_ value: UInt64, to out: inout [UInt8]) {
    if value < 10 { out.append(UInt8(ascii: "0") &+ UInt8(value)); return }
    var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                 UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
        (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    var n = value, count = 0
    withUnsafeMutableBytes(of: &digits) { d in
        while n > 0 { d[count] = UInt8(ascii: "0") &+ UInt8(n % 10); n /= 10; count += 1 }
        while count > 0 { count -= 1; out.append(d[count]) }
    }
}

/// Appends lowercase hex digits of `value` without leading zeros.
@inlinable public func writeHex(_ value: UInt16, to out: inout [UInt8]) {
    let hex: StaticString = "0123456789abcdef"
    var started = false
    for shift in stride(from: 12, through: 0, by: -4) {
        let nibble = Int((value >> UInt16(shift)) & 0xF)
        if nibble != 0 || started || shift == 0 {
            started = true
            out.append(hex.utf8Start[nibble])
        }
    }
}
