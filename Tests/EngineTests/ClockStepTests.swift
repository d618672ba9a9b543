import Testing
import Wire
import Records
import Engine
import Flows

/// Packet time going back: a little is the same timeline, more than `PacketTime.clockStepSeconds` is a clock step
/// (a sensor's clock set back, captures concatenated out of order).
@Suite struct ClockStepTests {
    /// Two hours back: the flows from before end there (`clock_step`, each record stamped with its own times), the
    /// step is an anomaly record, and flows of the new timeline idle out on it. Before, nothing idled out, and no
    /// sweep ran, until packet time came back to where it had been.
    @Test func aStepBackEndsTheOldFlowsAndTheNewOnesIdleOut() {
        var c = EngineConfiguration(); c.flowLimits.tcpIdleTimeout = 30; c.anomalyRecords = true
        let engine = Engine(configuration: c)
        let t0: Int64 = 1_700_000_000
        engine.feed(tcpFrame(src: 1, sport: 40000, dst: 2, dport: 4000, seq: 1, flags: 0x10, payload: [1]), at: t0)
        engine.feed(tcpFrame(src: 3, sport: 40000, dst: 4, dport: 4000, seq: 1, flags: 0x10, payload: [1]), at: t0 + 5)
        // Back two hours: a new flow on the new timeline.
        engine.feed(tcpFrame(src: 5, sport: 40000, dst: 6, dport: 4000, seq: 1, flags: 0x10, payload: [1]), at: t0 - 7_200)
        #expect(engine.liveFlows == 1)
        #expect(engine.statistics.clockSteps == 1)
        #expect(engine.statistics.flowsEnded[Int(FlowEndReason.clockStep.rawValue)] == 2)
        var ended: [String] = [], anomalies: [String] = []
        engine.drainRecords { kind, bytes in
            let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n").map(String.init)
            if kind == .flow { ended += lines } else if kind == .anomaly { anomalies += lines }
        }
        #expect(ended.count == 2 && ended.allSatisfy { $0.contains(#""reason":"clock_step""#) })
        #expect(ended.first?.contains(#""start":"2023-11-14T22:13:20.000000Z""#) == true, "\(ended.first ?? "")")
        #expect(anomalies.count == 1 && anomalies[0].contains(#""time_went_back""#) && anomalies[0].contains("7205"), "\(anomalies)")
        // 31 s later on the new timeline the new flow is idle past its 30 s: it ends at that second's sweep.
        engine.feed(tcpFrame(src: 7, sport: 40000, dst: 8, dport: 4000, seq: 1, flags: 0x10, payload: [1]), at: t0 - 7_200 + 31)
        #expect(engine.statistics.flowsEnded[Int(FlowEndReason.idleTimeout.rawValue)] == 1)
        #expect(engine.liveFlows == 1)
    }

    /// Back by the limit or less (packets reordered across a second, a small correction): nothing ends, nothing is
    /// logged, as before.
    @Test func aSmallStepBackIsTheSameTimeline() {
        var c = EngineConfiguration(); c.anomalyRecords = true
        let engine = Engine(configuration: c)
        engine.feed(tcpFrame(src: 1, sport: 40000, dst: 2, dport: 4000, seq: 1, flags: 0x10, payload: [1]), at: 1_000)
        engine.feed(tcpFrame(src: 3, sport: 40000, dst: 4, dport: 4000, seq: 1, flags: 0x10, payload: [1]), at: 1_000 - PacketTime.clockStepSeconds)
        #expect(engine.liveFlows == 2 && engine.statistics.clockSteps == 0 && engine.statistics.flowsEndedTotal == 0)
        #expect(engine.drainedLines(.anomaly).isEmpty)
    }

    /// Packets reordered across a second (capture queues merged on a SPAN aggregator): a flow's record ends at its
    /// latest packet and starts at its earliest, whichever came last, so its duration is never negative. Both engine
    /// paths (the one-pass path takes the in-order segments here). Before, the end was the last packet's time:
    /// `"duration":-1000` (nanoseconds) for the first flow, and the second flow's start was after its earliest packet.
    @Test(arguments: [true, false]) func reorderedPacketsGiveTheEarliestStartAndTheLatestEnd(onePassPath: Bool) {
        var c = EngineConfiguration(); c.establishedTCPPath = onePassPath
        let engine = Engine(configuration: c)
        func feed(_ frame: [UInt8], _ second: Int64, _ microseconds: Int32) {
            ByteView.with(frame) { engine.process($0, linkType: 1, time: PacketTime(seconds: second, microseconds: microseconds), wireLength: frame.count) }
        }
        let a: UInt32 = 0x0A00_0001, b: UInt32 = 0x0A00_0002
        // Flow 1: its second packet is stamped before its first, across a second.
        feed(tcpFrame(src: a, sport: 40000, dst: b, dport: 4000, seq: 1, ack: 1, flags: 0x10, payload: [1]), 1_001, 0)
        feed(tcpFrame(src: b, sport: 4000, dst: a, dport: 40000, seq: 1, ack: 2, flags: 0x10, payload: [2]), 1_000, 999_999)
        // Flow 2: later, earlier than the first, then the latest.
        feed(tcpFrame(src: a, sport: 40001, dst: b, dport: 4000, seq: 1, ack: 1, flags: 0x10, payload: [1]), 1_001, 500)
        feed(tcpFrame(src: a, sport: 40001, dst: b, dport: 4000, seq: 2, ack: 1, flags: 0x10, payload: [1]), 1_001, 100)
        feed(tcpFrame(src: a, sport: 40001, dst: b, dport: 4000, seq: 3, ack: 1, flags: 0x10, payload: [1]), 1_001, 900)
        #expect(engine.statistics.clockSteps == 0)
        engine.finish()
        let records = engine.drainedLines(.flow)
        #expect(records.count == 2)
        let first = records.first { $0.contains(#""port":40000"#) } ?? "", second = records.first { $0.contains(#""port":40001"#) } ?? ""
        #expect(first.contains(#""start":"1970-01-01T00:16:40.999999Z","end":"1970-01-01T00:16:41.000000Z","duration":1000"#), "\(first)")
        #expect(second.contains(#""start":"1970-01-01T00:16:41.000100Z","end":"1970-01-01T00:16:41.000900Z","duration":800000"#), "\(second)")
    }

    /// The observer hears of the step after the old flows' ends, with the new time.
    @Test func theObserverHearsOfTheStep() {
        final class Steps: EngineObserver {
            var events: [String] = []
            func flowStarted(_ flow: FlowContext, frame: UInt64, time: PacketTime) { events.append("start") }
            func flowIdentified(_ flow: FlowContext, appProtocol: AppProtocol?, frame: UInt64, time: PacketTime) {}
            func operation(_ op: Operation, flow: FlowContext) {}
            func anomaly(_ a: Anomaly, flow: FlowContext?) { events.append("anomaly \(a.kind)") }
            func flowEnded(_ flow: FlowContext, reason: FlowEndReason) { events.append("end \(reason.name)") }
            func tick(time: PacketTime) {}
            func clockStepped(to time: PacketTime) { events.append("step \(time.seconds)") }
            func finish() {}
        }
        let engine = Engine()
        let steps = Steps()
        engine.observer = steps
        engine.feed(udpFrame(src: 1, sport: 5000, dst: 2, dport: 5000), at: 5_000)
        engine.feed(udpFrame(src: 3, sport: 5000, dst: 4, dport: 5000), at: 1_000)
        #expect(steps.events == ["start", "anomaly time_went_back", "end clock_step", "step 1000", "start"], "\(steps.events)")
    }

    /// `finish` ends the flows left at the end of input; an observer that does not want those ends
    /// (`wantsFlowEndsAtEndOfInput`) hears only of the earlier ones (here a clock step's) and of the finish.
    @Test(arguments: [true, false])
    func theEndOfInputsFlowEndsReachOnlyObserversThatWantThem(wants: Bool) {
        final class Ends: EngineObserver {
            let wantsFlowEndsAtEndOfInput: Bool
            var events: [String] = []
            init(wants: Bool) { wantsFlowEndsAtEndOfInput = wants }
            func flowStarted(_ flow: FlowContext, frame: UInt64, time: PacketTime) { events.append("start") }
            func flowIdentified(_ flow: FlowContext, appProtocol: AppProtocol?, frame: UInt64, time: PacketTime) {}
            func operation(_ op: Operation, flow: FlowContext) {}
            func anomaly(_ a: Anomaly, flow: FlowContext?) {}
            func flowEnded(_ flow: FlowContext, reason: FlowEndReason) { events.append("end \(reason.name)") }
            func tick(time: PacketTime) {}
            func finish() { events.append("finish") }
        }
        let engine = Engine()
        let ends = Ends(wants: wants)
        engine.observer = ends
        engine.feed(udpFrame(src: 1, sport: 5000, dst: 2, dport: 5000), at: 5_000)
        engine.feed(udpFrame(src: 3, sport: 5000, dst: 4, dport: 5000), at: 1_000)
        engine.feed(udpFrame(src: 5, sport: 5000, dst: 6, dport: 5000), at: 1_000)
        engine.finish()
        let atTheEnd = wants ? ["end end_of_input", "end end_of_input"] : []
        #expect(ends.events == ["start", "end clock_step", "start", "start"] + atTheEnd + ["finish"], "\(ends.events)")
        // The records do not depend on it.
        #expect(engine.drainedLines(.flow).count == 3)
    }

    /// Time alternating between two timelines an hour apart (a hostile or badly merged capture): every other packet is
    /// a step, each ends the flows, but the step is logged once per minute of the timeline it lands on, not once a
    /// packet (one alert each would flood the SIEM). The work stays linear.
    @Test func alternatingTimelinesAreLoggedOncePerMinute() {
        var c = EngineConfiguration(); c.anomalyRecords = true
        let engine = Engine(configuration: c)
        let t0: Int64 = 1_700_000_000
        for i in 0..<2_000 {
            let second = t0 + (i % 2 == 0 ? 0 : 3_600) + Int64(i / 20)   // 100 s of the lower timeline
            engine.feed(udpFrame(src: 0x0A00_0000 + UInt32(i), sport: 5000, dst: 2, dport: 5000), at: second)
        }
        #expect(engine.statistics.clockSteps == 999)
        var anomalies: [String] = []
        engine.drainRecords { kind, bytes in
            if kind == .anomaly { anomalies += String(decoding: bytes, as: UTF8.self).split(separator: "\n").map(String.init) }
        }
        // Steps land on seconds 0 to 99 of the lower timeline: logged at its second 0 and again past second 60.
        #expect(anomalies.count == 2, "\(anomalies.count) logged")
    }
}
