import Testing
import Foundation

/// A classic pcap file (µs, little-endian) with the given link type and packets, `spacing` microseconds apart.
func pcapFile(linkType: UInt32 = 1, packets: [[UInt8]], snaplen: UInt32 = 65535, spacing: UInt64 = 1_000_000) -> [UInt8] {
    func le32(_ v: UInt32) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v >> 16 & 0xFF), UInt8(v >> 24)] }
    var b = le32(0xA1B2_C3D4) + [2, 0, 4, 0] + le32(0) + le32(0) + le32(snaplen) + le32(linkType)
    for (i, p) in packets.enumerated() {
        let t = UInt64(i) * spacing
        b += le32(1_700_000_000 + UInt32(t / 1_000_000)) + le32(UInt32(t % 1_000_000)) + le32(UInt32(p.count)) + le32(UInt32(p.count)) + p
    }
    return b
}

func temporaryFile(_ bytes: [UInt8], _ name: String) throws -> String {
    let path = NSTemporaryDirectory() + "zw-\(ProcessInfo.processInfo.processIdentifier)-\(name)"
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    return path
}

private let binaryAvailable: Bool = {
    if zonewatchBinary == nil { print("note: ZONEWATCH_BIN is not set: command-line tests are skipped (run scripts/test)") }
    return zonewatchBinary != nil
}()

@Test(.enabled(if: binaryAvailable))
func garbageFileIsAnInputError() throws {
    let path = try temporaryFile(Array("this is not a capture file at all".utf8), "garbage.pcap")
    let (status, _, err) = try run(zonewatchBinary!, ["replay", path])
    #expect(status == 2)
    #expect(err.contains("zonewatch: \(path):"))
}

@Test(.enabled(if: binaryAvailable))
func missingFileIsAnInputError() throws {
    let (status, _, err) = try run(zonewatchBinary!, ["replay", "/nonexistent/capture.pcap"])
    #expect(status == 2 && err.contains("No such file"))
}

@Test(.enabled(if: binaryAvailable))
func unknownLinkTypeIsNamed() throws {
    let path = try temporaryFile(pcapFile(linkType: 147, packets: [[1, 2, 3]]), "user0.pcap")
    let (status, _, err) = try run(zonewatchBinary!, ["replay", path])
    #expect(status == 2 && err.contains("unsupported link type 147"))
}

@Test(.enabled(if: binaryAvailable))
func truncatedFileKeepsWhatCameBeforeTheDamage() throws {
    let packet = tcpFrame(src: 0x0A00_0001, sport: 1234, dst: 0x0A00_0002, dport: 80, seq: 1, flags: 0x02)
    var bytes = pcapFile(packets: [packet, packet, packet])
    bytes.removeLast(10)   // cut the last record short
    let path = try temporaryFile(bytes, "truncated.pcap")
    let (status, out, err) = try run(zonewatchBinary!, ["replay", path, "--flows", "-"])
    #expect(status == 2)
    #expect(err.contains("truncated"))
    #expect(out.split(separator: "\n").count == 1)   // the flow of the two whole packets was still written
    #expect(err.contains("packets: 2"))
}

@Test(.enabled(if: binaryAvailable))
func usageErrorsExitTwo() throws {
    #expect(try run(zonewatchBinary!, ["replay"]).0 == 2)
    #expect(try run(zonewatchBinary!, ["replay", "--bogus", "x.pcap"]).0 == 2)
    #expect(try run(zonewatchBinary!, ["frobnicate"]).0 == 2)
    let help = try run(zonewatchBinary!, ["replay", "--help"])
    #expect(help.0 == 0 && help.1.contains("--out DIR"))
}

@Test(.enabled(if: binaryAvailable))
func replayIsDeterministic() throws {
    var packets: [[UInt8]] = []
    for i in 0..<50 { packets.append(tcpFrame(src: 0x0A00_0001 + UInt32(i % 7), sport: 1000, dst: 0x0A00_0002, dport: 502, seq: UInt32(i), flags: 0x18, payload: [0, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0, 1])) }
    let path = try temporaryFile(pcapFile(packets: packets), "det.pcap")
    let a = try run(zonewatchBinary!, ["replay", path, "--flows", "-", "--quiet"])
    let b = try run(zonewatchBinary!, ["replay", path, "--flows", "-", "--quiet"])
    #expect(a.0 == 0 && !a.1.isEmpty && a.1 == b.1)
}

/// A run computes a flow's Community ID only when something writes it (records build it with the flow's context, alerts
/// from a context that leaves it pending): alerts written to stdout alone, or to a SIEM output alone, must still carry it.
@Test(.enabled(if: binaryAvailable), arguments: ["stdout", "siem"])
func alertsCarryCommunityIDsWhenNoRecordsAreWritten(_ destination: String) throws {
    let demo = repositoryRoot.appendingPathComponent("Fixtures/demo")
    var args = ["replay", demo.appendingPathComponent("plant.pcap").path, "--policy", demo.appendingPathComponent("policy.yaml").path, "--quiet"]
    let dir = NSTemporaryDirectory() + "zw-\(ProcessInfo.processInfo.processIdentifier)-cid-\(destination)"
    try? FileManager.default.removeItem(atPath: dir)
    if destination == "stdout" { args += ["--alerts", "-"] } else { args += ["--output", "file://\(dir)?format=ecs"] }
    let (status, out, _) = try run(zonewatchBinary!, args)
    let text = destination == "stdout" ? out : try String(contentsOfFile: dir + "/alerts.jsonl", encoding: .utf8)
    let lines = text.split(separator: "\n")
    #expect(status == 0 && lines.count == 10)
    #expect(lines.allSatisfy { $0.contains("\"community_id\":\"1:") })
}

/// `replay` and `dissect` read a classic pcap file through a memory map; libpcap alone (the diagnostic
/// ZONEWATCH_NO_MAP=1) gives the same bytes and exit status, for the demo plant, a file whose record longer than the
/// snapshot length makes the map hand over to libpcap, and a truncated file.
@Test(.enabled(if: binaryAvailable))
func mappedReadingWritesWhatLibpcapReadingWrites() throws {
    let packet = tcpFrame(src: 0x0A00_0001, sport: 1234, dst: 0x0A00_0002, dport: 502, seq: 1, flags: 0x02)
    let long = tcpFrame(src: 0x0A00_0001, sport: 1235, dst: 0x0A00_0002, dport: 502, seq: 1, flags: 0x02, payload: Array(repeating: 7, count: 120))
    let handover = try temporaryFile(pcapFile(packets: [packet, packet, long, packet], snaplen: 100), "handover.pcap")
    var truncated = pcapFile(packets: [packet, packet, packet])
    truncated.removeLast(10)
    let cut = try temporaryFile(truncated, "mapped-truncated.pcap")
    let demo = repositoryRoot.appendingPathComponent("Fixtures/demo/plant.pcap").path
    let policy = repositoryRoot.appendingPathComponent("Fixtures/demo/policy.yaml").path
    for file in [demo, handover, cut] {
        let replay = ["replay", file, "--flows", "-", "--alerts", "-", "--policy", policy]
        for args in file == demo ? [["dissect", file], replay] : [replay] {
            let (s1, o1, e1) = try run("/usr/bin/env", [zonewatchBinary!] + args)
            let (s2, o2, e2) = try run("/usr/bin/env", ["ZONEWATCH_NO_MAP=1", zonewatchBinary!] + args)
            #expect(s1 == s2 && o1 == o2, "\(args): mapped \(s1) \(o1.count) bytes, libpcap \(s2) \(o2.count) bytes")
            #expect(!o1.isEmpty)
            // The summary's line with the error (if any) is the same; the throughput line differs.
            let errors = { (e: String) in e.split(separator: "\n").filter { !$0.contains("rate:") } }
            #expect(errors(e1) == errors(e2))
        }
    }
}
