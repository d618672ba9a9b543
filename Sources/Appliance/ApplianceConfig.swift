import Glibc
import Policy

/// The appliance's YAML configuration file (`zonewatch live --config FILE`). Every key has a command-line
/// option of the same meaning, and the command line wins. Unknown keys and wrong types are errors with the
/// file, line and column, so a typo never silently falls back to a default.
///
/// ```yaml
/// interfaces: [eth1]              # -i/--interface (several allowed)
/// filter: "not port 22"           # --filter
/// snaplen: 65535                  # --snaplen
/// buffer_size: 64MiB              # --buffer-size (kernel ring per interface; B, KiB, MiB, GiB)
/// promiscuous: true               # --promisc / --no-promisc
/// policy: /etc/zonewatch/policy.yaml           # --policy
/// outputs: ["syslog+tcp://siem:601?format=cef"] # --output (the command line's list replaces this one)
/// out: /var/log/zonewatch         # --out (log directory: flows, protocol logs, alerts, stats)
/// flows: { max: 262144, tcp_timeout: 600, udp_timeout: 120, ignore_vlans: false }  # --max-flows, --tcp-timeout,
///                                                   # --udp-timeout, --ignore-vlans
/// user: zonewatch                 # --user (drop to this user after opening the capture)
/// group: zonewatch                # --group (default: the user's primary group)
/// allow_root: false               # --allow-root
/// stats_interval: 60              # --stats-interval (seconds; 0 = only at SIGUSR1 and shutdown)
/// metrics_file: /var/lib/node_exporter/textfile/zonewatch.prom  # --metrics-file
/// drop_alert_threshold: 0.001     # --drop-alert-threshold (fraction lost per interval; "0.1%" allowed)
/// workers: 2                      # --workers
/// checksums: on                   # --checksums (auto, on, off)
/// worker_queue: 16MiB             # --worker-queue (per-worker packet ring with --workers > 1)
/// ```
public struct ApplianceConfig: Equatable, Sendable {
    public var interfaces: [String]?
    public var filter: String?
    public var snaplen: Int?
    public var bufferSize: Int?
    public var promiscuous: Bool?
    public var policy: String?
    public var outputs: [String]?
    public var out: String?
    public var maxFlows: Int?
    public var tcpTimeout: Int?
    public var udpTimeout: Int?
    public var user: String?
    public var group: String?
    public var allowRoot: Bool?
    public var statsInterval: Int?
    public var metricsFile: String?
    public var dropAlertThreshold: Double?
    public var workers: Int?
    public var workerQueue: Int?
    public var checksums: String?
    public var ignoreVLANs: Bool?

    /// An empty configuration (everything from the command line or defaults).
    public init() {}

    /// Every top-level key, for the error message on an unknown one.
    public static let keys = ["interfaces", "interface", "filter", "snaplen", "buffer_size", "promiscuous", "policy", "outputs",
                              "out", "log_directory", "flows", "user", "group", "allow_root", "stats_interval", "metrics_file",
                              "drop_alert_threshold", "workers", "worker_queue", "checksums"]

    /// Reads and checks a configuration file; every error found is returned (file:line:column: message).
    public static func load(path: String) -> Result<ApplianceConfig, ConfigErrors> {
        guard let text = readWholeFile(path) else {
            return .failure(ConfigErrors([PolicyError(file: path, line: 0, column: 0, message: "cannot read: \(String(cString: strerror(errno)))")]))
        }
        return parse(text, file: path)
    }

    /// Parses configuration text.
    public static func parse(_ text: String, file: String) -> Result<ApplianceConfig, ConfigErrors> {
        let root: YAMLNode
        switch YAMLReader.parse(text, file: file) {
        case .success(let n): root = n
        case .failure(let e): return .failure(ConfigErrors([e]))
        }
        var reader = Reader(file: file)
        let config = reader.config(root)
        return reader.errors.isEmpty ? .success(config) : .failure(ConfigErrors(reader.errors))
    }

    /// The options that map onto `zonewatch replay`'s shared ones (`RunOptions`), as command-line arguments to
    /// place before the user's: single-valued options then lose to a later command-line occurrence, and the
    /// `outputs` list is left out when the command line names its own `--output`.
    public func runArguments(commandLine: [String]) -> [String] {
        var a: [String] = []
        if let v = policy { a += ["--policy", v] }
        if let v = out { a += ["--out", v] }
        if let v = outputs, !commandLine.contains(where: { $0 == "--output" || $0.hasPrefix("--output=") }) {
            for o in v { a += ["--output", o] }
        }
        if let v = maxFlows { a += ["--max-flows", String(v)] }
        if let v = tcpTimeout { a += ["--tcp-timeout", String(v)] }
        if let v = udpTimeout { a += ["--udp-timeout", String(v)] }
        if let v = workers { a += ["--workers", String(v)] }
        if let v = checksums { a += ["--checksums", v] }
        if ignoreVLANs == true { a.append("--ignore-vlans") }
        return a
    }

    struct Reader {
        let file: String
        var errors: [PolicyError] = []

        mutating func error(_ node: YAMLNode, _ message: String) {
            errors.append(PolicyError(file: file, line: node.mark.line, column: node.mark.column, message: message))
        }

        mutating func config(_ root: YAMLNode) -> ApplianceConfig {
            var c = ApplianceConfig()
            if root.isNull { return c }
            guard case .mapping(let pairs) = root.content else { error(root, "the configuration must be a mapping of settings, not \(root.kindName)"); return c }
            var seen: Set<String> = []
            for (k, v) in pairs {
                guard let key = k.scalar else { error(k, "a setting name must be a scalar"); continue }
                if !seen.insert(key).inserted { error(k, "\"\(key)\" is set twice"); continue }
                switch key {
                case "interfaces": c.interfaces = strings(v, key)
                case "interface": c.interfaces = string(v, key).map { [$0] }
                case "filter": c.filter = string(v, key)
                case "snaplen": c.snaplen = integer(v, key, range: 64...262_144)
                case "buffer_size": c.bufferSize = size(v, key, range: 1 << 16 ... 1 << 31 - 1)
                case "promiscuous": c.promiscuous = bool(v, key)
                case "policy": c.policy = string(v, key)
                case "outputs": c.outputs = strings(v, key)
                case "out", "log_directory": c.out = string(v, key)
                case "flows": flows(v, into: &c)
                case "user": c.user = string(v, key)
                case "group": c.group = string(v, key)
                case "allow_root": c.allowRoot = bool(v, key)
                case "stats_interval": c.statsInterval = integer(v, key, range: 0...86_400)
                case "metrics_file": c.metricsFile = string(v, key)
                case "drop_alert_threshold": c.dropAlertThreshold = fraction(v, key)
                case "workers": c.workers = integer(v, key, range: 1...64)
                case "worker_queue": c.workerQueue = size(v, key, range: 1 << 20 ... 1 << 30)
                case "checksums":
                    if let s = string(v, key) {
                        if ["auto", "on", "off"].contains(s) { c.checksums = s } else { error(v, "checksums must be auto, on or off, not \(s)") }
                    }
                default: error(k, "unknown setting \"\(key)\" (known: \(ApplianceConfig.keys.joined(separator: ", ")))")
                }
            }
            return c
        }

        mutating func flows(_ v: YAMLNode, into c: inout ApplianceConfig) {
            guard case .mapping(let pairs) = v.content else {
                error(v, "flows must be a mapping (max, tcp_timeout, udp_timeout, ignore_vlans), not \(v.kindName)"); return
            }
            for (k, value) in pairs {
                switch k.scalar ?? "" {
                case "max": c.maxFlows = integer(value, "flows.max", range: 1...(1 << 26))
                case "tcp_timeout": c.tcpTimeout = integer(value, "flows.tcp_timeout", range: 1...(1 << 31 - 1))
                case "udp_timeout": c.udpTimeout = integer(value, "flows.udp_timeout", range: 1...(1 << 31 - 1))
                case "ignore_vlans": c.ignoreVLANs = bool(value, "flows.ignore_vlans")
                default: error(k, "unknown flows setting \"\(k.scalar ?? "")\" (known: max, tcp_timeout, udp_timeout, ignore_vlans)")
                }
            }
        }

        mutating func string(_ v: YAMLNode, _ key: String) -> String? {
            guard let s = v.scalar, !v.isNull else { error(v, "\(key) must be a text value, not \(v.kindName)"); return nil }
            guard !s.isEmpty else { error(v, "\(key) must not be empty"); return nil }
            return s
        }

        mutating func strings(_ v: YAMLNode, _ key: String) -> [String]? {
            if case .scalar = v.content, !v.isNull { return string(v, key).map { [$0] } }
            guard case .sequence(let items) = v.content else { error(v, "\(key) must be a list, not \(v.kindName)"); return nil }
            var out: [String] = []
            for item in items { if let s = string(item, key) { out.append(s) } }
            return out
        }

        mutating func integer(_ v: YAMLNode, _ key: String, range: ClosedRange<Int>) -> Int? {
            guard let s = v.scalar, let n = Int(s.replacingUnderscores) else { error(v, "\(key) must be a whole number, not \(describe(v))"); return nil }
            guard range.contains(n) else { error(v, "\(key) must be between \(range.lowerBound) and \(range.upperBound), not \(n)"); return nil }
            return n
        }

        mutating func size(_ v: YAMLNode, _ key: String, range: ClosedRange<Int>) -> Int? {
            guard let s = v.scalar, let n = ApplianceConfig.parseSize(s) else {
                error(v, "\(key) must be a size in bytes (e.g. 67108864, 64MiB, 512KiB), not \(describe(v))"); return nil
            }
            guard range.contains(n) else { error(v, "\(key) must be between \(range.lowerBound) and \(range.upperBound) bytes, not \(n)"); return nil }
            return n
        }

        mutating func bool(_ v: YAMLNode, _ key: String) -> Bool? {
            switch v.scalar {
            case "true", "yes", "on", "True", "TRUE", "Yes", "On": return true
            case "false", "no", "off", "False", "FALSE", "No", "Off": return false
            default: error(v, "\(key) must be true or false, not \(describe(v))"); return nil
            }
        }

        mutating func fraction(_ v: YAMLNode, _ key: String) -> Double? {
            guard let s = v.scalar, let f = ApplianceConfig.parseFraction(s) else {
                error(v, "\(key) must be a fraction between 0 and 1 (e.g. 0.001) or a percentage (e.g. 0.1%), not \(describe(v))"); return nil
            }
            return f
        }

        func describe(_ v: YAMLNode) -> String { v.scalar.map { "\"\($0)\"" } ?? v.kindName }
    }

    /// Parses a byte size: a whole number with an optional unit (B, K/KB/KiB, M/MB/MiB, G/GB/GiB; all powers of 1024).
    public static func parseSize(_ text: String) -> Int? {
        let t = text.replacingUnderscores.trimmingSpaces
        var digits = Substring(t)
        var unit = Substring("")
        if let i = t.firstIndex(where: { !$0.isNumber }) { digits = t[..<i]; unit = t[i...] }
        guard let n = Int(digits) else { return nil }
        let shift: Int
        switch unit.trimmingSpaces.lowercased() {
        case "", "b": shift = 0
        case "k", "kb", "kib": shift = 10
        case "m", "mb", "mib": shift = 20
        case "g", "gb", "gib": shift = 30
        default: return nil
        }
        let (v, overflow) = n.multipliedReportingOverflow(by: 1 << shift)
        return overflow ? nil : v
    }

    /// Parses a loss threshold: a fraction in [0, 1] or a percentage ("0.5%").
    public static func parseFraction(_ text: String) -> Double? {
        let t = text.trimmingSpaces
        if t.hasSuffix("%") {
            guard let p = Double(t.dropLast().trimmingSpaces), p >= 0, p <= 100 else { return nil }
            return p / 100
        }
        guard let f = Double(t), f >= 0, f <= 1 else { return nil }
        return f
    }
}

/// Every error found in a configuration file, each as `FILE:LINE:COLUMN: message`.
public struct ConfigErrors: Error, CustomStringConvertible, Sendable {
    /// The errors, in file order.
    public var errors: [PolicyError]
    /// Wraps errors.
    public init(_ errors: [PolicyError]) { self.errors = errors }
    public var description: String { errors.map(\.description).joined(separator: "\n") }
}

extension StringProtocol {
    var replacingUnderscores: String { String(self.filter { $0 != "_" }) }
    var trimmingSpaces: String {
        var s = Substring(self)
        while s.first == " " { s.removeFirst() }
        while s.last == " " { s.removeLast() }
        return String(s)
    }
}

/// Reads a whole file as UTF-8 text; nil when it cannot be read (errno says why).
func readWholeFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 { if errno == EINTR { continue }; return nil }
        if n == 0 { break }
        bytes.append(contentsOf: chunk[0..<n])
        if bytes.count > 1 << 24 { errno = EFBIG; return nil }
    }
    return String(decoding: bytes, as: UTF8.self)
}
