import Wire

/// Decodes link, IP and transport headers in place.
///
/// Link layers: Ethernet II with 802.1Q/802.1ad tags (up to 4), Linux SLL/SLL2, raw IP, BSD null/loop.
/// IPv4 with options, IPv6 with extension headers skipped; a fragment is an error (`ipFragment` reads it for reassembly).
/// TCP and UDP; other IP protocols pass through with no ports. Non-IP frames (ARP, LLDP) give `nil`.
/// A mirrored or overlay-tunnelled frame (ERSPAN and Ethernet over GRE, VXLAN, Geneve) is decoded in its packet's
/// place, once (`PacketView.mirrorsRemoved`).
public enum PacketDecoder {
    /// Link-layer type numbers accepted (the `LinkType` raw values of the Capture module).
    public static let ethernet: Int32 = 1, null: Int32 = 0, rawLegacy: Int32 = 12, raw: Int32 = 101, loop: Int32 = 108
    public static let linuxSLL: Int32 = 113, ipv4: Int32 = 228, ipv6: Int32 = 229, linuxSLL2: Int32 = 276

    /// Decodes one packet; `nil` when it carries no IP (not an error).
    @inlinable
    public static func decode(_ bytes: ByteView, linkType: Int32) throws(DecodeError) -> PacketView? {
        if linkType == ethernet, let view = decodeCommonEthernet(bytes) { return view }
        return try decodeAnyLink(bytes, linkType: linkType)
    }

    /// The common case in one pass: untagged Ethernet II, IPv4 without options, not a fragment, TCP, UDP (not to an
    /// overlay tunnel's port: `isOverlayPort`) or ICMP, headers complete and lengths consistent. One bounds check up
    /// front, then unchecked loads (this runs on every packet: the general path costs several times more). `nil`
    /// means "not this shape": the general path then decides, and reports any error, so the two paths cannot disagree
    /// on a packet they both take.
    @inlinable
    static func decodeCommonEthernet(_ bytes: ByteView) -> PacketView? {
        let n = bytes.count
        // Ethernet (14) + IPv4 without options (20) + a UDP header (8) at least.
        guard n >= 42, let p = bytes.raw.baseAddress else { return nil }
        @inline(__always) func u16(_ o: Int) -> UInt16 { UInt16(bigEndian: p.loadUnaligned(fromByteOffset: o, as: UInt16.self)) }
        @inline(__always) func u32(_ o: Int) -> UInt32 { UInt32(bigEndian: p.loadUnaligned(fromByteOffset: o, as: UInt32.self)) }
        guard u16(12) == 0x0800, p.load(fromByteOffset: 14, as: UInt8.self) == 0x45,
              u16(20) & 0x3FFF == 0 else { return nil }
        let totalLength = Int(u16(16))
        guard totalLength >= 20 else { return nil }
        let ipEnd = 14 + totalLength
        let capturedEnd = Swift.min(ipEnd, n)
        var view = PacketView()
        view.ipVersion = 4
        view.ipOffset = 14; view.transportOffset = 34
        view.ipProtocol = p.load(fromByteOffset: 23, as: UInt8.self)
        view.source = IPAddress(v4: u32(26))
        view.destination = IPAddress(v4: u32(30))
        switch view.ipProtocol {
        case 6:
            guard n >= 54, ipEnd >= 54 else { return nil }
            let dataOffset = Int(p.load(fromByteOffset: 46, as: UInt8.self) >> 4) * 4
            guard dataOffset >= 20, 34 + dataOffset <= Swift.min(ipEnd, n) else { return nil }
            view.transport = .tcp
            view.sourcePort = u16(34); view.destinationPort = u16(36)
            view.sequence = u32(38); view.acknowledgement = u32(42)
            view.tcpFlags = p.load(fromByteOffset: 47, as: UInt8.self)
            view.payloadOffset = 34 + dataOffset
        case 17:
            guard ipEnd >= 42 else { return nil }
            let length = Int(u16(38))
            guard length >= 8, !isOverlayPort(u16(36)) else { return nil }
            view.transport = .udp
            view.sourcePort = u16(34); view.destinationPort = u16(36)
            view.payloadOffset = 42
            let udpEnd = Swift.min(34 + length, ipEnd)
            view.wirePayloadLength = udpEnd - 42
            view.payloadLength = Swift.max(0, Swift.min(udpEnd, capturedEnd) - 42)
            return view
        case 1:
            // ICMP: `decodeTransport` reads nothing past the IPv4 header (ports and payload stay 0), so this shape is
            // decoded whole here. The general path took each of the plant's pings, ~300 instructions.
            view.transport = .icmp
            return view
        default: return nil
        }
        view.wirePayloadLength = ipEnd - view.payloadOffset
        view.payloadLength = Swift.max(0, capturedEnd - view.payloadOffset)
        return view
    }

    /// A frame of a shape the common readings do not take, read as an untagged Ethernet frame: an Ethernet frame
    /// with one 802.1Q tag (from 4 bytes on, keyed with the tag's VLAN ID, as `decode` keys it; a SPAN port copying a
    /// trunk keeps the tags), or a Linux cooked capture's (`tcpdump -i any`; SLL from 2 bytes on; SLL2 from 6 bytes
    /// on, its protocol then 6 bytes before the view). The view's offsets are an untagged frame's, its type at `typeAt`
    /// (12, or -6); nil for other frames. The one place that knows these shapes: the one-pass path, the flow hints
    /// and the workers' dispatch all read them through it.
    /// (Inlined, with raw loads: as a call it cost each packet the general path takes ~38 instructions.)
    @inlinable @inline(__always)
    public static func uncommonFrame(_ bytes: ByteView, linkType: Int32) -> (frame: ByteView, typeAt: Int, vlan: UInt16)? {
        guard let p = bytes.raw.baseAddress, bytes.count >= 20 else { return nil }
        let shift: Int, typeAt: Int, vlan: UInt16
        switch linkType {
        case ethernet:
            guard p.loadUnaligned(fromByteOffset: 12, as: UInt16.self) == UInt16(0x8100).bigEndian else { return nil }
            (shift, typeAt, vlan) = (4, 12, UInt16(bigEndian: p.loadUnaligned(fromByteOffset: 14, as: UInt16.self)) & 0x0FFF)
        case linuxSLL: (shift, typeAt, vlan) = (2, 12, 0)
        case linuxSLL2: (shift, typeAt, vlan) = (6, -6, 0)
        default: return nil
        }
        return (bytes.suffix(uncheckedFrom: shift), typeAt, vlan)
    }

    /// `commonEthernetFlowTuple` of a frame `uncommonFrame` reads, with the VLAN ID to key it with. Kept apart so that
    /// the untagged reading stays as it was. (Inlined into its one caller, the flow hint: as a call, ~67 instructions
    /// of a tagged or cooked packet.)
    @inlinable @inline(__always)
    public static func uncommonFlowTuple(_ bytes: ByteView, linkType: Int32)
        -> (source: UInt32, destination: UInt32, sourcePort: UInt16, destinationPort: UInt16, ipProtocol: UInt8, vlan: UInt16)? {
        guard let u = uncommonFrame(bytes, linkType: linkType), u.frame.count >= 38, let p = u.frame.raw.baseAddress,
              p.loadUnaligned(fromByteOffset: u.typeAt, as: UInt16.self) == UInt16(0x0800).bigEndian,
              let t = ipv4FlowTuple(p + 14, count: u.frame.count - 14), !isOverlay(t.ipProtocol, t.destinationPort) else { return nil }
        return (t.source, t.destination, t.sourcePort, t.destinationPort, t.ipProtocol, u.vlan)
    }

    /// The addresses, ports and IP protocol of an untagged Ethernet/IPv4 TCP, UDP or ICMP packet (ICMP: ports 0, as
    /// its flow key has them), read with the fewest loads: what a flow prefetch hint needs (a packet a few places
    /// ahead). Not a decoder: it checks only that the reads stay inside `bytes`; `decode` still decides about the
    /// packet when its turn comes. (ICMP: without a hint, every echo of the plant's pings waited on its flow's
    /// index entry and state, a few percent of the replay's time in `FlowTable.find`.)
    @inlinable @inline(__always)
    public static func commonEthernetFlowTuple(_ bytes: ByteView) -> (source: UInt32, destination: UInt32, sourcePort: UInt16, destinationPort: UInt16, ipProtocol: UInt8)? {
        guard let p = bytes.raw.baseAddress, bytes.count >= 38,
              p.loadUnaligned(fromByteOffset: 12, as: UInt16.self) == UInt16(0x0800).bigEndian else { return nil }
        guard let t = ipv4FlowTuple(p + 14, count: bytes.count - 14) else { return nil }
        return isOverlay(t.ipProtocol, t.destinationPort) ? nil : t
    }

    /// Whether a packet of this IP protocol to this port may be an overlay tunnel's: keyed by the frame it carries
    /// (`overlayFrame`), not by its own ports, so the flow tuples of the hints leave it out.
    @inlinable @inline(__always)
    static func isOverlay(_ ipProtocol: UInt8, _ destinationPort: UInt16) -> Bool { ipProtocol == 17 && isOverlayPort(destinationPort) }

    /// The flow tuple of the IPv4 packet of `count` (at least 24) bytes at `ip` (see `commonEthernetFlowTuple`).
    @inlinable @inline(__always)
    static func ipv4FlowTuple(_ ip: UnsafeRawPointer, count: Int)
        -> (source: UInt32, destination: UInt32, sourcePort: UInt16, destinationPort: UInt16, ipProtocol: UInt8)? {
        let ihl = Int(ip.load(as: UInt8.self) & 0x0F) * 4
        let ipProtocol = ip.load(fromByteOffset: 9, as: UInt8.self)
        if ipProtocol == 1 && ihl >= 20 {
            return (UInt32(bigEndian: ip.loadUnaligned(fromByteOffset: 12, as: UInt32.self)),
                    UInt32(bigEndian: ip.loadUnaligned(fromByteOffset: 16, as: UInt32.self)), 0, 0, 1)
        }
        guard ipProtocol == 6 || ipProtocol == 17, ihl >= 20, count >= ihl + 4 else { return nil }
        return (UInt32(bigEndian: ip.loadUnaligned(fromByteOffset: 12, as: UInt32.self)),
                UInt32(bigEndian: ip.loadUnaligned(fromByteOffset: 16, as: UInt32.self)),
                UInt16(bigEndian: ip.loadUnaligned(fromByteOffset: ihl, as: UInt16.self)),
                UInt16(bigEndian: ip.loadUnaligned(fromByteOffset: ihl + 2, as: UInt16.self)), ipProtocol)
    }

    /// Every link type and shape (the general path).
    @inlinable
    static func decodeAnyLink(_ bytes: ByteView, linkType: Int32) throws(DecodeError) -> PacketView? {
        var view = PacketView()
        let (etherType, offset) = try linkHeader(bytes, linkType: linkType, into: &view)
        switch etherType {
        case 0x0800: try decodeIPv4(bytes, at: offset, into: &view)
        case 0x86DD: try decodeIPv6(bytes, at: offset, into: &view)
        default: return nil
        }
        return view
    }

    /// The fragment of an IP datagram that `bytes` carries, nil for any other packet (`ipFragment(_:linkType:error:)`).
    @inlinable
    public static func ipFragment(_ bytes: ByteView, linkType: Int32) -> IPFragment? {
        do { _ = try decode(bytes, linkType: linkType) } catch { return ipFragment(bytes, linkType: linkType, error: error) }
        return nil
    }

    /// The fragment of an IPv4 or IPv6 datagram that `decode` stopped at with `error` (an `ipFragment`): the captured
    /// frame's own IP packet, or the IP packet of a frame a remote-SPAN or overlay packet carried (then the
    /// reassembled datagram is that frame's: `IPFragment.frameStart`); nil for any other error. A datagram whose length
    /// field is 0 (TSO on the capturing host, an IPv6 jumbogram) gives nil: its fragment has no length to place.
    @inlinable
    public static func ipFragment(_ bytes: ByteView, linkType: Int32, error: DecodeError) -> IPFragment? {
        guard error.failure == .ipFragment else { return nil }
        var view = PacketView()
        let frameStart = Int(error.frameStart), frameLinkType: Int32, etherType: UInt16, start: Int
        if frameStart == 0 {
            guard let (t, o) = try? linkHeader(bytes, linkType: linkType, into: &view) else { return nil }
            (frameLinkType, etherType, start) = (linkType, t, o)
        } else if error.frameIPType != 0 {
            (frameLinkType, etherType, start) = (error.frameIPType == 0x86DD ? ipv6 : ipv4, error.frameIPType, frameStart)
        } else {
            guard let (t, o) = try? ethernetHeader(bytes, at: frameStart, into: &view) else { return nil }
            (frameLinkType, etherType, start) = (ethernet, t, o)
        }
        // (What the decoder checked before it threw is tested again rather than trusted.)
        if error.ipVersion == 4 {
            guard etherType == 0x0800, start == error.offset - 6, bytes.has(20, at: start), bytes.u8(start) >> 4 == 4 else { return nil }
            let headerLength = Int(bytes.u8(start) & 0x0F) * 4
            let totalLength = Int(bytes.u16be(start + 2))
            let field = bytes.u16be(start + 6)
            guard headerLength >= 20, bytes.has(headerLength, at: start), totalLength >= headerLength,
                  field & 0x3FFF != 0 else { return nil }
            return IPFragment(frameStart: frameStart, frameLinkType: frameLinkType, version: 4, ipStart: start,
                              prefixEnd: start + headerLength, payloadStart: start + headerLength, lengthBefore: headerLength,
                              nextHeaderAt: -1, fieldAt: start + 6, payloadLength: totalLength - headerLength,
                              capturedPayload: Swift.max(0, Swift.min(bytes.count - start, totalLength) - headerLength),
                              offset: Int(field & 0x1FFF) * 8, moreFragments: field & 0x2000 != 0,
                              identification: UInt32(bytes.u16be(start + 4)), source: IPAddress(v4: bytes.u32be(start + 12)),
                              destination: IPAddress(v4: bytes.u32be(start + 16)), ipProtocol: bytes.u8(start + 9), vlan: view.vlan)
        }
        guard error.ipVersion == 6, etherType == 0x86DD, bytes.has(40, at: start), bytes.u8(start) >> 4 == 6 else { return nil }
        let payloadLength = Int(bytes.u16be(start + 4))
        // The headers before the fragment header (the unfragmentable part, kept in front of the datagram), and the byte
        // that named the fragment header.
        let fragmentHeader = error.offset
        var nextAt = start + 6, offset = start + 40
        while offset < fragmentHeader {
            guard bytes.has(2, at: offset) else { return nil }
            let next = bytes.u8(nextAt)
            guard let length = next == 44 ? 8 : ipv6ExtensionLength(next, lengthField: bytes.u8(offset + 1)) else { return nil }
            nextAt = offset; offset += length
        }
        let ipEnd = start + 40 + payloadLength, payloadStart = fragmentHeader + 8
        guard offset == fragmentHeader, bytes.u8(nextAt) == 44, payloadLength > 0, bytes.has(8, at: fragmentHeader),
              ipEnd >= payloadStart else { return nil }
        let field = bytes.u16be(fragmentHeader + 2)
        return IPFragment(frameStart: frameStart, frameLinkType: frameLinkType, version: 6, ipStart: start,
                          prefixEnd: fragmentHeader, payloadStart: payloadStart, lengthBefore: fragmentHeader - start - 40,
                          nextHeaderAt: nextAt, fieldAt: fragmentHeader + 2, payloadLength: ipEnd - payloadStart,
                          capturedPayload: Swift.max(0, Swift.min(bytes.count, ipEnd) - payloadStart),
                          offset: Int(field & 0xFFF8), moreFragments: field & 1 != 0, identification: bytes.u32be(fragmentHeader + 4),
                          source: IPAddress(high: bytes.u64be(start + 8), low: bytes.u64be(start + 16)),
                          destination: IPAddress(high: bytes.u64be(start + 24), low: bytes.u64be(start + 32)),
                          ipProtocol: bytes.u8(fragmentHeader), vlan: view.vlan)
    }

    /// The length of the IPv6 extension header `next` whose length field (its second byte) is `lengthField`: in 8-octet
    /// units past the first for hop-by-hop, routing, destination options, mobility, HIP and shim6, in 4-octet units
    /// past the first two for authentication; nil for any other header (not an extension header `decodeIPv6` skips).
    @inlinable @inline(__always)
    static func ipv6ExtensionLength(_ next: UInt8, lengthField: UInt8) -> Int? {
        switch next {
        case 0, 43, 60, 135, 139, 140: (Int(lengthField) + 1) * 8
        case 51: (Int(lengthField) + 2) * 4
        default: nil
        }
    }

    /// The link header of a frame of `linkType` (its VLAN tags into `view`): the type of what follows it, and where
    /// that starts.
    @inlinable
    static func linkHeader(_ bytes: ByteView, linkType: Int32, into view: inout PacketView) throws(DecodeError) -> (UInt16, Int) {
        var offset = 0
        var etherType: UInt16
        switch linkType {
        case ethernet:
            (etherType, offset) = try ethernetHeader(bytes, at: 0, into: &view)
        case linuxSLL:
            // packet type(2) ARPHRD(2) addr len(2) addr(8) protocol(2)
            guard bytes.count >= 16 else { throw DecodeError(.truncatedLinkHeader, at: 0) }
            etherType = bytes.u16be(14); offset = 16
        case linuxSLL2:
            // protocol(2) reserved(2) ifindex(4) ARPHRD(2) packet type(1) addr len(1) addr(8)
            guard bytes.count >= 20 else { throw DecodeError(.truncatedLinkHeader, at: 0) }
            etherType = bytes.u16be(0); offset = 20
        case raw, rawLegacy:
            guard bytes.count >= 1 else { throw DecodeError(.truncatedLinkHeader, at: 0) }
            etherType = bytes.u8(0) >> 4 == 6 ? 0x86DD : 0x0800
        case ipv4: etherType = 0x0800
        case ipv6: etherType = 0x86DD
        case null, loop:
            // 4-byte address family: host order for DLT_NULL (either endianness in practice), network order for LOOP.
            guard bytes.count >= 4 else { throw DecodeError(.truncatedLinkHeader, at: 0) }
            let le = bytes.u32le(0), be = bytes.u32be(0)
            let family = linkType == loop ? be : (le < 0x10000 ? le : be)
            switch family {
            case 2: etherType = 0x0800
            case 10, 24, 28, 30: etherType = 0x86DD   // AF_INET6 on Linux, OpenBSD/NetBSD, FreeBSD, macOS
            default: throw DecodeError(.unknownAddressFamily, at: 0)
            }
            offset = 4
        default:
            throw DecodeError(.truncatedLinkHeader, at: 0)
        }
        return (etherType, offset)
    }

    /// The Ethernet II header of the frame at `base` (its tags into `view`): the type after the tags and where its
    /// payload starts.
    @inlinable
    static func ethernetHeader(_ bytes: ByteView, at base: Int, into view: inout PacketView) throws(DecodeError) -> (UInt16, Int) {
        // dst(6) src(6) type(2) [tag: TPID(2)=0x8100/0x88a8/0x9100 TCI(2)]*
        guard bytes.has(14, at: base) else { throw DecodeError(.truncatedLinkHeader, at: base) }
        var etherType = bytes.u16be(base + 12), offset = base + 14
        while etherType == 0x8100 || etherType == 0x88A8 || etherType == 0x9100 {
            guard view.vlanTags < 4 else { throw DecodeError(.tooManyVLANTags, at: offset) }
            guard bytes.has(4, at: offset) else { throw DecodeError(.truncatedLinkHeader, at: offset) }
            view.vlan = bytes.u16be(offset) & 0x0FFF
            view.vlanTags &+= 1
            etherType = bytes.u16be(offset + 2); offset += 4
        }
        return (etherType, offset)
    }

    /// Where the mirrored Ethernet frame starts in a GRE packet at `start` (ending at `end`) that carries one, nil
    /// otherwise: remote SPAN, ERSPAN type I, II (0x88BE; type I has no sequence number and no ERSPAN header) and III
    /// (0x22EB, with its platform subheader when the O bit is set), and transparent Ethernet bridging (0x6558). A
    /// monitor fed by remote SPAN sees its traffic only so; other GRE (tunnelled IP) is left as GRE.
    @inlinable @inline(__always)   // two callers, as `overlayFrame`
    static func mirroredFrame(_ bytes: ByteView, at start: Int, end: Int) -> Int? {
        // GRE (RFC 2784, 2890): C R K S s Recur(1) flags version(1) protocol(2) [checksum, reserved(4)] [key(4)] [sequence(4)]
        guard bytes.has(4, at: start), let p = bytes.raw.baseAddress else { return nil }
        // Each load below is within what a `has` before it checked: unchecked, since the one-pass path and the flow
        // hints call this for every mirrored packet (with `ByteView`'s checked reads, out of line, ~230 instructions
        // a call of `commonMirroredFrame`).
        let flags = p.load(fromByteOffset: start, as: UInt8.self)
        guard p.load(fromByteOffset: start + 1, as: UInt8.self) & 0x07 == 0, flags & 0x40 == 0 else { return nil }   // version 0, no source routing
        var offset = start + 4
        if flags & 0x80 != 0 { offset += 4 }
        if flags & 0x20 != 0 { offset += 4 }
        let sequenced = flags & 0x10 != 0
        if sequenced { offset += 4 }
        switch UInt16(bigEndian: p.loadUnaligned(fromByteOffset: start + 2, as: UInt16.self)) {
        case 0x88BE: if sequenced { offset += 8 }
        case 0x22EB:
            guard bytes.has(12, at: offset) else { return nil }
            offset += p.load(fromByteOffset: offset + 11, as: UInt8.self) & 0x01 != 0 ? 20 : 12
        case 0x6558: break
        default: return nil
        }
        guard offset + 14 <= end, bytes.has(14, at: offset) else { return nil }
        return offset
    }

    /// The UDP destination ports of the overlay tunnels whose frames are decoded in the packet's place (IANA's):
    /// VXLAN (RFC 7348; AWS VPC Traffic Mirroring, Azure virtual network TAP, EVPN fabrics) and Geneve (RFC 8926;
    /// gateway load balancers, NSX). Linux's old VXLAN default, 8472, is not among them (an ordinary high port).
    public static let vxlanPort: UInt16 = 4789, genevePort: UInt16 = 6081

    /// Whether a UDP packet to `port` may carry an overlay tunnel's frame (`overlayFrame`): such packets are left to
    /// the general path by every one-pass reading.
    @inlinable @inline(__always)
    public static func isOverlayPort(_ port: UInt16) -> Bool { port == vxlanPort || port == genevePort }

    /// Where the frame an overlay tunnel's UDP payload at `start` (ending at `end`) carries starts, and what it is
    /// (`etherType` nil: an Ethernet frame; else the type of the IP packet that starts there); nil when it carries none.
    /// VXLAN: 8 bytes, the I flag set (the VNI valid), then an Ethernet frame. Geneve: version 0, not a control
    /// packet (O), 8 bytes and its options, then what its protocol type names (transparent Ethernet bridging, IPv4,
    /// IPv6).
    @inlinable @inline(__always)   // two callers; as a call, ~45 instructions of a mirrored packet's ~50 here
    static func overlayFrame(_ bytes: ByteView, at start: Int, end: Int, port: UInt16) -> (offset: Int, etherType: UInt16?)? {
        guard bytes.has(8, at: start), let p = bytes.raw.baseAddress else { return nil }
        // The 8 bytes read are the ones `has` checked (unchecked loads, as in `mirroredFrame`).
        let first = p.load(fromByteOffset: start, as: UInt8.self)
        let offset: Int, etherType: UInt16?
        if port == vxlanPort {
            guard first & 0x08 != 0 else { return nil }
            (offset, etherType) = (start + 8, nil)
        } else {
            guard first >> 6 == 0, p.load(fromByteOffset: start + 1, as: UInt8.self) & 0x80 == 0 else { return nil }
            offset = start + 8 + Int(first & 0x3F) * 4
            let type = UInt16(bigEndian: p.loadUnaligned(fromByteOffset: start + 2, as: UInt16.self))
            switch type {
            case 0x6558: etherType = nil
            case 0x0800, 0x86DD: etherType = type
            default: return nil
            }
        }
        let least = etherType == nil ? 14 : 20
        guard offset + least <= end, bytes.has(least, at: offset) else { return nil }
        return (offset, etherType)
    }

    /// Whether `bytes` may be a remote-SPAN or overlay packet of the common outer shape (`commonMirroredFrame`): a test
    /// of a few bytes that nearly every other packet fails.
    @inlinable @inline(__always)
    public static func mayBeRemoteSPAN(_ bytes: ByteView) -> Bool {
        guard bytes.count >= 52, let p = bytes.raw.baseAddress else { return false }
        guard p.loadUnaligned(fromByteOffset: 12, as: UInt16.self) == UInt16(0x0800).bigEndian else { return false }
        let ipProtocol = p.load(fromByteOffset: 23, as: UInt8.self)
        return ipProtocol == 47
            || ipProtocol == 17 && isOverlayPort(UInt16(bigEndian: p.loadUnaligned(fromByteOffset: 36, as: UInt16.self)))
    }

    /// Where the mirrored frame starts in a remote-SPAN packet of the common outer shape (untagged Ethernet II, IPv4
    /// without options and not a fragment, GRE: `mirroredFrame`), or the Ethernet frame in an overlay tunnel's of that
    /// shape (UDP: `overlayFrame`), nil otherwise: what the one-pass path and the flow hints read through, as `decode`
    /// does.
    @inlinable
    public static func commonMirroredFrame(_ bytes: ByteView) -> Int? {
        guard bytes.count >= 34 + 4 + 14, let p = bytes.raw.baseAddress else { return nil }
        // Unchecked loads within the 52 bytes checked.
        @inline(__always) func u16(_ o: Int) -> UInt16 { UInt16(bigEndian: p.loadUnaligned(fromByteOffset: o, as: UInt16.self)) }
        guard u16(12) == 0x0800, p.load(fromByteOffset: 14, as: UInt8.self) == 0x45, u16(20) & 0x3FFF == 0 else { return nil }
        let total = Int(u16(16))
        guard total >= 20 else { return nil }
        switch p.load(fromByteOffset: 23, as: UInt8.self) {
        case 47: return mirroredFrame(bytes, at: 34, end: 14 + total)
        case 17:
            // `decodeTransport`'s UDP tests: a length of at least 8, the datagram ending at the IP packet's end at most.
            let port = u16(36), length = Int(u16(38))
            guard isOverlayPort(port), length >= 8, total >= 28,
                  let frame = overlayFrame(bytes, at: 42, end: Swift.min(34 + length, 14 + total), port: port),
                  frame.etherType == nil else { return nil }
            return frame.offset
        default: return nil
        }
    }

    /// Decodes the mirrored frame at `start` (`mirroredFrame`, `overlayFrame`) in place of the GRE or tunnel packet
    /// `view` holds, when it is IP (true); once only (a mirror inside a mirror stays as it is). `ipType`: the frame is
    /// an IP packet of that type, without a link header (Geneve's IPv4 and IPv6).
    @inlinable
    static func decodeMirrored(_ bytes: ByteView, at start: Int, ipType: UInt16? = nil,
                               into view: inout PacketView) throws(DecodeError) -> Bool {
        guard view.mirrorsRemoved == 0 else { return false }
        var inner = PacketView()
        inner.mirrorsRemoved = 1
        let (etherType, offset) = if let t = ipType { (t, start) } else { try ethernetHeader(bytes, at: start, into: &inner) }
        do {
            switch etherType {
            case 0x0800: try decodeIPv4(bytes, at: offset, into: &inner)
            case 0x86DD: try decodeIPv6(bytes, at: offset, into: &inner)
            default: return false
            }
        } catch {
            // A fragment of the carried frame's IP packet: which frame it is, for reassembly (`ipFragment`).
            var e = error
            if e.failure == .ipFragment { e.frameStart = Int32(truncatingIfNeeded: start); e.frameIPType = ipType ?? 0 }
            throw e
        }
        view = inner
        return true
    }

    // IPv4 (RFC 791): ver/IHL(1) TOS(1) total length(2) id(2) flags/fragment offset(2) TTL(1) proto(1) csum(2) src(4) dst(4) options
    @inlinable
    static func decodeIPv4(_ bytes: ByteView, at start: Int, into view: inout PacketView) throws(DecodeError) {
        guard bytes.has(20, at: start) else { throw DecodeError(.truncatedIPv4Header, at: start) }
        let vihl = bytes.u8(start)
        guard vihl >> 4 == 4 else { throw DecodeError(.badIPv4Version, at: start) }
        let headerLength = Int(vihl & 0x0F) * 4
        guard headerLength >= 20 else { throw DecodeError(.badIPv4HeaderLength, at: start) }
        guard bytes.has(headerLength, at: start) else { throw DecodeError(.truncatedIPv4Header, at: start) }
        let totalLength = Int(bytes.u16be(start + 2))
        // A zero total length happens with TSO on the capturing host: trust the captured length then.
        let ipEnd: Int
        if totalLength == 0 { ipEnd = bytes.count }
        else {
            guard totalLength >= headerLength else { throw DecodeError(.badIPv4TotalLength, at: start + 2) }
            ipEnd = start + totalLength
        }
        view.ipVersion = 4
        view.ipOffset = Int32(truncatingIfNeeded: start)
        view.hasIPOptions = headerLength > 20
        view.ipProtocol = bytes.u8(start + 9)
        view.source = IPAddress(v4: bytes.u32be(start + 12))
        view.destination = IPAddress(v4: bytes.u32be(start + 16))
        let fragment = bytes.u16be(start + 6)
        if fragment & 0x3FFF != 0 {   // MF set or offset ≠ 0
            var e = DecodeError(.ipFragment, at: start + 6); e.ipVersion = 4
            throw e
        }
        try decodeTransport(bytes, at: start + headerLength, end: ipEnd, into: &view)
    }

    // IPv6 (RFC 8200): ver/class/flow(4) payload length(2) next header(1) hop limit(1) src(16) dst(16), then extension headers.
    @inlinable
    static func decodeIPv6(_ bytes: ByteView, at start: Int, into view: inout PacketView) throws(DecodeError) {
        guard bytes.has(40, at: start) else { throw DecodeError(.truncatedIPv6Header, at: start) }
        guard bytes.u8(start) >> 4 == 6 else { throw DecodeError(.badIPv4Version, at: start) }
        let payloadLength = Int(bytes.u16be(start + 4))
        var next = bytes.u8(start + 6)
        view.ipVersion = 6
        view.ipOffset = Int32(truncatingIfNeeded: start)
        view.source = IPAddress(high: bytes.u64be(start + 8), low: bytes.u64be(start + 16))
        view.destination = IPAddress(high: bytes.u64be(start + 24), low: bytes.u64be(start + 32))
        // Jumbograms (payload length 0) and TSO captures: trust the captured length.
        let ipEnd = payloadLength == 0 ? bytes.count : start + 40 + payloadLength
        var offset = start + 40
        var headers = 0
        while true {
            switch next {
            case 0, 43, 60, 135, 139, 140, 51:   // hop-by-hop, routing, destination options, mobility, HIP, shim6, authentication
                guard headers < 16, bytes.has(2, at: offset),
                      let length = ipv6ExtensionLength(next, lengthField: bytes.u8(offset + 1)) else {
                    throw DecodeError(.badIPv6ExtensionHeader, at: offset)
                }
                next = bytes.u8(offset)
                offset += length
                headers += 1
            case 44:   // fragment header
                guard bytes.has(8, at: offset) else { throw DecodeError(.badIPv6ExtensionHeader, at: offset) }
                if bytes.u16be(offset + 2) & 0xFFF9 != 0 { var e = DecodeError(.ipFragment, at: offset); e.ipVersion = 6; throw e }
                next = bytes.u8(offset); offset += 8; headers += 1
            default:
                view.ipProtocol = next
                try decodeTransport(bytes, at: offset, end: ipEnd, into: &view)
                return
            }
        }
    }

    // TCP (RFC 9293): sport(2) dport(2) seq(4) ack(4) offset/flags(2) window(2) csum(2) urg(2) options
    // UDP (RFC 768): sport(2) dport(2) length(2) csum(2)
    // A mirror's or overlay tunnel's frame (GRE, UDP to VXLAN's or Geneve's port) is decoded in the packet's place.
    @inlinable
    static func decodeTransport(_ bytes: ByteView, at start: Int, end wireEnd: Int, into view: inout PacketView) throws(DecodeError) {
        let capturedEnd = Swift.min(wireEnd, bytes.count)
        view.transportOffset = Int32(truncatingIfNeeded: start)
        switch view.ipProtocol {
        case 6:
            guard bytes.has(20, at: start), start + 20 <= wireEnd else { throw DecodeError(.truncatedTCPHeader, at: start) }
            let dataOffset = Int(bytes.u8(start + 12) >> 4) * 4
            guard dataOffset >= 20, start + dataOffset <= wireEnd else { throw DecodeError(.badTCPHeaderLength, at: start + 12) }
            guard bytes.has(dataOffset, at: start) else { throw DecodeError(.truncatedTCPHeader, at: start) }
            view.transport = .tcp
            view.sourcePort = bytes.u16be(start); view.destinationPort = bytes.u16be(start + 2)
            view.sequence = bytes.u32be(start + 4); view.acknowledgement = bytes.u32be(start + 8)
            view.tcpFlags = bytes.u8(start + 13)
            view.payloadOffset = start + dataOffset
            view.wirePayloadLength = wireEnd - view.payloadOffset
            view.payloadLength = Swift.max(0, capturedEnd - view.payloadOffset)
        case 17:
            guard bytes.has(8, at: start), start + 8 <= wireEnd else { throw DecodeError(.truncatedUDPHeader, at: start) }
            let length = Int(bytes.u16be(start + 4))
            guard length >= 8 else { throw DecodeError(.badUDPLength, at: start + 4) }
            view.transport = .udp
            view.sourcePort = bytes.u16be(start); view.destinationPort = bytes.u16be(start + 2)
            view.payloadOffset = start + 8
            let udpEnd = Swift.min(start + length, wireEnd)
            view.wirePayloadLength = udpEnd - view.payloadOffset
            view.payloadLength = Swift.max(0, Swift.min(udpEnd, capturedEnd) - view.payloadOffset)
            if isOverlayPort(view.destinationPort),
               let inner = overlayFrame(bytes, at: view.payloadOffset, end: udpEnd, port: view.destinationPort) {
                _ = try decodeMirrored(bytes, at: inner.offset, ipType: inner.etherType, into: &view)
            }
        case 1: view.transport = .icmp
        case 58: view.transport = .icmpv6
        case 47:
            // GRE: a remote-SPAN mirror's frame replaces the packet (plain GRE stays as it is).
            view.transport = .other
            if let inner = mirroredFrame(bytes, at: start, end: wireEnd) { _ = try decodeMirrored(bytes, at: inner, into: &view) }
        default: view.transport = .other
        }
    }
}
