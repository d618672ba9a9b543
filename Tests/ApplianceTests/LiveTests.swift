import Foundation
import Testing

/// `zonewatch live` end to end, inside network namespaces the tests create (root, `ip`, `tcpreplay`; skipped
/// with a note otherwise). Serialized: they share two cores with everything else, and the drop test wants them.
@Suite(.serialized, .enabled(if: LiveLab.available))
struct LiveTests {
    let plant = fixture("demo/plant.pcap")
    let policy = fixture("demo/policy.yaml")

    /// `zonewatch replay FILE --policy P --out DIR` for comparison.
    func replay(_ file: String, policy: String, into dir: String, extra: [String] = []) throws {
        let (status, _, err) = try run(zonewatchBinary!, ["replay", file, "--policy", policy, "--out", dir, "--quiet"] + extra)
        #expect(status == 0, "\(err)")
    }

    // MARK: - Privileges

    /// Started as root with `--user nobody`: after start-up every thread runs as nobody/nogroup with no
    /// supplementary groups, empty capability sets (effective, permitted, inheritable, ambient, bounding) and
    /// `no_new_privs`, before the first packet; settings come from a config file.
    @Test(arguments: [1, 2])
    func privilegesAreDroppedAfterOpeningTheCapture(workers: Int) throws {
        let ns = try LiveLab.Namespace()
        defer { ns.close() }
        let dir = try openScratchFolder("priv-\(workers)")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let config = dir + "/zonewatch.yaml"
        try "user: nobody\nworkers: \(workers)\nstats_interval: 0\nout: \(dir)/out\n".write(toFile: config, atomically: true, encoding: .utf8)
        let live = try ns.startLive(["--config", config], folder: dir)
        try live.waitUntilCapturing()
        let tasks = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(live.pid)/task")
        #expect(tasks.count == (workers == 1 ? 1 : 2 + workers), "threads: \(tasks)")
        for t in tasks {
            let status = try String(contentsOfFile: "/proc/\(live.pid)/task/\(t)/status", encoding: .utf8)
            var fields: [String: String] = [:]
            for line in status.split(separator: "\n") {
                let parts = line.split(separator: ":", maxSplits: 1)
                if parts.count == 2 { fields[String(parts[0])] = parts[1].trimmingCharacters(in: .whitespaces) }
            }
            #expect(fields["Uid"]?.split(separator: "\t") == ["65534", "65534", "65534", "65534"], "task \(t): \(fields["Uid"] ?? "")")
            #expect(fields["Gid"]?.split(separator: "\t").allSatisfy { $0 == fields["Gid"]!.split(separator: "\t")[0] } == true)
            #expect(fields["Gid"]?.hasPrefix("0") == false)
            #expect(fields["Groups"] == fields["Gid"]?.split(separator: "\t").first.map(String.init))
            for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
                #expect(fields[cap] == "0000000000000000", "task \(t): \(cap) \(fields[cap] ?? "")")
            }
            #expect(fields["NoNewPrivs"] == "1")
        }
        #expect(live.stderr.contains("running as uid 65534"))
        #expect(live.stop() == 0)
        // The files were created by the unprivileged user.
        var st = stat()
        #expect(stat(dir + "/out/flows.jsonl", &st) == 0 && st.st_uid == 65534)
    }

    @Test func refusesToStayRootWithoutAUserOrAllowRoot() throws {
        let ns = try LiveLab.Namespace()
        defer { ns.close() }
        let dir = try openScratchFolder("root")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let live = try ns.startLive(["--stats-interval", "0"], folder: dir)
        let deadline = Date().addingTimeInterval(20)
        while live.process.isRunning && Date() < deadline { usleep(20_000) }
        #expect(!live.process.isRunning)
        #expect(live.process.terminationStatus == 1)
        #expect(live.stderr.contains("still running as root: set --user"), "\(live.stderr)")
        let allowed = try ns.startLive(["--allow-root", "--stats-interval", "0"], folder: dir)
        try allowed.waitUntilCapturing()
        let status = try String(contentsOfFile: "/proc/\(allowed.pid)/status", encoding: .utf8)
        #expect(status.contains("CapEff:\t0000000000000000"))
        #expect(allowed.stop() == 0)
    }

    // MARK: - Same alerts live and offline

    /// The demo plant replayed into the veth pair at its original pace (one worker) and at tcpreplay's top
    /// speed (two workers), then 802.1Q-tagged (VLAN 7) at its pace with one worker and two: alerts and every
    /// protocol, flow and anomaly record equal `zonewatch replay` on the file, timestamps and frame numbers aside
    /// (the tagged runs' flow records all carry `vlan.id` 7).
    @Test(arguments: [(1, false, false), (2, true, false), (1, false, true), (2, false, true)])
    func liveRecordsEqualReplay(workers: Int, topSpeed: Bool, tagged: Bool) throws {
        let ns = try LiveLab.Namespace()
        defer { ns.close() }
        let dir = try openScratchFolder("equal-\(workers)\(tagged ? "-tagged" : "")")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // A SPAN port on a trunk delivers 802.1Q-tagged frames: the kernel takes the tag off into the packet's metadata
        // and libpcap puts it back (checked by hand only before the twenty-ninth session).
        let capture = tagged ? try taggedCopy(of: plant, vlan: 7, into: dir) : plant
        try replay(capture, policy: policy, into: dir + "/replay")
        let live = try ns.startLive(["--user", "nobody", "--policy", policy, "--out", dir + "/live", "--workers", String(workers)], folder: dir)
        try live.waitUntilCapturing()
        let sent = try ns.replay(capture, topSpeed: topSpeed)
        #expect(sent == 114)
        usleep(500_000)
        #expect(live.stop() == 0)
        #expect(live.stderr.contains("zonewatch: packets: 114 "), "\(live.stderr)")
        for name in ["alerts", "modbus", "dnp3", "s7comm", "flows", "anomalies"] {
            let offline = try normalisedLines("\(dir)/replay/\(name).jsonl")
            let online = try normalisedLines("\(dir)/live/\(name).jsonl")
            #expect(online == offline, "\(name).jsonl differs live (\(online.count) lines) and offline (\(offline.count))")
        }
        let flows = try normalisedLines("\(dir)/live/flows.jsonl")
        #expect(flows.count == 6 && flows.allSatisfy { $0.contains(#""vlan":{"id":7}"#) == tagged }, "\(flows)")
        #expect(try normalisedLines("\(dir)/live/alerts.jsonl").count == 10)
    }

    /// A copy of an Ethernet capture with an 802.1Q tag (`vlan`) inserted in every frame, at the packets' times.
    func taggedCopy(of file: String, vlan: UInt16, into dir: String) throws -> String {
        let tagged = try capturedPackets(file).map { time, _, f in (time, Array(f[0..<12]) + [0x81, 0x00, UInt8(vlan >> 8), UInt8(vlan & 0xFF)] + f[12...]) }
        let path = dir + "/tagged.pcap"
        try Data(pcapFile(timed: tagged)).write(to: URL(fileURLWithPath: path))
        return path
    }

    // MARK: - Loss is visible

    /// At tcpreplay's top speed into a deliberately small kernel buffer (one worker) or small worker rings (two
    /// workers): packets sent − packets analysed equals the loss zonewatch reports (kernel + interface + queue
    /// drops), and the last stats record, the metrics file and the summary all carry the same numbers.
    @Test(arguments: [(1, ["--buffer-size", "256KiB"]), (2, ["--worker-queue", "1MiB"])])
    func reportedDropsEqualWhatWasLost(workers: Int, extra: [String]) throws {
        let capture = try generatedCapture(profile: "mixed", packets: 150_000, flows: 3000)
        let ns = try LiveLab.Namespace()
        defer { ns.close() }
        let dir = try openScratchFolder("drops-\(workers)")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let metrics = dir + "/zonewatch.prom"
        let live = try ns.startLive(["--user", "nobody", "--out", dir + "/out", "--workers", String(workers), "--stats-interval", "1",
                                     "--metrics-file", metrics, "--drop-alert-threshold", "0.0001"] + extra, folder: dir)
        try live.waitUntilCapturing()
        let sent = try ns.replay(capture, topSpeed: true)
        // Every packet has reached the capture socket (read or dropped) once ps_recv counts them all.
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            let text = (try? String(contentsOfFile: metrics, encoding: .utf8)) ?? ""
            if metric(text, "zonewatch_capture_received_total{interface=\"zwa\"}") == Double(sent) { break }
            usleep(200_000)
        }
        #expect(live.stop() == 0)
        let err = live.stderr
        let seen = Int(err.firstMatch(of: #/zonewatch: packets: (\d+) /#)?.1 ?? "") ?? -1
        let last = try lastRecord(dir + "/out/stats.jsonl")
        #expect((last["event"] as? [String: Any])?["reason"] as? String == "shutdown")
        let lost = number(last, "zonewatch.capture.lost") ?? -1
        let kernel = number(last, "zonewatch.capture.kernel_drops") ?? -1
        let interface = number(last, "zonewatch.capture.interface_drops") ?? -1
        let queue = number(last, "zonewatch.capture.queue_drops") ?? -1
        print("drops (\(workers) worker(s)): sent \(sent), analysed \(seen), kernel \(kernel), interface \(interface), queue \(queue)")
        #expect(sent == 150_000)
        #expect(sent - seen == lost, "sent \(sent) − seen \(seen) ≠ reported lost \(lost)")
        #expect(lost == kernel + interface + queue)
        #expect(number(last, "zonewatch.engine.packets") == seen)
        #expect(number(last, "zonewatch.capture.packets_read") == seen + queue)
        let text = try String(contentsOfFile: metrics, encoding: .utf8)
        #expect(metric(text, "zonewatch_lost_packets_total") == Double(lost))
        #expect(metric(text, "zonewatch_kernel_drops_total{interface=\"zwa\"}") == Double(kernel))
        #expect(metric(text, "zonewatch_queue_drops_total") == Double(queue))
        #expect(metric(text, "zonewatch_packets_total") == Double(seen))
        #expect(err.contains("lost \(lost) (kernel \(kernel), interface \(interface), worker queues \(queue))"))
        if lost > 0 {
            // The loss crossed the (tiny) threshold: a capture alert says so.
            let alerts = sortedLines(dir + "/out/alerts.jsonl").filter { $0.contains("\"ZW-CAPTURE-001\"") }
            #expect(!alerts.isEmpty && alerts.allSatisfy { $0.contains("\"category\":\"capture\"") })
        }
        // Periodic records were written while capturing, not only at shutdown.
        #expect(sortedLines(dir + "/out/stats.jsonl").count >= 2)
    }

    // MARK: - Signals

    /// SIGHUP with a broken policy: the errors are logged with their position and the policy in force stays
    /// (the demo's alerts follow); SIGHUP with a good policy: it replaces the old one (a policy that ignores
    /// unknown hosts gives way to the demo policy, whose alerts then follow exactly).
    @Test(arguments: [1, 2])
    func sighupReloadsAGoodPolicyAndKeepsTheOldOneOnErrors(workers: Int) throws {
        let dir = try openScratchFolder("hup-\(workers)")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let demo = try String(contentsOfFile: policy, encoding: .utf8)
        let quiet = demo.replacingOccurrences(of: "unknown_hosts: alert", with: "unknown_hosts: ignore")
        #expect(quiet != demo)
        try replay(plant, policy: policy, into: dir + "/replay-demo")
        let path = dir + "/policy.yaml"

        // Broken reload: old (demo) policy kept.
        do {
            try demo.write(toFile: path, atomically: true, encoding: .utf8)
            chmod(path, 0o644)
            let ns = try LiveLab.Namespace()
            defer { ns.close() }
            let live = try ns.startLive(["--user", "nobody", "--policy", path, "--out", dir + "/broken", "--workers", String(workers)], folder: dir)
            try live.waitUntilCapturing()
            try (demo + "\nconduits: [oops\n").write(toFile: path, atomically: true, encoding: .utf8)
            chmod(path, 0o644)
            live.signal(SIGHUP)
            #expect(live.waitForStderr("the policy in force is kept"), "\(live.stderr)")
            #expect(live.stderr.contains("zonewatch: reload rejected: \(path):"))
            _ = try ns.replay(plant, topSpeed: true)
            usleep(500_000)
            #expect(live.stop() == 0)
            #expect(try normalisedLines(dir + "/broken/alerts.jsonl") == normalisedLines(dir + "/replay-demo/alerts.jsonl"))
            let stats = try lastRecord(dir + "/broken/stats.jsonl")
            #expect(number(stats, "zonewatch.policy.reload_failures") == 1 && number(stats, "zonewatch.policy.reloads") == 0)
        }
        // Good reload: the new policy applies to what follows.
        do {
            try quiet.write(toFile: path, atomically: true, encoding: .utf8)
            chmod(path, 0o644)
            try replay(plant, policy: path, into: dir + "/replay-quiet")
            let ns = try LiveLab.Namespace()
            defer { ns.close() }
            let live = try ns.startLive(["--user", "nobody", "--policy", path, "--out", dir + "/good", "--workers", String(workers)], folder: dir)
            try live.waitUntilCapturing()
            try demo.write(toFile: path, atomically: true, encoding: .utf8)
            live.signal(SIGHUP)
            #expect(live.waitForStderr("policy reloaded from \(path)"), "\(live.stderr)")
            _ = try ns.replay(plant, topSpeed: true)
            usleep(500_000)
            #expect(live.stop() == 0)
            let got = try normalisedLines(dir + "/good/alerts.jsonl")
            #expect(try got == normalisedLines(dir + "/replay-demo/alerts.jsonl"))
            #expect(try got != normalisedLines(dir + "/replay-quiet/alerts.jsonl"))
            let stats = try lastRecord(dir + "/good/stats.jsonl")
            #expect(number(stats, "zonewatch.policy.reloads") == 1)
        }
    }

    /// SIGUSR1 writes a stats record at once; SIGTERM ends the flows still open (`end_of_input`), flushes every
    /// output (log folder, SIEM file output, standard output), writes the shutdown stats record and exits 0.
    @Test(arguments: [1, 2])
    func sigtermFlushesEveryOutput(workers: Int) throws {
        let ns = try LiveLab.Namespace()
        defer { ns.close() }
        let dir = try openScratchFolder("term-\(workers)")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let live = try ns.startLive(["--user", "nobody", "--policy", policy, "--out", dir + "/out", "--workers", String(workers),
                                     "--output", "file://\(dir)/siem?format=ecs&records=all", "--alerts", "-", "--stats-interval", "0"],
                                    folder: dir)
        try live.waitUntilCapturing()
        // The first 60 packets: some flows are still open when the appliance stops.
        #expect(try ns.replay(plant, topSpeed: true, limit: 60) == 60)
        usleep(300_000)
        live.signal(SIGUSR1)
        let deadline = Date().addingTimeInterval(10)
        while sortedLines(dir + "/out/stats.jsonl").isEmpty && Date() < deadline { usleep(20_000) }
        #expect(try lastRecord(dir + "/out/stats.jsonl")["event"].flatMap { ($0 as? [String: Any])?["reason"] as? String } == "signal")
        #expect(live.stop() == 0)
        let flows = sortedLines(dir + "/out/flows.jsonl")
        #expect(flows.contains { $0.contains("\"reason\":\"end_of_input\"") }, "\(flows)")
        let alerts = sortedLines(dir + "/out/alerts.jsonl")
        #expect(!alerts.isEmpty)
        #expect(sortedLines(dir + "/siem/alerts.jsonl") == alerts)
        #expect(sortedLines(dir + "/siem/flows.jsonl") == flows)
        #expect(live.stdout.split(separator: "\n").map(String.init).sorted() == alerts)
        #expect(try (lastRecord(dir + "/out/stats.jsonl")["event"] as? [String: Any])?["reason"] as? String == "shutdown")
        #expect(try (lastRecord(dir + "/siem/stats.jsonl")["event"] as? [String: Any])?["reason"] as? String == "shutdown")
        #expect(live.stderr.contains("output file://\(dir)/siem?format=ecs&records=all: sent"))
    }

    /// Two interfaces at once (the second veth pair's capture end is `zwc`): every packet of both is analysed.
    @Test func capturesSeveralInterfaces() throws {
        let ns = try LiveLab.Namespace()
        defer { ns.close() }
        let ip = LiveLab.ip!
        #expect(try run(ip, ["-n", ns.name, "link", "add", "zwc", "type", "veth", "peer", "name", "zwd"]).0 == 0)
        for d in ["zwc", "zwd"] { _ = try run(ip, ["-n", ns.name, "link", "set", d, "up"]) }
        let dir = try openScratchFolder("two")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let live = try LiveProcess(["netns", "exec", ns.name, zonewatchBinary!, "live", "-i", "zwa", "-i", "zwc", "--user", "nobody",
                                    "--out", dir + "/out", "--stats-interval", "0"], folder: dir)
        try live.waitUntilCapturing()
        #expect(live.stderr.contains("capturing on zwa (ethernet), zwc (ethernet)"))
        _ = try ns.replay(plant, topSpeed: true)
        let (status, _, err) = try run(ip, ["netns", "exec", ns.name, LiveLab.tcpreplay!, "-i", "zwd", "--topspeed", fixture("mixed/demo-mixed.pcap")])
        #expect(status == 0, "\(err)")
        usleep(500_000)
        #expect(live.stop() == 0)
        #expect(live.stderr.contains("zonewatch: packets: 314 "), "\(live.stderr)")
        #expect(live.stderr.contains("capture zwa: received 114 ") && live.stderr.contains("capture zwc: received 200 "))
    }
}

/// Command-line handling of `live` that needs no capture.
@Suite(.enabled(if: binaryAvailable))
struct LiveCommandLineTests {
    @Test func configErrorsExitTwoWithTheirPositions() throws {
        let path = try temporaryFile(Array("interfaces: [eth1]\nworkers: many\nbogus: 1\n".utf8), "bad.yaml")
        let (status, _, err) = try run(zonewatchBinary!, ["live", "--config", path])
        #expect(status == 2)
        #expect(err.contains("\(path):2:10: workers must be a whole number"))
        #expect(err.contains("\(path):3:1: unknown setting \"bogus\""))
    }

    @Test(arguments: [
        (["live"], "live needs -i IFACE"),
        (["live", "-i", "lo", "--group", "x"], "--group needs --user"),
        (["live", "-i", "lo", "--drop-alert-threshold", "5"], "--drop-alert-threshold needs a fraction"),
        (["live", "-i", "lo", "--buffer-size", "huge"], "--buffer-size needs a size"),
        (["live", "-i", "lo", "--workers", "0"], "--workers must be between 1 and 64"),
        (["live", "-i", "lo", "--promisc", "--no-promisc"], "contradict"),
        (["live", "-i", "lo", "extra.pcap"], "live takes no file arguments"),
        (["replay", "x.pcap", "--workers", "65"], "--workers must be between 1 and 64"),
        (["dissect", "x.pcap", "--workers", "2"], "--workers is an option of replay and live"),
    ])
    func usageErrors(arguments: [String], message: String) throws {
        let (status, _, err) = try run(zonewatchBinary!, arguments)
        #expect(status == 2)
        #expect(err.contains(message), "\(err)")
    }

    @Test func helpNamesTheApplianceOptions() throws {
        let (status, out, _) = try run(zonewatchBinary!, ["live", "--help"])
        #expect(status == 0)
        for option in ["--config", "--user", "--allow-root", "--stats-interval", "--metrics-file", "--drop-alert-threshold", "--workers", "SIGHUP"] {
            #expect(out.contains(option))
        }
    }
}

/// `zonewatch replay --workers N` against one worker on the command line: byte-identical files after sorting.
@Suite(.enabled(if: binaryAvailable))
struct ReplayWorkersTests {
    /// The hostile mix includes Modbus requests sent as IPv4 fragments (in order, reversed, a tiny first fragment, a
    /// fragment twice, a conflicting copy, a lost last fragment): every worker reassembles them, the one whose flow the
    /// datagram is dissects it. Also with the reader thread feeding two workers (fragments copied through the rings).
    @Test(arguments: ["mixed", "hostile"])
    func generatedCapturesGiveTheSameFilesAsOneWorker(profile: String) throws {
        let capture = try generatedCapture(profile: profile, packets: 120_000, flows: 4000)
        let dir = try openScratchFolder("workers-\(profile)")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let policy = fixture("demo/policy.yaml")
        var summary = ""
        for (name, workers, environment) in [("w1", "1", ""), ("w2", "2", ""), ("w3", "3", ""), ("reader", "2", "ZONEWATCH_WORKER_READER=1")] {
            let (status, _, err) = try run("/usr/bin/env", (environment.isEmpty ? [] : [environment])
                + [zonewatchBinary!, "replay", capture, "--policy", policy, "--out", "\(dir)/\(name)", "--workers", workers])
            #expect(status == 0, "\(err)")
            if name == "w1" { summary = err }
        }
        for name in ["alerts", "modbus", "dnp3", "s7comm", "flows", "anomalies"] {
            let one = sortedLines("\(dir)/w1/\(name).jsonl")
            for other in ["w2", "w3", "reader"] {
                #expect(sortedLines("\(dir)/\(other)/\(name).jsonl") == one, "\(profile) \(name).jsonl: \(other) differs from one worker")
            }
        }
        #expect(sortedLines("\(dir)/w1/flows.jsonl").count > 1000)
        if profile == "hostile" {
            let reassembled = Int(summary.firstMatch(of: #/datagrams reassembled: (\d+)/#)?.1 ?? "") ?? 0
            #expect(reassembled > 100, "\(summary)")
            #expect(sortedLines("\(dir)/w1/anomalies.jsonl").contains { $0.contains("\"fragment_overlap_conflict\"") })
        }
    }

    /// Captures of 802.1Q-tagged frames and Linux cooked captures (SLL, SLL2): 2 workers, each reading the file and
    /// the reader thread, write what one does (order aside).
    @Test(arguments: [["--vlan", "7"], ["--link", "sll"], ["--link", "sll2"]])
    func taggedAndCookedCapturesGiveTheSameFilesAsOneWorker(shape: [String]) throws {
        let capture = try generatedCapture(profile: "mixed", packets: 60_000, flows: 3000, extra: shape)
        let dir = try openScratchFolder("workers-\(shape.joined())")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let policy = fixture("demo/policy.yaml")
        for (name, workers, environment) in [("w1", "1", ""), ("w2", "2", ""), ("reader", "2", "ZONEWATCH_WORKER_READER=1")] {
            let (status, _, err) = try run("/usr/bin/env", (environment.isEmpty ? [] : [environment])
                + [zonewatchBinary!, "replay", capture, "--policy", policy, "--out", "\(dir)/\(name)", "--workers", workers])
            #expect(status == 0, "\(err)")
        }
        for name in ["alerts", "modbus", "dnp3", "s7comm", "flows", "anomalies"] {
            let one = sortedLines("\(dir)/w1/\(name).jsonl")
            #expect(sortedLines("\(dir)/w2/\(name).jsonl") == one, "\(shape) \(name).jsonl: 2 workers")
            #expect(sortedLines("\(dir)/reader/\(name).jsonl") == one, "\(shape) \(name).jsonl: 2 workers behind the reader")
        }
        #expect(sortedLines("\(dir)/w1/flows.jsonl").count > 1000)
    }

    /// A capture fed through a pipe gives the file's records. Named by a path that is a pipe (`/dev/stdin` fed by
    /// `cat`) with 2 workers, it is read once, by the reader thread (workers opening it again would split the stream
    /// between them: the capture is larger than a read buffer, so they would): the same lines, order aside. As standard
    /// input (`-`) to one engine, read ahead in its own buffer: the same lines in the same order.
    @Test(arguments: [("/dev/stdin", 2), ("-", 1)])
    func aPipeGivesTheFilesRecords(path: String, workers: Int) throws {
        let dir = try openScratchFolder("pipe-\(workers)")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let capture = try generatedCapture(profile: "mixed", packets: 120_000, flows: 4000), policy = fixture("demo/policy.yaml")
        let (status, _, err) = try run(zonewatchBinary!, ["replay", capture, "--policy", policy, "--out", "\(dir)/file"])
        #expect(status == 0, "\(err)")
        let (piped, _, pipedErr) = try run("/bin/sh", ["-c", "cat '\(capture)' | '\(zonewatchBinary!)' replay \(path) --policy '\(policy)' --out '\(dir)/pipe' --workers \(workers)"])
        #expect(piped == 0, "\(pipedErr)")
        for name in ["alerts", "modbus", "dnp3", "s7comm", "flows", "anomalies"] {
            if workers > 1 {
                #expect(sortedLines("\(dir)/pipe/\(name).jsonl") == sortedLines("\(dir)/file/\(name).jsonl"), "\(name).jsonl")
            } else {
                let file = try String(contentsOfFile: "\(dir)/file/\(name).jsonl", encoding: .utf8)
                #expect(try String(contentsOfFile: "\(dir)/pipe/\(name).jsonl", encoding: .utf8) == file, "\(name).jsonl")
            }
        }
        #expect(!sortedLines("\(dir)/file/flows.jsonl").isEmpty)
    }

    /// The summary's alert count is the alerts raised, with 2 workers as with one, whether or not alert lines are
    /// written anywhere (2 workers counted the lines written: a summary-only replay, or a live run sending alerts
    /// only to a SIEM, reported 0 alerts).
    @Test func theSummaryCountsAlertsWithOrWithoutAlertLines() throws {
        let dir = try openScratchFolder("workers-alert-count")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func summaryAlerts(_ extra: [String]) throws -> String {
            let (status, _, err) = try run(zonewatchBinary!, ["replay", fixture("demo/plant.pcap"), "--policy", fixture("demo/policy.yaml")] + extra)
            #expect(status == 0, "\(err)")
            return err.split(separator: "\n").first { $0.contains("alerts:") }.map { String($0.split(separator: " ").last!) } ?? "none"
        }
        let written = try summaryAlerts(["--out", "\(dir)/w1"])
        #expect(written == String(sortedLines("\(dir)/w1/alerts.jsonl").count) && written != "0")
        for extra in [["--workers", "1"], ["--workers", "2"], ["--workers", "2", "--out", "\(dir)/w2"]] {
            #expect(try summaryAlerts(extra) == written, "\(extra)")
        }
    }

    /// A replay waits for a slow SIEM output instead of dropping: through an output whose queue holds 64 records,
    /// every record and alert arrives (the lines `--out` writes, order aside), none counted as dropped, with one worker
    /// and with two. (A replay's output dropped whatever its full queue refused: with the default queue, 17,156 of
    /// the 2.5M plant's records in one run, 0 in the next.)
    @Test(arguments: [1, 2])
    func aReplayWaitsForASlowOutputAndLosesNothing(workers: Int) throws {
        let capture = try generatedCapture(profile: "mixed", packets: 60_000, flows: 3000)
        let dir = try openScratchFolder("slow-output-\(workers)")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let url = "file://\(dir)/siem?format=ecs&queue=64"
        let (status, _, err) = try run(zonewatchBinary!, ["replay", capture, "--policy", fixture("demo/policy.yaml"), "--out", "\(dir)/out",
                                                          "--output", url, "--workers", String(workers)])
        #expect(status == 0, "\(err)")
        #expect(err.contains("output \(url): sent") && err.contains("dropped 0"), "\(err)")
        for name in ["alerts", "modbus", "dnp3", "s7comm", "flows", "anomalies"] {
            let delivered = sortedLines("\(dir)/siem/\(name).jsonl"), written = sortedLines("\(dir)/out/\(name).jsonl")
            let same = delivered == written
            #expect(same, "\(name).jsonl: \(delivered.count) lines delivered, \(written.count) written")
        }
        #expect(sortedLines("\(dir)/out/flows.jsonl").count > 1000)
    }

    @Test func fixturesGiveTheSameFilesAsOneWorker() throws {
        let dir = try openScratchFolder("workers-fixtures")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let files = fixtureCaptures().filter { !$0.contains("/edge/") }
        for n in [1, 2] {
            let (status, _, err) = try run(zonewatchBinary!, ["replay"] + files + ["--policy", fixture("demo/policy.yaml"), "--out", "\(dir)/w\(n)", "--workers", String(n)])
            #expect(status == 0, "\(err)")
        }
        for name in ["alerts", "modbus", "dnp3", "s7comm", "flows", "anomalies"] {
            #expect(sortedLines("\(dir)/w2/\(name).jsonl") == sortedLines("\(dir)/w1/\(name).jsonl"), "\(name)")
        }
    }
}
