import Foundation
import Testing
import Capture
import Engine
@testable import Policy   // `readTextFile`
@testable import Appliance

/// One engine reading a classic pcap file through a memory map (`MappedFileReplay`, what `zonewatch replay` does
/// with a file) writes exactly what it writes when libpcap reads every packet, line for line, including files that
/// make the map hand over to libpcap part-way.
@Suite struct MappedFileReplayTests {
    /// Runs `file` through one engine as `zonewatch replay` does: mapped records first, then libpcap from the first
    /// record the map leaves to it. Returns the records, and how many records the map took and whether it handed over.
    func runMapped(_ file: String, batch: Int = 7, prefetch: Bool = true) -> (lines: RecordLines, mapped: UInt64?, handedOver: Bool) {
        let engine = Engine(configuration: engineConfiguration())
        let observer = TestAlertObserver(policy: demoPolicy, sink: engine.sink)
        engine.observer = observer
        var out = RecordLines()
        guard let source = try? PacketSource.openFile(file) else { return (out, nil, false) }
        var mapped: UInt64?, handedOver = false
        var rest = true
        if let replay = MappedFileReplay(path: file, linkType: source.linkType.rawValue, engine: engine, prefetch: prefetch) {
            // Small batches: the hint walk and the record walk cross batch boundaries many times.
            while replay.dispatch(batch: batch) > 0 {}
            mapped = replay.records
            handedOver = replay.irregular
            rest = (try? replay.handOver(to: source)) == true
        }
        if rest {
            while case .packet(let h, let bytes)? = try? source.next() {
                engine.process(bytes, linkType: source.linkType.rawValue, time: h.time, wireLength: h.wireLength)
            }
        }
        engine.finish()
        engine.drainRecords { out.add($0, $1) }
        return (out, mapped, handedOver)
    }

    /// Every fixture: the same lines in the same order as libpcap's reading; the map takes the classic pcap files in
    /// host byte order (most fixtures) and hands the damaged ones over to libpcap.
    @Test func fixturesGiveWhatLibpcapReadingGives() {
        var mappedFiles = 0, handedOver = 0
        for file in fixtureCaptures() {
            let expected = runSingle([file], policy: demoPolicy)
            let (lines, mapped, over) = runMapped(file)
            #expect(lines == expected, "\(file): mapped \(lines), libpcap \(expected)")
            if mapped != nil { mappedFiles += 1 }
            if over { handedOver += 1 }
        }
        #expect(mappedFiles >= 20, "the map read only \(mappedFiles) fixtures")
        #expect(handedOver >= 1, "no fixture made the map hand over to libpcap")
    }

    /// A record longer than the file's snapshot length in the middle of a file: the map stops before it (libpcap
    /// truncates such a record to the snapshot length), libpcap reads on from there, and the records are libpcap's.
    @Test func aRecordLibpcapMustHandleHandsTheRestOver() throws {
        var packets: [[UInt8]] = []
        for i in 0..<40 {
            let payload: [UInt8] = i == 25 ? Array(repeating: 0x41, count: 200) : [0, UInt8(i), 0, 0, 0, 6, 1, 3, 0, 0, 0, 1]
            packets.append(tcpFrame(src: ipv4(10, 10, 0, 5), sport: 40_000, dst: ipv4(10, 20, 0, 7), dport: 502,
                                    seq: 1000 + UInt32(i) * 300, ack: 9000, flags: 0x18, payload: payload))
        }
        var bytes = pcapFile(packets)
        bytes.replaceSubrange(16..<20, with: [128, 0, 0, 0])   // snapshot length 128: only record 26 is longer
        let file = try temporaryFile(bytes, "mapped-handover.pcap")
        defer { try? FileManager.default.removeItem(atPath: file) }
        let expected = runSingle([file], policy: demoPolicy)
        let (lines, mapped, over) = runMapped(file)
        #expect(mapped == 25 && over, "map took \(String(describing: mapped)) records, handed over: \(over)")
        #expect(lines == expected, "mapped \(lines), libpcap \(expected)")
        #expect(expected.count > 0)
    }

    /// A file of 1.9 MB whose records all lie more than a snapshot length before its end but the last few: `dispatch`
    /// takes most records in its short loop (no end-of-file tests), which stops at each position report (every MiB),
    /// at batch ends and at a record libpcap must handle (a longer one than the snapshot length, near the end). The
    /// records are libpcap's, and the map takes every record before that one, whatever the batch size, with times in
    /// microseconds or nanoseconds, with prefetch hints or without.
    @Test(arguments: [(7, false, true), (4096, false, true), (4096, true, true), (4096, false, false), (7, true, false)])
    func theShortLoopGivesLibpcapsRecordsAcrossReportsAndAHandOver(batch: Int, nanoseconds: Bool, prefetch: Bool) throws {
        var packets: [[UInt8]] = []
        let oversize = 20_000
        for i in 0..<20_010 {
            let payload: [UInt8] = i == oversize ? Array(repeating: 0x41, count: 200) : [0, UInt8(i & 0xFF), 0, 0, 0, 6, 1, 3, 0, 0, 0, 1]
            packets.append(tcpFrame(src: ipv4(10, 10, 0, UInt8(i % 7)), sport: 40_000, dst: ipv4(10, 20, 0, 7), dport: 502,
                                    seq: 1000 + UInt32(i / 7) * 300, ack: 9000, flags: 0x18, payload: payload))
        }
        var bytes = pcapFile(packets, stepMicroseconds: 100)
        bytes.replaceSubrange(16..<20, with: [128, 0, 0, 0])   // snapshot length 128: only the oversize record is longer
        if nanoseconds {   // the nanosecond magic, and each record's fraction (microseconds here, plus 999 ns) scaled
            bytes.replaceSubrange(0..<4, with: [0x4D, 0x3C, 0xB2, 0xA1])
            var at = 24
            while at + 16 <= bytes.count {
                func le32(_ o: Int) -> UInt32 { bytes[o..<o + 4].reversed().reduce(0) { $0 << 8 | UInt32($1) } }
                let ns = le32(at + 4) * 1000 + 999
                bytes.replaceSubrange(at + 4..<at + 8, with: [UInt8(ns & 0xFF), UInt8(ns >> 8 & 0xFF), UInt8(ns >> 16 & 0xFF), UInt8(ns >> 24)])
                at += 16 + Int(le32(at + 8))
            }
        }
        #expect(bytes.count > (1 << 20) + 128, "the file must span a position report")
        let file = try temporaryFile(bytes, "mapped-short-loop-\(batch)-\(nanoseconds)-\(prefetch).pcap")
        defer { try? FileManager.default.removeItem(atPath: file) }
        let expected = runSingle([file], policy: demoPolicy)
        let (lines, mapped, over) = runMapped(file, batch: batch, prefetch: prefetch)
        #expect(mapped == UInt64(oversize) && over, "map took \(String(describing: mapped)) records, handed over: \(over)")
        #expect(lines == expected, "mapped \(lines), libpcap \(expected)")
        #expect(expected.count > 0)
    }

    /// A file that grows after it was mapped (still being written): the map takes what was there, libpcap the rest.
    @Test func aFileThatGrewIsReadToItsEnd() throws {
        func packets(_ range: Range<Int>) -> [[UInt8]] {
            range.map { i in
                tcpFrame(src: ipv4(10, 10, 0, 5), sport: 40_000, dst: ipv4(10, 20, 0, 7), dport: 502, seq: 1000 + UInt32(i) * 12,
                         ack: 9000, flags: 0x18, payload: [0, UInt8(i), 0, 0, 0, 6, 1, 3, 0, 0, 0, 1])
            }
        }
        let whole = pcapFile(packets(0..<30))
        let first = pcapFile(packets(0..<20))
        let file = try temporaryFile(first, "mapped-growing.pcap")
        defer { try? FileManager.default.removeItem(atPath: file) }
        let engine = Engine(configuration: engineConfiguration())
        let observer = TestAlertObserver(policy: nil, sink: engine.sink)
        engine.observer = observer
        let source = try PacketSource.openFile(file)
        let replay = try #require(MappedFileReplay(path: file, linkType: source.linkType.rawValue, engine: engine))
        // The last ten records arrive after the map was made.
        let handle = try #require(FileHandle(forWritingAtPath: file))
        handle.seekToEndOfFile(); handle.write(Data(whole[first.count...])); handle.closeFile()
        while replay.dispatch(batch: 4) > 0 {}
        #expect(replay.records == 20 && !replay.irregular)
        #expect(try replay.handOver(to: source))
        var rest = 0
        while case .packet(let h, let bytes) = try source.next() {
            engine.process(bytes, linkType: source.linkType.rawValue, time: h.time, wireLength: h.wireLength)
            rest += 1
        }
        #expect(rest == 10)
        engine.finish()
        var lines = RecordLines()
        engine.drainRecords { lines.add($0, $1) }
        let expected = try temporaryFile(whole, "mapped-grown.pcap")
        defer { try? FileManager.default.removeItem(atPath: expected) }
        #expect(lines == runSingle([expected], policy: nil))
    }

    /// Records whose seconds are 2^31 or more: libpcap reads them as signed (before 1970), so the map hands them over
    /// and the records are libpcap's.
    @Test func secondsFromTwoToTheThirtyFirstAreLibpcaps() throws {
        var packets: [[UInt8]] = []
        for i in 0..<12 {
            packets.append(tcpFrame(src: ipv4(10, 10, 0, 5), sport: 40_000, dst: ipv4(10, 20, 0, 7), dport: 502,
                                    seq: 1000 + UInt32(i) * 12, ack: 9000, flags: 0x18, payload: [0, UInt8(i), 0, 0, 0, 6, 1, 3, 0, 0, 0, 1]))
        }
        // Half a second apart from 2^31 - 1: the third record on have seconds of 2^31 and more.
        let file = try temporaryFile(pcapFile(packets, start: 0x7FFF_FFFF, stepMicroseconds: 500_000), "mapped-high-seconds.pcap")
        defer { try? FileManager.default.removeItem(atPath: file) }
        let expected = runSingle([file], policy: demoPolicy)
        let (lines, mapped, over) = runMapped(file)
        #expect(over && mapped == 2, "map took \(String(describing: mapped)) records, handed over: \(over)")
        #expect(lines == expected, "mapped \(lines), libpcap \(expected)")
    }

    /// A record of no captured bytes (its header not all zeros): the map hands it and the rest over to libpcap, which
    /// reads it as an empty packet, and the records are libpcap's.
    @Test func anEmptyRecordIsLibpcaps() throws {
        var packets: [[UInt8]] = []
        for i in 0..<16 {
            packets.append(i == 9 ? [] : tcpFrame(src: ipv4(10, 10, 0, 5), sport: 40_000, dst: ipv4(10, 20, 0, 7), dport: 502,
                                                  seq: 1000 + UInt32(i) * 12, ack: 9000, flags: 0x18,
                                                  payload: [0, UInt8(i), 0, 0, 0, 6, 1, 3, 0, 0, 0, 1]))
        }
        let file = try temporaryFile(pcapFile(packets), "mapped-empty-record.pcap")
        defer { try? FileManager.default.removeItem(atPath: file) }
        let expected = runSingle([file], policy: demoPolicy)
        let (lines, mapped, over) = runMapped(file)
        #expect(over && mapped == 9, "map took \(String(describing: mapped)) records, handed over: \(over)")
        #expect(lines == expected, "mapped \(lines), libpcap \(expected)")
    }

    /// A named pipe is not mapped, and asking does not wait for a writer (the open used to block for ever once the
    /// pipe's writer had gone).
    @Test(.timeLimit(.minutes(1))) func aNamedPipeIsLeftToLibpcap() throws {
        let path = NSTemporaryDirectory() + "zw-appl-\(ProcessInfo.processInfo.processIdentifier)-fifo"
        unlink(path)
        #expect(mkfifo(path, 0o600) == 0)
        defer { unlink(path) }
        #expect(MappedFileReplay(path: path, linkType: 1, engine: Engine(configuration: engineConfiguration())) == nil)
    }

    /// 4,000 Modbus requests over 50 flows, as a classic pcap file: the capture the truncation tests cut short.
    func pollingCapture() -> [UInt8] {
        var packets: [[UInt8]] = []
        for i in 0..<4000 {
            let payload: [UInt8] = [0, UInt8(i & 0xFF), 0, 0, 0, 6, 1, 3, 0, 0, 0, 1]
            packets.append(tcpFrame(src: ipv4(10, 10, 0, 5), sport: UInt16(40_000 + i % 50), dst: ipv4(10, 20, 0, 7), dport: 502,
                                    seq: 1000 + UInt32(i / 50) * 12, ack: 9000, flags: 0x18, payload: payload))
        }
        return pcapFile(packets)
    }

    /// A file cut short by another process after it was mapped: no crash (the read past its new end raised SIGBUS),
    /// the map stops, and libpcap reports the truncated file.
    @Test func aFileTruncatedWhileMappedStopsWithoutACrash() throws {
        let bytes = pollingCapture()
        let file = try temporaryFile(bytes, "mapped-truncated-later.pcap")
        defer { try? FileManager.default.removeItem(atPath: file) }
        let engine = Engine(configuration: engineConfiguration())
        let source = try PacketSource.openFile(file)
        let replay = try #require(MappedFileReplay(path: file, linkType: source.linkType.rawValue, engine: engine))
        #expect(truncate(file, off_t(bytes.count / 3)) == 0)
        while replay.dispatch(batch: 64) > 0 {}
        #expect(replay.irregular && replay.records < 4000 && replay.records > 1000, "\(replay.records) records taken")
        // libpcap's stdio may have buffered the start of the file: it reads on and meets the cut.
        var failed = false
        do {
            if try replay.handOver(to: source) { while case .packet = try source.next() {} }
        } catch { failed = true }
        #expect(failed, "libpcap did not report the truncated file")
    }

    /// The same cut under a map of windows (`MappedCapture` of its own, what each worker reads where no whole-file map
    /// could be made): the window past the new end raised SIGBUS, which killed the process before the windows were
    /// guarded too. The walk stops at the cut.
    @Test func aFileTruncatedUnderAWindowStopsWithoutACrash() throws {
        let bytes = pollingCapture()
        let file = try temporaryFile(bytes, "window-truncated-later.pcap")
        defer { try? FileManager.default.removeItem(atPath: file) }
        // Windows smaller than the file (the least `MappedCapture` takes), and a cut at a page boundary: the next
        // record's header, and the bytes of the one across the cut, lie on a page wholly past the file's end. (Cut
        // within a page, the rest of that page reads as zeros: the walk stops there without a fault.)
        let capture = try #require(MappedCapture(path: file, linkType: 1, windowBytes: 4096))
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        #expect(truncate(file, off_t(bytes.count / 3 / page * page)) == 0)
        var taken = 0, sum = 0
        while let record = capture.nextRaw() {
            taken += 1
            for byte in record.bytes.raw { sum &+= Int(byte) }   // every byte read, as the engine would
        }
        #expect(capture.irregular && taken < 4000 && taken > 1000 && sum > 0, "\(taken) records taken")
    }

    /// The whole-file map asks for huge pages over all of itself (the kernel's `hg` flag on the one area), so that what
    /// it reads back into the page cache comes as 2 MiB folios, and for sequential reading (`sr`).
    /// (Skipped on a kernel without transparent huge pages, which refuses the advice.)
    @Test(.enabled(if: FileManager.default.fileExists(atPath: "/sys/kernel/mm/transparent_hugepage")))
    func theWholeFileMapAsksForHugePagesAndSequentialReading() throws {
        let file = try temporaryFile(pollingCapture(), "mapped-huge-advice.pcap")
        defer { try? FileManager.default.removeItem(atPath: file) }
        let map = try #require(SharedCaptureMap(path: file, linkType: 1, workers: 1))
        let start = String(UInt(bitPattern: map.base), radix: 16)
        // Read to its end (`readTextFile`, as policies are read): a proc file says its size is 0, and Foundation's
        // reading stopped short of the map.
        let smaps = try #require(readTextFile("/proc/self/smaps"))
        // The map's area: its header line (start-end ...), then its fields up to its flags.
        let lines = smaps.components(separatedBy: "\n")
        let header = try #require(lines.firstIndex { $0.hasPrefix(start + "-") }, "no area starts at the map's base \(start)")
        let flags = try #require(lines[header...].first { $0.hasPrefix("VmFlags:") })
        let words = Set(flags.split(separator: " ").dropFirst().map(String.init))
        #expect(words.contains("hg") && words.contains("sr"), "the map's flags: \(flags)")
    }
}
