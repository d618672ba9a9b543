import Foundation
import Testing
import Wire
import Records
import Output

@Suite struct DeliveryTests {
    /// With the receiver down and a small spool, deliver() stays fast, the spool fills to its bound,
    /// and the rest is dropped and counted: nothing disappears without a count.
    @Test func fullSpoolDropsAndCountsInsteadOfBlocking() throws {
        let tmp = TempDir("fullspool")
        let port = freePort()          // nobody listens
        let spool = tmp.path + "/spool"
        let outputs = try OutputSet(specs: [try OutputSpec.parse(
            "syslog+tcp://127.0.0.1:\(port)?format=cef&spool=\(spool)&spool_size=64k")])
        let total = 20_000
        var slowest = 0.0
        let start = Date()
        for n in 1...total {
            let t0 = Date()
            outputs.deliver(Sample.numbered(n))
            slowest = max(slowest, Date().timeIntervalSince(t0))
        }
        let elapsed = Date().timeIntervalSince(start)
        // "Does not block", not a speed target: a deliver() that waited for the output thread would wait out its
        // reconnect backoff (0.05 s doubling to 5 s) on a dead receiver; 0.5 s leaves room for a descheduled thread
        // on a busy 2-core machine (0.05 s failed there now and then).
        #expect(slowest < 0.5, "one deliver() took \(slowest) s")
        #expect(elapsed < 5, "\(total) deliver() calls took \(elapsed) s")

        let r = outputs.shutdown(deadline: 0.5)[0]
        #expect(r.finished)
        #expect(r.accepted + r.droppedQueueFull == UInt64(total))
        #expect(r.sent == 0)
        #expect(r.inSpool > 0 && r.droppedSpoolFull > 0, "\(r.summary)")
        #expect(r.accepted + r.recovered == r.sent + r.inSpool + r.dropped - r.droppedQueueFull + r.pending, "\(r.summary)")
        #expect(r.connectFailures >= 1 && r.lastError != nil)
        // The spool on disk holds exactly the bound's worth of records, no more.
        let files = try FileManager.default.contentsOfDirectory(atPath: spool).filter { $0.hasSuffix(".seg") }
        let size = try files.reduce(0) { $0 + ((try FileManager.default.attributesOfItem(atPath: spool + "/" + $1)[.size] as? Int) ?? 0) }
        #expect(size <= 64 << 10 && size > 60 << 10, "spool holds \(size) bytes")
        #expect(r.summary.contains("dropped"))
    }

    /// One JSON file per record kind, rotated by size, with a bounded number of rotated files.
    @Test func fileOutputRotatesBySizeAndKeepsABoundedNumber() throws {
        let tmp = TempDir("files")
        let outputs = try OutputSet(specs: [try OutputSpec.parse("file://\(tmp.path)?format=ecs&rotate_size=16k&keep=2")])
        for n in 1...400 { outputs.deliver(Sample.numbered(n)) }
        let flow = bytes(#"{"@timestamp":"2024-01-01T00:00:00.000000Z","flow":{"n":1}}"#)
        for _ in 0..<10 { outputs.deliver(record: .flow, line: flow[...]) }
        outputs.deliver(record: .pdu, line: flow[...])              // not a file kind
        let r = outputs.shutdown(deadline: 5)[0]
        #expect(r.sent == 410 && r.dropped == 0, "\(r.summary)")

        let names = Set(try FileManager.default.contentsOfDirectory(atPath: tmp.path))
        #expect(names == ["alerts.jsonl", "alerts.jsonl.1", "alerts.jsonl.2", "flows.jsonl"])
        var lines: [String] = []
        for name in ["alerts.jsonl.2", "alerts.jsonl.1", "alerts.jsonl"] {
            let data = try #require(FileManager.default.contents(atPath: tmp.path + "/" + name))
            #expect(data.count <= 16 << 10 + 300 << 10)
            lines += String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
        }
        // The newest records survive, in order, each valid JSON.
        let frames = try lines.map { line -> Int in
            let obj = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            return try #require(obj["frame"] as? Int)
        }
        #expect(!frames.isEmpty && frames.last == 400 && frames == Array((401 - frames.count)...400))
        let flows = try String(contentsOfFile: tmp.path + "/flows.jsonl", encoding: .utf8)
        #expect(flows == String(repeating: text(flow) + "\n", count: 10))
    }

    @Test func fileOutputRotatesByTime() throws {
        let tmp = TempDir("timerot")
        let outputs = try OutputSet(specs: [try OutputSpec.parse("file://\(tmp.path)?format=cef&rotate_interval=1s&records=alert")])
        outputs.deliver(Sample.numbered(1))
        usleep(2_200_000)
        outputs.deliver(Sample.numbered(2))
        _ = outputs.shutdown(deadline: 5)
        let names = Set(try FileManager.default.contentsOfDirectory(atPath: tmp.path))
        #expect(names == ["alerts.cef", "alerts.cef.1"])
        let old = try String(contentsOfFile: tmp.path + "/alerts.cef.1", encoding: .utf8)
        let new = try String(contentsOfFile: tmp.path + "/alerts.cef", encoding: .utf8)
        #expect(try parseCEF(String(old.dropLast()))["msg"]?.hasPrefix("alert #1 ") == true)
        #expect(try parseCEF(String(new.dropLast()))["msg"]?.hasPrefix("alert #2 ") == true)
    }

    @Test func filtersBySeverityAndKindPerOutput() throws {
        let tmp = TempDir("filters")
        let outputs = try OutputSet(specs: [
            try OutputSpec.parse("file://\(tmp.path)/high?min_severity=7&records=alert"),
            try OutputSpec.parse("file://\(tmp.path)/all?format=leef"),
        ])
        #expect(outputs.wants(.flow) && !outputs.wants(.pdu))
        for s in 0...10 { outputs.deliver(Sample.numbered(s, severity: s)) }
        outputs.deliver(record: .modbus, line: bytes(#"{"m":1}"#)[...])
        let reports = outputs.shutdown(deadline: 5)
        #expect(reports.map(\.sent) == [4, 12])
        let high = try String(contentsOfFile: tmp.path + "/high/alerts.jsonl", encoding: .utf8)
        #expect(high.split(separator: "\n").count == 4)
        #expect(!FileManager.default.fileExists(atPath: tmp.path + "/high/modbus.jsonl"))
        let all = try String(contentsOfFile: tmp.path + "/all/alerts.leef", encoding: .utf8)
        #expect(try all.split(separator: "\n").map { try parseLEEF(String($0))["sev"] } == (0...10).map { String(max(1, $0)) })
        #expect(try String(contentsOfFile: tmp.path + "/all/modbus.jsonl", encoding: .utf8) == "{\"m\":1}\n")
    }

    /// One message per datagram, cut to max_size without splitting a UTF-8 character.
    @Test func udpSendsOneDatagramPerMessageAndTruncates() throws {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 } }
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let port = UInt16(bigEndian: addr.sin_port)

        let outputs = try OutputSet(specs: [try OutputSpec.parse("syslog+udp://127.0.0.1:\(port)?format=cef&max_size=1000&hostname=zw-test&procid=4242")])
        var long = Sample.numbered(1)
        long.message = String(repeating: "日本", count: 200)
        outputs.deliver(long)
        outputs.deliver(Sample.numbered(2))
        var got: [[UInt8]] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        for _ in 0..<2 {
            let n = recv(fd, &buf, buf.count, 0)
            if n > 0 { got.append(Array(buf[0..<n])) }
        }
        let r = outputs.shutdown(deadline: 2)[0]
        #expect(r.sent == 2 && r.truncated == 1)
        #expect(got.count == 2)
        guard got.count == 2 else { return }
        #expect(got[0].count <= 1000 && got[0].count > 990)
        #expect(String(validating: got[0], as: UTF8.self) != nil)
        var e = MessageEncoder(format: .cef, syslog: testSyslog)
        e.encode(Sample.numbered(2))
        #expect(got[1] == e.message)
    }

    @Test func everyOutputGetsItsOwnCopy() throws {
        let tmp = TempDir("multi")
        let outputs = try OutputSet(specs: [
            try OutputSpec.parse("file://\(tmp.path)/a?format=cef"),
            try OutputSpec.parse("file://\(tmp.path)/b?format=ecs"),
        ])
        outputs.deliver(Sample.hostile())
        let reports = outputs.shutdown(deadline: 5)
        #expect(reports.map(\.sent) == [1, 1])
        #expect(outputs.shutdown(deadline: 5) == reports)           // idempotent
        outputs.deliver(Sample.hostile())                           // after shutdown: refused, not lost silently
        #expect(outputs.statsSnapshot().map(\.droppedQueueFull) == [1, 1])
        let cef = try String(contentsOfFile: tmp.path + "/a/alerts.cef", encoding: .utf8)
        #expect(try parseCEF(String(cef.dropLast()))["msg"] == Hostile.message)
    }

    @Test func setupErrorsAreReported() throws {
        let tmp = TempDir("setup")
        let spool = tmp.path + "/spool"
        let first = try OutputSet(specs: [try OutputSpec.parse("syslog+tcp://127.0.0.1:1?spool=\(spool)")])
        #expect(throws: OutputSetupError.self) {
            _ = try OutputSet(specs: [try OutputSpec.parse("syslog+tcp://127.0.0.1:2?spool=\(spool)")])
        }
        _ = first.shutdown(deadline: 0)
        #expect(throws: OutputSetupError.self) {
            _ = try OutputSet(specs: [try OutputSpec.parse("syslog+tls://127.0.0.1:2?spool=\(spool)&ca=\(tmp.path)/missing.pem")])
        }
    }

    /// A quick run of the benchmark the lead wires into scripts/bench (the ≥ 100k/s target is
    /// checked there, on a release build).
    @Test func benchmarkDeliversEverything() {
        let b = benchmarkTCPDeliveryDetailed(alerts: 20_000, port: 0)
        #expect(b.received == 20_000, "\(b.report.summary)")
        #expect(b.report.sent == 20_000 && b.report.dropped == 0)
        #expect(b.alertsPerSecond > 0)
        print("note: OutputTests: debug-build TCP delivery \(Int(b.alertsPerSecond)) alerts/s, deliver() \(Int(b.deliverNanoseconds)) ns")
    }
}
