import Foundation
import Testing

/// The built zonewatch binary (scripts/test exports ZONEWATCH_BIN).
let zonewatchBinary: String? = ProcessInfo.processInfo.environment["ZONEWATCH_BIN"].flatMap {
    FileManager.default.isExecutableFile(atPath: $0) ? $0 : nil
}

let binaryAvailable: Bool = {
    if zonewatchBinary == nil { print("note: ZONEWATCH_BIN is not set: zonewatch end-to-end tests are skipped (run scripts/test)") }
    return zonewatchBinary != nil
}()

/// Runs a command to its end; returns (status, stdout, stderr). Bounded: killed after `timeout` seconds.
@discardableResult
func run(_ executable: String, _ arguments: [String], timeout: Double = 300) throws -> (Int32, String, String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    let dir = NSTemporaryDirectory()
    let tag = "zw-run-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    let outPath = dir + tag + ".out", errPath = dir + tag + ".err"
    FileManager.default.createFile(atPath: outPath, contents: nil)
    FileManager.default.createFile(atPath: errPath, contents: nil)
    defer { try? FileManager.default.removeItem(atPath: outPath); try? FileManager.default.removeItem(atPath: errPath) }
    p.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
    p.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
    try p.run()
    let deadline = Date().addingTimeInterval(timeout)
    while p.isRunning && Date() < deadline { usleep(10_000) }
    if p.isRunning { p.terminate(); usleep(200_000); if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
    p.waitUntilExit()
    return (p.terminationStatus, (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "",
            (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "")
}

/// Finds a program on PATH (and in /usr/sbin, /sbin where `ip` lives).
func which(_ name: String) -> String? {
    let path = (ProcessInfo.processInfo.environment["PATH"] ?? "") + ":/usr/sbin:/sbin:/usr/bin:/bin"
    for dir in path.split(separator: ":") where FileManager.default.isExecutableFile(atPath: "\(dir)/\(name)") { return "\(dir)/\(name)" }
    return nil
}

/// A scratch folder anyone may write to (the appliance runs as `nobody` after its privilege drop).
func openScratchFolder(_ name: String) throws -> String {
    let path = NSTemporaryDirectory() + "zw-live-\(getpid())-\(name)"
    try? FileManager.default.removeItem(atPath: path)
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    chmod(path, 0o777)
    return path
}

/// Network namespaces for live-capture tests: one namespace per test holding a veth pair `zwa`/`zwb`, so test
/// traffic never leaves it. Requires root, `ip` and `tcpreplay`; otherwise the tests skip with a note.
enum LiveLab {
    static let ip = which("ip")
    static let tcpreplay = which("tcpreplay")

    static let available: Bool = {
        guard binaryAvailable else { return false }
        guard geteuid() == 0 else { print("note: not root: live-capture tests (network namespaces, privilege drop) are skipped"); return false }
        guard ip != nil, tcpreplay != nil else { print("note: `ip` or `tcpreplay` missing: live-capture tests are skipped (scripts/install-deps installs them)"); return false }
        removeStaleNamespaces()
        let probe = "zwt-\(getpid())-probe"
        guard (try? run(ip!, ["netns", "add", probe]).0) == 0 else {
            print("note: cannot create network namespaces here (container without CAP_SYS_ADMIN?): live-capture tests are skipped")
            return false
        }
        _ = try? run(ip!, ["netns", "del", probe])
        return true
    }()

    /// Deletes namespaces left by an earlier test process that was killed before it could clean up.
    static func removeStaleNamespaces() {
        guard let (_, out, _) = try? run(ip!, ["netns", "list"]) else { return }
        for line in out.split(separator: "\n") {
            let name = String(line.split(separator: " ").first ?? "")
            let parts = name.split(separator: "-")
            guard parts.count >= 3, parts[0] == "zwt", let pid = Int32(parts[1]), pid != getpid() else { continue }
            if kill(pid, 0) != 0 && errno == ESRCH { _ = try? run(ip!, ["netns", "del", name]) }
        }
    }

    nonisolated(unsafe) static var counter = 0

    /// A namespace with a veth pair (`zwa` captured, `zwb` replayed into), IPv6 off so the kernel adds no
    /// packets of its own. Deleted by `close()` (call it in `defer`).
    final class Namespace {
        let name: String
        private var closed = false

        init() throws {
            LiveLab.counter += 1
            name = "zwt-\(getpid())-\(LiveLab.counter)"
            let ip = LiveLab.ip!
            func must(_ args: [String]) throws {
                let (status, _, err) = try run(ip, args)
                if status != 0 { throw LabError("ip \(args.joined(separator: " ")): \(err)") }
            }
            try must(["netns", "add", name])
            do {
                _ = try run(ip, ["netns", "exec", name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"])
                try must(["-n", name, "link", "add", "zwa", "type", "veth", "peer", "name", "zwb"])
                for dev in ["lo", "zwa", "zwb"] { try must(["-n", name, "link", "set", dev, "up"]) }
            } catch {
                close(); throw error
            }
        }

        func close() {
            guard !closed else { return }
            closed = true
            _ = try? run(LiveLab.ip!, ["netns", "del", name])
        }

        deinit { close() }

        /// Replays a capture into `zwb`; returns the packets tcpreplay reports as sent.
        func replay(_ file: String, topSpeed: Bool, limit: Int? = nil) throws -> Int {
            var args = ["netns", "exec", name, LiveLab.tcpreplay!, "-i", "zwb"]
            if topSpeed { args.append("--topspeed") }
            if let limit { args.append("--limit=\(limit)") }
            args.append(file)
            let (status, out, err) = try run(LiveLab.ip!, args, timeout: 300)
            guard status == 0 else { throw LabError("tcpreplay failed: \(out) \(err)") }
            guard let r = (out + err).firstMatch(of: /Actual: (\d+) packets/), let n = Int(r.1) else { throw LabError("tcpreplay said: \(out)") }
            return n
        }

        /// Starts `zonewatch live -i zwa ARGS` in the namespace.
        func startLive(_ args: [String], folder: String) throws -> LiveProcess {
            try LiveProcess(["netns", "exec", name, zonewatchBinary!, "live", "-i", "zwa"] + args, folder: folder)
        }
    }
}

struct LabError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// A running `zonewatch live` (started through `ip netns exec`, which execs it in place: same PID).
final class LiveProcess {
    let process = Process()
    let stdoutPath: String
    let stderrPath: String

    init(_ arguments: [String], folder: String) throws {
        stdoutPath = folder + "/live.stdout"; stderrPath = folder + "/live.stderr"
        FileManager.default.createFile(atPath: stdoutPath, contents: nil)
        FileManager.default.createFile(atPath: stderrPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: LiveLab.ip!)
        process.arguments = arguments
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: stdoutPath))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrPath))
        try process.run()
    }

    deinit { if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() } }

    var pid: Int32 { process.processIdentifier }
    var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }
    var stdout: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }

    /// Waits (at most `timeout` s) until stderr contains `text` or the process ends; true if found.
    @discardableResult
    func waitForStderr(_ text: String, timeout: Double = 20) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if stderr.contains(text) { return true }
            if !process.isRunning { return stderr.contains(text) }
            usleep(20_000)
        }
        return false
    }

    /// Waits until capture runs (after the privilege drop).
    func waitUntilCapturing() throws {
        guard waitForStderr("zonewatch: capturing on") else { throw LabError("zonewatch live did not start: \(stderr)") }
    }

    func signal(_ s: Int32) { kill(pid, s) }

    /// SIGTERM, then waits (bounded) for the exit status.
    func stop(timeout: Double = 60) -> Int32 {
        signal(SIGTERM)
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { kill(pid, SIGKILL); process.waitUntilExit(); return -9 }
        return process.terminationStatus
    }
}

// MARK: - Comparing records

/// The fields that depend on when packets were captured (live timestamps differ from the file's), and the
/// frame numbers (`timestamps and frame numbers aside`).
let timeFields: Set<String> = ["@timestamp", "frame", "start", "end", "duration", "first_frame", "request_frame", "response_frame",
                               "response_time", "duration_us", "first_seen", "last_seen"]

/// A JSON-lines file with time and frame fields removed, each line re-serialised with sorted keys, sorted.
func normalisedLines(_ path: String) throws -> [String] {
    let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    var out: [String] = []
    for line in text.split(separator: "\n") {
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8))
        let data = try JSONSerialization.data(withJSONObject: strip(object), options: [.sortedKeys])
        out.append(String(decoding: data, as: UTF8.self))
    }
    return out.sorted()
}

func strip(_ value: Any) -> Any {
    if let o = value as? [String: Any] {
        var r: [String: Any] = [:]
        for (k, v) in o where !timeFields.contains(k) { r[k] = strip(v) }
        return r
    }
    if let a = value as? [Any] { return a.map(strip) }
    return value
}

/// Lines of a file, sorted (records of several workers are equal up to line order).
func sortedLines(_ path: String) -> [String] {
    ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init).sorted()
}

/// The last JSON object of a JSON-lines file.
func lastRecord(_ path: String) throws -> [String: Any] {
    let text = try String(contentsOfFile: path, encoding: .utf8)
    guard let line = text.split(separator: "\n").last else { throw LabError("\(path) is empty") }
    return try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
}

/// A number at a JSON path (`a.b.c`).
func number(_ o: [String: Any], _ path: String) -> Int? {
    var cur: Any = o
    for k in path.split(separator: ".") {
        guard let d = cur as? [String: Any], let v = d[String(k)] else { return nil }
        cur = v
    }
    return (cur as? NSNumber)?.intValue
}

/// A Prometheus sample's value (`name` or `name{labels}`) from a metrics file.
func metric(_ text: String, _ sample: String) -> Double? {
    for line in text.split(separator: "\n") where line.hasPrefix(sample + " ") {
        return Double(line.dropFirst(sample.count + 1))
    }
    return nil
}

/// A deterministic capture from the project's generator, cached in the temporary folder under a name that
/// includes a hash of the generator (so a changed generator makes a new file, and runs share the old one).
func generatedCapture(profile: String, packets: Int, flows: Int, extra: [String] = []) throws -> String {
    let gen = repositoryRoot.appendingPathComponent("scripts/gen/pcapgen.py").path
    var hash: UInt64 = 0xCBF2_9CE4_8422_2325
    for b in (try? Data(contentsOf: URL(fileURLWithPath: gen))) ?? Data() { hash = (hash ^ UInt64(b)) &* 0x100_0000_01B3 }
    let variant = extra.joined().filter { $0.isLetter || $0.isNumber }
    let path = NSTemporaryDirectory() + "zw-appl-gen-\(profile)\(variant.isEmpty ? "" : "-" + variant)-\(packets)p-\(flows)f-s7-\(String(hash, radix: 16)).pcap"
    if FileManager.default.fileExists(atPath: path) { return path }
    // A temporary name of this call's own: tests run in parallel in one process, and two of them asking for the same
    // capture at once both wrote `.tmp.PID`, so the second rename found its file gone ("rename: No such file or
    // directory", seen in a clean clone's first run).
    let temporary = path + ".tmp.\(getpid()).\(UUID().uuidString)"
    let (status, _, err) = try run("/usr/bin/env", ["python3", gen, "--profile", profile, "--packets", String(packets), "--flows", String(flows),
                                                    "--seed", "7", "-q", "-o", temporary] + extra, timeout: 600)
    guard status == 0 else { throw LabError("pcapgen: \(err)") }
    // rename(2) replaces atomically: another test or test process making the same file does no harm.
    guard rename(temporary, path) == 0 else { throw LabError("rename: \(String(cString: strerror(errno)))") }
    chmod(path, 0o644)
    return path
}
