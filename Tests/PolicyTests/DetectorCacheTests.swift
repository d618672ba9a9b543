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
            var m = MessageText(bytes: [])
            m.add(ip)
            #expect(String(decoding: m.bytes, as: UTF8.self) == "\(ip)")
            #expect(Detector.ipText(ip) == "\(ip)")
        }
        for v: Int64 in [0, 7, -7, 1_000_000, .max, .min] {
            var m = MessageText(bytes: [])
            m.add(v)
            #expect(String(decoding: m.bytes, as: UTF8.self) == "\(v)")
        }
        var m = MessageText(bytes: [])
        m.add("modbus"); m.add(" é "); m.add(String("zone ü"))
        #expect(String(decoding: m.bytes, as: UTF8.self) == "modbus é zone ü")
    }
}
