import Testing
import Wire
import Records
@testable import Engine
import Flows

/// What a TCP flow closed by its peers leaves unfinished (a message cut by the close, a request never answered) is
/// reported at the close when nothing can follow it, stamped with the closing packet; otherwise, as before, when the
/// closed flow's linger ends (`FlowTableLimits.closedLinger`, on whatever packet comes then).
@Suite struct ClosedFlowTests {
    static let client: UInt32 = 0x0A00_0001, server: UInt32 = 0x0A00_0002
    static let request: [UInt8] = [0, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0, 10]

    /// How the flow closes after a whole Modbus request and the first 7 bytes of the next one.
    enum Close: String, CaseIterable, CustomTestStringConvertible {
        /// A FIN each way, each at its side's next byte.
        case finsInSequence
        /// The client's FIN on the segment with its bytes, then the server's.
        case finWithTheLastBytes
        /// The same as `finsInSequence`, then a data segment past the client's FIN (no stack sends one): not dissected,
        /// a `data_after_fin` anomaly where the dissection ended at the close.
        case finsInSequenceThenBytesPastTheFIN
        /// The same, the segment numbered as the FIN was (its bytes the next in sequence, the FIN taking no byte of
        /// the stream): the established path's delivery, reported as well.
        case finsInSequenceThenBytesAtTheFINsNumber
        /// The client's FIN 5 bytes past its last byte (a hole before it: those bytes may still come).
        case finAfterAHole
        /// A RST from the server.
        case reset
        var testDescription: String { rawValue }
        var reportsAtClose: Bool { self != .finAfterAHole && self != .reset }
    }

    /// Frames: handshake and request, the close, a straggler, then another flow's packet 130 s later, which ends
    /// the linger. Records of the first flow: the cut message's anomaly and the unanswered request.
    @Test(arguments: Close.allCases, [true, false])
    func whatAClosedFlowLeavesUnfinishedIsReportedAtItsCloseWhenNothingCanFollow(close: Close, onePass: Bool) {
        var c = EngineConfiguration(); c.transactionRecords = true; c.establishedTCPPath = onePass
        let engine = Engine(configuration: c)
        // `Engine.feed` (EngineTests) lets the engine number frames: frame N is the N-th packet fed.
        let c0 = Self.client, s0 = Self.server, sent = Self.request + Self.request[0..<7]
        let end = 1001 + UInt32(sent.count)
        let pastTheFIN = tcpFrame(src: c0, sport: 40000, dst: s0, dport: 502, seq: end + 1, ack: 5002, flags: 0x18, payload: Self.request)
        engine.feed(tcpFrame(src: c0, sport: 40000, dst: s0, dport: 502, seq: 1000, flags: 0x02), at: 100)
        engine.feed(tcpFrame(src: s0, sport: 502, dst: c0, dport: 40000, seq: 5000, ack: 1001, flags: 0x12), at: 100)
        engine.feed(tcpFrame(src: c0, sport: 40000, dst: s0, dport: 502, seq: 1001, ack: 5001, flags: 0x10), at: 100)
        if close == .finWithTheLastBytes {
            engine.feed(tcpFrame(src: c0, sport: 40000, dst: s0, dport: 502, seq: 1001, ack: 5001, flags: 0x19, payload: sent), at: 101)
        } else {
            engine.feed(tcpFrame(src: c0, sport: 40000, dst: s0, dport: 502, seq: 1001, ack: 5001, flags: 0x18, payload: sent), at: 100)
        }
        switch close {
        case .finsInSequence, .finsInSequenceThenBytesPastTheFIN, .finsInSequenceThenBytesAtTheFINsNumber:
            engine.feed(tcpFrame(src: c0, sport: 40000, dst: s0, dport: 502, seq: end, ack: 5001, flags: 0x11), at: 101)
            engine.feed(tcpFrame(src: s0, sport: 502, dst: c0, dport: 40000, seq: 5001, ack: end + 1, flags: 0x11), at: 101)
        case .finWithTheLastBytes:
            engine.feed(tcpFrame(src: s0, sport: 502, dst: c0, dport: 40000, seq: 5001, ack: end + 1, flags: 0x11), at: 101)
        case .finAfterAHole:
            engine.feed(tcpFrame(src: c0, sport: 40000, dst: s0, dport: 502, seq: end + 5, ack: 5001, flags: 0x11), at: 101)
            engine.feed(tcpFrame(src: s0, sport: 502, dst: c0, dport: 40000, seq: 5001, ack: end + 1, flags: 0x11), at: 101)
        case .reset:
            engine.feed(tcpFrame(src: s0, sport: 502, dst: c0, dport: 40000, seq: 5001, ack: end, flags: 0x14), at: 101)
        }
        let closeFrame = engine.statistics.packets
        switch close {
        case .finsInSequenceThenBytesPastTheFIN: engine.feed(pastTheFIN, at: 102)
        case .finsInSequenceThenBytesAtTheFINsNumber:
            engine.feed(tcpFrame(src: c0, sport: 40000, dst: s0, dport: 502, seq: end, ack: 5002, flags: 0x18, payload: Self.request), at: 102)
        default: engine.feed(tcpFrame(src: c0, sport: 40000, dst: s0, dport: 502, seq: end + 1, ack: 5002, flags: 0x10), at: 102)
        }
        #expect(engine.liveFlows == 1)
        engine.feed(tcpFrame(src: 0x0A00_0005, sport: 1, dst: 0x0A00_0006, dport: 2, seq: 1, flags: 0x02), at: 231)
        let lingerFrame = engine.statistics.packets
        #expect(engine.liveFlows == 1, "the closed flow's linger has ended")

        let atClose = close.reportsAtClose
        var lines = Self.drain(engine)
        let cut = lines[.anomaly, default: []].filter { $0.contains(#""kind":"truncated_at_end""#) }
        let pastFIN = lines[.anomaly, default: []].filter { $0.contains(#""kind":"data_after_fin""#) }
        // Reported with its own packet (held behind the FIN's sequence number, when the linger ends).
        let sentPastFIN = close == .finsInSequenceThenBytesPastTheFIN || close == .finsInSequenceThenBytesAtTheFINsNumber
        #expect(pastFIN.count == (sentPastFIN ? 1 : 0), "\(pastFIN)")
        #expect(pastFIN.allSatisfy { $0.contains(#""frame":\#(closeFrame + 1),"#) && $0.contains(#""layer":"tcp""#) && $0.contains(#""value":12"#) })
        let unanswered = lines[.modbus, default: []].filter { $0.contains(#""matched":false"#) }
        #expect(cut.count == 1)
        #expect(unanswered.count == 1, "the first request, never answered: \(unanswered)")
        // Stamped with the closing packet, or with the packet that ended the linger 130 s on.
        let stamp = atClose ? #""@timestamp":"1970-01-01T00:01:41.000000Z","frame":\#(closeFrame),"# : #""@timestamp":"1970-01-01T00:03:51.000000Z","frame":\#(lingerFrame),"#
        #expect(cut.first?.hasPrefix("{" + stamp) == true, "\(cut)")
        // Closed with no answer is `no_response`; 130 s after the request it had timed out.
        #expect(unanswered.first?.contains(atClose ? "no_response" : "timeout") == true, "\(unanswered)")
        // Bytes past a FIN are not dissected: one request's PDU either way.
        #expect(engine.statistics.pdus[Int(AppProtocol.modbus.rawValue)] == 1)
        engine.finish()
        lines = Self.drain(engine, into: lines)
        let flows = lines[.flow, default: []]
        #expect(flows.count == 2)
        #expect(flows.first?.contains(#""protocol":"modbus""#) == true, "the flow's record still names its protocol: \(flows)")
        #expect(flows.first?.contains(close == .reset ? #""reason":"rst""# : #""reason":"fin""#) == true)
    }

    /// A flow closed in sequence whose dissector has nothing to report (its one request answered) keeps its state until
    /// the flow ends, with no `finish` and no context built at the close; one with something to report (the request
    /// unanswered) is finished and released at the close. Either way bytes past the FIN are not dissected, and the state
    /// is released once, when the linger ends.
    @Test(arguments: [true, false], [true, false])
    func aQuietCloseKeepsItsStateUntilTheFlowEnds(answered: Bool, onePass: Bool) {
        var c = EngineConfiguration(); c.transactionRecords = true; c.establishedTCPPath = onePass
        let engine = Engine(configuration: c)
        let c0 = Self.client, s0 = Self.server, end = 1001 + UInt32(Self.request.count)
        let response: [UInt8] = [0, 1, 0, 0, 0, 23, 1, 3, 20] + [UInt8](repeating: 7, count: 20)
        let serverEnd = 5001 + UInt32(answered ? response.count : 0)
        engine.feed(tcpFrame(src: c0, sport: 40000, dst: s0, dport: 502, seq: 1000, flags: 0x02), at: 100)
        engine.feed(tcpFrame(src: s0, sport: 502, dst: c0, dport: 40000, seq: 5000, ack: 1001, flags: 0x12), at: 100)
        engine.feed(tcpFrame(src: c0, sport: 40000, dst: s0, dport: 502, seq: 1001, ack: 5001, flags: 0x18, payload: Self.request), at: 100)
        if answered {
            engine.feed(tcpFrame(src: s0, sport: 502, dst: c0, dport: 40000, seq: 5001, ack: end, flags: 0x18, payload: response), at: 100)
        }
        engine.feed(tcpFrame(src: c0, sport: 40000, dst: s0, dport: 502, seq: end, ack: serverEnd, flags: 0x11), at: 101)
        engine.feed(tcpFrame(src: s0, sport: 502, dst: c0, dport: 40000, seq: serverEnd, ack: end + 1, flags: 0x11), at: 101)
        #expect(engine.modbus.liveStates == (answered ? 1 : 0))
        let unanswered = Self.drain(engine)[.modbus, default: []].filter { $0.contains(#""matched":false"#) }
        #expect(unanswered.count == (answered ? 0 : 1), "reported at the close")
        engine.feed(tcpFrame(src: c0, sport: 40000, dst: s0, dport: 502, seq: end + 1, ack: serverEnd + 1, flags: 0x18, payload: Self.request), at: 102)
        engine.feed(tcpFrame(src: 0x0A00_0005, sport: 1, dst: 0x0A00_0006, dport: 2, seq: 1, flags: 0x02), at: 231)
        #expect(engine.liveFlows == 1 && engine.modbus.liveStates == 0)
        #expect(engine.statistics.anomalies == 1, "the request past the FIN: data_after_fin")
        #expect(engine.statistics.pdus[Int(AppProtocol.modbus.rawValue)] == (answered ? 2 : 1))
        #expect(Self.drain(engine)[.flow, default: []].first?.contains(#""protocol":"modbus""#) == true)
    }

    /// Where a request past the client's FIN lies: sent after the FIN at the FIN's own number, or past it; or sent
    /// past it and arrived before the FIN (held behind the one-number hole the FIN fills).
    enum PastTheFIN: String, CaseIterable, CustomTestStringConvertible {
        case atTheFINsNumber, pastTheFINsNumber, heldThenFIN
        var testDescription: String { rawValue }
    }

    /// A side whose FIN came in sequence has ended, though its peer has not (half-closed): a request it sends after,
    /// or that was held past the FIN when it came, is a `data_after_fin` anomaly on its own packet, never dissected,
    /// and the server's acknowledgement of the FIN gives up no one-byte hole. (Before, such a request was dissected:
    /// in order at the FIN's number, or delivered behind a gap once the FIN was acknowledged.)
    @Test(arguments: PastTheFIN.allCases, [true, false])
    func bytesPastAHalfClosedSidesFINAreReportedNotDissected(order: PastTheFIN, onePass: Bool) {
        var c = EngineConfiguration(); c.transactionRecords = true; c.establishedTCPPath = onePass
        let engine = Engine(configuration: c)
        let c0 = Self.client, s0 = Self.server, end = 1001 + UInt32(Self.request.count)
        let response: [UInt8] = [0, 1, 0, 0, 0, 23, 1, 3, 20] + [UInt8](repeating: 7, count: 20)
        engine.feed(tcpFrame(src: c0, sport: 40000, dst: s0, dport: 502, seq: 1000, flags: 0x02), at: 100)
        engine.feed(tcpFrame(src: s0, sport: 502, dst: c0, dport: 40000, seq: 5000, ack: 1001, flags: 0x12), at: 100)
        engine.feed(tcpFrame(src: c0, sport: 40000, dst: s0, dport: 502, seq: 1001, ack: 5001, flags: 0x18, payload: Self.request), at: 100)
        engine.feed(tcpFrame(src: s0, sport: 502, dst: c0, dport: 40000, seq: 5001, ack: end, flags: 0x18, payload: response), at: 100)
        let serverNext = 5001 + UInt32(response.count)
        let fin = tcpFrame(src: c0, sport: 40000, dst: s0, dport: 502, seq: end, ack: serverNext, flags: 0x11)
        let hidden = tcpFrame(src: c0, sport: 40000, dst: s0, dport: 502, seq: order == .atTheFINsNumber ? end : end + 1, ack: serverNext,
                              flags: 0x18, payload: Self.request)
        if order == .heldThenFIN { engine.feed(hidden, at: 101); engine.feed(fin, at: 101) } else { engine.feed(fin, at: 101); engine.feed(hidden, at: 101) }
        let hiddenFrame = order == .heldThenFIN ? 5 : 6
        // The server acknowledges the FIN, answers nothing more, and stays open.
        engine.feed(tcpFrame(src: s0, sport: 502, dst: c0, dport: 40000, seq: serverNext, ack: end + 1, flags: 0x10), at: 101)
        let anomalies = Self.drain(engine)[.anomaly, default: []]
        #expect(anomalies.count == 1 && anomalies.first?.contains(#""kind":"data_after_fin""#) == true, "\(anomalies)")
        #expect(anomalies.first?.contains(#""frame":\#(hiddenFrame),"#) == true && anomalies.first?.contains(#""value":12"#) == true)
        #expect(engine.statistics.pdus[Int(AppProtocol.modbus.rawValue)] == 2, "the first request and its answer only")
        #expect(engine.statistics.streamGaps == 0)
        engine.finish()
        #expect(engine.drainedLines(.modbus).allSatisfy { !$0.contains(#""matched":false"#) })
    }

    /// A FIN that came past a hole (the request before it not yet seen): a request sent past it (at the FIN's own
    /// number, or after) and held is a `data_after_fin` anomaly on its own packet, never dissected, whether the hole is
    /// then filled (the missing request is dissected) or given up by the server's acknowledgement of the FIN (a gap).
    /// (Before, the FIN's place was not remembered and the held request was dissected once the hole closed.)
    @Test(arguments: [(true, true, false), (true, false, false), (false, true, false), (false, false, false), (true, true, true)],
          [true, false])
    func aRequestPastAFINThatCamePastAHoleIsReportedNotDissected(shape: (filled: Bool, atTheFINsNumber: Bool, fillFirst: Bool),
                                                                   onePass: Bool) {
        let (filled, atTheFINsNumber, fillFirst) = shape
        var c = EngineConfiguration(); c.transactionRecords = true; c.establishedTCPPath = onePass
        let engine = Engine(configuration: c)
        let c0 = Self.client, s0 = Self.server, n = UInt32(Self.request.count), end = 1001 + n
        let response: [UInt8] = [0, 1, 0, 0, 0, 23, 1, 3, 20] + [UInt8](repeating: 7, count: 20)
        let serverNext = 5001 + UInt32(response.count)
        engine.feed(tcpFrame(src: c0, sport: 40000, dst: s0, dport: 502, seq: 1000, flags: 0x02), at: 100)
        engine.feed(tcpFrame(src: s0, sport: 502, dst: c0, dport: 40000, seq: 5000, ack: 1001, flags: 0x12), at: 100)
        engine.feed(tcpFrame(src: c0, sport: 40000, dst: s0, dport: 502, seq: 1001, ack: 5001, flags: 0x18, payload: Self.request), at: 100)
        engine.feed(tcpFrame(src: s0, sport: 502, dst: c0, dport: 40000, seq: 5001, ack: end, flags: 0x18, payload: response), at: 100)
        // The second request (at `end`) is missing; the FIN comes after it, then a request past the FIN.
        let finAt = end + n
        engine.feed(tcpFrame(src: c0, sport: 40000, dst: s0, dport: 502, seq: finAt, ack: serverNext, flags: 0x11), at: 101)
        let hidden = tcpFrame(src: c0, sport: 40000, dst: s0, dport: 502, seq: atTheFINsNumber ? finAt : finAt + 1, ack: serverNext,
                              flags: 0x18, payload: Self.request)
        let fill = tcpFrame(src: c0, sport: 40000, dst: s0, dport: 502, seq: end, ack: serverNext, flags: 0x18, payload: Self.request)
        // (Filled first, the hole's bytes come in sequence: the one-pass path must leave them, and what follows, to the
        // stream, which knows of the FIN.)
        if fillFirst { engine.feed(fill, at: 101); engine.feed(hidden, at: 101) } else {
            engine.feed(hidden, at: 101)
            if filled { engine.feed(fill, at: 101) }
        }
        let hiddenFrame = fillFirst ? 7 : 6
        engine.feed(tcpFrame(src: s0, sport: 502, dst: c0, dport: 40000, seq: serverNext, ack: finAt + 1, flags: 0x10), at: 101)
        let anomalies = Self.drain(engine)[.anomaly, default: []].filter { $0.contains(#""kind":"data_after_fin""#) }
        #expect(anomalies.count == 1 && anomalies.first?.contains(#""frame":\#(hiddenFrame),"#) == true, "\(anomalies)")
        #expect(engine.statistics.pdus[Int(AppProtocol.modbus.rawValue)] == (filled ? 3 : 2))
        #expect(engine.statistics.streamGaps == (filled ? 0 : 1))
    }

    /// Every record line the engine has finished, by kind, after `earlier`'s (draining empties every kind at once).
    static func drain(_ engine: Engine, into earlier: [RecordKind: [String]] = [:]) -> [RecordKind: [String]] {
        var out = earlier
        engine.drainRecords { kind, bytes in
            out[kind, default: []] += String(decoding: bytes, as: UTF8.self).split(separator: "\n").map(String.init)
        }
        return out
    }

    /// An undecided flow (5 bytes to port 502: too few to identify) closed in sequence reports its held bytes at the
    /// close, as the engine's own layer (`flow`), and a RST after the FINs still ends the flow as `rst`.
    @Test func anUndecidedFlowClosedInSequenceReportsItsBytesAtTheClose() {
        let engine = Engine()
        let c0 = Self.client, s0 = Self.server
        engine.feed(tcpFrame(src: c0, sport: 40000, dst: s0, dport: 502, seq: 1000, flags: 0x02), at: 100)
        engine.feed(tcpFrame(src: s0, sport: 502, dst: c0, dport: 40000, seq: 5000, ack: 1001, flags: 0x12), at: 100)
        engine.feed(tcpFrame(src: c0, sport: 40000, dst: s0, dport: 502, seq: 1001, ack: 5001, flags: 0x18, payload: Array(Self.request[0..<5])), at: 100)
        engine.feed(tcpFrame(src: c0, sport: 40000, dst: s0, dport: 502, seq: 1006, ack: 5001, flags: 0x11), at: 101)
        engine.feed(tcpFrame(src: s0, sport: 502, dst: c0, dport: 40000, seq: 5001, ack: 1007, flags: 0x11), at: 101)
        let cut = Self.drain(engine)[.anomaly, default: []].filter { $0.contains(#""kind":"truncated_at_end""#) }
        #expect(cut.count == 1 && cut.first?.contains(#""frame":5,"#) == true && cut.first?.contains(#""layer":"flow""#) == true, "\(cut)")
        engine.feed(tcpFrame(src: s0, sport: 502, dst: c0, dport: 40000, seq: 5002, ack: 1007, flags: 0x04), at: 102)
        engine.finish()
        #expect(engine.drainedLines(.anomaly).isEmpty, "reported once")
        #expect(engine.statistics.flowsEnded[Int(FlowEndReason.rst.rawValue)] == 1)
    }
}
