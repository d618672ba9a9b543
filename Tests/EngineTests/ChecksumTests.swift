import Testing
import Foundation
import Wire
import Records
import Decode
@testable import Engine

/// Checksums of the flows being dissected (`ChecksumValidation`). A segment with a wrong checksum is dropped by its
/// receiver; a monitor that took it could be shown a harmless request in place of the write the PLC then receives
/// (the real one looked like its retransmission). Captures from a host whose card computes checksums hold wrong ones
/// on that host's side throughout: a side's first verifiable packet decides whether it is verified.
@Suite struct ChecksumTests {
    static let client: UInt32 = 0x0A00_0001, server: UInt32 = 0x0A00_0002
    /// Read holding registers (unit 1, 10 registers), transaction 1: the decoy.
    static let read: [UInt8] = [0, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0, 10]
    /// Write single register (unit 1, register 5 := 7), transaction 1: what the PLC gets; and its echo.
    static let write: [UInt8] = [0, 1, 0, 0, 0, 6, 1, 6, 0, 5, 0, 7]

    /// How a frame's checksums are set.
    enum Sum { case right, partial, wrong }

    /// An Ethernet + IPv4 frame (`tcpFrame`, `udpFrame`) with its IPv4 header and transport checksums set as `sum`
    /// says: right, the pseudo-header's sum (a host offloading checksums), or right then changed.
    static func summed(_ frame: [UInt8], _ sum: Sum) -> [UInt8] {
        var f = frame
        f.withUnsafeMutableBytes { raw in
            let p = raw.baseAddress!
            func store(_ at: Int, _ value: UInt16) { p.storeBytes(of: value, toByteOffset: at, as: UInt16.self) }   // native words
            store(24, 0)
            store(24, ~InternetChecksum.fold(InternetChecksum.sum(p + 14, count: 20)))
            let udp = raw[23] == 17, field = udp ? 40 : 50
            store(field, 0)
            let pseudo = InternetChecksum.sum(p + 26, count: 8) &+ UInt64(UInt16(raw[23]).bigEndian)
                &+ UInt64(UInt16(raw.count - 34).bigEndian)
            let value = sum == .partial ? InternetChecksum.fold(pseudo) : ~InternetChecksum.fold(InternetChecksum.sum(p + 34, count: raw.count - 34, initial: pseudo))
            store(field, sum == .wrong ? value ^ 0x0101 : value)
        }
        return f
    }

    /// A Modbus connection: handshake, then `requests` (each sent whole at the client's next number, with its
    /// checksums), then the server's echo of the write; `clientSum` for every client packet unless a request says.
    static func connection(_ engine: Engine, clientSum: Sum = .right, requests: [(bytes: [UInt8], sum: Sum)]) {
        let c = client, s = server
        func send(_ f: [UInt8], _ sum: Sum) { engine.feed(summed(f, sum), at: 100) }
        send(tcpFrame(src: c, sport: 40000, dst: s, dport: 502, seq: 1000, flags: 0x02), clientSum)
        send(tcpFrame(src: s, sport: 502, dst: c, dport: 40000, seq: 5000, ack: 1001, flags: 0x12), .right)
        send(tcpFrame(src: c, sport: 40000, dst: s, dport: 502, seq: 1001, ack: 5001, flags: 0x10), clientSum)
        for r in requests {
            send(tcpFrame(src: c, sport: 40000, dst: s, dport: 502, seq: 1001, ack: 5001, flags: 0x18, payload: r.bytes), r.sum)
        }
        send(tcpFrame(src: s, sport: 502, dst: c, dport: 40000, seq: 5001, ack: 1013, flags: 0x18, payload: write), .right)
        send(tcpFrame(src: c, sport: 40000, dst: s, dport: 502, seq: 1013, ack: 5013, flags: 0x10), clientSum)
    }

    static func engine(_ mode: ChecksumValidation, onePass: Bool = true) -> Engine {
        var c = EngineConfiguration()
        c.transactionRecords = true; c.establishedTCPPath = onePass; c.checksums = mode
        return Engine(configuration: c)
    }

    static func records(_ engine: Engine) -> [RecordKind: [String]] {
        engine.finish()
        return ClosedFlowTests.drain(engine)
    }

    /// The decoy (a read, its checksum wrong) comes first at the write's sequence number: verified, it is dropped and
    /// reported, and the write that follows is dissected. Unverified (`off`), the monitor logs the read the PLC
    /// never took and misses the write.
    @Test(arguments: [true, false])
    func aDecoyWithAWrongChecksumIsDroppedAndTheRealRequestDissected(onePass: Bool) {
        for mode in [ChecksumValidation.auto, .on] {
            let engine = Self.engine(mode, onePass: onePass)
            Self.connection(engine, requests: [(Self.read, .wrong), (Self.write, .right)])
            let r = Self.records(engine)
            let modbus = r[.modbus, default: []]
            #expect(modbus.count == 1 && modbus.first?.contains(#""function_code":6,"function":"write_single_register""#) == true
                    && modbus.first?.contains(#""matched":true"#) == true, "\(mode): \(modbus)")
            let anomalies = r[.anomaly, default: []]
            #expect(anomalies.count == 1 && anomalies.first?.contains(#""layer":"tcp","kind":"bad_checksum""#) == true
                    && anomalies.first?.contains(#""frame":4,"#) == true && anomalies.first?.contains(#""value":12"#) == true,
                    "\(mode): \(anomalies)")
            #expect(engine.statistics.badChecksums == 1 && engine.statistics.checksumOffloadedSides == 0)
        }
        let engine = Self.engine(.off, onePass: onePass)
        Self.connection(engine, requests: [(Self.read, .wrong), (Self.write, .right)])
        let modbus = Self.records(engine)[.modbus, default: []]
        #expect(modbus.contains { $0.contains(#""function_code":3,"#) }, "the read the PLC never took: \(modbus)")
        #expect(!modbus.contains { $0.contains(#""function":"write_single_register""#) }, "the write missed: \(modbus)")
        #expect(engine.statistics.badChecksums == 0)
    }

    /// A host offloading checksums: every packet of the client's side carries the pseudo-header's sum from its SYN
    /// on. The side is taken as offloaded and everything is dissected as with checksums off; `on` drops them all.
    @Test(arguments: [true, false])
    func aSideOffloadedFromItsFirstPacketIsNotVerified(onePass: Bool) {
        let off = Self.engine(.off, onePass: onePass)
        Self.connection(off, clientSum: .partial, requests: [(Self.write, .partial)])
        let expected = Self.records(off)
        #expect(expected[.modbus, default: []].count == 1)
        let auto = Self.engine(.auto, onePass: onePass)
        Self.connection(auto, clientSum: .partial, requests: [(Self.write, .partial)])
        #expect(Self.records(auto) == expected)
        #expect(auto.statistics.checksumOffloadedSides == 1 && auto.statistics.badChecksums == 0)
        let on = Self.engine(.on, onePass: onePass)
        Self.connection(on, clientSum: .partial, requests: [(Self.write, .partial)])
        _ = Self.records(on)
        #expect(on.statistics.pdus[Int(AppProtocol.modbus.rawValue)] == 1, "the server's echo only")
        #expect(on.statistics.badChecksums == 4, "SYN, ACK, the write, the last ACK")
    }

    /// A sender cannot switch its side's checks off with a first packet forged wrong: a right checksum that an
    /// offloading card could not have left makes the side verified again, and the decoy after it is dropped.
    @Test func aForgedWrongFirstPacketDoesNotSwitchTheChecksOff() {
        let engine = Self.engine(.auto)
        engine.feed(Self.summed(tcpFrame(src: Self.client, sport: 40000, dst: Self.server, dport: 502, seq: 1000, flags: 0x02), .wrong), at: 99)
        Self.connection(engine, requests: [(Self.read, .wrong), (Self.write, .right)])
        let modbus = Self.records(engine)[.modbus, default: []]
        #expect(modbus.count == 1 && modbus.first?.contains(#""function_code":6"#) == true, "\(modbus)")
        #expect(engine.statistics.badChecksums == 1 && engine.statistics.checksumOffloadedSides == 1)
    }

    /// A SYN with another initial number and a wrong checksum inside a verified connection does not end it (port
    /// reuse): the write after it is dissected on the same flow.
    @Test func aForgedSYNWithAWrongChecksumDoesNotEndTheConnection() {
        let engine = Self.engine(.auto)
        let c = Self.client, s = Self.server
        for (f, sum) in [(tcpFrame(src: c, sport: 40000, dst: s, dport: 502, seq: 1000, flags: 0x02), Sum.right),
                         (tcpFrame(src: s, sport: 502, dst: c, dport: 40000, seq: 5000, ack: 1001, flags: 0x12), .right),
                         (tcpFrame(src: c, sport: 40000, dst: s, dport: 502, seq: 1001, ack: 5001, flags: 0x10), .right),
                         (tcpFrame(src: c, sport: 40000, dst: s, dport: 502, seq: 77_000, flags: 0x02), .wrong),
                         (tcpFrame(src: c, sport: 40000, dst: s, dport: 502, seq: 1001, ack: 5001, flags: 0x18, payload: Self.write), .right),
                         (tcpFrame(src: s, sport: 502, dst: c, dport: 40000, seq: 5001, ack: 1013, flags: 0x18, payload: Self.write), .right)] {
            engine.feed(Self.summed(f, sum), at: 100)
        }
        let r = Self.records(engine)
        #expect(engine.statistics.flowsCreated == 1)
        #expect(r[.modbus, default: []].count == 1)
        #expect(r[.anomaly, default: []].count == 1 && r[.anomaly, default: []].first?.contains("bad_checksum") == true, "\(r[.anomaly, default: []])")
    }

    /// UDP: a datagram with a wrong checksum on a verified side is dropped and reported as `udp`; a flow that is not
    /// dissected is not verified (its wrong checksums are not counted).
    @Test func aUDPDatagramWithAWrongChecksumIsDroppedAndUndissectedFlowsAreNotVerified() {
        let engine = Self.engine(.auto)
        let c = Self.client, s = Self.server
        engine.feed(Self.summed(udpFrame(src: c, sport: 40001, dst: s, dport: 502, payload: Self.read), .right), at: 100)
        engine.feed(Self.summed(udpFrame(src: c, sport: 40001, dst: s, dport: 502, payload: Self.write), .wrong), at: 100)
        let garbage = [UInt8](repeating: 0x17, count: 40)
        for sum in [Sum.right, .wrong, .wrong] {
            engine.feed(Self.summed(tcpFrame(src: c, sport: 40002, dst: s, dport: 8443, seq: 1, flags: 0x18, payload: garbage), sum), at: 100)
        }
        let r = Self.records(engine)
        #expect(engine.statistics.pdus[Int(AppProtocol.modbus.rawValue)] == 1, "the read only")
        #expect(engine.statistics.badChecksums == 1)
        #expect(r[.anomaly, default: []].contains { $0.contains(#""layer":"udp","kind":"bad_checksum""#) }, "\(r[.anomaly, default: []])")
    }

    /// A SYN that begins the next connection on a closed flow's ports is that connection's first packet: its right
    /// checksum makes the new flow's side verified, so a decoy right after it is dropped (it was taken as the side's
    /// first verdict, offloaded, when the SYN was checked against the old flow only).
    @Test(arguments: [true, false])
    func theNextConnectionsSYNDecidesItsSide(onePass: Bool) {
        let engine = Self.engine(.auto, onePass: onePass)
        let c = Self.client, s = Self.server
        Self.connection(engine, requests: [(Self.write, .right)])
        engine.feed(Self.summed(tcpFrame(src: c, sport: 40000, dst: s, dport: 502, seq: 1013, ack: 5013, flags: 0x14), .right), at: 101)
        for (f, sum) in [(tcpFrame(src: c, sport: 40000, dst: s, dport: 502, seq: 20000, flags: 0x02), Sum.right),
                         (tcpFrame(src: s, sport: 502, dst: c, dport: 40000, seq: 30000, ack: 20001, flags: 0x12), .right),
                         (tcpFrame(src: c, sport: 40000, dst: s, dport: 502, seq: 20001, ack: 30001, flags: 0x18, payload: Self.read), .wrong),
                         (tcpFrame(src: c, sport: 40000, dst: s, dport: 502, seq: 20001, ack: 30001, flags: 0x18, payload: Self.write), .right),
                         (tcpFrame(src: s, sport: 502, dst: c, dport: 40000, seq: 30001, ack: 20013, flags: 0x18, payload: Self.write), .right)] {
            engine.feed(Self.summed(f, sum), at: 102)
        }
        let modbus = Self.records(engine)[.modbus, default: []]
        #expect(engine.statistics.flowsCreated == 2)
        #expect(modbus.count == 2 && modbus.allSatisfy { $0.contains(#""function":"write_single_register""#) }, "\(modbus)")
        #expect(engine.statistics.badChecksums == 1 && engine.statistics.checksumOffloadedSides == 0)
    }

    /// `on`, a flow not dissected (garbage on port 502): a SYN with a wrong checksum on its ports begins no new flow.
    @Test func underOnAWrongSYNOnAFlowNotDissectedBeginsNoFlow() {
        let engine = Self.engine(.on)
        let c = Self.client, s = Self.server
        let garbage = [UInt8](repeating: 0x17, count: 24)
        for (f, sum) in [(tcpFrame(src: c, sport: 40000, dst: s, dport: 502, seq: 1000, flags: 0x02), Sum.right),
                         (tcpFrame(src: s, sport: 502, dst: c, dport: 40000, seq: 5000, ack: 1001, flags: 0x12), .right),
                         (tcpFrame(src: c, sport: 40000, dst: s, dport: 502, seq: 1001, ack: 5001, flags: 0x18, payload: garbage), .right),
                         (tcpFrame(src: c, sport: 40000, dst: s, dport: 502, seq: 77_000, flags: 0x02), .wrong)] {
            engine.feed(Self.summed(f, sum), at: 100)
        }
        #expect(engine.statistics.flowsCreated == 1 && engine.statistics.badChecksums == 1)
    }

    /// A datagram reassembled from IP fragments had its checksum computed in software by its sender, offloading or
    /// not: a wrong one is dropped even on a side taken as offloaded (the real-stack fixture's side is: loopback).
    @Test func aReassembledDatagramWithAWrongChecksumIsDroppedOnAnySide() throws {
        var packets = try DatagramCopyTests.packets("dnp3/dnp3_udp_fragments.pcap")
        // The first fragment (more fragments, offset 0) of the first fragmented UDP datagram: its UDP checksum.
        let first = try #require(packets.firstIndex { $0[23] == 17 && $0[20] & 0x20 != 0 && $0[20] & 0x1F == 0 && $0[21] == 0 })
        packets[first][40] ^= 0x01
        func run(_ mode: ChecksumValidation) -> (pdus: Int, statistics: EngineStatistics, anomalies: [String]) {
            let engine = Self.engine(mode)
            for (i, f) in packets.enumerated() { engine.feed(f, at: 100 + Int64(i)) }
            let r = Self.records(engine)
            return (Int(engine.statistics.pdus[Int(AppProtocol.dnp3.rawValue)]), engine.statistics, r[.anomaly, default: []])
        }
        let verified = run(.auto), unverified = run(.off)
        #expect(verified.statistics.badChecksums == 1 && verified.statistics.checksumOffloadedSides >= 1)
        #expect(verified.pdus < unverified.pdus, "the datagram's frames not dissected")
        #expect(verified.anomalies.contains { $0.contains(#""layer":"udp","kind":"bad_checksum""#) }, "\(verified.anomalies)")
    }

    /// `on`: a packet that would begin a flow with a wrong checksum begins none.
    @Test func underOnAWrongFirstPacketBeginsNoFlow() {
        let engine = Self.engine(.on)
        engine.feed(Self.summed(tcpFrame(src: Self.client, sport: 40000, dst: Self.server, dport: 502, seq: 1000, flags: 0x02), .wrong), at: 100)
        #expect(engine.statistics.flowsCreated == 0 && engine.statistics.badChecksums == 1)
        engine.feed(Self.summed(tcpFrame(src: Self.client, sport: 40000, dst: Self.server, dport: 502, seq: 1000, flags: 0x02), .right), at: 100)
        #expect(engine.statistics.flowsCreated == 1)
    }
}

/// The shipped captures were taken on loopback, where Linux leaves partial checksums on every TCP and UDP packet:
/// verifying (`auto`) must change none of their records.
@Test(arguments: fixtureCaptures)
func offloadedFixturesGiveTheSameRecordsWhetherVerifiedOrNot(_ capture: String) {
    let path = repositoryRoot.appendingPathComponent("Fixtures").appendingPathComponent(capture).path
    let verified = allRecords(of: path, establishedPath: true, checksums: .auto)
    let unverified = allRecords(of: path, establishedPath: true, checksums: .off)
    #expect(verified?.lines.count == unverified?.lines.count)
    for (a, b) in zip(verified?.lines ?? [], unverified?.lines ?? []) where a != b {
        Issue.record("verified: \(a.prefix(400))\nunverified: \(b.prefix(400))")
        break
    }
}

/// Public captures taken on a host, with one side's checksums offloaded and the other's right (and one with a TSO
/// segment among offloaded ones): the same records verified or not.
@Test(.enabled(if: corpusAvailable), arguments: ["emreekin_hmi.pcap", "iti_mb2.pcap", "ctsamples_Plant1_S7comm.pcap",
                                                   "malcolm-pcap_DNP3.pcap", "iti_s7comm_downloading_block_db1.pcap"])
func hostCapturesWithOneSideOffloadedGiveTheSameRecordsVerifiedOrNot(_ name: String) throws {
    let path = try #require(publicCaptures().first { $0.hasSuffix("/" + name) }, "\(name) is not in the corpus")
    let verified = allRecords(of: path, establishedPath: true, checksums: .auto)
    let unverified = allRecords(of: path, establishedPath: true, checksums: .off)
    #expect(verified != nil && verified?.lines.count == unverified?.lines.count)
    for (a, b) in zip(verified?.lines ?? [], unverified?.lines ?? []) where a != b {
        Issue.record("verified: \(a.prefix(400))\nunverified: \(b.prefix(400))")
        break
    }
}

/// On the command line: `--checksums` takes auto (the default), on and off, and nothing else; the summary counts what
/// was dropped and the sides taken as offloaded, with one worker or two.
@Test(.enabled(if: zonewatchBinary != nil), arguments: ["1", "2"])
func theChecksumsOptionAndItsSummary(workers: String) throws {
    var frames: [[UInt8]] = []
    let c = ChecksumTests.client, s = ChecksumTests.server
    func add(_ f: [UInt8], _ sum: ChecksumTests.Sum) { frames.append(ChecksumTests.summed(f, sum)) }
    add(tcpFrame(src: c, sport: 40000, dst: s, dport: 502, seq: 1000, flags: 0x02), .right)
    add(tcpFrame(src: s, sport: 502, dst: c, dport: 40000, seq: 5000, ack: 1001, flags: 0x12), .right)
    add(tcpFrame(src: c, sport: 40000, dst: s, dport: 502, seq: 1001, ack: 5001, flags: 0x10), .right)
    add(tcpFrame(src: c, sport: 40000, dst: s, dport: 502, seq: 1001, ack: 5001, flags: 0x18, payload: ChecksumTests.read), .wrong)
    add(tcpFrame(src: c, sport: 40000, dst: s, dport: 502, seq: 1001, ack: 5001, flags: 0x18, payload: ChecksumTests.write), .right)
    add(tcpFrame(src: s, sport: 502, dst: c, dport: 40000, seq: 5001, ack: 1013, flags: 0x18, payload: ChecksumTests.write), .right)
    // A second connection from a host offloading checksums.
    add(tcpFrame(src: c, sport: 40001, dst: s, dport: 502, seq: 1000, flags: 0x02), .partial)
    add(tcpFrame(src: s, sport: 502, dst: c, dport: 40001, seq: 5000, ack: 1001, flags: 0x12), .right)
    let capture = try temporaryFile(pcapFile(packets: frames), "checksums-\(workers).pcap")
    defer { try? FileManager.default.removeItem(atPath: capture) }
    let dropped = "zonewatch: wrong checksums (dropped, as their receivers drop them): "
    let auto = try run(zonewatchBinary!, ["replay", capture, "--workers", workers])
    #expect(auto.0 == 0 && auto.2.contains(dropped + "1  flow sides taken as offloaded (not verified): 1\n"), "\(auto.2)")
    let on = try run(zonewatchBinary!, ["replay", capture, "--workers", workers, "--checksums", "on"])
    #expect(on.0 == 0 && on.2.contains(dropped + "2  flow sides taken as offloaded (not verified): 0\n"), "\(on.2)")
    let off = try run(zonewatchBinary!, ["replay", capture, "--workers", workers, "--checksums", "off"])
    #expect(off.0 == 0 && !off.2.contains("wrong checksums"), "\(off.2)")
    let bad = try run(zonewatchBinary!, ["replay", capture, "--checksums", "sometimes"])
    #expect(bad.0 == 2 && bad.2.contains("--checksums takes auto, on or off"), "\(bad.2)")
}
