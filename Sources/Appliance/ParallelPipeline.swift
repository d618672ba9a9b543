import Glibc
import Synchronization
import CPrefetch
import CAppliance
import Wire
import Capture
import Records
import Decode
import Flows
import Engine
import Policy
import Detection

/// `--workers N`: N worker threads each run their own `Engine` (flows, reassembly, dissectors, records) with
/// nothing shared on the per-packet path; one `Detector` runs over the workers' observer events merged back into
/// packet order (`DetectionStage`: on a detection thread, or, while the workers read a file, in the workers
/// themselves). Packets reach the workers one of two ways:
///
/// - A capture file (`replayFile`): the workers read the file themselves, through one memory map of the file
///   shared by all (`SharedCaptureMap`, `MappedCapture`; libpcap for pcapng and from any record libpcap must
///   handle). One owner pass over it is shared (`OwnerPass`): each stretch of records is walked once, by whichever
///   worker needs it first, which lists for every worker the records it acts on. Each worker numbers every packet
///   so frame numbers stay global, runs the sweep a single engine would run at it, and processes only the packets
///   whose flow hashes to it (`FileShareReader.readSharedPass`). No reader thread, no packet copies: what the
///   others' packets cost is one header read and one flow hash each, in all.
/// - Standard input and live captures (`packet`): one reader (the calling thread) numbers packets and copies each
///   into the ring of the worker its flow hashes to.
///
/// Why the file way: with a reader thread every packet is read by libpcap (two copies), copied again into a ring,
/// and its cache lines then move to the worker's core; on a 2-core machine the reader took about a fifth of the
/// CPU time and was a fourth thread on two cores. A reader queueing only references into a mapped file (measured
/// too) still paid a cross-core cache-line transfer per packet for the ring message, plus a miss in the worker
/// for the packet itself. Workers reading the file themselves each paid a header read and a hash for every packet
/// of the others (about an eighth of their time on the mixed plant); sharing the owner pass halves that, at the
/// price of a 16-byte list entry per record and packets whose lines the walker brought in (fetched well ahead).
///
/// Why the workers merge while they read a file: a detection thread is a third thread on two cores, preempting a
/// worker whenever it has work. The merge is a step any thread may take (`DetectionStage.tryMerge`, under one
/// lock); the worker on duty takes it every 1,024 packets or so, the duty passes to a worker well ahead of it, and
/// a worker whose event queue is full takes a step itself, so the work balances between the two and the
/// detector's state stays in one cache for long stretches.
///
/// Why detection is not per worker: several rules count across flows and host pairs (an ICS host scan is one
/// source opening flows to many hosts, an unknown host is reported once however many peers it has, alerts are
/// folded per host pair). Split by flow, N detectors would each see part of a scan and report an unknown host
/// N times. Merging the events by the reader's sequence number (ties by worker index) gives the detector the
/// exact sequence a single engine would have produced, so alerts are identical to one worker's, and records
/// (built by the workers' engines with the global frame numbers) are identical up to line order.
///
/// Operations: nearly every operation of a plant is one the detector passes over (a conduit allows it, nothing
/// to count), and each event is a few cache lines written on one core and read on another. So when the detection
/// observer is a `QuietOperationObserver`, a worker sends every operation with its `QuietTraits` (48 bytes with the
/// merge key, in the event queue's header array) and without its flow's context (the detection thread keeps each
/// identified flow's context by slot, from `flowIdentified`), and the detection thread asks the detector, on its
/// own flow state at that
/// point of the merged stream, whether the operation would only sweep the aggregation windows
/// (`Detector.takeQuietly`, exactly `isAllowedQuietly` without its clock test); then it does that sweep and never
/// reads the event, whose cache lines stay with the worker. Only when the answer is no does it read the event and
/// replay it. Nothing is decided in the worker, so alerts stay exact whatever the detector's state (policy
/// reloads, flow-cache resets); on the mixed plant 97% of operations go this way. The merge hands the detector such
/// operations a run at a time (`QuietOperationObserver.takeQuietly(run:)`), and with two workers both queues' runs
/// at once, merged by key inside the detector's loop (`takeQuietly(merging:)`): the two workers' events interleave
/// two or three at a time, and picking the next worker per run cost more than the check itself. Per operation, a
/// crossing cost about 500 instructions in all (worker and merge) before this, about 300 now; one engine spends about
/// 130 on the same operations.
///
/// Sweeps: a single engine ends idle flows at the first packet of each new second of packet time. The reader
/// keeps the same clock and sends an `advance` message at that frame to every worker that did not get the
/// packet; a worker reading the file keeps that clock itself and advances its engine at that frame. Either way
/// every flow ends at the same frame as with one worker. Merge keys: the reader numbers its messages; a worker
/// reading a file gives each packet's events the key its packet would have had (keys go on from the file's
/// first packet), so the detection merge is the same for both.
///
/// Bounds: each ring holds `ringBytes` (packets are copied once, into preallocated memory); each event queue
/// holds `eventCapacity` events (a worker reading a file ahead of the others waits there: they cannot drift apart
/// by more); the shared map of a file keeps page-table entries only from a few MiB behind the slowest worker to a
/// few MiB ahead of the fastest (without it, each worker maps two 4 MiB windows). Replay (`blocking`) waits when a ring is full
/// and never drops; a live capture counts the packet in `queueDrops` instead, so loss stays visible.
public final class ParallelPipeline: @unchecked Sendable {
    /// How the pipeline is shaped.
    public struct Settings: Sendable {
        /// Worker threads (engines).
        public var workers: Int
        /// Bytes per worker ring.
        public var ringBytes = 8 << 20
        /// Detection events per worker queue (a 48-byte header and a 96-byte operation slot or a 208-byte event slot
        /// each: up to 11 MiB a worker, touched only as far as used). Deep enough that
        /// two workers sharing two cores with the detection thread seldom wait on it: on the mixed plant, 8,192
        /// gave about twice the context switches (voluntary and involuntary) and a slower replay.
        public var eventCapacity = 32768
        /// Detection events per worker queue while the workers read a file and merge themselves (at most
        /// `eventCapacity`).
        public var fileEventCapacity = 4096
        /// Replay: wait when a ring is full. Live: drop and count.
        public var blocking = true
        /// Flows are keyed without their VLAN ID (the engines' `EngineConfiguration.ignoresVLANs`, which must agree):
        /// the dispatch then sends both directions of a flow tagged differently to one worker.
        public var ignoresVLANs = false
        /// Record bytes a worker buffers before writing them out (whole lines).
        public var recordFlushBytes = 256 << 10
        /// Write anomaly records. They are written by the detection stage in packet order, under one per-kind
        /// bound for all workers (as one engine does), so the worker engines must have `anomalyRecords` off.
        public var anomalyRecords = false
        /// Anomaly lines per (layer, kind) at most (`EngineConfiguration.anomalyLogLimitPerKind`).
        public var anomalyLogLimitPerKind = 1_000
        /// Creates settings.
        public init(workers: Int) { self.workers = max(1, workers) }
    }

    let settings: Settings
    let workers: [PipelineWorker]
    /// The key the reader dispatches packets by (`FlowDispatch`): a replay's fixed one, a live capture's drawn at random.
    let dispatchKey: FlowHashKey
    /// The workers' rings for the reader, unretained (the workers keep them alive): retaining a ring per packet wrote
    /// its reference count, in a cache line the worker's thread reads too, from the reader's core on every packet.
    private let readerRings: [Unmanaged<PacketRing>]
    let detection: DetectionStage
    private let writeLock = Mutex<Int>(0)
    private let writer: (RecordKind, [UInt8]) -> Void
    /// The merge key up to which every message has been pushed (read by the detection thread).
    let dispatched = Atomic<UInt64>(0)
    // Reader state (the calling thread only).
    private var frame: UInt64 = 0
    private var key: UInt64 = 0
    private var nextSweep: Int64 = 0
    private var lastTime = PacketTime.zero
    private var started = false
    private var finished = false
    private var unpublished = 0   // packets pushed since `publishAll`
    /// The file the workers are reading with their own handles (`replayFile`), set before its ring messages.
    @exclusivity(unchecked) var currentShare: FileShare?
    /// Packets a live capture could not queue because the worker's ring was full.
    public private(set) var queueDrops: UInt64 = 0
    /// Packets handed to `packet(...)` or read by `replayFile` (frames numbered).
    public var framesRead: UInt64 { frame }
    /// Worker threads (engines).
    public var workerCount: Int { workers.count }
    /// Operations the workers left unsent, the merge passing them over quietly anyway (`EventRecorder.leavesUnsent`);
    /// once `finish` returned.
    public var operationsLeftUnsent: UInt64 { workers.reduce(0) { $0 &+ $1.recorder.unsentOperations } }

    /// Builds the stages. `makeEngine(i)` makes worker i's engine (its observer is replaced); `observer` is the
    /// detection stage's `EngineObserver` (policy and detection), writing alert lines into `alertSink`;
    /// `detector` is the one `observer` drives (for reloads); `write` receives batches of whole record lines
    /// and is called by one thread at a time. `alertsRaised` counts the observer's alerts, on the merge's thread
    /// (nil: the alert lines written into `alertSink`, which a run writing no alert lines leaves at 0).
    public init(settings: Settings, makeEngine: (Int) -> Engine, observer: (any EngineObserver)?, alertSink: EventSink,
                detector: Detector?, alertsRaised: (() -> UInt64)? = nil, write: @escaping (RecordKind, [UInt8]) -> Void) {
        self.settings = settings
        dispatchKey = (settings.blocking ? FlowDispatch.replayKey : FlowDispatch.liveKey()).ignoringVLANs(settings.ignoresVLANs)
        let detectionWaiter = Waiter()
        let sendsTraits = observer is any QuietOperationObserver
        var ws: [PipelineWorker] = []
        for i in 0..<settings.workers {
            let queue = EventQueue(capacity: settings.eventCapacity)
            let engine = makeEngine(i)
            precondition(engine.configuration.ignoresVLANs == settings.ignoresVLANs, "the dispatch must key flows as the engines do")
            if settings.workers > 1 { engine.workerShare = WorkerShare(worker: i, workers: settings.workers, key: dispatchKey) }
            let recorder = EventRecorder(queue: queue, consumer: detectionWaiter, worker: i, workers: settings.workers,
                                         sendsTraits: sendsTraits, flowSlots: max(16, engine.configuration.flowLimits.maximumFlows),
                                         wantsFlowEndsAtEndOfInput: observer?.wantsFlowEndsAtEndOfInput ?? false)
            engine.observer = recorder
            ws.append(PipelineWorker(index: i, engine: engine, ring: PacketRing(bytes: settings.ringBytes, prefault: !settings.blocking), events: queue,
                                     recorder: recorder, flushBytes: settings.recordFlushBytes))
        }
        workers = ws
        readerRings = ws.map { Unmanaged.passUnretained($0.ring) }
        detection = DetectionStage(observer: observer, sink: alertSink, detector: detector, alertsRaised: alertsRaised, waiter: detectionWaiter,
                                   anomalyRecords: settings.anomalyRecords, anomalyLimit: settings.anomalyLogLimitPerKind, workers: ws)
        writer = write
        detection.pipeline = self
        for w in ws { w.recorder.stage = detection }
    }

    /// Starts the worker and detection threads.
    public func start() {
        guard !started else { return }
        started = true
        for w in workers {
            w.thread = WorkerThread(name: "zw-worker-\(w.index)") { [self] in w.run(self) }
        }
        detection.thread = WorkerThread(name: "zw-detect") { [self] in detection.run(self) }
    }

    /// Writes record lines from any stage (or the capture thread's stats records), one batch at a time.
    public func write(_ kind: RecordKind, _ bytes: [UInt8]) {
        writeLock.withLock { _ in writer(kind, bytes) }
    }

    // MARK: - Reader side

    /// Numbers a packet, sends the sweep a single engine would run at it to the other workers, and queues
    /// the packet for its flow's worker. `bytes` is copied.
    @inline(__always)
    public func packet(_ bytes: UnsafeRawBufferPointer, linkType: Int32, time: PacketTime, wireLength: Int) {
        if workersMergeAfterFile { handMergeBack() }
        frame &+= 1
        key &+= 1
        lastTime = time
        let dispatched = readerRings.count == 1 ? 0
            : FlowDispatch.worker(for: ByteView(bytes), linkType: linkType, workers: readerRings.count, key: dispatchKey)
        let target = dispatched == FlowDispatch.everyWorker ? 0 : dispatched
        var header = RingMessageHeader(kind: RingMessageKind.advance.rawValue, linkType: linkType, key: key, frame: frame,
                                       time: time, capturedLength: 0, wireLength: 0)
        if PacketTime.sweeps(second: time.seconds, nextSweep: nextSweep) {
            nextSweep = time.seconds &+ 1
            publishAll(through: key &- 1)   // these pushes may wait for room
            for w in workers where w.index != target {
                _ = w.ring.push(header, payload: UnsafeRawBufferPointer(start: nil, count: 0), block: true)
            }
        }
        header.kind = RingMessageKind.packet.rawValue
        header.wireLength = UInt32(clamping: wireLength)
        let blocking = settings.blocking
        let queued = readerRings[target]._withUnsafeGuaranteedRef { ring in
            // Before waiting for room, everything pushed must be visible: the merge may need it to let the
            // worker that would free the room go on.
            if blocking && !ring.hasRoom(for: bytes.count) { publishAll(through: key &- 1) }
            return ring.push(header, payload: bytes, block: blocking, publish: false)
        }
        if !queued { queueDrops &+= 1 }
        if dispatched == FlowDispatch.everyWorker { pushFragmentCopies(header, bytes) }
        unpublished &+= 1
        if unpublished >= 32 { publishAll(through: key) }
    }

    /// An IP fragment worker 0 has as its packet (`header`), copied to every other worker (`FlowDispatch.everyWorker`).
    /// A copy that finds no room is a queue drop too (counted).
    @inline(never)
    private func pushFragmentCopies(_ packet: RingMessageHeader, _ bytes: UnsafeRawBufferPointer) {
        var header = packet
        header.kind = RingMessageKind.fragmentCopy.rawValue
        for w in workers.dropFirst() {
            if settings.blocking && !w.ring.hasRoom(for: bytes.count) { publishAll(through: key &- 1) }
            if !w.ring.push(header, payload: bytes, block: settings.blocking, publish: false) { queueDrops &+= 1 }
        }
    }

    /// Replays a capture file with every worker reading it through its own handle (`sources`, one per worker,
    /// each opened on the same file and not yet read): no reader thread and no packet copies. Each worker reads
    /// every packet, numbers it (so frame numbers stay global), runs the sweep a single engine would run at it,
    /// and processes it only if its flow hashes to that worker; its events carry the packet's merge key as with
    /// the ring, so detection merges them as before. Returns when every worker has read to the end (or `stop`
    /// said so), with the read error that ended the file early, if any (every worker meets the same one at the
    /// same packet; it is reported once). `progress(packets)` is called about once a second meanwhile.
    public func replayFile(_ sources: [PacketSource], path: String?, stop: @escaping @Sendable () -> Bool,
                           progress: ((UInt64) -> Void)? = nil) -> CaptureError? {
        precondition(sources.count == workers.count, "one source per worker")
        if !started { start() }
        publishAll(through: key)
        let share = FileShare(sources: sources, path: path, firstKey: key, firstFrame: frame, nextSweep: nextSweep,
                              dispatchKey: dispatchKey, stop: stop)
        currentShare = share
        let header = RingMessageHeader(kind: RingMessageKind.file.rawValue, linkType: share.linkType, key: key, frame: frame,
                                       time: lastTime, capturedLength: 0, wireLength: 0)
        // The workers run the merge themselves while they read (ZONEWATCH_DETECTION_THREAD=1, a diagnostic: the
        // detection thread does, as with a reader thread).
        if workers.count > 1 && getenv("ZONEWATCH_DETECTION_THREAD") == nil {
            detection.workersMerge.store(true, ordering: .releasing)
            workersMergeAfterFile = true
        }
        for w in workers { _ = w.ring.push(header, payload: UnsafeRawBufferPointer(start: nil, count: 0), block: true) }
        for w in workers { w.ring.flush() }
        var lastProgress = monotonicNow()
        while share.finishedWorkers.load(ordering: .acquiring) < workers.count {
            share.done.wait(microseconds: 250_000)
            if let report = progress, monotonicNow() - lastProgress >= 1 {
                lastProgress = monotonicNow()
                let slowest = workers.map { $0.recorder.completed.load(ordering: .relaxed) }.min() ?? key
                report(frame &+ (slowest > key ? slowest &- key : 0))
            }
        }
        currentShare = nil
        // Every worker read the same packets unless stopped part-way: the furthest decides where the stream is.
        let furthest = share.results.max { $0.packets < $1.packets } ?? FileShare.Result()
        frame &+= furthest.packets
        key &+= furthest.packets
        if furthest.packets > 0 { lastTime = furthest.lastTime; nextSweep = furthest.nextSweep }
        dispatched.store(key, ordering: .releasing)
        return share.results.lazy.compactMap(\.error).first
    }

    /// Publishes every ring's pushed messages, then `dispatched` = `key`: the detection merge treats a worker whose
    /// ring is drained as having nothing before `dispatched`, so that must only count messages the rings show.
    /// Done every 32 packets rather than per packet (each is a fenced store to a line another core reads).
    private func publishAll(through key: UInt64) {
        for ring in readerRings { ring._withUnsafeGuaranteedRef { $0.publish() } }
        dispatched.store(key, ordering: .releasing)
        unpublished = 0
    }

    /// Wakes workers that sleep while packets wait in their rings (a live capture calls this when a read batch
    /// ends; in between, workers are woken only once a good share of their ring has filled).
    public func flush() {
        publishAll(through: key)
        for w in workers { w.ring.flush() }
    }

    /// Lets time pass with no packet (a live capture with no traffic): every worker's clock moves to `time`,
    /// so idle flows end and aggregation windows close.
    public func idle(time: PacketTime) {
        if workersMergeAfterFile { handMergeBack() }
        publishAll(through: key)
        key &+= 1
        lastTime = time
        if PacketTime.sweeps(second: time.seconds, nextSweep: nextSweep) { nextSweep = time.seconds &+ 1 }
        let header = RingMessageHeader(kind: RingMessageKind.advance.rawValue, linkType: 0, key: key, frame: frame,
                                       time: time, capturedLength: 0, wireLength: 0)
        for w in workers { _ = w.ring.push(header, payload: UnsafeRawBufferPointer(start: nil, count: 0), block: true) }
        dispatched.store(key, ordering: .releasing)
        flush()
    }

    /// After a file the workers go on merging (they do the merge of their `.finish` too); packets from this thread
    /// give it back to the detection thread.
    private var workersMergeAfterFile = false

    @inline(never)
    private func handMergeBack() {
        workersMergeAfterFile = false
        detection.workersMerge.store(false, ordering: .releasing)
        detection.waiter.wake()
    }

    /// Ends the input: every worker ends its flows at the last frame and reports, detection flushes its
    /// aggregation windows; returns when every thread is done and every record is written.
    public func finish() {
        guard !finished else { return }
        finished = true
        if !started { start() }
        publishAll(through: key)
        key &+= 1
        let header = RingMessageHeader(kind: RingMessageKind.finish.rawValue, linkType: 0, key: key, frame: frame,
                                       time: lastTime, capturedLength: 0, wireLength: 0)
        for w in workers { _ = w.ring.push(header, payload: UnsafeRawBufferPointer(start: nil, count: 0), block: true) }
        dispatched.store(key, ordering: .releasing)
        for w in workers { w.ring.consumerWaiter.wake() }
        for w in workers { w.thread?.join() }
        // Whatever the workers left unmerged is the detection thread's (normally nothing: the last worker merges to the end).
        detection.workersMerge.store(false, ordering: .releasing)
        detection.waiter.wake()
        detection.thread?.join()
    }

    // MARK: - Control and counters (any thread)

    /// Hands a new policy to the detection thread, which swaps it in after the last packet read so far (the packets
    /// keep the policy they were read under). The reader's thread only (it reads and moves the merge key).
    public func replacePolicy(_ policy: CompiledPolicy?) {
        // Every packet read so far goes to the workers now: the new policy applies once their events are merged.
        detection.request(policy, after: key)
        // A key no message has: a drained worker's bound (`mergeStep`) may then reach `after + 1` before the merge
        // sees the request without a run of another worker passing a packet read after it.
        if currentShare == nil {
            key &+= 1
            publishAll(through: key)
        }
    }

    /// Whether the last `replacePolicy` has been applied.
    public var policyApplied: Bool { !detection.policyRequested.load(ordering: .acquiring) }

    /// The workers' counters summed (each worker publishes every 65,536 packets, at each sweep and at the end),
    /// with the detection stage's alert count.
    public func statistics() -> EngineStatistics {
        var total = EngineStatistics()
        for w in workers {
            let s = w.published.withLock { $0 }
            total.add(s)
        }
        total.alerts = detection.alertCount.load(ordering: .relaxed)
        total.anomaliesNotLogged &+= detection.anomaliesNotLogged.load(ordering: .relaxed)
        return total
    }

    /// Live flows over all workers (as last published).
    public var liveFlows: Int { workers.reduce(0) { $0 + $1.publishedLiveFlows.load(ordering: .relaxed) } }
}

/// One worker: a ring in, an engine, an event queue out.
final class PipelineWorker: @unchecked Sendable {
    let index: Int
    let engine: Engine
    let ring: PacketRing
    let events: EventQueue
    let recorder: EventRecorder
    let flushBytes: Int
    let published = Mutex(EngineStatistics())
    let publishedLiveFlows = Atomic<Int>(0)
    var thread: WorkerThread?

    init(index: Int, engine: Engine, ring: PacketRing, events: EventQueue, recorder: EventRecorder, flushBytes: Int) {
        self.index = index; self.engine = engine; self.ring = ring; self.events = events; self.recorder = recorder
        self.flushBytes = flushBytes
    }

    func publish() {
        let s = engine.statistics
        published.withLock { $0 = s }
        publishedLiveFlows.store(engine.liveFlows, ordering: .relaxed)
    }

    func drain(_ pipeline: ParallelPipeline) {
        engine.drainRecords { kind, bytes in pipeline.write(kind, bytes) }
    }

    func run(_ pipeline: ParallelPipeline) {
        var count: UInt64 = 0
        let detectionWaiter = pipeline.detection.waiter
        // As in a single-engine replay (ZONEWATCH_NO_PREFETCH=1 turns it off, for scripts/bench).
        let prefetch = getenv("ZONEWATCH_NO_PREFETCH") == nil
        while true {
            guard let (h, payload) = ring.peek() else {
                // Nothing to do: let detection catch up, and write out what is buffered before sleeping so a
                // quiet live capture's records are not held back.
                detectionWaiter.wakeIfSleeping()
                if engine.bufferedRecordBytes > 0 { drain(pipeline) }
                ring.waitForMessage()
                continue
            }
            recorder.key = h.key
            var done = false
            switch RingMessageKind(rawValue: h.kind) {
            case .packet:
                if prefetch {
                    engine.prefetchFlows(ahead: ring.upcomingPacket(Engine.prefetchDistance).map(ByteView.init), linkType: h.linkType)
                }
                engine.process(ByteView(payload), linkType: h.linkType, time: h.time, wireLength: Int(h.wireLength), frame: h.frame)
            case .fragmentCopy:
                // (The reader sent this worker the sweep at this frame, if any, as an `.advance` of its own.)
                engine.processFragmentCopy(ByteView(payload), linkType: h.linkType, time: h.time, frame: h.frame, sweep: false)
            case .advance:
                engine.advance(frame: h.frame, time: h.time)
                publish()
                // Once a second of packet time: records reach the files within about a second on a busy link too.
                if engine.bufferedRecordBytes > 0 { drain(pipeline) }
            case .finish:
                engine.advance(frame: h.frame, time: h.time, sweep: false)
                engine.finish()
                done = true
            case .file:
                // While the workers merge, events are taken as soon as both have made them (every 1,024 packets or
                // so): a queue of a few thousand keeps its slots in cache, where one sized for the detection thread's
                // latency would cycle through megabytes.
                let stage = pipeline.detection
                if stage.workersMerge.load(ordering: .acquiring) {
                    events.narrow(to: pipeline.settings.fileEventCapacity, consumerSide: stage.excludingMerge) {
                        recorder.completed.store(h.key &- 1, ordering: .releasing)
                        _ = stage.tryMerge()
                    }
                }
                // Read the whole file here; `completed` then stands at its last packet's key, not this message's.
                if let share = pipeline.currentShare { runFile(share, pipeline, prefetch: prefetch) }
                ring.release()
                pipeline.currentShare?.workerFinished()
                continue
            default:
                break
            }
            recorder.completed.store(h.key, ordering: .releasing)
            ring.release()
            count &+= 1
            if count & 0xFFFF == 0 { publish() }
            if engine.bufferedRecordBytes > flushBytes { drain(pipeline) }
            if done {
                drain(pipeline)
                publish()
                // While the workers merge (after a file), a worker whose flows are ended merges what the others make
                // while they end theirs (so the last one to finish is not left with the whole merge), until the last
                // `.finish` is merged. Should the others fall silent for a while, it leaves the rest to the detection
                // thread, which takes over once every worker has returned.
                let stage = pipeline.detection
                if stage.workersMerge.load(ordering: .acquiring) {
                    var lastProgress = monotonicNow()
                    while !stage.merged.load(ordering: .acquiring) {
                        if stage.tryMerge() == true { lastProgress = monotonicNow(); continue }
                        if monotonicNow() - lastProgress > 0.05 { break }
                        spinPause()
                    }
                }
                detectionWaiter.wake()
                return
            }
        }
    }
}

extension PipelineWorker {
    /// Reads every packet of the shared file with this worker's own handle and runs those whose flow hashes to
    /// this worker (see `ParallelPipeline.replayFile`); records how far it read and how it ended in `share`.
    func runFile(_ share: FileShare, _ pipeline: ParallelPipeline, prefetch: Bool) {
        let source = share.sources[index]
        let reader = FileShareReader(worker: self, pipeline: pipeline, share: share, source: source, prefetch: prefetch)
        var failure: CaptureError?
        var stopped = false
        let map = share.map.map { MappedCapture(sharing: $0, worker: index) }
        if let mapped = map ?? share.path.flatMap({ MappedCapture(path: $0, linkType: share.linkType) }) {
            // A record libpcap must handle (or a damaged file): libpcap goes on from there, after skipping what
            // was read here, so its behaviour and its error messages are kept.
            stopped = reader.readMapped(mapped)
            reader.skip = reader.count
            share.map?.finished(worker: index)
        }
        while !stopped && !share.stop() {
            do {
                if try source.dispatch(batch: 65536, to: reader) == 0 { break }
            } catch {
                failure = error
                break
            }
        }
        reader.leaveMergeDuty()
        let last = share.firstKey &+ reader.count
        share.results[index] = FileShare.Result(packets: reader.count, lastTime: reader.lastTime, nextSweep: reader.nextSweep, error: failure)
        recorder.completed.store(last, ordering: .releasing)
        publish()
        if engine.bufferedRecordBytes > 0 { drain(pipeline) }
    }
}

/// One capture file read by every worker at once, each with its own libpcap handle (`replayFile`).
final class FileShare: @unchecked Sendable {
    struct Result {
        var packets: UInt64 = 0
        var lastTime = PacketTime.zero
        var nextSweep: Int64 = 0
        var error: CaptureError?
    }
    /// One open handle on the file per worker.
    let sources: [PacketSource]
    /// The file's path, for reading it through a memory map (`MappedCapture`) where it allows; nil: libpcap only.
    let path: String?
    /// The one map of the file the workers read through (nil: each maps windows of its own, or libpcap only).
    let map: SharedCaptureMap?
    /// The workers' shared owner pass over `map` (nil: each worker walks every record itself;
    /// ZONEWATCH_OWN_WALK=1, a diagnostic, asks for that).
    let pass: OwnerPass?
    let linkType: Int32
    /// Merge key and frame number of the packet before the file's first.
    let firstKey: UInt64
    let firstFrame: UInt64
    /// The sweep clock as the file starts (the first second of packet time that sweeps).
    let nextSweep: Int64
    /// The pipeline's `dispatchKey`: a flow going on from a packet the reader dispatched meets the same worker.
    let dispatchKey: FlowHashKey
    let stop: @Sendable () -> Bool
    /// Per worker, written by that worker before it counts itself in `finishedWorkers` (raw memory: workers
    /// write their own elements at the same time).
    let results: UnsafeMutableBufferPointer<Result>
    let finishedWorkers = Atomic<Int>(0)
    /// The caller waits here for the workers.
    let done = Waiter()

    init(sources: [PacketSource], path: String?, firstKey: UInt64, firstFrame: UInt64, nextSweep: Int64, dispatchKey: FlowHashKey,
         stop: @escaping @Sendable () -> Bool) {
        self.sources = sources; self.path = path; linkType = sources[0].linkType.rawValue
        self.firstKey = firstKey; self.firstFrame = firstFrame; self.nextSweep = nextSweep; self.dispatchKey = dispatchKey
        self.stop = stop
        let linkType = self.linkType
        map = path.flatMap { SharedCaptureMap(path: $0, linkType: linkType, workers: sources.count) }
        pass = map != nil && sources.count > 1 && getenv("ZONEWATCH_OWN_WALK") == nil
            ? OwnerPass(workers: sources.count, linkType: linkType, dispatchKey: dispatchKey, firstRecord: 0, clock: nextSweep) : nil
        results = .allocate(capacity: sources.count)
        _ = results.initialize(from: repeatElement(Result(), count: sources.count))
    }

    deinit { results.deinitialize().deallocate() }

    func workerFinished() {
        finishedWorkers.add(1, ordering: .acquiringAndReleasing)
        done.wake()
    }
}

/// A worker's per-packet work while it reads a shared file: number every packet (so frames are global), run the
/// sweep a single engine would run at it, and process the packet only if its flow hashes to this worker.
///
/// The flow hash of each packet is computed once, `lookahead` packets early while the packet sits in the file's
/// read buffer (`PacketSource.upcoming`), and kept by packet number until its turn. The same look tells the
/// engine's flow prefetch which packet is this worker's `Engine.prefetchDistance`-th own packet ahead (the
/// pipeline it drives counts the engine's packets, not the file's); another worker's flows are not in this
/// engine's table, so prefetching them would only evict useful lines.
final class FileShareReader: PacketConsumer {
    let engine: Engine
    let recorder: EventRecorder
    unowned(unsafe) let worker: PipelineWorker
    unowned(unsafe) let pipeline: ParallelPipeline
    let source: PacketSource
    let share: FileShare
    let index: Int
    let workers: Int
    let linkType: Int32
    let firstKey: UInt64
    let firstFrame: UInt64
    let prefetch: Bool
    /// How many of the file's packets ahead the hash is computed: about twice `prefetchDistance` own packets.
    let hashAhead: Int
    /// Packets read from this file.
    @exclusivity(unchecked) var count: UInt64 = 0
    @exclusivity(unchecked) var nextSweep: Int64
    @exclusivity(unchecked) var lastTime = PacketTime.zero
    /// Whether the workers run the detection merge themselves (`DetectionStage.workersMerge`): then every 1,024
    /// packets this one tries a merge step.
    let merges: Bool
    /// Packets libpcap hands on that were read already (through a `MappedCapture`), to pass over.
    @exclusivity(unchecked) var skip: UInt64 = 0
    /// Worker of packet n at [n & 63]: n << 8 | worker (stale or 0: not computed).
    private let owners = UnsafeMutablePointer<UInt64>.allocate(capacity: 64)
    /// This worker's packets among the next `hashAhead` (a FIFO of 64: packet number and bytes in the read
    /// buffer, which stays allocated, so a view made stale by a refill only spoils a hint).
    private let ownNumbers = UnsafeMutablePointer<UInt64>.allocate(capacity: 64)
    private let ownViews = UnsafeMutablePointer<ByteView>.allocate(capacity: 64)
    @exclusivity(unchecked) private var ownHead = 0
    @exclusivity(unchecked) private var ownTail = 0

    init(worker: PipelineWorker, pipeline: ParallelPipeline, share: FileShare, source: PacketSource, prefetch: Bool) {
        engine = worker.engine; recorder = worker.recorder; self.worker = worker; self.pipeline = pipeline
        self.source = source; self.share = share; index = worker.index; workers = share.sources.count
        linkType = share.linkType; firstKey = share.firstKey; firstFrame = share.firstFrame
        nextSweep = share.nextSweep; self.prefetch = prefetch
        merges = pipeline.detection.workersMerge.load(ordering: .acquiring)
        hashAhead = min(Engine.prefetchDistance * 2 * workers, 48)
        owners.initialize(repeating: 0, count: 64)
        ownNumbers.initialize(repeating: 0, count: 64)
        ownViews.initialize(repeating: ByteView(UnsafeRawBufferPointer(start: nil, count: 0)), count: 64)
    }

    deinit { owners.deallocate(); ownNumbers.deallocate(); ownViews.deallocate() }

    @inline(__always)
    private func owner(_ bytes: ByteView) -> Int {
        FlowDispatch.worker(for: bytes, linkType: linkType, workers: workers, key: share.dispatchKey)
    }

    override func consume(_ header: PacketHeader, _ bytes: ByteView) {
        if skip > 0 { skip &-= 1; return }
        packet(time: header.time, wireLength: header.wireLength, bytes)
    }

    /// At a checkpoint (every 1,024 packets or so) while the workers merge: the worker on duty (`DetectionStage.merger`)
    /// runs a merge step, and hands the duty on once another worker is more than `DetectionStage.handOverKeys` ahead
    /// of it (the merge costs its holder time, so the duty moves to whoever has time to spare). One worker at a time
    /// keeps the detector's state in its cache: taking turns at every checkpoint moved it between cores all the time.
    @inline(never)
    func mergeIfDue() {
        let stage = pipeline.detection
        guard stage.merger.load(ordering: .relaxed) == index else { return }
        _ = stage.tryMerge()
        let mine = recorder.completed.load(ordering: .relaxed)
        var ahead = index, aheadKey = mine &+ DetectionStage.handOverKeys
        for (v, w) in pipeline.workers.enumerated() where v != index {
            let k = w.recorder.completed.load(ordering: .relaxed)
            if k > aheadKey { ahead = v; aheadKey = k }
        }
        if ahead != index { stage.merger.store(ahead, ordering: .relaxed) }
    }

    /// This worker reads no more of the file: the merge duty, if it has it, goes to the next worker.
    func leaveMergeDuty() {
        let stage = pipeline.detection
        if merges && workers > 1 && stage.merger.load(ordering: .relaxed) == index {
            stage.merger.store((index + 1) % workers, ordering: .relaxed)
        }
    }

    /// What follows a sweep (once a second of packet time): publish, and let records out, so that they reach the files
    /// within about a second on a busy link too.
    @inline(__always)
    fileprivate func afterSweep() {
        worker.publish()
        if engine.bufferedRecordBytes > 0 { worker.drain(pipeline) }
    }

    /// What follows packet `n` whoever took it (both read loops): at a sweep, publish and let records out; every 16
    /// packets, raise the merge's lower bound, and now and then publish and flush.
    @inline(__always)
    private func afterPacket(_ n: UInt64, sweep: Bool) {
        if sweep { afterSweep() }
        if n & 15 == 0 {
            // Everything up to this packet is in the event queue (the detection merge's lower bound for us).
            recorder.completed.store(firstKey &+ n, ordering: .releasing)
            if n & 0xFFFF == 0 { worker.publish() }
            if n & 0x3FF == 0 {
                if engine.bufferedRecordBytes > worker.flushBytes { worker.drain(pipeline) }
                if merges { mergeIfDue() }
            }
        }
    }

    /// A mapped record this worker acts on, number `n` of the file (the two whole-file read loops): its own packet
    /// (`own`, with the prefetch hint `hint`), or the sweep a single engine would run at it; then what follows a sweep.
    /// The seconds are read from the header only for a sweep that is not ours (the engine reads its packets').
    @inline(__always)
    fileprivate func act(on h: UnsafeRawPointer, number n: UInt64, fraction: UInt32, own: Bool, copy: Bool = false,
                         hint: UnsafeRawPointer?, sweep: Bool) {
        recorder.key = firstKey &+ n
        if own {
            engine.processRecord(h, microseconds: fraction, ahead: hint, linkType: linkType, frame: firstFrame &+ n)
        } else if copy {
            copyFragment(h, number: n, fraction: fraction, sweep: sweep)
        } else {
            engine.advance(frame: firstFrame &+ n, time: PacketTime(seconds: Int64(h.loadUnaligned(as: UInt32.self)), microseconds: Int32(fraction)))
        }
        if sweep { afterSweep() }
    }

    /// The mapped record of another worker's IP fragment (`FlowDispatch.everyWorker`) into this worker's reassembly.
    @inline(never)
    private func copyFragment(_ h: UnsafeRawPointer, number n: UInt64, fraction: UInt32, sweep: Bool) {
        let bytes = ByteView(UnsafeRawBufferPointer(start: h + 16, count: Int(h.loadUnaligned(fromByteOffset: 8, as: UInt32.self))))
        let time = PacketTime(seconds: Int64(h.loadUnaligned(as: UInt32.self)), microseconds: Int32(fraction))
        engine.processFragmentCopy(bytes, linkType: linkType, time: time, frame: firstFrame &+ n, sweep: sweep)
    }

    /// What `afterPacket` does every 16 (and 1,024, 4,096, 65,536) packets, once for a run of packets (from, n] taken
    /// in one step by the whole-file read loops; true when the share is to stop (asked every 4,096).
    @inline(__always)
    fileprivate func afterRun(from: UInt64, to n: UInt64) -> Bool {
        guard from >> 4 != n >> 4 else { return false }
        recorder.completed.store(firstKey &+ n, ordering: .releasing)
        if from >> 16 != n >> 16 { worker.publish() }
        if from >> 10 != n >> 10 {
            if engine.bufferedRecordBytes > worker.flushBytes { worker.drain(pipeline) }
            if merges { mergeIfDue() }
        }
        return from >> 12 != n >> 12 && share.stop()
    }

    @inline(__always)
    func packet(time: PacketTime, wireLength: Int, _ bytes: ByteView) {
        count &+= 1
        let n = count
        lastTime = time
        if let next = source.upcoming(hashAhead) {
            let m = n &+ UInt64(hashAhead)
            let w = owner(next)
            owners[Int(m & 63)] = m << 8 | UInt64(w)
            // Written always and kept only if ours (no branch on a coin flip); the queue never holds more than
            // `hashAhead` (< 64) packets.
            ownNumbers[ownTail & 63] = m; ownViews[ownTail & 63] = next
            ownTail &+= w == index ? 1 : 0
        }
        let known = owners[Int(n & 63)]
        let target = known >> 8 == n ? Int(known & 0xFF) : owner(bytes)
        let sweep = PacketTime.sweeps(second: time.seconds, nextSweep: nextSweep)
        if sweep { nextSweep = time.seconds &+ 1 }
        if FlowDispatch.owns(target, index) {
            recorder.key = firstKey &+ n
            if prefetch {
                while ownHead != ownTail && ownNumbers[ownHead & 63] <= n { ownHead &+= 1 }
                let d = Engine.prefetchDistance - 1   // the queue starts at the next own packet
                engine.prefetchFlows(ahead: ownTail &- ownHead > d ? ownViews[(ownHead &+ d) & 63] : nil, linkType: linkType)
            }
            engine.process(bytes, linkType: linkType, time: time, wireLength: wireLength, frame: firstFrame &+ n)
        } else if FlowDispatch.copies(target, index) {
            recorder.key = firstKey &+ n
            engine.processFragmentCopy(bytes, linkType: linkType, time: time, frame: firstFrame &+ n, sweep: sweep)
        } else if sweep {
            recorder.key = firstKey &+ n
            engine.advance(frame: firstFrame &+ n, time: time)
        }
        afterPacket(n, sweep: sweep)
    }

    override var stopRequested: Bool { share.stop() }

    /// `packet` for every record of a mapped file, in one loop: each record's header is read once, `hashAhead`
    /// records ahead of the packet in hand (its owner computed there and kept with it in a ring of 64), and a
    /// packet's time is built only when this worker processes the packet or sweeps at it. Same numbering, owners,
    /// prefetch hints, sweeps, merge-key bounds and stop checks as `packet` for each record.
    /// Returns whether the file ended here (its end, or `share.stop()`): false when `m` met a record libpcap must
    /// handle, with `count` at the last record taken (the one before it).
    func readMapped(_ m: MappedCapture) -> Bool {
        if let walk = m.wholeFile {
            if let pass = share.pass { return readSharedPass(m, walk, pass) }
            return readWholeFile(m, walk)
        }
        let ring = UnsafeMutablePointer<MappedCapture.RawRecord>.allocate(capacity: 64)
        let ringOwners = UnsafeMutablePointer<Int>.allocate(capacity: 64)
        defer { ring.deallocate(); ringOwners.deallocate() }
        var parsed = count       // records read into the ring (numbered like `count`)
        var n = count            // records taken
        var nextSweep = self.nextSweep
        var lastSeconds: UInt32 = 0, lastFraction: UInt32 = 0, any = false
        var tail = 0, head = 0   // the own-packet hint queue (`ownNumbers`/`ownViews`)
        let index = self.index
        var stopped = false
        while true {
            // Keep `hashAhead` records parsed ahead of the next one taken.
            while parsed &- n <= UInt64(hashAhead), let r = m.nextRaw() {
                parsed &+= 1
                let i = Int(parsed & 63)
                ring[i] = r
                let w = owner(r.bytes)
                ringOwners[i] = w
                ownNumbers[tail & 63] = parsed; ownViews[tail & 63] = r.bytes
                tail &+= w == index ? 1 : 0
            }
            guard n != parsed else { stopped = !m.irregular; break }
            n &+= 1
            let i = Int(n & 63)
            let r = ring[i]
            lastSeconds = r.seconds; lastFraction = r.fraction; any = true
            let seconds = Int64(r.seconds)
            let sweep = PacketTime.sweeps(second: seconds, nextSweep: nextSweep)
            if sweep { nextSweep = seconds &+ 1 }
            if FlowDispatch.owns(ringOwners[i], index) {
                recorder.key = firstKey &+ n
                if prefetch {
                    while head != tail && ownNumbers[head & 63] <= n { head &+= 1 }
                    let d = Engine.prefetchDistance - 1   // the queue starts at the next own packet
                    engine.prefetchFlows(ahead: tail &- head > d ? ownViews[(head &+ d) & 63] : nil, linkType: linkType)
                }
                engine.process(r.bytes, linkType: linkType, time: r.time, wireLength: Int(r.wireLength), frame: firstFrame &+ n)
            } else if FlowDispatch.copies(ringOwners[i], index) {
                recorder.key = firstKey &+ n
                engine.processFragmentCopy(r.bytes, linkType: linkType, time: r.time, frame: firstFrame &+ n, sweep: sweep)
            } else if sweep {
                recorder.key = firstKey &+ n
                engine.advance(frame: firstFrame &+ n, time: r.time)
            }
            afterPacket(n, sweep: sweep)
            if n & 4095 == 0 && share.stop() { stopped = true; break }
        }
        count = n
        self.nextSweep = nextSweep
        if any { lastTime = PacketTime(seconds: Int64(lastSeconds), microseconds: Int32(lastFraction)) }
        return stopped
    }
}

/// `FileShareReader.readWholeFile`'s look ahead: reads record headers ahead of the records taken, computes each
/// one's owner and the sweep clock, and queues the records the worker acts on (its own packets, and sweeps). Out of
/// line, in batches: its loop then keeps its state in registers (inlined into the read loop, it was spilled).
struct RecordLook {
    var walk: WholeFileWalk
    /// Queued records, a ring of 64: number << 2 | copy << 1 | own, and the header's address.
    let queued: UnsafeMutablePointer<UInt64>
    let headers: UnsafeMutablePointer<UnsafeRawPointer>
    var tail = 0
    /// Records read, and the sweep clock and time (microseconds) at the last of them.
    var parsed: UInt64
    var sweepClock: Int64
    var seconds: UInt32 = 0
    var fraction: UInt32 = 0
    /// The walk stopped (end of file, or a record libpcap must handle).
    var ended = false
    let index: Int
    let workers: Int
    let linkType: Int32
    let dispatchKey: FlowHashKey

    init(walk: WholeFileWalk, parsed: UInt64, sweepClock: Int64, index: Int, workers: Int, linkType: Int32, dispatchKey: FlowHashKey) {
        self.walk = walk; self.parsed = parsed; self.sweepClock = sweepClock
        self.index = index; self.workers = workers; self.linkType = linkType; self.dispatchKey = dispatchKey
        queued = .allocate(capacity: 64); headers = .allocate(capacity: 64)
    }

    func deallocate() { queued.deallocate(); headers.deallocate() }

    /// Reads records until `parsed` is `limit` or the walk ends. The caller keeps `limit` within 63 records of the
    /// first queued one.
    @inline(never)
    mutating func fill(through limit: UInt64, _ m: MappedCapture) {
        var walk = self.walk, parsed = self.parsed, tail = self.tail, clock = sweepClock
        var seconds = self.seconds, fraction = self.fraction
        let index = self.index, workers = self.workers, linkType = self.linkType, dispatchKey = self.dispatchKey
        let ethernet = linkType == PacketDecoder.ethernet
        let queued = self.queued, headers = self.headers
        var last: UnsafeRawPointer?
        while parsed < limit {
            guard let h = walk.next(m) else { ended = true; break }
            parsed &+= 1
            last = h
            seconds = h.loadUnaligned(as: UInt32.self)
            let w = FlowDispatch.worker(forRecordAt: h, ethernet: ethernet, linkType: linkType, workers: workers, key: dispatchKey)
            let sweep = PacketTime.sweeps(second: Int64(seconds), nextSweep: clock)
            if sweep { clock = Int64(seconds) &+ 1 }
            let own = FlowDispatch.owns(w, index), copy = FlowDispatch.copies(w, index)
            // Written always, kept only when acted on (no branch on a coin flip).
            queued[tail & 63] = parsed << 2 | (copy ? 2 : 0) | (own ? 1 : 0); headers[tail & 63] = h
            tail &+= own || sweep || copy ? 1 : 0
        }
        if let h = last { fraction = walk.microseconds(h) }
        self.walk = walk; self.parsed = parsed; self.tail = tail; sweepClock = clock
        self.seconds = seconds; self.fraction = fraction
    }
}

extension FileShareReader {
    /// `readMapped` over a whole-file map (`WholeFileWalk`), with the per-record work cut to what the others'
    /// packets need: a look ahead (`RecordLook`) reads each header, computes the owner and the sweep clock, and
    /// queues only the records this worker acts on (its own packets, and sweeps); the records between are passed
    /// over in one step, their merge-key bound and stop check done once per run of them. Same packets, numbering,
    /// sweeps, prefetch hints (the `Engine.prefetchDistance`-th own packet ahead) and result as `readMapped`'s
    /// general loop.
    func readWholeFile(_ m: MappedCapture, _ start: WholeFileWalk) -> Bool {
        var look = RecordLook(walk: start, parsed: count, sweepClock: nextSweep, index: index, workers: workers, linkType: linkType,
                              dispatchKey: share.dispatchKey)
        defer { look.deallocate() }
        var head = 0
        var n = count             // records taken (processed or passed over)
        var nextSweep = self.nextSweep   // the sweep clock at `n`
        var takenSeconds: UInt32 = 0, takenFraction: UInt32 = 0, any = false
        let d = Engine.prefetchDistance - 1   // the queue starts at the next own packet
        // The look reads up to `lookAhead` records past the last taken, in batches of at least
        // `lookAhead - refillAt` (the queue never holds more than `lookAhead`, which must stay below 64).
        let refillAt = UInt64(min(max(hashAhead, 24), 40)), lookAhead = refillAt + 20
        precondition(lookAhead < 64, "the look's queue holds 64 records")
        var stopped = false
        while true {
            if !look.ended && look.parsed &- n <= refillAt { look.fill(through: n &+ lookAhead, m) }
            let from = n
            if head == look.tail {
                // Nothing to act on among the records read ahead: all passed over at once.
                guard n != look.parsed else { stopped = !look.walk.irregular; break }
                n = look.parsed
                takenSeconds = look.seconds; takenFraction = look.fraction; any = true
            } else {
                let e = look.queued[head & 63], h = look.headers[head & 63]
                head &+= 1
                n = e >> 2
                let seconds = h.loadUnaligned(as: UInt32.self), fraction = look.walk.microseconds(h)
                takenSeconds = seconds; takenFraction = fraction; any = true
                let sweep = Int64(seconds) >= nextSweep
                if sweep { nextSweep = Int64(seconds) &+ 1 }
                var hint: UnsafeRawPointer?
                if e & 1 != 0 && prefetch && look.tail &- head > d && look.queued[(head &+ d) & 63] & 1 != 0 {
                    hint = look.headers[(head &+ d) & 63]
                }
                act(on: h, number: n, fraction: fraction, own: e & 1 != 0, copy: e & 2 != 0, hint: hint, sweep: sweep)
            }
            if afterRun(from: from, to: n) { stopped = true; break }
        }
        m.finishWalk(look.walk, records: look.parsed &- count)
        count = n
        self.nextSweep = nextSweep
        if any { lastTime = PacketTime(seconds: Int64(takenSeconds), microseconds: Int32(takenFraction)) }
        return stopped
    }
}

/// The merge of the workers' events in (merge key, worker) order into the single observer: run by the detection
/// thread, or by the workers themselves while they read a file (`workersMerge`), one thread at a time.
final class DetectionStage: @unchecked Sendable {
    let observer: (any EngineObserver)?
    let sink: EventSink
    let detector: Detector?
    let waiter: Waiter
    var thread: WorkerThread?
    /// Alerts raised so far, as `alertsRaised` last counted them on the merge's thread (for `statistics`).
    let alertCount = Atomic<UInt64>(0)
    private let alertsRaised: () -> UInt64
    let anomaliesNotLogged = Atomic<UInt64>(0)
    let policyRequested = Atomic<Bool>(false)
    /// The reloads asked for and not applied yet, oldest first: each policy, and the merge key of the last packet read
    /// before its request. The packets up to that key keep the policy they were read under (the workers may have
    /// passed over some of their operations by its verdicts), the new one applies from the next on, up to the next
    /// request's key: two reloads before the first applies are applied in turn (LiveCommand does not wait for one).
    private let pendingPolicies = Mutex<[(policy: CompiledPolicy?, after: UInt64)]>([])
    /// Whether and how the workers leave operations unsent (`QuietDecisionMode`), by the detector's policy (the
    /// merge's copy; each worker reads its table's).
    @exclusivity(unchecked) private var quietMode = QuietDecisionMode.off
    private let anomalyRecords: Bool
    private let anomalyLimit: Int
    private var anomalyLogged: [UInt64: Int] = [:]   // by Engine.anomalyKindKey
    private var anomalyJSON = JSONWriter(capacity: 512)

    /// Held by whichever thread runs the merge: the detection thread, or a worker while `workersMerge`.
    private let mergeLock = Atomic<Bool>(false)
    /// The worker whose checkpoints run the merge while the workers merge (`FileShareReader.mergeIfDue`); any
    /// worker whose event queue is full merges too, and takes the duty.
    let merger = Atomic<Int>(0)
    /// How far (merge keys: packets) another worker must be ahead of the one on merge duty to take it over.
    static let handOverKeys: UInt64 = 4096
    /// Set while the workers read a capture file (`replayFile`): they run the merge themselves (`tryMerge`, at
    /// checkpoints of their read loops and when their event queue is full) and the detection thread leaves it to
    /// them, so only two threads share two cores and no worker is preempted by a third.
    let workersMerge = Atomic<Bool>(false)
    /// Every worker's `.finish` is merged and the observer finished: the detection thread ends.
    let merged = Atomic<Bool>(false)
    /// The pipeline (set once by it, before its threads start).
    unowned(unsafe) var pipeline: ParallelPipeline?
    // Merge state: only `mergeLock`'s holder touches it.
    /// Unretained views of the workers and their event queues (the pipeline keeps them alive): retaining them per
    /// event wrote their reference counts, in cache lines their worker threads write too.
    private let workerViews: [Unmanaged<PipelineWorker>]
    private let queueViews: [Unmanaged<EventQueue>]
    /// Each worker's lower bound of its next event's key (`.max`: finished).
    private let bounds: UnsafeMutablePointer<UInt64>
    @exclusivity(unchecked) private var finishedWorkers = 0
    @exclusivity(unchecked) private var mergeDone = false
    private let quiet: (any QuietOperationObserver)?
    /// The detector's per-flow entries, prefetched for the event a few places behind the one replayed (with
    /// 100,000 flows each entry is otherwise a cache miss); the table may grow at a flow start.
    @exclusivity(unchecked) private var entries: FlowStateTable

    init(observer: (any EngineObserver)?, sink: EventSink, detector: Detector?, alertsRaised: (() -> UInt64)?, waiter: Waiter,
         anomalyRecords: Bool, anomalyLimit: Int, workers: [PipelineWorker]) {
        self.observer = observer; self.sink = sink; self.detector = detector; self.waiter = waiter
        self.alertsRaised = alertsRaised ?? { [sink] in sink.recordCounts[RecordKind.alert.rawValue] }
        self.anomalyRecords = anomalyRecords; self.anomalyLimit = anomalyLimit
        workerViews = workers.map { Unmanaged.passUnretained($0) }
        queueViews = workers.map { Unmanaged.passUnretained($0.events) }
        bounds = .allocate(capacity: max(1, workers.count))
        bounds.initialize(repeating: 0, count: max(1, workers.count))
        quiet = observer as? any QuietOperationObserver
        entries = observer?.flowStateTable() ?? .none
        contextSlots = (workers.map { max(16, $0.engine.configuration.flowLimits.maximumFlows) }.max() ?? 16) * max(1, workers.count)
        if quiet != nil, let d = detector { setQuietMode(QuietDecisionMode.following(d)) }
    }

    /// Sets the rule the workers decide by (`QuietDecisionMode`), in the merge's copy and every worker's table.
    private func setQuietMode(_ mode: UInt8) {
        quietMode = mode
        for w in workerViews { w._withUnsafeGuaranteedRef { $0.recorder.verdicts.setMode(mode) } }
    }

    /// Hands the worker whose flow `f` is (made unique: slot·N + worker) the detector's verdict on it, by which it
    /// decides the flow's operations the merge would pass over quietly (`QuietDecisionMode.byVerdicts` only).
    private func publishVerdict(_ f: FlowContext) {
        guard let d = detector, quietMode == QuietDecisionMode.byVerdicts, f.flowSlot >= 0, f.flowSerial != 0 else { return }
        let n = workerViews.count
        let worker = Int(f.flowSlot) % n
        let v = d.quietVerdict(flowSlot: f.flowSlot, flowSerial: f.flowSerial, engineSerial: f.flowSerial / UInt64(n))
        // `.none` too: the slot's previous flow's verdict goes (its serial guards it anyway).
        workerViews[worker]._withUnsafeGuaranteedRef { $0.recorder.verdicts.publish(v, slot: Int(f.flowSlot) / n) }
    }

    /// Logs an anomaly as one engine would: in packet order, at most `anomalyLimit` lines per (layer, kind).
    private func logAnomaly(_ a: Anomaly, flow: FlowContext?) {
        let id = Engine.anomalyKindKey(a)
        let n = anomalyLogged[id, default: 0]
        guard n < anomalyLimit else { anomaliesNotLogged.add(1, ordering: .relaxed); return }
        anomalyLogged[id] = n + 1
        anomalyJSON.reset()
        Engine.writeAnomalyRecord(a, flow: flow, into: &anomalyJSON)
        anomalyJSON.appendByte(UInt8(ascii: "\n"))
        anomalyJSON.withBytes { sink.lines[RecordKind.anomaly.rawValue].append(contentsOf: $0) }
        sink.recordCounts[RecordKind.anomaly.rawValue] &+= 1
    }

    /// A reload of `p`, to apply after the packet with merge key `after` (the reader's thread). From now on the
    /// workers send every operation (they would judge them by the old policy's verdicts) until every pending request
    /// applies.
    func request(_ p: CompiledPolicy?, after: UInt64) {
        pendingPolicies.withLock {
            $0.append((p, after))
            for w in workerViews { w._withUnsafeGuaranteedRef { $0.recorder.verdicts.setMode(QuietDecisionMode.off) } }
            policyRequested.store(true, ordering: .releasing)
        }
        waiter.wake()
    }

    /// The merge key after which the oldest pending reload applies; nil when none is pending.
    private var nextReloadAfter: UInt64? {
        policyRequested.load(ordering: .acquiring) ? pendingPolicies.withLock { $0.first?.after } : nil
    }

    /// Swaps in the requested policies, oldest first, each once every event of the packets read before its request is
    /// merged (each worker's next event lies beyond them); the merge state's holder only.
    private func applyPolicy() {
        while policyRequested.load(ordering: .acquiring) {
            guard let (p, after) = pendingPolicies.withLock({ $0.first }) else { return }
            for v in 0..<workerViews.count where bounds[v] != .max && bounds[v] <= after { return }
            detector?.replacePolicy(p)
            // The verdicts were the old policy's: the flows identified from now on get the new one's.
            for w in workerViews { w._withUnsafeGuaranteedRef { $0.recorder.verdicts.forgetVerdicts() } }
            // While later requests wait, the workers keep sending every operation.
            pendingPolicies.withLock {
                $0.removeFirst()
                guard $0.isEmpty else { return }
                if quiet != nil, let d = detector { setQuietMode(QuietDecisionMode.following(d)) }
                policyRequested.store(false, ordering: .releasing)
            }
        }
    }

    private func flushAlerts(_ pipeline: ParallelPipeline) {
        alertCount.store(alertsRaised(), ordering: .relaxed)
        for kind in RecordKind.allCases where !sink.lines[kind.rawValue].isEmpty {
            pipeline.write(kind, sink.lines[kind.rawValue])
            sink.lines[kind.rawValue].removeAll(keepingCapacity: true)
        }
    }

    /// The flow contexts of identified flows by (unique) flow slot, for the operations sent without theirs
    /// (`EventRecorderForwarder`): zeroed maps sized for every slot the workers' flow tables can hand out (pages
    /// cost nothing until a flow's context is kept there), so they never move; grown (copied) only past that.
    /// Most contexts (IPv4, Community ID pending) are kept in 32 bytes (`KeptContext`), the rest whole, apart: the
    /// pages of a table the merge writes are zeroed by the kernel on first touch, and at 112 bytes a flow the whole
    /// contexts of the plant's 100,000 flows cost as much as the rest of the merge's per-flow memory.
    @exclusivity(unchecked) private var kept: UnsafeMutablePointer<KeptContext>?
    @exclusivity(unchecked) private var contexts: UnsafeMutablePointer<FlowContext>?
    @exclusivity(unchecked) private var contextCapacity = 0
    /// Slots the maps are first made for: the workers' flow caps (an engine's slots stay below its cap), interleaved.
    private let contextSlots: Int

    deinit {
        if let k = kept { LargeBlock.unmap(UnsafeMutableRawPointer(k), bytes: contextCapacity * MemoryLayout<KeptContext>.stride) }
        if let c = contexts { LargeBlock.unmap(UnsafeMutableRawPointer(c), bytes: contextCapacity * MemoryLayout<FlowContext>.stride) }
        bounds.deallocate()
    }

    /// A zeroed map of `capacity` elements holding the first `count` of `old` (unmapped; `oldCapacity` its size).
    private static func grow<T>(_ old: UnsafeMutablePointer<T>?, count: Int, oldCapacity: Int, to capacity: Int) -> UnsafeMutablePointer<T> {
        let grown = LargeBlock.mapZeroed(capacity * MemoryLayout<T>.stride).bindMemory(to: T.self, capacity: capacity)
        if let o = old {
            grown.moveInitialize(from: o, count: count)
            LargeBlock.unmap(UnsafeMutableRawPointer(o), bytes: oldCapacity * MemoryLayout<T>.stride)
        }
        return grown
    }

    /// Keeps `f` as its flow slot's context (a flow's operations follow its `flowIdentified`).
    private func keepContext(_ f: FlowContext) {
        let s = Int(f.flowSlot)
        if s >= contextCapacity {
            let capacity = max(s + 1, contextCapacity * 2, contextSlots)
            kept = Self.grow(kept, count: contextCapacity, oldCapacity: contextCapacity, to: capacity)
            if contexts != nil { contexts = Self.grow(contexts, count: contextCapacity, oldCapacity: contextCapacity, to: capacity) }
            contextCapacity = capacity
        }
        // Plain values (no references): a slot is written before it is read (at its flow's `flowIdentified`), and
        // written over without deinitialization.
        if let k = KeptContext(f) {
            (kept.unsafelyUnwrapped + s).initialize(to: k)
        } else {
            if contexts == nil { contexts = Self.grow(nil as UnsafeMutablePointer<FlowContext>?, count: 0, oldCapacity: 0, to: contextCapacity) }
            (contexts.unsafelyUnwrapped + s).initialize(to: f)
            (kept.unsafelyUnwrapped + s).initialize(to: KeptContext.whole)
        }
    }

    /// The context kept for flow slot `s` (`keepContext`).
    @inline(__always)
    private func keptContext(_ s: Int) -> FlowContext {
        precondition(s >= 0 && s < contextCapacity, "an operation before its flow's flowIdentified")
        let k = kept.unsafelyUnwrapped[s]
        if k.flags & KeptContext.wholeFlag != 0 { return contexts.unsafelyUnwrapped[s] }
        return k.context(slot: Int32(truncatingIfNeeded: s))
    }

    /// How `replayRun` stopped.
    enum RunEnd { case emptied, limit, finished }

    /// Replays `q`'s events from its head while their keys stay below `limit`, in place (a non-quiet event is read
    /// where it lies in its slot, then the slot is let go). An operation sent with its quiet traits that the
    /// detector passes over is taken from its header alone: only its time matters (the same check and sweep
    /// `operation` would make), the event itself is not read. Stops after a `.finish` event (not replayed).
    @inline(__always)
    private func replayRun(_ q: EventQueue, below limit: UInt64, observer: (any EngineObserver)?, quiet: (any QuietOperationObserver)?,
                           takesQuiet: Bool, entries: inout FlowStateTable) -> RunEnd {
        while true {
            if takesQuiet && q.headTraits.flowSerial != 0 {
                // The operations the detector passes over, as many in a row as there are: one call for the run.
                let (first, available) = q.headRun(below: limit)
                let taken = quiet.unsafelyUnwrapped.takeQuietly(run: first, stride: MemoryLayout<EventHeader>.stride, count: available)
                if taken > 0 {
                    q.skip(taken)
                    guard let k = q.headKey() else { return .emptied }
                    if k >= limit { return .limit }
                    // All taken: the run went on past the end of the header array, or more was queued meanwhile.
                    if taken == available { continue }
                }
            }
            let traits = q.headTraits
            if let (op, flow) = q.headOperation {
                if let f = flow {
                    observer?.operation(op.pointee, flow: f.pointee)
                } else {
                    observer?.operation(op.pointee, flow: keptContext(Int(traits.flowSlot)))
                }
                q.pop()
            } else {
                // One switch on the event where it lies (each `if case` on it copied the whole event out, twice).
                switch q.headSlot.pointee {
                case .finish:
                    q.pop()
                    return .finished
                case .flowStarted(let f, let frame, let time):
                    if let o = observer {
                        o.flowStarted(f, frame: frame, time: time)
                        entries = o.flowStateTable()
                    }
                case .flowIdentified(let f, let p, let frame, let time):
                    if q.headKeepsContext { keepContext(f) }
                    observer?.flowIdentified(f, appProtocol: p, frame: frame, time: time)
                    if p != nil { publishVerdict(f) }
                case .operation(let op, let f):
                    observer?.operation(op, flow: f)
                case .anomaly(let a, let f):
                    if anomalyRecords { logAnomaly(a, flow: f) }
                    observer?.anomaly(a, flow: f)
                case .flowEnded(let f, let r):
                    observer?.flowEnded(f, reason: r)
                case .tick(let t):
                    observer?.tick(time: t)
                }
                q.pop()
            }
            // The detector's entry for an event a few places on (with 100,000 flows each is otherwise a miss here).
            let s = q.flowSlot(ahead: 6)
            if s >= 0, Int(s) < entries.count, let base = entries.base { zw_prefetch(base + Int(s) &* entries.stride) }
            guard let k = q.headKey() else { return .emptied }
            if k >= limit { return .limit }
        }
    }

    /// The detection thread: runs the merge whenever there is something to merge, except while the workers run it
    /// themselves (`workersMerge`); returns once every worker's `.finish` is merged.
    func run(_ pipeline: ParallelPipeline) {
        var idleSleep = 50
        while !merged.load(ordering: .acquiring) {
            if workersMerge.load(ordering: .acquiring) {
                // The workers merge: sleep without announcing it (`Waiter.sleeping` stays false), so that their
                // queues' "half full" nudges cost them nothing; they wake us explicitly when they hand the merge back.
                waiter.wait(microseconds: 20_000)
                continue
            }
            var progressed = false
            if let p = tryMerge() { progressed = p }
            if progressed {
                idleSleep = 50
            } else {
                if merged.load(ordering: .acquiring) { return }
                // Nothing could be merged: sleep, a little longer each time (up to 5 ms), until a worker wakes us.
                waiter.await(spins: 8, sleepMicroseconds: idleSleep) { false }
                idleSleep = min(idleSleep * 2, 5000)
            }
        }
    }

    /// Runs `body` with the merge lock held, unless another thread holds it (false then).
    func excludingMerge(_ body: () -> Void) -> Bool {
        guard mergeLock.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else { return false }
        body()
        mergeLock.store(false, ordering: .releasing)
        return true
    }

    /// Runs one merge step (`mergeStep`) unless another thread is running one (nil then); any thread.
    @inline(never)
    func tryMerge() -> Bool? {
        guard mergeLock.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else { return nil }
        let progressed = mergeStep()
        mergeLock.store(false, ordering: .releasing)
        return progressed
    }

    /// Merges what can be merged now: every event no worker can still precede, in (merge key, worker) order, into
    /// the observer; then lets buffered alerts out. Returns whether any event was merged. Only with `mergeLock` held
    /// (whichever thread holds it: the merge state below moves with the lock).
    private func mergeStep() -> Bool {
        guard !mergeDone else { return false }
        let pipeline = self.pipeline.unsafelyUnwrapped
        let workers = workerViews, queues = queueViews
        let n = workers.count
        let bounds = self.bounds
        let observer = self.observer, quiet = self.quiet, takesQuietOperations = quiet != nil
        var entries = self.entries
        defer { self.entries = entries }
        // Lower bounds of every worker's next event key. For a worker with no queued event, the bound is
        // read before its queue is checked: a message it completed published its events first.
        let d = pipeline.dispatched.load(ordering: .acquiring)
        var any = false
        for v in 0..<n where bounds[v] != .max {
            // A drained worker's next event comes from a message not yet dispatched (key > d) and after what it
            // completed: a worker that read a file to its end has completed keys the reader has not dispatched
            // yet (it publishes them once every worker is done), and waiting for `d` alone would wait for it.
            let safe = workers[v]._withUnsafeGuaranteedRef { w in
                let done = w.recorder.completed.load(ordering: .acquiring)
                return w.ring.isDrained ? max(d, done) &+ 1 : done &+ 1
            }
            if let k = queues[v]._withUnsafeGuaranteedRef({ $0.headKey() }) { bounds[v] = k; any = true } else { bounds[v] = safe }
        }
        applyPolicy()
        // A reload still waiting: no run goes past the last packet read before its request.
        var reloadAfter = nextReloadAfter
        var progressed = false
        if any {
            // Pop events in (key, worker) order while no other worker can still produce an earlier one.
            while true {
                var best = -1
                var bestKey = UInt64.max
                for v in 0..<n where bounds[v] != .max {
                    if let k = queues[v]._withUnsafeGuaranteedRef({ $0.headKey() }) {
                        bounds[v] = k
                        if k < bestKey { bestKey = k; best = v }
                    }
                }
                guard best >= 0 else { break }
                var allowed = true
                for v in 0..<n where v != best {
                    if bounds[v] < bestKey || (bounds[v] == bestKey && v < best) { allowed = false; break }
                }
                guard allowed else { break }
                // A request may come while this step runs: seen here, after the heads were read (an event of a packet
                // read after it was queued after it).
                if reloadAfter == nil { reloadAfter = nextReloadAfter }
                if let after = reloadAfter, bestKey > after {
                    applyPolicy()   // every event up to `after` is merged: the new policy from here on
                    reloadAfter = nextReloadAfter
                }
                progressed = true
                // Every other worker's events have keys of at least its bound, so `best`'s events come first as
                // long as their keys stay below `limit` (at a tie the lower worker index goes first): they are
                // taken in one run, without looking at the other queues for each.
                // Two workers, both with events queued: their quiet operations are taken merged, in one call, for as
                // long as they come (a run of one worker's events holds two or three on average).
                if n == 2 && takesQuietOperations && reloadAfter == nil && bounds[1 &- best] != .max,
                   queues[best]._withUnsafeGuaranteedRef({ $0.headTraits.flowSerial != 0 }),
                   queues[1 &- best]._withUnsafeGuaranteedRef({ $0.headKey() }) != nil {
                    let (ta, tb) = queues[0]._withUnsafeGuaranteedRef { a in
                        queues[1]._withUnsafeGuaranteedRef { b in
                            let (ra, ca) = a.headRecords(), (rb, cb) = b.headRecords()
                            // The records may hold events of packets read after a request made since the test
                            // above: then not here (the next pass sets `reloadAfter`).
                            if policyRequested.load(ordering: .acquiring) { return (-1, 0) }
                            let taken = quiet.unsafelyUnwrapped.takeQuietly(merging: ra, count: ca, with: rb, count: cb,
                                                                            stride: MemoryLayout<EventHeader>.stride)
                            if taken.0 > 0 { a.skip(taken.0) }
                            if taken.1 > 0 { b.skip(taken.1) }
                            return taken
                        }
                    }
                    if ta < 0 { continue }
                    if ta > 0 || tb > 0 {
                        progressed = true
                        // A queue emptied: its bound must be re-read (before the queue) on the next pass.
                        if queues[0]._withUnsafeGuaranteedRef({ $0.headKey() }) == nil
                            || queues[1]._withUnsafeGuaranteedRef({ $0.headKey() }) == nil { break }
                        continue
                    }
                }
                var limit = reloadAfter.map { $0 &+ 1 } ?? .max
                for v in 0..<n where v != best {
                    limit = min(limit, v > best ? (bounds[v] == .max ? .max : bounds[v] &+ 1) : bounds[v])
                }
                var emptied = false
                switch queues[best]._withUnsafeGuaranteedRef({ q in
                    replayRun(q, below: limit, observer: observer, quiet: quiet, takesQuiet: takesQuietOperations, entries: &entries)
                }) {
                case .emptied: emptied = true
                case .limit: break
                case .finished:
                    finishedWorkers += 1
                    // A finished worker produces nothing more.
                    bounds[best] = .max
                    if finishedWorkers == n {
                        observer?.finish()
                        flushAlerts(pipeline)
                        mergeDone = true
                        merged.store(true, ordering: .releasing)
                        waiter.wake()
                        return true
                    }
                    emptied = true
                }
                // Its queue emptied: its bound must be re-read (before the queue) on the next pass.
                if emptied && bounds[best] != .max { break }
            }
        }
        let buffered = sink.lines[RecordKind.alert.rawValue].count + sink.lines[RecordKind.anomaly.rawValue].count
        if buffered > 1 << 16 || (!progressed && buffered > 0) {
            flushAlerts(pipeline)
        }
        if !progressed { alertCount.store(alertsRaised(), ordering: .relaxed) }
        return progressed
    }
}

extension EngineStatistics {
    /// Adds another worker's counters.
    public mutating func add(_ s: EngineStatistics) {
        packets &+= s.packets; bytes &+= s.bytes; truncatedPackets &+= s.truncatedPackets; nonIPPackets &+= s.nonIPPackets
        for i in decodeFailures.indices where i < s.decodeFailures.count { decodeFailures[i] &+= s.decodeFailures[i] }
        flowsCreated &+= s.flowsCreated
        for i in flowsEnded.indices where i < s.flowsEnded.count { flowsEnded[i] &+= s.flowsEnded[i] }
        clockSteps = max(clockSteps, s.clockSteps)   // each engine sees the same steps of packet time
        streamGaps &+= s.streamGaps; streamGapBytes &+= s.streamGapBytes; carryOverflows &+= s.carryOverflows
        messagesCutByCapture &+= s.messagesCutByCapture; messagesCutByCaptureBytes &+= s.messagesCutByCaptureBytes
        ipFragments &+= s.ipFragments; ipDatagramsReassembled &+= s.ipDatagramsReassembled; ipDatagramsCutByCapture &+= s.ipDatagramsCutByCapture
        udpDatagramsCapturedTwice &+= s.udpDatagramsCapturedTwice; ipFragmentsCapturedTwice &+= s.ipFragmentsCapturedTwice
        badChecksums &+= s.badChecksums; checksumOffloadedSides &+= s.checksumOffloadedSides
        anomalies &+= s.anomalies; anomaliesNotLogged &+= s.anomaliesNotLogged; operations &+= s.operations; alerts &+= s.alerts
        for i in pdus.indices where i < s.pdus.count { pdus[i] &+= s.pdus[i] }
        for i in flowsPerProtocol.indices where i < s.flowsPerProtocol.count { flowsPerProtocol[i] &+= s.flowsPerProtocol[i] }
    }
}

/// A flow context as `DetectionStage` keeps it for the operations sent without theirs: an IPv4 flow whose Community
/// ID is pending (nearly every flow the merge sees: records, which set the ID, are written by the workers) in 32
/// bytes instead of `FlowContext`'s 112; any other context is kept whole, apart (`wholeFlag`). The context rebuilt
/// from it (`context(slot:)`) equals the one kept, field for field.
struct KeptContext {
    var flowSerial: UInt64
    var initiatorIP: UInt32
    var responderIP: UInt32
    var initiatorPort: UInt16
    var responderPort: UInt16
    var vlan: UInt16
    var transport: UInt8
    /// `wholeFlag`, `midstreamFlag`.
    var flags: UInt8
    var communityIDProtocol: UInt8

    static let wholeFlag: UInt8 = 1
    static let midstreamFlag: UInt8 = 2
    static let whole = KeptContext(flowSerial: 0, initiatorIP: 0, responderIP: 0, initiatorPort: 0, responderPort: 0, vlan: 0,
                                   transport: 0, flags: wholeFlag, communityIDProtocol: 0)

    init(flowSerial: UInt64, initiatorIP: UInt32, responderIP: UInt32, initiatorPort: UInt16, responderPort: UInt16, vlan: UInt16,
         transport: UInt8, flags: UInt8, communityIDProtocol: UInt8) {
        self.flowSerial = flowSerial; self.initiatorIP = initiatorIP; self.responderIP = responderIP
        self.initiatorPort = initiatorPort; self.responderPort = responderPort; self.vlan = vlan
        self.transport = transport; self.flags = flags; self.communityIDProtocol = communityIDProtocol
    }

    /// `f` in 32 bytes, or nil when it does not fit (IPv6, or a Community ID set).
    @inline(__always)
    init?(_ f: FlowContext) {
        guard f.communityIDPending, f.initiator.ip.isIPv4, f.responder.ip.isIPv4 else { return nil }
        self.init(flowSerial: f.flowSerial, initiatorIP: f.initiator.ip.v4, responderIP: f.responder.ip.v4,
                  initiatorPort: f.initiator.port, responderPort: f.responder.port, vlan: f.vlan, transport: f.transport.rawValue,
                  flags: f.midstream ? Self.midstreamFlag : 0, communityIDProtocol: f.communityIDProtocol)
    }

    /// The context kept, as flow slot `slot`'s.
    @inline(__always)
    func context(slot: Int32) -> FlowContext {
        var c = FlowContext(initiator: Endpoint(ip: IPAddress(v4: initiatorIP), port: initiatorPort),
                            responder: Endpoint(ip: IPAddress(v4: responderIP), port: responderPort),
                            transport: Transport(rawValue: transport) ?? .other, vlan: vlan,
                            midstream: flags & Self.midstreamFlag != 0, flowSlot: slot, flowSerial: flowSerial)
        c.setCommunityIDPending(ipProtocol: communityIDProtocol)
        return c
    }
}

/// One owner pass over a mapped capture file, shared by the workers of a `replayFile`: the file is cut into stretches
/// of up to `stretchRecords` records, and each stretch is walked once, by whichever worker needs it first. The walker
/// reads every record header of the stretch, computes its owner (`FlowDispatch`) and the sweep clock, and lists for
/// each worker the records it acts on (its own packets, and the sweeps of every worker); the others read only their
/// lists. So each record header is read and hashed once in all, not once per worker. Each reader streams the stretch
/// after its next one into its core's cache as it goes (`readSharedPass`), so the walk, which would otherwise bring
/// the whole file in at the pace one core's outstanding misses allow, reads from a cache, and so do the readers.
/// With two workers on Ethernet the common records are walked in a loop of their own (`walkCommon`).
///
/// Stretches lie in a ring of `slots`; a slot is walked again once every worker has taken the stretch in it. The walk
/// is sequential (a record's place is known only from the one before), so one worker at a time walks
/// (`walkLock`), a stretch at a time, which is short (about 6 µs); whoever gets ahead walks more, so the work
/// balances itself. The walk state (`walk`, `parsed`, `clock`) moves with the lock.
final class OwnerPass: @unchecked Sendable {
    /// A record a worker acts on, in 8 bytes (a stretch's lists are written on one core and read on the other: at
    /// 16 bytes an entry, the reader waited on their lines more than on anything else it did): its header's offset
    /// in the map, its number within the stretch (from 1, at most `stretchRecords`) and flags (`own`, `sweep`, `copy`:
    /// another worker's IP fragment, reassembled here too).
    struct Entry {
        var bits: UInt64
        static let own: UInt32 = 1
        static let sweep: UInt32 = 2
        static let copy: UInt32 = 4
        static let flagBits = 3
        /// Bits of the record number (`stretchRecords` must fit them: see `OwnerPass.init`).
        static let numberBits = 11
        static let offsetShift = UInt64(flagBits + numberBits)
        @inline(__always) init(offset: Int, number: UInt32, flags: UInt32) {
            bits = UInt64(truncatingIfNeeded: offset) << Self.offsetShift | UInt64(number) << Self.flagBits | UInt64(flags)
        }
        @inline(__always) init(bits: UInt64) { self.bits = bits }
        @inline(__always) var number: UInt32 { UInt32(truncatingIfNeeded: bits >> Self.flagBits) & (1 << Self.numberBits - 1) }
        @inline(__always) var flags: UInt32 { UInt32(truncatingIfNeeded: bits) & 7 }
        /// The record's header in the map at `base`.
        @inline(__always) func header(_ base: UnsafeRawPointer) -> UnsafeRawPointer { base + Int(truncatingIfNeeded: bits >> Self.offsetShift) }
    }
    /// What a walked stretch holds, besides the lists.
    struct Stretch {
        /// Record number before its first record, and of its last (equal: no record).
        var base: UInt64 = 0
        var last: UInt64 = 0
        /// Time of its last record (microseconds), and the sweep clock after it.
        var lastSeconds: UInt32 = 0
        var lastFraction: UInt32 = 0
        var clockAfter: Int64 = 0
        /// The walk stopped in it: the end of the file, or a record libpcap must handle (`irregular`).
        var ended = false
        var irregular = false
        /// Where the walk stood after it.
        var walk: WholeFileWalk?
    }

    static let stretchRecords = 1024
    static let slots = 16
    /// How many entries ahead a reader fetches the packet's lines, and the list's (the walker's core wrote them).
    static let packetsAhead = 16
    static let listAhead = 64
    /// Bytes of the stretch after the next a reader streams into its cache per entry it reads (four lines).
    static let streamBytes = 256
    /// Entries a list has room for: a stretch's records, and `packetsAhead` copies of its last entry past its end.
    static let listCapacity = stretchRecords + packetsAhead

    let workers: Int
    private let stretches: UnsafeMutablePointer<Stretch>
    /// Per slot and worker: the count, and the list (`listCapacity` entries: a record adds at most one to each).
    private let counts: UnsafeMutablePointer<Int>
    private let lists: UnsafeMutablePointer<Entry>
    /// Stretches walked (0..<published are ready to read).
    let published = Atomic<Int>(0)
    /// Per worker, stretches taken (`Int.max`: no longer reading, holds no slot).
    private final class Taken: Sendable { let count = Atomic<Int>(0) }
    private let taken: [Taken]
    private let walkLock = Atomic<Bool>(false)
    // The walk state: only the holder of `walkLock`.
    @exclusivity(unchecked) private var walk: WholeFileWalk?
    @exclusivity(unchecked) private var parsed: UInt64 = 0
    @exclusivity(unchecked) private var clock: Int64 = 0
    @exclusivity(unchecked) private var lastSeconds: UInt32 = 0
    @exclusivity(unchecked) private var lastFraction: UInt32 = 0
    @exclusivity(unchecked) private var ended = false
    let linkType: Int32
    /// What the walk dispatches by (`FlowDispatch`).
    let dispatchKey: FlowHashKey

    init(workers: Int, linkType: Int32, dispatchKey: FlowHashKey, firstRecord: UInt64, clock: Int64) {
        precondition(Self.stretchRecords < 1 << Entry.numberBits, "owner pass: a stretch's record numbers must fit an entry")
        self.workers = workers; self.linkType = linkType; self.dispatchKey = dispatchKey
        parsed = firstRecord; self.clock = clock
        stretches = .allocate(capacity: Self.slots)
        stretches.initialize(repeating: Stretch(), count: Self.slots)
        counts = .allocate(capacity: Self.slots * workers)
        counts.initialize(repeating: 0, count: Self.slots * workers)
        lists = .allocate(capacity: Self.slots * workers * Self.listCapacity)
        taken = (0..<workers).map { _ in Taken() }
    }

    deinit {
        stretches.deinitialize(count: Self.slots).deallocate()
        counts.deallocate(); lists.deallocate()
    }

    @inline(__always) func stretch(_ s: Int) -> UnsafeMutablePointer<Stretch> { stretches + (s & (Self.slots - 1)) }
    @inline(__always) func count(_ s: Int, worker: Int) -> Int { counts[(s & (Self.slots - 1)) &* workers &+ worker] }
    @inline(__always) func list(_ s: Int, worker: Int) -> UnsafeMutablePointer<Entry> {
        lists + ((s & (Self.slots - 1)) &* workers &+ worker) &* Self.listCapacity
    }

    /// Worker `worker` has taken every stretch before `s` (`Int.max`: it reads no more here).
    func took(_ s: Int, worker: Int) { taken[worker].count.store(s, ordering: .releasing) }

    /// How a walk attempt went.
    enum WalkResult { case walked, busy, full, ended }

    /// Walks the next stretch unless another worker is walking, the ring is full (a worker has not taken the stretch
    /// whose slot is next) or the walk has ended. `start` is the caller's walk from the file's first record (all
    /// workers' are the same); `m` its capture (the walk's position reports are off: readers report).
    func tryWalk(_ m: MappedCapture, start: WholeFileWalk) -> WalkResult {
        guard walkLock.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else { return .busy }
        defer { walkLock.store(false, ordering: .releasing) }
        if ended { return .ended }
        let s = published.load(ordering: .relaxed)
        for t in taken where t.count.load(ordering: .acquiring) <= s &- Self.slots { return .full }
        walkStretch(s, m, start: start)
        published.store(s &+ 1, ordering: .releasing)
        return .walked
    }

    /// Walks stretch `s` into its slot (the lock held, the slot free).
    @inline(never)
    private func walkStretch(_ s: Int, _ m: MappedCapture, start: WholeFileWalk) {
        var walk: WholeFileWalk
        if let w = self.walk { walk = w } else { walk = start; walk.nextReport = .max }
        var parsed = self.parsed, clock = self.clock
        let base = parsed, limit = parsed &+ UInt64(Self.stretchRecords)
        let workers = self.workers, linkType = self.linkType, dispatchKey = self.dispatchKey
        let ethernet = linkType == PacketDecoder.ethernet
        let counts = self.counts + (s & (Self.slots - 1)) &* workers
        let lists = list(s, worker: 0)
        let mapBase = walk.base
        var last: UnsafeRawPointer?
        var ended = false
        if workers == 2 && ethernet {
            // The usual case: the common records in a loop of their own (`walkCommon`), each other one here.
            var c = TwoWorkerCursor(offset: walk.offset, number: 0, next0: 0, next1: Self.listCapacity, clock: clock)
            let within = walk.withinLimit
            while true {
                Self.walkCommon(&c, lists: lists, base: mapBase, within: within, snapshot: walk.snapshot, fractionLimit: walk.fractionLimit,
                                dispatchKey: dispatchKey)
                if c.number == UInt64(Self.stretchRecords) { break }
                walk.offset = c.offset
                guard let h = walk.next(m) else { ended = true; break }
                c.offset = walk.offset
                c.number &+= 1
                c.last = h
                let w = FlowDispatch.worker(forRecordAt: h, ethernet: true, linkType: linkType, workers: 2, key: dispatchKey)
                if w == FlowDispatch.everyWorker { c.placeInBoth(h, lists: lists, base: mapBase) } else { c.place(h, worker: w, lists: lists, base: mapBase) }
            }
            walk.offset = c.offset
            parsed = base &+ c.number
            clock = c.clock
            last = c.last
            counts[0] = c.next0; counts[1] = c.next1 &- Self.listCapacity
        } else {
            for v in 0..<workers { counts[v] = 0 }
            while parsed < limit {
                guard let h = walk.next(m) else { ended = true; break }
                parsed &+= 1
                last = h
                let seconds = h.loadUnaligned(as: UInt32.self)
                let w = FlowDispatch.worker(forRecordAt: h, ethernet: ethernet, linkType: linkType, workers: workers, key: dispatchKey)
                let number = UInt32(truncatingIfNeeded: parsed &- base)
                let sweep = PacketTime.sweeps(second: Int64(seconds), nextSweep: clock)
                if sweep || w == FlowDispatch.everyWorker {
                    if sweep { clock = Int64(seconds) &+ 1 }
                    for v in 0..<workers {
                        let flags = (sweep ? Entry.sweep : 0) | (FlowDispatch.owns(w, v) ? Entry.own : 0) | (FlowDispatch.copies(w, v) ? Entry.copy : 0)
                        lists[v &* Self.listCapacity &+ counts[v]] = Entry(offset: h - mapBase, number: number, flags: flags)
                        counts[v] &+= 1
                    }
                } else {
                    lists[w &* Self.listCapacity &+ counts[w]] = Entry(offset: h - mapBase, number: number, flags: Entry.own)
                    counts[w] &+= 1
                }
            }
        }
        // Each list's last entry repeated `packetsAhead` times past its end: the reader prefetches that far ahead
        // without a test (the copies' lines are the last entry's, fetched already).
        for v in 0..<workers where counts[v] > 0 {
            let list = lists + v &* Self.listCapacity, n = counts[v]
            let lastEntry = list[n &- 1]
            for j in 0..<Self.packetsAhead { list[n &+ j] = lastEntry }
        }
        if let h = last {
            lastSeconds = h.loadUnaligned(as: UInt32.self)
            lastFraction = walk.microseconds(h)
        }
        stretch(s).pointee = Stretch(base: base, last: parsed, lastSeconds: lastSeconds, lastFraction: lastFraction, clockAfter: clock,
                                     ended: ended, irregular: walk.irregular, walk: walk)
        self.walk = walk; self.parsed = parsed; self.clock = clock; self.ended = ended
    }
}

extension OwnerPass {
    /// Where a two-worker walk of a stretch stands: the next record's offset, the records walked, each list's next
    /// place in the stretch's lists (worker 0's, then worker 1's from `listCapacity`), the sweep clock, the last record.
    struct TwoWorkerCursor {
        var offset: Int
        var number: UInt64
        var next0: Int
        var next1: Int
        var clock: Int64
        var last: UnsafeRawPointer?

        /// Record number `number`'s entry bits (its header at `h`), and whether a sweep falls at it (the clock moved on).
        @inline(__always)
        mutating func stamp(_ h: UnsafeRawPointer, base: UnsafeRawPointer) -> (bits: UInt64, sweeps: Bool) {
            let bits = UInt64(truncatingIfNeeded: h - base) << Entry.offsetShift | number << UInt64(Entry.flagBits)
            let seconds = h.loadUnaligned(as: UInt32.self)
            guard PacketTime.sweeps(second: Int64(seconds), nextSweep: clock) else { return (bits, false) }
            clock = Int64(seconds) &+ 1
            return (bits, true)
        }

        /// Lists record number `number` (its header at `h`, its worker `w`): in its worker's list, or in both at a sweep.
        @inline(__always)
        mutating func place(_ h: UnsafeRawPointer, worker w: Int, lists: UnsafeMutablePointer<Entry>, base: UnsafeRawPointer) {
            let (bits, sweeps) = stamp(h, base: base)
            if sweeps {
                let sweep = bits | UInt64(Entry.sweep)
                lists[next0] = Entry(bits: sweep | (w == 0 ? UInt64(Entry.own) : 0))
                lists[next1] = Entry(bits: sweep | (w == 1 ? UInt64(Entry.own) : 0))
                next0 &+= 1; next1 &+= 1
            } else {
                // Indexed, not a branch on the worker (a coin flip).
                lists[w == 0 ? next0 : next1] = Entry(bits: bits | UInt64(Entry.own))
                next0 &+= 1 &- w; next1 &+= w
            }
        }

        /// `place` for an IP fragment (`FlowDispatch.everyWorker`): worker 0's packet, worker 1's copy.
        mutating func placeInBoth(_ h: UnsafeRawPointer, lists: UnsafeMutablePointer<Entry>, base: UnsafeRawPointer) {
            let (bits, sweeps) = stamp(h, base: base)
            let sweep: UInt64 = sweeps ? UInt64(Entry.sweep) : 0
            lists[next0] = Entry(bits: bits | sweep | UInt64(Entry.own))
            lists[next1] = Entry(bits: bits | sweep | UInt64(Entry.copy))
            next0 &+= 1; next1 &+= 1
        }
    }

    /// Walks records of a stretch for two workers over Ethernet while they lie at most `within` into the map (their
    /// end-of-file tests implied: `WholeFileWalk.record(at:...)`) and are of the shape `FlowDispatch.commonShapeHash`
    /// takes; stops at the stretch's end or before any other record, which the caller takes. No calls: everything
    /// stays in registers (with the general code's calls in the loop, its state was spilled around them).
    @inline(never)
    static func walkCommon(_ c: inout TwoWorkerCursor, lists: UnsafeMutablePointer<Entry>, base: UnsafeRawPointer, within: Int,
                           snapshot: Int, fractionLimit: UInt32, dispatchKey: FlowHashKey) {
        var cursor = c
        defer { c = cursor }
        while cursor.number < UInt64(stretchRecords) && cursor.offset <= within {
            guard let h = WholeFileWalk.record(at: cursor.offset, base: base, snapshot: snapshot, fractionLimit: fractionLimit) else { return }
            let caplen = Int(h.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
            guard let hash = FlowDispatch.commonShapeHash(ByteView(UnsafeRawBufferPointer(start: h + 16, count: caplen)),
                                                          key: dispatchKey) else { return }
            cursor.offset &+= 16 &+ caplen
            cursor.number &+= 1
            cursor.last = h
            cursor.place(h, worker: FlowDispatch.index(hash, workers: 2), lists: lists, base: base)
        }
    }
}

/// Starts loading a record's header and the packet's first line (its headers, for the flow hash and the engine).
@inline(__always) private func prefetchPacket(_ header: UnsafeRawPointer) {
    zw_prefetch_read(header)
    zw_prefetch_read(header + 64)
}

extension FileShareReader {
    /// `readMapped` over a whole-file map with the workers' shared owner pass (`OwnerPass`): this worker takes the
    /// stretches in order, walking the next one itself when no one has yet, and acts on its list of each (its own
    /// packets, and the sweeps); the records between are passed over at once. Same packets, numbering, sweeps,
    /// prefetch hints, merge-key bounds, stop checks and result as `readWholeFile`.
    func readSharedPass(_ m: MappedCapture, _ start: WholeFileWalk, _ pass: OwnerPass) -> Bool {
        let index = self.index
        let d = Engine.prefetchDistance - 1   // the list starts at the next entry
        let map = share.map
        let mapBase = start.base
        var n = count
        var nextSweep = self.nextSweep
        var takenSeconds: UInt32 = 0, takenFraction: UInt32 = 0, any = false
        var stopped = false
        var s = 0
        var nextReport = 0
        var lastWalk: WholeFileWalk?
        map?.advance(worker: index, to: start.offset)
        outer: while true {
            // Stretch `s` walked (by us if need be), and the one after it under way so that it is there in time.
            while pass.published.load(ordering: .acquiring) <= s {
                switch pass.tryWalk(m, start: start) {
                case .walked, .ended: continue
                case .busy:
                    spinPause()
                case .full:
                    // Another worker is a ring behind: let it on (our bound, and the merge), then look again.
                    recorder.completed.store(firstKey &+ n, ordering: .releasing)
                    if merges, pipeline.detection.tryMerge() == true { continue }
                    spinPause()
                }
            }
            if pass.published.load(ordering: .acquiring) == s &+ 1 && !pass.stretch(s).pointee.ended {
                _ = pass.tryWalk(m, start: start)
            }
            let info = pass.stretch(s)
            let list = pass.list(s, worker: index), entries = pass.count(s, worker: index)
            let base = info.pointee.base
            // The packets were last read by the walker (often on the other core): their lines are fetched well ahead,
            // in two stages (the list line, then the packet's), for the packet at hand and the prefetch hint's read.
            for j in Swift.stride(from: 0, to: min(entries, OwnerPass.listAhead), by: 8) { zw_prefetch_read(UnsafeRawPointer(list + j)) }
            for j in 0..<min(entries, OwnerPass.packetsAhead) { prefetchPacket(list[j].header(mapBase)) }
            let prefetch = self.prefetch
            // The stretch after the next, streamed into this core's cache while it acts on this one, `streamBytes` an
            // entry (as far as the next stretch's length from where that one ends): whoever walks it then reads its
            // headers from a cache (a walk that brought every line of the file in itself was limited by how many lines
            // one core can have on their way: ~13.6 -> ~6 ns a record on the mixed plant), and each worker finds its
            // packets in its own cache, not in the walker's.
            var streamFrom = mapBase, streamSteps = 0
            if pass.published.load(ordering: .acquiring) > s &+ 1, let next = pass.stretch(s &+ 1).pointee.walk,
               let this = info.pointee.walk {
                let length = (next.offset &- this.offset) &* 5 / 4
                streamFrom = mapBase + next.offset
                streamSteps = (min(next.size, next.offset &+ length) &- next.offset) / OwnerPass.streamBytes
            }
            var i = 0
            while i < entries {
                let e = list[i]
                if i < streamSteps {
                    let ahead = streamFrom + i &* OwnerPass.streamBytes
                    zw_prefetch_read(ahead); zw_prefetch_read(ahead + 64); zw_prefetch_read(ahead + 128); zw_prefetch_read(ahead + 192)
                }
                // The list goes on `packetsAhead` entries past its end (`walkStretch`): no test.
                prefetchPacket(list[i &+ OwnerPass.packetsAhead].header(mapBase))
                // A read prefetch (the walker's core keeps its copy), once per line of entries (8), `listAhead` on.
                if i & 7 == 0 { zw_prefetch_read(UnsafeRawPointer(list + (i &+ OwnerPass.listAhead))) }
                i &+= 1
                let from = n
                n = base &+ UInt64(e.number)
                let h = e.header(mapBase)
                let fraction = start.microseconds(h)
                let sweep = e.flags & OwnerPass.Entry.sweep != 0
                let own = e.flags & OwnerPass.Entry.own != 0
                let copy = e.flags & OwnerPass.Entry.copy != 0
                var hint: UnsafeRawPointer?
                if own && prefetch {
                    var ahead: OwnerPass.Entry?
                    if i &+ d < entries {
                        ahead = list[i &+ d]
                    } else if pass.published.load(ordering: .acquiring) > s &+ 1 {
                        let j = i &+ d &- entries
                        if j < pass.count(s &+ 1, worker: index) { ahead = pass.list(s &+ 1, worker: index)[j] }
                    }
                    if let a = ahead, a.flags & OwnerPass.Entry.own != 0 { hint = a.header(mapBase) }
                }
                // The sweep clock and the time taken are read from the header only where they are needed (a sweep,
                // a stop): the end of the stretch sets both.
                if sweep { nextSweep = Int64(h.loadUnaligned(as: UInt32.self)) &+ 1 }
                act(on: h, number: n, fraction: fraction, own: own, copy: copy, hint: hint, sweep: sweep)
                if afterRun(from: from, to: n) {
                    // (From the list again: `h` and `fraction` kept across the calls above cost spills per entry.)
                    let taken = list[i &- 1].header(mapBase)
                    takenSeconds = taken.loadUnaligned(as: UInt32.self); takenFraction = start.microseconds(taken); any = true
                    stopped = true; break outer
                }
            }
            // The rest of the stretch is passed over.
            let from = n
            n = info.pointee.last
            nextSweep = info.pointee.clockAfter
            if n != base { takenSeconds = info.pointee.lastSeconds; takenFraction = info.pointee.lastFraction; any = true }
            let ended = info.pointee.ended, irregular = info.pointee.irregular
            lastWalk = info.pointee.walk
            s &+= 1
            pass.took(s, worker: index)
            if let w = lastWalk, w.offset >= nextReport {
                nextReport = w.offset &+ SharedCaptureMap.reportBytes
                map?.advance(worker: index, to: w.offset)
            }
            if afterRun(from: from, to: n) { stopped = true; break }
            if ended { stopped = !irregular; break }
        }
        pass.took(.max, worker: index)
        if let w = lastWalk { m.finishWalk(w, records: n &- count) }
        count = n
        self.nextSweep = nextSweep
        if any { lastTime = PacketTime(seconds: Int64(takenSeconds), microseconds: Int32(takenFraction)) }
        return stopped
    }
}
