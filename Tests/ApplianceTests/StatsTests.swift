import Foundation
import Testing
import Wire
import Records
import Engine
import Output
@testable import Appliance

/// Loss accounting, the stats record and the Prometheus metrics file.
@Suite struct StatsTests {
    @Test func pcapCountersWidenPastTheirThirtyTwoBitWrap() {
        var c = InterfaceCounters(name: "eth1")
        c.update(received: 4_294_967_000, kernelDrops: 10, interfaceDrops: 0)
        c.update(received: 200, kernelDrops: 12, interfaceDrops: 1)   // ps_recv wrapped
        #expect(c.received == 4_294_967_296 + 200)
        #expect(c.kernelDrops == 12 && c.interfaceDrops == 1)
    }

    @Test func lossAlertFiresWhenTheRatioCrossesUpwardsOnly() {
        var m = LossMonitor(threshold: 0.01)
        #expect(m.update(read: 1000, lost: 0).alert == false)
        let i = m.update(read: 1990, lost: 10)      // 10 of 1000 offered in this interval: 1%
        #expect(i.offered == 1000 && i.lost == 10 && i.alert)
        #expect(m.update(read: 2980, lost: 20).alert == false)   // still above: no repeat
        #expect(m.update(read: 3980, lost: 20).alert == false)   // back to zero
        #expect(m.update(read: 4000, lost: 100).alert)           // crosses again
        var off = LossMonitor(threshold: 0)
        #expect(off.update(read: 0, lost: 1_000_000).alert == false)
    }

    func sample() -> StatsSnapshot {
        var s = StatsSnapshot()
        s.time = PacketTime(seconds: 1_700_000_000, microseconds: 42)
        s.interfaces = [InterfaceCounters(name: "eth1"), InterfaceCounters(name: "we\"ird\\name")]
        s.interfaces[0].update(received: 1000, kernelDrops: 7, interfaceDrops: 1)
        s.packetsRead = 993
        s.queueDrops = 2
        s.engine.packets = 991
        s.engine.streamGaps = 3
        s.engine.carryOverflows = 1
        s.outputs = [OutputReport(url: "syslog+tcp://siem:601?format=cef")]
        s.outputs[0].droppedQueueFull = 5
        s.intervalOffered = 1000; s.intervalLost = 10; s.intervalSeconds = 60
        return s
    }

    @Test func statsRecordIsOneJSONObjectWithEveryLossCounter() throws {
        var json = JSONWriter()
        sample().writeJSON(to: &json)
        let o = try #require(try JSONSerialization.jsonObject(with: Data(json.bytes)) as? [String: Any])
        let zw = try #require(o["zonewatch"] as? [String: Any])
        let capture = try #require(zw["capture"] as? [String: Any])
        #expect(capture["kernel_drops"] as? Int == 7)
        #expect(capture["interface_drops"] as? Int == 1)
        #expect(capture["queue_drops"] as? Int == 2)
        #expect(capture["lost"] as? Int == 10)
        let engine = try #require(zw["engine"] as? [String: Any])
        #expect(engine["tcp_gaps"] as? Int == 3 && engine["reassembly_overflows"] as? Int == 1)
        let outputs = try #require(zw["outputs"] as? [[String: Any]])
        #expect(outputs.first?["dropped_queue_full"] as? Int == 5)
        #expect((o["event"] as? [String: Any])?["dataset"] as? String == "zonewatch.stats")
        #expect(o["@timestamp"] as? String == "2023-11-14T22:13:20.000042Z")
    }

    /// The text format: every sample belongs to a family announced by HELP and TYPE, names are valid, label
    /// values are escaped, counters end in `_total`, and the lines node_exporter is documented to read are there.
    @Test func prometheusTextFollowsTheExpositionFormat() throws {
        let text = sample().prometheusText()
        #expect(text.hasSuffix("\n"))
        var types: [String: String] = [:]
        var samples = 0
        let name = try Regex("^[a-zA-Z_:][a-zA-Z0-9_:]*$")
        for line in text.split(separator: "\n") {
            if line.hasPrefix("# HELP ") { continue }
            if line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ")
                #expect(parts.count == 4)
                types[String(parts[2])] = String(parts[3])
                continue
            }
            samples += 1
            let metric = String(line.prefix { $0 != "{" && $0 != " " })
            #expect(metric.wholeMatch(of: name) != nil, "\(line)")
            let family = try #require(types[metric], "sample before its TYPE: \(line)")
            if family == "counter" { #expect(metric.hasSuffix("_total")) }
            #expect(Double(line.split(separator: " ").last!) != nil, "\(line)")
        }
        #expect(samples > 30)
        #expect(text.contains("zonewatch_kernel_drops_total{interface=\"eth1\"} 7\n"))
        #expect(text.contains("zonewatch_interface_drops_total{interface=\"eth1\"} 1\n"))
        #expect(text.contains("zonewatch_queue_drops_total 2\n"))
        #expect(text.contains("zonewatch_packets_total 991\n"))
        #expect(text.contains("zonewatch_tcp_gaps_total 3\n"))
        #expect(text.contains("zonewatch_reassembly_overflows_total 1\n"))
        #expect(text.contains("zonewatch_output_dropped_total{output=\"syslog+tcp://siem:601?format=cef\"} 5\n"))
        #expect(text.contains("{interface=\"we\\\"ird\\\\name\"}"))
        #expect(text.contains("zonewatch_last_stats_timestamp_seconds 1700000000.000042\n"))
    }

    @Test func metricsFileIsReplacedAtomically() throws {
        let dir = NSTemporaryDirectory() + "zw-metrics-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/zonewatch.prom"
        #expect(writeFileAtomically(path, "a 1\n"))
        #expect(writeFileAtomically(path, "a 2\n"))
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "a 2\n")
        // No temporary file is left behind.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["zonewatch.prom"])
        #expect(!writeFileAtomically("/nonexistent-dir/x.prom", "a 1\n"))
    }

    @Test func lossAlertIsACaptureAlert() throws {
        var s = sample()
        s.intervalSeconds = 60
        let i = LossMonitor.Interval(offered: 1000, lost: 10, ratio: 0.01, alert: true)
        let a = LossMonitor.alert(i, snapshot: s, threshold: 0.001, frame: 993)
        #expect(a.category == .capture && a.ruleID == "ZW-CAPTURE-001")
        #expect(a.message.contains("lost 10 of 1000 packets (1.0%)"))
        var json = JSONWriter()
        a.writeECS(to: &json)
        let o = try #require(try JSONSerialization.jsonObject(with: Data(json.bytes)) as? [String: Any])
        #expect((o["rule"] as? [String: Any])?["category"] as? String == "capture")
    }
}
