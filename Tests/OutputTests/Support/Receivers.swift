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
        var reason: String?
        if shared == nil {
            reason = "rsyslog/syslog-ng not available: run scripts/receivers (as root) to install them"
        } else {
            reason = smokeTest()
        }
        if let reason { print("note: OutputTests: receiver tests skipped: \(reason)") }
        return reason
    }()

    /// Starts and stops each receiver once in a scratch folder; the reason when one cannot run.
    private static func smokeTest() -> String? {
        let tmp = TempDir("smoke")
        do {
            let pki = try TestPKI(in: tmp.path)
            for kind in [ReceiverKind.rsyslog, .syslogNG] {
                let r = try Receiver(kind, in: tmp.path + "/\(kind)", pki: pki)
                try r.start()
                r.stop()
            }
            return nil
        } catch {
            return "receivers cannot be started here: \(error)"
        }
    }

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
            openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem -days 2 -subj '/CN=ZoneWatch test CA'
            openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout other-ca.key -out other-ca.pem -days 2 -subj '/CN=Unrelated CA'
            openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout server.key -out server.csr -subj '/CN=127.0.0.1'
            printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\nextendedKeyUsage=serverAuth\\n' > server.ext
            openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile server.ext
            openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout client.key -out client.csr -subj '/CN=zonewatch-client'
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
    private var pid: pid_t = 0
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
            source s_lf  { network(ip("127.0.0.1") port(\(ports[.tcpLF]!)) transport("tcp") max-connections(20) log-iw-size(20000)
                                   flags(syslog-protocol, store-raw-message)); };
            source s_oct { syslog(ip("127.0.0.1") port(\(ports[.tcpOctet]!)) transport("tcp") max-connections(20) log-iw-size(20000)
                                  flags(store-raw-message)); };
            source s_tls { syslog(ip("127.0.0.1") port(\(ports[.tls]!)) transport("tls") max-connections(20) log-iw-size(20000)
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
        let rx = dir + "/rx"
        let path: String, args: [String]
        switch kind {
        case .rsyslog:
            path = install.rsyslogd
            args = ["-n", "-f", configPath, "-M", install.rsyslogModules, "-i", rx + "/rsyslogd.pid"]
        case .syslogNG:
            path = install.syslogNG
            args = ["-F", "-f", configPath, "--module-path=\(install.syslogNGModules)",
                    "-R", rx + "/persist", "-p", rx + "/syslog-ng.pid", "-c", rx + "/ctl"]
        }
        pid = try spawn(path, args, environment: environment, output: dir + "/receiver.out")
        // Probing the TLS port with a bare connect would make the receiver log a truncated handshake,
        // and the TLS tests check that log: only plain ports are probed (an output that comes too
        // early simply reconnects).
        let tcpPorts = Set([ports[.tcpOctet]!, ports[.tcpLF]!])
        let ready = waitUntil(seconds: 10) { Receiver.alive(pid) && tcpPorts.allSatisfy(Receiver.accepts) }
        guard ready else {
            stop()
            throw ParseError("\(kind) did not start: \(log)")
        }
    }

    /// SIGTERM and wait (≤ 10 s, then SIGKILL); reaps the process.
    func stop() {
        guard pid > 0 else { return }
        let p = pid
        pid = 0
        kill(p, SIGTERM)
        var status: Int32 = 0
        if !waitUntil(seconds: 10, { waitpid(p, &status, WNOHANG) == p }) {
            kill(p, SIGKILL)
            _ = waitUntil(seconds: 5) { waitpid(p, &status, WNOHANG) != 0 }
        }
        log = (try? String(contentsOfFile: dir + "/receiver.out", encoding: .utf8)) ?? ""
    }

    /// Whether `pid` still runs: /proc/<pid>/stat exists and its state is not zombie (Foundation's
    /// `isRunning` lags behind the exit here).
    static func alive(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        let state = stat[close...].dropFirst(2).first
        return state != "Z" && state != "X"
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

/// posix_spawn with default signal dispositions and an empty signal mask: threads of the test runner
/// block most signals, and a child would inherit that mask (a receiver would then ignore SIGTERM).
/// stdout and stderr are appended to `output`.
func spawn(_ path: String, _ args: [String], environment: [String: String], output: String) throws -> pid_t {
    var attr = posix_spawnattr_t()
    posix_spawnattr_init(&attr)
    defer { posix_spawnattr_destroy(&attr) }
    var empty = sigset_t(); sigemptyset(&empty)
    var all = sigset_t(); sigfillset(&all)
    posix_spawnattr_setsigmask(&attr, &empty)
    posix_spawnattr_setsigdefault(&attr, &all)
    posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_APPEND, 0o644)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    let argv: [UnsafeMutablePointer<CChar>?] = ([path] + args).map { strdup($0) } + [nil]
    let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer { for p in argv { free(p) }; for p in envp { free(p) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, path, &actions, &attr, argv, envp)
    guard rc == 0 else { throw ParseError("posix_spawn \(path): \(String(cString: strerror(rc)))") }
    return pid
}
