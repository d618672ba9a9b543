import Testing
import Wire
import Records
@testable import Policy
@testable import Detection

/// What lets a `--workers` engine leave operations unsent: its copy of the detector's verdict on a flow with the units
/// it follows itself (`QuietVerdict`, `QuietUnits`) says what `Detector.passesQuietly` says, and leaving unsent the
/// operations it passes, once an event of their second of packet time went, changes no alert (sweeps close windows
/// on whole seconds: `Aggregator.nextSweep`).
@Suite struct QuietVerdictTests {
    /// A plant of conduit flows (one started by the responder's side, so its verdict is reversed), a flow the conduit
    /// denies the protocol of and an intra-zone one; requests and responses from both sides, unit changes,
    /// identification, writes and program downloads (notified or not allowed: they raise, and open aggregation
    /// windows), ten operations a second of packet time.
    struct Plant {
        /// Two-second aggregation windows, so that many close while operations pass quietly.
        let d = Detector(policy: compiled(DetectorCacheTests.quietPolicy), config: { var c = DetectionConfig(); c.aggregationWindowSeconds = 2; return c }())
        var flows: [FlowContext] = []
        let apps: [AppProtocol] = [.modbus, .s7comm, .dnp3, .modbus, .dnp3, .modbus]
        var alerts: [Alert] = []

        init() {
            for (i, app) in apps.enumerated() {
                var f: FlowContext
                switch i {
                case 3: f = flow("10.10.30.5", "10.10.20.7", sport: 502, dport: 40_003, midstream: true)   // reversed
                case 4: f = flow("10.10.20.7", "10.10.30.5", sport: 40_004, dport: 2_404)  // not allowed
                case 5: f = flow("10.10.20.7", "10.10.20.9", sport: 40_005, dport: 502)    // intra-zone
                default: f = flow("10.10.20.7", "10.10.30.5", sport: UInt16(40_000 + i), dport: i == 1 ? 102 : 502)
                }
                f.flowSlot = Int32(i); f.flowSerial = UInt64(i + 1)
                d.flowStarted(f, frame: 1, time: t0, alerts: &alerts)
                d.flowIdentified(f, appProtocol: app, frame: 2, time: t0, alerts: &alerts)
                flows.append(f)
            }
        }

        /// Operation `step` and the flow it belongs to.
        func operation(_ step: Int) -> (Operation, Int) {
            let i = step % flows.count, app = apps[i]
            let accesses: [AccessClass] = [.read, .response, .write, .response, .read, .response, .diagnostic, .read, .response,
                                           .read, .response, .programDownload, .read, .response, .read, .response, .write]
            let access = accesses[(step / flows.count + i) % accesses.count]
            var o = op(app, access, fc: app == .modbus ? 3 : app == .dnp3 ? 0x0D : 0x29, "f",
                       unit: step % 53 == 0 ? Int32(step % 7) : step % 31 == 0 ? 2 : step % 17 == 0 ? Int32(4 + step % 5) : 1,
                       frame: UInt64(10 + step))
            // Now and then a request from the other side (the verdict's responder asking).
            o.sender = access == .response ? .responder : (step % 23 == 0 ? .responder : .initiator)
            // Irregular times within each second, so that which operation first reaches a time differs.
            o.time = PacketTime(seconds: 1_000 + Int64(step / 10), microseconds: Int32((step &* 7_919) % 1_000_000))
            return (o, i)
        }
    }

    /// Operation by operation, the engine's check on the verdict and its own units agrees with the detector's, for
    /// every flow (none for the flows a conduit does not allow quietly).
    @Test func verdictAndUnitsDecideAsTheDetector() {
        var plant = Plant()
        var units = [QuietUnits](repeating: QuietUnits(), count: plant.flows.count)
        var yes = 0, no = 0
        for step in 0..<5_000 {
            let (o, i) = plant.operation(step)
            let f = plant.flows[i]
            var t = QuietTraits(o, flow: f)
            let detector = plant.d.passesQuietly(t)
            let v = plant.d.quietVerdict(flowSlot: f.flowSlot, flowSerial: f.flowSerial, engineSerial: f.flowSerial)
            let engine = v.isFor(serial: f.flowSerial) && withUnsafePointer(to: t) { v.passes($0, units: units[i]) }
            #expect(engine == detector, "step \(step), flow \(i)")
            if engine { yes += 1 } else { no += 1 }
            withUnsafePointer(to: &t) { units[i].note($0) }
            plant.d.operation(o, flow: f, alerts: &plant.alerts)
        }
        #expect(yes > 1_500 && no > 1_000)
        // The denied and intra-zone flows get no verdict; the reversed one does, reversed.
        #expect(plant.d.quietVerdict(flowSlot: 4, flowSerial: 5, engineSerial: 5) == .none)
        #expect(plant.d.quietVerdict(flowSlot: 5, flowSerial: 6, engineSerial: 6) == .none)
        #expect(plant.d.quietVerdict(flowSlot: 3, flowSerial: 4, engineSerial: 4).bits & 1 << 20 != 0)
        #expect(plant.d.quietVerdict(flowSlot: 0, flowSerial: 1, engineSerial: 1).bits & 1 << 20 == 0)
        // A verdict names its flow: not the next one in the same slot.
        #expect(!plant.d.quietVerdict(flowSlot: 0, flowSerial: 1, engineSerial: 1).isFor(serial: 1 + 1 << 40 + 1))
    }

    /// A detector that gets only what a `--workers` engine sends (every operation but those its verdict passes once
    /// an event of their second went) raises the same alerts, summaries included, in the same order, and counts the
    /// same as one that gets every operation.
    @Test func leavingPassedOperationsUnsentChangesNoAlert() {
        func scenario(engineDecides: Bool) -> (String, DetectionCounters, unsent: Int) {
            var plant = Plant()
            var units = [QuietUnits](repeating: QuietUnits(), count: plant.flows.count)
            var sent = SentSecond(), unsent = 0
            for step in 0..<6_000 {
                let (o, i) = plant.operation(step)
                let f = plant.flows[i]
                if engineDecides {
                    var t = QuietTraits(o, flow: f)
                    let v = plant.d.quietVerdict(flowSlot: f.flowSlot, flowSerial: f.flowSerial, engineSerial: f.flowSerial)
                    let quiet = sent.covers(o.time) && v.isFor(serial: f.flowSerial)
                        && withUnsafePointer(to: t) { v.passes($0, units: units[i]) }
                    withUnsafePointer(to: &t) { units[i].note($0) }
                    if quiet { unsent += 1; continue }
                    sent.sent(o.time)
                }
                plant.d.operation(o, flow: f, alerts: &plant.alerts)
            }
            plant.d.finish(alerts: &plant.alerts)
            return (ecs(plant.alerts), plant.d.counters, unsent)
        }
        let all = scenario(engineDecides: false), sent = scenario(engineDecides: true)
        #expect(sent.unsent > 1_500)
        #expect(all.1.summaries > 5 && all.1.raised > 5)
        #expect(sent.0 == all.0)
        #expect(sent.1 == all.1)
    }

    /// Sweeps close the windows that ended by the start of the event's whole second, once per second, never back.
    @Test func sweepsCloseWindowsOnWholeSeconds() {
        var a = Aggregator(windowMicroseconds: 5_000_000, capacity: 64)
        var alerts: [Alert] = []
        let key = AggregationKey(rule: 1, source: IPAddress(v4: 1), destination: IPAddress(v4: 2))
        let opened = PacketTime(seconds: 10, microseconds: 300_000)
        a.open(key, alert: Alert(time: opened, frame: 1, severity: 1, action: "", ruleID: "", ruleName: "", category: .capture, message: ""))
        #expect(a.fold(key, time: PacketTime(seconds: 12, microseconds: 0), frame: 2, alerts: &alerts))
        a.sweep(PacketTime(seconds: 15, microseconds: 900_000), into: &alerts)   // ends at 15.3: not by 15.0
        #expect(alerts.isEmpty && a.nextSweep == 16_000_000)
        a.sweep(PacketTime(seconds: 15, microseconds: 999_999), into: &alerts)   // the same second: no sweep
        #expect(alerts.isEmpty)
        a.sweep(PacketTime(seconds: 16, microseconds: 1), into: &alerts)
        #expect(alerts.count == 1 && alerts.first?.count == 1 && a.nextSweep == 17_000_000)
        a.sweep(PacketTime(seconds: 3, microseconds: 0), into: &alerts)          // time went back: the clock stays
        #expect(a.nextSweep == 17_000_000)
        // Which event reaches a second makes no difference: sweeping at 11.7 and 11.9, or at 11.9 alone, leaves the
        // same windows open when an alert is raised at 11.9 (with sweeps at event times, the window ending at 11.8
        // closed before that alert on one path and after it on the other).
        func path(_ sweeps: [Int32]) -> [UInt64] {
            var g = Aggregator(windowMicroseconds: 2_000_000, capacity: 64)
            var out: [Alert] = []
            func alert(_ us: Int32, _ frame: UInt64) -> Alert {
                Alert(time: PacketTime(seconds: 10, microseconds: us), frame: frame, severity: 1, action: "", ruleID: "",
                      ruleName: "", category: .capture, message: "")
            }
            for (n, end) in [(1, 1_600_000), (2, 1_800_000)] {
                let k = AggregationKey(rule: UInt8(n), source: IPAddress(v4: 1), destination: IPAddress(v4: 2))
                g.open(k, alert: alert(Int32(end - 2_000_000), UInt64(n)))
                _ = g.fold(k, time: PacketTime(seconds: 10, microseconds: Int32(end - 1_900_000)), frame: UInt64(n), alerts: &out)
            }
            g.sweep(PacketTime(seconds: 10, microseconds: 200_000), into: &out)
            for us in sweeps { g.sweep(PacketTime(seconds: 11, microseconds: us), into: &out) }
            out.append(alert(1_900_000, 3))   // raised at 11.9 (a new key)
            g.open(AggregationKey(rule: 3, source: IPAddress(v4: 1), destination: IPAddress(v4: 2)), alert: alert(1_900_000, 3))
            g.sweep(PacketTime(seconds: 13, microseconds: 500_000), into: &out)
            g.flushAll(into: &out)
            return out.map(\.frame)
        }
        #expect(path([700_000, 900_000]) == path([900_000]))
        #expect(path([900_000]) == [3, 1, 2])
        #expect(Aggregator.wholeSecond(-1) == -1_000_000 && Aggregator.wholeSecond(-1_000_000) == -1_000_000
                && Aggregator.wholeSecond(1_999_999) == 1_000_000)
    }

    /// A packet time whose microseconds overflow `Int64` (a pcapng timestamp at or past 2^63 µs, which libpcap hands on
    /// as seconds ≈ 9.22e12) counts for the engine's clock (`SentSecond`) as for the detector's (`Aggregator.nextSweep`,
    /// in wrapped `totalMicroseconds`): the operations left unsent change no alert (counted in `PacketTime.seconds`, the
    /// engine ran ahead of the detector, left unsent the operation that first reached a second, and a repeat after
    /// time stepped back was folded into a window one engine had closed).
    @Test func packetTimesWhoseMicrosecondsWrapKeepTheAlertsOfOneEngine() {
        func scenario(engineDecides: Bool) -> String {
            let d = Detector(policy: compiled(DetectorCacheTests.quietPolicy))
            var alerts: [Alert] = []
            var f = flow("10.10.20.7", "10.10.30.5", sport: 40_000, dport: 502)
            f.flowSlot = 0; f.flowSerial = 1
            let huge = PacketTime(seconds: 9_223_372_036_860, microseconds: 0)   // × 1,000,000 wraps
            let t: Int64 = 1_000
            d.flowStarted(f, frame: 1, time: huge, alerts: &alerts)
            d.flowIdentified(f, appProtocol: .modbus, frame: 2, time: PacketTime(seconds: t - 100, microseconds: 0), alerts: &alerts)
            var sent = SentSecond()   // both events went
            sent.sent(huge); sent.sent(PacketTime(seconds: t - 100, microseconds: 0))
            var units = QuietUnits()
            let v = d.quietVerdict(flowSlot: 0, flowSerial: 1, engineSerial: 1)
            #expect(v != .none)
            var frame: UInt64 = 3
            func send(_ access: AccessClass, fc: UInt16, _ time: PacketTime) {
                var o = op(.modbus, access, fc: fc, "x", unit: 1, frame: frame)
                o.time = time; frame += 1
                if engineDecides {
                    var traits = QuietTraits(o, flow: f)
                    let quiet = sent.covers(o.time) && v.isFor(serial: 1) && withUnsafePointer(to: traits) { v.passes($0, units: units) }
                    withUnsafePointer(to: &traits) { units.note($0) }
                    if quiet { return }
                    sent.sent(o.time)
                }
                d.operation(o, flow: f, alerts: &alerts)
            }
            send(.read, fc: 3, PacketTime(seconds: t - 99, microseconds: 0))
            send(.diagnostic, fc: 8, PacketTime(seconds: t, microseconds: 0))       // notified: a window to t + 60
            send(.diagnostic, fc: 8, PacketTime(seconds: t + 1, microseconds: 0))   // folded
            for k in 2..<60 { send(.read, fc: 3, PacketTime(seconds: t + Int64(k), microseconds: 0)) }
            send(.read, fc: 3, PacketTime(seconds: t + 60, microseconds: 500_000))       // first of second t + 60: closes it
            send(.diagnostic, fc: 8, PacketTime(seconds: t + 59, microseconds: 900_000)) // time back: a new window
            d.finish(alerts: &alerts)
            return ecs(alerts)
        }
        let all = scenario(engineDecides: false)
        #expect(all.split(separator: "\n").count == 3)
        #expect(scenario(engineDecides: true) == all)
    }

    /// With a policy, a flow-cache reset (`maximumTrackedFlows` states not owned by engine flows) leaves the entries of
    /// engine flows as they were: the verdict a worker holds stays the detector's, and both still decide alike.
    /// (Fails if `allocateSlot` drops every state again.)
    @Test func flowCacheResetKeepsEngineFlowsEntries() {
        var config = DetectionConfig()
        config.maximumTrackedFlows = 16
        let d = Detector(policy: compiled(DetectorCacheTests.quietPolicy), config: config)
        var alerts: [Alert] = []
        var f = flow("10.10.20.7", "10.10.30.5", sport: 40_000, dport: 502)
        f.flowSlot = 3; f.flowSerial = 7
        d.flowStarted(f, frame: 1, time: t0, alerts: &alerts)
        d.flowIdentified(f, appProtocol: .modbus, frame: 2, time: t0, alerts: &alerts)
        var first = op(.modbus, .read, fc: 3, "read", unit: 1)
        d.operation(first, flow: f, alerts: &alerts)   // the unit is now the flow's last
        let v = d.quietVerdict(flowSlot: 3, flowSerial: 7, engineSerial: 7)
        #expect(v != .none)
        // Flows with no engine serial, enough to reset the cache several times.
        for i in 0..<100 {
            let other = flow("10.10.20.\(10 + i % 200)", "10.10.30.\(10 + i / 200)", sport: UInt16(41_000 + i), dport: 502)
            d.flowStarted(other, frame: UInt64(10 + i), time: t0, alerts: &alerts)
        }
        #expect(d.counters.flowCacheResets > 0)
        first.frame = 200
        var units = QuietUnits()
        var traits = QuietTraits(first, flow: f)
        withUnsafePointer(to: &traits) { units.note($0) }
        let read = op(.modbus, .read, fc: 3, "read", unit: 1, frame: 201)
        let t = QuietTraits(read, flow: f)
        #expect(d.quietVerdict(flowSlot: 3, flowSerial: 7, engineSerial: 7) == v)
        #expect(d.passesQuietly(t))
        #expect(withUnsafePointer(to: t) { v.passes($0, units: units) })
    }
}
