import Testing
import Foundation
import Wire
import Records
@testable import Engine

/// `--ignore-vlans` (`EngineConfiguration.ignoresVLANs`): a SPAN session that copies a trunk port (frames tagged) and
/// an access port (untagged) delivers the two directions of one conversation with different tags. Keyed with the
/// VLAN, that is two flows, each with one side: the Modbus requests and their answers are never matched. Keyed
/// without, it is one flow.
@Suite struct VLANTrackingTests {
    /// `frame` (untagged Ethernet) with an 802.1Q tag of VLAN `vlan` after its addresses.
    static func tagged(_ frame: [UInt8], _ vlan: UInt16) -> [UInt8] {
        Array(frame[0 ..< 12]) + [0x81, 0x00, UInt8(vlan >> 8), UInt8(vlan & 0xFF)] + Array(frame[12...])
    }

    /// A Modbus connection from client port `port` whose client's frames carry VLAN 10 and whose server's carry none;
    /// `checksummed`: with right checksums (the sides then verified), else with none (taken as offloaded).
    static func connection(port: UInt16, client: UInt32 = SYNInConnectionTests.client, checksummed: Bool = false) -> [[UInt8]] {
        let c = client, s = SYNInConnectionTests.server
        let read = SYNInConnectionTests.read, answer = SYNInConnectionTests.readAnswer
        let n = UInt32(read.count)
        func tagged(_ frame: [UInt8], _ vlan: UInt16) -> [UInt8] { Self.tagged(summed(frame), vlan) }
        func summed(_ frame: [UInt8]) -> [UInt8] { checksummed ? ChecksumTests.summed(frame, .right) : frame }
        return [tagged(tcpFrame(src: c, sport: port, dst: s, dport: 502, seq: 1000, flags: 0x02), 10),
                summed(tcpFrame(src: s, sport: 502, dst: c, dport: port, seq: 5000, ack: 1001, flags: 0x12)),
                tagged(tcpFrame(src: c, sport: port, dst: s, dport: 502, seq: 1001, ack: 5001, flags: 0x10), 10),
                tagged(tcpFrame(src: c, sport: port, dst: s, dport: 502, seq: 1001, ack: 5001, flags: 0x18, payload: read), 10),
                summed(tcpFrame(src: s, sport: 502, dst: c, dport: port, seq: 5001, ack: 1001 + n, flags: 0x18, payload: answer)),
                tagged(tcpFrame(src: c, sport: port, dst: s, dport: 502, seq: 1001 + n, ack: 5001 + UInt32(answer.count),
                                flags: 0x10), 10)]
    }

    @Test(arguments: [true, false], [true, false])
    func aConversationTaggedDifferentlyEachWayIsOneFlowWhenVLANsAreIgnored(ignoring: Bool, onePass: Bool) {
        for checksummed in [false, true] { oneConversation(ignoring: ignoring, onePass: onePass, checksummed: checksummed) }
    }

    func oneConversation(ignoring: Bool, onePass: Bool, checksummed: Bool) {
        var c = EngineConfiguration()
        c.transactionRecords = true; c.establishedTCPPath = onePass; c.ignoresVLANs = ignoring
        let engine = Engine(configuration: c)
        let frames = Self.connection(port: 40000, checksummed: checksummed)
        for f in frames.dropLast() { engine.feed(f, at: 100) }
        let onPathBefore = engine.packetsOnEstablishedPath
        engine.feed(frames.last!, at: 100)   // the client's tagged ACK of the established connection
        let lastTookOnePass = engine.packetsOnEstablishedPath == onPathBefore + 1
        engine.finish()
        let r = ClosedFlowTests.drain(engine)
        let modbus = r[.modbus, default: []]
        if ignoring {
            #expect(engine.statistics.flowsCreated == 1)
            #expect(modbus.count == 1 && modbus.first?.contains(#""matched":true"#) == true, "\(modbus)")
            #expect(r[.flow, default: []].count == 1 && r[.flow, default: []].allSatisfy { !$0.contains(#""vlan""#) }, "no VLAN recorded")
            #expect(engine.statistics.checksumOffloadedSides == (checksummed ? 0 : 2))
            // The tagged frames of the established connection take the one-pass path too (keyed as the table keys).
            #expect(lastTookOnePass == onePass)
        } else {
            #expect(engine.statistics.flowsCreated == 2, "two halves")
            #expect(!modbus.contains { $0.contains(#""matched":true"#) }, "\(modbus)")
        }
    }
}

/// On the command line, with one worker and two: the dispatch sends both directions to one worker, so two workers'
/// records equal one's (every request matched); without the option, the halves.
@Test(.enabled(if: zonewatchBinary != nil), arguments: ["1", "2"])
func ignoreVLANsJoinsTheHalvesWithEveryWorkerCount(workers: String) throws {
    let frames = (0 ..< 24).flatMap { VLANTrackingTests.connection(port: 41000 + UInt16($0), client: 0x0A00_0100 + UInt32($0)) }
    let capture = try temporaryFile(pcapFile(packets: frames), "vlans-\(workers).pcap")
    defer { try? FileManager.default.removeItem(atPath: capture) }
    let out = NSTemporaryDirectory() + "zw-\(ProcessInfo.processInfo.processIdentifier)-vlans-\(workers)"
    try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: out) }
    func modbusLines(_ extra: [String], _ folder: String) throws -> [String] {
        let (status, _, summary) = try run(zonewatchBinary!, ["replay", capture, "--out", "\(out)/\(folder)", "--workers", workers] + extra)
        #expect(status == 0, "\(summary)")
        let text = (try? String(contentsOfFile: "\(out)/\(folder)/modbus.jsonl", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").map(String.init).sorted()
    }
    let joined = try modbusLines(["--ignore-vlans"], "joined")
    #expect(joined.count == 24 && joined.allSatisfy { $0.contains(#""matched":true"#) }, "\(joined.prefix(2))")
    let halves = try modbusLines([], "halves")
    #expect(!halves.contains { $0.contains(#""matched":true"#) }, "\(halves.prefix(2))")
}
