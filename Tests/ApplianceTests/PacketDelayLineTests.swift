import Testing
import Capture
import Engine

/// `PacketDelayLine` (live capture without workers) holds packets back for their prefetch hints: the engine must
/// write exactly what it writes when each packet is processed as it comes, whatever the drains and packet sizes.
@Suite struct PacketDelayLineTests {
    /// Runs `file` through one engine behind a delay line with slots of `snapshot` bytes, draining after every
    /// `drainEvery` packets (0: only at the end), as `zonewatch live` does at the end of each batch.
    func runDelayed(_ file: String, snapshot: Int, drainEvery: Int) -> RecordLines {
        let engine = Engine(configuration: engineConfiguration())
        let observer = TestAlertObserver(policy: demoPolicy, sink: engine.sink)
        engine.observer = observer
        let line = PacketDelayLine(engine: engine, snapshotLength: snapshot)
        var out = RecordLines()
        guard let source = try? PacketSource.openFile(file) else { return out }
        var n = 0
        while case .packet(let h, let bytes)? = try? source.next() {
            line.push(bytes, linkType: source.linkType.rawValue, time: h.time, wireLength: h.wireLength)
            n += 1
            #expect(line.held <= Engine.prefetchDistance)
            if drainEvery > 0 && n % drainEvery == 0 { line.drain(); #expect(line.held == 0) }
        }
        line.drain()
        engine.finish()
        engine.drainRecords { out.add($0, $1) }
        return out
    }

    /// Every fixture, with slots for any packet and drains only at the end or every 5 packets, and with 100-byte slots
    /// (longer packets go unheld, after what is held) drained every 17: the same lines in the same order.
    @Test(arguments: [(65_535, 0), (65_535, 5), (100, 17)])
    func everyFixtureGivesWhatTheEngineGivesUndelayed(snapshot: Int, drainEvery: Int) {
        var files = 0
        for file in fixtureCaptures() {
            let expected = runSingle([file], policy: demoPolicy)
            let delayed = runDelayed(file, snapshot: snapshot, drainEvery: drainEvery)
            #expect(delayed == expected, "\(file): delayed \(delayed), undelayed \(expected)")
            files += 1
        }
        #expect(files >= 20)
    }
}
