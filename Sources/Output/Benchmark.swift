import Glibc
import Wire
import Records

/// Result of `benchmarkTCPDeliveryDetailed`.
public struct DeliveryBenchmark: Sendable {
    /// Alerts handed to `deliver`.
    public var alerts: Int
    /// Alerts the sink received (whole octet-counted frames).
    public var received: Int
    /// Seconds from the first `deliver` to the last frame received.
    public var seconds: Double
    /// Mean wall-clock time of one `deliver` call on the caller's thread, in nanoseconds.
    public var deliverNanoseconds: Double
    /// Mean CPU time of one `deliver` call on the caller's thread (what capture pays), nanoseconds.
    public var deliverCPUNanoseconds: Double = 0
    /// CPU time of the whole process (caller, output thread, sink, kernel) per alert, nanoseconds:
    /// the cost that decides throughput on an idle machine, whatever else shares the cores.
    public var processCPUNanosecondsPerAlert: Double = 0
    /// The output's report after shutdown.
    public var report: OutputReport
    /// Received alerts per second.
    public var alertsPerSecond: Double { seconds > 0 ? Double(received) / seconds : 0 }
}

/// Sends `alerts` CEF alerts over syslog TCP (octet counting) to a sink thread listening on
/// 127.0.0.1:`port` (0: any free port) and returns alerts per second, measured from the first
/// `deliver` to the last byte the sink read. Bounded to 60 s.
public func benchmarkTCPDelivery(alerts: Int, port: UInt16) -> Double {
    benchmarkTCPDeliveryDetailed(alerts: alerts, port: port).alertsPerSecond
}

/// `benchmarkTCPDelivery` with the details (caller cost per alert, the output's report).
public func benchmarkTCPDeliveryDetailed(alerts: Int, port: UInt16, format: OutputFormat = .cef) -> DeliveryBenchmark {
    let sink = FrameSink(port: port, expect: alerts)
    let spool = temporaryDirectory() + "zw-bench-spool-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    defer { removeTree(spool) }
    var none = DeliveryBenchmark(alerts: alerts, received: 0, seconds: 0, deliverNanoseconds: 0, report: OutputReport(url: ""))
    guard sink.port != 0,
          let spec = try? OutputSpec.parse("syslog+tcp://127.0.0.1:\(sink.port)?format=\(format)&spool=\(spool)&queue=262144"),
          let outputs = try? OutputSet(specs: [spec]) else { return none }
    // Wait for the connection so that the measurement is delivery, not the first connect.
    let connectEnd = monotonicSeconds() + 5
    while !outputs.statsSnapshot()[0].connected && monotonicSeconds() < connectEnd { usleep(1000) }

    // A realistic alert: every field set, ~400 bytes of CEF.
    var alert = Alert(time: PacketTime(seconds: 1_704_067_200, microseconds: 0), frame: 0, severity: 8,
                      action: "modbus-write-outside-conduit", ruleID: "ZW-CONDUIT-002",
                      ruleName: "Modbus write outside conduit", category: .conduit,
                      message: "FC16 Write Multiple Registers from site_ops to plc-01 not allowed by conduit area_to_cell_01")
    alert.source = Endpoint(ip: IPAddress(v4: 0x0A02_0114), port: 49152)
    alert.destination = Endpoint(ip: IPAddress(v4: 0x0A0A_010A), port: 502)
    alert.transport = .tcp; alert.networkProtocol = "modbus"
    alert.sourceZone = "enterprise"; alert.destinationZone = "cell_01"; alert.conduit = "area_to_cell_01"
    alert.techniques = [AttackTechnique(id: "T0855", name: "Unauthorized Command Message")]
    alert.function = "Write Multiple Registers"; alert.access = "write"; alert.unitID = 1

    let cpuStart = processCPUSeconds()
    let threadStart = threadCPUSeconds()
    let start = monotonicSeconds()
    var deliverTime = 0.0
    for i in 0..<alerts {
        alert.frame = UInt64(i + 1)
        alert.time = PacketTime(seconds: 1_704_067_200, microseconds: Int32(i % 1_000_000))
        let t0 = monotonicSeconds()
        outputs.deliver(alert)
        deliverTime += monotonicSeconds() - t0
        // Pace only if the queue is far ahead, as a capture loop would be (bounded by the queue size).
        if i & 0xFFFF == 0xFFFF, monotonicSeconds() - start > 60 { break }
    }
    let deliverCPU = threadCPUSeconds() - threadStart
    let received = sink.wait(until: start + 60)
    let end = sink.lastFrameTime
    let processCPU = processCPUSeconds() - cpuStart
    let report = outputs.shutdown(deadline: 5)[0]
    sink.close()
    none.received = received
    none.seconds = max(0, end - start)
    none.deliverNanoseconds = alerts > 0 ? deliverTime / Double(alerts) * 1e9 : 0
    none.deliverCPUNanoseconds = alerts > 0 ? deliverCPU / Double(alerts) * 1e9 : 0
    none.processCPUNanosecondsPerAlert = received > 0 ? processCPU / Double(received) * 1e9 : 0
    none.report = report
    return none
}

/// `$TMPDIR` with a trailing slash, or `/tmp/` (what Foundation's `NSTemporaryDirectory` gives).
func temporaryDirectory() -> String {
    guard let p = getenv("TMPDIR"), p.pointee != 0 else { return "/tmp/" }
    let path = String(cString: p)
    return path.hasSuffix("/") ? path : path + "/"
}

/// Deletes `path` and, for a folder, everything in it; errors are ignored (best-effort clean-up).
func removeTree(_ path: String) {
    if unlink(path) == 0 || errno == ENOENT { return }
    if let dir = opendir(path) {
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { removeTree(path + "/" + name) }
        }
        closedir(dir)
    }
    rmdir(path)
}

/// User + system CPU seconds of this process so far.
func processCPUSeconds() -> Double {
    var u = rusage()
    getrusage(RUSAGE_SELF.rawValue, &u)
    return Double(u.ru_utime.tv_sec) + Double(u.ru_utime.tv_usec) / 1e6 + Double(u.ru_stime.tv_sec) + Double(u.ru_stime.tv_usec) / 1e6
}

/// CPU seconds of the calling thread so far.
func threadCPUSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// A minimal syslog TCP receiver for the benchmark: accepts one connection at a time and counts
/// octet-counted frames.
final class FrameSink: @unchecked Sendable {
    private(set) var port: UInt16 = 0
    private let listener: Int32
    private let expect: Int
    private let state = WaitCondition()
    private var frames = 0
    private(set) var lastFrameTime = 0.0
    private var closed = false

    init(port requested: UInt16, expect: Int) {
        self.expect = expect
        listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var one: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        addr.sin_port = requested.bigEndian
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                bind(listener, sa, len) == 0 && listen(listener, 8) == 0 && getsockname(listener, sa, &len) == 0
            }
        }
        guard ok else { return }
        port = UInt16(bigEndian: addr.sin_port)
        startThread(name: "zw-bench-sink") { [self] in run() }
    }

    private func run() {
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var need = -1            // bytes left of the current message body, -1 while reading its length
        var length = 0
        while true {
            let conn = accept(listener, nil, nil)
            if conn < 0 { return }
            while true {
                let n = buffer.withUnsafeMutableBytes { recv(conn, $0.baseAddress, $0.count, 0) }
                if n <= 0 { break }
                var completed = 0
                var i = 0
                while i < n {
                    if need < 0 {
                        let b = buffer[i]
                        if b == 0x20 { need = length; length = 0 } else { length = length * 10 + Int(b &- 0x30) }
                        i += 1
                        if need == 0 { completed += 1; need = -1 }
                    } else {
                        let take = min(need, n - i)
                        need -= take; i += take
                        if need == 0 { completed += 1; need = -1 }
                    }
                }
                if completed > 0 {
                    state.lock()
                    frames += completed
                    lastFrameTime = monotonicSeconds()
                    if frames >= expect { state.broadcast() }
                    state.unlock()
                }
            }
            Glibc.close(conn)
        }
    }

    /// Waits until `expect` frames arrived or `deadline` (monotonic); returns the frame count.
    func wait(until deadline: Double) -> Int {
        state.lock()
        defer { state.unlock() }
        while frames < expect {
            let left = deadline - monotonicSeconds()
            if left <= 0 { break }
            state.wait(seconds: min(left, 0.1))
        }
        return frames
    }

    func close() {
        shutdown(listener, Int32(SHUT_RDWR))
        Glibc.close(listener)
    }
}
