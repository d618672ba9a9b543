import Testing
import Foundation
import Wire
import Records
import Capture
import Engine

/// A capture holding every UDP datagram twice (a SPAN session mirroring both ports, two TAPs merged, PRP's two LANs)
/// is dissected as if it held each once: a copy of a datagram its side sent just before (`RecentDatagrams`) is
/// counted (`udpDatagramsCapturedTwice`), not dissected. Fed both, the DNP3 dissector saw every request twice.
@Suite struct DatagramCopyTests {
    /// A fixture's packets, each with its time re-laid one second apart (so that a copy's delay is the test's alone).
    static func packets(_ fixture: String) throws -> [[UInt8]] {
        let source = try PacketSource.openFile(repositoryRoot.appendingPathComponent("Fixtures/\(fixture)").path)
        var out: [[UInt8]] = []
        while case .packet(_, let bytes) = try source.next() { out.append(Array(bytes.raw)) }
        return out
    }

    /// A copy of packet `index` of the fixture, as the test lays it out.
    struct Copy {
        var after: Int           // fed after this many further originals (0: right after its original)
        var delayMicroseconds: Int32
        var identificationChange: UInt16 = 0
    }

    /// Every record line but flows (whose packet counts include the copies) and the copy counter. Originals get odd
    /// frame numbers, copies even ones, so that the records of a run with copies can equal one without.
    static func replay(_ packets: [[UInt8]], copy: Copy?) -> (lines: [String], copies: UInt64, statistics: EngineStatistics) {
        var c = EngineConfiguration()
        c.pduRecords = true; c.transactionRecords = true
        let engine = Engine(configuration: c)
        var pending: [(due: Int, frame: [UInt8], time: PacketTime, number: UInt64)] = []
        func feed(_ frame: [UInt8], _ time: PacketTime, _ number: UInt64) {
            ByteView.with(frame) { engine.process($0, linkType: 1, time: time, wireLength: frame.count, frame: number) }
        }
        for (i, frame) in packets.enumerated() {
            let time = PacketTime(seconds: 1_700_000_000 + Int64(i), microseconds: 0)
            feed(frame, time, UInt64(2 * i + 1))
            if let copy {
                var copied = frame
                let id = (UInt16(copied[18]) << 8 | UInt16(copied[19])) &+ copy.identificationChange
                copied[18] = UInt8(id >> 8); copied[19] = UInt8(id & 0xFF)
                pending.append((i + copy.after, copied, PacketTime(seconds: time.seconds, microseconds: copy.delayMicroseconds),
                                UInt64(2 * i + 2)))
            }
            while let first = pending.first, first.due <= i { feed(first.frame, first.time, first.number); pending.removeFirst() }
        }
        for p in pending { feed(p.frame, p.time, p.number) }
        engine.finish()
        var lines: [String] = []
        engine.drainRecords { kind, bytes in
            guard kind != .flow else { return }
            lines += String(decoding: bytes, as: UTF8.self).split(separator: "\n").map { "\(kind): \($0)" }
        }
        return (lines, engine.statistics.udpDatagramsCapturedTwice, engine.statistics)
    }

    /// 18 datagrams in 18 packets; and 18 in 28 packets, three of them in IP fragments, whose copies the IP
    /// reassembly sorts out: a fragment twice before its datagram completes adds nothing, and one after it completed
    /// is dropped (`ipFragmentsCapturedTwice`) rather than begin a datagram that never completes.
    @Test(arguments: [("dnp3/dnp3_udp.pcap", 18...18), ("dnp3/dnp3_udp_fragments.pcap", 15...18)])
    func copiesAreCountedNotDissected(fixture: String, copies: ClosedRange<UInt64>) throws {
        let packets = try Self.packets(fixture)
        let once = Self.replay(packets, copy: nil)
        #expect(once.copies == 0)
        #expect(once.lines.filter { $0.hasPrefix("dnp3") }.count >= 8)
        // Right after each datagram, after the next one or two (a mirror's two ports delay differently; a side's burst
        // may come before the copies).
        for copy in [Copy(after: 0, delayMicroseconds: 40), Copy(after: 1, delayMicroseconds: 9_000), Copy(after: 2, delayMicroseconds: 9_000)] {
            let twice = Self.replay(packets, copy: copy)
            #expect(copies.contains(twice.copies), "\(copy)")
            #expect(twice.lines == once.lines, "\(copy)")
            #expect(twice.statistics.ipDatagramsCutByCapture == 0, "\(copy)")
            #expect((twice.statistics.ipFragmentsCapturedTwice > 0) == (twice.statistics.ipFragments > 0), "\(copy)")
        }
    }

    /// A datagram sent again past the window, or with another IP identification, is a new datagram: dissected (each
    /// request and response twice), not counted.
    @Test(arguments: [Copy(after: 0, delayMicroseconds: 20_000), Copy(after: 0, delayMicroseconds: 40, identificationChange: 1)])
    func aRepeatThatIsNoCopyIsDissected(copy: Copy) throws {
        let packets = try Self.packets("dnp3/dnp3_udp.pcap")
        let once = Self.replay(packets, copy: nil), again = Self.replay(packets, copy: copy)
        #expect(again.copies == 0)
        #expect(again.lines != once.lines)
        #expect(again.lines.count > once.lines.count)
    }

    /// On the command line, with one worker or two: the summary counts the copies; the records are one copy's.
    @Test(.enabled(if: zonewatchBinary != nil), arguments: ["1", "2"])
    func theSummaryCountsCopies(workers: String) throws {
        let packets = try Self.packets("dnp3/dnp3_udp.pcap")
        let once = try temporaryFile(pcapFile(packets: packets, spacing: 200), "udp-once-\(workers).pcap")
        let twice = try temporaryFile(pcapFile(packets: packets.flatMap { [$0, $0] }, spacing: 100), "udp-twice-\(workers).pcap")
        defer { for f in [once, twice] { try? FileManager.default.removeItem(atPath: f) } }
        let out = NSTemporaryDirectory() + "zw-\(ProcessInfo.processInfo.processIdentifier)-udp-copies-\(workers)"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: out) }
        func dnp3Records(_ capture: String, _ folder: String) throws -> (summary: String, lines: Int) {
            let (status, _, summary) = try run(zonewatchBinary!, ["replay", capture, "--out", "\(out)/\(folder)", "--workers", workers])
            #expect(status == 0, "\(summary)")
            let text = (try? String(contentsOfFile: "\(out)/\(folder)/dnp3.jsonl", encoding: .utf8)) ?? ""
            return (summary, text.split(separator: "\n").count)
        }
        let copied = try dnp3Records(twice, "twice"), plain = try dnp3Records(once, "once")
        #expect(copied.summary.contains("zonewatch: udp datagrams captured twice (mirrored twice; the copy not dissected): 18\n"), "\(copied.summary)")
        #expect(!plain.summary.contains("captured twice"))
        #expect(copied.lines == plain.lines && plain.lines >= 8)
    }

    /// TCP needs no such check (the stream takes a copy as a retransmission): nothing counted, the records unchanged.
    @Test func tcpCopiesAreTheStreamsConcern() throws {
        let packets = try Self.packets("dnp3/dnp3_poll.pcap")
        let once = Self.replay(packets, copy: nil), twice = Self.replay(packets, copy: Copy(after: 0, delayMicroseconds: 40))
        #expect(twice.copies == 0)
        #expect(twice.lines == once.lines)
    }
}
