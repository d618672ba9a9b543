import Testing
import Wire
@testable import Decode   // `decodeCommonEthernet`

private let modbusRequest: [UInt8] = [0, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0, 10]

private func decode(_ bytes: [UInt8], linkType: Int32 = PacketDecoder.ethernet) throws(DecodeError) -> PacketView? {
    var result: PacketView?
    var failure: DecodeError?
    ByteView.with(bytes) { v in
        do { result = try PacketDecoder.decode(v, linkType: linkType) } catch { failure = error as? DecodeError }
    }
    if let f = failure { throw f }
    return result
}

@Test func ethernetIPv4TCP() throws {
    let p = try #require(try decode(PacketBytes.tcpPacket(payload: modbusRequest)))
    #expect(p.ipVersion == 4 && p.transport == .tcp)
    #expect(p.source == IPAddress("10.0.0.1") && p.destination == IPAddress("10.0.0.2"))
    #expect(p.sourcePort == 49152 && p.destinationPort == 502 && p.sequence == 1000)
    #expect(p.payloadOffset == 54 && p.payloadLength == 12 && p.wirePayloadLength == 12)
    #expect(p.vlan == 0)
}

@Test(arguments: [([UInt16](), UInt16(0), UInt8(0)), ([100], 100, 1), ([10, 200], 200, 2)])
func vlanTags(tags: [UInt16], expectedVLAN: UInt16, count: UInt8) throws {
    let p = try #require(try decode(PacketBytes.tcpPacket(payload: modbusRequest, tags: tags)))
    #expect(p.vlan == expectedVLAN && p.vlanTags == count && p.payloadLength == 12)
}

@Test func qinqWith8021adOuterTag() throws {
    let t = PacketBytes.tcp()
    let bytes = PacketBytes.ethernet(type: 0x0800, tags: [7, 42], outerTPID: 0x88A8) + PacketBytes.ipv4(payloadLength: 20) + t
    let p = try #require(try decode(bytes))
    #expect(p.vlan == 42 && p.vlanTags == 2)
}

@Test func linuxCookedV1AndV2() throws {
    let ipTCP = PacketBytes.ipv4(payloadLength: 20 + 12) + PacketBytes.tcp() + modbusRequest
    let sll: [UInt8] = [0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x00]
    let sll2: [UInt8] = [0x08, 0x00, 0, 0, 0, 0, 0, 1, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0]
    let a = try #require(try decode(sll + ipTCP, linkType: PacketDecoder.linuxSLL))
    let b = try #require(try decode(sll2 + ipTCP, linkType: PacketDecoder.linuxSLL2))
    #expect(a.payloadLength == 12 && b.payloadLength == 12 && a.destinationPort == 502 && b.destinationPort == 502)
}

@Test func rawAndNullLinkTypes() throws {
    let ipTCP = PacketBytes.ipv4(payloadLength: 20) + PacketBytes.tcp()
    #expect(try decode(ipTCP, linkType: PacketDecoder.raw)?.transport == .tcp)
    #expect(try decode(ipTCP, linkType: PacketDecoder.ipv4)?.transport == .tcp)
    #expect(try decode([2, 0, 0, 0] + ipTCP, linkType: PacketDecoder.null)?.transport == .tcp)   // little-endian AF_INET
    #expect(try decode([0, 0, 0, 2] + ipTCP, linkType: PacketDecoder.loop)?.transport == .tcp)
    let v6 = PacketBytes.ipv6(next: 6, payloadLength: 20) + PacketBytes.tcp()
    #expect(try decode(v6, linkType: PacketDecoder.raw)?.ipVersion == 6)
    #expect(try decode([10, 0, 0, 0] + v6, linkType: PacketDecoder.null)?.ipVersion == 6)
}

@Test func ipv6ExtensionHeadersAreSkipped() throws {
    // hop-by-hop (8 bytes) → destination options (16 bytes) → TCP
    let hop: [UInt8] = [60, 0, 1, 4, 0, 0, 0, 0]
    let dst: [UInt8] = [6, 1, 1, 12] + [UInt8](repeating: 0, count: 12)
    let tcp = PacketBytes.tcp() + modbusRequest
    let bytes = PacketBytes.ethernet(type: 0x86DD) + PacketBytes.ipv6(next: 0, payloadLength: hop.count + dst.count + tcp.count) + hop + dst + tcp
    let p = try #require(try decode(bytes))
    #expect(p.ipProtocol == 6 && p.transport == .tcp && p.destinationPort == 502 && p.payloadLength == 12)
    #expect(p.source == IPAddress("2001:db8::1"))
}

@Test func ipv4OptionsAreSkipped() throws {
    let t = PacketBytes.tcp()
    let bytes = PacketBytes.ethernet(type: 0x0800) + PacketBytes.ipv4(payloadLength: 20 + 12, options: [1, 1, 1, 0]) + t + modbusRequest
    let p = try #require(try decode(bytes))
    #expect(p.hasIPOptions && p.payloadLength == 12 && p.payloadOffset == 14 + 24 + 20)
}

@Test func udpPayload() throws {
    let payload: [UInt8] = [0x05, 0x64, 5, 0xC0, 1, 0, 0, 4, 0, 0]
    let bytes = PacketBytes.ethernet(type: 0x0800) + PacketBytes.ipv4(proto: 17, payloadLength: 8 + payload.count)
        + PacketBytes.udp(payloadLength: payload.count) + payload
    let p = try #require(try decode(bytes))
    #expect(p.transport == .udp && p.payloadLength == payload.count && p.destinationPort == 20000)
}

@Test func nonIPIsNotAnError() throws {
    #expect(try decode(PacketBytes.ethernet(type: 0x0806) + [UInt8](repeating: 0, count: 28)) == nil)
}

@Test func snaplenCutPayloadKeepsWireLength() throws {
    let full = PacketBytes.tcpPacket(payload: modbusRequest)
    let p = try #require(try decode(Array(full.prefix(full.count - 5))))
    #expect(p.payloadLength == 7 && p.wirePayloadLength == 12)
}

@Test(arguments: [
    (0, DecodeFailure.truncatedLinkHeader),
    (20, DecodeFailure.truncatedIPv4Header),
    (40, DecodeFailure.truncatedTCPHeader),
])
func truncatedHeaders(length: Int, expected: DecodeFailure) {
    let full = PacketBytes.tcpPacket(payload: modbusRequest)
    #expect { _ = try decode(Array(full.prefix(length))) } throws: { ($0 as? DecodeError)?.failure == expected }
}

@Test func fragmentsAreFlagged() {
    let bytes = PacketBytes.ethernet(type: 0x0800) + PacketBytes.ipv4(payloadLength: 20, fragment: 0x2000) + PacketBytes.tcp()
    #expect { _ = try decode(bytes) } throws: { ($0 as? DecodeError)?.failure == .ipFragment }
}

@Test func badTCPDataOffset() {
    var t = PacketBytes.tcp(); t[12] = 0x20   // 8 bytes: below the minimum
    let bytes = PacketBytes.ethernet(type: 0x0800) + PacketBytes.ipv4(payloadLength: 20) + t
    #expect { _ = try decode(bytes) } throws: { ($0 as? DecodeError)?.failure == .badTCPHeaderLength }
}

/// Every prefix of a valid packet decodes or fails cleanly: never traps.
@Test func everyPrefixIsSafe() {
    let full = PacketBytes.tcpPacket(payload: modbusRequest, tags: [5, 6])
    for n in 0...full.count { _ = try? decode(Array(full.prefix(n))) }
    let v6 = PacketBytes.ethernet(type: 0x86DD) + PacketBytes.ipv6(next: 0, payloadLength: 36) + [6, 0, 0, 0, 0, 0, 0, 0] + PacketBytes.tcp()
    for n in 0...v6.count { _ = try? decode(Array(v6.prefix(n))) }
}

/// The replay loop's prefetch hint reads a packet's flow tuple ahead with `commonEthernetFlowTuple`; the flow key comes
/// later from the decoded packet. They must name the same flow (ICMP's key has ports 0), or every hint misses.
@Test func flowTupleAheadIsTheDecodedPacketsTuple() throws {
    let icmpEcho: [UInt8] = [8, 0, 0, 0, 0, 1, 0, 1] + [UInt8](repeating: 0x61, count: 32)
    let packets: [[UInt8]] = [
        PacketBytes.tcpPacket(payload: modbusRequest),
        PacketBytes.ethernet(type: 0x0800) + PacketBytes.ipv4(proto: 17, payloadLength: 8 + 4) + PacketBytes.udp(payloadLength: 4) + [1, 2, 3, 4],
        PacketBytes.ethernet(type: 0x0800) + PacketBytes.ipv4(source: [10, 0, 0, 9], destination: [10, 0, 0, 3], proto: 1,
                                                              payloadLength: icmpEcho.count) + icmpEcho,
    ]
    for bytes in packets {
        let p = try #require(try decode(bytes))
        var tuple: (source: UInt32, destination: UInt32, sourcePort: UInt16, destinationPort: UInt16, ipProtocol: UInt8)?
        ByteView.with(bytes) { tuple = PacketDecoder.commonEthernetFlowTuple($0) }
        let t = try #require(tuple)
        #expect(IPAddress(v4: t.source) == p.source && IPAddress(v4: t.destination) == p.destination)
        #expect(t.sourcePort == p.sourcePort && t.destinationPort == p.destinationPort && t.ipProtocol == p.ipProtocol)
        // The same behind one 802.1Q tag (priority bits set: only the VLAN ID is the key's), read by the tagged reader;
        // the untagged one leaves tagged frames alone, and the tagged one untagged frames and other tags (802.1ad).
        for vlan: UInt16 in [0, 1, 100, 4094] {
            let tci = 0xE000 | vlan
            let frame = Array(bytes[0..<12]) + [0x81, 0x00, UInt8(tci >> 8), UInt8(tci & 0xFF)] + Array(bytes[12...])
            let q = try #require(try decode(frame))
            var tagged: (source: UInt32, destination: UInt32, sourcePort: UInt16, destinationPort: UInt16, ipProtocol: UInt8, vlan: UInt16)?
            var untaggedReading: (source: UInt32, destination: UInt32, sourcePort: UInt16, destinationPort: UInt16, ipProtocol: UInt8)?
            ByteView.with(frame) { tagged = PacketDecoder.uncommonFlowTuple($0, linkType: PacketDecoder.ethernet); untaggedReading = PacketDecoder.commonEthernetFlowTuple($0) }
            let u = try #require(tagged)
            #expect(untaggedReading == nil)
            #expect(IPAddress(v4: u.source) == q.source && IPAddress(v4: u.destination) == q.destination && u.vlan == q.vlan)
            #expect(u.vlan == vlan && u.sourcePort == q.sourcePort && u.destinationPort == q.destinationPort && u.ipProtocol == q.ipProtocol)
            var other = frame; other[12] = 0x88; other[13] = 0xA8
            ByteView.with(other) { #expect(PacketDecoder.uncommonFlowTuple($0, linkType: PacketDecoder.ethernet) == nil) }
        }
        ByteView.with(bytes) { #expect(PacketDecoder.uncommonFlowTuple($0, linkType: PacketDecoder.ethernet) == nil) }
        // A Linux cooked capture's frames (SLL, SLL2: `tcpdump -i any`) read by the cooked reader, and nothing else.
        let source = Array(bytes[6..<12]), type = Array(bytes[12..<14]), rest = Array(bytes[14...])
        let sll = [0, 0, 0, 1, 0, 6] + source + [0, 0] + type + rest
        let sll2 = type + [0, 0, 0, 0, 0, 2, 0, 1, 0, 6] + source + [0, 0] + rest
        for (frame, linkType) in [(sll, PacketDecoder.linuxSLL), (sll2, PacketDecoder.linuxSLL2)] {
            let q = try #require(try decode(frame, linkType: linkType))
            var c: (source: UInt32, destination: UInt32, sourcePort: UInt16, destinationPort: UInt16, ipProtocol: UInt8, vlan: UInt16)?
            ByteView.with(frame) { c = PacketDecoder.uncommonFlowTuple($0, linkType: linkType) }
            let u = try #require(c)
            #expect(IPAddress(v4: u.source) == q.source && IPAddress(v4: u.destination) == q.destination)
            #expect(u.sourcePort == q.sourcePort && u.destinationPort == q.destinationPort && u.ipProtocol == q.ipProtocol)
            ByteView.with(frame) { #expect(PacketDecoder.uncommonFlowTuple($0, linkType: PacketDecoder.ethernet) == nil) }
        }
    }
}

/// Remote SPAN (ERSPAN types I, II and III, transparent Ethernet bridging over GRE, over IPv4 or IPv6): the mirrored
/// frame is decoded in the packet's place, its payload where it lies in the captured bytes; plain GRE (tunnelled IP)
/// stays GRE, and so does a mirror inside a mirror or a mirrored frame that is not IP. No prefix of any of them traps.
@Test(arguments: ["1", "2", "3", "3o", "teb", "teb-key", "teb-checksum", "6"])
func remoteSPANPacketsAreDecodedAsTheFrameTheyCarry(kind: String) throws {
    let inner = PacketBytes.tcpPacket(payload: modbusRequest, tags: [5])
    let direct = try #require(try decode(inner))
    let bytes = PacketBytes.mirrored(inner, kind: kind)
    let p = try #require(try decode(bytes))
    #expect(p.mirrorsRemoved == 1)
    #expect(p.source == direct.source && p.destination == direct.destination && p.vlan == 5)
    #expect(p.sourcePort == direct.sourcePort && p.destinationPort == direct.destinationPort && p.transport == .tcp)
    #expect(p.payloadLength == modbusRequest.count && Array(bytes[p.payloadOffset..<(p.payloadOffset + p.payloadLength)]) == modbusRequest)
    for n in 0...bytes.count { _ = try? decode(Array(bytes[..<n])) }
    // A mirror inside a mirror: the outer one is removed, the inner left as GRE.
    let twice = try #require(try decode(PacketBytes.mirrored(bytes, kind: kind)))
    #expect(twice.mirrorsRemoved == 1 && twice.ipProtocol == 47 && twice.transport == .other)
}

/// Overlay tunnels (VXLAN, Geneve; AWS VPC Traffic Mirroring and Azure's virtual network TAP deliver a mirror so):
/// the carried frame or IP packet is decoded in the packet's place, its payload where it lies in the captured bytes;
/// the one-pass readings (the decoder's, the flow hint's) leave the packet to the general path, and the mirror
/// reading used by the one-pass path and the hints finds the Ethernet frame of the common outer shape. No prefix
/// traps; a tunnel inside a mirror stays UDP.
@Test(arguments: ["vxlan", "vxlan-gbp", "vxlan-6", "geneve", "geneve-options", "geneve-ipv4", "geneve-ipv6"])
func overlayPacketsAreDecodedAsTheFrameTheyCarry(kind: String) throws {
    let v6 = PacketBytes.ethernet(type: 0x86DD) + PacketBytes.ipv6(next: 6, payloadLength: 20 + modbusRequest.count)
        + PacketBytes.tcp() + modbusRequest
    let frame = kind == "geneve-ipv6" ? v6 : PacketBytes.tcpPacket(payload: modbusRequest, tags: kind.hasPrefix("geneve-ip") ? [] : [5])
    let inner = kind.hasPrefix("geneve-ip") ? Array(frame[14...]) : frame
    let direct = try #require(try decode(frame))
    let bytes = PacketBytes.overlay(inner, kind: kind)
    let p = try #require(try decode(bytes))
    #expect(p.mirrorsRemoved == 1)
    #expect(p.source == direct.source && p.destination == direct.destination && p.vlan == direct.vlan)
    #expect(p.sourcePort == direct.sourcePort && p.destinationPort == direct.destinationPort && p.transport == .tcp)
    #expect(p.payloadLength == modbusRequest.count && Array(bytes[p.payloadOffset..<(p.payloadOffset + p.payloadLength)]) == modbusRequest)
    for n in 0...bytes.count { _ = try? decode(Array(bytes[..<n])) }
    // Nor any byte of the headers changed (lengths, flags, option lengths, types past the ends).
    for i in 0..<min(bytes.count, 110) {
        for v: UInt8 in [0, 0x3F, 0x80, 0xFF] {
            var m = bytes; m[i] = v
            _ = try? decode(m)
            ByteView.with(m) { _ = PacketDecoder.commonMirroredFrame($0); _ = PacketDecoder.commonEthernetFlowTuple($0) }
        }
    }
    ByteView.with(bytes) {
        #expect(PacketDecoder.decodeCommonEthernet($0) == nil)
        #expect(PacketDecoder.commonEthernetFlowTuple($0) == nil)
        // The mirror reading takes an Ethernet frame inside IPv4 (the outer shape the one-pass path reads through).
        let start = PacketDecoder.commonMirroredFrame($0)
        #expect(PacketDecoder.mayBeRemoteSPAN($0) == (kind != "vxlan-6"))
        #expect(start == (kind == "vxlan-6" || kind.hasPrefix("geneve-ip") ? nil : bytes.count - frame.count), "\(kind)")
    }
    // Inside a remote-SPAN mirror: the mirror is removed, the tunnel left as UDP.
    let twice = try #require(try decode(PacketBytes.mirrored(bytes, kind: "2")))
    #expect(twice.mirrorsRemoved == 1 && twice.transport == .udp && twice.destinationPort == (kind.hasPrefix("vxlan") ? 4789 : 6081))
}

/// UDP that is not an overlay tunnel's frame stays UDP: a VXLAN header without the I flag, a Geneve control packet,
/// a Geneve version other than 0 or protocol other than Ethernet and IP, a carried frame that is not IP (ARP) or is cut
/// short, a tunnel header on another port, and the tunnel's port as the source only.
@Test func udpThatIsNotAnOverlayStaysUDP() throws {
    let frame = PacketBytes.tcpPacket(payload: modbusRequest)
    var noFlag = PacketBytes.overlay(frame, kind: "vxlan"); noFlag[42] = 0
    var control = PacketBytes.overlay(frame, kind: "geneve"); control[43] = 0x80
    var version1 = PacketBytes.overlay(frame, kind: "geneve"); version1[42] = 0x40
    var mpls = PacketBytes.overlay(frame, kind: "geneve"); mpls[44] = 0x88; mpls[45] = 0x47
    let arp = PacketBytes.overlay(PacketBytes.ethernet(type: 0x0806) + [UInt8](repeating: 0, count: 28), kind: "vxlan")
    let short = PacketBytes.overlay(Array(frame[..<13]), kind: "vxlan")
    let otherPort = PacketBytes.overlay(frame, kind: "vxlan", port: 4790)
    var sourceOnly = PacketBytes.overlay(frame, kind: "vxlan", port: 30000); sourceOnly[34] = 0x12; sourceOnly[35] = 0xB5
    for (name, bytes) in [("no I flag", noFlag), ("control", control), ("version 1", version1), ("MPLS", mpls),
                          ("ARP", arp), ("13 bytes", short), ("port 4790", otherPort), ("source port 4789", sourceOnly)] {
        let p = try #require(try decode(bytes), "\(name)")
        #expect(p.mirrorsRemoved == 0 && p.transport == .udp && p.source == IPAddress(v4: 0xAC1F_000A), "\(name)")
        // (The mirror reading names where a carried Ethernet frame starts, whatever it carries: its reader tests the type.)
        ByteView.with(bytes) { #expect((PacketDecoder.commonMirroredFrame($0) == nil) == (name != "ARP"), "\(name)") }
    }
    // The plain UDP shapes stay on the one-pass readings.
    for bytes in [otherPort, sourceOnly] {
        ByteView.with(bytes) { #expect(PacketDecoder.decodeCommonEthernet($0) != nil && PacketDecoder.commonEthernetFlowTuple($0) != nil) }
    }
}

@Test func greThatIsNotAMirrorStaysGRE() throws {
    let ip = Array(PacketBytes.tcpPacket(payload: modbusRequest)[14...])
    let tunnel = try #require(try decode(PacketBytes.mirrored(ip, kind: "ip")))
    #expect(tunnel.mirrorsRemoved == 0 && tunnel.ipProtocol == 47 && tunnel.source == IPAddress(v4: 0xC0A8_6301))
    // A mirrored frame that is not IP (ARP) leaves the packet as GRE too.
    let arp = PacketBytes.ethernet(type: 0x0806) + [UInt8](repeating: 0, count: 28)
    let mirroredARP = try #require(try decode(PacketBytes.mirrored(arp, kind: "2")))
    #expect(mirroredARP.mirrorsRemoved == 0 && mirroredARP.ipProtocol == 47)
    // GRE version 1 (PPTP) and source routing are not mirrors.
    var pptp = PacketBytes.mirrored(PacketBytes.tcpPacket(payload: modbusRequest), kind: "2")
    pptp[35] = 1
    #expect(try decode(pptp)?.mirrorsRemoved == 0)
}
