import Testing
import Wire
import Records
@testable import Policy
@testable import Detection

/// The batch forms of `takeQuietly` the `--workers` merge uses: one worker's run of queued operations
/// (`takeQuietly(run:)`), and two workers' runs merged by key (`takeQuietly(merging:)`).
@Suite struct QuietBatchTests {
    /// A queued operation as the merge holds it: merge key, then the traits (the layout of `--workers`' event headers).
    struct Record {
        var key: UInt64
        var traits: QuietTraits
    }

    /// Two workers' operations, each worker's in key order, merged as the workers' merge does it: quiet runs taken in
    /// one call (two runs at once while both have records, one alone after), any other operation replayed in full.
    /// The detector raises the same alerts in the same order and counts the same as one that gets `operation` for
    /// every operation in (key, worker) order, with aggregation windows closing inside the runs; and the runs end
    /// where they must: at a record that does not pass, after a sweep that leaves alerts, where either run ends.
    @Test func mergedRunsGiveOneDetectorsAlerts() {
        func scenario(batches: Bool) -> (String, DetectionCounters, taken: Int, total: Int, clock: [Int64]) {
            let d = Detector(policy: compiled(DetectorCacheTests.quietPolicy))
            var alerts: [Alert] = []
            // Alerts are handed on after every call, as the merge's observer does (the batches expect none pending).
            var handedOn: [Alert] = []
            func handOn() { handedOn += alerts; alerts.removeAll() }
            var flows: [FlowContext] = []
            // The sweep clock after each operation or run: a sweep made at another operation's time moves it.
            var clock: [Int64] = []
            let apps: [AppProtocol] = [.modbus, .s7comm, .dnp3, .modbus]
            for (i, app) in apps.enumerated() {
                var f = i == 3 ? flow("10.10.30.5", "10.10.20.7", sport: 40_003, dport: 502)
                               : flow("10.10.20.7", "10.10.30.5", sport: UInt16(40_000 + i), dport: i == 1 ? 102 : 502)
                f.flowSlot = Int32(i); f.flowSerial = UInt64(i + 1)
                d.flowStarted(f, frame: 1, time: t0, alerts: &alerts)
                d.flowIdentified(f, appProtocol: app, frame: 2, time: t0, alerts: &alerts)
                flows.append(f)
            }
            handOn()
            // Worker of flow i: i % 2. Keys: two operations a key, so that the workers tie now and then.
            var queued: [[(Record, Operation, FlowContext)]] = [[], []]
            var frame: UInt64 = 10
            // Mostly operations the conduits pass over (reads, writes, responses), now and then one they do not (raising
            // alerts that open aggregation windows); ten a second, so that windows close while operations pass quietly.
            let accesses: [AccessClass] = [.read, .response, .write, .response, .read, .response, .diagnostic, .read, .response,
                                           .write, .response, .programDownload, .read, .response, .read, .response]
            for step in 0..<6_000 {
                let i = step % flows.count, f = flows[i], app = apps[i]
                let access = accesses[(step / flows.count) % accesses.count]
                frame += 1
                var o = op(app, access, fc: app == .modbus ? 3 : app == .dnp3 ? 0x0D : 0x29, "f", unit: step % 97 == 0 ? 5 : 1,
                           address: Int64(step), quantity: 1, sub: 1, frame: frame, seconds: 1_000 + Int64(step / 10))
                o.sender = access == .response ? .responder : .initiator
                o.time = PacketTime(seconds: 1_000 + Int64(step / 10), microseconds: Int32(step % 10) * 100_000)
                queued[i % 2].append((Record(key: frame / 2, traits: QuietTraits(o, flow: f)), o, f))
            }
            // Each worker's keys never decrease; merged order: by key, worker 0 first.
            let total = queued[0].count + queued[1].count
            var taken = 0
            var next = [0, 0]
            func replayHead(_ w: Int) {
                let (_, o, f) = queued[w][next[w]]
                d.operation(o, flow: f, alerts: &alerts)
                handOn()
                next[w] += 1
                if clock.last != d.aggregator.nextSweep { clock.append(d.aggregator.nextSweep) }
            }
            let records = queued.map { $0.map(\.0) }
            let stride = MemoryLayout<Record>.stride
            while next[0] < queued[0].count || next[1] < queued[1].count {
                let both = next[0] < queued[0].count && next[1] < queued[1].count
                let first = !both ? (next[0] < queued[0].count ? 0 : 1)
                                  : (records[0][next[0]].key <= records[1][next[1]].key ? 0 : 1)
                if batches {
                    var took = (0, 0)
                    records[0].withUnsafeBytes { a in
                        records[1].withUnsafeBytes { b in
                            let ra = a.baseAddress! + next[0] * stride, rb = b.baseAddress! + next[1] * stride
                            if both {
                                took = d.takeQuietly(merging: ra, count: queued[0].count - next[0], with: rb,
                                                     count: queued[1].count - next[1], stride: stride, alerts: &alerts)
                                #expect(took.0 <= queued[0].count - next[0] && took.1 <= queued[1].count - next[1])
                            } else {
                                let r = first == 0 ? ra : rb
                                let n = d.takeQuietly(run: r + 8, stride: stride, count: queued[first].count - next[first],
                                                      alerts: &alerts)
                                took = first == 0 ? (n, 0) : (0, n)
                            }
                        }
                    }
                    next[0] += took.0; next[1] += took.1; taken += took.0 + took.1
                    handOn()
                    if clock.last != d.aggregator.nextSweep { clock.append(d.aggregator.nextSweep) }
                    // Nothing taken: the record at the head does not pass; it is replayed in full.
                    if took.0 + took.1 > 0 { continue }
                }
                replayHead(first)
            }
            handOn()
            d.finish(alerts: &alerts)
            handOn()
            return (ecs(handedOn), d.counters, taken, total, clock)
        }
        let batched = scenario(batches: true), plain = scenario(batches: false)
        #expect(batched.taken > 0 && batched.taken < batched.total)
        #expect(!plain.0.isEmpty && plain.1.suppressedByConduit > 0)
        #expect(batched.0 == plain.0)
        #expect(batched.clock == plain.clock && plain.clock.count > 3)
        #expect(batched.1 == plain.1)
    }
}
