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

/// Reads every packet of `source` into `engine`, draining records to `records` as they pile up.
/// Returns the read error that ended the loop early (a truncated file), if any.
func runPacketLoop(_ source: PacketSource, session: RunSession, showProgress: Bool) -> CaptureError? {
    let engine = session.engine
    let consumer = EngineConsumer(engine: engine, linkType: source.linkType.rawValue)
    var lastProgress = monotonicSeconds()
    while !stopRequested.load(ordering: .relaxed) {
        let read: Int
        do { read = try source.dispatch(batch: 4096, to: consumer) } catch { return error }
        if read == 0 { return nil }
        if engine.bufferedRecordBytes > 1 << 20 { engine.drainRecords(session.write) }
        if showProgress {
            let t = monotonicSeconds()
            if t - lastProgress >= 1 {
                lastProgress = t
                printErrorRaw("\rzonewatch: \(engine.statistics.packets) packets, \(engine.liveFlows) live flows")
            }
        }
    }
    return nil
}

/// `--workers N`: reads every packet of `source` and hands it to the pipeline (which numbers it, copies it into
/// its flow's worker ring and waits when that ring is full: replay never drops). Returns the read error that
/// ended the loop early, if any.
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

func runParallelPacketLoop(_ source: PacketSource, pipeline: ParallelPipeline, showProgress: Bool) -> CaptureError? {
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
