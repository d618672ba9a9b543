import Glibc
import Engine
import Records
import Policy
import Detection
import Output
import Appliance

/// Options shared by replay, dissect and live.
struct RunOptions {
    var outDirectory: String?
    var stdoutKinds: Set<RecordKind> = []
    var policyPath: String?
    var outputURLs: [String] = []
    var configuration = EngineConfiguration()
    var transactionRecords = false
    var flowRecords = true
    var quiet = false
    /// `--workers N`: engines on N threads fed by one reader (Appliance.ParallelPipeline); 1 = no threads.
    var workers = 1
    /// Write `stats.jsonl` in the out folder (live).
    var statsRecords = false

    init(parsing a: inout CommandLineArguments, pduRecords: Bool) throws(UsageError) {
        outDirectory = try a.value("--out")
        if let f = try a.value("--flows") {
            guard f == "-" else { throw UsageError(message: "--flows takes - (standard output); use --out DIR for files") }
            stdoutKinds.insert(.flow)
        }
        if let al = try a.value("--alerts") {
            guard al == "-" else { throw UsageError(message: "--alerts takes - (standard output); use --out DIR or --output URL") }
            stdoutKinds.insert(.alert)
        }
        policyPath = try a.value("--policy")
        outputURLs = try a.values("--output")
        if let n = try a.integer("--max-flows") {
            guard n >= 1 else { throw UsageError(message: "--max-flows must be at least 1") }
            configuration.flowLimits.maximumFlows = n
        }
        if let n = try a.integer("--tcp-timeout") { configuration.flowLimits.tcpIdleTimeout = Int64(n) }
        if let n = try a.integer("--udp-timeout") { configuration.flowLimits.udpIdleTimeout = Int64(n) }
        configuration.ignoresVLANs = a.flag("--ignore-vlans")
        if let v = try a.value("--checksums") {
            guard let mode = ChecksumValidation(rawValue: v) else {
                throw UsageError(message: "--checksums takes auto, on or off, not \(v)")
            }
            configuration.checksums = mode
        }
        quiet = a.flag("--quiet", "-q")
        if let n = try a.integer("--workers") {
            guard (1...64).contains(n) else { throw UsageError(message: "--workers must be between 1 and 64") }
            // dissect prints PDUs in packet order, one engine's job.
            guard !pduRecords else { throw UsageError(message: "--workers is an option of replay and live, not dissect") }
            workers = n
        }
        configuration.pduRecords = pduRecords
    }
}

/// Loads and compiles a policy file, printing every error; nil after errors.
func loadPolicyOrReport(_ path: String) -> CompiledPolicy? {
    let (policy, errors) = checkPolicyFile(path: path)
    for e in errors { printError(e.description) }
    return errors.isEmpty ? policy : nil
}

/// One run's engine, record destinations, detection and SIEM outputs; owns the end-of-run summary.
final class RunSession {
    let engine: Engine
    let records: RecordFiles
    let options: RunOptions
    let alerts: AlertPipeline?
    let outputs: OutputSet?
    /// With `--workers` > 1: where the detection thread's alert lines collect (the engines' sinks are the workers').
    let detectionSink: EventSink?
    /// With `--workers` > 1: whether anomaly records are wanted (the pipeline writes them in packet order).
    private var parallelAnomalyRecords = false
    private var inputEnded = false

    /// `offline`: the input is capture files, so the SIEM outputs wait for room rather than drop (the same file must
    /// give the same records, however slow an output is); a live capture never waits for them.
    init(options: RunOptions, detection: Bool = true, offline: Bool = false) throws(UsageError) {
        self.options = options
        var policy: CompiledPolicy?
        if let path = options.policyPath {
            guard let p = loadPolicyOrReport(path) else { throw UsageError(message: "\(path): the policy has errors (nothing was replayed)") }
            policy = p
        }
        var specs: [OutputSpec] = []
        for url in options.outputURLs {
            do { specs.append(try OutputSpec.parse(url)) } catch { throw UsageError(message: "--output \(url): \(error)") }
        }
        do { outputs = specs.isEmpty ? nil : try OutputSet(specs: specs, waitingWhenFull: offline) } catch {
            throw UsageError(message: "\(error)")
        }
        var configuration = options.configuration
        configuration.transactionRecords = options.transactionRecords || options.outDirectory != nil
        configuration.flowRecords = options.flowRecords && (options.outDirectory != nil || options.stdoutKinds.contains(.flow))
        configuration.anomalyRecords = options.outDirectory != nil || options.stdoutKinds.contains(.anomaly)
        if let o = outputs {
            // Records a SIEM output asked for are built even when no file or stdout wants them.
            if o.wants(.flow) { configuration.flowRecords = true }
            if o.wants(.anomaly) { configuration.anomalyRecords = true }
            if o.wants(.modbus) || o.wants(.dnp3) || o.wants(.s7comm) { configuration.transactionRecords = true }
        }
        if options.workers > 1 {
            // The bounds are totals: each worker engine gets its share.
            let n = options.workers
            configuration.flowLimits.maximumFlows = max(1, (configuration.flowLimits.maximumFlows + n - 1) / n)
            // Anomaly records come from the pipeline's merged, packet-ordered events under one per-kind bound.
            parallelAnomalyRecords = configuration.anomalyRecords
            configuration.anomalyRecords = false
        }
        engine = Engine(configuration: configuration)
        records = try RecordFiles(directory: options.outDirectory,
                                  kinds: [.flow, .modbus, .dnp3, .s7comm, .alert, .anomaly] + (options.statsRecords ? [.stats] : []),
                                  stdoutKinds: options.stdoutKinds)
        let alertSink = options.workers > 1 ? EventSink() : engine.sink
        detectionSink = options.workers > 1 ? alertSink : nil
        if detection {
            let writesLines = options.outDirectory != nil || options.stdoutKinds.contains(.alert)
            let detector = Detector(policy: policy)
            // Alerts only counted (a summary-only replay) need no Community IDs (a SHA-1 each, computed when needed).
            detector.alertCommunityIDs = writesLines || outputs != nil
            detector.defersCommunityIDs = !writesLines   // the outputs' threads hash them; lines are written here
            let pipeline = AlertPipeline(detector: detector, sink: alertSink, outputs: outputs, writesLines: writesLines)
            if options.workers <= 1 { engine.observer = pipeline }
            alerts = pipeline
        } else {
            alerts = nil
        }
    }

    /// The multi-worker pipeline for `--workers` > 1 (worker 0 uses `engine`); nil for one worker.
    func makePipeline(blocking: Bool, ringBytes: Int = 8 << 20) -> ParallelPipeline? {
        guard options.workers > 1, let sink = detectionSink else { return nil }
        var settings = ParallelPipeline.Settings(workers: options.workers)
        settings.ignoresVLANs = options.configuration.ignoresVLANs
        settings.blocking = blocking
        settings.ringBytes = ringBytes
        settings.anomalyRecords = parallelAnomalyRecords
        settings.anomalyLogLimitPerKind = engine.configuration.anomalyLogLimitPerKind
        let configuration = engine.configuration
        let first = engine
        return ParallelPipeline(settings: settings, makeEngine: { i in i == 0 ? first : Engine(configuration: configuration) },
                                observer: alerts, alertSink: sink, detector: alerts?.detector,
                                alertsRaised: alerts.map { a in { a.alertCount } }, write: { [self] k, b in write(k, b) })
    }

    /// Ends every flow and writes the records that are left (outputs stay open). Runs once.
    func endInput(parallel: ParallelPipeline? = nil) {
        guard !inputEnded else { return }
        inputEnded = true
        if let p = parallel { p.finish() } else { engine.finish(); engine.drainRecords(write) }
    }

    /// Counters so far (summed over workers), alerts included.
    func statistics(parallel: ParallelPipeline? = nil) -> EngineStatistics {
        if let p = parallel { return p.statistics() }
        var s = engine.statistics
        s.alerts = alerts?.alertCount ?? 0
        return s
    }

    /// Writes a batch of record lines to files/stdout and to the SIEM outputs that want that kind.
    func write(_ kind: RecordKind, _ bytes: [UInt8]) {
        records.write(kind, bytes)
        guard let o = outputs, kind != .alert, o.wants(kind) else { return }
        var start = 0
        for i in bytes.indices where bytes[i] == UInt8(ascii: "\n") {
            o.deliver(record: kind, line: bytes[start..<i]); start = i + 1
        }
    }

    /// Ends every flow, writes what is left, prints the summary (`before` lines go after the engine's).
    func finish(wallSeconds: Double, quiet: Bool, parallel: ParallelPipeline? = nil, extra before: [String] = [], extraAlerts: UInt64 = 0) {
        endInput(parallel: parallel)
        records.close()
        var extra: [String] = before
        if let o = outputs {
            // Bounded: what cannot be delivered in time stays in the spool (or is counted as dropped).
            for r in o.shutdown(deadline: 10) {
                extra.append("output \(r.url): sent \(r.sent)  spooled \(r.spooled)  in spool \(r.inSpool)  dropped \(r.dropped)\(r.lastError.map { "  last error: \($0)" } ?? "")")
            }
        }
        var s = statistics(parallel: parallel)
        s.alerts &+= extraAlerts
        if !quiet { printSummary(s, wallSeconds: wallSeconds, extra: extra) }
    }
}
