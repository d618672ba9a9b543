import Foundation
import Testing
import Wire
import Records
import Flows
import Capture
import Engine
import Policy
import Detection
@testable import Appliance

/// The repository root (Tests/ApplianceTests/…).
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

func fixture(_ path: String) -> String { repositoryRoot.appendingPathComponent("Fixtures/" + path).path }

/// Every capture under Fixtures/, sorted.
func fixtureCaptures() -> [String] {
    let root = repositoryRoot.appendingPathComponent("Fixtures")
    var out: [String] = []
    let e = FileManager.default.enumerator(atPath: root.path)
    while let p = e?.nextObject() as? String {
        if p.hasSuffix(".pcap") || p.hasSuffix(".pcapng") { out.append(root.appendingPathComponent(p).path) }
    }
    return out.sorted()
}

/// The demo policy, compiled.
let demoPolicy: CompiledPolicy = {
    let (p, errors) = checkPolicyFile(path: fixture("demo/policy.yaml"))
    precondition(errors.isEmpty, "\(errors)")
    return p!
}()

/// What `AlertPipeline` (in the zonewatch executable) does, for in-process runs: detection, alerts as ECS lines.
final class TestAlertObserver: EngineObserver, QuietOperationObserver {
    let detector: Detector
    let sink: EventSink
    var pending: [Alert] = []
    /// As `AlertPipeline`: the end of input's flow ends only forget the detector's state (false), unless a test asks.
    let wantsFlowEndsAtEndOfInput: Bool
    /// `flowEnded` calls by end reason (`FlowEndReason.name`).
    var flowEnds: [String: Int] = [:]
    init(policy: CompiledPolicy?, sink: EventSink, wantsFlowEndsAtEndOfInput: Bool = false) {
        detector = Detector(policy: policy); self.sink = sink; self.wantsFlowEndsAtEndOfInput = wantsFlowEndsAtEndOfInput
    }
    func flowStarted(_ flow: FlowContext, frame: UInt64, time: PacketTime) { detector.flowStarted(flow, frame: frame, time: time, alerts: &pending); publish() }
    func flowIdentified(_ flow: FlowContext, appProtocol: AppProtocol?, frame: UInt64, time: PacketTime) {
        detector.flowIdentified(flow, appProtocol: appProtocol, frame: frame, time: time, alerts: &pending); publish()
    }
    func operation(_ op: Records.Operation, flow: FlowContext) { detector.operation(op, flow: flow, alerts: &pending); publish() }
    func anomaly(_ a: Anomaly, flow: FlowContext?) { detector.anomaly(a, flow: flow, alerts: &pending); publish() }
    func flowEnded(_ flow: FlowContext, reason: FlowEndReason) { flowEnds["\(reason.name)", default: 0] += 1; detector.flowEnded(flow) }
    func tick(time: PacketTime) { detector.tick(time: time, alerts: &pending); publish() }
    func finish() { detector.finish(alerts: &pending); publish() }
    /// Operations taken by their quiet traits alone (the detection thread only).
    var quietOperations = 0
    func takeQuietly(_ traits: QuietTraits) -> Bool {
        guard detector.takeQuietly(traits, alerts: &pending) else { return false }
        quietOperations += 1
        publish()
        return true
    }
    /// Runs of operations taken in one call, as `AlertPipeline` does (the merge's usual path).
    func takeQuietly(run first: UnsafeRawPointer, stride: Int, count: Int) -> Int {
        guard pending.isEmpty else { return takeQuietly(first.load(as: QuietTraits.self)) ? 1 : 0 }
        let taken = detector.takeQuietly(run: first, stride: stride, count: count, alerts: &pending)
        quietOperations += taken
        publish()
        return taken
    }
    func takeQuietly(merging a: UnsafeRawPointer, count aCount: Int, with b: UnsafeRawPointer, count bCount: Int, stride: Int) -> (Int, Int) {
        guard pending.isEmpty else { return (0, 0) }
        let taken = detector.takeQuietly(merging: a, count: aCount, with: b, count: bCount, stride: stride, alerts: &pending)
        quietOperations += taken.0 + taken.1
        publish()
        return taken
    }
    func publish() {
        for a in pending { sink.json.reset(); a.writeECS(to: &sink.json); sink.finishLine(.alert) }
        pending.removeAll()
    }
}

/// Record lines per kind.
struct RecordLines: Equatable, CustomStringConvertible {
    var lines: [RecordKind: [String]] = [:]
    mutating func add(_ kind: RecordKind, _ bytes: [UInt8]) {
        for l in String(decoding: bytes, as: UTF8.self).split(separator: "\n") { lines[kind, default: []].append(String(l)) }
    }
    /// Line order is not part of the contract with several workers.
    var sorted: RecordLines { var r = self; for k in r.lines.keys { r.lines[k]!.sort() }; return r }
    var count: Int { lines.values.reduce(0) { $0 + $1.count } }
    var description: String { lines.map { "\($0.key): \($0.value.count)" }.sorted().joined(separator: ", ") }
}

func engineConfiguration(anomalyLimit: Int = 1_000) -> EngineConfiguration {
    var c = EngineConfiguration()
    c.transactionRecords = true; c.flowRecords = true; c.anomalyRecords = true
    c.anomalyLogLimitPerKind = anomalyLimit
    return c
}

/// Runs capture files through one engine, as `zonewatch replay --out` does.
func runSingle(_ files: [String], policy: CompiledPolicy?, anomalyLimit: Int = 1_000) -> RecordLines {
    let engine = Engine(configuration: engineConfiguration(anomalyLimit: anomalyLimit))
    let observer = TestAlertObserver(policy: policy, sink: engine.sink)
    engine.observer = observer
    var out = RecordLines()
    for file in files {
        guard let source = try? PacketSource.openFile(file) else { continue }
        while case .packet(let h, let bytes)? = try? source.next() {
            engine.process(bytes, linkType: source.linkType.rawValue, time: h.time, wireLength: h.wireLength)
        }
    }
    engine.finish()
    engine.drainRecords { out.add($0, $1) }
    return out
}

/// How `runParallel` hands a file to the pipeline.
enum PipelineFeed {
    /// This thread reads and pushes each packet into the rings (stdin, live capture).
    case reader
    /// The workers read the file themselves (`replayFile`), through memory maps where they can (`mapped`) or
    /// through libpcap only.
    case workersRead(mapped: Bool)
    /// Files alternately one way and the other (workers first).
    case alternating
    /// Files alternately one way and the other (the reader first).
    case alternatingFromReader
}

/// Runs capture files through the multi-worker pipeline.
func runParallel(_ files: [String], policy: CompiledPolicy?, workers: Int, ringBytes: Int = 1 << 20, eventCapacity: Int = 64,
                 fileEventCapacity: Int = 4096, anomalyLimit: Int = 1_000, feed: PipelineFeed = .reader,
                 wantsFlowEndsAtEndOfInput: Bool = false,
                 finished: ((TestAlertObserver) -> Void)? = nil, pipelineFinished: ((ParallelPipeline) -> Void)? = nil) -> RecordLines {
    let sink = EventSink()
    let observer = TestAlertObserver(policy: policy, sink: sink, wantsFlowEndsAtEndOfInput: wantsFlowEndsAtEndOfInput)
    var settings = ParallelPipeline.Settings(workers: workers)
    settings.ringBytes = ringBytes
    settings.eventCapacity = eventCapacity
    settings.fileEventCapacity = fileEventCapacity
    settings.recordFlushBytes = 4096
    settings.anomalyRecords = true
    settings.anomalyLogLimitPerKind = anomalyLimit
    var workerConfiguration = engineConfiguration(anomalyLimit: anomalyLimit)
    workerConfiguration.anomalyRecords = false
    let collected = Collector()
    let pipeline = ParallelPipeline(settings: settings, makeEngine: { _ in Engine(configuration: workerConfiguration) },
                                    observer: observer, alertSink: sink, detector: observer.detector,
                                    write: { collected.add($0, $1) })
    pipeline.start()
    for (i, file) in files.enumerated() {
        guard let source = try? PacketSource.openFile(file) else { continue }
        var workersRead = false, mapped = true
        switch feed {
        case .reader: break
        case .workersRead(let m): workersRead = true; mapped = m
        case .alternating: workersRead = i % 2 == 0
        case .alternatingFromReader: workersRead = i % 2 == 1
        }
        if workersRead {
            let sources = [source] + (1..<workers).compactMap { _ in try? PacketSource.openFile(file) }
            _ = pipeline.replayFile(sources, path: mapped ? file : nil, stop: { false })
            continue
        }
        while case .packet(let h, let bytes)? = try? source.next() {
            pipeline.packet(bytes.raw, linkType: source.linkType.rawValue, time: h.time, wireLength: h.wireLength)
        }
    }
    pipeline.finish()
    finished?(observer)
    pipelineFinished?(pipeline)
    return collected.lines
}

/// Collects lines written by the pipeline (its write lock serialises the calls).
final class Collector: @unchecked Sendable {
    var lines = RecordLines()
    func add(_ kind: RecordKind, _ bytes: [UInt8]) { lines.add(kind, bytes) }
}

// MARK: - Crafted packets

/// An Ethernet/IPv4/TCP frame (checksums zero: the engine does not verify them).
func tcpFrame(src: UInt32, sport: UInt16, dst: UInt32, dport: UInt16, seq: UInt32, ack: UInt32 = 0, flags: UInt8, payload: [UInt8] = []) -> [UInt8] {
    func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xFF)] }
    func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
    let eth: [UInt8] = [0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 6, 0x08, 0x00]
    let tcp = be16(sport) + be16(dport) + be32(seq) + be32(ack) + [0x50, flags] + be16(65535) + [0, 0, 0, 0] + payload
    let ip: [UInt8] = [0x45, 0] + be16(UInt16(20 + tcp.count)) + [0, 1, 0x40, 0, 64, 6, 0, 0] + be32(src) + be32(dst)
    return eth + ip + tcp
}

/// A classic pcap file (µs, little-endian, Ethernet) with one packet per 10 ms from `start`.
func pcapFile(_ packets: [[UInt8]], start: UInt32 = 1_700_000_000, stepMicroseconds: UInt32 = 10_000) -> [UInt8] {
    pcapFile(timed: packets.enumerated().map { i, p in
        let t = Int64(start) * 1_000_000 + Int64(i) * Int64(stepMicroseconds)
        return (PacketTime(seconds: t / 1_000_000, microseconds: Int32(t % 1_000_000)), p)
    })
}

/// A classic pcap file (µs, little-endian, Ethernet) of `packets` at their times.
func pcapFile(timed packets: [(PacketTime, [UInt8])]) -> [UInt8] {
    func le32(_ v: UInt32) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v >> 16 & 0xFF), UInt8(v >> 24)] }
    var b = le32(0xA1B2_C3D4) + [2, 0, 4, 0] + le32(0) + le32(0) + le32(65535) + le32(1)
    for (t, p) in packets {
        b += le32(UInt32(t.seconds)) + le32(UInt32(t.microseconds)) + le32(UInt32(p.count)) + le32(UInt32(p.count)) + p
    }
    return b
}

/// The packets of `file`: time, wire length, bytes.
func capturedPackets(_ file: String) throws -> [(PacketTime, Int, [UInt8])] {
    let source = try PacketSource.openFile(file)
    var all: [(PacketTime, Int, [UInt8])] = []
    while case .packet(let h, let b)? = try? source.next() { all.append((h.time, h.wireLength, Array(b.raw))) }
    return all
}

func temporaryFile(_ bytes: [UInt8], _ name: String) throws -> String {
    let path = NSTemporaryDirectory() + "zw-appl-\(ProcessInfo.processInfo.processIdentifier)-\(name)"
    // Atomically (a new file renamed into place): tests running at once write the same capture under one name, and
    // one read a file another was still writing.
    try Data(bytes).write(to: URL(fileURLWithPath: path), options: .atomic)
    return path
}

func ipv4(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) -> UInt32 { UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d) }
