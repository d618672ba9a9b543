/// Builds test packets byte by byte (headers per RFC 791/8200/9293/768), so each test states its input.
enum PacketBytes {
    static func ethernet(type: UInt16, tags: [UInt16] = [], outerTPID: UInt16 = 0x8100) -> [UInt8] {
        var b: [UInt8] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
        for (i, tag) in tags.enumerated() {
            let tpid = i == 0 ? outerTPID : 0x8100
            b += [UInt8(tpid >> 8), UInt8(tpid & 0xFF), UInt8(tag >> 8), UInt8(tag & 0xFF)]
        }
        return b + [UInt8(type >> 8), UInt8(type & 0xFF)]
    }

    static func ipv4(source: [UInt8] = [10, 0, 0, 1], destination: [UInt8] = [10, 0, 0, 2], proto: UInt8 = 6,
                     payloadLength: Int, options: [UInt8] = [], fragment: UInt16 = 0x4000) -> [UInt8] {
        let ihl = 5 + options.count / 4
        let total = ihl * 4 + payloadLength
        return [UInt8(0x40 | ihl), 0, UInt8(total >> 8), UInt8(total & 0xFF), 0, 1, UInt8(fragment >> 8), UInt8(fragment & 0xFF),
                64, proto, 0, 0] + source + destination + options
    }

    static func ipv6(next: UInt8, payloadLength: Int, source: UInt8 = 1, destination: UInt8 = 2) -> [UInt8] {
        var b: [UInt8] = [0x60, 0, 0, 0, UInt8(payloadLength >> 8), UInt8(payloadLength & 0xFF), next, 64]
        b += [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [source]
        b += [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [destination]
        return b
    }

    static func tcp(sourcePort: UInt16 = 49152, destinationPort: UInt16 = 502, seq: UInt32 = 1000, ack: UInt32 = 0,
                    flags: UInt8 = 0x18, options: [UInt8] = []) -> [UInt8] {
        let offset = (20 + options.count) / 4
        return [UInt8(sourcePort >> 8), UInt8(sourcePort & 0xFF), UInt8(destinationPort >> 8), UInt8(destinationPort & 0xFF),
                UInt8(seq >> 24), UInt8(seq >> 16 & 0xFF), UInt8(seq >> 8 & 0xFF), UInt8(seq & 0xFF),
                UInt8(ack >> 24), UInt8(ack >> 16 & 0xFF), UInt8(ack >> 8 & 0xFF), UInt8(ack & 0xFF),
                UInt8(offset << 4), flags, 0xFF, 0xFF, 0, 0, 0, 0] + options
    }

    static func udp(sourcePort: UInt16 = 20000, destinationPort: UInt16 = 20000, payloadLength: Int) -> [UInt8] {
        let length = 8 + payloadLength
        return [UInt8(sourcePort >> 8), UInt8(sourcePort & 0xFF), UInt8(destinationPort >> 8), UInt8(destinationPort & 0xFF),
                UInt8(length >> 8), UInt8(length & 0xFF), 0, 0]
    }

    /// `frame` as remote SPAN carries it: Ethernet + IPv4 (192.168.99.1 → .2, GRE) + GRE + the mirror's header. `kind`:
    /// "2" ERSPAN type II (GRE with a sequence number), "3" type III, "3o" type III with its platform subheader, "1"
    /// type I (no sequence number, no ERSPAN header), "teb" transparent Ethernet bridging (with a key: "teb-key"; with a
    /// checksum, a key and a sequence number: "teb-checksum"), "ip" plain GRE carrying IPv4
    /// (`frame` then an IP packet: not a mirror), "6" type II inside IPv6.
    static func mirrored(_ frame: [UInt8], kind: String) -> [UInt8] {
        let sequence: [UInt8] = [0, 0, 0, 42]
        let gre: [UInt8]
        switch kind {
        case "2", "6": gre = [0x10, 0, 0x88, 0xBE] + sequence + [0x10, 100, 0, 7, 0, 0, 0, 0]
        case "3": gre = [0x10, 0, 0x22, 0xEB] + sequence + [0x20, 100, 0, 7, 0, 0, 0x30, 0x39, 0, 0, 0, 0]
        case "3o": gre = [0x10, 0, 0x22, 0xEB] + sequence + [0x20, 100, 0, 7, 0, 0, 0x30, 0x39, 0, 0, 0, 1] + [UInt8](repeating: 9, count: 8)
        case "1": gre = [0, 0, 0x88, 0xBE]
        case "teb": gre = [0, 0, 0x65, 0x58]
        case "teb-key": gre = [0x20, 0, 0x65, 0x58, 0, 0, 0x12, 0x34]
        case "teb-checksum": gre = [0xB0, 0, 0x65, 0x58, 0, 0, 0, 0, 0, 0, 0x12, 0x34] + sequence
        default: gre = [0, 0, 0x08, 0x00]
        }
        if kind == "6" { return ethernet(type: 0x86DD) + ipv6(next: 47, payloadLength: gre.count + frame.count) + gre + frame }
        return ethernet(type: 0x0800) + ipv4(source: [192, 168, 99, 1], destination: [192, 168, 99, 2], proto: 47,
                                             payloadLength: gre.count + frame.count) + gre + frame
    }

    /// `frame` as an overlay tunnel carries it: Ethernet + IPv4 (172.31.0.10 → .20, UDP from port 49153) + UDP + the
    /// tunnel's header. `kind`: "vxlan" (RFC 7348: the I flag, VNI 0x123), "vxlan-gbp" (the group-policy flags and ID
    /// set besides), "vxlan-6" (inside IPv6), "geneve" (RFC 8926, transparent Ethernet bridging), "geneve-options"
    /// (two options, 12 bytes), "geneve-ipv4" and "geneve-ipv6" (`frame` an IP packet of that version); the UDP
    /// destination port is the tunnel's unless `port` says otherwise.
    static func overlay(_ frame: [UInt8], kind: String, port: UInt16? = nil) -> [UInt8] {
        let header: [UInt8]
        switch kind {
        case "vxlan", "vxlan-6": header = [0x08, 0, 0, 0, 0, 0x01, 0x23, 0]
        case "vxlan-gbp": header = [0x88, 0x40, 0x12, 0x34, 0, 0x01, 0x23, 0]
        case "geneve-options": header = [0x03, 0, 0x65, 0x58, 0, 0x01, 0x23, 0] + [1, 2, 3, 1, 0xDE, 0xAD, 0xBE, 0xEF, 4, 5, 6, 0]
        case "geneve-ipv4": header = [0, 0, 0x08, 0x00, 0, 0x01, 0x23, 0]
        case "geneve-ipv6": header = [0, 0, 0x86, 0xDD, 0, 0x01, 0x23, 0]
        default: header = [0, 0, 0x65, 0x58, 0, 0x01, 0x23, 0]
        }
        let tunnelPort = port ?? (kind.hasPrefix("vxlan") ? 4789 : 6081)
        let datagram = udp(sourcePort: 49153, destinationPort: tunnelPort, payloadLength: header.count + frame.count) + header + frame
        if kind == "vxlan-6" { return ethernet(type: 0x86DD) + ipv6(next: 17, payloadLength: datagram.count) + datagram }
        return ethernet(type: 0x0800) + ipv4(source: [172, 31, 0, 10], destination: [172, 31, 0, 20], proto: 17,
                                             payloadLength: datagram.count) + datagram
    }

    /// Ethernet + IPv4 + TCP + payload.
    static func tcpPacket(payload: [UInt8], tags: [UInt16] = [], seq: UInt32 = 1000, flags: UInt8 = 0x18) -> [UInt8] {
        let t = tcp(seq: seq, flags: flags)
        return ethernet(type: 0x0800, tags: tags) + ipv4(payloadLength: t.count + payload.count) + t + payload
    }
}
