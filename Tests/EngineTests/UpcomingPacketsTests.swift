import Testing
import Foundation
import Capture
import Wire

/// `PacketSource.upcoming` (the flow prefetch's lookahead) must name exactly the packets `next()` will deliver,
/// in host and swapped byte order, and nothing for formats it cannot read ahead in.
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

    @Test(arguments: files, [1, 4, 8])
    func upcomingNamesThePacketsNextWillDeliver(file: String, distance: Int) throws {
        let path = repositoryRoot.appendingPathComponent("Fixtures/" + file).path
        let all = try packets(path)
        #expect(!all.isEmpty)
        let source = try PacketSource.openFile(path)
        var index = -1, answered = 0
        while case .packet = try source.next() {
            index += 1
            let ahead = source.upcoming(distance)
            if file.hasSuffix(".pcapng") { #expect(ahead == nil); continue }
            // These files fit in the read buffer: every packet ahead is there, and none past the end.
            if index + distance < all.count {
                #expect(ahead.map { Array($0.raw) } == all[index + distance], "packet \(index + 1) + \(distance)")
                answered += 1
            } else {
                #expect(ahead == nil)
            }
        }
        #expect(index + 1 == all.count)
        if !file.hasSuffix(".pcapng") { #expect(answered == max(0, all.count - distance)) }
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

    @Test func acrossReadBufferRefillsAnswersAreRightOrAbsent() throws {
        // 3 MiB of records: the read buffer (64 KiB) is refilled many times, records straddle its end.
        let plant = try Data(contentsOf: repositoryRoot.appendingPathComponent("Fixtures/demo/plant.pcap"))
        var file = plant.prefix(24)
        for _ in 0..<300 { file.append(plant.dropFirst(24)) }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("upcoming-\(getpid()).pcap").path
        try file.write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
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

/// A capture file and stdin are read by one thread: stdio must not lock the stream at each of libpcap's two
/// freads a packet (two atomic operations each, which also wait for the flow prefetches in flight).
@Test func captureStreamsAreReadWithoutStdioLocking() throws {
    let path = repositoryRoot.appendingPathComponent("Fixtures/demo/plant.pcap").path
    let source = try PacketSource.openFile(path)
    #expect(source.streamLocksEachRead == false)
}
