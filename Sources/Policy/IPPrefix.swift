import Wire

/// An address prefix (CIDR) in the 128-bit form of `IPAddress`: IPv4 prefixes live under ::ffff:0:0/96.
public struct IPPrefix: Hashable, Sendable, CustomStringConvertible {
    /// The network address, host bits zero.
    public var network: IPAddress
    /// Prefix length in the 128-bit form (an IPv4 /24 is 120).
    public var length: Int

    /// Creates a prefix from a network and a 128-bit-form length; host bits are cleared.
    public init(network: IPAddress, length: Int) {
        self.length = max(0, min(128, length))
        self.network = IPPrefix.mask(network, self.length)
    }

    /// Whether this is an IPv4 prefix.
    public var isIPv4: Bool { network.isIPv4 && length >= 96 }

    /// The length as written (0–32 for IPv4, 0–128 for IPv6).
    public var writtenLength: Int { isIPv4 ? length - 96 : length }

    /// Whether `address` lies inside the prefix.
    @inlinable public func contains(_ address: IPAddress) -> Bool {
        IPPrefix.maskHigh(address.high, length) == network.high && IPPrefix.maskLow(address.low, length) == network.low
    }

    /// Whether the two prefixes share any address (one contains the other).
    public func overlaps(_ other: IPPrefix) -> Bool {
        let shorter = min(length, other.length)
        return IPPrefix.mask(network, shorter) == IPPrefix.mask(other.network, shorter)
    }

    /// Whether `other` lies entirely inside this prefix.
    public func covers(_ other: IPPrefix) -> Bool { other.length >= length && contains(other.network) }

    /// `10.0.0.0/16` or `2001:db8::/48`.
    public var description: String { "\(network)/\(writtenLength)" }

    @inlinable static func maskHigh(_ v: UInt64, _ length: Int) -> UInt64 {
        length >= 64 ? v : length <= 0 ? 0 : v & ~(UInt64.max >> UInt64(length))
    }
    @inlinable static func maskLow(_ v: UInt64, _ length: Int) -> UInt64 {
        length >= 128 ? v : length <= 64 ? 0 : v & ~(UInt64.max >> UInt64(length - 64))
    }
    static func mask(_ a: IPAddress, _ length: Int) -> IPAddress {
        IPAddress(high: maskHigh(a.high, length), low: maskLow(a.low, length))
    }

    /// The reasons a CIDR text can be refused.
    public enum ParseError: Error, Equatable, Sendable {
        case badAddress, badLength, hostBitsSet(IPPrefix)
    }

    /// Parses `a.b.c.d[/n]` or `x::y[/n]`; a bare address is a host prefix. Host bits must be zero.
    public static func parse(_ text: String) -> Result<IPPrefix, ParseError> {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = IPAddress(parts[0].trimmingSpaces) else { return .failure(.badAddress) }
        let maxLength = address.isIPv4 && !parts[0].contains(":") ? 32 : 128
        var written = maxLength
        if parts.count == 2 {
            let lengthText = parts[1].trimmingSpaces
            guard !lengthText.isEmpty, lengthText.allSatisfy({ $0.isASCII && $0.isNumber }), lengthText.count <= 3,
                  let n = Int(lengthText), n <= maxLength else { return .failure(.badLength) }
            written = n
        }
        // An IPv6 text such as ::ffff:10.0.0.1 stays an IPv6 prefix length-wise.
        let length = maxLength == 32 ? 96 + written : written
        let prefix = IPPrefix(network: address, length: length)
        if prefix.network != address { return .failure(.hostBitsSet(prefix)) }
        return .success(prefix)
    }
}

extension Substring {
    var trimmingSpaces: Substring {
        var s = self
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return s
    }
}
