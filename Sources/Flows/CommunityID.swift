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
