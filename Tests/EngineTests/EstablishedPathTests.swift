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
