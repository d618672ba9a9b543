// libFuzzer target for packet decoding: the link, IP and transport decoders, remote-SPAN and overlay-tunnel
// decapsulation, and the one-pass readings that must agree with them (a disagreement sends a packet to the wrong
// flow or worker without an error anywhere): the decoder's one-pass path, the flow prefetch hint's tuple, the mirror
// reading that the one-pass path and the hints read through, and the workers' dispatch shortcuts; checksum verdicts
// (the one-pass path's against the general one); and IP reassembly.
// Built by scripts/fuzz/decode together with Sources/Wire, Sources/Decode, Sources/Flows/FlowKey.swift,
// Sources/Flows/IPReassembly.swift and Sources/Appliance/FlowDispatch.swift as one module (their `import` lines of those modules dropped).
//
// Input layout: byte 0 picks the link type; the rest is the captured frame.

let linkTypes: [Int32] = [PacketDecoder.ethernet, PacketDecoder.null, PacketDecoder.rawLegacy, PacketDecoder.raw,
                          PacketDecoder.loop, PacketDecoder.linuxSLL, PacketDecoder.ipv4, PacketDecoder.ipv6,
                          PacketDecoder.linuxSLL2]

/// Stops with `message` unless `condition` holds (a precondition's message is not kept in an optimised build).
func require(_ condition: Bool, _ message: StaticString) {
    if !condition { fatalError("decode fuzz: \(message)") }
}

/// The fields every reading of a packet must agree on.
func sameHeaders(_ a: PacketView, _ b: PacketView) -> Bool {
    a.ipVersion == b.ipVersion && a.ipProtocol == b.ipProtocol && a.source == b.source && a.destination == b.destination
        && a.transport == b.transport && a.sourcePort == b.sourcePort && a.destinationPort == b.destinationPort
        && a.sequence == b.sequence && a.acknowledgement == b.acknowledgement && a.tcpFlags == b.tcpFlags
        && a.payloadOffset == b.payloadOffset && a.payloadLength == b.payloadLength
        && a.wirePayloadLength == b.wirePayloadLength && a.vlan == b.vlan && a.mirrorsRemoved == b.mirrorsRemoved
}

func check(_ bytes: ByteView, linkType: Int32) {
    let decoded: PacketView?? = try? PacketDecoder.decode(bytes, linkType: linkType)
    let view: PacketView? = decoded ?? nil
    if let v = view {
        require(v.payloadOffset >= 0 && v.payloadLength >= 0 && v.payloadOffset + v.payloadLength <= bytes.count,
                "payload outside the captured bytes")
        // Checksums: any decoded packet gets a verdict; the one-pass path's reading of an untagged IPv4 TCP packet
        // without options, captured whole, gives the general one.
        let verdict = InternetChecksum.verdict(bytes, packet: v)
        if linkType == PacketDecoder.ethernet, v.ipVersion == 4, v.transport == .tcp, !v.hasIPOptions, v.mirrorsRemoved == 0,
           v.vlanTags == 0, v.ipOffset == 14, v.transportOffset == 34, v.payloadLength == v.wirePayloadLength,
           let p = bytes.raw.baseAddress, Int(UInt16(bigEndian: p.loadUnaligned(fromByteOffset: 16, as: UInt16.self))) >= 40 {
            let ipEnd = 14 + Int(UInt16(bigEndian: p.loadUnaligned(fromByteOffset: 16, as: UInt16.self)))
            if ipEnd <= bytes.count && ipEnd == v.payloadOffset + v.payloadLength {
                require(InternetChecksum.tcpIPv4Verdict(p, ipAt: 14, ipEnd: ipEnd) == verdict, "one-pass and general checksum verdicts disagree")
                require(InternetChecksum.tcpIPv4IsRight(p, ipAt: 14, ipEnd: ipEnd) == (verdict == .valid || verdict == .ambiguous),
                        "the verified side's check disagrees with the verdict")
            }
        }
    }
    if linkType == PacketDecoder.ethernet {
        // The one-pass decoder decides only packets the general path decodes the same way.
        if let fast = PacketDecoder.decodeCommonEthernet(bytes) {
            let general: PacketView?? = try? PacketDecoder.decodeAnyLink(bytes, linkType: linkType)
            guard let g = general ?? nil else { require(false, "one-pass decode of a packet the general path rejects"); return }
            require(sameHeaders(fast, g), "one-pass and general decoders disagree")
        }
        // The hint's tuple names the decoded packet's flow whenever both answer for an IPv4 packet (never a tunnel's
        // own, when the decoder took the frame it carries).
        if let t = PacketDecoder.commonEthernetFlowTuple(bytes), let v = view, v.ipVersion == 4,
           v.transport == .tcp || v.transport == .udp || v.transport == .icmp {
            require(IPAddress(v4: t.source) == v.source && IPAddress(v4: t.destination) == v.destination
                    && t.sourcePort == v.sourcePort && t.destinationPort == v.destinationPort && t.ipProtocol == v.ipProtocol,
                    "hint tuple is not the decoded packet's")
        }
        // The mirror reading finds the frame the decoder decoded in the packet's place.
        if let start = PacketDecoder.commonMirroredFrame(bytes), let v = view, v.mirrorsRemoved == 1 {
            // (Decoded as the decoder decodes a carried frame: once, so a tunnel inside stays as it is.)
            var inner = PacketView()
            if (try? PacketDecoder.decodeMirrored(bytes, at: start, into: &inner)) == true {
                require(sameHeaders(inner, v), "mirror reading and decoder disagree on the carried frame")
            }
        }
    }
    // The workers' dispatch: every shortcut picks the decoder's worker.
    let key = FlowHashKey(value: 0x0123_4567_89AB_CDEF)
    // (An IP fragment goes to every worker: its flow is known once its datagram is whole.)
    var fragmentThrown = false
    do { _ = try PacketDecoder.decode(bytes, linkType: linkType) } catch { fragmentThrown = error.failure == .ipFragment }
    let fragment = PacketDecoder.ipFragment(bytes, linkType: linkType)
    require(fragment == nil || fragmentThrown, "a fragment for reassembly that the decoder does not call a fragment")
    for workers in [2, 3] {
        let expected = view.map { FlowDispatch.index(FlowDispatch.flowHash($0, key: key), workers: workers) }
            ?? (fragment != nil ? FlowDispatch.everyWorker : 0)
        require(FlowDispatch.worker(for: bytes, linkType: linkType, workers: workers, key: key) == expected,
                "dispatch shortcut picks another worker than the decoder")
    }
    // Reassembly: fragments go into one table across inputs (so that inputs complete each other's datagrams), and a
    // datagram it completes is a frame of the same link type that is no longer a fragment.
    if let f = fragment {
        require(f.frameStart <= f.ipStart && f.ipStart < f.prefixEnd && f.prefixEnd <= f.payloadStart
                && f.payloadStart + f.capturedPayload <= bytes.count && f.capturedPayload <= f.payloadLength,
                "fragment's parts out of order or outside its frame")
        if case .complete(let datagram, let datagramLinkType, _) = reassembly.add(f, frame: bytes, second: 0) {
            // (Its own IP packet is whole now; one it carries may be a fragment still.)
            var error: DecodeError?
            do { _ = try PacketDecoder.decode(datagram, linkType: datagramLinkType) } catch let e { error = e }
            if let e = error, e.failure == .ipFragment {
                require(e.frameStart != 0, "a reassembled datagram is still a fragment")
            }
        }
        _ = reassembly.takeEviction()
    }
    // The tagged and cooked hint's tuple, likewise (with the VLAN ID the decoder keys the flow with).
    if let t = PacketDecoder.uncommonFlowTuple(bytes, linkType: linkType), let v = view, v.ipVersion == 4,
       v.transport == .tcp || v.transport == .udp || v.transport == .icmp {
        require(IPAddress(v4: t.source) == v.source && IPAddress(v4: t.destination) == v.destination && t.vlan == v.vlan
                && t.sourcePort == v.sourcePort && t.destinationPort == v.destinationPort && t.ipProtocol == v.ipProtocol,
                "tagged or cooked hint tuple is not the decoded packet's")
    }
}

/// The reassembly table the inputs' fragments go into.
nonisolated(unsafe) let reassembly = IPReassembly()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDecode(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 1 else { return 0 }
    let linkType = linkTypes[Int(data[0]) % linkTypes.count]
    // A copy of exactly the frame's length, so that reading past it is caught (AddressSanitizer).
    let frame = UnsafeMutableRawBufferPointer.allocate(byteCount: size - 1, alignment: 1)
    defer { frame.deallocate() }
    if size > 1 { frame.copyMemory(from: UnsafeRawBufferPointer(start: data + 1, count: size - 1)) }
    check(ByteView(UnsafeRawBufferPointer(frame)), linkType: linkType)
    return 0
}
