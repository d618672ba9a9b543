import Glibc
import Wire
import Records
import Decode
import Engine
import Flows
import Output

/// libpcap's counters of one interface, widened to 64 bits. `pcap_stats` reports 32-bit counters that wrap
/// (after about 4.3 billion packets: days on a busy SPAN port); the appliance polls every second and adds the
/// difference modulo 2³², which is exact as long as fewer than 2³² packets pass between two polls.
public struct InterfaceCounters: Sendable, Equatable {
    /// Interface name.
    public var name: String
    /// Packets that passed the filter (including those then dropped).
    public var received: UInt64 = 0
    /// Packets the kernel dropped because the capture buffer was full.
    public var kernelDrops: UInt64 = 0
    /// Packets the interface or driver dropped (all traffic of the interface, as libpcap reports it).
    public var interfaceDrops: UInt64 = 0
    private var last: (UInt32, UInt32, UInt32)?

    /// Creates zeroed counters.
    public init(name: String) { self.name = name }

    /// Adds a new `pcap_stats` reading (raw 32-bit values).
    public mutating func update(received r: UInt64, kernelDrops k: UInt64, interfaceDrops i: UInt64) {
        let now = (UInt32(truncatingIfNeeded: r), UInt32(truncatingIfNeeded: k), UInt32(truncatingIfNeeded: i))
        let before = last ?? (0, 0, 0)
        received &+= UInt64(now.0 &- before.0)
        kernelDrops &+= UInt64(now.1 &- before.1)
        interfaceDrops &+= UInt64(now.2 &- before.2)
        last = now
    }

    public static func == (a: InterfaceCounters, b: InterfaceCounters) -> Bool {
        a.name == b.name && a.received == b.received && a.kernelDrops == b.kernelDrops && a.interfaceDrops == b.interfaceDrops
    }
}

/// Everything a stats record, the metrics file and the shutdown summary report.
public struct StatsSnapshot: Sendable {
    /// Why it was taken: `interval`, `signal` (SIGUSR1) or `shutdown`.
    public var reason: String = "interval"
    /// Wall-clock time.
    public var time = PacketTime.zero
    /// Seconds since start-up.
    public var uptimeSeconds: Double = 0
    /// Worker engines.
    public var workers = 1
    /// Per-interface capture counters.
    public var interfaces: [InterfaceCounters] = []
    /// Packets read from libpcap (numbered frames, including the ones a full worker ring then dropped).
    public var packetsRead: UInt64 = 0
    /// Packets dropped because a worker's ring was full (live with `--workers`).
    public var queueDrops: UInt64 = 0
    /// Engine counters (summed over workers).
    public var engine = EngineStatistics()
    /// Live flows.
    public var liveFlows = 0
    /// SIEM outputs.
    public var outputs: [OutputReport] = []
    /// Successful and rejected SIGHUP policy reloads.
    public var policyReloads: UInt64 = 0
    public var policyReloadFailures: UInt64 = 0
    /// Capture-loss alerts raised.
    public var lossAlerts: UInt64 = 0
    /// The last interval: its length, packets offered (read + lost) and lost.
    public var intervalSeconds: Double = 0
    public var intervalOffered: UInt64 = 0
    public var intervalLost: UInt64 = 0

    /// Creates an empty snapshot.
    public init() {}

    /// Kernel drops over all interfaces.
    public var kernelDrops: UInt64 { interfaces.reduce(0) { $0 &+ $1.kernelDrops } }
    /// Interface drops over all interfaces.
    public var interfaceDrops: UInt64 { interfaces.reduce(0) { $0 &+ $1.interfaceDrops } }
    /// Packets received by the filters over all interfaces.
    public var received: UInt64 { interfaces.reduce(0) { $0 &+ $1.received } }
    /// Every packet lost before analysis: kernel, interface and worker-queue drops.
    public var lost: UInt64 { kernelDrops &+ interfaceDrops &+ queueDrops }
    /// Output records dropped (queue full, spool full, errors) over all outputs.
    public var outputDrops: UInt64 { outputs.reduce(0) { $0 &+ $1.dropped } }

    /// The `stats.jsonl` record (ECS-style envelope, `event.kind: metric`), one line without the newline.
    public func writeJSON(to json: inout JSONWriter) {
        json.beginObject()
        json.key("@timestamp"); json.time(time)
        json.key("event"); json.beginObject()
        json.field("kind", "metric"); json.field("dataset", "zonewatch.stats"); json.field("reason", reason)
        json.endObject()
        json.key("zonewatch"); json.beginObject()
        json.key("uptime_seconds"); json.double(uptimeSeconds)
        json.field("workers", workers)
        json.key("capture"); json.beginObject()
        json.field("received", received); json.field("kernel_drops", kernelDrops); json.field("interface_drops", interfaceDrops)
        json.field("packets_read", packetsRead); json.field("queue_drops", queueDrops); json.field("lost", lost)
        json.key("interfaces"); json.beginArray()
        for i in interfaces {
            json.beginObject()
            json.field("name", i.name); json.field("received", i.received)
            json.field("kernel_drops", i.kernelDrops); json.field("interface_drops", i.interfaceDrops)
            json.endObject()
        }
        json.endArray()
        json.endObject()
        json.key("interval"); json.beginObject()
        json.key("seconds"); json.double(intervalSeconds)
        json.field("offered", intervalOffered); json.field("lost", intervalLost)
        json.key("loss_ratio"); json.double(intervalOffered == 0 ? 0 : Double(intervalLost) / Double(intervalOffered))
        json.endObject()
        let s = engine
        json.key("engine"); json.beginObject()
        json.field("packets", s.packets); json.field("bytes", s.bytes)
        json.field("truncated_packets", s.truncatedPackets); json.field("non_ip_packets", s.nonIPPackets)
        json.field("decode_failures", s.decodeFailureTotal)
        json.field("flows_created", s.flowsCreated); json.field("live_flows", liveFlows)
        json.key("flows_ended"); json.beginObject()
        for (i, name) in FlowEndNames.all.enumerated() where i < s.flowsEnded.count { json.key(name); json.uint(s.flowsEnded[i]) }
        json.endObject()
        json.field("tcp_gaps", s.streamGaps); json.field("tcp_gap_bytes", s.streamGapBytes)
        json.field("reassembly_overflows", s.carryOverflows)
        json.field("messages_cut_by_capture", s.messagesCutByCapture); json.field("messages_cut_by_capture_bytes", s.messagesCutByCaptureBytes)
        json.field("ip_fragments", s.ipFragments); json.field("ip_datagrams_reassembled", s.ipDatagramsReassembled)
        json.field("ip_datagrams_cut_by_capture", s.ipDatagramsCutByCapture)
        json.field("udp_datagrams_captured_twice", s.udpDatagramsCapturedTwice)
        json.field("ip_fragments_captured_twice", s.ipFragmentsCapturedTwice)
        json.field("bad_checksums", s.badChecksums); json.field("checksum_offloaded_sides", s.checksumOffloadedSides)
        json.field("operations", s.operations); json.field("anomalies", s.anomalies)
        json.field("anomalies_not_logged", s.anomaliesNotLogged); json.field("alerts", s.alerts)
        json.key("pdus"); json.beginObject()
        for p in AppProtocol.allCases { json.key(p.name); json.uint(s.pdus[Int(p.rawValue)]) }
        json.endObject()
        json.endObject()
        json.key("policy"); json.beginObject()
        json.field("reloads", policyReloads); json.field("reload_failures", policyReloadFailures)
        json.endObject()
        json.field("capture_loss_alerts", lossAlerts)
        json.key("outputs"); json.beginArray()
        for o in outputs { o.writeJSON(to: &json) }
        json.endArray()
        json.endObject()
        json.endObject()
    }

    /// The metrics in Prometheus text exposition format (node_exporter textfile-collector conventions:
    /// `zonewatch_` prefix, `_total` counters, base units, one HELP/TYPE pair per family).
    public func prometheusText() -> String {
        var out = ""
        func family(_ name: String, _ type: String, _ help: String, _ samples: [(labels: String, value: String)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for s in samples { out += name + (s.labels.isEmpty ? "" : "{\(s.labels)}") + " " + s.value + "\n" }
        }
        func n(_ v: UInt64) -> String { String(v) }
        func label(_ k: String, _ v: String) -> String { "\(k)=\"\(Self.escapeLabel(v))\"" }
        let s = engine
        family("zonewatch_packets_total", "counter", "Packets analysed by the engines.", [("", n(s.packets))])
        family("zonewatch_bytes_total", "counter", "Captured bytes analysed by the engines.", [("", n(s.bytes))])
        family("zonewatch_capture_received_total", "counter", "Packets that passed the capture filter (libpcap ps_recv).",
               interfaces.map { (label("interface", $0.name), n($0.received)) })
        family("zonewatch_kernel_drops_total", "counter", "Packets dropped by the kernel because the capture buffer was full (libpcap ps_drop).",
               interfaces.map { (label("interface", $0.name), n($0.kernelDrops)) })
        family("zonewatch_interface_drops_total", "counter", "Packets dropped by the interface or driver (libpcap ps_ifdrop).",
               interfaces.map { (label("interface", $0.name), n($0.interfaceDrops)) })
        family("zonewatch_queue_drops_total", "counter", "Packets dropped because a worker's queue was full.", [("", n(queueDrops))])
        family("zonewatch_lost_packets_total", "counter", "Packets lost before analysis (kernel, interface and queue drops).", [("", n(lost))])
        family("zonewatch_truncated_packets_total", "counter", "Packets cut by the snap length.", [("", n(s.truncatedPackets))])
        family("zonewatch_decode_failures_total", "counter", "Packets that could not be decoded.", [("", n(s.decodeFailureTotal))])
        family("zonewatch_flows_total", "counter", "Flows created.", [("", n(s.flowsCreated))])
        family("zonewatch_flows_ended_total", "counter", "Flows ended, by reason.",
               FlowEndNames.all.enumerated().map { (label("reason", $0.element), n($0.offset < s.flowsEnded.count ? s.flowsEnded[$0.offset] : 0)) })
        family("zonewatch_live_flows", "gauge", "Flows in the flow tables.", [("", String(liveFlows))])
        family("zonewatch_tcp_gaps_total", "counter", "Holes in TCP streams handed to dissectors.", [("", n(s.streamGaps))])
        family("zonewatch_tcp_gap_bytes_total", "counter", "Bytes missing in TCP stream holes.", [("", n(s.streamGapBytes))])
        family("zonewatch_reassembly_overflows_total", "counter", "Times a dissector's reassembly buffer overflowed its bound.", [("", n(s.carryOverflows))])
        family("zonewatch_messages_cut_by_capture_total", "counter", "Messages left unfinished by flows the capture ended (end of input, eviction, clock step).", [("", n(s.messagesCutByCapture))])
        family("zonewatch_ip_fragments_total", "counter", "IP fragments taken into reassembly.", [("", n(s.ipFragments))])
        family("zonewatch_ip_datagrams_reassembled_total", "counter", "IP datagrams reassembled from fragments.", [("", n(s.ipDatagramsReassembled))])
        family("zonewatch_udp_datagrams_captured_twice_total", "counter",
               "UDP datagrams the capture held twice (mirrored twice): counted, the copy not dissected.", [("", n(s.udpDatagramsCapturedTwice))])
        family("zonewatch_ip_fragments_captured_twice_total", "counter",
               "IP fragments of a datagram completed just before (mirrored twice): counted, dropped.", [("", n(s.ipFragmentsCapturedTwice))])
        family("zonewatch_bad_checksums_total", "counter",
               "Packets of dissected flows with a wrong IP, TCP or UDP checksum: dropped, as their receivers drop them.", [("", n(s.badChecksums))])
        family("zonewatch_checksum_offloaded_sides_total", "counter",
               "Flow sides whose first packet had a wrong checksum: taken as offloaded, not verified.", [("", n(s.checksumOffloadedSides))])
        family("zonewatch_pdus_total", "counter", "Application PDUs dissected, by protocol.",
               AppProtocol.allCases.map { (label("protocol", $0.name.description), n(s.pdus[Int($0.rawValue)])) })
        family("zonewatch_operations_total", "counter", "Classified ICS operations.", [("", n(s.operations))])
        family("zonewatch_anomalies_total", "counter", "Protocol and transport anomalies.", [("", n(s.anomalies))])
        family("zonewatch_alerts_total", "counter", "Alerts raised.", [("", n(s.alerts))])
        family("zonewatch_capture_loss_alerts_total", "counter", "Alerts raised because capture loss crossed the threshold.", [("", n(lossAlerts))])
        family("zonewatch_policy_reloads_total", "counter", "SIGHUP policy reloads, by result.",
               [(label("result", "ok"), n(policyReloads)), (label("result", "rejected"), n(policyReloadFailures))])
        family("zonewatch_output_sent_total", "counter", "Records delivered, by output.", outputs.map { (label("output", $0.url), n($0.sent)) })
        family("zonewatch_output_dropped_total", "counter", "Records an output dropped (queue full, spool full, errors).",
               outputs.map { (label("output", $0.url), n($0.dropped)) })
        family("zonewatch_output_spooled_total", "counter", "Records written to an output's disk spool.", outputs.map { (label("output", $0.url), n($0.spooled)) })
        family("zonewatch_output_pending", "gauge", "Records waiting in an output's queue or spool.",
               outputs.map { (label("output", $0.url), n($0.pending &+ $0.inSpool)) })
        family("zonewatch_output_connected", "gauge", "Whether an output's connection is up (1) or not (0).",
               outputs.map { (label("output", $0.url), $0.connected ? "1" : "0") })
        family("zonewatch_workers", "gauge", "Worker engines.", [("", String(workers))])
        family("zonewatch_uptime_seconds", "gauge", "Seconds since start-up.", [("", String(uptimeSeconds))])
        family("zonewatch_last_stats_timestamp_seconds", "gauge", "Wall-clock time of this snapshot.",
               [("", String(time.seconds) + "." + String(1_000_000 + Int(time.microseconds)).dropFirst())])
        return out
    }

    /// Escapes a label value (backslash, double quote, newline), as the text format requires.
    public static func escapeLabel(_ v: String) -> String {
        var o = ""
        for c in v {
            switch c {
            case "\\": o += "\\\\"
            case "\"": o += "\\\""
            case "\n": o += "\\n"
            default: o.append(c)
            }
        }
        return o
    }

    /// Summary lines for the end of a live run (capture side; the engine's lines come from the summary).
    public var captureSummaryLines: [String] {
        var lines: [String] = []
        for i in interfaces {
            lines.append("capture \(i.name): received \(i.received)  dropped by kernel: \(i.kernelDrops)  dropped by interface: \(i.interfaceDrops)")
        }
        lines.append("capture: read \(packetsRead)  lost \(lost) (kernel \(kernelDrops), interface \(interfaceDrops), worker queues \(queueDrops))  capture-loss alerts: \(lossAlerts)")
        if policyReloads + policyReloadFailures > 0 { lines.append("policy reloads: \(policyReloads)  rejected: \(policyReloadFailures)") }
        return lines
    }
}

/// Flow end reason names in `FlowEndReason` order (as in flow records).
enum FlowEndNames {
    static let all = FlowEndReason.allCases.map { $0.name.description }
}

/// Decides when capture loss over an interval is worth an alert: when the share of packets lost (kernel,
/// interface and worker-queue drops over packets offered) crosses `threshold` upwards. A lasting loss
/// raises one alert when it starts and another after it has fallen below the threshold and risen again,
/// so a saturated link cannot flood the SIEM; every interval's figures are in the stats record anyway.
public struct LossMonitor: Sendable {
    /// The loss ratio that raises an alert (0 disables).
    public var threshold: Double
    private var lastOffered: UInt64 = 0
    private var lastLost: UInt64 = 0
    private var above = false

    /// Creates a monitor.
    public init(threshold: Double) { self.threshold = threshold }

    /// One interval's result.
    public struct Interval: Equatable, Sendable {
        /// Packets offered (read + lost) in the interval.
        public var offered: UInt64
        /// Packets lost in the interval.
        public var lost: UInt64
        /// lost / offered.
        public var ratio: Double
        /// Whether this interval crossed the threshold upwards (raise an alert).
        public var alert: Bool
    }

    /// Takes the cumulative counters at the end of an interval.
    public mutating func update(read: UInt64, lost: UInt64) -> Interval {
        let offeredTotal = read &+ lost
        let offered = offeredTotal &- lastOffered, l = lost &- lastLost
        lastOffered = offeredTotal; lastLost = lost
        let ratio = offered == 0 ? 0 : Double(l) / Double(offered)
        let isAbove = threshold > 0 && l > 0 && ratio >= threshold
        defer { above = isAbove }
        return Interval(offered: offered, lost: l, ratio: ratio, alert: isAbove && !above)
    }

    /// The capture-loss alert (`rule.category: capture`) for an interval.
    public static func alert(_ i: Interval, snapshot: StatsSnapshot, threshold: Double, frame: UInt64) -> Alert {
        var a = Alert(time: snapshot.time, frame: frame, severity: 5, action: "capture-loss", ruleID: "ZW-CAPTURE-001",
                      ruleName: "Capture loss above threshold", category: .capture,
                      message: "")
        let names = snapshot.interfaces.map(\.name).joined(separator: ",")
        a.message = "capture lost \(i.lost) of \(i.offered) packets (\(percent(i.ratio))) in the last \(Int(snapshot.intervalSeconds.rounded())) s on \(names.isEmpty ? "the capture" : names)"
            + " (threshold \(percent(threshold)); totals: kernel drops \(snapshot.kernelDrops), interface drops \(snapshot.interfaceDrops), worker queue drops \(snapshot.queueDrops)); alerts for this period may be missing"
        a.iec62443 = ["SR 6.2"]
        return a
    }

    static func percent(_ r: Double) -> String {
        let v = (r * 10000).rounded() / 100
        return "\(v)%"
    }
}

/// Writes a file atomically: a temporary file in the same folder, fsync, then rename over the target, so a
/// reader (node_exporter's textfile collector) never sees half a file.
public func writeFileAtomically(_ path: String, _ text: String) -> Bool {
    let tmp = path + ".tmp.\(getpid())"
    let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else { return false }
    var t = text
    let ok = t.withUTF8 { buf -> Bool in
        var off = 0
        while off < buf.count {
            let n = write(fd, buf.baseAddress! + off, buf.count - off)
            if n < 0 { if errno == EINTR { continue }; return false }
            off += n
        }
        return true
    }
    fsync(fd)
    close(fd)
    guard ok, rename(tmp, path) == 0 else { unlink(tmp); return false }
    return true
}
