import Testing
import Wire
import Records
import Engine
import Flows   // `FlowEndReason` (the observer test), through Engine

/// Ethernet + IPv4 + TCP with the given endpoints, flags and payload.
func tcpFrame(src: UInt32, sport: UInt16, dst: UInt32, dport: UInt16, seq: UInt32, ack: UInt32 = 0,
              flags: UInt8, payload: [UInt8] = []) -> [UInt8] {
    let total = 20 + 20 + payload.count
    var b: [UInt8] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x08, 0x00]
    b += [0x45, 0, UInt8(total >> 8), UInt8(total & 0xFF), 0, 0, 0x40, 0, 64, 6, 0, 0]
    for v in [src, dst] { b += [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
    b += [UInt8(sport >> 8), UInt8(sport & 0xFF), UInt8(dport >> 8), UInt8(dport & 0xFF)]
    for v in [seq, ack] { b += [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
    b += [0x50, flags, 0xFF, 0xFF, 0, 0, 0, 0]
    return b + payload
}

extension Engine {
    func feed(_ frame: [UInt8], at second: Int64) {
        ByteView.with(frame) { process($0, linkType: 1, time: PacketTime(seconds: second, microseconds: 0), wireLength: frame.count) }
    }
    func drainedLines(_ kind: RecordKind) -> [String] {
        var out: [String] = []
        drainRecords { k, bytes in
            if k == kind { out += String(decoding: bytes, as: UTF8.self).split(separator: "\n").map(String.init) }
        }
        return out
    }
}

@Test func synFloodIsBoundedByTheFlowCap() {
    var c = EngineConfiguration(); c.flowLimits.maximumFlows = 100
    let engine = Engine(configuration: c)
    for i in 0..<1_000 {
        engine.feed(tcpFrame(src: 0x0A00_0001 + UInt32(i), sport: 40000, dst: 0x0A00_0002, dport: 502, seq: 1, flags: 0x02), at: 1)
    }
    #expect(engine.liveFlows == 100)
    #expect(engine.statistics.flowsCreated == 1_000)
    #expect(engine.statistics.flowsEnded[3] == 900)   // evicted
    engine.finish()
    #expect(engine.drainedLines(.flow).count == 1_000)
}

@Test func handshakeSetsInitiatorAndCloseEndsTheFlow() {
    let engine = Engine()
    let client: UInt32 = 0x0A00_0063, server: UInt32 = 0x0A00_0001
    engine.feed(tcpFrame(src: client, sport: 50000, dst: server, dport: 80, seq: 10, flags: 0x02), at: 100)
    engine.feed(tcpFrame(src: server, sport: 80, dst: client, dport: 50000, seq: 500, ack: 11, flags: 0x12), at: 100)
    engine.feed(tcpFrame(src: client, sport: 50000, dst: server, dport: 80, seq: 11, ack: 501, flags: 0x10), at: 100)
    engine.feed(tcpFrame(src: client, sport: 50000, dst: server, dport: 80, seq: 11, ack: 501, flags: 0x11), at: 101)
    engine.feed(tcpFrame(src: server, sport: 80, dst: client, dport: 50000, seq: 501, ack: 12, flags: 0x11), at: 101)
    engine.feed(tcpFrame(src: client, sport: 50000, dst: server, dport: 80, seq: 12, ack: 502, flags: 0x10), at: 101)
    // The closed flow lingers for stragglers, then its record is written on the next sweep.
    engine.feed(tcpFrame(src: 0x0A00_0005, sport: 1, dst: 0x0A00_0006, dport: 2, seq: 1, flags: 0x02), at: 300)
    let lines = engine.drainedLines(.flow)
    #expect(lines.count == 1)
    let line = lines.first ?? ""
    #expect(line.contains(#""source":{"ip":"10.0.0.99","port":50000,"packets":4"#))
    #expect(line.contains(#""reason":"fin""#))
    #expect(line.contains(#""midstream":false"#))
    #expect(engine.statistics.flowsEnded[0] == 1)
}

@Test func synAckFirstStillNamesTheClientAsInitiator() {
    let engine = Engine()
    engine.feed(tcpFrame(src: 0x0A00_0001, sport: 502, dst: 0x0A00_0002, dport: 40000, seq: 1, ack: 1, flags: 0x12), at: 1)
    engine.finish()
    let line = engine.drainedLines(.flow).first ?? ""
    #expect(line.contains(#""source":{"ip":"10.0.0.2","port":40000"#))
}

@Test func idleFlowsTimeOut() {
    var c = EngineConfiguration(); c.flowLimits.tcpIdleTimeout = 30
    let engine = Engine(configuration: c)
    engine.feed(tcpFrame(src: 1, sport: 1, dst: 2, dport: 2, seq: 1, flags: 0x10, payload: [1]), at: 0)
    engine.feed(tcpFrame(src: 3, sport: 1, dst: 4, dport: 2, seq: 1, flags: 0x10, payload: [1]), at: 29)
    #expect(engine.liveFlows == 2)
    engine.feed(tcpFrame(src: 3, sport: 1, dst: 4, dport: 2, seq: 2, flags: 0x10, payload: [1]), at: 31)
    #expect(engine.liveFlows == 1 && engine.statistics.flowsEnded[2] == 1)
}

/// Ethernet + IPv4 + UDP with the given endpoints and payload (checksum 0: not computed).
func udpFrame(src: UInt32, sport: UInt16, dst: UInt32, dport: UInt16, payload: [UInt8] = [0]) -> [UInt8] {
    let total = 20 + 8 + payload.count
    var b: [UInt8] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x08, 0x00]
    b += [0x45, 0, UInt8(total >> 8), UInt8(total & 0xFF), 0, 0, 0x40, 0, 64, 17, 0, 0]
    for v in [src, dst] { b += [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
    b += [UInt8(sport >> 8), UInt8(sport & 0xFF), UInt8(dport >> 8), UInt8(dport & 0xFF), 0, UInt8(8 + payload.count), 0, 0]
    return b + payload
}

/// Each transport's idle timeout holds on its own: a UDP flow idle past its timeout ends at the next sweep even
/// when a TCP flow seen before it is still within the longer TCP timeout, and the flows end in the order they were
/// last seen. (With one recency list for both, the TCP flow in front kept the UDP flow alive.)
@Test func udpFlowsTimeOutBehindLiveTCPFlows() {
    var c = EngineConfiguration(); c.flowLimits.tcpIdleTimeout = 600; c.flowLimits.udpIdleTimeout = 120
    let engine = Engine(configuration: c)
    engine.feed(tcpFrame(src: 1, sport: 40000, dst: 2, dport: 502, seq: 1, flags: 0x10, payload: [1]), at: 0)
    engine.feed(udpFrame(src: 3, sport: 20000, dst: 4, dport: 20000), at: 10)
    engine.feed(udpFrame(src: 5, sport: 20000, dst: 6, dport: 20000), at: 20)
    engine.feed(tcpFrame(src: 7, sport: 40000, dst: 8, dport: 502, seq: 1, flags: 0x10, payload: [1]), at: 135)
    // At 135 the first UDP flow (seen at 10) is past 120 s, the second (seen at 20) not yet, the TCP flow (0) not.
    #expect(engine.liveFlows == 3 && engine.statistics.flowsEnded[2] == 1)
    engine.feed(tcpFrame(src: 7, sport: 40000, dst: 8, dport: 502, seq: 2, flags: 0x10, payload: [1]), at: 700)
    let lines = engine.drainedLines(.flow)
    // At 700: the TCP flow seen at 0 (600 s), then the UDP flow seen at 20, in the order they were last seen.
    #expect(lines.count == 3)
    if lines.count == 3 {
        #expect(lines[0].contains(#""ip":"0.0.0.3""#) && lines[0].contains(#""reason":"idle_timeout""#))
        #expect(lines[1].contains(#""ip":"0.0.0.1""#) && lines[2].contains(#""ip":"0.0.0.5""#))
    }
}

@Test func malformedPacketsAreCountedNotFatal() {
    var c = EngineConfiguration(); c.anomalyRecords = true
    let engine = Engine(configuration: c)
    let good = tcpFrame(src: 1, sport: 1, dst: 2, dport: 2, seq: 1, flags: 0x10)
    engine.feed(Array(good.prefix(30)), at: 0)          // truncated IPv4 header
    var badVersion = good; badVersion[14] = 0x75
    engine.feed(badVersion, at: 0)
    engine.feed([UInt8](repeating: 0xFF, count: 5), at: 0)
    #expect(engine.statistics.decodeFailureTotal == 3 && engine.statistics.anomalies == 3)
    #expect(engine.drainedLines(.anomaly).count == 3)
}

@Test func garbageOnModbusPortIsNotModbus() {
    var c = EngineConfiguration(); c.anomalyRecords = true
    let engine = Engine(configuration: c)
    let tls: [UInt8] = [0x16, 0x03, 0x01, 0x00, 0xA5, 0x01, 0x00, 0x00, 0xA1, 0x03, 0x03, 0x11, 0x22]
    engine.feed(tcpFrame(src: 1, sport: 40000, dst: 2, dport: 502, seq: 1, flags: 0x18, payload: tls), at: 0)
    engine.finish()
    #expect(engine.statistics.pdus[Int(AppProtocol.modbus.rawValue)] == 0)
    let anomalies = engine.drainedLines(.anomaly)
    #expect(anomalies.contains { $0.contains("not_modbus_on_modbus_port") })
}

/// The per-kind anomaly log bound is keyed by a hash of "layer.kind" (no String per anomaly): the same kind
/// always gives the same key, different kinds different keys.
@Test func anomalyKindKeysSeparateKindsAndLayers() {
    let kinds: [(StaticString, StaticString)] = [("modbus", "bad_protocol_id"), ("modbus", "not_modbus_on_modbus_port"),
        ("dnp3", "bad_protocol_id"), ("tcp", "truncated_tcp_header"), ("ip", "ip_fragment_not_reassembled"),
        ("flow", "reassembly_buffer_overflow"), ("s7comm", "pending_requests_overflow"), ("link", "truncated_link_header")]
    let keys = kinds.map { Engine.anomalyKindKey(Anomaly(layer: $0.0, kind: $0.1, offset: 0)) }
    #expect(Set(keys).count == kinds.count)
    #expect(Engine.anomalyKindKey(Anomaly(layer: "modbus", kind: "bad_protocol_id", offset: 7, value: 3)) == keys[0])
}

/// Counts the per-flow calls an engine makes to its observer.
private final class FlowEventCounter: EngineObserver {
    var started = 0, identified = 0, ended = 0, starting = 0
    func flowStarting(between a: IPAddress, and b: IPAddress, flowSlot: Int32) { starting += 1 }
    func flowStarted(_ flow: FlowContext, frame: UInt64, time: PacketTime) { started += 1 }
    func flowIdentified(_ flow: FlowContext, appProtocol: AppProtocol?, frame: UInt64, time: PacketTime) { identified += 1 }
    func operation(_ op: Records.Operation, flow: FlowContext) {}
    func anomaly(_ a: Anomaly, flow: FlowContext?) {}
    func flowEnded(_ flow: FlowContext, reason: FlowEndReason) { ended += 1 }
    func tick(time: PacketTime) {}
    func finish() {}
}

/// The engine reaches its observer's per-flow methods through a target built when the observer is set (no reference
/// counting per call): a flow's start, identification and end reach the observer in place at the time, and nothing
/// reaches one that was replaced or removed.
@Test func perFlowEventsReachTheCurrentObserver() {
    let engine = Engine()
    let first = FlowEventCounter(), second = FlowEventCounter()
    engine.observer = first
    let client: UInt32 = 0x0A00_0063, server: UInt32 = 0x0A00_0001
    let request: [UInt8] = [0, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0, 1]   // Modbus read holding registers
    engine.feed(tcpFrame(src: client, sport: 50000, dst: server, dport: 502, seq: 10, flags: 0x02), at: 100)
    engine.feed(tcpFrame(src: server, sport: 502, dst: client, dport: 50000, seq: 500, ack: 11, flags: 0x12), at: 100)
    engine.feed(tcpFrame(src: client, sport: 50000, dst: server, dport: 502, seq: 11, ack: 501, flags: 0x18, payload: request), at: 100)
    #expect(first.starting == 1 && first.started == 1 && first.identified == 1 && first.ended == 0)
    engine.observer = second
    engine.feed(tcpFrame(src: 0x0A00_0005, sport: 1, dst: 0x0A00_0006, dport: 2, seq: 1, flags: 0x02), at: 101)
    engine.finish()
    #expect(first.started == 1 && first.ended == 0)
    #expect(second.started == 1 && second.ended == 2)
    engine.observer = nil
    engine.feed(tcpFrame(src: 0x0A00_0007, sport: 1, dst: 0x0A00_0008, dport: 2, seq: 1, flags: 0x02), at: 102)
    #expect(second.started == 1)
}
