import Testing
import Wire
import Records
@testable import Engine
import Flows

/// A SYN on a direction whose stream is already under way. In an open connection one from a number ahead of the
/// stream's next byte is not a new start: an endpoint drops it (RFC 5961 section 4: it answers a challenge ACK), so
/// the monitor keeps its place and reports it (`tcp`/`syn_sequence_jump`). Before, it restarted the stream there: a
/// forged SYN-ACK in either side's name blinded the monitor to that side's later bytes (taken as retransmissions).
/// Once the connection has closed, a SYN-ACK with another number is a new connection whose SYN was not captured.
@Suite struct SYNInConnectionTests {
    static let client: UInt32 = 0x0A00_0001, server: UInt32 = 0x0A00_0002
    /// Read holding registers (unit 1, 10 registers), transaction 1.
    static let read: [UInt8] = [0, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0, 10]
    /// Write single register (unit 1, register 5 := 7), transaction 2, and its echo.
    static let write: [UInt8] = [0, 2, 0, 0, 0, 6, 1, 6, 0, 5, 0, 7]
    static let readAnswer: [UInt8] = [0, 1, 0, 0, 0, 23, 1, 3, 20] + [UInt8](repeating: 7, count: 20)

    /// Frames 1-4: the handshake (client 1000, server 5000), the read and its answer; the next number of each side.
    static func handshakeAndRead(_ engine: Engine) -> (client: UInt32, server: UInt32) {
        let c0 = client, s0 = server, n = UInt32(read.count)
        engine.feed(tcpFrame(src: c0, sport: 40000, dst: s0, dport: 502, seq: 1000, flags: 0x02), at: 100)
        engine.feed(tcpFrame(src: s0, sport: 502, dst: c0, dport: 40000, seq: 5000, ack: 1001, flags: 0x12), at: 100)
        engine.feed(tcpFrame(src: c0, sport: 40000, dst: s0, dport: 502, seq: 1001, ack: 5001, flags: 0x18, payload: read), at: 100)
        engine.feed(tcpFrame(src: s0, sport: 502, dst: c0, dport: 40000, seq: 5001, ack: 1001 + n, flags: 0x18, payload: readAnswer), at: 100)
        return (1001 + n, 5001 + UInt32(readAnswer.count))
    }

    /// The forged SYN-ACK (from `forger`'s address, its number `ahead` past that side's next byte, acknowledging far
    /// past the other side's) between two transactions: both are dissected and matched, one anomaly names its frame.
    @Test(arguments: [FlowSide.initiator, .responder], [true, false])
    func aSYNFromAheadInAnOpenConnectionIsReportedAndMovesNothing(forger: FlowSide, onePass: Bool) {
        var c = EngineConfiguration(); c.transactionRecords = true; c.establishedTCPPath = onePass
        let engine = Engine(configuration: c)
        let c0 = Self.client, s0 = Self.server, n = UInt32(Self.read.count)
        let (clientNext, serverNext) = Self.handshakeAndRead(engine)
        // Frame 5: the forgery.
        if forger == .initiator {
            engine.feed(tcpFrame(src: c0, sport: 40000, dst: s0, dport: 502, seq: clientNext + 700, ack: serverNext + 900, flags: 0x12), at: 101)
        } else {
            engine.feed(tcpFrame(src: s0, sport: 502, dst: c0, dport: 40000, seq: serverNext + 700, ack: clientNext + 900, flags: 0x12), at: 101)
        }
        engine.feed(tcpFrame(src: c0, sport: 40000, dst: s0, dport: 502, seq: clientNext, ack: serverNext, flags: 0x18, payload: Self.write), at: 101)
        engine.feed(tcpFrame(src: s0, sport: 502, dst: c0, dport: 40000, seq: serverNext, ack: clientNext + n, flags: 0x18, payload: Self.write), at: 101)
        let lines = ClosedFlowTests.drain(engine)
        #expect(engine.statistics.pdus[Int(AppProtocol.modbus.rawValue)] == 4, "both transactions, both ways")
        #expect(engine.statistics.streamGaps == 0)
        engine.finish()
        let all = ClosedFlowTests.drain(engine, into: lines)
        let anomalies = all[.anomaly, default: []]
        #expect(anomalies.count == 1 && anomalies.first?.contains(#""kind":"syn_sequence_jump""#) == true, "\(anomalies)")
        #expect(anomalies.first?.contains(#""frame":5,"#) == true && anomalies.first?.contains(#""value":701"#) == true)
        let transactions = all[.modbus, default: []]
        #expect(transactions.count == 2 && transactions.allSatisfy { !$0.contains(#""matched":false"#) }, "\(transactions)")
    }

    /// A SYN-ACK retransmitted after the handshake (its own number again) is a retransmission, as before: no anomaly.
    @Test func aRetransmittedSYNACKIsNoJump() {
        let engine = Engine()
        let c0 = Self.client, s0 = Self.server
        engine.feed(tcpFrame(src: c0, sport: 40000, dst: s0, dport: 502, seq: 1000, flags: 0x02), at: 100)
        engine.feed(tcpFrame(src: s0, sport: 502, dst: c0, dport: 40000, seq: 5000, ack: 1001, flags: 0x12), at: 100)
        engine.feed(tcpFrame(src: s0, sport: 502, dst: c0, dport: 40000, seq: 5000, ack: 1001, flags: 0x12), at: 100)
        engine.feed(tcpFrame(src: c0, sport: 40000, dst: s0, dport: 502, seq: 1001, ack: 5001, flags: 0x18, payload: Self.read), at: 100)
        engine.feed(tcpFrame(src: s0, sport: 502, dst: c0, dport: 40000, seq: 5000, ack: 1013, flags: 0x12), at: 100)
        #expect(ClosedFlowTests.drain(engine)[.anomaly, default: []].isEmpty)
        #expect(engine.statistics.pdus[Int(AppProtocol.modbus.rawValue)] == 1)
    }

    /// After the connection closed (a FIN each way, or a RST), a SYN-ACK with a number other than its sender's next is
    /// a new connection on the same ports whose SYN the capture missed: the old flow ends, a new one starts with the
    /// SYN-ACK's receiver as initiator, and the new connection's request is dissected (before, the closed flow took
    /// it, as bytes past the client's FIN). The new number behind or ahead of the old next byte alike.
    @Test(arguments: [true, false], [UInt32(3000), 9000])
    func aSYNACKAfterTheCloseStartsTheNextConnection(reset: Bool, serverISN: UInt32) {
        var c = EngineConfiguration(); c.transactionRecords = true
        let engine = Engine(configuration: c)
        let c0 = Self.client, s0 = Self.server, n = UInt32(Self.read.count)
        let (clientNext, serverNext) = Self.handshakeAndRead(engine)
        if reset {
            engine.feed(tcpFrame(src: c0, sport: 40000, dst: s0, dport: 502, seq: clientNext, ack: serverNext, flags: 0x14), at: 101)
        } else {
            engine.feed(tcpFrame(src: c0, sport: 40000, dst: s0, dport: 502, seq: clientNext, ack: serverNext, flags: 0x11), at: 101)
            engine.feed(tcpFrame(src: s0, sport: 502, dst: c0, dport: 40000, seq: serverNext, ack: clientNext + 1, flags: 0x11), at: 101)
            engine.feed(tcpFrame(src: c0, sport: 40000, dst: s0, dport: 502, seq: clientNext + 1, ack: serverNext + 1, flags: 0x10), at: 101)
        }
        // The next connection: its SYN (client ISN 20000) not captured.
        engine.feed(tcpFrame(src: s0, sport: 502, dst: c0, dport: 40000, seq: serverISN, ack: 20001, flags: 0x12), at: 102)
        engine.feed(tcpFrame(src: c0, sport: 40000, dst: s0, dport: 502, seq: 20001, ack: serverISN + 1, flags: 0x18, payload: Self.write), at: 102)
        engine.feed(tcpFrame(src: s0, sport: 502, dst: c0, dport: 40000, seq: serverISN + 1, ack: 20001 + n, flags: 0x18, payload: Self.write), at: 102)
        let lines = ClosedFlowTests.drain(engine)
        #expect(engine.statistics.pdus[Int(AppProtocol.modbus.rawValue)] == 4)
        #expect(engine.statistics.flowsEnded[Int((reset ? FlowEndReason.rst : .fin).rawValue)] == 1)
        engine.finish()
        let all = ClosedFlowTests.drain(engine, into: lines)
        #expect(all[.anomaly, default: []].isEmpty, "\(all[.anomaly, default: []])")
        let flows = all[.flow, default: []]
        #expect(flows.count == 2 && flows.allSatisfy { $0.contains(#""midstream":false"#) }, "\(flows)")
        #expect(all[.modbus, default: []].count == 2)
    }

    /// A SYN with another initial number in an open connection whose handshake was seen ends it (`port_reuse`) and
    /// starts the next, as before, and is now reported on the new flow (`syn_inside_connection`): a restarted peer, a
    /// missed close, or a forgery. A connection picked up midstream, or one that had closed, ends without a report.
    @Test(arguments: ["handshake", "midstream", "closed"])
    func aSYNThatEndsAnOpenConnectionIsReported(before: String) {
        let engine = Engine()
        let c0 = Self.client, s0 = Self.server
        let n = UInt32(Self.read.count)
        if before != "midstream" {
            engine.feed(tcpFrame(src: c0, sport: 40000, dst: s0, dport: 502, seq: 1000, flags: 0x02), at: 100)
            engine.feed(tcpFrame(src: s0, sport: 502, dst: c0, dport: 40000, seq: 5000, ack: 1001, flags: 0x12), at: 100)
        }
        engine.feed(tcpFrame(src: c0, sport: 40000, dst: s0, dport: 502, seq: 1001, ack: 5001, flags: 0x18, payload: Self.read), at: 100)
        if before == "closed" {
            engine.feed(tcpFrame(src: c0, sport: 40000, dst: s0, dport: 502, seq: 1001 + n, ack: 5001, flags: 0x14), at: 100)
        }
        engine.feed(tcpFrame(src: c0, sport: 40000, dst: s0, dport: 502, seq: 77_000, flags: 0x02), at: 101)
        let frame = before == "midstream" ? 2 : before == "closed" ? 5 : 4
        let anomalies = ClosedFlowTests.drain(engine)[.anomaly, default: []]
        if before == "handshake" {
            #expect(anomalies.count == 1 && anomalies.first?.contains(#""kind":"syn_inside_connection""#) == true, "\(anomalies)")
            #expect(anomalies.first?.contains(#""frame":\#(frame),"#) == true)
            #expect(engine.statistics.flowsEnded[Int(FlowEndReason.portReuse.rawValue)] == 1)
        } else {
            #expect(anomalies.isEmpty, "\(anomalies)")
            #expect(engine.statistics.flowsEnded[Int((before == "closed" ? FlowEndReason.rst : .portReuse).rawValue)] == 1)
        }
    }
}

/// Two copies of the same TCP bytes with other content (`tcp`/`segment_overlap_conflict`): a Modbus write whose value
/// the sender sent twice, differently, ahead of a hole. An endpoint may keep either copy (stacks differ), so the
/// monitor reports the contest on the later copy's packet, whichever copy it dissects (the first held one).
@Suite struct OverlapConflictTests {
    @Test(arguments: [true, false], [true, false])
    func aWriteSentTwiceWithOtherValuesIsReported(sameValue: Bool, onePass: Bool) {
        var c = EngineConfiguration(); c.transactionRecords = true; c.establishedTCPPath = onePass
        let engine = Engine(configuration: c)
        let c0 = SYNInConnectionTests.client, s0 = SYNInConnectionTests.server
        let write = SYNInConnectionTests.write   // register 5 := 7
        engine.feed(tcpFrame(src: c0, sport: 40000, dst: s0, dport: 502, seq: 1000, flags: 0x02), at: 100)
        engine.feed(tcpFrame(src: s0, sport: 502, dst: c0, dport: 40000, seq: 5000, ack: 1001, flags: 0x12), at: 100)
        // The write's last 6 bytes (function, register, value) ahead of its first 6, then again with value 0x0100.
        let tail = Array(write[6...]), otherTail = sameValue ? tail : Array(write[6..<10]) + [1, 0]
        engine.feed(tcpFrame(src: c0, sport: 40000, dst: s0, dport: 502, seq: 1007, ack: 5001, flags: 0x18, payload: tail), at: 100)
        engine.feed(tcpFrame(src: c0, sport: 40000, dst: s0, dport: 502, seq: 1007, ack: 5001, flags: 0x18, payload: otherTail), at: 100)
        engine.feed(tcpFrame(src: c0, sport: 40000, dst: s0, dport: 502, seq: 1001, ack: 5001, flags: 0x18, payload: Array(write[..<6])), at: 100)
        engine.feed(tcpFrame(src: s0, sport: 502, dst: c0, dport: 40000, seq: 5001, ack: 1013, flags: 0x18, payload: write), at: 100)
        let lines = ClosedFlowTests.drain(engine)
        engine.finish()
        let all = ClosedFlowTests.drain(engine, into: lines)
        let anomalies = all[.anomaly, default: []]
        if sameValue {
            #expect(anomalies.isEmpty, "\(anomalies)")
        } else {
            #expect(anomalies.count == 1 && anomalies.first?.contains(#""kind":"segment_overlap_conflict""#) == true, "\(anomalies)")
            #expect(anomalies.first?.contains(#""frame":4,"#) == true && anomalies.first?.contains(#""value":2"#) == true)
        }
        let transactions = all[.modbus, default: []]
        #expect(transactions.count == 1 && transactions.first?.contains(#""matched":false"#) == false, "\(transactions)")
    }
}

/// Urgent data (URG) on an ICS connection (`tcp`/`urgent_data`, its value the urgent pointer): stacks differ in whether the urgent byte stays in the
/// stream, and no ICS protocol uses it. The bytes are dissected in line (as tshark shows them) and the segment is
/// reported, by either path; a flow of another protocol (HTTP here), where Telnet and FTP may use it, is not.
@Suite struct UrgentDataTests {
    @Test(arguments: [502, 80], [true, false])
    func urgentDataOnAnICSConnectionIsReported(port: UInt16, onePass: Bool) {
        var c = EngineConfiguration(); c.transactionRecords = true; c.establishedTCPPath = onePass
        let engine = Engine(configuration: c)
        let c0 = SYNInConnectionTests.client, s0 = SYNInConnectionTests.server
        let first: [UInt8] = port == 502 ? SYNInConnectionTests.read : Array("GET / HTTP/1.1\r\n\r\n".utf8)
        let n = UInt32(first.count)
        engine.feed(tcpFrame(src: c0, sport: 40000, dst: s0, dport: port, seq: 1000, flags: 0x02), at: 100)
        engine.feed(tcpFrame(src: s0, sport: port, dst: c0, dport: 40000, seq: 5000, ack: 1001, flags: 0x12), at: 100)
        engine.feed(tcpFrame(src: c0, sport: 40000, dst: s0, dport: port, seq: 1001, ack: 5001, flags: 0x18, payload: first), at: 100)
        // The next request with URG set (frame 4).
        let second: [UInt8] = port == 502 ? SYNInConnectionTests.write : first
        var urgent = tcpFrame(src: c0, sport: 40000, dst: s0, dport: port, seq: 1001 + n, ack: 5001, flags: 0x38, payload: second)
        urgent[53] = 3   // the urgent pointer: the urgent data ends before the segment's fourth byte
        engine.feed(urgent, at: 100)
        let lines = ClosedFlowTests.drain(engine)
        engine.finish()
        let anomalies = ClosedFlowTests.drain(engine, into: lines)[.anomaly, default: []].filter { !$0.contains("truncated_at_end") }
        if port == 502 {
            #expect(anomalies.count == 1 && anomalies.first?.contains(#""kind":"urgent_data""#) == true, "\(anomalies)")
            #expect(anomalies.first?.contains(#""frame":4,"#) == true && anomalies.first?.contains(#""value":3}"#) == true,
                    "its value the urgent pointer")
            #expect(engine.statistics.pdus[Int(AppProtocol.modbus.rawValue)] == 2, "both requests dissected")
        } else {
            #expect(anomalies.isEmpty, "\(anomalies)")
        }
    }
}
