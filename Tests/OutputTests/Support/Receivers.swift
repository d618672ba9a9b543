import Foundation

// Real rsyslog and syslog-ng on loopback, each with its own config, PKI and files in a temporary
// folder. They come from Debian's packages, unpacked side by side by scripts/receivers (the two
// packages conflict, so neither is installed as a package). Tests that need them are skipped, with
// the reason printed, when they cannot be installed or started.

/// Where scripts/receivers put the two receivers.
struct ReceiverInstall: Sendable {
    var rsyslogd: String
    var rsyslogModules: String
    var syslogNG: String
    var syslogNGModules: String
    var syslogNGLibs: String

    /// The install, running scripts/receivers once if it is missing (root only, bounded to 10 minutes).
    static let shared: ReceiverInstall? = locate()

    /// Why receiver tests are skipped (nil when they run).
    static let skipReason: String? = {
        if shared != nil { return nil }
        let reason = "rsyslog/syslog-ng not available: run scripts/receivers (as root) to install them"
        print("note: OutputTests: receiver tests skipped: \(reason)")
        return reason
    }()

    static var available: Bool { skipReason == nil }

    private static var repositoryRoot: String {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<4 { url.deleteLastPathComponent() }   // Support, OutputTests, Tests, root
        return url.path
    }

    private static func envFile() -> String {
        let dir = ProcessInfo.processInfo.environment["ZW_RECEIVERS"] ?? "/var/tmp/zonewatch-receivers"
        return dir + "/receivers.env"
    }

    private static func locate() -> ReceiverInstall? {
        if let found = read(envFile()) { return found }
        guard ProcessInfo.processInfo.environment["ZW_NO_INSTALL"] == nil, getuid() == 0 else { return nil }
        let script = repositoryRoot + "/scripts/receivers"
        guard FileManager.default.isExecutableFile(atPath: script) else { return nil }
        print("note: OutputTests: installing rsyslog and syslog-ng with scripts/receivers")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: script)
        p.standardOutput = FileHandle.nullDevice
        do { try p.run() } catch { return nil }
        let end = Date().addingTimeInterval(600)
        while p.isRunning && Date() < end { usleep(100_000) }
        if p.isRunning { p.terminate(); return nil }
        return read(envFile())
    }

    private static func read(_ path: String) -> ReceiverInstall? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        var env: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let eq = line.firstIndex(of: "=") else { continue }
            env[String(line[..<eq])] = String(line[line.index(after: eq)...])
        }
        guard let r = env["RSYSLOGD"], let rm = env["RSYSLOG_MODULES"], let n = env["SYSLOG_NG"],
              let nm = env["SYSLOG_NG_MODULES"], let nl = env["SYSLOG_NG_LIBS"],
              FileManager.default.isExecutableFile(atPath: r), FileManager.default.isExecutableFile(atPath: n) else { return nil }
        return ReceiverInstall(rsyslogd: r, rsyslogModules: rm, syslogNG: n, syslogNGModules: nm, syslogNGLibs: nl)
    }
}

/// A throwaway PKI made with the openssl CLI: a CA, a server certificate for 127.0.0.1/localhost,
/// a client certificate, and a second CA that signed nothing we use.
struct TestPKI {
    let dir: String
    var ca: String { dir + "/ca.pem" }
    var otherCA: String { dir + "/other-ca.pem" }
    var serverCert: String { dir + "/server.pem" }
    var serverKey: String { dir + "/server.key" }
    var clientCert: String { dir + "/client.pem" }
    var clientKey: String { dir + "/client.key" }

    init(in parent: String) throws {
        dir = parent + "/pki"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try shell("""
            set -e
            cd '\(dir)'
            openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj '/CN=ZoneWatch test CA'
            openssl req -x509 -newkey rsa:2048 -nodes -keyout other-ca.key -out other-ca.pem -days 2 -subj '/CN=Unrelated CA'
            openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj '/CN=127.0.0.1'
            printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\nextendedKeyUsage=serverAuth\\n' > server.ext
            openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile server.ext
            openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj '/CN=zonewatch-client'
            printf 'extendedKeyUsage=clientAuth\\n' > client.ext
            openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2 -extfile client.ext
            chmod 600 *.key
            """)
    }
}

/// Runs `script` with /bin/sh; throws with its output when it fails. Bounded to 60 s.
func shell(_ script: String) throws {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/sh")
    p.arguments = ["-c", script]
    let out = Pipe()
    p.standardOutput = out; p.standardError = out
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    let end = Date().addingTimeInterval(60)
    while p.isRunning && Date() < end { usleep(10_000) }
    guard !p.isRunning, p.terminationStatus == 0 else {
        if p.isRunning { p.terminate() }
        throw ParseError("shell failed: \(String(decoding: data, as: UTF8.self))")
    }
}

/// Which receiver.
enum ReceiverKind: String, Sendable, CustomStringConvertible {
    case rsyslog, syslogNG = "syslog-ng"
    var description: String { rawValue }
}

/// The ways the tests reach a receiver.
enum Route: String, Sendable, CaseIterable, CustomStringConvertible {
    case udp, tcpOctet = "tcp-octet", tcpLF = "tcp-lf", tls
    var description: String { rawValue }
}

/// One running receiver listening on every route, each route stored raw (`%rawmsg%` / `${RAWMSG}`)
/// one message per line in `<route>.log`.
final class Receiver {
    let kind: ReceiverKind
    let install: ReceiverInstall
    let dir: String
    let pki: TestPKI
    /// Ports per route.
    let ports: [Route: UInt16]
    private var process: Process?
    private(set) var log: String = ""

    /// Writes the config (checked with the receiver's own syntax check) without starting.
    init(_ kind: ReceiverKind, in dir: String, pki: TestPKI) throws {
        guard let install = ReceiverInstall.shared else { throw ParseError("receivers not installed") }
        self.kind = kind; self.install = install; self.dir = dir; self.pki = pki
        try FileManager.default.createDirectory(atPath: dir + "/rx", withIntermediateDirectories: true)
        let udp = freePortBoth()
        var p: [Route: UInt16] = [.udp: udp]
        if kind == .rsyslog {
            let tcp = freePort()
            p[.tcpOctet] = tcp; p[.tcpLF] = tcp      // imtcp tells the framings apart per frame
            p[.tls] = freePort()
        } else {
            p[.tcpLF] = freePort(); p[.tcpOctet] = freePort(); p[.tls] = freePort()
        }
        ports = p
        try config().write(toFile: configPath, atomically: true, encoding: .utf8)
        try check()
    }

    deinit { stop() }

    var configPath: String { dir + "/\(kind).conf" }

    /// The stored messages of `route`, one per line.
    func messages(_ route: Route) -> [[UInt8]] {
        let file = route == .tcpLF && kind == .rsyslog ? "tcp" : route == .tcpOctet && kind == .rsyslog ? "tcp" : route.rawValue
        guard let data = FileManager.default.contents(atPath: dir + "/rx/\(file).log") else { return [] }
        return data.split(separator: 0x0A, omittingEmptySubsequences: false).dropLast().map { Array($0) }
    }

    private func config() -> String {
        let rx = dir + "/rx"
        switch kind {
        case .rsyslog:
            return """
            global(workDirectory="\(rx)" maxMessageSize="64k"
                   defaultNetstreamDriverCAFile="\(pki.ca)"
                   defaultNetstreamDriverCertFile="\(pki.serverCert)"
                   defaultNetstreamDriverKeyFile="\(pki.serverKey)"
                   parser.escapeControlCharacterTab="off")
            module(load="imudp")
            module(load="imtcp" maxSessions="500")
            template(name="raw" type="string" string="%rawmsg%\\n")
            ruleset(name="udp") { action(type="omfile" file="\(rx)/udp.log" template="raw") }
            ruleset(name="tcp") { action(type="omfile" file="\(rx)/tcp.log" template="raw") }
            ruleset(name="tls") { action(type="omfile" file="\(rx)/tls.log" template="raw") }
            input(type="imudp" address="127.0.0.1" port="\(ports[.udp]!)" ruleset="udp" rcvbufSize="4m")
            input(type="imtcp" address="127.0.0.1" port="\(ports[.tcpOctet]!)" ruleset="tcp")
            input(type="imtcp" address="127.0.0.1" port="\(ports[.tls]!)" ruleset="tls"
                  streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")

            """
        case .syslogNG:
            return """
            @version: 3.38
            options { keep-hostname(yes); use-dns(no); dns-cache(no); frac-digits(6); log-msg-size(65536); };
            source s_udp { network(ip("127.0.0.1") port(\(ports[.udp]!)) transport("udp") so-rcvbuf(4194304)
                                   flags(syslog-protocol, store-raw-message)); };
            source s_lf  { network(ip("127.0.0.1") port(\(ports[.tcpLF]!)) transport("tcp") max-connections(500)
                                   flags(syslog-protocol, store-raw-message)); };
            source s_oct { syslog(ip("127.0.0.1") port(\(ports[.tcpOctet]!)) transport("tcp") max-connections(500)
                                  flags(store-raw-message)); };
            source s_tls { syslog(ip("127.0.0.1") port(\(ports[.tls]!)) transport("tls") max-connections(500)
                                  flags(store-raw-message)
                                  tls(key-file("\(pki.serverKey)") cert-file("\(pki.serverCert)")
                                      ca-file("\(pki.ca)") peer-verify(required-trusted))); };
            destination d_udp { file("\(rx)/udp.log" template("${RAWMSG}\\n")); };
            destination d_lf  { file("\(rx)/tcp-lf.log" template("${RAWMSG}\\n")); };
            destination d_oct { file("\(rx)/tcp-octet.log" template("${RAWMSG}\\n")); };
            destination d_tls { file("\(rx)/tls.log" template("${RAWMSG}\\n")); };
            log { source(s_udp); destination(d_udp); };
            log { source(s_lf); destination(d_lf); };
            log { source(s_oct); destination(d_oct); };
            log { source(s_tls); destination(d_tls); };

            """
        }
    }

    private var environment: [String: String] {
        var env = ProcessInfo.processInfo.environment
        if kind == .syslogNG { env["LD_LIBRARY_PATH"] = install.syslogNGLibs }
        return env
    }

    private func check() throws {
        let p = Process()
        p.environment = environment
        switch kind {
        case .rsyslog:
            p.executableURL = URL(fileURLWithPath: install.rsyslogd)
            p.arguments = ["-N1", "-f", configPath, "-M", install.rsyslogModules]
        case .syslogNG:
            p.executableURL = URL(fileURLWithPath: install.syslogNG)
            p.arguments = ["-s", "-f", configPath, "--module-path=\(install.syslogNGModules)"]
        }
        let out = Pipe()
        p.standardOutput = out; p.standardError = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw ParseError("\(kind) rejected its config: \(String(decoding: data, as: UTF8.self))")
        }
    }

    /// Starts the receiver and waits (≤ 10 s) until its TCP ports accept connections.
    func start() throws {
        let p = Process()
        p.environment = environment
        let rx = dir + "/rx"
        switch kind {
        case .rsyslog:
            p.executableURL = URL(fileURLWithPath: install.rsyslogd)
            p.arguments = ["-n", "-f", configPath, "-M", install.rsyslogModules, "-i", rx + "/rsyslogd.pid"]
        case .syslogNG:
            p.executableURL = URL(fileURLWithPath: install.syslogNG)
            p.arguments = ["-F", "-f", configPath, "--module-path=\(install.syslogNGModules)",
                           "-R", rx + "/persist", "-p", rx + "/syslog-ng.pid", "-c", rx + "/ctl"]
        }
        _ = FileManager.default.createFile(atPath: dir + "/receiver.out", contents: nil)
        let logHandle = FileHandle(forWritingAtPath: dir + "/receiver.out")
        logHandle?.seekToEndOfFile()
        p.standardOutput = logHandle; p.standardError = logHandle
        try p.run()
        process = p
        let tcpPorts = Set([ports[.tcpOctet]!, ports[.tcpLF]!, ports[.tls]!])
        let ready = waitUntil(seconds: 10) { p.isRunning && tcpPorts.allSatisfy(Receiver.accepts) }
        guard ready else {
            stop()
            throw ParseError("\(kind) did not start: \(((try? String(contentsOfFile: dir + "/receiver.out", encoding: .utf8)) ?? ""))")
        }
    }

    /// SIGTERM and wait (≤ 10 s, then SIGKILL).
    func stop() {
        guard let p = process else { return }
        process = nil
        if p.isRunning {
            p.terminate()
            if !waitUntil(seconds: 10, { !p.isRunning }) { kill(p.processIdentifier, SIGKILL); _ = waitUntil(seconds: 5) { !p.isRunning } }
        }
        log = ((try? String(contentsOfFile: dir + "/receiver.out", encoding: .utf8)) ?? "")
    }

    /// Whether something accepts TCP connections on 127.0.0.1:`port`.
    static func accepts(_ port: UInt16) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = port.bigEndian
        return withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } } == 0
    }
}
