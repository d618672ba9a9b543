import Testing
import Foundation
import Wire
import Records
import Capture
import Engine
import Decode

/// Every record kind of one capture, as the engine writes them, and the engine's counters.
/// Nil when the file cannot be opened (the edge fixtures include garbage and unknown link types); a read error
/// ends the input, as in `zonewatch replay`.
/// `throughConsumer` reads as the replay loop does (`EngineConsumer.dispatch(from:batch:)`, with the prefetch
/// lookahead), in small batches so that batch ends fall everywhere; otherwise packet by packet with `next()`.
func allRecords(of path: String, establishedPath: Bool, throughConsumer: Bool = false, checksums: ChecksumValidation = .auto)
    -> (lines: [String], packets: UInt64, onPath: UInt64)? {
    var c = EngineConfiguration()
    c.pduRecords = true; c.transactionRecords = true; c.establishedTCPPath = establishedPath; c.checksums = checksums
    let engine = Engine(configuration: c)
    guard let source = try? PacketSource.openFile(path) else { return nil }
    let linkType = source.linkType.rawValue
    var lines: [String] = []
    func drain() {
        engine.drainRecords { kind, bytes in lines.append("\(kind): " + String(decoding: bytes, as: UTF8.self)) }
    }
    if throughConsumer {
        let consumer = EngineConsumer(engine: engine, linkType: linkType)
        while let read = try? consumer.dispatch(from: source, batch: 7), read > 0 { drain() }
        engine.finish()
        drain()
        return (lines, engine.statistics.packets, engine.packetsOnEstablishedPath)
    }
    loop: while true {
        guard let next = try? source.next() else { break loop }
        switch next {
        case .packet(let header, let bytes):
            engine.process(bytes, linkType: linkType, time: header.time, wireLength: header.wireLength)
            drain()
        case .timeout: continue
        case .end: break loop
        }
    }
    engine.finish()
    drain()
    return (lines, engine.statistics.packets, engine.packetsOnEstablishedPath)
}

/// The shipped captures with TCP traffic the one-pass path takes: real stacks (Modbus, DNP3, S7comm), the demo
/// plant, and crafted reassembly cases (split, coalesced, out of order, retransmitted, gaps, snaplen cuts).
let fixtureCaptures: [String] = {
    let root = repositoryRoot.appendingPathComponent("Fixtures")
    let folders = ["modbus", "dnp3", "s7comm", "demo", "edge", "mixed"]
    return folders.flatMap { folder -> [String] in
        let dir = root.appendingPathComponent(folder)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.filter { $0.hasSuffix(".pcap") }.sorted().map { "\(folder)/\($0)" }
    }
}()

/// The one-pass path for established TCP packets must write exactly what the general path writes: every PDU,
/// transaction, flow and anomaly record, in the same order, for every shipped capture.
@Test(arguments: fixtureCaptures)
func establishedPathWritesWhatTheGeneralPathWrites(_ capture: String) {
    let path = repositoryRoot.appendingPathComponent("Fixtures").appendingPathComponent(capture).path
    let fast = allRecords(of: path, establishedPath: true), general = allRecords(of: path, establishedPath: false)
    #expect((fast == nil) == (general == nil))
    guard let fast, let general else { return }   // not a capture, on purpose (edge cases)
    #expect(general.onPath == 0)
    #expect(fast.packets == general.packets)
    #expect(fast.lines.count == general.lines.count)
    for (i, (a, b)) in zip(fast.lines, general.lines).enumerated() where a != b {
        Issue.record("record \(i) differs:\n  one-pass: \(a)\n  general:  \(b)")
        break
    }
}

/// The comparison above means something only if the one-pass path runs: on the real stacks' captures it takes
/// most packets.
@Test func establishedPathTakesMostPacketsOfALongConnection() throws {
    let path = repositoryRoot.appendingPathComponent("Fixtures/demo/plant.pcap").path
    let run = try #require(allRecords(of: path, establishedPath: true))
    #expect(run.onPath * 2 > run.packets, "\(run.onPath) of \(run.packets) packets on the one-pass path")
}

/// The replay loop's C handler (`EngineConsumer.dispatch(from:batch:)`: lookahead, prefetch stage, packet step)
/// must write exactly what the engine writes when handed the packets one by one.
@Test(arguments: fixtureCaptures)
func replayLoopHandlerWritesWhatPacketByPacketWrites(_ capture: String) {
    let path = repositoryRoot.appendingPathComponent("Fixtures").appendingPathComponent(capture).path
    let handler = allRecords(of: path, establishedPath: true, throughConsumer: true)
    let single = allRecords(of: path, establishedPath: true)
    #expect((handler == nil) == (single == nil))
    guard let handler, let single else { return }
    #expect(handler.packets == single.packets)
    #expect(handler.onPath == single.onPath)
    // Drained per batch here and per packet there: compare each kind's whole text, not the chunks.
    func text(_ lines: [String]) -> [String: String] {
        lines.reduce(into: [:]) { all, line in
            let kind = String(line.prefix { $0 != ":" })
            all[kind, default: ""] += line.dropFirst(kind.count + 2)
        }
    }
    #expect(text(handler.lines) == text(single.lines))
    if single.packets > 0 { #expect(!text(single.lines).isEmpty) }
}

/// A classic pcap file (microseconds, host byte order) of `capture`'s Ethernet records, each frame rewritten by
/// `tag` (its index and bytes in, the frames to write out), of link type `linkType`, in a temporary file; nil for a
/// capture of another link type or shape.
private func retagged(_ capture: String, linkType: Int32 = 1, _ tag: (Int, [UInt8]) -> [[UInt8]]) throws -> String? {
    let data = try [UInt8](Data(contentsOf: repositoryRoot.appendingPathComponent("Fixtures").appendingPathComponent(capture)))
    func u32(_ o: Int) -> Int { Int(data[o]) | Int(data[o + 1]) << 8 | Int(data[o + 2]) << 16 | Int(data[o + 3]) << 24 }
    guard data.count >= 24, u32(0) == 0xA1B2_C3D4, u32(20) == 1 else { return nil }
    var out = Array(data[0..<24])
    out.replaceSubrange(16..<20, with: [0, 0, 4, 0])   // snapshot length 262,144: the tags fit whatever the original's
    out.replaceSubrange(20..<24, with: [UInt8(linkType & 0xFF), UInt8(linkType >> 8 & 0xFF), 0, 0])
    func le(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v >> 16 & 0xFF), UInt8(v >> 24 & 0xFF)] }
    var o = 24, index = 0
    while o + 16 <= data.count {
        let caplen = u32(o + 8), len = u32(o + 12)
        guard o + 16 + caplen <= data.count else { break }
        let frame = Array(data[(o + 16)..<(o + 16 + caplen)])
        for f in tag(index, frame) {
            out += Array(data[o..<(o + 8)]) + le(f.count) + le(len + f.count - caplen) + f
        }
        o += 16 + caplen; index += 1
    }
    let path = FileManager.default.temporaryDirectory
        .appendingPathComponent("tagged-\(UUID().uuidString)-\(capture.replacingOccurrences(of: "/", with: "-"))").path
    try Data(out).write(to: URL(fileURLWithPath: path))
    return path
}

/// `frame` with an 802.1Q tag of VLAN `vlan` (priority 5, to see that only the VLAN ID is kept) after its addresses.
private func tagged(_ frame: [UInt8], vlan: UInt16) -> [UInt8] {
    guard frame.count >= 14 else { return frame }
    let tci = 0xA000 | vlan
    return Array(frame[0..<12]) + [0x81, 0x00, UInt8(tci >> 8), UInt8(tci & 0xFF)] + Array(frame[12...])
}

/// `frame` (Ethernet) as a Linux cooked capture gives it (`tcpdump -i any`): SLL (16-byte header: packet type,
/// ARPHRD_ETHER, address length, address, protocol) or SLL2 (20 bytes: protocol, reserved, interface index, ARPHRD,
/// packet type, address length, address).
private func cooked(_ frame: [UInt8], version: Int) -> [UInt8] {
    guard frame.count >= 14 else { return frame }
    let source = Array(frame[6..<12]), type = Array(frame[12..<14]), rest = Array(frame[14...])
    if version == 1 { return [0, 0, 0, 1, 0, 6] + source + [0, 0] + type + rest }
    return type + [0, 0, 0, 0, 0, 2, 0, 1, 0, 6] + source + [0, 0] + rest
}

/// Frames of a Linux cooked capture (SLL, SLL2) take the one-pass path as often as the same packets in Ethernet
/// frames, and it writes what the general path writes.
@Test(arguments: ["modbus/pymodbus_all_functions.pcap", "dnp3", "s7comm", "demo/plant.pcap"], [1, 2])
func cookedFramesTakeTheOnePassPathAsEthernetOnesDo(_ name: String, version: Int) throws {
    let captures = name.hasSuffix(".pcap") ? [name] : fixtureCaptures.filter { $0.hasPrefix(name + "/") }
    #expect(!captures.isEmpty)
    for capture in captures {
        let linkType = version == 1 ? PacketDecoder.linuxSLL : PacketDecoder.linuxSLL2
        guard let path = try retagged(capture, linkType: linkType, { _, frame in [cooked(frame, version: version)] })
        else { continue }
        defer { try? FileManager.default.removeItem(atPath: path) }
        let ethernet = try #require(allRecords(of: repositoryRoot.appendingPathComponent("Fixtures/" + capture).path, establishedPath: true))
        let fast = try #require(allRecords(of: path, establishedPath: true))
        let general = try #require(allRecords(of: path, establishedPath: false))
        #expect(fast.onPath == ethernet.onPath && fast.packets == ethernet.packets, "\(capture), SLL\(version)")
        #expect(fast.lines == general.lines, "\(capture), SLL\(version)")
        // Every third frame saying it holds another protocol (0x88B5, local experimental): not IPv4, whatever its
        // bytes look like, on either path (the one-pass path would otherwise take it into its flow).
        guard let other = try retagged(capture, linkType: linkType, { i, frame in
            var f = cooked(frame, version: version)
            if i % 3 == 2 && f.count >= 16 { f.replaceSubrange(version == 1 ? 14..<16 : 0..<2, with: [0x88, 0xB5]) }
            return [f]
        }) else { continue }
        defer { try? FileManager.default.removeItem(atPath: other) }
        let notIP = try #require(allRecords(of: other, establishedPath: true))
        let notIPGeneral = try #require(allRecords(of: other, establishedPath: false))
        #expect(notIP.lines == notIPGeneral.lines, "\(capture), SLL\(version), every third frame 0x88B5")
    }
}

/// Frames with one 802.1Q tag (a SPAN port copying a trunk keeps them) take the one-pass path as often as the same
/// frames untagged, and it writes what the general path writes, VLAN IDs included (priority tags, VLAN 0, too).
@Test(arguments: ["modbus/pymodbus_all_functions.pcap", "dnp3", "s7comm", "demo/plant.pcap", "edge/tcp-split-pdu.pcap"])
func taggedFramesTakeTheOnePassPathAsUntaggedOnesDo(_ name: String) throws {
    let captures = name.hasSuffix(".pcap") ? [name] : fixtureCaptures.filter { $0.hasPrefix(name + "/") }
    #expect(!captures.isEmpty)
    for capture in captures {
        for vlan: UInt16 in [100, 0] {
            guard let path = try retagged(capture, { _, frame in [tagged(frame, vlan: vlan)] }) else { continue }
            defer { try? FileManager.default.removeItem(atPath: path) }
            let untagged = try #require(allRecords(of: repositoryRoot.appendingPathComponent("Fixtures/" + capture).path, establishedPath: true))
            let fast = try #require(allRecords(of: path, establishedPath: true))
            let general = try #require(allRecords(of: path, establishedPath: false))
            #expect(fast.onPath == untagged.onPath, "\(capture), VLAN \(vlan)")
            #expect(fast.lines == general.lines, "\(capture), VLAN \(vlan)")
            if vlan != 0 && fast.packets > 0 {
                #expect(fast.lines.contains { $0.contains("\"vlan\":{\"id\":\(vlan)}") }, "\(capture)")
            }
        }
    }
}

/// The same connection on two VLANs at once (each frame twice, tagged 10 and 20): two flows, which the one-pass path
/// keeps apart as the general path does.
@Test func theSameConnectionOnTwoVLANsIsTwoFlows() throws {
    let capture = "modbus/pymodbus_all_functions.pcap"
    let path = try #require(try retagged(capture) { _, frame in [tagged(frame, vlan: 10), tagged(frame, vlan: 20)] })
    defer { try? FileManager.default.removeItem(atPath: path) }
    let fast = try #require(allRecords(of: path, establishedPath: true))
    let general = try #require(allRecords(of: path, establishedPath: false))
    #expect(fast.onPath > fast.packets / 2)
    #expect(fast.lines == general.lines)
    let flows = fast.lines.filter { $0.hasPrefix("flow:") }.joined()
    #expect(flows.contains("\"vlan\":{\"id\":10}") && flows.contains("\"vlan\":{\"id\":20}"))
}

/// `frame` as a remote mirror carries it to a collector: "erspan", ERSPAN type II (Ethernet, IPv4, GRE with a sequence
/// number, the ERSPAN header); "vxlan", VXLAN (Ethernet, IPv4, UDP to 4789 from a port that varies with the frame, as
/// AWS VPC Traffic Mirroring sends it); "geneve", Geneve with an option (UDP to 6081).
/// `session` tells two mirror sessions apart: the VNI and the sending tunnel endpoint.
private func mirror(_ frame: [UInt8], by kind: String, session: UInt8 = 7) -> [UInt8] {
    let tunnel: [UInt8], ipProtocol: UInt8
    switch kind {
    case "erspan":
        (tunnel, ipProtocol) = ([0x10, 0, 0x88, 0xBE, 0, 0, 0, 1, 0x10, 100, 0, session, 0, 0, 0, 0], 47)
    default:
        let header: [UInt8] = kind == "vxlan" ? [0x08, 0, 0, 0, 0, 0, session, 0] : [0x01, 0, 0x65, 0x58, 0, 0, session, 0, 1, 2, 3, 0]
        let port: UInt16 = kind == "vxlan" ? 4789 : 6081, length = 8 + header.count + frame.count
        let entropy = UInt8(frame.count > 37 ? frame[37] : 0)
        (tunnel, ipProtocol) = ([0xC0, entropy, UInt8(port >> 8), UInt8(port & 0xFF), UInt8(length >> 8), UInt8(length & 0xFF), 0, 0] + header, 17)
    }
    let total = 20 + tunnel.count + frame.count
    let ip: [UInt8] = [0x45, 0, UInt8(total >> 8), UInt8(total & 0xFF), 0, 1, 0x40, 0, 64, ipProtocol, 0, 0, 192, 168, 99, session, 192, 168, 99, 2]
    return [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00] + ip + tunnel + frame
}

/// A capture mirrored by remote SPAN (ERSPAN) or an overlay tunnel (VXLAN, Geneve) gives the records of the capture
/// itself: every PDU, transaction and anomaly record, and as many flows (their byte counts include the tunnel's
/// headers); its frames take the one-pass path as often as the capture's own.
@Test(arguments: ["modbus/pymodbus_all_functions.pcap", "dnp3", "s7comm", "demo/plant.pcap"], ["erspan", "vxlan", "geneve"])
func aMirroredCaptureGivesItsOwnRecords(_ name: String, kind: String) throws {
    let captures = name.hasSuffix(".pcap") ? [name] : fixtureCaptures.filter { $0.hasPrefix(name + "/") }
    #expect(!captures.isEmpty)
    for capture in captures {
        guard let path = try retagged(capture, { _, frame in [mirror(frame, by: kind)] }) else { continue }
        defer { try? FileManager.default.removeItem(atPath: path) }
        let direct = try #require(allRecords(of: repositoryRoot.appendingPathComponent("Fixtures/" + capture).path, establishedPath: true))
        let mirrored = try #require(allRecords(of: path, establishedPath: true))
        func records(_ lines: [String]) -> [String] { lines.filter { !$0.hasPrefix("flow:") } }
        #expect(records(mirrored.lines) == records(direct.lines), "\(capture), \(kind)")
        #expect(mirrored.lines.filter { $0.hasPrefix("flow:") }.count == direct.lines.filter { $0.hasPrefix("flow:") }.count, "\(capture)")
        #expect(mirrored.packets == direct.packets && direct.lines.contains { $0.hasPrefix("flow:") })
        // The one-pass path reads through the mirror's headers as often as it takes the frames themselves, and writes
        // what the general path writes.
        let general = try #require(allRecords(of: path, establishedPath: false))
        #expect(mirrored.lines == general.lines, "\(capture), \(kind)")
        #expect(mirrored.onPath == direct.onPath, "\(capture), \(kind)")
        // Mirrored frames that carry an 802.1Q tag of their own: the same.
        guard let taggedPath = try retagged(capture, { _, frame in [mirror(tagged(frame, vlan: 100), by: kind)] }) else { continue }
        defer { try? FileManager.default.removeItem(atPath: taggedPath) }
        let fast = try #require(allRecords(of: taggedPath, establishedPath: true))
        let slow = try #require(allRecords(of: taggedPath, establishedPath: false))
        #expect(fast.lines == slow.lines && fast.onPath == direct.onPath, "\(capture), tagged inside the mirror")
    }
}

/// A connection mirrored twice (every frame from two sessions: AWS mirrors the interfaces of both instances so) is one
/// flow: its packets count twice, the second copies as retransmissions, and its PDU, transaction and anomaly records
/// and alerts are the capture's own but for frame numbers.
@Test(arguments: ["vxlan", "erspan"])
func aConnectionMirroredTwiceIsOneFlowWithItsCopiesAsRetransmissions(kind: String) throws {
    let capture = "demo/plant.pcap"
    let path = try #require(try retagged(capture) { _, frame in [mirror(frame, by: kind, session: 1), mirror(frame, by: kind, session: 2)] })
    defer { try? FileManager.default.removeItem(atPath: path) }
    let direct = try #require(allRecords(of: repositoryRoot.appendingPathComponent("Fixtures/" + capture).path, establishedPath: true))
    let twice = try #require(allRecords(of: path, establishedPath: true))
    let frameNumber = try Regex(#""(frame|request_frame|response_frame)":[0-9]+"#)
    func records(_ lines: [String]) -> [String] {
        lines.filter { !$0.hasPrefix("flow:") }.map { $0.replacing(frameNumber) { _ in "\"frame\":_" } }
    }
    #expect(records(twice.lines) == records(direct.lines))
    #expect(twice.packets == 2 * direct.packets)
    let flows = (direct.lines.filter { $0.hasPrefix("flow:") }, twice.lines.filter { $0.hasPrefix("flow:") })
    #expect(flows.0.count == flows.1.count && !flows.0.isEmpty)
    func field(_ name: String, _ line: String) -> Int? {
        guard let r = line.range(of: "\"network\":{"), let f = line[r.upperBound...].range(of: "\"\(name)\":") ?? line.range(of: "\"\(name)\":")
        else { return nil }
        return Int(line[f.upperBound...].prefix { $0.isNumber })
    }
    for (one, two) in zip(flows.0, flows.1) {
        #expect(field("packets", two) == field("packets", one).map { 2 * $0 }, "\(two)")
        #expect(field("retransmissions", one) == 0 && (field("retransmissions", two) ?? 0) > 0, "\(two)")
    }
}
