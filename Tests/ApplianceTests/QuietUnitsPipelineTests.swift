import Foundation
import Testing
import Policy
import Wire
import Records
import Engine
import Capture
@testable import Appliance

/// The units a worker follows (`QuietUnits`) decide whether a request to another unit is left unsent: a unit-id scan
/// on a flow whose verdict the worker holds, alerts compared in order (a worker that noted a request's unit before
/// its check would leave the scan's requests unsent and miss the alert).
@Suite struct QuietUnitsPipelineTests {
    /// One Modbus/TCP flow through `PipelineTests.plantPolicy`'s conduit (reads pass quietly): a few seconds of polling
    /// unit 1 (the merge's verdict reaches the worker meanwhile), then reads to units 1…40 between reads of unit 1, ten
    /// requests a second: with one engine a unit-id scan alert; with workers the same alerts, in the same order.
    func unitScanCapture() throws -> String {
        var packets: [[UInt8]] = []
        let client = ipv4(10, 10, 0, 5), server = ipv4(10, 20, 0, 7), sport: UInt16 = 40_000
        var seq: UInt32 = 1000, ack: UInt32 = 9000
        packets.append(tcpFrame(src: client, sport: sport, dst: server, dport: 502, seq: seq - 1, flags: 0x02))
        packets.append(tcpFrame(src: server, sport: 502, dst: client, dport: sport, seq: ack - 1, ack: seq, flags: 0x12))
        packets.append(tcpFrame(src: client, sport: sport, dst: server, dport: 502, seq: seq, ack: ack, flags: 0x10))
        for n in 0..<1_500 {
            let unit: UInt8 = n < 1_000 || n % 3 != 0 ? 1 : UInt8(1 + (n / 3) % 40)
            let tid = [UInt8(n >> 8), UInt8(n & 0xFF)]
            let request = tid + [0, 0, 0, 6, unit, 3, 0x00, 0x10, 0x00, 0x01]
            let response = tid + [0, 0, 0, 5, unit, 3, 2, 0, 1]
            packets.append(tcpFrame(src: client, sport: sport, dst: server, dport: 502, seq: seq, ack: ack, flags: 0x18, payload: request))
            seq &+= UInt32(request.count)
            packets.append(tcpFrame(src: server, sport: 502, dst: client, dport: sport, seq: ack, ack: seq, flags: 0x18, payload: response))
            ack &+= UInt32(response.count)
        }
        // 50 ms a packet: ten requests a second.
        return try temporaryFile(pcapFile(packets, stepMicroseconds: 50_000), "unit-scan.pcap")
    }

    /// (One test, not one per worker count: each would write the same temporary capture at once.)
    @Test func unitScanThroughAQuietConduitGivesTheAlertsOfOneEngine() throws {
        let file = try unitScanCapture()
        let one = runSingle([file], policy: PipelineTests.plantPolicy)
        let alerts = one.lines[.alert] ?? []
        #expect(alerts.contains { $0.contains("ics-unit-id-scan") }, "\(alerts)")
        var unsent: UInt64 = 0
        for workers in [2, 3] {
        for feed in [PipelineFeed.reader, .workersRead(mapped: true)] {
            let many = runParallel([file], policy: PipelineTests.plantPolicy, workers: workers, feed: feed,
                                   pipelineFinished: { unsent += $0.operationsLeftUnsent })
            // Alerts in order (the claim); other records as sets.
            #expect(many.lines[.alert] ?? [] == alerts, "\(feed)")
            #expect(many.sorted == one.sorted, "\(workers) workers, \(feed)")
        }
        }
        #expect(unsent > 1_000)
    }
}
