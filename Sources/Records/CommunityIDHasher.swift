import COpenSSL
import Wire

/// Community ID v1 of flows when something first writes it, without allocating: stack buffers and OpenSSL's SHA-1
/// called directly (`zw_sha1`; the plain `CommunityID.compute` builds five arrays and goes through EVP).
public enum CommunityIDHasher {
    /// The Community ID text ("1:" and base64) of the flow between `a` and `b`, in either order.
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
            // (OpenSSL's one-shot SHA-1 if its SHA1_Init failed: the same digest.)
            if zw_sha1(input, n, digest) != 1 { _ = SHA1(input, n, digest) }
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

