import Testing
import Wire
import Records
@testable import Engine
import Flows

/// The end of input when nobody sees the flows' ends one by one (no flow, PDU or transaction records; an observer
/// that does not want them): the engine ends them all at once (`endAllFlowsAtOnce`), and that must count, release and
/// leave the engine exactly as ending them in order does.
@Suite struct EndOfInputTests {
    static let client: UInt32 = 0x0A00_0001, server: UInt32 = 0x0A00_0002

    /// A Modbus read answered and closed with FINs, a Modbus request left open (unanswered), a TCP flow reset and a UDP
    /// flow: one end of each reason, and a dissector state to release. Not `everything`: the first and the last.
    static func plant(_ engine: Engine, at second: Int64, everything: Bool = true) {
        let request: [UInt8] = [0, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0, 10]
        let response: [UInt8] = [0, 1, 0, 0, 0, 23, 1, 3, 20] + [UInt8](repeating: 7, count: 20)
        for (port, closes) in everything ? [(UInt16(40000), true), (40001, false)] : [(40000, true)] {
            engine.feed(tcpFrame(src: client, sport: port, dst: server, dport: 502, seq: 1000, flags: 0x02), at: second)
            engine.feed(tcpFrame(src: server, sport: 502, dst: client, dport: port, seq: 5000, ack: 1001, flags: 0x12), at: second)
            engine.feed(tcpFrame(src: client, sport: port, dst: server, dport: 502, seq: 1001, ack: 5001, flags: 0x10), at: second)
            engine.feed(tcpFrame(src: client, sport: port, dst: server, dport: 502, seq: 1001, ack: 5001, flags: 0x18, payload: request), at: second)
            guard closes else { continue }
            engine.feed(tcpFrame(src: server, sport: 502, dst: client, dport: port, seq: 5001, ack: 1013, flags: 0x18, payload: response), at: second)
            engine.feed(tcpFrame(src: client, sport: port, dst: server, dport: 502, seq: 1013, ack: 5030, flags: 0x11), at: second)
            engine.feed(tcpFrame(src: server, sport: 502, dst: client, dport: port, seq: 5030, ack: 1014, flags: 0x11), at: second)
        }
        if everything {
            engine.feed(tcpFrame(src: client, sport: 40002, dst: server, dport: 8080, seq: 1, flags: 0x02), at: second)
            engine.feed(tcpFrame(src: server, sport: 8080, dst: client, dport: 40002, seq: 9, ack: 2, flags: 0x14), at: second)
        }
        engine.feed(udpFrame(src: client, sport: 5000, dst: server, dport: 5000), at: second)
    }

    static func engine(flowRecords: Bool) -> Engine {
        var c = EngineConfiguration(); c.flowRecords = flowRecords
        return Engine(configuration: c)
    }

    /// Counts by reason as the ordered ends give them, an empty table, and an engine that takes flows again in some of
    /// the freed slots (its index, lists, free slots and dissector pools left consistent) and ends only those.
    @Test func endingEveryFlowAtOnceCountsAndEmptiesAsEndingThemInOrder() {
        let atOnce = Self.engine(flowRecords: false), inOrder = Self.engine(flowRecords: true)
        // Ends by round: (fin, rst, end of input), and Modbus PDUs.
        for (round, (fin, rst, open, pdus)) in [(UInt64(1), UInt64(1), UInt64(2), UInt64(3)), (2, 1, 3, 5)].enumerated() {
            let everything = round == 0
            for e in [atOnce, inOrder] { Self.plant(e, at: 1_000 * Int64(round + 1), everything: everything) }
            #expect(atOnce.liveFlows == (everything ? 4 : 2) && inOrder.liveFlows == atOnce.liveFlows)
            #expect(atOnce.endAllFlowsAtOnce(), "no records, no observer, no held segments: all at once")
            #expect(!inOrder.endAllFlowsAtOnce(), "flow records are written in order")
            for e in [atOnce, inOrder] { e.finish() }
            #expect(atOnce.liveFlows == 0 && inOrder.liveFlows == 0)
            for e in [atOnce, inOrder] {
                #expect(e.statistics.flowsEnded[Int(FlowEndReason.fin.rawValue)] == fin)
                #expect(e.statistics.flowsEnded[Int(FlowEndReason.rst.rawValue)] == rst)
                #expect(e.statistics.flowsEnded[Int(FlowEndReason.endOfInput.rawValue)] == open)
                #expect(e.statistics.flowsEndedTotal == fin + rst + open)
                // The second round's Modbus flow was dissected as the first round's.
                #expect(e.statistics.pdus[Int(AppProtocol.modbus.rawValue)] == pdus)
            }
            #expect(atOnce.statistics.operations == inOrder.statistics.operations)
        }
        #expect(inOrder.drainedLines(.flow).count == 6)
    }

    /// A stream holding a segment behind a hole at the end: its flush is dissected (a gap, then the bytes), so the
    /// ends go in order even without records, and the engine counts what the ordered ends count.
    @Test func heldSegmentsAreFlushedAtTheEndAsBefore() {
        let quiet = Self.engine(flowRecords: false), recorded = Self.engine(flowRecords: true)
        let request: [UInt8] = [0, 2, 0, 0, 0, 6, 1, 3, 0, 0, 0, 10]
        for e in [quiet, recorded] {
            e.feed(tcpFrame(src: Self.client, sport: 40000, dst: Self.server, dport: 502, seq: 1000, flags: 0x02), at: 1)
            e.feed(tcpFrame(src: Self.server, sport: 502, dst: Self.client, dport: 40000, seq: 5000, ack: 1001, flags: 0x12), at: 1)
            e.feed(tcpFrame(src: Self.client, sport: 40000, dst: Self.server, dport: 502, seq: 1001, ack: 5001, flags: 0x10), at: 1)
            // 50 bytes never seen before this request: it waits behind the hole.
            e.feed(tcpFrame(src: Self.client, sport: 40000, dst: Self.server, dport: 502, seq: 1051, ack: 5001, flags: 0x18, payload: request), at: 1)
            #expect(e.statistics.streamGaps == 0)
        }
        #expect(!quiet.endAllFlowsAtOnce(), "a held segment's flush is seen")
        #expect(quiet.liveFlows == 1)
        for e in [quiet, recorded] { e.finish() }
        #expect(quiet.statistics.streamGaps == 1 && quiet.statistics.streamGapBytes == 50)
        #expect(quiet.statistics.streamGaps == recorded.statistics.streamGaps)
        #expect(quiet.statistics.operations == recorded.statistics.operations)
        #expect(quiet.statistics.anomalies == recorded.statistics.anomalies)
        #expect(quiet.statistics.flowsEnded == recorded.statistics.flowsEnded)
        #expect(quiet.liveFlows == 0)
    }

    /// Transaction records without flow records: a request still unanswered at the end is written by its dissector's
    /// `finish`, so the ends go in order.
    @Test func unansweredRequestsAreStillWrittenAtTheEnd() {
        var c = EngineConfiguration(); c.flowRecords = false; c.transactionRecords = true
        let engine = Engine(configuration: c)
        Self.plant(engine, at: 1_000)
        #expect(!engine.endAllFlowsAtOnce())
        engine.finish()
        let lines = engine.drainedLines(.modbus)
        #expect(lines.filter { $0.contains("no_response") }.count == 1, "\(lines)")
        #expect(engine.liveFlows == 0 && engine.statistics.flowsEndedTotal == 4)
    }

    /// An observer that wants the end of input's flow ends hears each: they go in order.
    @Test(arguments: [true, false]) func anObserverThatWantsTheEndsGetsThemInOrder(wants: Bool) {
        final class Ends: EngineObserver {
            let wantsFlowEndsAtEndOfInput: Bool
            var ends = 0
            init(wants: Bool) { wantsFlowEndsAtEndOfInput = wants }
            func flowStarted(_ flow: FlowContext, frame: UInt64, time: PacketTime) {}
            func flowIdentified(_ flow: FlowContext, appProtocol: AppProtocol?, frame: UInt64, time: PacketTime) {}
            func operation(_ op: Operation, flow: FlowContext) {}
            func anomaly(_ a: Anomaly, flow: FlowContext?) {}
            func flowEnded(_ flow: FlowContext, reason: FlowEndReason) { ends += 1 }
            func tick(time: PacketTime) {}
            func finish() {}
        }
        let engine = Self.engine(flowRecords: false)
        let observer = Ends(wants: wants)
        engine.observer = observer
        Self.plant(engine, at: 1_000)
        #expect(engine.endAllFlowsAtOnce() == !wants)
        engine.finish()
        #expect(observer.ends == (wants ? 4 : 0))
        #expect(engine.liveFlows == 0 && engine.statistics.flowsEndedTotal == 4)
    }

    /// Flows that end holding part of a message: a second Modbus request's first 7 bytes in the engine's carry, an S7comm
    /// COTP message's first 9 bytes in the dissector's own reassembly, 5 bytes too few to identify a flow by. The flows that close (FIN both ways) ended
    /// mid-message on the wire: one `truncated_at_end` anomaly each, from the sender, with the bytes held. The ones still
    /// open at the end of input were cut by the capture: counted (`messagesCutByCapture`), no anomaly. Either kind of holding
    /// keeps the end of input from going all at once (its reports would be lost).
    @Test(arguments: [(true, false, false), (false, true, false), (false, false, true), (true, true, true)])
    func messagesCutByTheFlowsEndAreReportedOrCounted(modbus: Bool, s7comm: Bool, undecided: Bool) {
        final class Anomalies: EngineObserver {
            var seen: [Anomaly] = []
            let wantsFlowEndsAtEndOfInput = false   // as the alert pipeline: the end of input may otherwise go at once
            func flowStarted(_ flow: FlowContext, frame: UInt64, time: PacketTime) {}
            func flowIdentified(_ flow: FlowContext, appProtocol: AppProtocol?, frame: UInt64, time: PacketTime) {}
            func operation(_ op: Operation, flow: FlowContext) {}
            func anomaly(_ a: Anomaly, flow: FlowContext?) { seen.append(a) }
            func flowEnded(_ flow: FlowContext, reason: FlowEndReason) {}
            func tick(time: PacketTime) {}
            func finish() {}
        }
        let engine = Self.engine(flowRecords: false)
        let observer = Anomalies()
        engine.observer = observer
        let request: [UInt8] = [0, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0, 10]
        // A COTP DT without EOT carrying 9 bytes: TPKT, then LI 2, DT, TPDU-NR 0.
        let dt: [UInt8] = [3, 0, 0, 16, 2, 0xF0, 0x00, 0x32, 1, 0, 0, 0, 7, 0, 14, 0]
        var flows: [(port: UInt16, service: UInt16, first: [UInt8])] = []
        // A whole request, then the first 7 bytes of the next (a flow is identified by its first whole PDU).
        if modbus { flows += [(40000, 502, request + request[0..<7]), (40001, 502, request + request[0..<7])] }
        if s7comm { flows += [(40002, 102, dt), (40003, 102, dt)] }
        // Five bytes to port 502: too few to identify (an MBAP header is seven), kept for the probe.
        if undecided { flows += [(40004, 502, Array(request[0..<5])), (40005, 502, Array(request[0..<5]))] }
        for (i, f) in flows.enumerated() {
            let c = Self.client, s = Self.server, n = UInt32(f.first.count)
            engine.feed(tcpFrame(src: c, sport: f.port, dst: s, dport: f.service, seq: 1000, flags: 0x02), at: 1)
            engine.feed(tcpFrame(src: s, sport: f.service, dst: c, dport: f.port, seq: 5000, ack: 1001, flags: 0x12), at: 1)
            engine.feed(tcpFrame(src: c, sport: f.port, dst: s, dport: f.service, seq: 1001, ack: 5001, flags: 0x10), at: 1)
            engine.feed(tcpFrame(src: c, sport: f.port, dst: s, dport: f.service, seq: 1001, ack: 5001, flags: 0x18, payload: f.first), at: 1)
            guard i % 2 == 0 else { continue }   // the first of each pair closes
            engine.feed(tcpFrame(src: c, sport: f.port, dst: s, dport: f.service, seq: 1001 + n, ack: 5001, flags: 0x11), at: 1)
            engine.feed(tcpFrame(src: s, sport: f.service, dst: c, dport: f.port, seq: 5001, ack: 1002 + n, flags: 0x11), at: 1)
        }
        #expect(engine.liveFlows == flows.count)
        #expect(!engine.endAllFlowsAtOnce(), "an unfinished message is reported at its flow's end")
        engine.finish()
        let cut = observer.seen.filter { $0.kind.description == "truncated_at_end" }
        let expected = (modbus ? [("modbus", Int64(7))] : []) + (s7comm ? [("s7comm", Int64(9))] : [])
            + (undecided ? [("flow", Int64(5))] : [])
        #expect(cut.map { $0.layer.description } == expected.map { $0.0 })
        #expect(cut.map { $0.value } == expected.map { $0.1 })
        #expect(cut.allSatisfy { $0.sender == .initiator })
        #expect(engine.statistics.messagesCutByCapture == UInt64(expected.count))
        #expect(engine.statistics.messagesCutByCaptureBytes == UInt64(expected.reduce(0) { $0 + $1.1 }))
        #expect(engine.statistics.anomalies == UInt64(expected.count))
        #expect(engine.liveFlows == 0 && engine.statistics.flowsEnded[Int(FlowEndReason.fin.rawValue)] == UInt64(flows.count / 2))
    }
}
