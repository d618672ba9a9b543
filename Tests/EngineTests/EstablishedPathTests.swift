import Testing
import Foundation
import Wire
import Records
import Capture
import Engine

/// Every record kind of one capture, as the engine writes them, and the engine's counters.
/// Nil when the file cannot be opened (the edge fixtures include garbage and unknown link types); a read error
/// ends the input, as in `zonewatch replay`.
/// `throughConsumer` reads as the replay loop does (`EngineConsumer.dispatch(from:batch:)`, with the prefetch
/// lookahead), in small batches so that batch ends fall everywhere; otherwise packet by packet with `next()`.
private func allRecords(of path: String, establishedPath: Bool, throughConsumer: Bool = false)
    -> (lines: [String], packets: UInt64, onPath: UInt64)? {
    var c = EngineConfiguration()
    c.pduRecords = true; c.transactionRecords = true; c.establishedTCPPath = establishedPath
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
private let fixtureCaptures: [String] = {
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

/// A handshake's SYN-ACK takes the one-pass path (`processSynAckTCPv4`) unless its sender's stream is already
/// synchronised (a retransmitted SYN-ACK) or it carries bytes, and either way the records are the general path's.
@Test(arguments: [false, true])
func synAckTakesTheOnePassPathAndWritesWhatTheGeneralPathWrites(retransmitted: Bool) {
    let client: UInt32 = 0x0A0A_0001, server: UInt32 = 0x0A14_0001
    let request: [UInt8] = [0, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0, 2]
    let response: [UInt8] = [0, 1, 0, 0, 0, 7, 1, 3, 4, 0, 1, 0, 2]
    var frames = [
        tcpFrame(src: client, sport: 40000, dst: server, dport: 502, seq: 100, flags: 0x02),
        tcpFrame(src: server, sport: 502, dst: client, dport: 40000, seq: 900, ack: 101, flags: 0x12),
    ]
    if retransmitted { frames.append(frames[1]) }
    frames += [
        tcpFrame(src: client, sport: 40000, dst: server, dport: 502, seq: 101, ack: 901, flags: 0x10),
        tcpFrame(src: client, sport: 40000, dst: server, dport: 502, seq: 101, ack: 901, flags: 0x18, payload: request),
        tcpFrame(src: server, sport: 502, dst: client, dport: 40000, seq: 901, ack: 113, flags: 0x18, payload: response),
        // A SYN-ACK with bytes on another flow (TCP Fast Open): the general path.
        tcpFrame(src: client, sport: 40001, dst: server, dport: 502, seq: 100, flags: 0x02),
        tcpFrame(src: server, sport: 502, dst: client, dport: 40001, seq: 900, ack: 101, flags: 0x12, payload: response),
    ]
    func run(onePass: Bool) -> (lines: [String], afterSynAck: UInt64, onPath: UInt64) {
        var c = EngineConfiguration()
        c.pduRecords = true; c.transactionRecords = true; c.establishedTCPPath = onePass
        let engine = Engine(configuration: c)
        var afterSynAck: UInt64 = 0
        for (i, f) in frames.enumerated() {
            engine.feed(f, at: 1_000 + Int64(i))
            if i == 1 { afterSynAck = engine.packetsOnEstablishedPath }
        }
        engine.finish()
        var lines: [String] = []
        engine.drainRecords { kind, bytes in lines.append("\(kind): " + String(decoding: bytes, as: UTF8.self)) }
        return (lines, afterSynAck, engine.packetsOnEstablishedPath)
    }
    let fast = run(onePass: true), general = run(onePass: false)
    #expect(fast.afterSynAck == 1)
    // One-pass: the SYN-ACK, the ACK and the two PDUs (the retransmitted SYN-ACK and the one with bytes are not).
    #expect(fast.onPath == 4)
    #expect(general.onPath == 0)
    #expect(fast.lines == general.lines)
    #expect(fast.lines.joined().contains("read_holding_registers"))
}
