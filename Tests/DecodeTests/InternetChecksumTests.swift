import Testing
import Wire
@testable import Decode

/// `InternetChecksum` against a plain RFC 1071 sum written out here (big-endian 16-bit words, one at a time), over
/// packets built by `PacketBytes` with their checksums filled in by the same plain sum.
@Suite struct InternetChecksumTests {
    /// The plain one's-complement sum of `bytes` (network order), folded.
    static func plainSum(_ bytes: ArraySlice<UInt8>, initial: UInt32 = 0) -> UInt16 {
        var s = initial
        var i = bytes.startIndex
        while i < bytes.endIndex {
            let high = UInt32(bytes[i]) << 8, low = i + 1 < bytes.endIndex ? UInt32(bytes[i + 1]) : 0
            s += high | low
            i += 2
        }
        while s >> 16 != 0 { s = (s & 0xFFFF) + (s >> 16) }
        return UInt16(s)
    }

    /// `frame` (Ethernet, IPv4 or IPv6, TCP or UDP, as `PacketBytes` builds it) with its IPv4 header checksum and its
    /// transport checksum computed. `partial`: the transport field holds the pseudo-header's sum instead, as Linux
    /// leaves it for a card that offloads checksums.
    /// `transportAt`: where the transport header begins (after IPv6 extension headers; `proto` its protocol).
    static func withChecksums(_ frame: [UInt8], partial: Bool = false, transportAt: Int? = nil, proto transportProtocol: UInt8? = nil) -> [UInt8] {
        var f = frame
        let ip = 14, v4 = f[ip] >> 4 == 4
        let ipHeader = v4 ? Int(f[ip] & 0x0F) * 4 : 40
        let proto = transportProtocol ?? (v4 ? f[ip + 9] : f[ip + 6])
        let t = transportAt ?? ip + ipHeader
        let end = v4 ? ip + (Int(f[ip + 2]) << 8 | Int(f[ip + 3])) : ip + 40 + (Int(f[ip + 4]) << 8 | Int(f[ip + 5]))
        if v4 {
            f[ip + 10] = 0; f[ip + 11] = 0
            let c = ~plainSum(f[ip ..< t])
            f[ip + 10] = UInt8(c >> 8); f[ip + 11] = UInt8(c & 0xFF)
        }
        let field = t + (proto == 6 ? 16 : 6)
        f[field] = 0; f[field + 1] = 0
        let addresses = v4 ? f[ip + 12 ..< ip + 20] : f[ip + 8 ..< ip + 40]
        let pseudo = UInt32(plainSum(addresses)) + UInt32(proto) + UInt32(end - t)
        var c = partial ? plainSum([], initial: pseudo) : ~plainSum(f[t ..< end], initial: pseudo)
        if !partial && proto == 17 && c == 0 { c = 0xFFFF }   // UDP sends a computed 0 as all ones
        f[field] = UInt8(c >> 8); f[field + 1] = UInt8(c & 0xFF)
        return f
    }

    static func tcpv4(payload: Int) -> [UInt8] {
        PacketBytes.ethernet(type: 0x0800) + PacketBytes.ipv4(payloadLength: 20 + payload) + PacketBytes.tcp()
            + (0 ..< payload).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
    }

    static func udpv4(payload: Int) -> [UInt8] {
        PacketBytes.ethernet(type: 0x0800) + PacketBytes.ipv4(proto: 17, payloadLength: 8 + payload) + PacketBytes.udp(payloadLength: payload)
            + (0 ..< payload).map { UInt8(truncatingIfNeeded: $0 &* 91 &+ 3) }
    }

    static func tcpv6(payload: Int) -> [UInt8] {
        PacketBytes.ethernet(type: 0x86DD) + PacketBytes.ipv6(next: 6, payloadLength: 20 + payload) + PacketBytes.tcp()
            + (0 ..< payload).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 200) }
    }

    static func udpv6(payload: Int) -> [UInt8] {
        PacketBytes.ethernet(type: 0x86DD) + PacketBytes.ipv6(next: 17, payloadLength: 8 + payload) + PacketBytes.udp(payloadLength: payload)
            + (0 ..< payload).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 1) }
    }

    static func verdict(_ frame: [UInt8], ipHeader: Bool = true) -> InternetChecksum.Verdict {
        ByteView.with(frame) { bytes in
            guard let packet = try? PacketDecoder.decode(bytes, linkType: 1) else { return .unverifiable }
            return InternetChecksum.verdict(bytes, packet: packet, ipHeader: ipHeader)
        }
    }

    /// A packet of `shape` with `payload` bytes.
    static func packet(_ shape: String, payload: Int) -> [UInt8] {
        switch shape {
        case "tcpv4": tcpv4(payload: payload)
        case "udpv4": udpv4(payload: payload)
        case "tcpv6": tcpv6(payload: payload)
        default: udpv6(payload: payload)
        }
    }

    /// Every payload length from 0 to 70 (odd ones end on half a word), each shape: right checksums verify, and a
    /// change of any one byte the checksums cover (the IPv4 header, the transport header and payload) is wrong.
    @Test(arguments: ["tcpv4", "udpv4", "tcpv6", "udpv6"])
    func rightChecksumsVerifyAndAnyChangedByteIsWrong(name: String) {
        for payload in 0 ... 70 {
            let f = Self.withChecksums(Self.packet(name, payload: payload))
            let v = Self.verdict(f)
            #expect(v == .valid || v == .ambiguous, "\(name) \(payload): \(v)")
            // From the IP header on (IPv6's first 8 bytes are not covered, but for its payload length, which the
            // decoder reads; its addresses are, through the pseudo-header).
            let v4 = f[14] >> 4 == 4
            // Bytes that say what the packet is (version and header length, total length, fragment, protocol): changed, the
            // packet may no longer be a verifiable TCP or UDP one; it is never right.
            let structural: Set<Int> = v4 ? [14, 16, 17, 20, 21, 23] : [18, 19, 20]
            // (IPv6's hop limit, byte 21, and its first four bytes are not covered.)
            for i in (v4 ? 14 : 18) ..< f.count where v4 || i != 21 {
                var g = f
                g[i] ^= 0x01
                let w = Self.verdict(g)
                #expect(w == .invalid || w == .unverifiable && structural.contains(i), "\(name) \(payload): byte \(i) changed, \(w)")
            }
        }
    }

    /// The sum's word loads, at every alignment and length, against the plain sum.
    @Test func theSumMatchesThePlainSumAtEveryAlignment() {
        let bytes = (0 ..< 96).map { UInt8(truncatingIfNeeded: $0 &* 151 &+ 77) }
        bytes.withUnsafeBytes { raw in
            for start in 0 ..< 8 {
                for count in 0 ... 80 {
                    let ours = UInt16(bigEndian: InternetChecksum.fold(InternetChecksum.sum(raw.baseAddress! + start, count: count)))   // words read natively
                    let plain = Self.plainSum(bytes[start ..< start + count])
                    // 0 and 0xFFFF are the same number (one's complement's two zeros); ours folds a non-zero sum to 0xFFFF.
                    #expect(ours == plain || (ours == 0xFFFF && plain == 0) || (ours == 0 && plain == 0xFFFF),
                            "start \(start), count \(count): \(ours) against \(plain)")
                }
            }
        }
    }

    /// What a capture on a host offloading checksums holds (the pseudo-header's sum in the field) is wrong; what the
    /// capture cannot show is unverifiable.
    @Test func offloadedPartialSumsAreWrongAndWhatCannotBeVerifiedIsSaid() {
        #expect(Self.verdict(Self.withChecksums(Self.tcpv4(payload: 12), partial: true)) == .invalid)
        #expect(Self.verdict(Self.withChecksums(Self.udpv4(payload: 9), partial: true)) == .invalid)
        // Cut by the snapshot length: unverifiable; the same bytes as a whole frame (its IP length past its end, which
        // no receiver takes): wrong. TCP and UDP (whose own length may still fit).
        for whole in [Self.withChecksums(Self.tcpv4(payload: 12)), Self.withChecksums(Self.udpv6(payload: 12))] {
            let cut = Array(whole.prefix(whole.count - 3))
            for captured in [false, true] {
                let v = ByteView.with(cut) { b in InternetChecksum.verdict(b, packet: try! PacketDecoder.decode(b, linkType: 1)!, captured: captured) }
                #expect(v == (captured ? .invalid : .unverifiable))
            }
        }
        // A UDP datagram whose IPv6 payload length claims a byte more than the frame holds (its UDP length fits).
        var longer = Self.withChecksums(Self.udpv6(payload: 12)); longer[19] += 1
        #expect(Self.verdict(longer) == .invalid)
        // UDP without a checksum: allowed over IPv4, not over IPv6 (RFC 8200 8.1).
        var v4 = Self.withChecksums(Self.udpv4(payload: 5)); v4[40] = 0; v4[41] = 0
        #expect(Self.verdict(v4) == .unverifiable)
        var v6 = Self.withChecksums(Self.udpv6(payload: 5)); v6[60] = 0; v6[61] = 0
        #expect(Self.verdict(v6) == .invalid)
        // A UDP length past the packet: its receiver drops it.
        var long = Self.withChecksums(Self.udpv4(payload: 5)); long[39] += 4
        #expect(Self.verdict(long) == .invalid)
        // IPv4 total length 0 (TSO on the capturing host; on a wire no receiver takes it).
        var tso = Self.withChecksums(Self.tcpv4(payload: 12)); tso[16] = 0; tso[17] = 0
        #expect(Self.verdict(tso) == .invalid)
        // IPv6 extension headers before TCP: destination options leave the pseudo-header as it is (verified, right
        // and wrong); a routing header with segments left moves its destination (unverifiable), one with none not.
        for (next, header, verifiable) in [(UInt8(60), [UInt8]([6, 0, 1, 4, 0, 0, 0, 0]), true),
                                           (43, [6, 0, 4, 1, 0, 0, 0, 0], false), (43, [6, 0, 4, 0, 0, 0, 0, 0], true)] {
            let ext = PacketBytes.ethernet(type: 0x86DD) + PacketBytes.ipv6(next: next, payloadLength: 8 + 20 + 4) + header
                + PacketBytes.tcp() + [1, 2, 3, 4]
            let summed = Self.withChecksums(ext, transportAt: 62, proto: 6)
            var wrong = summed; wrong[summed.count - 1] ^= 0x01
            #expect(Self.verdict(summed) == (verifiable ? .valid : .unverifiable), "next header \(next)")
            #expect(Self.verdict(wrong) == (verifiable ? .invalid : .unverifiable), "next header \(next)")
        }
        // A reassembled datagram's IPv4 header is not verified when asked not to.
        var header = Self.withChecksums(Self.tcpv4(payload: 12)); header[24] ^= 0x10
        #expect(Self.verdict(header) == .invalid)
        #expect(Self.verdict(header, ipHeader: false) != .invalid)
    }

    /// An IPv4 TCP packet with 2 payload bytes whose right checksum is `field`, where its pseudo-header (with the
    /// length word) sums to `pseudo`: the last payload word makes the segment's own words sum to -(pseudo + field).
    static func tcpv4(checksum field: UInt16, pseudo: UInt16) -> [UInt8] {
        var f = tcpv4(payload: 2)
        let end = f.count
        let target = plainSum([], initial: UInt32(pseudo) + UInt32(field))
        let rest = plainSum(f[34 ..< end - 2])
        let last = plainSum([], initial: UInt32(~target) + UInt32(~rest))
        f[end - 2] = UInt8(last >> 8); f[end - 1] = UInt8(last & 0xFF)
        return withChecksums(f)
    }

    /// A right checksum that equals the pseudo-header's sum is `ambiguous`: an offloading sender could have left it.
    /// Both forms: with the length word, and without it (a TSO segment's).
    @Test func aRightChecksumEqualToThePseudoHeaderSumIsAmbiguous() {
        let f = Self.tcpv4(payload: 2)
        let short = Self.plainSum([], initial: UInt32(Self.plainSum(f[26 ..< 34])) + 6)
        let pseudo = Self.plainSum([], initial: UInt32(short) + UInt32(f.count - 34))
        for field in [pseudo, short] {
            let g = Self.tcpv4(checksum: field, pseudo: pseudo)
            #expect(UInt16(g[50]) << 8 | UInt16(g[51]) == field)
            #expect(Self.verdict(g) == .ambiguous)
        }
        #expect(Self.verdict(Self.withChecksums(f)) == .valid)
    }

    /// Pseudo-header sums near 2^64 (all-ones IPv6 addresses; an IPv4 broadcast from an x.y.255.255 host): the
    /// carry out of the addresses' sum is kept, and a right checksum is right.
    @Test func addressesWhoseSumCarriesVerify() {
        var v6 = Self.udpv6(payload: 9)
        for i in 22 ..< 54 { v6[i] = 0xFF }
        #expect(Self.verdict(Self.withChecksums(v6)) == .valid)
        var tcp6 = Self.tcpv6(payload: 5)
        for i in 22 ..< 54 { tcp6[i] = 0xFF }
        #expect(Self.verdict(Self.withChecksums(tcp6)) == .valid)
        let broadcast = PacketBytes.ethernet(type: 0x0800)
            + PacketBytes.ipv4(source: [172, 16, 255, 255], destination: [255, 255, 255, 255], proto: 17, payloadLength: 8 + 80)
            + PacketBytes.udp(payloadLength: 80) + [UInt8](repeating: 0x5A, count: 80)
        #expect(Self.verdict(Self.withChecksums(broadcast)) == .valid)
    }

    /// The one-pass path's verdict equals the general one for IPv4 TCP.
    @Test func theOnePassVerdictEqualsTheGeneralOne() {
        for payload in 0 ... 40 {
            for partial in [false, true] {
                let right = Self.withChecksums(Self.tcpv4(payload: payload), partial: partial)
                // Nothing changed, the IPv4 header's checksum, the TCP header, the payload's last byte.
                for corrupt in [-1, 24, 40, right.count - 1] {
                    var f = right
                    if corrupt >= 0 { f[corrupt] ^= 0x80 }
                    let general = Self.verdict(f)
                    let onePass = f.withUnsafeBytes { InternetChecksum.tcpIPv4Verdict($0.baseAddress!, ipAt: 14, ipEnd: f.count) }
                    let isRight = f.withUnsafeBytes { InternetChecksum.tcpIPv4IsRight($0.baseAddress!, ipAt: 14, ipEnd: f.count) }
                    #expect(general == onePass, "payload \(payload), partial \(partial), corrupt \(corrupt)")
                    #expect(isRight == (general == .valid || general == .ambiguous), "payload \(payload), partial \(partial), corrupt \(corrupt)")
                    if !partial { #expect((general == .invalid) == (corrupt >= 0)) }
                }
            }
        }
    }
}
