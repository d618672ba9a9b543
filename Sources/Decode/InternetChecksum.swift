import Wire

/// The Internet checksums (RFC 1071) of a decoded packet: its IPv4 header's and its TCP segment's or UDP datagram's,
/// as its receiver verifies them before taking it. A monitor that takes a segment its receiver drops can be shown
/// bytes the receiver never sees (an insertion: Ptacek and Newsham, 1998), and then miss the real ones as
/// retransmissions.
public enum InternetChecksum {
    /// What a packet's checksums say.
    public enum Verdict: UInt8, Sendable {
        /// Nothing to verify from the capture: cut by the snapshot length, a UDP datagram over IPv4 without a checksum
        /// (0), an IPv6 routing header with segments left (it moves the pseudo-header's destination), a transport
        /// other than TCP and UDP.
        case unverifiable
        /// Every checksum right.
        case valid
        /// Right, and the transport checksum is also the pseudo-header's sum that a sender offloading checksums leaves
        /// in the field (Linux's partial checksum): it tells nothing about whether the sender offloads.
        case ambiguous
        /// A checksum wrong, or an IPv4 total length of 0 (TSO on the capturing host, whose checksums are offloaded
        /// too; on a wire, a length no receiver takes): the receiver drops the packet.
        case invalid
    }

    /// The verdict on `packet`, decoded from `bytes`. `ipHeader`: verify an IPv4 header's own checksum too (not for
    /// a reassembled datagram, whose header reassembly rewrote). `ambiguity`: tell `ambiguous` from `valid` (false: a
    /// right checksum is `valid`, two folds fewer, for a caller to whom the two are the same). `captured`: the frame
    /// was captured whole (its wire length), so an IP length past its end is the packet's, not the snapshot's: the
    /// receiver drops it.
    public static func verdict(_ bytes: ByteView, packet: PacketView, ipHeader: Bool = true, ambiguity: Bool = true,
                               captured: Bool = true) -> Verdict {
        guard packet.transport == .tcp || packet.transport == .udp, let p = bytes.raw.baseAddress else { return .unverifiable }
        let ip = Int(packet.ipOffset), t = Int(packet.transportOffset), end = packet.payloadOffset &+ packet.payloadLength
        guard ip >= 0, t > ip, end >= t, end <= bytes.count else { return .unverifiable }
        // (`PacketDecoder` checked that the IP header is captured whole.)
        let ipLength = Int(UInt16(bigEndian: p.loadUnaligned(fromByteOffset: ip &+ (packet.ipVersion == 4 ? 2 : 4), as: UInt16.self)))
        let ipEnd = ip &+ ipLength &+ (packet.ipVersion == 4 ? 0 : 40)
        if ipEnd > bytes.count || packet.payloadLength != packet.wirePayloadLength { return captured ? .invalid : .unverifiable }
        let isTCP = packet.transport == .tcp
        if packet.ipVersion == 4 {
            guard ipLength != 0 else { return .invalid }
            if ipHeader && !headerIsValid(p + ip, length: Int(p.load(fromByteOffset: ip, as: UInt8.self) & 0x0F) &* 4) {
                return .invalid
            }
        } else if t != ip &+ 40 && movesDestination(p, ipv6At: ip, transportAt: t) {
            return .unverifiable
        }
        if !isTCP {
            // A UDP length past the IP packet's end: the receiver drops the datagram (the decoder took what there was).
            let length = Int(UInt16(bigEndian: p.loadUnaligned(fromByteOffset: t &+ 4, as: UInt16.self)))
            guard length == end &- t else { return .invalid }
            // Over IPv4, 0: sent without a checksum. Over IPv6 a checksum is required (RFC 8200 8.1).
            if p.loadUnaligned(fromByteOffset: t &+ 6, as: UInt16.self) == 0 { return packet.ipVersion == 4 ? .unverifiable : .invalid }
        }
        return transportVerdict(p, at: t, end: end, addresses: p + ip + (packet.ipVersion == 4 ? 12 : 8),
                                addressBytes: packet.ipVersion == 4 ? 8 : 32, ipProtocol: isTCP ? 6 : 17, ambiguity: ambiguity)
    }

    /// Whether the IPv6 extension headers between the header at `ip` and the transport at `t` hold a routing header
    /// with segments left, whose last segment, not the header's destination, is the pseudo-header's (RFC 8200 8.1).
    /// Other extension headers leave the pseudo-header as it is. (The decoder walked the chain before: lengths hold.)
    static func movesDestination(_ p: UnsafeRawPointer, ipv6At ip: Int, transportAt t: Int) -> Bool {
        var next = p.load(fromByteOffset: ip &+ 6, as: UInt8.self)
        var at = ip &+ 40
        while at &+ 8 <= t {
            let lengthField = Int(p.load(fromByteOffset: at &+ 1, as: UInt8.self))
            if next == 43 && p.load(fromByteOffset: at &+ 3, as: UInt8.self) != 0 { return true }
            let length = next == 44 ? 8 : next == 51 ? (lengthField &+ 2) &* 4 : (lengthField &+ 1) &* 8
            next = p.load(fromByteOffset: at, as: UInt8.self)
            at &+= length
        }
        return false
    }

    /// The verdict on an IPv4 TCP segment at fixed offsets, as the engine's one-pass path reads it: an IPv4 header
    /// without options at `ipAt`, the TCP header 20 bytes on, the packet ending at `ipEnd` (captured whole).
    @inlinable @inline(__always)
    public static func tcpIPv4Verdict(_ p: UnsafeRawPointer, ipAt ip: Int, ipEnd: Int) -> Verdict {
        guard headerIsValid(p + ip, length: 20) else { return .invalid }
        return transportVerdict(p, at: ip &+ 20, end: ipEnd, addresses: p + ip + 12, addressBytes: 8, ipProtocol: 6)
    }

    /// Whether `tcpIPv4Verdict` is `valid` or `ambiguous`, for a side whose checksums are verified (which of the two
    /// does not matter there: two folds fewer).
    @inlinable @inline(__always)
    public static func tcpIPv4IsRight(_ p: UnsafeRawPointer, ipAt ip: Int, ipEnd: Int) -> Bool {
        headerIsValid(p + ip, length: 20)
            && transportVerdict(p, at: ip &+ 20, end: ipEnd, addresses: p + ip + 12, addressBytes: 8, ipProtocol: 6, ambiguity: false) == .valid
    }

    /// The transport's verdict: the segment from `t` to `end`, under the pseudo-header of the `addressBytes` bytes of
    /// source and destination addresses at `addresses`.
    @inlinable @inline(__always)
    static func transportVerdict(_ p: UnsafeRawPointer, at t: Int, end: Int, addresses: UnsafeRawPointer, addressBytes: Int,
                                 ipProtocol: UInt8, ambiguity: Bool = true) -> Verdict {
        // The pseudo-header's protocol and length words, as 16-bit words in network order read natively, summed first
        // and the addresses onto them (`sum` takes the end-around carries: the words added to the addresses' sum
        // afterwards lost the carry out of 64 bits, and a right checksum was wrong for some address pairs).
        let protocolWord = UInt64(UInt16(ipProtocol).bigEndian)
        let lengthWord = UInt64(UInt16(truncatingIfNeeded: end &- t).bigEndian)
        let pseudo = sum(addresses, count: addressBytes, initial: protocolWord &+ lengthWord)
        guard sumsToAllOnes(sum(p + t, count: end &- t, initial: pseudo)) else { return .invalid }
        guard ambiguity else { return .valid }
        // Linux leaves the pseudo-header's sum (with the length; without it for a TSO segment) in an offloaded field.
        let field = UInt64(p.loadUnaligned(fromByteOffset: t &+ (ipProtocol == 6 ? 16 : 6), as: UInt16.self))
        return field == UInt64(fold(pseudo)) || field == UInt64(fold(sum(addresses, count: addressBytes, initial: protocolWord)))
            ? .ambiguous : .valid
    }

    /// Whether the IPv4 header of `length` bytes at `p` sums to all ones.
    @inlinable @inline(__always)
    static func headerIsValid(_ p: UnsafeRawPointer, length: Int) -> Bool { sumsToAllOnes(sum(p, count: length)) }

    /// Whether the unfolded sum `s` (not 0: every sum here holds a non-zero word) folds to all ones, the sum of a
    /// right checksum: a multiple of 0xFFFF, since 2^16 ≡ 1 modulo 0xFFFF (a multiplication, where folding took
    /// a dozen instructions).
    @inlinable @inline(__always)
    static func sumsToAllOnes(_ s: UInt64) -> Bool { s % 0xFFFF == 0 }

    /// `initial` plus the one's-complement sum of the `count` bytes at `p`, read as 16-bit words in the machine's own
    /// byte order (the sum is the same either way, byte-swapped: RFC 1071 2(B)), not folded. 64-bit words with
    /// end-around carries (an add and an add-with-carry each), 32 bytes a round into two sums (two carry chains).
    @inlinable @inline(__always)
    public static func sum(_ p: UnsafeRawPointer, count: Int, initial: UInt64 = 0) -> UInt64 {
        @inline(__always) func add(_ total: inout UInt64, _ word: UInt64) {
            let (s, carried) = total.addingReportingOverflow(word)
            total = s &+ (carried ? 1 : 0)   // the end-around carry
        }
        @inline(__always) func word(_ at: Int) -> UInt64 { p.loadUnaligned(fromByteOffset: at, as: UInt64.self) }
        var total = initial, other: UInt64 = 0
        var i = 0
        while i &+ 32 <= count {
            add(&total, word(i)); add(&other, word(i &+ 8)); add(&total, word(i &+ 16)); add(&other, word(i &+ 24))
            i &+= 32
        }
        add(&total, other)
        while i &+ 8 <= count { add(&total, word(i)); i &+= 8 }
        if i &+ 4 <= count { add(&total, UInt64(p.loadUnaligned(fromByteOffset: i, as: UInt32.self))); i &+= 4 }
        if i &+ 2 <= count { add(&total, UInt64(p.loadUnaligned(fromByteOffset: i, as: UInt16.self))); i &+= 2 }
        // An odd last byte is the high byte of a word whose low byte is 0.
        if i < count { add(&total, UInt64(UInt16(littleEndian: UInt16(p.load(fromByteOffset: i, as: UInt8.self))))) }
        return total
    }

    /// `s` folded to 16 bits with end-around carries.
    @inlinable @inline(__always)
    public static func fold(_ s: UInt64) -> UInt16 {
        var x = (s & 0xFFFF_FFFF) &+ (s >> 32)
        x = (x & 0xFFFF) &+ (x >> 16)
        x = (x & 0xFFFF) &+ (x >> 16)
        x = (x & 0xFFFF) &+ (x >> 16)
        return UInt16(truncatingIfNeeded: x)
    }
}
