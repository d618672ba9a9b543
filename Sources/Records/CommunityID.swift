import COpenSSL
import Wire

/// Community ID flow hashing, version 1 (corelight/community-id-spec):
/// base64(SHA-1(seed ‖ saddr ‖ daddr ‖ proto ‖ 0 ‖ sport ‖ dport)) with "1:" in front,
/// endpoints ordered so that the smaller (address, port) comes first.
public enum CommunityID {
    /// Computes the Community ID of a flow. For ICMP, pass type/code as ports (the spec's mapping is the caller's).
    public static func compute(source: Endpoint, destination: Endpoint, ipProtocol: UInt8, seed: UInt16 = 0) -> String {
        var a = source, b = destination
        let sa = a.ip.networkBytes, sb = b.ip.networkBytes
        var aBytes = sa, bBytes = sb
        if !(lexicographicallyLess(sa, sb) || (sa == sb && a.port <= b.port)) {
            swap(&a, &b); swap(&aBytes, &bBytes)
        }
        var input: [UInt8] = []
        input.reserveCapacity(2 + 32 + 6 + 2)
        input.append(UInt8(seed >> 8)); input.append(UInt8(seed & 0xFF))
        input.append(contentsOf: aBytes); input.append(contentsOf: bBytes)
        input.append(ipProtocol); input.append(0)
        if ipProtocol == 6 || ipProtocol == 17 || ipProtocol == 132 || ipProtocol == 1 || ipProtocol == 58 {
            input.append(UInt8(a.port >> 8)); input.append(UInt8(a.port & 0xFF))
            input.append(UInt8(b.port >> 8)); input.append(UInt8(b.port & 0xFF))
        }
        var digest = [UInt8](repeating: 0, count: 20)
        input.withUnsafeBufferPointer { inp in
            digest.withUnsafeMutableBufferPointer { out in
                // OpenSSL 3's one-shot SHA1() looks the algorithm up by name on every call (EVP_Q_digest: about
                // 5,000 instructions, more than the hash); with the implementation fetched once it is ~1,500.
                if let md = sha1 {
                    _ = EVP_Digest(inp.baseAddress, inp.count, out.baseAddress, nil, md, nil)
                } else {
                    _ = SHA1(inp.baseAddress, inp.count, out.baseAddress)
                }
            }
        }
        return base64(digest, prefix: "1:")
    }

    /// SHA-1 fetched once from the default provider (nil if unavailable: fall back to the one-shot call).
    nonisolated(unsafe) private static let sha1: OpaquePointer? = EVP_MD_fetch(nil, "SHA1", nil)

    private static func lexicographicallyLess(_ x: [UInt8], _ y: [UInt8]) -> Bool {
        for (p, q) in zip(x, y) where p != q { return p < q }
        return x.count < y.count
    }

    /// Standard base64 with padding, after `prefix` (one buffer: flows are created at packet rate in a flood).
    static func base64(_ bytes: [UInt8], prefix: StaticString = "") -> String {
        let table: StaticString = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        return table.withUTF8Buffer { t in
            var out: [UInt8] = []
            out.reserveCapacity(prefix.utf8CodeUnitCount + (bytes.count + 2) / 3 * 4)
            prefix.withUTF8Buffer { out.append(contentsOf: $0) }
            var i = 0
            while i + 3 <= bytes.count {
                let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
                out.append(t[Int(n >> 18)]); out.append(t[Int(n >> 12 & 63)])
                out.append(t[Int(n >> 6 & 63)]); out.append(t[Int(n & 63)])
                i += 3
            }
            let rest = bytes.count - i
            if rest == 1 {
                let n = UInt32(bytes[i]) << 16
                out.append(t[Int(n >> 18)]); out.append(t[Int(n >> 12 & 63)])
                out.append(UInt8(ascii: "=")); out.append(UInt8(ascii: "="))
            } else if rest == 2 {
                let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8
                out.append(t[Int(n >> 18)]); out.append(t[Int(n >> 12 & 63)])
                out.append(t[Int(n >> 6 & 63)]); out.append(UInt8(ascii: "="))
            }
            return String(decoding: out, as: UTF8.self)
        }
    }
}

/// Community ID v1 of flows when something first writes it, without allocating: stack buffers and OpenSSL's SHA-1
/// called directly (`zw_sha1`; the plain `CommunityID.compute` builds five arrays and goes through EVP).
public final class CommunityIDHasher {
    /// Creates a hasher.
    public init() {}

    /// The Community ID text ("1:" and base64) of the flow between `a` and `b`, in either order.
    public func text(_ a: Endpoint, _ b: Endpoint, ipProtocol: UInt8, seed: UInt16 = 0) -> InlineText {
        Self.text(a, b, ipProtocol: ipProtocol, seed: seed)
    }

    /// `text(_:_:ipProtocol:seed:)` without an instance (it keeps no state).
    public static func text(_ a: Endpoint, _ b: Endpoint, ipProtocol: UInt8, seed: UInt16 = 0) -> InlineText {
        // The spec orders endpoints by address bytes, then port; IPAddress's order is the same (IPv4 is mapped).
        let aFirst = a.ip < b.ip || (a.ip == b.ip && a.port <= b.port)
        let first = aFirst ? a : b, second = aFirst ? b : a
        // input at 0..<48, digest at 48..<68, text ("1:" and 28 base64 characters) at 68..<98.
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 98) { buffer -> InlineText in
            let input = buffer.baseAddress!
            var n = 0
            func put(_ byte: UInt8) { input[n] = byte; n += 1 }
            func put(_ ip: IPAddress) {
                if ip.isIPv4 { for shift in stride(from: 24, through: 0, by: -8) { put(UInt8(truncatingIfNeeded: ip.v4 >> UInt32(shift))) } }
                else {
                    for shift in stride(from: 56, through: 0, by: -8) { put(UInt8(truncatingIfNeeded: ip.high >> UInt64(shift))) }
                    for shift in stride(from: 56, through: 0, by: -8) { put(UInt8(truncatingIfNeeded: ip.low >> UInt64(shift))) }
                }
            }
            put(UInt8(seed >> 8)); put(UInt8(seed & 0xFF))
            put(first.ip); put(second.ip)
            put(ipProtocol); put(0)
            if ipProtocol == 6 || ipProtocol == 17 || ipProtocol == 132 || ipProtocol == 1 || ipProtocol == 58 {
                put(UInt8(first.port >> 8)); put(UInt8(first.port & 0xFF))
                put(UInt8(second.port >> 8)); put(UInt8(second.port & 0xFF))
            }
            let digest = input + 48
            guard zw_sha1(input, n, digest) == 1 else {
                return InlineText(CommunityID.compute(source: a, destination: b, ipProtocol: ipProtocol, seed: seed))
            }
            // "1:" + base64 of 20 bytes (27 characters and one "=").
            let text = input + 68
            let table: StaticString = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
            return table.withUTF8Buffer { t in
                text[0] = UInt8(ascii: "1"); text[1] = UInt8(ascii: ":")
                var o = 2
                for i in stride(from: 0, to: 18, by: 3) {
                    let v = UInt32(digest[i]) << 16 | UInt32(digest[i + 1]) << 8 | UInt32(digest[i + 2])
                    text[o] = t[Int(v >> 18)]; text[o + 1] = t[Int(v >> 12 & 63)]
                    text[o + 2] = t[Int(v >> 6 & 63)]; text[o + 3] = t[Int(v & 63)]
                    o += 4
                }
                let v = UInt32(digest[18]) << 16 | UInt32(digest[19]) << 8
                text[o] = t[Int(v >> 18)]; text[o + 1] = t[Int(v >> 12 & 63)]; text[o + 2] = t[Int(v >> 6 & 63)]
                text[o + 3] = UInt8(ascii: "=")
                return InlineText(bytes: UnsafeRawBufferPointer(start: text, count: o + 4))
            }
        }
    }
}

