import Records

// Output URLs, as `--output` takes them (and the `outputs:` list of the YAML config):
//
//   -                                        stdout, ECS (`-?format=cef&records=alert,flow` allowed)
//   file:///var/log/zonewatch?format=ecs     a folder: one rotated file per record kind
//   syslog+udp://host:514?format=cef         RFC 5426, one message per datagram
//   syslog+tcp://host:601?format=leef&framing=octet|lf    RFC 6587 (octet counting by default)
//   syslog+tls://host:6514?format=cef&ca=/path/ca.pem[&cert=..&key=..]   RFC 5425
//
// Hosts may be names, IPv4 or `[IPv6]`. Query values are percent-decoded. Parameters:
//
//   all          format=ecs|cef|leef|leef2   records=alert,flow,...|all   min_severity=0..10
//                queue=N (in-memory queue, records; default 65536)
//   syslog       facility=0..23|local4|...  hostname=  app=  procid=  pen=<IANA enterprise number>
//   tcp, tls     framing=octet|lf (tls: octet only)  spool=DIR  spool_size=SIZE (default 256M)
//                connect_timeout=SECONDS (default 5)
//   tls          ca=FILE (default: system trust store)  cert=FILE key=FILE (client certificate)
//                server_name=NAME (name to verify, default the host)
//   udp          max_size=BYTES (default 2048; longer messages are truncated and counted)
//   file         rotate_size=SIZE (default 100M)  rotate_interval=DURATION (0 = off)  keep=N (default 10)
//
// SIZE takes k/m/g suffixes (powers of 1024); DURATION takes s/m/h/d. An unknown parameter, or one
// that does not apply to the scheme, is an error: a typo must not silently fall back to a default.
// `records` defaults to `alert` for syslog and stdout, and to every kind but `pdu` for files.
// `min_severity` filters alerts only.

/// One configured output, parsed from its URL.
public struct OutputSpec: Sendable, Equatable {
    /// Syslog transport.
    public enum SyslogTransport: String, Sendable, Equatable { case udp, tcp, tls }
    /// TCP framing (RFC 6587).
    public enum Framing: String, Sendable, Equatable {
        /// `MSG-LEN SP SYSLOG-MSG`.
        case octetCounting = "octet"
        /// `SYSLOG-MSG LF`.
        case lineFeed = "lf"
    }
    /// Where records go.
    public enum Destination: Sendable, Equatable {
        /// Standard output, one record per line.
        case stdout
        /// A folder with one rotated file per record kind.
        case directory(path: String)
        /// A syslog receiver.
        case syslog(SyslogTransport, host: String, port: UInt16)
    }
    /// TLS settings.
    public struct TLSSettings: Sendable, Equatable {
        /// CA bundle to verify the server against (nil: the system store).
        public var caFile: String?
        /// Client certificate chain (PEM).
        public var certificateFile: String?
        /// Client private key (PEM).
        public var keyFile: String?
        /// Name (or IP) the server certificate must match; nil: the host of the URL.
        public var serverName: String?
    }

    /// The URL as given.
    public var url: String
    /// Destination.
    public var destination: Destination
    /// Record format for alerts.
    public var format: OutputFormat = .ecs
    /// TCP framing.
    public var framing: Framing = .octetCounting
    /// Alerts below this severity are not sent.
    public var minSeverity: Int = 0
    /// Record kinds sent.
    public var records: Set<RecordKind>
    /// Syslog facility.
    public var facility: Int = 20
    /// Syslog HOSTNAME (nil: this machine's name).
    public var hostname: String?
    /// Syslog APP-NAME.
    public var appName: String = "zonewatch"
    /// Syslog PROCID (nil: this process's id).
    public var procID: String?
    /// Enterprise number of the SD-ID.
    public var enterpriseNumber: Int = 32473
    /// TLS settings.
    public var tls = TLSSettings()
    /// Spool folder (nil: /var/tmp/zonewatch/spool/<transport>-<host>-<port>).
    public var spoolDirectory: String?
    /// Spool bound in bytes.
    public var spoolLimit: Int = 256 << 20
    /// In-memory queue bound in records.
    public var queueCapacity: Int = 65536
    /// Longest UDP datagram.
    public var maxDatagram: Int = 2048
    /// TCP/TLS connect (and handshake) timeout, seconds.
    public var connectTimeout: Double = 5
    /// File rotation size in bytes.
    public var rotateBytes: Int = 100 << 20
    /// File rotation interval in seconds (0: off).
    public var rotateSeconds: Int = 0
    /// Rotated files kept per record kind.
    public var keepFiles: Int = 10

    /// Whether the output talks syslog.
    public var isSyslog: Bool { if case .syslog = destination { true } else { false } }

    /// Creates a spec for `destination` with every default.
    public init(url: String, destination: Destination) {
        self.url = url; self.destination = destination
        if case .directory = destination { records = Set(RecordKind.allCases.filter { $0 != .pdu }) } else { records = [.alert] }
    }

    /// The spool folder this output uses.
    public var effectiveSpoolDirectory: String {
        if let d = spoolDirectory { return d }
        guard case .syslog(let t, let host, let port) = destination else { return "/var/tmp/zonewatch/spool/other" }
        let safeHost = String(host.map { $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" ? $0 : "_" })
        return "/var/tmp/zonewatch/spool/\(t.rawValue)-\(safeHost)-\(port)"
    }

    /// Parses an output URL (see the table at the top of this file).
    public static func parse(_ url: String) throws(OutputSpecError) -> OutputSpec {
        let text = url.trimmingASCIIWhitespace()
        var spec: OutputSpec
        var query = Substring("")
        if text == "-" || text.hasPrefix("-?") {
            spec = OutputSpec(url: url, destination: .stdout)
            if text.count > 1 { query = text.dropFirst(2) }
        } else {
            guard let sep = text.firstRange(ofText: "://") else { throw .notAURL(url) }
            let scheme = text[..<sep.lowerBound].lowercased()
            var rest = text[sep.upperBound...]
            if let q = rest.firstIndex(of: "?") { query = rest[rest.index(after: q)...]; rest = rest[..<q] }
            switch scheme {
            case "file":
                var path = rest
                if path.hasPrefix("localhost/") { path = path.dropFirst("localhost".count) }
                guard path.hasPrefix("/") else { throw .badPath(String(rest)) }
                let decoded = try percentDecode(path, parameter: "path")
                spec = OutputSpec(url: url, destination: .directory(path: decoded))
            case "syslog+udp", "syslog+tcp", "syslog+tls":
                let transport = SyslogTransport(rawValue: String(scheme.dropFirst("syslog+".count)))!
                if rest.hasSuffix("/") { rest = rest.dropLast() }
                let (host, port) = try parseAuthority(rest, defaultPort: transport == .udp ? 514 : transport == .tcp ? 601 : 6514)
                spec = OutputSpec(url: url, destination: .syslog(transport, host: host, port: port))
            default:
                throw .unknownScheme(String(scheme))
            }
        }
        try spec.apply(query: query)
        return spec
    }

    private static func parseAuthority(_ s: Substring, defaultPort: UInt16) throws(OutputSpecError) -> (String, UInt16) {
        var host: Substring, portText: Substring?
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]") else { throw .badHost(String(s)) }
            host = s[s.index(after: s.startIndex)..<close]
            let after = s[s.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw .badHost(String(s)) }
                portText = after.dropFirst()
            }
        } else if let colon = s.lastIndex(of: ":") {
            host = s[..<colon]; portText = s[s.index(after: colon)...]
        } else {
            host = s
        }
        guard !host.isEmpty, !host.contains("/"), !host.contains("@") else { throw .badHost(String(s)) }
        var port = defaultPort
        if let p = portText {
            guard let v = UInt16(p), v > 0 else { throw .badPort(String(p)) }
            port = v
        }
        return (String(host), port)
    }

    private mutating func apply(query: Substring) throws(OutputSpecError) {
        guard !query.isEmpty else { return }
        var seen = Set<String>()
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let eq = pair.firstIndex(of: "=")
            let name = String(eq.map { pair[..<$0] } ?? pair)
            let raw = eq.map { pair[pair.index(after: $0)...] } ?? ""
            let value = try OutputSpec.percentDecode(raw, parameter: name)
            guard seen.insert(name).inserted else { throw .duplicateParameter(name) }
            try apply(name: name, value: value)
        }
        if case .syslog(.tls, _, _) = destination, framing == .lineFeed {
            throw .notApplicable(parameter: "framing=lf", scheme: "syslog+tls (RFC 5425 requires octet counting)")
        }
        if (tls.certificateFile == nil) != (tls.keyFile == nil) { throw .certificateWithoutKey }
    }

    private mutating func apply(name: String, value: String) throws(OutputSpecError) {
        var transport: SyslogTransport?
        var isFile = false
        switch destination {
        case .syslog(let t, _, _): transport = t
        case .directory: isFile = true
        case .stdout: break
        }
        func require(_ ok: Bool) throws(OutputSpecError) {
            guard ok else { throw .notApplicable(parameter: name, scheme: schemeName) }
        }
        func bad() -> OutputSpecError { .badValue(parameter: name, value: value) }
        switch name {
        case "format":
            guard let f = OutputFormat(rawValue: value.lowercased()) else { throw bad() }
            format = f
        case "records":
            if value == "all" { records = Set(RecordKind.allCases.filter { $0 != .pdu }); return }
            var set = Set<RecordKind>()
            for item in value.split(separator: ",") {
                guard let k = RecordKind(shortName: item.trimmingASCIIWhitespace()) else { throw bad() }
                set.insert(k)
            }
            guard !set.isEmpty else { throw bad() }
            records = set
        case "min_severity":
            guard let v = Int(value), (0...10).contains(v) else { throw bad() }
            minSeverity = v
        case "queue":
            try require(true)
            guard let v = Int(value), v >= 1, v <= 1 << 24 else { throw bad() }
            queueCapacity = v
        case "facility":
            try require(transport != nil)
            guard let v = OutputSpec.facility(named: value) else { throw bad() }
            facility = v
        case "hostname":
            try require(transport != nil); guard !value.isEmpty else { throw bad() }; hostname = value
        case "app":
            try require(transport != nil); guard !value.isEmpty else { throw bad() }; appName = value
        case "procid":
            try require(transport != nil); guard !value.isEmpty else { throw bad() }; procID = value
        case "pen":
            try require(transport != nil)
            guard let v = Int(value), v >= 0 else { throw bad() }
            enterpriseNumber = v
        case "framing":
            try require(transport == .tcp || transport == .tls)
            guard let f = Framing(rawValue: value.lowercased()) else { throw bad() }
            framing = f
        case "spool":
            try require(transport == .tcp || transport == .tls); guard value.hasPrefix("/") else { throw bad() }
            spoolDirectory = value
        case "spool_size":
            try require(transport == .tcp || transport == .tls)
            guard let v = OutputSpec.size(value), v >= 4096 else { throw bad() }
            spoolLimit = v
        case "connect_timeout":
            try require(transport == .tcp || transport == .tls)
            guard let v = Double(value), v > 0, v <= 300 else { throw bad() }
            connectTimeout = v
        case "ca":
            try require(transport == .tls); guard !value.isEmpty else { throw bad() }; tls.caFile = value
        case "cert":
            try require(transport == .tls); guard !value.isEmpty else { throw bad() }; tls.certificateFile = value
        case "key":
            try require(transport == .tls); guard !value.isEmpty else { throw bad() }; tls.keyFile = value
        case "server_name":
            try require(transport == .tls); guard !value.isEmpty else { throw bad() }; tls.serverName = value
        case "max_size":
            try require(transport == .udp)
            guard let v = OutputSpec.size(value), v >= 480, v <= 65507 else { throw bad() }
            maxDatagram = v
        case "rotate_size":
            try require(isFile)
            guard let v = OutputSpec.size(value), v >= 4096 else { throw bad() }
            rotateBytes = v
        case "rotate_interval":
            try require(isFile)
            guard let v = OutputSpec.duration(value) else { throw bad() }
            rotateSeconds = v
        case "keep":
            try require(isFile)
            guard let v = Int(value), v >= 0, v <= 10_000 else { throw bad() }
            keepFiles = v
        default:
            throw .unknownParameter(name)
        }
    }

    private var schemeName: String {
        switch destination {
        case .stdout: "-"
        case .directory: "file"
        case .syslog(let t, _, _): "syslog+\(t.rawValue)"
        }
    }

    /// Syslog facility by number (0–23) or name.
    static func facility(named s: String) -> Int? {
        if let v = Int(s) { return (0...23).contains(v) ? v : nil }
        let names = ["kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
                     "ftp", "ntp", "audit", "alert", "clock", "local0", "local1", "local2", "local3", "local4",
                     "local5", "local6", "local7"]
        return names.firstIndex(of: s.lowercased())
    }

    /// Bytes from `123`, `64k`, `100M`, `1g`.
    static func size(_ s: String) -> Int? {
        guard let last = s.last else { return nil }
        let shift: Int
        switch last {
        case "k", "K": shift = 10
        case "m", "M": shift = 20
        case "g", "G": shift = 30
        default: shift = 0
        }
        let digits = shift == 0 ? Substring(s) : s.dropLast()
        guard let v = Int(digits), v >= 0, v <= (1 << 40) >> shift else { return nil }
        return v << shift
    }

    /// Seconds from `30`, `30s`, `15m`, `1h`, `1d`.
    static func duration(_ s: String) -> Int? {
        guard let last = s.last else { return nil }
        let unit: Int
        switch last {
        case "s": unit = 1
        case "m": unit = 60
        case "h": unit = 3600
        case "d": unit = 86400
        default: unit = 0
        }
        let digits = unit == 0 ? Substring(s) : s.dropLast()
        guard let v = Int(digits), v >= 0, v <= 365 * 86400 else { return nil }
        return v * max(unit, 1)
    }

    static func percentDecode(_ s: Substring, parameter: String) throws(OutputSpecError) -> String {
        guard s.contains("%") else { return String(s) }
        var out: [UInt8] = []
        var it = Array(s.utf8)[...]
        while let b = it.popFirst() {
            if b == UInt8(ascii: "%") {
                guard it.count >= 2, let h = hexValue(it[it.startIndex]), let l = hexValue(it[it.startIndex + 1]) else {
                    throw .badValue(parameter: parameter, value: String(s))
                }
                out.append(h << 4 | l); it = it.dropFirst(2)
            } else {
                out.append(b)
            }
        }
        guard let decoded = String(validating: out, as: UTF8.self) else { throw .badValue(parameter: parameter, value: String(s)) }
        return decoded
    }

    private static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case 0x30...0x39: b - 0x30
        case 0x41...0x46: b - 0x41 + 10
        case 0x61...0x66: b - 0x61 + 10
        default: nil
        }
    }
}

/// Why an output URL was rejected.
public enum OutputSpecError: Error, Equatable, CustomStringConvertible {
    case notAURL(String)
    case unknownScheme(String)
    case badHost(String)
    case badPort(String)
    case badPath(String)
    case unknownParameter(String)
    case duplicateParameter(String)
    case notApplicable(parameter: String, scheme: String)
    case badValue(parameter: String, value: String)
    case certificateWithoutKey

    public var description: String {
        switch self {
        case .notAURL(let s): "output '\(s)' is not a URL (expected -, file:///dir, syslog+udp|tcp|tls://host:port)"
        case .unknownScheme(let s): "unknown output scheme '\(s)' (expected file, syslog+udp, syslog+tcp, syslog+tls)"
        case .badHost(let s): "bad host in output URL: '\(s)'"
        case .badPort(let s): "bad port in output URL: '\(s)'"
        case .badPath(let s): "file output needs an absolute folder path: '\(s)'"
        case .unknownParameter(let s): "unknown output parameter '\(s)'"
        case .duplicateParameter(let s): "output parameter '\(s)' given twice"
        case .notApplicable(let p, let scheme): "output parameter '\(p)' does not apply to \(scheme)"
        case .badValue(let p, let v): "bad value '\(v)' for output parameter '\(p)'"
        case .certificateWithoutKey: "cert= and key= must be given together"
        }
    }
}

extension StringProtocol {
    /// The first occurrence of `needle`, character by character (`firstRange(of:)` without the regex
    /// runtime, which zonewatch does not link).
    func firstRange(ofText needle: String) -> Range<Index>? {
        var i = startIndex
        while i < endIndex {
            if self[i...].hasPrefix(needle) { return i..<index(i, offsetBy: needle.count) }
            formIndex(after: &i)
        }
        return nil
    }

    func trimmingASCIIWhitespace() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" || f == "\n" || f == "\r" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\n" || l == "\r" { s = s.dropLast() }
        return String(s)
    }
}
