import Testing
import Wire
import Records
@testable import Policy

/// `zonewatch policy learn`'s core: the conduits a `ConduitLearner` drafts allow what it saw, at the depth the policy
/// checks, and nothing else.
@Suite struct ConduitLearnerTests {
    static let zones = """
        version: 1
        zones:
          - {name: control, security_level: 2, networks: [10.1.0.0/16]}
          - {name: field, security_level: 3, networks: [10.2.0.0/16]}
          - {name: groups, security_level: 1, networks: [239.0.0.0/8]}
        assets:
          - {name: plc, address: 10.2.0.9, zone: field}
        # what follows is replaced
        conduits:
          - name: old
            from: control
            to: field
            allow:
              - {protocol: tcp, ports: [1]}
        default: deny

        """

    static let hmi = IPAddress("10.1.0.5")!, otherHMI = IPAddress("10.1.0.6")!, plc = IPAddress("10.2.0.9")!
    static let rtu = IPAddress("10.2.0.20")!, outsider = IPAddress("192.0.2.7")!

    static func flow(_ serial: UInt64, _ a: IPAddress, _ b: IPAddress, port: UInt16, transport: Transport = .tcp,
                     midstream: Bool = false) -> FlowContext {
        FlowContext(initiator: Endpoint(ip: a, port: 50000), responder: Endpoint(ip: b, port: port), transport: transport,
                    midstream: midstream, flowSerial: serial)
    }

    static func op(_ p: AppProtocol, _ access: AccessClass, fc: UInt16, unit: Int32 = -1, address: Int64 = -1, quantity: Int64 = 0,
                   area: Int16 = -1, db: Int32 = -1, sender: FlowSide = .initiator) -> Operation {
        var o = Operation(appProtocol: p, access: access, functionCode: fc, function: "test")
        o.unitID = unit; o.address = address; o.quantity = quantity; o.area = area; o.dbNumber = db; o.sender = sender
        return o
    }

    /// A learner that saw a plant: the HMI reading and writing the PLC over Modbus and downloading to it over S7, a
    /// flow to the RTU picked up midstream (its first operation from the engine's responder), HTTPS, traffic inside
    /// the control zone and with a host in no zone.
    static func learned() -> (CompiledPolicy, String) {
        let (zonesOnly, errors) = loadPolicy(text: zones)
        precondition(errors.isEmpty, "\(errors)")
        let learner = ConduitLearner(policy: zonesOnly!)
        func run(_ f: FlowContext, _ app: AppProtocol?, _ ops: [Operation]) {
            learner.flowStarted(f)
            learner.flowIdentified(f, appProtocol: app)
            for o in ops { learner.operation(o, flow: f) }
            learner.flowEnded(f)
        }
        run(flow(1, hmi, plc, port: 502), .modbus, [op(.modbus, .read, fc: 3, unit: 1, address: 0, quantity: 10),
                                                    op(.modbus, .read, fc: 3, unit: 1, address: 10, quantity: 5),
                                                    op(.modbus, .read, fc: 4, unit: 1, address: 100, quantity: 2),
                                                    op(.modbus, .write, fc: 6, unit: 1, address: 5),
                                                    op(.modbus, .response, fc: 3, unit: 1, sender: .responder)])
        // The PLC's own download jobs (0x1B) are operations of the flow too, checked against its conduit.
        run(flow(2, hmi, plc, port: 102), .s7comm, [op(.s7comm, .read, fc: 4, address: 0, quantity: 4, area: 0x84, db: 1),
                                                    op(.s7comm, .programDownload, fc: 0x1A, db: 7),
                                                    op(.s7comm, .programDownload, fc: 0x1B, db: 7, sender: .responder)])
        // Midstream: the engine took the RTU for the initiator (its response came first).
        run(flow(3, rtu, hmi, port: 50000, midstream: true), .dnp3, [op(.dnp3, .read, fc: 1, unit: 10, sender: .responder)])
        run(flow(4, hmi, plc, port: 443), nil, [])
        run(flow(5, hmi, otherHMI, port: 502), .modbus, [op(.modbus, .write, fc: 6, unit: 1, address: 1)])
        run(flow(6, outsider, plc, port: 502), .modbus, [op(.modbus, .write, fc: 6, unit: 1, address: 1)])
        // Multicast (not checked against conduits: nothing learned) and a tunnel no rule can name.
        run(flow(7, hmi, IPAddress("239.1.2.3")!, port: 20000, transport: .udp), .dnp3, [op(.dnp3, .write, fc: 2, unit: 10)])
        run(flow(8, IPAddress("10.1.0.7")!, plc, port: 0, transport: .other), nil, [])
        let section = learner.conduitsYAML(header: ["test"])
        let text = ConduitLearner.policyText(zones, withConduits: section)!
        let (policy, problems) = loadPolicy(text: text)
        #expect(problems.isEmpty, "\(problems.map(\.description))\n\(text)")
        return (policy!, text)
    }

    @Test func theLearnedPolicyReplacesTheConduitsAndKeepsTheRest() {
        let (policy, text) = Self.learned()
        #expect(!text.contains("name: old") && !text.contains("what follows"))
        #expect(text.contains("default: deny") && text.contains("- {name: plc, address: 10.2.0.9, zone: field}"))
        #expect(policy.conduits.map(\.name) == ["learned-control-to-field-1", "learned-control-to-field-2"])
        #expect(!text.contains("239.1.2.3") && !text.contains("access: [write], functions: [2]"))
        #expect(text.contains(#"initiators: ["10.1.0.7/32"]"#) && text.contains("    allow: []   # only IP protocols"))
        #expect(text.contains(#"initiators: ["10.1.0.5/32"]"#) && text.contains(#"responders: ["10.2.0.20/32", "plc"]"#))
        #expect(text.contains("# Hosts in no zone") && text.contains("#   192.0.2.7 (1 flow)"))
        #expect(text.contains("1 flows inside a zone: not learned"))
        #expect(text.contains("notify: [program_download]"))
    }

    /// Each learned operation is allowed (a download with notice); one step off it (another function, unit, address
    /// range, DB, initiator or port) is not.
    @Test func whatWasSeenIsAllowedAndNothingElse() {
        let (policy, _) = Self.learned()
        func verdict(_ a: IPAddress, _ b: IPAddress, _ o: Operation) -> OperationVerdict.Kind {
            let v = policy.resolve(initiator: Endpoint(ip: a, port: 50000), responder: Endpoint(ip: b, port: 502), transport: .tcp)
            return policy.evaluate(o, verdict: v).kind
        }
        let (hmi, plc, rtu) = (Self.hmi, Self.plc, Self.rtu)
        #expect(verdict(hmi, plc, Self.op(.modbus, .read, fc: 3, unit: 1, address: 2, quantity: 13)) == .allowed)   // inside 0-14
        #expect(verdict(hmi, plc, Self.op(.modbus, .read, fc: 4, unit: 1, address: 100, quantity: 2)) == .allowed)
        #expect(verdict(hmi, plc, Self.op(.modbus, .write, fc: 6, unit: 1, address: 5)) == .allowed)
        #expect(verdict(hmi, plc, Self.op(.s7comm, .programDownload, fc: 0x1A, db: 7)) == .allowedNotify)
        #expect(verdict(hmi, plc, Self.op(.s7comm, .programDownload, fc: 0x1B, db: 7, sender: .responder)) == .allowedNotify)
        #expect(verdict(hmi, rtu, Self.op(.dnp3, .read, fc: 1, unit: 10)) == .allowed)
        #expect(verdict(hmi, plc, Self.op(.modbus, .write, fc: 16, unit: 1, address: 5, quantity: 1)) == .functionDenied)
        #expect(verdict(hmi, plc, Self.op(.modbus, .control, fc: 5, unit: 1, address: 5)) == .functionDenied)
        #expect(verdict(hmi, plc, Self.op(.modbus, .write, fc: 6, unit: 2, address: 5)) == .deviceDenied)
        #expect(verdict(hmi, plc, Self.op(.modbus, .write, fc: 6, unit: 1, address: 6)) == .dataDenied)
        #expect(verdict(hmi, plc, Self.op(.modbus, .read, fc: 3, unit: 1, address: 14, quantity: 2)) == .dataDenied)
        #expect(verdict(hmi, plc, Self.op(.s7comm, .programDownload, fc: 0x1A, db: 8)) == .dataDenied)
        #expect(verdict(hmi, rtu, Self.op(.dnp3, .read, fc: 1, unit: 11)) == .deviceDenied)
        let other = policy.resolve(initiator: Endpoint(ip: Self.otherHMI, port: 50000), responder: Endpoint(ip: plc, port: 502), transport: .tcp)
        #expect(other.kind == .initiatorNotListed)
        let https = policy.resolve(initiator: Endpoint(ip: hmi, port: 50000), responder: Endpoint(ip: plc, port: 443), transport: .tcp)
        let ssh = policy.resolve(initiator: Endpoint(ip: hmi, port: 50000), responder: Endpoint(ip: plc, port: 22), transport: .tcp)
        #expect(policy.allowsProtocol(nil, verdict: https) && !policy.allowsProtocol(nil, verdict: ssh))
    }

    /// Many initiators: those that did the same share a conduit; more than a zone pair may have (64) different ones
    /// get one conduit with the union, and the policy stays valid.
    @Test(arguments: [(1, 1), (3, 3), (70, 1)])
    func manyInitiatorsStayWithinTheConduitBound(behaviours: Int, conduits: Int) throws {
        let (zonesOnly, _) = loadPolicy(text: Self.zones)
        let learner = ConduitLearner(policy: try #require(zonesOnly))
        for i in 0..<70 {
            let f = Self.flow(UInt64(i + 1), IPAddress(v4: 0x0A01_0100 + UInt32(i)), Self.plc, port: 502)
            learner.flowStarted(f); learner.flowIdentified(f, appProtocol: .modbus)
            learner.operation(Self.op(.modbus, .read, fc: 3, unit: 1, address: Int64(10 * (i % behaviours)), quantity: 2), flow: f)
            learner.flowEnded(f)
        }
        let text = try #require(ConduitLearner.policyText(Self.zones, withConduits: learner.conduitsYAML(header: [])))
        let (policy, problems) = loadPolicy(text: text)
        #expect(problems.isEmpty, "\(problems.map(\.description))")
        #expect(policy?.conduits.count == conduits)
        #expect(text.contains("allows the union") == (behaviours > 64))
        #expect(text.matches(of: #/learned from /#).count == conduits)
    }

    @Test(arguments: [
        ([0...9, 20...29], 10...19, [0...29]),      // fills the hole: one range
        ([0...9], 11...12, [0...9, 11...12]),       // not adjacent: two
        ([5...9], 0...4, [0...9]),                  // adjacent below
        ([0...3, 10...12], 2...11, [0...12]),       // spans both
    ] as [([ClosedRange<Int64>], ClosedRange<Int64>, [ClosedRange<Int64>])])
    func addressRangesJoin(ranges: [ClosedRange<Int64>], added: ClosedRange<Int64>, expected: [ClosedRange<Int64>]) {
        #expect(ConduitLearner.adding(added, to: ranges) == expected)
    }
}
