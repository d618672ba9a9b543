import Testing
import Foundation
import Wire
import Records
import Decode
import Flows
import Engine
@testable import Appliance

/// The fragments of the unfragmented Ethernet/IPv4 frame `frame` (no options), cut at the payload offsets `cuts`
/// (multiples of 8), identification `id`, in the order `order` (indices into the pieces; all of them by default).
func ipv4Fragments(of frame: [UInt8], id: UInt16, cuts: [Int], order: [Int]? = nil) -> [[UInt8]] {
    let payload = Array(frame[34...])
    let bounds = [0] + cuts + [payload.count]
    var pieces: [[UInt8]] = []
    for i in 0..<(bounds.count - 1) {
        var header = Array(frame[0..<34])
        let length = 20 + bounds[i + 1] - bounds[i]
        header[16] = UInt8(length >> 8); header[17] = UInt8(length & 0xFF)
        header[18] = UInt8(id >> 8); header[19] = UInt8(id & 0xFF)
        let field = UInt16(bounds[i] / 8) | (i < bounds.count - 2 ? 0x2000 : 0)
        header[20] = UInt8(field >> 8); header[21] = UInt8(field & 0xFF)
        pieces.append(header + payload[bounds[i]..<bounds[i + 1]])
    }
    return (order ?? Array(pieces.indices)).map { pieces[$0] }
}

/// The Ethernet/IPv4 frame `frame` (no options) as IPv6: each address a.b.c.d as fd00::a.b.c.d, the same transport.
func ipv6Frame(_ frame: [UInt8]) -> [UInt8] {
    let transport = Array(frame[34...])
    var b = Array(frame[0..<12]) + [0x86, 0xDD, 0x60, 0, 0, 0, UInt8(transport.count >> 8), UInt8(transport.count & 0xFF), frame[23], 64]
    for at in [26, 30] { b += [0xFD, 0] + [UInt8](repeating: 0, count: 10) + Array(frame[at..<at + 4]) }
    return b + transport
}

/// The fragments of the unfragmented Ethernet/IPv6 frame `frame` (no extension headers), cut like `ipv4Fragments`,
/// with a fragment header of identification `id`; with `hopByHop`, an 8-byte hop-by-hop header before it (part of
/// the unfragmentable part each fragment repeats).
func ipv6Fragments(of frame: [UInt8], id: UInt32, cuts: [Int], order: [Int]? = nil, hopByHop: Bool = false) -> [[UInt8]] {
    let payload = Array(frame[54...]), next = frame[20]
    let bounds = [0] + cuts + [payload.count]
    var pieces: [[UInt8]] = []
    for i in 0..<(bounds.count - 1) {
        var header = Array(frame[0..<54])
        let extensions: [UInt8] = hopByHop ? [44, 0, 1, 4, 0, 0, 0, 0] : []
        let length = extensions.count + 8 + bounds[i + 1] - bounds[i]
        header[18] = UInt8(length >> 8); header[19] = UInt8(length & 0xFF)
        header[20] = hopByHop ? 0 : 44
        let field = UInt16(bounds[i]) | (i < bounds.count - 2 ? 1 : 0)
        let fragmentHeader: [UInt8] = [next, 0, UInt8(field >> 8), UInt8(field & 0xFF),
                                       UInt8(id >> 24), UInt8(id >> 16 & 0xFF), UInt8(id >> 8 & 0xFF), UInt8(id & 0xFF)]
        pieces.append(header + extensions + fragmentHeader + payload[bounds[i]..<bounds[i + 1]])
    }
    return (order ?? Array(pieces.indices)).map { pieces[$0] }
}

/// The fragments of `frame` (IPv4) in IP version `version` (as IPv6 with its TCP checksum taken again: the
/// pseudo-header's addresses changed).
func ipFragments(version: Int, of frame: [UInt8], id: UInt16, cuts: [Int], order: [Int]? = nil) -> [[UInt8]] {
    version == 4 ? ipv4Fragments(of: frame, id: id, cuts: cuts, order: order)
        : ipv6Fragments(of: withTCPChecksum(ipv6Frame(frame)), id: UInt32(id), cuts: cuts, order: order)
}

/// `frame` (Ethernet; IPv4 without options or IPv6 without extension headers; TCP) with its TCP checksum right, as its
/// sender sums it before fragmenting: the engine drops a reassembled datagram whose checksum is wrong.
func withTCPChecksum(_ frame: [UInt8]) -> [UInt8] {
    var f = frame
    let v4 = f[12] == 0x08, t = v4 ? 34 : 54
    f.withUnsafeMutableBytes { raw in
        let p = raw.baseAddress!
        p.storeBytes(of: 0, toByteOffset: t + 16, as: UInt16.self)
        let words = UInt64(UInt16(6).bigEndian) &+ UInt64(UInt16(raw.count - t).bigEndian)
        let pseudo = InternetChecksum.sum(p + (v4 ? 26 : 22), count: v4 ? 8 : 32, initial: words)
        let sum = ~InternetChecksum.fold(InternetChecksum.sum(p + t, count: raw.count - t, initial: pseudo))
        p.storeBytes(of: sum, toByteOffset: t + 16, as: UInt16.self)
    }
    return f
}

/// `frame` as a VXLAN tunnel carries it (RFC 7348: outer Ethernet, IPv4 and UDP to port 4789, the I flag, VNI 0x123), as
/// a cloud's traffic mirror delivers it to a monitor.
func vxlan(_ frame: [UInt8]) -> [UInt8] {
    let udpLength = 8 + 8 + frame.count, total = 20 + udpLength
    var b: [UInt8] = [0, 9, 8, 7, 6, 5, 0, 9, 8, 7, 6, 4, 0x08, 0x00]
    b += [0x45, 0, UInt8(total >> 8), UInt8(total & 0xFF), 0, 0, 0x40, 0, 64, 17, 0, 0, 172, 16, 0, 1, 172, 16, 0, 2]
    b += [0xC3, 0x50, 0x12, 0xB5, UInt8(udpLength >> 8), UInt8(udpLength & 0xFF), 0, 0]
    return b + [0x08, 0, 0, 0, 0, 0x01, 0x23, 0] + frame
}

/// A Modbus/TCP Write Multiple Registers request (function 16) of `count` registers, transaction `transaction`.
func modbusWriteRequest(transaction: UInt16, count: Int) -> [UInt8] {
    let pdu: [UInt8] = [16, 0, 10, 0, UInt8(count), UInt8(count * 2)] + (0..<count * 2).map { UInt8($0 & 0xFF) }
    return [UInt8(transaction >> 8), UInt8(transaction & 0xFF), 0, 0, UInt8((pdu.count + 1) >> 8), UInt8((pdu.count + 1) & 0xFF), 1] + pdu
}

@Suite struct IPFragmentTests {
    static let client = ipv4(10, 0, 0, 5), server = ipv4(10, 0, 0, 9)

    /// A Modbus write in one TCP segment of an established connection (no handshake: the flow starts midstream), its
    /// TCP checksum right.
    static func writeFrame(port: UInt16 = 40000, transaction: UInt16 = 1, registers: Int = 40) -> [UInt8] {
        withTCPChecksum(tcpFrame(src: client, sport: port, dst: server, dport: 502, seq: 1000, ack: 1, flags: 0x18,
                                 payload: modbusWriteRequest(transaction: transaction, count: registers)))
    }

    static func fragment(_ frame: [UInt8]) -> IPFragment? {
        ByteView.with(frame) { PacketDecoder.ipFragment($0, linkType: 1) }
    }

    static func add(_ frame: [UInt8], to table: IPReassembly, at second: Int64 = 0) -> IPReassembly.Outcome? {
        guard let f = fragment(frame) else { return nil }
        return ByteView.with(frame) { table.add(f, frame: $0, second: second) }
    }

    static func completedFrame(_ outcome: IPReassembly.Outcome?) -> [UInt8]? {
        if case .complete(let frame, _, _)? = outcome { return Array(frame.raw) }
        return nil
    }

    static func problem(_ outcome: IPReassembly.Outcome?) -> IPFragmentProblem? {
        if case .rejected(let p, _)? = outcome { return p }
        return nil
    }

    // MARK: - The table

    /// In any order, the last fragment in completes the datagram, which reads as the unfragmented frame (only the
    /// identification differs: it is kept); inside a VXLAN tunnel, as the unfragmented frame the tunnel carried.
    @Test(arguments: [[0, 1, 2], [2, 1, 0], [1, 0, 2], [2, 0, 1]], [false, true])
    func fragmentsInAnyOrderGiveBackTheFrame(order: [Int], tunnelled: Bool) throws {
        let frame = Self.writeFrame()
        let pieces = ipv4Fragments(of: frame, id: 77, cuts: [16, 48], order: order).map { tunnelled ? vxlan($0) : $0 }
        let table = IPReassembly()
        for piece in pieces.dropLast() {
            guard case .held? = Self.add(piece, to: table) else { Issue.record("not held"); return }
        }
        var expected = frame
        expected[18] = 0; expected[19] = 77   // the identification kept, the flags and offset cleared
        expected[20] = 0
        #expect(Self.completedFrame(Self.add(pieces[pieces.count - 1], to: table)) == expected)
        #expect(table.pendingCount == 0)
    }

    /// IPv6: the datagram reads as the unfragmented frame, the fragment header gone and the header before it (the
    /// IPv6 header's, or a hop-by-hop header's) naming what it named.
    @Test(arguments: [[0, 1, 2], [2, 0, 1]], [false, true])
    func ipv6FragmentsGiveBackTheFrame(order: [Int], hopByHop: Bool) {
        let frame = ipv6Frame(Self.writeFrame())
        let pieces = ipv6Fragments(of: frame, id: 0x0102_0304, cuts: [16, 48], order: order, hopByHop: hopByHop)
        let table = IPReassembly()
        for piece in pieces.dropLast() {
            guard case .held? = Self.add(piece, to: table) else { Issue.record("not held"); return }
        }
        var expected = frame
        if hopByHop {
            let length = Int(frame[18]) << 8 | Int(frame[19]) + 8
            expected[18] = UInt8(length >> 8); expected[19] = UInt8(length & 0xFF); expected[20] = 0
            expected.insert(contentsOf: [6, 0, 1, 4, 0, 0, 0, 0], at: 54)
        }
        #expect(Self.completedFrame(Self.add(pieces[pieces.count - 1], to: table)) == expected)
    }

    @Test func aResentFragmentIsAcceptedAndAConflictingOverlapGivesTheDatagramUp() {
        let frame = Self.writeFrame()
        let pieces = ipv4Fragments(of: frame, id: 5, cuts: [16, 48])
        let table = IPReassembly()
        _ = Self.add(pieces[0], to: table)
        guard case .held? = Self.add(pieces[0], to: table) else { Issue.record("a resent fragment was not held"); return }
        // The same range with one byte changed: a host keeping the first copy and one keeping the second disagree.
        var forged = pieces[1]
        forged[40] ^= 0xFF
        _ = Self.add(pieces[1], to: table)
        #expect(Self.problem(Self.add(forged, to: table)) == .overlapConflict)
        #expect(table.pendingCount == 0)
        // What comes after starts afresh and does not complete with the forged bytes.
        guard case .held? = Self.add(pieces[2], to: table) else { Issue.record("not held"); return }
    }

    @Test func lengthProblemsGiveTheDatagramUp() {
        let frame = Self.writeFrame()
        let pieces = ipv4Fragments(of: frame, id: 9, cuts: [16, 48])
        // A middle fragment whose length is not a multiple of 8.
        var odd = ipv4Fragments(of: frame, id: 9, cuts: [16, 45])[1]
        #expect(Self.problem(Self.add(odd, to: IPReassembly())) == .badLength)
        // Two last fragments ending in different places.
        let table = IPReassembly()
        _ = Self.add(pieces[2], to: table)
        let shorter = ipv4Fragments(of: Array(frame.dropLast(8)), id: 9, cuts: [16, 48])[2]
        #expect(Self.problem(Self.add(shorter, to: table)) == .badLength)
        // Past 65,535 bytes of datagram.
        odd = pieces[1]
        odd[20] = 0x3F; odd[21] = 0xFF   // MF clear, offset 8,191 × 8
        #expect(Self.problem(Self.add(odd, to: IPReassembly())) == .tooLarge)
        // Cut by the snapshot length.
        #expect(Self.problem(Self.add(Array(pieces[1].dropLast(4)), to: IPReassembly())) == .truncated)
    }

    @Test func tooManyPiecesTimeoutsAndAFullTableAreBounded() {
        var limits = IPReassemblyLimits()
        limits.maximumPieces = 2; limits.maximumDatagrams = 2; limits.timeoutSeconds = 30
        let frame = Self.writeFrame()
        let pieces = ipv4Fragments(of: frame, id: 1, cuts: [8, 16, 24, 32])
        let table = IPReassembly(limits: limits)
        _ = Self.add(pieces[0], to: table)
        _ = Self.add(pieces[2], to: table)
        #expect(Self.problem(Self.add(pieces[4], to: table)) == .tooManyPieces)

        let a = ipv4Fragments(of: frame, id: 2, cuts: [16])[0], b = ipv4Fragments(of: frame, id: 3, cuts: [16])[0]
        let c = ipv4Fragments(of: frame, id: 4, cuts: [16])[0]
        _ = Self.add(a, to: table, at: 100)
        _ = Self.add(b, to: table, at: 110)
        #expect(table.takeEviction() == nil)
        _ = Self.add(c, to: table, at: 120)
        #expect(table.takeEviction() == 16)   // the oldest (a) gave way
        #expect(table.nextExpired(at: 139) == nil)   // b came at 110: 29 s
        #expect(table.nextExpired(at: 140) == 16)
        #expect(table.nextExpired(at: 140) == nil)
        #expect(table.removeAll() == 1)   // c
    }
}

private extension Engine {
    func feed(_ frame: [UInt8], at second: Int64) {
        ByteView.with(frame) { process($0, linkType: 1, time: PacketTime(seconds: second, microseconds: 0), wireLength: frame.count) }
    }
    func drainedLines(_ kind: RecordKind) -> [String] {
        var out = RecordLines()
        drainRecords { out.add($0, $1) }
        return out.lines[kind] ?? []
    }
}

extension IPFragmentTests {
    // MARK: - The engine

    /// A Modbus write carried in three IP fragments is dissected, in the frame that completes it, in any order; the
    /// summary counts the fragments and the datagram.
    @Test(arguments: [[0, 1, 2], [2, 0, 1]], [4, 6])
    func aWriteInIPFragmentsIsDissected(order: [Int], version: Int) {
        let engine = Engine(configuration: engineConfiguration())
        for piece in ipFragments(version: version, of: Self.writeFrame(), id: 300, cuts: [16, 48], order: order) { engine.feed(piece, at: 10) }
        engine.finish()
        #expect(engine.statistics.pdus[Int(AppProtocol.modbus.rawValue)] == 1)
        #expect(engine.statistics.operations == 1)
        #expect(engine.statistics.ipFragments == 3 && engine.statistics.ipDatagramsReassembled == 1)
        #expect(engine.statistics.decodeFailureTotal == 0 && engine.statistics.anomalies == 0)
        let flows = engine.drainedLines(.flow)
        #expect(flows.count == 1 && flows.first?.contains(#""port":502"#) == true)
    }

    /// The same inside a VXLAN tunnel (a remote SPAN): the carried frame's IP packet is the fragmented one, and the
    /// datagram is that frame's flow (the one its unfragmented packets go to).
    @Test func aWriteInIPFragmentsInsideATunnelIsDissected() {
        let engine = Engine(configuration: engineConfiguration())
        for piece in ipv4Fragments(of: Self.writeFrame(), id: 301, cuts: [16, 48], order: [1, 2, 0]) { engine.feed(vxlan(piece), at: 10) }
        engine.feed(vxlan(tcpFrame(src: Self.server, sport: 502, dst: Self.client, dport: 40000, seq: 1, ack: 1094, flags: 0x10)), at: 10)
        engine.finish()
        #expect(engine.statistics.pdus[Int(AppProtocol.modbus.rawValue)] == 1)
        #expect(engine.statistics.ipDatagramsReassembled == 1 && engine.statistics.decodeFailureTotal == 0)
        let flows = engine.drainedLines(.flow)
        #expect(flows.count == 1 && flows.first?.contains(#""ip":"10.0.0.9","port":502,"packets":1"#) == true, "\(flows)")
        // The error that names the fragment stays small (it is returned on the general path).
        #expect(MemoryLayout<DecodeError>.size <= 16)
    }

    /// A fragment that overlaps another with different bytes (an evasion: which copy a host keeps depends on its
    /// stack) is reported and its datagram is not dissected; a datagram missing a fragment is reported when the
    /// timeout passes, and one still incomplete at the end of input is counted.
    @Test func evasionsAndLossesAreReportedNotDissected() {
        let engine = Engine(configuration: engineConfiguration())
        let pieces = ipv4Fragments(of: Self.writeFrame(), id: 1, cuts: [16, 48])
        var forged = pieces[1]
        forged[50] ^= 0x01
        for p in [pieces[0], pieces[1], forged, pieces[2]] { engine.feed(p, at: 10) }
        let missing = ipv4Fragments(of: Self.writeFrame(port: 40001), id: 2, cuts: [16, 48])
        engine.feed(missing[0], at: 11); engine.feed(missing[2], at: 11)
        engine.feed(tcpFrame(src: 1, sport: 1, dst: 2, dport: 2, seq: 1, flags: 0x10), at: 41)   // a sweep 30 s after `missing` began
        engine.feed(ipv4Fragments(of: Self.writeFrame(port: 40002), id: 3, cuts: [16, 48])[0], at: 42)
        engine.finish()
        #expect(engine.statistics.pdus[Int(AppProtocol.modbus.rawValue)] == 0)
        let kinds = engine.drainedLines(.anomaly).compactMap { line in
            ["fragment_overlap_conflict", "fragments_incomplete"].first { line.contains(#""kind":"\#($0)""#) && line.contains(#""layer":"ip""#) }
        }
        // (The forged datagram's last fragment, after the conflict, begins a datagram of its own: it times out too.)
        #expect(kinds == ["fragment_overlap_conflict", "fragments_incomplete", "fragments_incomplete"])
        #expect(engine.statistics.ipFragments == 7 && engine.statistics.ipDatagramsReassembled == 0)
        #expect(engine.statistics.ipDatagramsCutByCapture == 1)
    }

    /// A fragment inside a reassembled datagram (here a fragmented VXLAN packet carrying a fragment) is not reassembled
    /// in turn: reported as before, so that a sender cannot stack reassemblies.
    @Test func aFragmentInsideAReassembledDatagramIsReportedNotReassembled() {
        let engine = Engine(configuration: engineConfiguration())
        let inner = ipv4Fragments(of: Self.writeFrame(), id: 7, cuts: [16])[0]
        for outer in ipv4Fragments(of: vxlan(inner), id: 8, cuts: [24]) { engine.feed(outer, at: 10) }
        #expect(engine.statistics.ipDatagramsReassembled == 1 && engine.statistics.ipFragments == 2)
        #expect(engine.statistics.decodeFailures[Int(DecodeFailure.ipFragment.rawValue)] == 1)
        #expect(engine.drainedLines(.anomaly).contains { $0.contains("ip_fragment_not_reassembled") })
    }

    // MARK: - Several workers

    /// A capture of fragmented writes on many flows (so that datagrams complete in workers other than worker 0, whose
    /// packets the fragments are), in varied orders, with conflicts, losses and timeouts, IPv4 and IPv6, plain or inside
    /// VXLAN: 2 and 3
    /// workers write one engine's records and alerts, whether a reader thread copies the fragments to every worker or the workers read
    /// the file (mapped, or through libpcap).
    @Test(arguments: [2, 3], [(4, false), (4, true), (6, false), (6, true)])
    func severalWorkersReassembleAsOneEngine(workers: Int, shape: (version: Int, tunnelled: Bool)) throws {
        let (version, tunnelled) = shape
        var packets: [(PacketTime, [UInt8])] = []
        let orders = [[0, 1, 2], [2, 1, 0], [1, 2, 0], [0, 2, 1]]
        for i in 0..<40 {
            let time = PacketTime(seconds: 1_700_000_000 + Int64(i / 4), microseconds: Int32(i * 1000))
            let port = UInt16(41000 + i)
            var pieces = ipFragments(version: version, of: Self.writeFrame(port: port, transaction: UInt16(i)), id: UInt16(i),
                                     cuts: [16, 48], order: orders[i % orders.count])
            if i % 7 == 3 { var forged = pieces[1]; forged[forged.count - 1] ^= 0x10; pieces.insert(forged, at: 2) }
            if i % 11 == 5 { pieces.removeLast() }
            for p in pieces { packets.append((time, tunnelled ? vxlan(p) : p)) }
            let reply4 = tcpFrame(src: Self.server, sport: 502, dst: Self.client, dport: port, seq: 1, ack: 1000 + 94, flags: 0x10)
            let reply = version == 4 ? reply4 : ipv6Frame(reply4)
            packets.append((time, tunnelled ? vxlan(reply) : reply))
        }
        // 40 s on: what is still incomplete times out.
        packets.append((PacketTime(seconds: 1_700_000_050, microseconds: 0), tcpFrame(src: 1, sport: 1, dst: 2, dport: 2, seq: 1, flags: 0x10)))
        let file = try temporaryFile(pcapFile(timed: packets), "fragments-\(workers)-\(version)-\(tunnelled)")
        defer { try? FileManager.default.removeItem(atPath: file) }
        let one = runSingle([file], policy: demoPolicy).sorted
        #expect((one.lines[.modbus]?.count ?? 0) > 20)
        #expect(one.lines[.anomaly]?.contains { $0.contains("fragment_overlap_conflict") } == true)
        #expect(one.lines[.anomaly]?.contains { $0.contains("fragments_incomplete") } == true)
        for feed in [PipelineFeed.reader, .workersRead(mapped: true), .workersRead(mapped: false)] {
            let many = runParallel([file], policy: demoPolicy, workers: workers, feed: feed).sorted
            #expect(one == many, "\(feed): one worker \(one), \(workers) workers \(many)")
        }
    }
}
