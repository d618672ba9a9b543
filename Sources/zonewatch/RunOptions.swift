import Glibc
import Engine
import Records

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
        quiet = a.flag("--quiet", "-q")
        configuration.pduRecords = pduRecords
    }
}

/// One run's engine, record destinations and (optionally) policy; owns the end-of-run summary.
final class RunSession {
    let engine: Engine
    let records: RecordFiles
    let options: RunOptions

    init(options: RunOptions) throws(UsageError) {
        self.options = options
        var configuration = options.configuration
        configuration.transactionRecords = options.transactionRecords || options.outDirectory != nil
        configuration.flowRecords = options.flowRecords && (options.outDirectory != nil || options.stdoutKinds.contains(.flow))
        configuration.anomalyRecords = options.outDirectory != nil || options.stdoutKinds.contains(.anomaly)
        engine = Engine(configuration: configuration)
        records = try RecordFiles(directory: options.outDirectory,
                                  kinds: [.flow, .modbus, .dnp3, .s7comm, .alert, .anomaly],
                                  stdoutKinds: options.stdoutKinds)
    }

    /// Ends every flow, writes what is left, prints the summary.
    func finish(wallSeconds: Double, quiet: Bool) {
        engine.finish()
        engine.drainRecords(records.write)
        records.close()
        if !quiet { printSummary(engine.statistics, wallSeconds: wallSeconds) }
    }
}
