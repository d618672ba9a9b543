import Testing
import Foundation
@testable import Appliance

/// The configuration file: every key, types, errors with positions, and the command line winning.
@Suite struct ConfigTests {
    static let full = """
    interfaces: [eth1, eth2]
    filter: "not port 22"
    snaplen: 9000
    buffer_size: 32MiB
    promiscuous: false
    policy: /etc/zonewatch/policy.yaml
    outputs:
      - syslog+tcp://siem.example:601?format=cef
      - file:///var/log/zonewatch/siem?format=ecs
    out: /var/log/zonewatch
    flows: {max: 100000, tcp_timeout: 900, udp_timeout: 60, ignore_vlans: true}
    user: zonewatch
    group: zonewatch
    allow_root: no
    stats_interval: 30
    metrics_file: /var/lib/node_exporter/textfile/zonewatch.prom
    drop_alert_threshold: 0.5%
    workers: 2
    worker_queue: 8MiB
    checksums: on
    """

    @Test func everyKeyIsRead() throws {
        let c = try ApplianceConfig.parse(Self.full, file: "z.yaml").get()
        #expect(c.interfaces == ["eth1", "eth2"])
        #expect(c.filter == "not port 22")
        #expect(c.snaplen == 9000)
        #expect(c.bufferSize == 32 << 20)
        #expect(c.promiscuous == false)
        #expect(c.policy == "/etc/zonewatch/policy.yaml")
        #expect(c.outputs == ["syslog+tcp://siem.example:601?format=cef", "file:///var/log/zonewatch/siem?format=ecs"])
        #expect(c.out == "/var/log/zonewatch")
        #expect(c.maxFlows == 100_000 && c.tcpTimeout == 900 && c.udpTimeout == 60 && c.ignoreVLANs == true)
        #expect(c.user == "zonewatch" && c.group == "zonewatch")
        #expect(c.allowRoot == false)
        #expect(c.statsInterval == 30)
        #expect(c.metricsFile == "/var/lib/node_exporter/textfile/zonewatch.prom")
        #expect(c.dropAlertThreshold == 0.005)
        #expect(c.workers == 2)
        #expect(c.workerQueue == 8 << 20)
        #expect(c.checksums == "on")
    }

    /// The shipped example (contrib/zonewatch.yaml), which users copy, is a valid configuration.
    @Test func theShippedExampleIsValid() throws {
        let c = try ApplianceConfig.load(path: repositoryRoot.appendingPathComponent("contrib/zonewatch.yaml").path).get()
        #expect(c.interfaces == ["eth1"] && c.ignoreVLANs == false && c.checksums == "auto" && c.maxFlows == 262_144)
    }

    @Test func anEmptyFileIsAnEmptyConfiguration() throws {
        #expect(try ApplianceConfig.parse("", file: "e.yaml").get() == ApplianceConfig())
        #expect(try ApplianceConfig.parse("# only a comment\n", file: "e.yaml").get() == ApplianceConfig())
    }

    @Test func aSingleInterfaceMayBeAScalar() throws {
        #expect(try ApplianceConfig.parse("interface: eth3\n", file: "c").get().interfaces == ["eth3"])
        #expect(try ApplianceConfig.parse("interfaces: eth4\n", file: "c").get().interfaces == ["eth4"])
    }

    /// Each mistake is reported with its line and column, and nothing falls back to a default silently.
    @Test(arguments: [
        ("snaplen: 9000\nworkres: 2\n", "c.yaml:2:1: unknown setting \"workres\""),
        ("snaplen: lots\n", "c.yaml:1:10: snaplen must be a whole number, not \"lots\""),
        ("snaplen: 10\n", "c.yaml:1:10: snaplen must be between 64 and 262144, not 10"),
        ("buffer_size: 12 parsecs\n", "c.yaml:1:14: buffer_size must be a size in bytes"),
        ("promiscuous: maybe\n", "c.yaml:1:14: promiscuous must be true or false, not \"maybe\""),
        ("drop_alert_threshold: 2\n", "c.yaml:1:23: drop_alert_threshold must be a fraction between 0 and 1"),
        ("workers: 0\n", "c.yaml:1:10: workers must be between 1 and 64, not 0"),
        ("flows: {max: 10, idle: 3}\n", "c.yaml:1:18: unknown flows setting \"idle\""),
        ("flows: 5\n", "c.yaml:1:8: flows must be a mapping"),
        ("outputs: {a: b}\n", "c.yaml:1:10: outputs must be a list, not a mapping"),
        ("user: zonewatch\nuser: other\n", "c.yaml:2:1: \"user\" is set twice"),
        ("- eth1\n", "c.yaml:1:1: the configuration must be a mapping of settings, not a list"),
        ("interfaces: [eth1\n", "c.yaml:2:1: YAML:"),
        ("policy: ~\n", "c.yaml:1:9: policy must be a text value, not null"),
        ("checksums: sometimes\n", "c.yaml:1:12: checksums must be auto, on or off, not sometimes"),
    ])
    func mistakesAreReportedWithTheirPosition(text: String, expected: String) {
        switch ApplianceConfig.parse(text, file: "c.yaml") {
        case .success(let c): Issue.record("accepted \(text.debugDescription) as \(c)")
        case .failure(let e):
            #expect(e.errors.contains { $0.description.hasPrefix(expected) }, "\(e.description)")
        }
    }

    @Test func everyErrorIsReportedNotOnlyTheFirst() {
        guard case .failure(let e) = ApplianceConfig.parse("snaplen: x\nworkers: 99\nbogus: 1\n", file: "c") else {
            Issue.record("accepted"); return
        }
        #expect(e.errors.map(\.line) == [1, 2, 3])
    }

    @Test func aMissingFileIsAnError() {
        guard case .failure(let e) = ApplianceConfig.load(path: "/nonexistent/zonewatch.yaml") else { Issue.record("loaded"); return }
        #expect(e.description.contains("/nonexistent/zonewatch.yaml") && e.description.contains("cannot read"))
    }

    @Test(arguments: [("67108864", 67_108_864), ("64MiB", 64 << 20), ("64M", 64 << 20), ("512 KiB", 512 << 10), ("1GiB", 1 << 30),
                      ("2k", 2048), ("1_000", 1000), ("7B", 7)])
    func sizes(text: String, value: Int) { #expect(ApplianceConfig.parseSize(text) == value) }

    @Test(arguments: ["", "MiB", "12 parsecs", "-5", "1.5MiB", "99999999999999999999"])
    func badSizes(text: String) { #expect(ApplianceConfig.parseSize(text) == nil) }

    @Test(arguments: [("0.001", 0.001), ("0.1%", 0.001), ("1", 1.0), ("0", 0.0), ("100%", 1.0)])
    func fractions(text: String, value: Double) { #expect(abs(ApplianceConfig.parseFraction(text)! - value) < 1e-12) }

    @Test(arguments: ["1.5", "-0.1", "101%", "half", ""])
    func badFractions(text: String) { #expect(ApplianceConfig.parseFraction(text) == nil) }

    /// Shared options become arguments placed before the user's, so the command line's value comes last and wins;
    /// a command-line `--output` replaces the file's list instead of adding to it.
    @Test func commandLineWins() throws {
        let c = try ApplianceConfig.parse(Self.full, file: "z.yaml").get()
        let args = c.runArguments(commandLine: ["--policy", "/tmp/other.yaml"])
        #expect(args.starts(with: ["--policy", "/etc/zonewatch/policy.yaml", "--out", "/var/log/zonewatch"]))
        #expect(args.filter { $0 == "--output" }.count == 2)
        #expect(args.contains("--workers") && args.contains("--max-flows") && args.contains("--tcp-timeout"))
        #expect(args.firstIndex(of: "--checksums").map { args[$0 + 1] } == "on" && args.contains("--ignore-vlans"))
        #expect(!c.runArguments(commandLine: ["--output", "-"]).contains("--output"))
        #expect(!c.runArguments(commandLine: ["--output=-"]).contains("--output"))
    }
}
