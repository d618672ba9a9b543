import Testing
import Wire
import Records
import Capture
import Engine
import Flows
@testable import Policy
@testable import Detection

/// Feeds an engine's flow events, operations and anomalies to a detector: the same calls `zonewatch replay`
/// makes, so the demo capture can be checked end to end inside the test process.
final class DetectorObserver: EngineObserver {
    let detector: Detector
    var alerts: [Alert] = []
    init(_ d: Detector) { detector = d }
    func flowStarted(_ flow: FlowContext, frame: UInt64, time: PacketTime) {
        detector.flowStarted(flow, frame: frame, time: time, alerts: &alerts)
    }
    func flowIdentified(_ flow: FlowContext, appProtocol: AppProtocol?, frame: UInt64, time: PacketTime) {
        detector.flowIdentified(flow, appProtocol: appProtocol, frame: frame, time: time, alerts: &alerts)
    }
    func operation(_ op: Operation, flow: FlowContext) { detector.operation(op, flow: flow, alerts: &alerts) }
    func anomaly(_ a: Anomaly, flow: FlowContext?) { detector.anomaly(a, flow: flow, alerts: &alerts) }
    func flowEnded(_ flow: FlowContext, reason: FlowEndReason) { detector.flowEnded(flow) }
    func tick(time: PacketTime) { detector.tick(time: time, alerts: &alerts) }
    func finish() { detector.finish(alerts: &alerts) }
}

/// Replays `capture` through the engine and a detector with `policyPath`; returns the alerts as ECS JSON lines.
func replayAlerts(capture: String, policyPath: String?, configuration: EngineConfiguration = .init(),
                  alertCommunityIDs: Bool = true) throws -> String {
    var policy: CompiledPolicy?
    if let policyPath {
        let (p, errors) = checkPolicyFile(path: policyPath)
        guard errors.isEmpty else { throw ReplayError.badPolicy(errors.map(\.description)) }
        policy = p
    }
    let detector = Detector(policy: policy)
    detector.alertCommunityIDs = alertCommunityIDs
    let observer = DetectorObserver(detector)
    let engine = Engine(configuration: configuration)
    engine.observer = observer
    let source = try PacketSource.openFile(capture)
    loop: while true {
        switch try source.next() {
        case .packet(let header, let bytes):
            engine.process(bytes, linkType: source.linkType.rawValue, time: header.time, wireLength: header.wireLength)
        case .timeout: continue
        case .end: break loop
        }
    }
    engine.finish()
    var out = "", w = JSONWriter()
    for a in observer.alerts { w.reset(); a.writeECS(to: &w); out += String(decoding: w.bytes, as: UTF8.self) + "\n" }
    return out
}

enum ReplayError: Error { case badPolicy([String]) }

@Suite struct DemoReplayTests {
    let capture = repositoryRoot + "/Fixtures/demo/plant.pcap"
    let policy = repositoryRoot + "/Fixtures/demo/policy.yaml"

    @Test func demoRaisesExactlyTheExpectedAlerts() throws {
        let expected = try #require(readTextFile(repositoryRoot + "/Fixtures/demo/expected-alerts.jsonl"))
        let actual = try replayAlerts(capture: capture, policyPath: policy)
        let e = expected.split(separator: "\n"), a = actual.split(separator: "\n")
        #expect(a.count == e.count, "alert count")
        for (i, (x, y)) in zip(e, a).enumerated() { #expect(x == y, "alert \(i + 1) differs") }
    }

    @Test func demoTellsTheWholeStory() throws {
        let actual = try replayAlerts(capture: capture, policyPath: policy)
        // read-only conduit, outside-range write, denied cross-zone flow, unknown host, program download,
        // PLC stop, DNP3 cold restart: each with its conduit or zones and technique.
        let story: [(String, String)] = [
            ("\"ZW-CONDUIT-002\"", "\"conduit\":\"hmi-to-cell-a\""),
            ("\"ZW-CONDUIT-004\"", "outside the allowed 0-99"),
            ("\"ZW-ZONE-001\"", "\"source_zone\":\"enterprise\",\"destination_zone\":\"cell-a\""),
            ("\"ZW-ASSET-001\"", "127.0.9.9"),
            ("\"ZW-ICS-005\"", "\"T0843\""),
            ("\"ZW-ICS-001\"", "\"T0858\""),
            ("\"ZW-ICS-003\"", "COLD_RESTART"),
        ]
        let lines = actual.split(separator: "\n")
        for (rule, detail) in story {
            #expect(lines.contains { $0.contains(rule) && $0.contains(detail) }, "\(rule) with \(detail)")
        }
    }

    /// An engine that writes no PDU or transaction records leaves each flow's Community ID for an alert to compute
    /// (`FlowContext.communityIDPending`); one that does sets it in every context. The alerts are the same either way.
    @Test func alertsCarryTheSameCommunityIDsWhetherRecordsAreWrittenOrNot() throws {
        var withRecords = EngineConfiguration()
        withRecords.transactionRecords = true; withRecords.pduRecords = true
        let lazy = try replayAlerts(capture: capture, policyPath: policy)
        #expect(lazy == (try replayAlerts(capture: capture, policyPath: policy, configuration: withRecords)))
        let lines = lazy.split(separator: "\n")
        #expect(!lines.isEmpty && lines.allSatisfy { $0.contains("\"community_id\":\"1:") })
    }

    /// A run that only counts alerts turns their Community IDs off (`Detector.alertCommunityIDs`): the same alerts,
    /// without the ID.
    @Test func alertsOnlyCountedCarryNoCommunityID() throws {
        let with = try replayAlerts(capture: capture, policyPath: policy).split(separator: "\n")
        let without = try replayAlerts(capture: capture, policyPath: policy, alertCommunityIDs: false).split(separator: "\n")
        #expect(with.count == without.count && !without.isEmpty)
        #expect(without.allSatisfy { !$0.contains("community_id") })
        let stripped = with.map { String($0.replacing(#/,"community_id":"[^"]*"/#, with: "")) }
        #expect(stripped == without.map(String.init))
    }

    @Test func replayIsByteIdentical() throws {
        #expect(try replayAlerts(capture: capture, policyPath: policy) == replayAlerts(capture: capture, policyPath: policy))
    }

    @Test func withoutAPolicyOnlyICSOperationsRemain() throws {
        let actual = try replayAlerts(capture: capture, policyPath: nil)
        let rules = actual.split(separator: "\n").compactMap { line -> Substring? in
            guard let r = line.range(of: "\"rule\":{\"id\":\"") else { return nil }
            return line[r.upperBound...].prefix { $0 != "\"" }
        }
        #expect(rules == ["ZW-ICS-005", "ZW-ICS-001", "ZW-ICS-003"])
    }
}
