import Glibc
import Wire
import Records
import Capture
import Engine
import Policy
import Appliance

/// `zonewatch live -i IFACE`: the SPAN-port appliance. Captures until SIGINT/SIGTERM, then ends every flow,
/// flushes records and outputs and prints the summary. See README, "Appliance mode".
enum LiveCommand {
    static let help = """
    usage: zonewatch live -i IFACE [options]
           zonewatch live --config /etc/zonewatch/zonewatch.yaml [options]

    Captures from network interfaces (SPAN/TAP ports) until SIGINT or SIGTERM, then ends every flow, writes
    what is left, flushes the SIEM outputs and prints the summary. Every setting can come from a YAML file
    (--config); the command line wins over the file.

    capture:
      -i, --interface IFACE   interface to capture from (repeatable; required here or in the config)
      --filter BPF            capture filter
      --snaplen N             bytes kept per packet; default 65535
      --buffer-size BYTES     kernel ring per interface (64MiB, 512KiB, ... allowed); default 64MiB
      --promisc, --no-promisc promiscuous mode; default on
    privileges:
      --user USER             after opening the capture, become USER (and its group) and drop every
                              capability; required when started as root unless --allow-root
      --group GROUP           group to become; default USER's primary group
      --allow-root            keep running as root (capabilities are still dropped)
    loss and health:
      --stats-interval S      write a stats record (stats.jsonl in --out, SIEM outputs that take
                              `stats`) and the metrics file every S seconds; 0: only at SIGUSR1 and
                              shutdown; default 60
      --metrics-file FILE     Prometheus text-format metrics (node_exporter textfile collector),
                              replaced atomically at every stats interval
      --drop-alert-threshold F  raise a `capture` alert when the packets lost in an interval exceed
                              this share of those offered (0.001 or 0.1%); 0 disables; default 0.001
    threads:
      --workers N             analyse on N threads (flows spread by a symmetric hash); default 1
      --worker-queue BYTES    packet ring per worker with --workers > 1; full rings drop (counted);
                              default 16MiB
    config:
      --config FILE           YAML file with any of these settings (see README, "Appliance mode")
    and every replay option: --out DIR, --flows -, --alerts -, --policy FILE, --output URL, --max-flows,
    --tcp-timeout, --udp-timeout, --checksums, --ignore-vlans, --quiet

    signals: SIGHUP reloads the policy (a broken one is rejected, its errors logged, the old one kept);
    SIGUSR1 writes stats now; SIGTERM/SIGINT stop, flush and exit 0.
    """

    /// Settings of the live capture beyond the replay options.
    struct Settings {
        var interfaces: [String] = []
        var capture = LiveCaptureOptions()
        var user: String?
        var group: String?
        var allowRoot = false
        var statsInterval = 60
        var metricsFile: String?
        var dropAlertThreshold = 0.001
        var workerQueue = 16 << 20
    }

    static func run(_ args: ArraySlice<String>) throws(UsageError) -> Int32 {
        var raw = Array(args)
        if raw.contains("-h") || raw.contains("--help") { print(help); return 0 }
        let config = try loadConfig(&raw)
        var a = CommandLineArguments((config.runArguments(commandLine: raw) + raw)[...])
        let settings = try parseSettings(&a, config: config)
        var options = try RunOptions(parsing: &a, pduRecords: false)
        let rest = try a.finish()
        guard rest.isEmpty else { throw UsageError(message: "live takes no file arguments (\(rest[0])); see --help") }
        options.statsRecords = true

        // 1. Open every capture while privileged.
        var sources: [PacketSource] = []
        for name in settings.interfaces {
            do { sources.append(try PacketSource.openLive(interface: name, options: settings.capture)) } catch {
                printError("zonewatch: \(error.message)")
                return error.kind == .filter ? 2 : 1
            }
        }
        // 2. Become the configured user, drop every capability, before anything else is opened or read.
        let outcome: Privileges.Outcome
        do {
            let target = try settings.user.map { u throws(Privileges.Failure) in try Privileges.resolve(user: u, group: settings.group) }
            outcome = try Privileges.drop(to: target, allowRoot: settings.allowRoot)
        } catch {
            printError("zonewatch: privilege drop failed: \(error.description)")
            return 1
        }
        // 3. Policy, outputs and log folder, opened as the unprivileged user.
        let session = try RunSession(options: options)
        let pipeline = session.makePipeline(blocking: false, ringBytes: settings.workerQueue)
        SignalFlags.install()
        let loop = LiveLoop(sources: sources, names: settings.interfaces, session: session, pipeline: pipeline, settings: settings)
        let names = zip(settings.interfaces, sources).map { "\($0.0) (\($0.1.linkType))" }.joined(separator: ", ")
        // Printed once everything is set up (threads running): scripts and tests wait for this line.
        let ready = "zonewatch: capturing on \(names); running as uid \(outcome.uid) gid \(outcome.gid), no capabilities"
            + (options.workers > 1 ? "; \(options.workers) workers" : "")
        return loop.run(ready: ready)
    }

    /// Takes `--config FILE` out of the arguments and reads it (errors: every one printed, exit 2).
    static func loadConfig(_ raw: inout [String]) throws(UsageError) -> ApplianceConfig {
        var path: String?
        var i = 0
        while i < raw.count {
            if raw[i] == "--config" {
                guard i + 1 < raw.count else { throw UsageError(message: "--config needs a value") }
                path = raw[i + 1]; raw.removeSubrange(i...(i + 1)); continue
            }
            if raw[i].hasPrefix("--config=") { path = String(raw[i].dropFirst(9)); raw.remove(at: i); continue }
            i += 1
        }
        guard let path else { return ApplianceConfig() }
        switch ApplianceConfig.load(path: path) {
        case .success(let c): return c
        case .failure(let e):
            for err in e.errors { printError(err.description) }
            throw UsageError(message: "\(path): the configuration has errors")
        }
    }

    /// The live-only options: command line first, then the config file, then the defaults.
    static func parseSettings(_ a: inout CommandLineArguments, config: ApplianceConfig) throws(UsageError) -> Settings {
        var s = Settings()
        s.interfaces = try a.values("-i", "--interface")
        if s.interfaces.isEmpty { s.interfaces = config.interfaces ?? [] }
        guard !s.interfaces.isEmpty else { throw UsageError(message: "live needs -i IFACE (or interfaces: in --config); see --help") }
        s.capture.filter = try a.value("--filter") ?? config.filter
        if let n = try a.integer("--snaplen") ?? config.snaplen {
            guard (64...262_144).contains(n) else { throw UsageError(message: "--snaplen must be between 64 and 262144") }
            s.capture.snapLength = Int32(n)
        }
        if let v = try a.value("--buffer-size") {
            guard let n = ApplianceConfig.parseSize(v), n >= 1 << 16, n < 1 << 31 else {
                throw UsageError(message: "--buffer-size needs a size between 64KiB and 2GiB (e.g. 67108864 or 64MiB), not \"\(v)\"")
            }
            s.capture.bufferSize = Int32(n)
        } else if let n = config.bufferSize {
            s.capture.bufferSize = Int32(n)
        }
        let on = a.flag("--promisc"), off = a.flag("--no-promisc")
        if on && off { throw UsageError(message: "--promisc and --no-promisc contradict each other") }
        s.capture.promiscuous = on ? true : off ? false : (config.promiscuous ?? true)
        s.user = try a.value("--user") ?? config.user
        s.group = try a.value("--group") ?? config.group
        s.allowRoot = a.flag("--allow-root") || config.allowRoot == true
        if let n = try a.integer("--stats-interval") ?? config.statsInterval {
            guard n <= 86_400 else { throw UsageError(message: "--stats-interval must be at most 86400 seconds") }
            s.statsInterval = n
        }
        s.metricsFile = try a.value("--metrics-file") ?? config.metricsFile
        if let v = try a.value("--drop-alert-threshold") {
            guard let f = ApplianceConfig.parseFraction(v) else {
                throw UsageError(message: "--drop-alert-threshold needs a fraction between 0 and 1 (0.001) or a percentage (0.1%), not \"\(v)\"")
            }
            s.dropAlertThreshold = f
        } else if let f = config.dropAlertThreshold {
            s.dropAlertThreshold = f
        }
        if let v = try a.value("--worker-queue") {
            guard let n = ApplianceConfig.parseSize(v), n >= 1 << 20, n <= 1 << 30 else {
                throw UsageError(message: "--worker-queue needs a size between 1MiB and 1GiB, not \"\(v)\"")
            }
            s.workerQueue = n
        } else if let n = config.workerQueue {
            s.workerQueue = n
        }
        if s.group != nil && s.user == nil { throw UsageError(message: "--group needs --user (config: group: needs user:)") }
        return s
    }
}

/// The capture thread of `zonewatch live`: reads packets, runs them (directly, or through the worker
/// pipeline), and between packets handles signals, the once-a-second capture counters, stats records, the
/// metrics file, loss alerts and idle ticks. With no traffic it sleeps in `poll` for at most 100 ms.
final class LiveLoop {
    let sources: [PacketSource]
    let names: [String]
    let session: RunSession
    let pipeline: ParallelPipeline?
    /// Without workers: the packets held back so that each is processed with its prefetch hint (nil with
    /// `ZONEWATCH_NO_PREFETCH=1`, the bench's diagnostic). Workers read ahead in their own rings.
    let delayLine: PacketDelayLine?
    let settings: LiveCommand.Settings
    var counters: [InterfaceCounters]
    var monitor: LossMonitor
    let started = monotonicSeconds()
    var lastStats: Double
    var lastPoll: Double
    var lastPacketWall: Double
    var lastPacketTime = PacketTime.zero
    var packetsRead: UInt64 = 0
    var reloads: UInt64 = 0
    var reloadFailures: UInt64 = 0
    var lossAlerts: UInt64 = 0
    /// A policy file as a reload loaded it: the policy, or the errors that reject it.
    typealias LoadedPolicy = (path: String, policy: CompiledPolicy?, errors: [PolicyError])
    /// SIGHUP's load and compile of the policy file, on a thread of its own (nil without `--policy`): this thread keeps
    /// reading packets meanwhile and swaps the result in between two batches (`applyReload`).
    let policyLoad: CoalescedBackgroundJob<LoadedPolicy>?

    init(sources: [PacketSource], names: [String], session: RunSession, pipeline: ParallelPipeline?, settings: LiveCommand.Settings) {
        self.sources = sources; self.names = names; self.session = session; self.pipeline = pipeline; self.settings = settings
        delayLine = pipeline == nil && getenv("ZONEWATCH_NO_PREFETCH") == nil
            ? PacketDelayLine(engine: session.engine, snapshotLength: Int(settings.capture.snapLength)) : nil
        policyLoad = session.options.policyPath.map { path in
            CoalescedBackgroundJob(name: "zw-policy-load") {
                let (policy, errors) = checkPolicyFile(path: path)
                return (path, policy, errors)
            }
        }
        counters = names.map { InterfaceCounters(name: $0) }
        monitor = LossMonitor(threshold: settings.dropAlertThreshold)
        lastStats = started; lastPoll = started; lastPacketWall = started
    }

    /// Writes record lines (through the pipeline's lock when worker threads write too).
    func write(_ kind: RecordKind, _ bytes: [UInt8]) {
        if let p = pipeline { p.write(kind, bytes) } else { session.write(kind, bytes) }
    }

    func run(ready: String) -> Int32 {
        pipeline?.start()
        printError(ready)
        var status: Int32 = 0
        // Non-blocking reads and our own poll with a 100 ms timeout: with TPACKET_V3, libpcap's blocking read
        // waits for a filled or timed-out block, and a block only times out once it holds a packet, so on a
        // silent link it would never return and signals, stats and idle ticks would stall.
        for s in sources {
            do { try s.setNonBlocking(true) } catch { printError("zonewatch: \(error.message)"); return 1 }
        }
        var fds = sources.map { pollfd(fd: $0.fileDescriptor, events: Int16(POLLIN), revents: 0) }
        capture: while !SignalFlags.stop.load(ordering: .relaxed) {
            var sawPacket = false
            for (i, source) in sources.enumerated() {
                // Up to 4096 packets per interface per turn, so control work runs at least that often.
                var n = 0
                while n < 4096 {
                    let next: PacketSource.Next
                    do { next = try source.next() } catch {
                        printError("zonewatch: \(names[i]): \(error.message)")
                        status = 1
                        break capture
                    }
                    guard case .packet(let header, let bytes) = next else {
                        if case .end = next { break capture }
                        break
                    }
                    handle(bytes, linkType: source.linkType.rawValue, header: header)
                    n += 1
                    if SignalFlags.stop.load(ordering: .relaxed) { break }
                }
                if n > 0 { sawPacket = true }
            }
            // The batch is over: the packets held for their hints, and workers sleeping on a part-filled ring, get
            // processed now (latency ≤ one batch).
            delayLine?.drain()
            pipeline?.flush()
            control(idle: !sawPacket)
            if !sawPacket {
                for i in fds.indices { fds[i].revents = 0 }
                _ = poll(&fds, nfds_t(fds.count), 100)
            }
        }
        if status == 0 { drainKernelBuffers() }
        return shutdown(status)
    }

    /// On a stop: read what the kernel already captured (bounded to one second, since a busy link never runs
    /// dry), so that every packet the counters call received is either analysed or counted as lost.
    func drainKernelBuffers() {
        let until = monotonicSeconds() + 1
        while monotonicSeconds() < until {
            var any = false
            for source in sources {
                var n = 0
                while n < 4096, case .packet(let header, let bytes)? = try? source.next() {
                    handle(bytes, linkType: source.linkType.rawValue, header: header)
                    n += 1
                }
                if n > 0 { any = true }
            }
            delayLine?.drain()
            if !any { break }
        }
    }

    @inline(__always)
    func handle(_ bytes: ByteView, linkType: Int32, header: PacketHeader) {
        packetsRead &+= 1
        lastPacketTime = header.time
        if let p = pipeline {
            p.packet(bytes.raw, linkType: linkType, time: header.time, wireLength: header.wireLength)
        } else {
            let engine = session.engine
            if let line = delayLine {
                line.push(bytes, linkType: linkType, time: header.time, wireLength: header.wireLength)
            } else {
                engine.process(bytes, linkType: linkType, time: header.time, wireLength: header.wireLength)
            }
            if packetsRead & 4095 == 0 && engine.bufferedRecordBytes > 1 << 20 { engine.drainRecords(session.write) }
        }
    }

    /// Work between packets: signals, counters, stats, idle ticks.
    func control(idle: Bool) {
        let now = monotonicSeconds()
        if !idle { lastPacketWall = now }
        if SignalFlags.take(SignalFlags.reload) { reload() }
        if let loaded = policyLoad?.take() { applyReload(loaded) }
        if SignalFlags.take(SignalFlags.stats) { writeStats(reason: "signal") }
        if now - lastPoll >= 1 {
            lastPoll = now
            pollCaptureCounters()
            if pipeline == nil { session.engine.drainRecords(session.write) }
        }
        if settings.statsInterval > 0 && now - lastStats >= Double(settings.statsInterval) { writeStats(reason: "interval") }
        if idle && now - lastPacketWall >= 1 {
            // No traffic for a second: let time pass so idle flows end and alert windows close.
            let w = wallClock()
            let t = PacketTime(seconds: w.seconds, microseconds: w.microseconds)
            if t.seconds > lastPacketTime.seconds {
                lastPacketWall = now
                lastPacketTime = t
                if let p = pipeline { p.idle(time: t) } else {
                    session.engine.advance(frame: session.engine.statistics.packets, time: t)
                    session.engine.drainRecords(session.write)
                }
            }
        }
    }

    func pollCaptureCounters() {
        for (i, s) in sources.enumerated() {
            if let c = s.statistics() { counters[i].update(received: c.received, kernelDrops: c.droppedByKernel, interfaceDrops: c.droppedByInterface) }
        }
    }

    /// SIGHUP: load and compile the policy, off this thread (`policyLoad`); `applyReload` swaps it in once compiled.
    /// A SIGHUP while one is being compiled asks for one more load after it (the file may have changed again).
    func reload() {
        guard let policyLoad else {
            printError("zonewatch: SIGHUP: no --policy to reload")
            return
        }
        policyLoad.request()
    }

    /// A policy `reload` loaded from `path`: swapped in only if it has no errors (else the errors are logged and the
    /// policy in force is kept).
    func applyReload(_ loaded: LoadedPolicy) {
        let (path, policy, errors) = loaded
        guard errors.isEmpty, let policy else {
            for e in errors { printError("zonewatch: reload rejected: \(e.description)") }
            printError("zonewatch: SIGHUP: \(path) has \(errors.count) error\(errors.count == 1 ? "" : "s"); the policy in force is kept")
            reloadFailures &+= 1
            return
        }
        if let p = pipeline {
            // The detection thread swaps it in once it has merged every packet read before this request, and every
            // packet read after it is judged by it (`ParallelPipeline.replacePolicy`): the log line below is true
            // without waiting for the swap. (A wait here held the capture thread back while the kernel's buffer
            // filled: up to 2 s of a busy link.)
            p.replacePolicy(policy)
        } else {
            session.alerts?.detector.replacePolicy(policy)
        }
        reloads &+= 1
        printError("zonewatch: SIGHUP: policy reloaded from \(path) (\(policy.zones.count) zones, \(policy.conduits.count) conduits)")
    }

    func snapshot(reason: String) -> StatsSnapshot {
        pollCaptureCounters()
        var s = StatsSnapshot()
        s.reason = reason
        let w = wallClock()
        s.time = PacketTime(seconds: w.seconds, microseconds: w.microseconds)
        s.uptimeSeconds = monotonicSeconds() - started
        s.workers = session.options.workers
        s.interfaces = counters
        s.packetsRead = packetsRead
        s.queueDrops = pipeline?.queueDrops ?? 0
        s.engine = session.statistics(parallel: pipeline)
        s.engine.alerts &+= lossAlerts
        s.liveFlows = pipeline?.liveFlows ?? session.engine.liveFlows
        s.outputs = session.outputs?.statsSnapshot() ?? []
        s.policyReloads = reloads
        s.policyReloadFailures = reloadFailures
        s.lossAlerts = lossAlerts
        return s
    }

    /// A stats record (stats.jsonl and SIEM outputs that take `stats`), the metrics file, and the loss check.
    @discardableResult
    func writeStats(reason: String) -> StatsSnapshot {
        let now = monotonicSeconds()
        var s = snapshot(reason: reason)
        let interval = monitor.update(read: s.packetsRead, lost: s.lost)
        s.intervalSeconds = now - lastStats
        s.intervalOffered = interval.offered
        s.intervalLost = interval.lost
        lastStats = now
        if interval.alert {
            let alert = LossMonitor.alert(interval, snapshot: s, threshold: monitor.threshold, frame: packetsRead)
            var json = JSONWriter(capacity: 1024)
            alert.writeECS(to: &json)
            json.appendByte(UInt8(ascii: "\n"))
            write(.alert, json.bytes)
            session.outputs?.deliver(alert)
            lossAlerts &+= 1
            s.lossAlerts = lossAlerts
            s.engine.alerts &+= 1
            printError("zonewatch: \(alert.message)")
        }
        var json = JSONWriter(capacity: 4096)
        s.writeJSON(to: &json)
        json.appendByte(UInt8(ascii: "\n"))
        write(.stats, json.bytes)
        writeMetrics(s)
        return s
    }

    func writeMetrics(_ s: StatsSnapshot) {
        guard let path = settings.metricsFile else { return }
        if !writeFileAtomically(path, s.prometheusText()) {
            printError("zonewatch: \(path): cannot write the metrics file: \(String(cString: strerror(errno)))")
        }
    }

    /// SIGTERM/SIGINT or a capture error: end flows, write the last stats, flush outputs, summarise.
    func shutdown(_ status: Int32) -> Int32 {
        delayLine?.drain()
        session.endInput(parallel: pipeline)
        let last = writeStats(reason: "shutdown")
        let wall = monotonicSeconds() - started
        session.finish(wallSeconds: wall, quiet: session.options.quiet, parallel: pipeline,
                       extra: last.captureSummaryLines, extraAlerts: lossAlerts)
        // The outputs have now flushed: the metrics file gets their final counters.
        var final = last
        final.outputs = session.outputs?.statsSnapshot() ?? []
        writeMetrics(final)
        if session.records.failed { printError("zonewatch: writing records failed (disk full or closed pipe)"); return 1 }
        return status
    }
}
