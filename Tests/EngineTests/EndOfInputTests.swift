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
}
