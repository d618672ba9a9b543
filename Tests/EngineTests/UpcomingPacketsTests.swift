import Testing
import Glibc
import Foundation
import Capture
import Wire

/// `PacketSource.upcoming` (the flow prefetch's lookahead) must name exactly the packets `next()` will deliver,
/// in classic pcap and pcapng, in host and swapped byte order, or nothing.
@Suite struct UpcomingPacketsTests {
    static let files = ["edge/ethernet-modbus.pcap", "edge/modbus-nsec-bigendian.pcap", "edge/tcp-split-pdu.pcap",
                        "demo/plant.pcap", "edge/modbus.pcapng"]

    /// Every packet's bytes, in order.
    func packets(_ path: String) throws -> [[UInt8]] {
        let source = try PacketSource.openFile(path)
        var out: [[UInt8]] = []
        while case .packet(_, let bytes) = try source.next() { out.append(Array(bytes.raw)) }
        return out
    }

    /// Reads `path` with `next()`, asking `upcoming(distance)` after each packet: every packet but the last `distance`
    /// is answered with the packet `next()` then delivers, and none past the end. Returns how many packets it holds.
    @discardableResult
    func expectEveryPacketAnswered(_ path: String, distance: Int) throws -> Int {
        let all = try packets(path)
        let source = try PacketSource.openFile(path)
        var index = -1, answered = 0
        while case .packet = try source.next() {
            index += 1
            let ahead = source.upcoming(distance)
            if index + distance < all.count {
                #expect(ahead.map { Array($0.raw) } == all[index + distance], "\(path): packet \(index + 1) + \(distance)")
                if ahead != nil { answered += 1 }
            } else {
                #expect(ahead == nil)
            }
        }
        #expect(index + 1 == all.count)
        #expect(answered == max(0, all.count - distance), "\(path)")
        return all.count
    }

    /// These files fit in the read buffer: every packet ahead is there.
    @Test(arguments: files, [1, 4, 8])
    func upcomingNamesThePacketsNextWillDeliver(file: String, distance: Int) throws {
        let count = try expectEveryPacketAnswered(repositoryRoot.appendingPathComponent("Fixtures/" + file).path, distance: distance)
        #expect(count > 0)
    }

    /// Writes `bytes` to a temporary file, runs `body` on its path, removes it.
    func withFile(_ name: String, _ bytes: [UInt8], _ body: (String) throws -> Void) throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("upcoming-\(getpid())-\(name)").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        try body(path)
    }

    /// pcapng as dumpcap and editcap write it and as others may: packets in enhanced and simple packet blocks (with
    /// options and padding), between them blocks with no packet (a second interface, name resolution, statistics, a
    /// custom block, a second section of the same byte order), in either byte order. Every answer is the packet
    /// `next()` then delivers; every packet but the last `distance` is answered.
    @Test(arguments: [false, true], [1, 3, 12])
    func pcapngBlocksAreSteppedOverAndPacketsNamed(swapped: Bool, distance: Int) throws {
        var writer = PcapngFile(swapped: swapped)
        let file = writer.build(packets: 40)
        try withFile("blocks-\(swapped)-\(distance).pcapng", file) { path in
            let count = try expectEveryPacketAnswered(path, distance: distance)
            #expect(count == 40)
        }
    }

    /// A block whose length libpcap would refuse (not a multiple of 4, shorter than a block, past the file's end), or
    /// more blocks without a packet than the walk steps over: no answer there, never a wrong one, and the packets
    /// before it are still answered. Where the broken length would lead, a valid packet block waits: libpcap never
    /// delivers it (it stops at the broken block), so an answer naming it would be wrong.
    @Test(arguments: [UInt32(14), 8, 1 << 20], [UInt32(0x0000_0BAD), 6])
    func aBrokenPcapngBlockEndsTheAnswers(length: UInt32, type: UInt32) throws {
        for swapped in [false, true] { try brokenBlock(length: length, type: type, swapped: swapped) }
    }

    func brokenBlock(length: UInt32, type: UInt32, swapped: Bool) throws {
        var w = PcapngFile(swapped: swapped)
        let lure = PcapngFile.frame(99)
        var broken: [UInt8]
        if type == 6 {
            // An enhanced packet block whole but for its total length.
            broken = w.enhancedPacket(lure, options: false)
            broken.replaceSubrange(4..<8, with: w.u32(length))
        } else {
            broken = w.u32(type) + w.u32(length) + [UInt8](repeating: 0xEE, count: length < 1 << 16 ? Int(length) - 8 : 0)
            broken += w.enhancedPacket(lure, options: false)
        }
        try expectAnswersStop(at: broken, swapped: swapped, name: "broken-\(length)-\(type)-\(swapped)")
    }

    /// An enhanced packet block whose captured length runs past its own end (into the next block): libpcap stops there.
    @Test(arguments: [false, true])
    func aPacketBlockWhoseCapturedLengthOverrunsItIsNotAnswered(swapped: Bool) throws {
        var w = PcapngFile(swapped: swapped)
        var broken = w.enhancedPacket(PcapngFile.frame(99), options: false)
        broken.replaceSubrange(20..<24, with: w.u32(UInt32(broken.count)))
        try expectAnswersStop(at: broken + w.enhancedPacket(PcapngFile.frame(98), options: false), swapped: swapped,
                              name: "overrun-\(swapped)")
    }

    /// Six packets, then `broken`: libpcap delivers the six and stops; the lookahead two ahead answers the first four
    /// and nothing at or past the broken block.
    func expectAnswersStop(at broken: [UInt8], swapped: Bool, name: String) throws {
        var w = PcapngFile(swapped: swapped)
        var file = w.header()
        let payloads = (0..<6).map { PcapngFile.frame($0) }
        for p in payloads { file += w.enhancedPacket(p, options: false) }
        file += broken
        try withFile(name + ".pcapng", file) { path in
            let source = try PacketSource.openFile(path)
            var index = -1, answered = 0
            while true {
                guard case .packet = try? source.next() else { break }
                index += 1
                if let ahead = source.upcoming(2) {
                    #expect(index + 2 < payloads.count && Array(ahead.raw) == payloads[index + 2], "\(name): packet \(index + 1) + 2")
                    answered += 1
                }
            }
            #expect(index + 1 == payloads.count, "\(name): libpcap stops at the broken block")
            #expect(answered == payloads.count - 2, "\(name)")
        }
    }

    /// Runs of blocks without packets: up to `RecordLookahead.blocksSkipped` (8) are stepped over.
    @Test(arguments: [false, true])
    func aLongRunOfBlocksWithoutPacketsIsNotWalked(swapped: Bool) throws {
        for run in [8, 9] {
            var w = PcapngFile(swapped: swapped)
            var f = w.header() + w.enhancedPacket(PcapngFile.frame(0), options: false)
            for _ in 0..<run { f += w.custom() }
            f += w.enhancedPacket(PcapngFile.frame(1), options: false)
            try withFile("run-\(run)-\(swapped).pcapng", f) { path in
                let source = try PacketSource.openFile(path)
                guard case .packet = try source.next() else { Issue.record("no first packet"); return }
                #expect(source.upcoming(1).map { Array($0.raw) } == (run <= 8 ? PcapngFile.frame(1) : nil), "\(run) blocks")
            }
        }
    }

    /// Standard input (`-`) is read ahead as a file is, classic pcap or pcapng: its format comes from libpcap's
    /// reading of the header (a stream cannot be read beside it). The file is put on descriptor 0 for the test.
    @Test func standardInputIsReadAheadAsAFileIs() throws {
        var writer = PcapngFile(swapped: true)
        let pcapng = writer.build(packets: 40)
        let plant = repositoryRoot.appendingPathComponent("Fixtures/demo/plant.pcap").path
        let swapped = repositoryRoot.appendingPathComponent("Fixtures/edge/modbus-nsec-bigendian.pcap").path
        try withFile("stdin.pcapng", pcapng) { ngPath in
            for path in [plant, swapped, ngPath] {
                let all = try packets(path)
                let saved = dup(STDIN_FILENO), file = open(path, O_RDONLY)
                #expect(saved >= 0 && file >= 0)
                defer { dup2(saved, STDIN_FILENO); close(saved) }
                dup2(file, STDIN_FILENO); close(file)
                var index = -1, answered = 0
                do {
                    let source = try PacketSource.openFile("-")
                    #expect(source.readsAhead)
                    while case .packet(_, let bytes) = try source.next() {
                        index += 1
                        #expect(index < all.count && Array(bytes.raw) == all[index])
                        guard index + 4 < all.count else { continue }
                        #expect(source.upcoming(4).map { Array($0.raw) } == all[index + 4], "\(path): packet \(index + 1) + 4")
                        answered += 1
                    }
                }
                #expect(index + 1 == all.count && answered == all.count - 4, "\(path)")
            }
        }
    }

    @Test func changingTheDistanceStillNamesTheRightPacket() throws {
        let path = repositoryRoot.appendingPathComponent("Fixtures/demo/plant.pcap").path
        let all = try packets(path)
        let source = try PacketSource.openFile(path)
        var index = -1
        while case .packet = try source.next() {
            index += 1
            let distance = 1 + index % 5
            guard index + distance < all.count else { continue }
            #expect(source.upcoming(distance).map { Array($0.raw) } == all[index + distance])
        }
    }

    /// Files of a few MiB (the demo plant's records 300 times, or 30,000 packets of pcapng with every block kind): the
    /// read buffer (64 KiB) is refilled many times and records straddle its end; answers are right or absent, and
    /// nearly every packet has one.
    @Test(arguments: ["pcap", "pcapng"])
    func acrossReadBufferRefillsAnswersAreRightOrAbsent(format: String) throws {
        var file: [UInt8]
        if format == "pcap" {
            let plant = try [UInt8](Data(contentsOf: repositoryRoot.appendingPathComponent("Fixtures/demo/plant.pcap")))
            file = Array(plant.prefix(24))
            for _ in 0..<300 { file += plant.dropFirst(24) }
        } else {
            var writer = PcapngFile(swapped: false)
            file = writer.build(packets: 30_000)
        }
        try withFile("refills.\(format)", file) { path in
            let all = try packets(path)
            let source = try PacketSource.openFile(path)
            var index = -1, answered = 0, wrong = 0
            while case .packet = try source.next() {
                index += 1
                guard let ahead = source.upcoming(8) else { continue }
                answered += 1
                if index + 8 >= all.count || Array(ahead.raw) != all[index + 8] { wrong += 1 }
            }
            #expect(wrong == 0)
            #expect(answered > all.count * 9 / 10, "\(answered) of \(all.count)")
        }
    }
}

/// A capture file and stdin are read by one thread: stdio must not lock the stream at each of libpcap's two
/// freads a packet (two atomic operations each, which also wait for the flow prefetches in flight).
@Test func captureStreamsAreReadWithoutStdioLocking() throws {
    let path = repositoryRoot.appendingPathComponent("Fixtures/demo/plant.pcap").path
    let source = try PacketSource.openFile(path)
    #expect(source.streamLocksEachRead == false)
}

/// A pcapng file built byte by byte (pcapng spec, draft-ietf-opsawg-pcapng): Ethernet frames in enhanced and simple
/// packet blocks, and the blocks without packets a capture may hold between them.
struct PcapngFile {
    let swapped: Bool
    private var serial = 0

    init(swapped: Bool) { self.swapped = swapped }

    func u32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: swapped ? v.byteSwapped : v) { Array($0) } }
    func u16(_ v: UInt16) -> [UInt8] { withUnsafeBytes(of: swapped ? v.byteSwapped : v) { Array($0) } }

    /// A block: type, total length, body padded to 4 bytes, total length again.
    func block(_ type: UInt32, _ body: [UInt8]) -> [UInt8] {
        let padded = body + [UInt8](repeating: 0, count: (4 - body.count % 4) % 4)
        let total = UInt32(12 + padded.count)
        return u32(type) + u32(total) + padded + u32(total)
    }

    /// An option list: one comment, then the end of options.
    func comment(_ text: String) -> [UInt8] {
        let t = Array(text.utf8)
        return u16(1) + u16(UInt16(t.count)) + t + [UInt8](repeating: 0, count: (4 - t.count % 4) % 4) + u16(0) + u16(0)
    }

    /// A section header block (byte-order magic, version 1.0, unknown length) and an Ethernet interface.
    func header() -> [UInt8] {
        block(0x0A0D_0D0A, u32(0x1A2B_3C4D) + u16(1) + u16(0) + [UInt8](repeating: 0xFF, count: 8)) + interface()
    }

    func interface() -> [UInt8] { block(1, u16(1) + u16(0) + u32(65_535)) }

    mutating func enhancedPacket(_ frame: [UInt8], options: Bool) -> [UInt8] {
        serial += 1
        return block(6, u32(0) + u32(0) + u32(UInt32(serial)) + u32(UInt32(frame.count)) + u32(UInt32(frame.count))
                        + frame + [UInt8](repeating: 0, count: (4 - frame.count % 4) % 4) + (options ? comment("seen \(serial)") : []))
    }

    func simplePacket(_ frame: [UInt8]) -> [UInt8] { block(3, u32(UInt32(frame.count)) + frame) }
    func nameResolution() -> [UInt8] { block(4, u16(1) + u16(8) + [10, 0, 0, 1] + Array("plc\0".utf8) + u16(0) + u16(0)) }
    func statistics() -> [UInt8] { block(5, u32(0) + u32(0) + u32(1)) }
    func custom() -> [UInt8] { block(0x0000_0BAD, u32(32_473) + [1, 2, 3, 4, 5]) }

    /// An Ethernet/IPv4/TCP frame to port 502 whose length and bytes depend on `n` (odd lengths: the blocks pad).
    static func frame(_ n: Int) -> [UInt8] {
        var f = [UInt8](repeating: 0, count: 54 + n % 7)
        f[12] = 0x08; f[14] = 0x45; f[23] = 6
        f[26] = 10; f[29] = UInt8(truncatingIfNeeded: n); f[30] = 10; f[33] = 2
        f[34] = UInt8(truncatingIfNeeded: n >> 8); f[35] = UInt8(truncatingIfNeeded: n); f[36] = 0x01; f[37] = 0xF6
        for i in 54..<f.count { f[i] = UInt8(truncatingIfNeeded: n &+ i) }
        return f
    }

    /// A file of `packets` frames, every kind of block mixed in.
    mutating func build(packets: Int) -> [UInt8] {
        var out = header()
        for n in 0..<packets {
            switch n % 10 {
            case 3: out += simplePacket(Self.frame(n))
            case 4: out += nameResolution() + enhancedPacket(Self.frame(n), options: true)
            case 6: out += statistics() + custom() + enhancedPacket(Self.frame(n), options: false)
            case 8: out += interface() + enhancedPacket(Self.frame(n), options: true)
            default: out += enhancedPacket(Self.frame(n), options: n % 2 == 0)
            }
            if n == packets / 2 { out += header() }   // a second section (same byte order)
        }
        return out
    }
}
