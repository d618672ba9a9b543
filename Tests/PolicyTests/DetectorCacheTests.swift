import Testing
import Wire
import Records
@testable import Policy
@testable import Detection

/// The detector's fast paths (engine-slot flow state, verdict and host caches, address set, message text) must
/// give exactly what the general paths give.
@Suite struct DetectorCacheTests {
    /// An engine's context: slot and serial set, so the detector keeps the state under the slot.
    func engineFlow(_ a: String, _ b: String, slot: Int32, serial: UInt64, dport: UInt16 = 502) -> FlowContext {
        var f = flow(a, b, dport: dport)
        f.flowSlot = slot; f.flowSerial = serial
        return f
    }

    /// Flows from 10.10.20.7 (source ports 40000, 40001, ...) to each responder and port, started and identified in `d`;
    /// with `engine`, as an engine's flows (slot i, serial i + 1), else plain contexts.
    func identifiedFlows(_ d: Detector, _ peers: [(responder: String, port: UInt16, app: AppProtocol)], engine: Bool,
                         alerts: inout [Alert]) -> [FlowContext] {
        peers.enumerated().map { i, p in
            var f = flow("10.10.20.7", p.responder, sport: UInt16(40_000 + i), dport: p.port)
            if engine { f.flowSlot = Int32(i); f.flowSerial = UInt64(i + 1) }
            d.flowStarted(f, frame: 1, time: t0, alerts: &alerts)
            d.flowIdentified(f, appProtocol: p.app, frame: 2, time: t0, alerts: &alerts)
            return f
        }
    }

    @Test func engineFlowStateIsKeptBySlotAndFreedOnEnd() {
        let d = Detector(policy: compiled())
        var alerts: [Alert] = []
        let f = engineFlow("10.10.20.10", "10.10.30.5", slot: 3, serial: 7)
        d.flowStarted(f, frame: 1, time: t0, alerts: &alerts)
        #expect(d.flows.isEmpty)  // no endpoint key stored for an engine's flow
        #expect(d.engineSlots[3].serial == 7 && d.engineSlots[3].ownsSlot)
        #expect(d.resolveFlow(f) == compiled().resolve(initiator: f.initiator, responder: f.responder, transport: f.transport))
        let live = d.slots.count - d.freeSlots.count
        d.flowEnded(f)
        #expect(d.slots.count - d.freeSlots.count == live - 1)
        #expect(d.engineSlots[3].serial == 0)
        // The next flow in that engine slot reuses the state slot.
        d.flowStarted(engineFlow("10.0.1.1", "10.10.30.5", slot: 3, serial: 8), frame: 2, time: t0, alerts: &alerts)
        #expect(d.slots.count == 1)
    }

    @Test func engineAndKeyedContextsRaiseTheSameAlerts() {
        let keyed = run(Detector(policy: compiled()), flow("10.0.1.1", "10.10.30.5"),
                        ops: [op(.modbus, .write, fc: 6, "write_single_register", unit: 1, address: 5)])
        let engine = run(Detector(policy: compiled()), engineFlow("10.0.1.1", "10.10.30.5", slot: 0, serial: 1),
                         ops: [op(.modbus, .write, fc: 6, "write_single_register", unit: 1, address: 5)])
        #expect(!keyed.isEmpty)
        #expect(ecs(keyed) == ecs(engine))
    }

    /// `operations` (a delivery's operations in place, as an engine's drain hands them over) raises what `operation`
    /// raises one by one, stopping after each operation that leaves alerts: quiet repeats (the items of one S7 request,
    /// which it skips after the first), denials, identification requests, rules and a window boundary in one run.
    /// Three ways in: with the context alone, with its serial and slot passed beside it (an engine's drain), and
    /// after `quietPrefix` has passed over the quiet operations first (the alert pipeline's way when the engine
    /// builds the context only for the rest).
    enum Entry: CaseIterable { case contextAlone, serialAndSlot, quietPrefixFirst }
    @Test(arguments: Entry.allCases)
    func operationsInOneCallRaiseWhatOperationByOperationRaises(entry: Entry) {
        let f = engineFlow("10.10.20.10", "10.10.30.5", slot: 2, serial: 5, dport: 102)
        func item(_ address: Int64, seconds: Int64 = 1_000) -> Operation {
            op(.s7comm, .read, fc: 4, "Read Var", address: address, quantity: 4, area: 0x84, db: 1, seconds: seconds)
        }
        let ops: [Operation] = [item(0), item(8), item(16),
                                op(.s7comm, .write, fc: 5, "Write Var", address: 0, quantity: 2, area: 0x84, db: 1),   // denied
                                item(0), item(8),
                                op(.s7comm, .diagnostic, fc: 0x4401, "Read SZL", sub: 0x11),
                                op(.s7comm, .lifecycle, fc: 0x29, "PLC Stop"),   // rule, notified
                                op(.s7comm, .response, fc: 4, "Read Var", sender: .responder),
                                item(0), item(8), item(16),
                                item(0, seconds: 1_400), item(8, seconds: 1_400)]   // past the aggregation window
        let oneByOne = run(Detector(policy: compiled()), f, app: .s7comm, ops: ops)
        let d = Detector(policy: compiled())
        var alerts: [Alert] = [], published: [Alert] = []
        d.flowStarted(f, frame: 1, time: t0, alerts: &alerts)
        d.flowIdentified(f, appProtocol: .s7comm, frame: 2, time: t0, alerts: &alerts)
        published += alerts; alerts.removeAll()
        var calls = 0
        ops.withUnsafeBufferPointer { buffer in
            withUnsafePointer(to: f) { context in
                var i = 0
                while i < buffer.count {
                    var handled = 0
                    switch entry {
                    case .contextAlone:
                        handled = d.operations(buffer.baseAddress! + i, count: buffer.count - i, flow: context, alerts: &alerts)
                    case .serialAndSlot:
                        handled = d.operations(buffer.baseAddress! + i, count: buffer.count - i, flow: context, flowSerial: f.flowSerial,
                                               flowSlot: f.flowSlot, alerts: &alerts)
                    case .quietPrefixFirst:
                        handled = d.quietPrefix(buffer.baseAddress! + i, count: buffer.count - i, flowSerial: f.flowSerial, flowSlot: f.flowSlot)
                        if i + handled < buffer.count {
                            handled += d.operations(buffer.baseAddress! + i + handled, count: buffer.count - i - handled, flow: context,
                                                    flowSerial: f.flowSerial, flowSlot: f.flowSlot, alerts: &alerts)
                        }
                    }
                    #expect(handled >= 1)
                    #expect(i + handled == buffer.count || !alerts.isEmpty)   // it stops early only with alerts pending
                    i += handled; calls += 1
                    published += alerts; alerts.removeAll()
                }
            }
        }
        d.finish(alerts: &alerts)
        published += alerts
        #expect(calls > 1)
        #expect(!oneByOne.isEmpty)
        #expect(ecs(published) == ecs(oneByOne))
    }

    @Test func cachedVerdictsEqualFreshResolves() {
        let p = compiled()
        let d = Detector(policy: p)
        let hosts = ["10.0.1.1", "10.10.20.10", "10.10.20.50", "10.10.30.5", "10.10.30.77", "192.168.1.1", "224.0.0.1"]
        // Twice over: the second round is answered from the caches.
        for _ in 0..<2 {
            for a in hosts {
                for b in hosts where a != b {
                    for port: UInt16 in [22, 443, 502] {
                        for midstream in [false, true] {
                            let f = flow(a, b, dport: port, midstream: midstream)
                            #expect(d.makeState(f).verdict == p.resolve(initiator: f.initiator, responder: f.responder,
                                                                        transport: f.transport, midstream: midstream))
                        }
                    }
                }
            }
        }
    }

    /// A policy whose conduits list no hosts: verdicts come from the zone-level cache, and must be what a fresh
    /// resolve gives for every pair of hosts (assets, unzoned and multicast hosts, both directions, midstream).
    @Test func zoneLevelVerdictsEqualFreshResolves() {
        let p = compiled("""
        version: 1
        zones:
          - {name: enterprise, security_level: 1, networks: [10.0.0.0/16]}
          - {name: scada, security_level: 2, networks: [10.10.20.0/24]}
          - {name: cell, security_level: 3, networks: [10.10.30.0/24], intra_zone: enforce}
        assets:
          - {name: hmi, address: 10.10.20.10, zone: scada}
          - {name: plc1, address: 10.10.30.5, zone: cell}
        conduits:
          - name: scada-to-cell
            from: scada
            to: cell
            allow:
              - {protocol: modbus, access: [read, write]}
              - {protocol: tcp, ports: [22]}
          - name: enterprise-to-scada
            from: enterprise
            to: scada
            allow:
              - {protocol: tcp, ports: [443]}
        default: deny
        """)
        let d = Detector(policy: p)
        #expect(d.addressFreeConduits)
        let hosts = ["10.0.1.1", "10.0.1.2", "10.10.20.10", "10.10.20.50", "10.10.20.51", "10.10.30.5", "10.10.30.77",
                     "10.10.30.78", "192.168.1.1", "192.168.1.2", "224.0.0.1", "255.255.255.255"]
        for _ in 0..<2 {
            for a in hosts {
                for b in hosts where a != b {
                    for port: UInt16 in [22, 443, 502] {
                        for midstream in [false, true] {
                            for transport in [Transport.tcp, .udp] {
                                let f = flow(a, b, dport: port, transport: transport, midstream: midstream)
                                #expect(d.makeState(f).verdict == p.resolve(initiator: f.initiator, responder: f.responder,
                                                                            transport: f.transport, midstream: midstream))
                            }
                        }
                    }
                }
            }
        }
        // A policy with host lists keeps the address-keyed cache.
        #expect(!Detector(policy: compiled()).addressFreeConduits)
    }

    @Test func addressSetMatchesSet() {
        var fast = AddressSet(capacity: 16)
        var reference = Set<IPAddress>()
        var x: UInt64 = 0x1234_5678
        for i in 0..<5_000 {
            x = x &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let ip = i % 3 == 0 ? IPAddress(high: x, low: x >> 7) : IPAddress(v4: UInt32(truncatingIfNeeded: x >> 40) & 0xFFF)
            #expect(fast.contains(ip) == reference.contains(ip))
            fast.insert(ip); reference.insert(ip)
            #expect(fast.count == reference.count)
        }
        fast.removeAll()
        #expect(fast.count == 0 && !fast.contains(IPAddress(v4: 1)))
    }

    @Test func messageTextWritesWhatInterpolationWrites() {
        let addresses = ["0.0.0.0", "10.0.0.1", "9.99.100.255", "255.255.255.255", "::1", "2001:db8::7", "fe80::1:0:0:1"]
        for text in addresses {
            let ip = IPAddress(text)!
            #expect(MessageText.text { $0.add(ip) }.string == "\(ip)")
        }
        for v: Int64 in [0, 7, -7, 1_000_000, .max, .min] {
            #expect(MessageText.text { $0.add(v) }.string == "\(v)")
        }
        let t = MessageText.text { m in m.add("modbus"); m.add(" é "); m.add(String("zone ü")) }
        #expect(t.string == "modbus é zone ü")
        #expect(t.isInline)
    }

    @Test func messageBuildersWriteWhatTheStringHelpersReturn() {
        let d = Detector(policy: nil)
        var g = SystemRandomNumberGenerator()
        let protocols: [AppProtocol] = [.modbus, .dnp3, .s7comm]
        let areas: [Int16] = [-1, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x1C, 0x1D, 0x42, 0x7F]
        for _ in 0..<500 {
            var o = Operation(appProtocol: protocols.randomElement(using: &g)!, access: AccessClass.allCases.randomElement(using: &g)!,
                              functionCode: UInt16.random(in: 0...300, using: &g), function: "a function name longer than fifteen")
            o.unitID = Int32.random(in: -1...300, using: &g); o.address = Int64.random(in: -1...70_000, using: &g)
            o.quantity = Int64.random(in: 0...3, using: &g); o.area = areas.randomElement(using: &g)!
            o.dbNumber = Int32.random(in: -1...2_000, using: &g)
            #expect(MessageText.text { d.describe(o, into: &$0) }.string == d.describe(o))
            if o.address >= 0 { #expect(MessageText.text { d.addAddresses(o, into: &$0) }.string == d.addressText(o)) }
            #expect(MessageText.text { d.addAreaName(o.area, into: &$0) }.string == d.areaName(o.area))
        }
        for ranges: [ClosedRange<Int64>] in [[], [1...1], [1...10], [0...0, 5...9, 100...65_535], [-3...(-1)]] {
            #expect(MessageText.text { d.addRanges(ranges, into: &$0) }.string == d.rangesText(ranges))
        }
    }

    /// Two conduits for one zone pair (masks of two bits), rules with and without lists, notify lists, a transport rule.
    static let quietPolicy = """
    version: 1
    zones:
      - {name: scada, security_level: 2, networks: [10.10.20.0/24]}
      - {name: cell, security_level: 3, networks: [10.10.30.0/24]}
    conduits:
      - name: first
        from: scada
        to: cell
        allow:
          - {protocol: modbus, access: [write], unit_ids: ["1-3"]}
          - {protocol: modbus, access: [read, write, diagnostic]}
          - {protocol: s7comm, access: [read, program_download]}
          - {protocol: tcp, ports: [502, 20000]}
        notify: [program_download, diagnostic]
      - name: second
        from: scada
        to: cell
        allow:
          - {protocol: s7comm, access: [write, program_download]}
          - {protocol: s7comm}
        notify: [lifecycle]
    intra_zone: monitor
    default: deny
    """

    /// `quietAccessMask` only names classes `evaluate` allows whatever the operation, and names the ones a rule with no
    /// lists decides first.
    @Test func quietAccessMaskAgreesWithEvaluate() {
        let p = compiled(Self.quietPolicy)
        let v = p.resolve(initiator: Endpoint(ip: IPAddress("10.10.20.7")!, port: 40000),
                          responder: Endpoint(ip: IPAddress("10.10.30.5")!, port: 502), transport: .tcp)
        #expect(v.kind == .conduit && v.conduitMask.nonzeroBitCount == 2)
        func quiet(_ app: AppProtocol) -> UInt16 {
            p.quietAccessMask(app, pairStart: v.pairStart, conduitMask: v.conduitMask, transportMask: v.transportMask)
        }
        func bits(_ classes: [AccessClass]) -> UInt16 { classes.reduce(0) { $0 | 1 << UInt16($1.rawValue) } }
        // modbus: write is decided by a rule with unit ids first, diagnostic is notified, read is plain.
        #expect(quiet(.modbus) == bits([.read]))
        // s7comm: read by `first`; program_download notified by `first`; the rest by `second`'s any-access rule,
        // except lifecycle (notified there).
        #expect(quiet(.s7comm) == bits(AccessClass.allCases.filter { ![.programDownload, .lifecycle, .response].contains($0) }))
        // dnp3: no rule of its own; the transport rule of `first` covers port 502 with any content, notify aside.
        #expect(quiet(.dnp3) == bits(AccessClass.allCases.filter { ![.programDownload, .diagnostic, .response].contains($0) }))
        for app in AppProtocol.allCases {
            let mask = quiet(app)
            for access in AccessClass.allCases where mask & 1 << UInt16(access.rawValue) != 0 {
                for unit: Int32 in [-1, 1, 7, 300] {
                    for address: Int64 in [-1, 0, 70_000] {
                        var o = op(app, access, fc: 3, "x", unit: unit, address: address, quantity: 4)
                        o.area = 0x84; o.dbNumber = 9
                        #expect(p.evaluate(o, verdict: v).kind == .allowed, "\(app) \(access)")
                    }
                }
            }
        }
    }

    /// Engine contexts (masks and the quiet mask in the slot entry) raise what plain contexts raise and count the same
    /// suppressed ICS-operation rules, for allowed, notified, list-decided and denied operations alike.
    @Test func engineConduitFastPathMatchesPlainContexts() {
        func scenario(engine: Bool) -> (String, DetectionCounters) {
            let d = Detector(policy: compiled(Self.quietPolicy))
            var alerts: [Alert] = []
            let flows = identifiedFlows(d, [("10.10.30.5", 502, .modbus), ("10.10.30.5", 102, .s7comm), ("10.10.30.5", 502, .dnp3)],
                                        engine: engine, alerts: &alerts)
            var frame: UInt64 = 10
            for round in 0..<3 {
                for (i, app) in [AppProtocol.modbus, .s7comm, .dnp3].enumerated() {
                    for access in AccessClass.allCases {
                        for unit: Int32 in [1, 5] {
                            frame += 1
                            // Restart and stop function codes: ICS-operation rules, suppressed when a conduit allows them.
                            let fc: UInt16 = app == .modbus ? 8 : app == .dnp3 ? 0x0D : 0x29
                            var o = op(app, access, fc: fc, "f", unit: unit, address: Int64(round), quantity: 1, sub: 1, frame: frame,
                                       seconds: 1_000 + Int64(round))
                            o.sender = access == .response ? .responder : .initiator
                            d.operation(o, flow: flows[i], alerts: &alerts)
                        }
                    }
                }
            }
            d.finish(alerts: &alerts)
            return (ecs(alerts), d.counters)
        }
        let viaEngine = scenario(engine: true), plain = scenario(engine: false)
        #expect(!plain.0.isEmpty && plain.1.suppressedByConduit > 0)
        #expect(viaEngine.0 == plain.0)
        #expect(viaEngine.1 == plain.1)
    }

    /// A master polling many units behind a gateway on one allowed connection: on an engine's flow an allowed request
    /// whose only news is its unit takes `checkedOperation`'s own path (the unit-scan counter without the evaluation);
    /// the alerts (a unit-id scan among them) and counters are those of the same flows as plain contexts, which take
    /// `checkOperation`. Modbus and DNP3, requests allowed by the quiet mask (reads) and by evaluation (writes to units
    /// 1-3 only: others denied), identification requests, responses, and units repeated, changing and past the
    /// threshold, across windows.
    @Test func unitChangesOnAnEngineFlowMatchPlainContexts() {
        func scenario(engine: Bool) -> (String, DetectionCounters) {
            let d = Detector(policy: compiled(Self.quietPolicy))
            var alerts: [Alert] = []
            let flows = identifiedFlows(d, [("10.10.30.5", 502, .modbus), ("10.10.30.6", 20000, .dnp3)], engine: engine, alerts: &alerts)
            var frame: UInt64 = 10
            for round in 0..<4 {
                for (i, app) in [AppProtocol.modbus, .dnp3].enumerated() {
                    // Units 1, 1, 2, 3, ...: a poll of 3 units, then (from round 1) 12 units, past the threshold of 8.
                    let units: [Int32] = round == 0 ? [1, 1, 2, 3, 2] : [1, 1] + (2...12).map { Int32($0) } + [4, 4]
                    for (n, unit) in units.enumerated() {
                        for (access, fc) in [(AccessClass.read, UInt16(3)), (.write, 6), (.response, 3), (.diagnostic, 43)] {
                            frame += 1
                            var o = op(app, access, fc: fc, "f", unit: unit, address: Int64(n), quantity: 1, sub: fc == 43 ? 14 : 1,
                                       frame: frame, seconds: 1_000 + Int64(round) * 40 + Int64(n / 4))
                            o.sender = access == .response ? .responder : .initiator
                            d.operation(o, flow: flows[i], alerts: &alerts)
                        }
                    }
                }
            }
            d.finish(alerts: &alerts)
            return (ecs(alerts), d.counters)
        }
        let viaEngine = scenario(engine: true), plain = scenario(engine: false)
        #expect(plain.0.contains(RuleID.icsUnitScan.rule.id))
        #expect(viaEngine.0 == plain.0)
        #expect(viaEngine.1 == plain.1)
    }

    /// `passesQuietly` (what `--workers` checks instead of handing the detection thread the operation) says yes only
    /// where `operation` would do nothing but sweep: a detector that gets `tick(time:)` for those operations and
    /// `operation` for the rest raises the same alerts in the same order and counts the same as one that gets
    /// `operation` for all, over allowed, notified, denied, response, unit-changing, identification and rule-raising
    /// operations, a protocol the conduit denies, policy reloads and aggregation windows closing between operations.
    @Test func passesQuietlyOnlyWhereOperationOnlySweeps() {
        func scenario(quietly: Bool) -> (String, DetectionCounters, passed: Int, checked: Int) {
            let d = Detector(policy: compiled(Self.quietPolicy))
            var alerts: [Alert] = []
            var passed = 0, checked = 0
            var flows: [FlowContext] = []
            let apps: [AppProtocol?] = [.modbus, .s7comm, .dnp3, .modbus, nil]
            for (i, app) in apps.enumerated() {
                // Flow 3 is reversed (the cell side opened it); flow 4 has no engine slot.
                var f = i == 3 ? flow("10.10.30.5", "10.10.20.7", sport: 40_003, dport: 502)
                               : flow("10.10.20.7", "10.10.30.5", sport: UInt16(40_000 + i), dport: i == 1 ? 102 : 502)
                if i != 4 { f.flowSlot = Int32(i); f.flowSerial = UInt64(i + 1) }
                d.flowStarted(f, frame: 1, time: t0, alerts: &alerts)
                d.flowIdentified(f, appProtocol: app ?? .modbus, frame: 2, time: t0, alerts: &alerts)
                flows.append(f)
            }
            var frame: UInt64 = 10
            for round in 0..<6 {
                if round == 4 { d.replacePolicy(compiled(Self.quietPolicy)) }
                for (i, f) in flows.enumerated() {
                    let app = apps[i] ?? .modbus
                    for access in AccessClass.allCases {
                        for (unit, fc) in [(Int32(1), UInt16(3)), (1, 3), (5, 8), (-1, 43), (5, 3)] {
                            frame += 1
                            // Seconds of packet time go on past the 60 s windows, so windows close between operations.
                            var o = op(app, access, fc: app == .modbus ? fc : app == .dnp3 ? 0x0D : 0x29, "f", unit: unit,
                                       address: Int64(round), quantity: 1, sub: fc == 43 ? 14 : 1, frame: frame,
                                       seconds: 1_000 + Int64(round) * 25 + Int64(frame % 7))
                            o.sender = access == .response || (frame % 5 == 0) ? .responder : .initiator
                            if quietly {
                                checked += 1
                                // `takeQuietly` must be `passesQuietly` then `tick`.
                                let passes = d.passesQuietly(QuietTraits(o, flow: f))
                                if d.takeQuietly(QuietTraits(o, flow: f), alerts: &alerts) { #expect(passes); passed += 1; continue }
                                #expect(!passes)
                            }
                            d.operation(o, flow: f, alerts: &alerts)
                        }
                    }
                }
            }
            d.finish(alerts: &alerts)
            return (ecs(alerts), d.counters, passed, checked)
        }
        let quiet = scenario(quietly: true), plain = scenario(quietly: false)
        #expect(quiet.passed > 0 && quiet.passed < quiet.checked)
        #expect(!plain.0.isEmpty && plain.1.suppressedByConduit > 0)
        #expect(quiet.0 == plain.0)
        #expect(quiet.1 == plain.1)
        // No engine flow: never quiet this way.
        let d = Detector(policy: compiled(Self.quietPolicy))
        var alerts: [Alert] = []
        let f = flow("10.10.20.7", "10.10.30.5")
        d.flowStarted(f, frame: 1, time: t0, alerts: &alerts)
        d.flowIdentified(f, appProtocol: .modbus, frame: 2, time: t0, alerts: &alerts)
        #expect(!d.passesQuietly(QuietTraits(op(.modbus, .response, fc: 3, "f", sender: .responder), flow: f)))
        #expect(!Detector(policy: nil).passesQuietly(QuietTraits(op(.modbus, .response, fc: 3, "f"), flow: engineFlow("10.10.20.7", "10.10.30.5", slot: 0, serial: 1))))
    }

    /// The prefetch hint names the entry `operation` reads for the slot, and nothing beyond the table.
    @Test func entryAddressNamesTheSlotsEntry() {
        let d = Detector(policy: compiled())
        var alerts: [Alert] = []
        let f = engineFlow("10.10.20.10", "10.10.30.5", slot: 5, serial: 9)
        d.flowStarted(f, frame: 1, time: t0, alerts: &alerts)
        let expected = d.engineSlots.withUnsafeBufferPointer { UnsafeRawPointer($0.baseAddress! + 5) }
        #expect(d.entryAddress(flowSlot: 5) == expected)
        #expect(d.entryAddress(flowSlot: -1) == nil)
        #expect(d.entryAddress(flowSlot: Int32(d.engineSlots.count)) == nil)
    }
}
