import Glibc
import Synchronization
import Capture
import Wire
import Engine
import Appliance

/// Set by SIGINT/SIGTERM: the capture loop stops at the next packet or timeout.
let stopRequested = Atomic<Bool>(false)

/// Installs SIGINT/SIGTERM handlers that ask the loop to stop.
func installStopHandlers() {
    let handler: @convention(c) (Int32) -> Void = { _ in stopRequested.store(true, ordering: .relaxed) }
    signal(SIGINT, handler)
    signal(SIGTERM, handler)
}

/// Monotonic seconds, for throughput and progress only (records carry packet time).
func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Reads every packet of `source` into `engine`, draining records to `records` as they pile up. A classic pcap
/// file (`path`, a regular file) is read through a memory map (`MappedFileReplay`) up to its first record that
/// libpcap must handle; libpcap reads everything else (ZONEWATCH_NO_MAP=1 makes it read everything: a diagnostic
/// for measuring, not a user option). Returns the read error that ended the loop early (a truncated file), if any.
func runPacketLoop(_ source: PacketSource, path: String? = nil, session: RunSession, showProgress: Bool) -> CaptureError? {
    let engine = session.engine
    var lastProgress = monotonicSeconds()
    /// Between batches: records out when they pile up, and the progress line.
    func afterBatch() {
        if engine.bufferedRecordBytes > 1 << 20 { engine.drainRecords(session.write) }
        if showProgress {
            let t = monotonicSeconds()
            if t - lastProgress >= 1 {
                lastProgress = t
                printErrorRaw("\rzonewatch: \(engine.statistics.packets) packets, \(engine.liveFlows) live flows")
            }
        }
    }
    if let path, path != "-", !source.isLive, getenv("ZONEWATCH_NO_MAP") == nil,
       let mapped = MappedFileReplay(path: path, linkType: source.linkType.rawValue, engine: engine,
                                     prefetch: getenv("ZONEWATCH_NO_PREFETCH") == nil) {
        while !stopRequested.load(ordering: .relaxed) {
            if mapped.dispatch(batch: 4096) == 0 { break }
            afterBatch()
        }
        if stopRequested.load(ordering: .relaxed) { return nil }
        do { guard try mapped.handOver(to: source) else { return nil } } catch { return error }
    }
    if !source.readsAhead && getenv("ZONEWATCH_NO_PREFETCH") == nil {
        // No buffer to look ahead in (the old modified pcap formats): packets are held back for their hints instead.
        let line = PacketDelayLine(engine: engine, snapshotLength: source.snapshotLength)
        defer { line.drain() }
        var n = 0
        while !stopRequested.load(ordering: .relaxed) {
            let next: PacketSource.Next
            do { next = try source.next() } catch { return error }
            guard case .packet(let header, let bytes) = next else { return nil }
            line.push(bytes, linkType: source.linkType.rawValue, time: header.time, wireLength: header.wireLength)
            n &+= 1
            if n & 4095 == 0 { afterBatch() }
        }
        return nil
    }
    let consumer = EngineConsumer(engine: engine, linkType: source.linkType.rawValue)
    while !stopRequested.load(ordering: .relaxed) {
        let read: Int
        do { read = try consumer.dispatch(from: source, batch: 4096) } catch { return error }
        if read == 0 { return nil }
        afterBatch()
    }
    return nil
}

/// The `--workers` reader's per-packet work: hand the packet to the pipeline (which numbers it and copies it into its
/// flow's worker ring).
private final class PipelineConsumer: PacketConsumer {
    let pipeline: ParallelPipeline
    let linkType: Int32

    init(pipeline: ParallelPipeline, linkType: Int32) { self.pipeline = pipeline; self.linkType = linkType }

    override func consume(_ header: PacketHeader, _ bytes: ByteView) {
        pipeline.packet(bytes.raw, linkType: linkType, time: header.time, wireLength: header.wireLength)
    }

    override var stopRequested: Bool { zonewatch.stopRequested.load(ordering: .relaxed) }
}

/// `source` and `count - 1` more handles on the same file, none read yet; nil when `path` is not a regular file (a
/// pipe such as `<(...)` must be read once, by one reader), when another handle cannot be opened (the reader thread
/// then feeds the workers) or when the diagnostic ZONEWATCH_WORKER_READER=1 asks for the reader thread
/// (ZONEWATCH_NO_MAP=1: workers read through libpcap, not memory maps; both for measuring, not user options).
private func sharedFileSources(_ source: PacketSource, path: String, count: Int) -> [PacketSource]? {
    guard getenv("ZONEWATCH_WORKER_READER") == nil else { return nil }
    var st = stat()
    guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
    var sources = [source]
    for _ in 1..<max(count, 2) {
        guard let s = try? PacketSource.openFile(path), s.linkType == source.linkType else { return nil }
        sources.append(s)
    }
    return sources
}

/// `--workers N` over one input. A capture file (`path`, not stdin) is read by every worker with its own handle
/// (`ParallelPipeline.replayFile`: no reader thread, no packet copies); otherwise this thread reads `source` and
/// hands each packet to the pipeline (which numbers it, copies it into its flow's worker ring and waits when that
/// ring is full: replay never drops). Returns the read error that ended the input early, if any.
func runParallelPacketLoop(_ source: PacketSource, path: String? = nil, pipeline: ParallelPipeline, showProgress: Bool) -> CaptureError? {
    if let path, path != "-", !source.isLive, let sources = sharedFileSources(source, path: path, count: pipeline.workerCount) {
        return pipeline.replayFile(sources, path: getenv("ZONEWATCH_NO_MAP") == nil ? path : nil,
                                   stop: { zonewatch.stopRequested.load(ordering: .relaxed) },
                                   progress: showProgress ? { packets in
                                       printErrorRaw("\rzonewatch: \(packets) packets, \(pipeline.liveFlows) live flows")
                                   } : nil)
    }
    let consumer = PipelineConsumer(pipeline: pipeline, linkType: source.linkType.rawValue)
    var lastProgress = monotonicSeconds()
    while !stopRequested.load(ordering: .relaxed) {
        let read: Int
        do { read = try source.dispatch(batch: 65536, to: consumer) } catch { return error }
        if read == 0 { return nil }
        if showProgress {
            let t = monotonicSeconds()
            if t - lastProgress >= 1 {
                lastProgress = t
                printErrorRaw("\rzonewatch: \(pipeline.framesRead) packets, \(pipeline.liveFlows) live flows")
            }
        }
    }
    return nil
}
