import Testing
import Wire
import Records
@testable import Policy
@testable import Detection

let plantPolicy = """
version: 1
zones:
  - {name: enterprise, security_level: 1, networks: [10.0.0.0/16]}
  - {name: scada, security_level: 2, networks: [10.10.20.0/24]}
  - {name: cell, security_level: 3, networks: [10.10.30.0/24]}
assets:
  - {name: hmi, address: 10.10.20.10, zone: scada}
  - {name: ews, address: 10.10.20.50, zone: scada}
  - {name: plc1, address: 10.10.30.5, zone: cell}
conduits:
  - name: scada-to-cell
    from: scada
    to: cell
    initiators: [hmi, ews]
    responders: [10.10.30.0/28]
    allow:
      - {protocol: modbus, access: [read, write], unit_ids: ["1-10"], addresses: ["0-999"]}
      - {protocol: s7comm, access: [read, diagnostic, session, program_download, lifecycle]}
      - {protocol: dnp3, access: [read, time, session], dnp3_addresses: ["10"]}
      - {protocol: tcp, ports: [22]}
    notify: [program_download, lifecycle]
  - name: enterprise-to-scada
    from: enterprise
    to: scada
    allow: [{protocol: tcp, ports: [443]}]
intra_zone: monitor
default: deny
unknown_hosts: alert
"""

func compiled(_ text: String = plantPolicy) -> CompiledPolicy {
    let (p, errors) = loadPolicy(text: text, file: "test.yaml")
    precondition(errors.isEmpty, "\(errors)")
    return p!
}

func flow(_ a: String, _ b: String, sport: UInt16 = 50000, dport: UInt16 = 502, transport: Transport = .tcp,
          midstream: Bool = false) -> FlowContext {
    FlowContext(initiator: Endpoint(ip: IPAddress(a)!, port: sport), responder: Endpoint(ip: IPAddress(b)!, port: dport),
                transport: transport, communityID: "1:test", midstream: midstream)
}

func op(_ p: AppProtocol, _ access: AccessClass, fc: UInt16, _ name: StaticString, unit: Int32 = -1, address: Int64 = -1,
        quantity: Int64 = 0, sub: Int32 = -1, area: Int16 = -1, db: Int32 = -1, broadcast: Bool = false,
        sender: FlowSide = .initiator, frame: UInt64 = 10, seconds: Int64 = 1_000) -> Operation {
    var o = Operation(appProtocol: p, access: access, functionCode: fc, function: name)
    o.unitID = unit; o.address = address; o.quantity = quantity; o.subfunction = sub; o.area = area; o.dbNumber = db
    o.broadcast = broadcast; o.sender = sender; o.frame = frame; o.time = PacketTime(seconds: seconds, microseconds: 0)
    return o
}

let t0 = PacketTime(seconds: 1_000, microseconds: 0)

/// Runs one flow through a detector and returns its alerts (finish included).
func run(_ d: Detector, _ f: FlowContext, app: AppProtocol? = .modbus, ops: [Operation] = [], finish: Bool = true) -> [Alert] {
    var alerts: [Alert] = []
    d.flowStarted(f, frame: 1, time: t0, alerts: &alerts)
    d.flowIdentified(f, appProtocol: app, frame: 2, time: t0, alerts: &alerts)
    for o in ops { d.operation(o, flow: f, alerts: &alerts) }
    if finish { d.finish(alerts: &alerts) }
    return alerts
}

func ecs(_ alerts: [Alert]) -> String {
    var w = JSONWriter()
    var out = ""
    for a in alerts { w.reset(); a.writeECS(to: &w); out += String(decoding: w.bytes, as: UTF8.self) + "\n" }
    return out
}

@Suite struct ZoneBoundaryTests {
    @Test func crossZoneFlowWithoutConduit() throws {
        let alerts = run(Detector(policy: compiled()), flow("10.0.1.1", "10.10.30.5"))
        let a = try #require(alerts.first)
        #expect(alerts.map(\.ruleID) == ["ZW-ZONE-001"])
        #expect(a.category == .zoneBoundary)
        #expect(a.sourceZone == "enterprise" && a.destinationZone == "cell")
        #expect(a.iec62443 == ["SR 5.1", "SR 5.2"])
        #expect(a.techniques.map(\.id) == ["T0886"])
        #expect(a.securityLevel == 3)
        #expect(a.severity == 7)     // base 5 + SL3 adjustment 2
        #expect(a.frame == 1 && a.time == t0)
        #expect(a.source?.ip == IPAddress("10.0.1.1") && a.destination?.port == 502)
        #expect(a.communityID == "1:test")
    }

    /// Whole messages, as the string interpolations that built them before they were written piece by piece wrote them.
    @Test func flowAlertMessagesAreExact() {
        func messages(_ f: FlowContext, app: AppProtocol? = .modbus) -> [String] { run(Detector(policy: compiled()), f, app: app).map(\.message) }
        #expect(messages(flow("10.0.1.1", "10.10.30.5")) == ["flow from 10.0.1.1 to 10.10.30.5 (plc1) port 502: no conduit from zone 'enterprise' to zone 'cell' (default: deny)"])
        #expect(messages(flow("10.10.30.5", "10.10.20.10")) == ["flow from 10.10.30.5 (plc1) to 10.10.20.10 (hmi) port 502 runs against conduit 'scada-to-cell', which only allows zone 'scada' to initiate"])
        #expect(messages(flow("10.10.20.77", "10.10.30.5")) == ["10.10.20.77 may not initiate on conduit 'scada-to-cell' (not in its initiators); flow to 10.10.30.5 (plc1) port 502"])
        #expect(messages(flow("10.10.20.10", "10.10.30.100")) == ["10.10.30.100 is not a listed responder of conduit 'scada-to-cell'; flow from 10.10.20.10 (hmi) port 502"])
        #expect(messages(flow("192.168.7.7", "10.10.30.5")) == ["first sight of 192.168.7.7, which is in no zone, initiating a flow to 10.10.30.5 (plc1)",
                                                               "flow from 192.168.7.7 to 10.10.30.5 (plc1) port 502 between a zone and a host in no zone (default: deny)"])
        #expect(messages(flow("10.10.20.10", "10.10.30.5", dport: 23), app: nil) == ["tcp to port 23 from 10.10.20.10 (hmi) to 10.10.30.5 (plc1) is not allowed by conduit 'scada-to-cell' (allows modbus, s7comm, dnp3, tcp 22)"])
    }

    @Test func initiatorOnTheWrongSide() throws {
        let alerts = run(Detector(policy: compiled()), flow("10.10.30.5", "10.10.20.10"))
        #expect(alerts.map(\.ruleID) == ["ZW-ZONE-002"])
        #expect(alerts.first?.conduit == "scada-to-cell")
    }

    @Test func midstreamFlowIsTurnedRoundInsteadOfWrongSide() {
        let d = Detector(policy: compiled())
        let f = flow("10.10.30.5", "10.10.20.10", sport: 502, dport: 50000, midstream: true)
        let alerts = run(d, f, ops: [op(.modbus, .read, fc: 3, "Read Holding Registers", unit: 1, address: 0, quantity: 10, sender: .responder)])
        #expect(alerts.isEmpty, "\(alerts.map(\.message))")
        #expect(d.resolveFlow(f).reversed)
    }

    @Test func initiatorNotListed() {
        let alerts = run(Detector(policy: compiled()), flow("10.10.20.77", "10.10.30.5"))
        #expect(alerts.map(\.ruleID) == ["ZW-ZONE-003"])
        #expect(alerts.first?.conduit == "scada-to-cell")
    }

    @Test func responderNotListed() {
        let alerts = run(Detector(policy: compiled()), flow("10.10.20.10", "10.10.30.100"))
        #expect(alerts.map(\.ruleID) == ["ZW-ZONE-004"])
    }

    @Test func unknownHostIsReportedOnceAndItsFlowIsOutsideAnyConduit() {
        let d = Detector(policy: compiled())
        let first = run(d, flow("192.168.7.7", "10.10.30.5"), finish: false)
        #expect(first.map(\.ruleID) == ["ZW-ASSET-001", "ZW-ZONE-005"])
        #expect(first[0].category == .asset && first[0].iec62443 == ["SR 1.2", "SR 7.8"])
        #expect(first[0].destinationZone == "cell" && first[0].sourceZone == nil)
        let second = run(d, flow("192.168.7.7", "10.10.30.6", sport: 50001))
        #expect(second.map(\.ruleID) == ["ZW-ZONE-005"], "first sight only")
    }

    @Test func multicastIsNeitherUnknownNorCrossZone() {
        let alerts = run(Detector(policy: compiled()), flow("10.10.30.5", "224.0.0.251", dport: 5353, transport: .udp), app: nil)
        #expect(alerts.isEmpty)
    }

    @Test func defaultAllowAndUnknownIgnore() {
        let text = plantPolicy.replacingOccurrences("default: deny", "default: allow")
            .replacingOccurrences("unknown_hosts: alert", "unknown_hosts: ignore")
        let d = Detector(policy: compiled(text))
        #expect(run(d, flow("10.0.1.1", "10.10.30.5")).isEmpty)
        #expect(run(d, flow("192.168.7.7", "10.10.30.5")).isEmpty)
    }

    @Test func noPolicyMeansNoZoneAlerts() {
        let alerts = run(Detector(policy: nil), flow("10.0.1.1", "10.10.30.5"),
                         ops: [op(.modbus, .write, fc: 16, "Write Multiple Registers", unit: 1, address: 5000, quantity: 2)])
        #expect(alerts.isEmpty)
    }
}

@Suite struct ConduitContentTests {
    let f = flow("10.10.20.10", "10.10.30.5")

    @Test func readsAndWritesInsideTheRulesPass() {
        let alerts = run(Detector(policy: compiled()), f, ops: [
            op(.modbus, .read, fc: 3, "Read Holding Registers", unit: 1, address: 0, quantity: 100),
            op(.modbus, .write, fc: 16, "Write Multiple Registers", unit: 10, address: 990, quantity: 10),
        ])
        #expect(alerts.isEmpty, "\(alerts.map(\.message))")
    }

    @Test func writeOutsideTheAddressRange() throws {
        let alerts = run(Detector(policy: compiled()), f, ops: [
            op(.modbus, .read, fc: 3, "Read Holding Registers", unit: 1, address: 0, quantity: 10),
            op(.modbus, .write, fc: 16, "Write Multiple Registers", unit: 1, address: 995, quantity: 10),
        ])
        let a = try #require(alerts.first)
        #expect(alerts.map(\.ruleID) == ["ZW-CONDUIT-004"])
        #expect(a.conduit == "scada-to-cell" && a.sourceZone == "scada" && a.destinationZone == "cell")
        #expect(a.access == "write" && a.function == "Write Multiple Registers" && a.unitID == 1)
        #expect(a.techniques.map(\.id) == ["T1692.001"] && a.attackVersion == "v19")
        #expect(a.iec62443 == ["SR 2.1", "SR 5.2"])
        #expect(a.severity == 8)      // write tier 6 + SL3 adjustment 2
        #expect(a.message.contains("addresses 995-1004 are outside the allowed 0-999"), "\(a.message)")
    }

    /// Whole messages, as the string interpolations that built them before they were written piece by piece wrote them.
    @Test func operationAlertMessagesAreExact() {
        let write = run(Detector(policy: compiled()), f, ops: [op(.modbus, .write, fc: 16, "Write Multiple Registers", unit: 1, address: 995, quantity: 10)])
        #expect(write.map(\.message) == ["modbus Write Multiple Registers (write) unit 1 addresses 995-1004 from 10.10.20.10 to 10.10.30.5 violates conduit 'scada-to-cell': addresses 995-1004 are outside the allowed 0-999"])
        let unit = run(Detector(policy: compiled()), f, ops: [op(.modbus, .read, fc: 3, "Read Holding Registers", unit: 20, address: 0, quantity: 1)])
        #expect(unit.map(\.message) == ["modbus Read Holding Registers (read) unit 20 address 0 from 10.10.20.10 to 10.10.30.5 violates conduit 'scada-to-cell': unit id 20 is not allowed; allowed: 1-10"])
        let diag = run(Detector(policy: compiled()), f, ops: [op(.modbus, .diagnostic, fc: 17, "Report Server ID", unit: 1)])
        #expect(diag.map(\.message) == ["modbus Report Server ID (diagnostic) unit 1 from 10.10.20.10 to 10.10.30.5 violates conduit 'scada-to-cell': diagnostic (function 17) is not allowed; allowed: read, write"])
        let text = plantPolicy.replacingOccurrences("notify: [program_download, lifecycle]", "notify: [write]")
        let notify = run(Detector(policy: compiled(text)), f, ops: [op(.modbus, .write, fc: 6, "Write Single Register", unit: 1, address: 5, quantity: 1)])
        #expect(notify.map(\.message) == ["modbus Write Single Register (write) unit 1 address 5 from 10.10.20.10 to 10.10.30.5 permitted by conduit 'scada-to-cell' and reported (notify: write)"])
        let download = run(Detector(policy: compiled()), flow("10.10.20.50", "10.10.30.5", dport: 102), app: .s7comm,
                            ops: [op(.s7comm, .programDownload, fc: 0x1A, "Request download")])
        #expect(download.map(\.message) == ["Program download: s7comm Request download (program_download) from 10.10.20.50 to 10.10.30.5 (permitted by conduit 'scada-to-cell', reported as it is in its notify list)"])
        #expect((write + unit + diag + notify + download).allSatisfy { $0.messageText.isInline })
        #expect(write.first?.function == "Write Multiple Registers" && download.first?.access == "program_download")
    }

    @Test func unitOutsideTheList() {
        let alerts = run(Detector(policy: compiled()), f, ops: [op(.modbus, .read, fc: 3, "Read Holding Registers", unit: 20, address: 0, quantity: 1)])
        #expect(alerts.map(\.ruleID) == ["ZW-CONDUIT-003"])
        #expect(alerts.first?.techniques.map(\.id) == ["T0801"])
        #expect(alerts.first?.message.contains("unit id 20 is not allowed; allowed: 1-10") == true)
    }

    @Test func accessClassNotAllowed() {
        let alerts = run(Detector(policy: compiled()), f, ops: [op(.modbus, .diagnostic, fc: 17, "Report Server ID", unit: 1)])
        #expect(alerts.map(\.ruleID) == ["ZW-CONDUIT-002"])
        #expect(alerts.first?.techniques.map(\.id) == ["T0888"])
    }

    @Test func dnp3AddressAndControlChecked() {
        let d = Detector(policy: compiled())
        let g = flow("10.10.20.10", "10.10.30.5", dport: 20000)
        let alerts = run(d, g, app: .dnp3, ops: [
            op(.dnp3, .read, fc: 1, "READ", unit: 10),
            op(.dnp3, .read, fc: 1, "READ", unit: 11),
            op(.dnp3, .control, fc: 5, "DIRECT_OPERATE", unit: 10),
        ])
        #expect(alerts.map(\.ruleID) == ["ZW-CONDUIT-003", "ZW-CONDUIT-002"])
        #expect(alerts[0].dnp3Address == 11 && alerts[0].unitID == nil)
        #expect(alerts[1].techniques.map(\.id) == ["T1692.001"])
    }

    @Test func protocolNotAllowedIsReportedOncePerFlow() {
        let d = Detector(policy: compiled())
        let g = flow("10.10.20.10", "10.10.30.5", dport: 23)
        let alerts = run(d, g, app: nil)
        #expect(alerts.map(\.ruleID) == ["ZW-CONDUIT-001"])
        #expect(alerts.first?.message.contains("tcp to port 23") == true)
        #expect(alerts.first?.message.contains("allows modbus, s7comm, dnp3, tcp 22") == true, "\(alerts.first!.message)")
        #expect(run(d, flow("10.10.20.10", "10.10.30.5", dport: 22), app: nil).isEmpty)
        let plus = run(d, flow("10.10.20.10", "10.10.30.5", sport: 50002, dport: 102), app: .s7commPlus,
                       ops: [op(.s7commPlus, .write, fc: 0x542, "SetVariable")])
        #expect(plus.map(\.ruleID) == ["ZW-CONDUIT-001"], "ops on a denied protocol are not re-reported")
    }

    @Test func transportRuleCoversAFlowWithoutICSRules() {
        let d = Detector(policy: compiled())
        #expect(run(d, flow("10.0.1.1", "10.10.20.10", dport: 443), app: nil).isEmpty)
        let alerts = run(d, flow("10.0.1.1", "10.10.20.10", sport: 50001, dport: 502), app: .modbus)
        #expect(alerts.map(\.ruleID) == ["ZW-CONDUIT-001"])
    }

    @Test func permittedAndNotifiedOperationsAreReportedForAudit() throws {
        let d = Detector(policy: compiled())
        let g = flow("10.10.20.50", "10.10.30.5", dport: 102)
        let alerts = run(d, g, app: .s7comm, ops: [
            op(.s7comm, .read, fc: 0x04, "Read Var", area: 0x84, db: 1, frame: 10),
            op(.s7comm, .programDownload, fc: 0x1A, "Request download", frame: 11),
            op(.s7comm, .programDownload, fc: 0x1B, "Download block", sender: .responder, frame: 12),
            op(.s7comm, .programDownload, fc: 0x1C, "Download ended", sender: .responder, frame: 13),
            op(.s7comm, .lifecycle, fc: 0x29, "PLC Stop", frame: 14),
        ])
        #expect(alerts.map(\.ruleID) == ["ZW-ICS-005", "ZW-ICS-001", "ZW-ICS-005"])
        let dl = alerts[0]
        #expect(dl.conduit == "scada-to-cell" && dl.techniques.map(\.id) == ["T0843"])
        #expect(dl.message.contains("notify"))
        #expect(dl.source?.ip == IPAddress("10.10.20.50"))
        #expect(alerts[2].count == 2 && alerts[2].firstSeen != nil, "the PLC's download jobs fold into the download alert")
        #expect(alerts[1].techniques.map(\.id) == ["T0858"])
    }

    @Test func permittedWithoutNotifyIsSilentButCounted() {
        let text = plantPolicy.replacingOccurrences("    notify: [program_download, lifecycle]\n", "")
        let d = Detector(policy: compiled(text))
        let alerts = run(d, flow("10.10.20.50", "10.10.30.5", dport: 102), app: .s7comm,
                         ops: [op(.s7comm, .lifecycle, fc: 0x29, "PLC Stop")])
        #expect(alerts.isEmpty)
        #expect(d.counters.suppressedByConduit == 1)
    }

    @Test func notifyOfAClassWithoutAnICSRuleRaisesTheAuditRule() {
        let text = plantPolicy.replacingOccurrences("notify: [program_download, lifecycle]", "notify: [write]")
        let alerts = run(Detector(policy: compiled(text)), f,
                         ops: [op(.modbus, .write, fc: 6, "Write Single Register", unit: 1, address: 5, quantity: 1)])
        #expect(alerts.map(\.ruleID) == ["ZW-CONDUIT-005"])
        #expect(alerts.first?.severity == 4)
    }

    @Test func deniedDangerousOperationRaisesConduitAndICSAlerts() {
        let alerts = run(Detector(policy: compiled()), f, ops: [op(.modbus, .programDownload, fc: 126, "Program (584/984)", unit: 1)])
        #expect(alerts.map(\.ruleID) == ["ZW-CONDUIT-002", "ZW-ICS-005"])
        #expect(alerts[0].severity == 9)   // high tier 7 + SL3 adjustment 2
    }

    @Test func intraZoneEnforceUsesTheZoneRules() {
        let text = plantPolicy.replacingOccurrences(
            "  - {name: cell, security_level: 3, networks: [10.10.30.0/24]}",
            "  - {name: cell, security_level: 3, networks: [10.10.30.0/24], intra_zone: enforce, allow: [{protocol: modbus, access: [read]}]}")
        let d = Detector(policy: compiled(text))
        let alerts = run(d, flow("10.10.30.9", "10.10.30.5"), ops: [
            op(.modbus, .read, fc: 3, "Read Holding Registers", unit: 1, address: 0, quantity: 1),
            op(.modbus, .write, fc: 6, "Write Single Register", unit: 1, address: 0, quantity: 1),
        ])
        #expect(alerts.map(\.ruleID) == ["ZW-CONDUIT-002"])
        #expect(alerts.first?.conduit == "cell (intra-zone)")
        #expect(run(d, flow("10.10.30.9", "10.10.30.5", dport: 22), app: nil).map(\.ruleID) == ["ZW-CONDUIT-001"])
    }
}

@Suite struct ICSOperationTests {
    /// Each dangerous operation on an intra-zone (monitor) flow, and the rule and technique it raises.
    struct Case: Sendable, CustomTestStringConvertible {
        let name: String, op: Operation, rule: String, techniques: [String]
        var testDescription: String { name }
    }
    static let cases: [Case] = [
        Case(name: "S7 PLC stop", op: op(.s7comm, .lifecycle, fc: 0x29, "PLC Stop"), rule: "ZW-ICS-001", techniques: ["T0858"]),
        Case(name: "UMAS stop", op: op(.modbus, .lifecycle, fc: 90, "UMAS STOP_PLC", unit: 1, sub: 0x41), rule: "ZW-ICS-001", techniques: ["T0858"]),
        Case(name: "DNP3 stop application", op: op(.dnp3, .lifecycle, fc: 0x12, "STOP_APPLICATION", unit: 10), rule: "ZW-ICS-001", techniques: ["T0858"]),
        Case(name: "S7 P_PROGRAM", op: op(.s7comm, .lifecycle, fc: 0x28, "PI-Service P_PROGRAM"), rule: "ZW-ICS-002", techniques: ["T0858"]),
        Case(name: "DNP3 start application", op: op(.dnp3, .lifecycle, fc: 0x11, "START_APPLICATION", unit: 10), rule: "ZW-ICS-002", techniques: ["T0858"]),
        Case(name: "DNP3 cold restart", op: op(.dnp3, .lifecycle, fc: 0x0D, "COLD_RESTART", unit: 10), rule: "ZW-ICS-003", techniques: ["T0816"]),
        Case(name: "DNP3 warm restart", op: op(.dnp3, .lifecycle, fc: 0x0E, "WARM_RESTART", unit: 10), rule: "ZW-ICS-003", techniques: ["T0816"]),
        Case(name: "Modbus restart comms", op: op(.modbus, .lifecycle, fc: 8, "Diagnostics", unit: 1, sub: 1), rule: "ZW-ICS-003", techniques: ["T0816"]),
        Case(name: "Modbus listen only", op: op(.modbus, .lifecycle, fc: 8, "Diagnostics", unit: 1, sub: 4), rule: "ZW-ICS-004", techniques: ["T0814"]),
        Case(name: "S7 download", op: op(.s7comm, .programDownload, fc: 0x1A, "Request download"), rule: "ZW-ICS-005", techniques: ["T0843"]),
        Case(name: "UMAS download (its 'upload')", op: op(.modbus, .programDownload, fc: 90, "UMAS INITIALIZE_UPLOAD", unit: 1, sub: 0x30), rule: "ZW-ICS-005", techniques: ["T0843"]),
        Case(name: "S7 upload", op: op(.s7comm, .programUpload, fc: 0x1D, "Start upload"), rule: "ZW-ICS-006", techniques: ["T0845"]),
        Case(name: "S7 block delete", op: op(.s7comm, .programDownload, fc: 0x28, "PI-Service _DELE"), rule: "ZW-ICS-007", techniques: ["T0889", "T0809"]),
        Case(name: "S7 block delete by service code", op: op(.s7comm, .programDownload, fc: 0x28, "PI-Service", sub: 0x5F44_454C), rule: "ZW-ICS-007", techniques: ["T0889", "T0809"]),
        Case(name: "S7 activate block (_INSE)", op: op(.s7comm, .programDownload, fc: 0x28, "PI-Service", sub: 0x5F49_4E53), rule: "ZW-ICS-005", techniques: ["T0843"]),
        Case(name: "Modbus firmware", op: op(.modbus, .programDownload, fc: 125, "Firmware Replacement", unit: 1), rule: "ZW-ICS-008", techniques: ["T1693"]),
        Case(name: "DNP3 disable unsolicited", op: op(.dnp3, .config, fc: 0x15, "DISABLE_UNSOLICITED", unit: 10), rule: "ZW-ICS-009", techniques: ["T1691.002"]),
        Case(name: "Modbus broadcast write", op: op(.modbus, .write, fc: 6, "Write Single Register", unit: 0, address: 1, quantity: 1, broadcast: true), rule: "ZW-ICS-010", techniques: ["T0831", "T0836"]),
        Case(name: "S7 PLC password", op: op(.s7comm, .auth, fc: 0x0501, "PLC password"), rule: "ZW-ICS-011", techniques: ["T0859"]),
    ]

    @Test(arguments: cases) func raisesInsideAMonitoredZone(_ c: Case) throws {
        let alerts = run(Detector(policy: compiled()), flow("10.10.30.9", "10.10.30.5"), app: c.op.appProtocol, ops: [c.op])
        #expect(alerts.map(\.ruleID) == [c.rule])
        let a = try #require(alerts.first)
        #expect(a.techniques.map(\.id) == c.techniques)
        #expect(a.category == .icsOperation)
        #expect(a.sourceZone == "cell" && a.destinationZone == "cell" && a.conduit == nil)
        #expect(!a.iec62443.isEmpty)
    }

    @Test(arguments: cases) func raisesWithoutAPolicy(_ c: Case) {
        let alerts = run(Detector(policy: nil), flow("10.10.30.9", "10.10.30.5"), app: c.op.appProtocol, ops: [c.op])
        #expect(alerts.map(\.ruleID) == [c.rule])
        #expect(alerts.first?.sourceZone == nil && alerts.first?.securityLevel == nil)
    }

    @Test func intraZoneAllowSilencesEverything() {
        let text = plantPolicy.replacingOccurrences("intra_zone: monitor", "intra_zone: allow")
        let alerts = run(Detector(policy: compiled(text)), flow("10.10.30.9", "10.10.30.5"), app: .s7comm,
                         ops: [op(.s7comm, .lifecycle, fc: 0x29, "PLC Stop")])
        #expect(alerts.isEmpty)
    }

    @Test func attackVersion18UsesTheOldIds() {
        let text = plantPolicy + "\nattack_version: v18\n"
        let alerts = run(Detector(policy: compiled(text)), flow("10.10.30.9", "10.10.30.5"), app: .dnp3, ops: [
            op(.dnp3, .config, fc: 0x15, "DISABLE_UNSOLICITED", unit: 10),
            op(.modbus, .programDownload, fc: 125, "Firmware Replacement", unit: 1),
        ])
        #expect(alerts.map { $0.techniques.map(\.id) } == [["T0804"], ["T0857"]])
        #expect(alerts.allSatisfy { $0.attackVersion == "v18" })
        let conduit = run(Detector(policy: compiled(text)), flow("10.10.20.10", "10.10.30.5"),
                          ops: [op(.modbus, .write, fc: 6, "Write Single Register", unit: 1, address: 5000, quantity: 1)])
        #expect(conduit.first?.techniques.map(\.id) == ["T0855"])
    }

    @Test func readsAreNotICSOperations() {
        let alerts = run(Detector(policy: nil), flow("10.10.30.9", "10.10.30.5"), ops: [
            op(.modbus, .read, fc: 3, "Read Holding Registers", unit: 1, address: 0, quantity: 10),
            op(.modbus, .write, fc: 6, "Write Single Register", unit: 1, address: 0, quantity: 1),
            op(.dnp3, .response, fc: 0x81, "RESPONSE", unit: 10, sender: .responder),
        ])
        #expect(alerts.isEmpty)
    }
}

@Suite struct ScanTests {
    @Test func unitIdScan() {
        let d = Detector(policy: nil)
        let ops = (1...12).map { op(.modbus, .read, fc: 3, "Read Holding Registers", unit: Int32($0), address: 0, quantity: 1, frame: UInt64(10 + $0)) }
        let alerts = run(d, flow("10.10.30.9", "10.10.30.5"), ops: ops)
        #expect(alerts.map(\.ruleID) == ["ZW-ICS-013"])
        #expect(alerts.first?.frame == 18, "raised at the 8th distinct unit (unit 8, frame 18)")
        #expect(alerts.first?.techniques.map(\.id) == ["T0846"])
    }

    @Test func unitsMarkedRepeatedByTheDissectorCountTheSame() {
        // Units 1, 1, 2, 2, ..., 12, 12 from one client, marked as a dissector marks them, and unmarked.
        func alerts(marked: Bool) -> String {
            let ops = (0..<24).map { i -> Operation in
                var o = op(.modbus, .read, fc: 3, "Read Holding Registers", unit: Int32(1 + i / 2), address: 0, quantity: 1, frame: UInt64(10 + i))
                o.unitRepeated = marked && i % 2 == 1
                return o
            }
            return ecs(run(Detector(policy: nil), flow("10.10.30.9", "10.10.30.5"), ops: ops))
        }
        #expect(alerts(marked: true).contains("ZW-ICS-013"))
        #expect(alerts(marked: true).contains(#""message":"10.10.30.9 addressed 8 or more unit ids on 10.10.30.5 within 60 s (modbus)""#))
        #expect(alerts(marked: true) == alerts(marked: false))
    }

    @Test func hostScan() {
        let d = Detector(policy: nil)
        var alerts: [Alert] = []
        for i in 1...10 {
            d.flowStarted(flow("10.10.30.9", "10.10.30.\(100 + i)", sport: UInt16(40000 + i)), frame: UInt64(i), time: t0, alerts: &alerts)
        }
        d.flowStarted(flow("10.10.30.9", "10.10.30.200", dport: 80), frame: 20, time: t0, alerts: &alerts)
        d.finish(alerts: &alerts)
        #expect(alerts.map(\.ruleID) == ["ZW-ICS-014"])
        #expect(alerts.first?.frame == 8)
        #expect(alerts.first?.message == "10.10.30.9 opened ICS-port flows to 8 or more hosts within 60 s (latest 10.10.30.108 port 502)")
    }

    /// IPv6 targets chosen so that the old unkeyed fold (low ^ high × 0x9E3779B97F4A7C15) gave every one the same
    /// value: each is still a host of its own, in the host-scan count and as a device in an identification sweep.
    @Test func ipv6TargetsChosenToFoldAlikeStillCountApart() {
        let c: UInt64 = 0x9E37_79B9_7F4A_7C15
        let targets = (1...10).map { (i: UInt64) in IPAddress(high: 0x2001_0db8_0000_0000 | i, low: (0x2001_0db8_0000_0000 | i) &* c) }
        #expect(Set(targets.map { $0.low ^ ($0.high &* c) }).count == 1)   // what the old fold saw: one host
        let scanner = Endpoint(ip: IPAddress("2001:db8::99")!, port: 40000)
        func flowTo(_ i: Int) -> FlowContext {
            FlowContext(initiator: Endpoint(ip: scanner.ip, port: scanner.port + UInt16(i)), responder: Endpoint(ip: targets[i], port: 502),
                        transport: .tcp, communityID: "1:test", midstream: false)
        }
        let d = Detector(policy: nil)
        var alerts: [Alert] = []
        for i in targets.indices { d.flowStarted(flowTo(i), frame: UInt64(i + 1), time: t0, alerts: &alerts) }
        #expect(alerts.map(\.ruleID) == ["ZW-ICS-014"])
        #expect(alerts.first?.frame == 8)
        let sweep = Detector(policy: nil)
        var sweepAlerts: [Alert] = []
        for i in 0..<5 {
            sweep.operation(op(.modbus, .diagnostic, fc: 43, "Read Device Identification", unit: 1, frame: UInt64(i + 1)), flow: flowTo(i),
                            alerts: &sweepAlerts)
        }
        #expect(sweepAlerts.map(\.ruleID) == ["ZW-ICS-012"])
    }

    @Test func flowsAConduitCoversAreNotAHostScan() {
        let text = plantPolicy.replacingOccurrences("responders: [10.10.30.0/28]", "responders: [10.10.30.0/24]")
        let d = Detector(policy: compiled(text))
        var alerts: [Alert] = []
        for i in 1...10 {
            d.flowStarted(flow("10.10.20.10", "10.10.30.\(100 + i)", sport: UInt16(40000 + i)), frame: UInt64(i), time: t0, alerts: &alerts)
        }
        #expect(alerts.isEmpty)
    }

    @Test func identificationSweepAcrossDevices() {
        let d = Detector(policy: nil)
        var alerts: [Alert] = []
        for i in 1...5 {
            let f = flow("10.10.30.9", "10.10.30.\(100 + i)", sport: UInt16(40000 + i))
            d.operation(op(.modbus, .diagnostic, fc: 43, "Read Device Identification", unit: 1, frame: UInt64(i)), flow: f, alerts: &alerts)
        }
        #expect(alerts.map(\.ruleID) == ["ZW-ICS-012"])
        #expect(alerts.first?.techniques.map(\.id) == ["T0888"])
    }

    @Test func oneDeviceIdentifiedFewTimesIsQuiet() {
        let ops = (0..<10).map { _ in op(.s7comm, .diagnostic, fc: 0x4401, "Read SZL") }
        #expect(run(Detector(policy: nil), flow("10.10.30.9", "10.10.30.5", dport: 102), app: .s7comm, ops: ops).isEmpty)
    }
}

@Suite struct AnomalyAndAggregationTests {
    func anomaly(_ frame: UInt64, seconds: Int64, kind: StaticString = "bad_protocol_id") -> Anomaly {
        var a = Anomaly(layer: "modbus", kind: kind, offset: 2, value: 7)
        a.frame = frame; a.time = PacketTime(seconds: seconds, microseconds: 0)
        return a
    }

    @Test func anomaliesBecomeRateLimitedAlerts() throws {
        let d = Detector(policy: compiled())
        let f = flow("10.10.20.10", "10.10.30.5")
        var alerts: [Alert] = []
        for i in 0..<5 { d.anomaly(anomaly(UInt64(10 + i), seconds: 1_000 + Int64(i)), flow: f, alerts: &alerts) }
        d.anomaly(anomaly(20, seconds: 1_002, kind: "bad_length"), flow: f, alerts: &alerts)
        #expect(alerts.count == 2)
        d.finish(alerts: &alerts)
        #expect(alerts.map(\.ruleID) == ["ZW-ANOM-001", "ZW-ANOM-001", "ZW-ANOM-001"])
        let summary = alerts[2]
        #expect(summary.count == 4 && summary.frame == 14)
        #expect(summary.firstSeen == PacketTime(seconds: 1_001, microseconds: 0))
        #expect(summary.lastSeen == PacketTime(seconds: 1_004, microseconds: 0))
        #expect(alerts[0].action == "anomaly-modbus-bad_protocol_id")
        #expect(alerts[0].iec62443 == ["SR 3.5"] && alerts[0].sourceZone == "scada")
        #expect(alerts[0].message == "modbus anomaly bad_protocol_id at offset 2 (value 7)")
        #expect(summary.message == "modbus anomaly bad_protocol_id at offset 2 (value 7) (repeated 4 more times within 60 s)")
        // Alert texts raised at packet rate stay inline: no heap allocation per alert or summary.
        #expect(alerts.allSatisfy { $0.messageText.isInline })
        #expect(alerts.allSatisfy { $0.communityIDText == InlineText("1:test") && $0.communityID == "1:test" })
        let c = d.counters
        #expect(c.raised == 2 && c.aggregated == 4 && c.summaries == 1)
        #expect(c.perCategory[AlertCategory.allCases.firstIndex(of: .protocolAnomaly)!] == 6)
    }

    @Test func transportAnomaliesUseTheLowSeverityRule() {
        let d = Detector(policy: nil)
        var alerts: [Alert] = []
        var a = Anomaly(layer: "tcp", kind: "gap", offset: 0, value: 1460); a.frame = 3; a.time = t0
        d.anomaly(a, flow: nil, alerts: &alerts)
        #expect(alerts.map(\.ruleID) == ["ZW-ANOM-002"])
        #expect(alerts.first?.severity == 1 && alerts.first?.source == nil)
    }

    @Test func aWindowClosesAndTheNextOccurrenceIsNewAgain() {
        let d = Detector(policy: nil)
        let f = flow("10.10.30.9", "10.10.30.5", dport: 102)
        var alerts: [Alert] = []
        d.operation(op(.s7comm, .lifecycle, fc: 0x29, "PLC Stop", frame: 1, seconds: 1_000), flow: f, alerts: &alerts)
        d.operation(op(.s7comm, .lifecycle, fc: 0x29, "PLC Stop", frame: 2, seconds: 1_030), flow: f, alerts: &alerts)
        #expect(alerts.count == 1)
        d.operation(op(.s7comm, .lifecycle, fc: 0x29, "PLC Stop", frame: 3, seconds: 1_061), flow: f, alerts: &alerts)
        // The window closed: the summary of frame 2, then a fresh alert for frame 3.
        #expect(alerts.map(\.frame) == [1, 2, 3])
        #expect(alerts.map(\.count) == [1, 1, 1])
        #expect(alerts[1].firstSeen != nil && alerts[2].firstSeen == nil)
        #expect(alerts[1].message == alerts[0].message + " (repeated 1 more time within 60 s)")
        var tail: [Alert] = []
        d.tick(time: PacketTime(seconds: 2_000, microseconds: 0), alerts: &tail)
        d.finish(alerts: &tail)
        #expect(tail.isEmpty)
    }

    @Test func sameInputGivesByteIdenticalAlerts() {
        func replay() -> String {
            let d = Detector(policy: compiled())
            var alerts: [Alert] = []
            let flows = [flow("10.0.1.1", "10.10.30.5"), flow("192.168.1.1", "10.10.30.5", sport: 1), flow("10.10.20.10", "10.10.30.5", sport: 2),
                         flow("10.10.30.9", "10.10.30.5", sport: 3)]
            for (i, f) in flows.enumerated() {
                d.flowStarted(f, frame: UInt64(i), time: t0, alerts: &alerts)
                d.flowIdentified(f, appProtocol: .modbus, frame: UInt64(i), time: t0, alerts: &alerts)
                for j in 0..<30 {
                    let o = op(.modbus, j % 3 == 0 ? .write : .read, fc: j % 3 == 0 ? 16 : 3, "X", unit: Int32(j % 12), address: Int64(j * 100),
                               quantity: 5, frame: UInt64(100 * i + j), seconds: 1_000 + Int64(j * 7))
                    d.operation(o, flow: f, alerts: &alerts)
                    d.anomaly(anomaly(UInt64(100 * i + j), seconds: 1_000 + Int64(j * 7), kind: j % 2 == 0 ? "a" : "b"), flow: f, alerts: &alerts)
                }
            }
            d.finish(alerts: &alerts)
            return ecs(alerts)
        }
        let a = replay(), b = replay()
        #expect(!a.isEmpty)
        #expect(a == b)
    }

    @Test func ecsRecordCarriesThePolicyFields() {
        let alerts = run(Detector(policy: compiled()), flow("10.10.20.10", "10.10.30.5"),
                         ops: [op(.modbus, .write, fc: 16, "Write Multiple Registers", unit: 1, address: 2000, quantity: 2)])
        let line = ecs(alerts)
        for fragment in ["\"rule\":{\"id\":\"ZW-CONDUIT-004\"", "\"category\":\"conduit\"", "\"framework\":\"MITRE ATT&CK for ICS\"",
                         "\"id\":[\"T1692.001\"]", "\"source_zone\":\"scada\"", "\"destination_zone\":\"cell\"",
                         "\"conduit\":\"scada-to-cell\"", "\"iec62443\":[\"SR 2.1\",\"SR 5.2\"]", "\"unit_id\":1",
                         "\"access\":\"write\"", "\"security_level\":3", "\"kind\":\"alert\""] {
            #expect(line.contains(fragment), "\(fragment) missing in \(line)")
        }
    }

    @Test func replacingThePolicyTakesEffect() {
        let d = Detector(policy: nil)
        #expect(run(d, flow("10.0.1.1", "10.10.30.5")).isEmpty)
        d.replacePolicy(compiled())
        #expect(run(d, flow("10.0.1.1", "10.10.30.5", sport: 1)).map(\.ruleID) == ["ZW-ZONE-001"])
    }

    @Test(arguments: [(RuleID.zoneNoConduit, -1, 5), (.zoneNoConduit, 1, 5), (.zoneNoConduit, 2, 6), (.zoneNoConduit, 4, 8),
                      (.icsFirmware, 4, 10), (.anomalyTransport, 0, 1)])
    func severityTable(_ rule: RuleID, _ sl: Int, _ expected: Int) {
        #expect(Severity.of(rule, securityLevel: sl) == expected)
    }

    @Test func everyRuleHasAUniqueDocumentedId() {
        let ids = RuleID.allCases.map { $0.rule.id }
        #expect(Set(ids).count == ids.count)
        #expect(DetectionRule.catalog.count == RuleID.allCases.count)
    }
}

extension String {
    func replacingOccurrences(_ a: String, _ b: String) -> String {
        var out = "", rest = Substring(self)
        while let r = rest.range(of: a) { out += rest[..<r.lowerBound] + b; rest = rest[r.upperBound...] }
        return out + rest
    }
}

extension Substring {
    func range(of needle: String) -> Range<Substring.Index>? {
        guard !needle.isEmpty else { return nil }
        var i = startIndex
        while i < endIndex {
            if self[i...].hasPrefix(needle) { return i..<index(i, offsetBy: needle.count) }
            i = index(after: i)
        }
        return nil
    }
}

@Suite struct DetectorInternalsTests {
    @Test func categoryIndexFollowsAllCases() {
        for (i, c) in AlertCategory.allCases.enumerated() { #expect(Detector.categoryIndex(c) == i) }
    }

    @Test func flowCacheIsBoundedAndRecomputes() {
        var config = DetectionConfig()
        config.maximumTrackedFlows = 16
        let d = Detector(policy: compiled(), config: config)
        var alerts: [Alert] = []
        for i in 0..<40 {
            let f = flow("10.10.20.10", "10.10.30.5", sport: UInt16(1000 + i))
            d.flowStarted(f, frame: UInt64(i), time: t0, alerts: &alerts)
            d.operation(op(.modbus, .write, fc: 6, "Write Single Register", unit: 1, address: 5000, quantity: 1, frame: UInt64(i)), flow: f, alerts: &alerts)
        }
        d.finish(alerts: &alerts)
        #expect(d.counters.flowCacheResets >= 2)
        #expect(alerts.map(\.ruleID) == ["ZW-CONDUIT-004", "ZW-CONDUIT-004"])
        #expect(alerts.map(\.count) == [1, 39])
    }

    /// The same flows and operations, as an engine delivers them (flow slot and serial) and as contexts without them.
    func engineScenario(engine: Bool) -> String {
        let d = Detector(policy: compiled())
        var alerts: [Alert] = []
        var serial: UInt64 = 0
        func context(_ f: FlowContext, slot: Int32) -> FlowContext {
            guard engine else { return f }
            var c = f
            serial += 1
            c.flowSlot = slot; c.flowSerial = serial
            return c
        }
        // Each round reuses engine slots 0-2 with new flows (new serials): unit changes, a denied protocol, a conduit.
        for round in 0..<3 {
            let base = UInt64(round * 100)
            let scan = context(flow("10.10.30.9", "10.10.30.5", sport: UInt16(40_000 + round)), slot: 0)
            let denied = context(flow("10.10.20.10", "10.10.30.5", sport: UInt16(41_000 + round), dport: 102), slot: 1)
            let conduit = context(flow("10.10.20.10", "10.10.30.5", sport: UInt16(42_000 + round)), slot: 2)
            for (f, app) in [(scan, AppProtocol.modbus), (denied, .s7commPlus), (conduit, .modbus)] {
                d.flowStarted(f, frame: base + 1, time: t0, alerts: &alerts)
                d.flowIdentified(f, appProtocol: app, frame: base + 2, time: t0, alerts: &alerts)
            }
            for i in 0..<12 {
                let frame = base + 10 + UInt64(i)
                // Units 1, 1, 2, 2, ... then back to 1: the unit-scan counter sees each change once.
                d.operation(op(.modbus, .read, fc: 3, "Read Holding Registers", unit: Int32(i / 2 % 5 + 1), address: 0, quantity: 1,
                               frame: frame), flow: scan, alerts: &alerts)
                d.operation(op(.s7commPlus, .write, fc: 0x542, "SetVariable", frame: frame), flow: denied, alerts: &alerts)
                d.operation(op(.modbus, i % 3 == 0 ? .diagnostic : .write, fc: i % 3 == 0 ? 17 : 16, "Write Multiple Registers",
                               unit: Int32(1 + i % 2), address: 990 + Int64(i), quantity: 10, frame: frame), flow: conduit, alerts: &alerts)
            }
            for f in [scan, denied, conduit] { d.flowEnded(f) }
        }
        d.finish(alerts: &alerts)
        return ecs(alerts)
    }

    @Test func engineContextsGiveTheSameAlertsAsPlainOnes() {
        let viaEngine = engineScenario(engine: true), plain = engineScenario(engine: false)
        #expect(!plain.isEmpty)
        #expect(viaEngine == plain)
    }

    @Test func engineSlotEntriesDoNotStraddleCacheLines() {
        #expect(MemoryLayout<Detector.EngineSlot>.stride == 32)
    }

    @Test func flowEndedFreesTheSlot() {
        let d = Detector(policy: compiled())
        var alerts: [Alert] = []
        let f = flow("10.10.20.10", "10.10.30.5")
        d.flowStarted(f, frame: 1, time: t0, alerts: &alerts)
        d.flowEnded(f)
        #expect(d.flows.isEmpty && d.freeSlots.count == 1)
        d.flowStarted(flow("10.10.20.10", "10.10.30.5", sport: 2), frame: 2, time: t0, alerts: &alerts)
        #expect(d.slots.count == 1 && d.freeSlots.isEmpty)
    }
}

/// Without a policy, the quiet check (`Detector.passesQuietlyWithoutPolicy`, what `operation` and the `--workers`
/// engines decide from an operation alone) must pass over only operations the checked path would do nothing with: two
/// detectors given the same operations, one through `operation` and one through `checkedOperation` for every one,
/// raise the same alerts. The operations mix every protocol and access class, both senders, responses, repeated and
/// changing units, identification requests and a DNP3 and a Modbus unit-id scan; a Modbus or DNP3 request's
/// `unitRepeated` is set as its dissector sets it (the unit of the flow's previous request from the initiator's side),
/// S7comm's never.
@Suite struct NoPolicyQuietPathTests {
    @Test func quietOperationsAreThoseTheCheckedPathIgnores() {
        // `reference` gets every operation with `unitRepeated` false: the dissectors' marks must change nothing.
        let quiet = Detector(policy: nil), checked = Detector(policy: nil), reference = Detector(policy: nil)
        var quietAlerts: [Alert] = [], checkedAlerts: [Alert] = [], referenceAlerts: [Alert] = []
        let flows = (0..<4).map { flow("10.0.0.\($0 + 1)", "10.0.1.\($0 % 2 + 1)", sport: UInt16(40_000 + $0), dport: [502, 20000, 102, 502][$0]) }
        let apps: [AppProtocol] = [.modbus, .dnp3, .s7comm, .modbus]
        for (f, app) in zip(flows, apps) {
            for d in [quiet, checked, reference] {
                var a: [Alert] = []
                d.flowStarted(f, frame: 1, time: t0, alerts: &a); d.flowIdentified(f, appProtocol: app, frame: 2, time: t0, alerts: &a)
            }
        }
        let accesses: [AccessClass] = [.read, .read, .read, .write, .diagnostic, .response, .response, .time, .session, .control]
        var x: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next(_ n: Int) -> Int { x = x &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407; return Int((x >> 33) % UInt64(n)) }
        var lastRequestUnit = [Int32](repeating: -1, count: flows.count)
        var passedQuietly = 0
        for i in 0..<4_000 {
            let k = next(flows.count), app = apps[k]
            // Units: mostly the same few, with bursts of new ones (a unit-id scan) on the Modbus and DNP3 flows.
            let unit: Int32 = app == .s7comm ? -1 : (i % 500 < 20 ? Int32(100 + i % 500) : Int32(next(3)))
            var o = op(app, accesses[next(accesses.count)], fc: UInt16(next(3) == 0 ? 8 : 3), "f", unit: unit,
                       sender: next(4) == 0 ? .responder : .initiator, frame: UInt64(10 + i), seconds: 1_000 + Int64(i / 50))
            if (app == .modbus || app == .dnp3) && o.access != .response && o.sender == .initiator {
                o.unitRepeated = unit == lastRequestUnit[k]
                lastRequestUnit[k] = unit
            }
            if withUnsafePointer(to: o, { Detector.passesQuietlyWithoutPolicy($0) }) { passedQuietly += 1 }
            quiet.operation(o, flow: flows[k], alerts: &quietAlerts)
            checked.checkedOperation(o, flow: flows[k], alerts: &checkedAlerts)
            var unmarked = o; unmarked.unitRepeated = false
            reference.checkedOperation(unmarked, flow: flows[k], alerts: &referenceAlerts)
        }
        quiet.finish(alerts: &quietAlerts); checked.finish(alerts: &checkedAlerts); reference.finish(alerts: &referenceAlerts)
        #expect(passedQuietly > 1_000)
        #expect(checkedAlerts.contains { $0.ruleID == RuleID.icsUnitScan.rule.id })
        #expect(checkedAlerts.contains { $0.ruleID == RuleID.icsIdentificationSweep.rule.id })
        #expect(ecs(quietAlerts) == ecs(checkedAlerts))
        #expect(ecs(checkedAlerts) == ecs(referenceAlerts))
        #expect(checked.counters == reference.counters)
    }
}

/// Alerts of a flow whose Community ID the engine left pending: detection defers the ID to the alert's encoder (an
/// output's thread) instead of hashing it on the capture thread, and every reader sees the flow's ID.
@Suite struct DeferredCommunityIDTests {
    func pendingFlow(_ a: String, _ b: String, sport: UInt16 = 50000, dport: UInt16 = 502) -> FlowContext {
        var f = FlowContext(initiator: Endpoint(ip: IPAddress(a)!, port: sport), responder: Endpoint(ip: IPAddress(b)!, port: dport),
                            transport: .tcp)
        f.setCommunityIDPending(ipProtocol: 6)
        return f
    }

    /// Zone alerts (initiator to responder), unknown-host alerts of the responder (responder to initiator) and an
    /// operation alert: each deferred, each reading as the flow's own ID, in ECS, CEF, LEEF and syslog alike.
    @Test func deferredIDsReadAsTheFlowsOwn() throws {
        let d = Detector(policy: compiled())
        let f = pendingFlow("10.0.1.1", "10.99.0.7", dport: 502)   // enterprise to a host in no zone
        let expected = CommunityIDHasher.text(f.initiator, f.responder, ipProtocol: 6)
        #expect(expected.count == 30)
        let alerts = run(d, f, ops: [op(.modbus, .write, fc: 6, "write_single_register", unit: 1)])
        #expect(alerts.count >= 2)
        // One of them names the responder as its source: the ID is the same for both orders of the endpoints.
        #expect(alerts.contains { $0.source == f.responder })
        for a in alerts {
            #expect(a.communityIDDeferred, "\(a.ruleID) not deferred")
            #expect(a.communityIDText == expected, "\(a.ruleID): \(a.communityIDText)")
            var w = JSONWriter(); a.writeECS(to: &w)
            #expect(String(decoding: w.bytes, as: UTF8.self).contains("\"community_id\":\"\(expected.string)\""))
        }
        // Set afterwards, the text is what was set and no longer computed.
        var a = alerts[0]
        a.communityIDText = InlineText("1:set")
        #expect(!a.communityIDDeferred && a.communityID == "1:set")
    }

    /// Without an alert reader (no lines, no outputs) nothing is hashed or deferred; a flow with its ID set already
    /// passes it on as it is; with alert lines written here, the ID is computed at once.
    @Test func noReaderOrAnIDSetAlreadyIsNotDeferred() {
        let d = Detector(policy: compiled())
        d.alertCommunityIDs = false
        for a in run(d, pendingFlow("10.0.1.1", "10.99.0.7")) { #expect(!a.communityIDDeferred && a.communityIDText.isEmpty) }
        for a in run(Detector(policy: compiled()), flow("10.0.1.1", "10.99.0.7")) {
            #expect(!a.communityIDDeferred && a.communityID == "1:test")
        }
        // Alert lines written on this thread: the ID is computed here (through the detector's last-ID cache).
        let lines = Detector(policy: compiled())
        lines.defersCommunityIDs = false
        let f = pendingFlow("10.0.1.1", "10.99.0.7")
        let expected = CommunityIDHasher.text(f.initiator, f.responder, ipProtocol: 6)
        for a in run(lines, f) { #expect(!a.communityIDDeferred && a.communityIDText == expected) }
    }
}

/// Packet time going back by more than `PacketTime.clockStepSeconds` (a clock set back): detection's windows close
/// there instead of staying open, folding repeats and counting scan targets, until time caught up with them.
@Suite struct ClockStepDetectionTests {
    func anomaly(_ frame: UInt64, seconds: Int64) -> Anomaly {
        var a = Anomaly(layer: "modbus", kind: "bad_protocol_id", offset: 2, value: 7)
        a.frame = frame; a.time = PacketTime(seconds: seconds, microseconds: 0)
        return a
    }

    /// Repeats folded into a window come out as its summary at the step, and the same anomaly after the step is an
    /// alert of its own (it had folded into the old window, its summary held until the end).
    @Test func aggregationWindowsCloseAtAStepBack() {
        let d = Detector(policy: compiled())
        let f = flow("10.10.20.10", "10.10.30.5")
        var alerts: [Alert] = []
        for i in 0..<4 { d.anomaly(anomaly(UInt64(10 + i), seconds: 10_000 + Int64(i)), flow: f, alerts: &alerts) }
        #expect(alerts.count == 1)
        d.anomaly(anomaly(20, seconds: 10_003 - PacketTime.clockStepSeconds), flow: f, alerts: &alerts)   // within the limit
        #expect(alerts.count == 1)
        d.anomaly(anomaly(21, seconds: 10_000 - 7_200), flow: f, alerts: &alerts)
        #expect(alerts.count == 3, "\(alerts.map(\.message))")
        if alerts.count == 3 {
            #expect(alerts[1].count == 4 && alerts[1].lastSeen == PacketTime(seconds: 10_003 - PacketTime.clockStepSeconds, microseconds: 0))
            #expect(alerts[2].count == 1 && alerts[2].frame == 21)
        }
    }

    /// ICS-port flows to 7 hosts before the step and 7 after (the threshold is 8 within 60 s): no host scan, since
    /// the window of the first seven closed at the step (before, the second seven added to it).
    @Test func scanWindowsDoNotSpanAStepBack() {
        let d = Detector(policy: nil)
        var alerts: [Alert] = []
        let scanner = IPAddress("10.10.30.9")!
        func flowTo(_ i: Int) -> FlowContext {
            FlowContext(initiator: Endpoint(ip: scanner, port: UInt16(40_000 + i)), responder: Endpoint(ip: IPAddress(v4: 0x0A0A_1E00 + UInt32(i)), port: 502),
                        transport: .tcp, communityID: "1:test", midstream: false)
        }
        for i in 0..<7 { d.flowStarted(flowTo(i), frame: UInt64(i + 1), time: PacketTime(seconds: 10_000, microseconds: 0), alerts: &alerts) }
        for i in 7..<14 { d.flowStarted(flowTo(i), frame: UInt64(i + 1), time: PacketTime(seconds: 10_000 - 7_200, microseconds: 0), alerts: &alerts) }
        #expect(alerts.isEmpty, "\(alerts.map(\.ruleID))")
        // The same fourteen on one timeline are a scan.
        let e = Detector(policy: nil)
        for i in 0..<14 { e.flowStarted(flowTo(i), frame: UInt64(i + 1), time: PacketTime(seconds: 10_000, microseconds: 0), alerts: &alerts) }
        #expect(alerts.map(\.ruleID) == ["ZW-ICS-014"])
    }
}
