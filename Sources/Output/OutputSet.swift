import Glibc
import Synchronization
import Records

/// Why the outputs could not be set up (spool in use, TLS files unreadable, folder not creatable).
public struct OutputSetupError: Error, CustomStringConvertible {
    /// What went wrong, for the operator.
    public var description: String
    init(_ text: String) { description = text }
}

/// Every configured output, each with its own bounded queue and thread.
///
/// `deliver` is called on the capture/engine path: it filters, copies the record into each
/// interested output's queue and returns; it never waits for I/O. Encoding and every syscall happen
/// on the output's thread. A full queue drops (counted), except in a set made `waitingWhenFull`
/// (replays: the same file must give the same records), where `deliver` waits for the output's thread.
public final class OutputSet: @unchecked Sendable {
    private let channels: [OutputChannel]
    private let kindMask: UInt32
    private let shutDown = Mutex<[OutputReport]?>(nil)

    /// Opens every output (spools, TLS contexts, folders) and starts its thread; `waitingWhenFull`: a full queue makes
    /// `deliver` wait for room instead of dropping, and a connected TCP or TLS receiver's pace is the set's (a
    /// replay; a live capture must never wait) unless it takes nothing for `receiverStallSeconds`.
    public init(specs: [OutputSpec], waitingWhenFull: Bool = false, receiverStallSeconds: Double = 10) throws {
        // A receiver closing its end must surface as EPIPE on write, not kill the process.
        signal(SIGPIPE, SIG_IGN)
        var channels: [OutputChannel] = []
        var mask: UInt32 = 0
        for spec in specs {
            do {
                channels.append(try OutputChannel(spec: spec, waitsWhenFull: waitingWhenFull, stallSeconds: receiverStallSeconds))
            } catch {
                for c in channels { _ = c.stop(deadline: monotonicSeconds()) }
                throw OutputSetupError("output \(spec.url): \(error)")
            }
            for k in spec.records { mask |= 1 << UInt32(k.rawValue) }
        }
        self.channels = channels
        kindMask = mask
        for (i, c) in channels.enumerated() { c.start(index: i) }
    }

    deinit { _ = shutdown(deadline: 1) }

    /// Whether any output takes records of `kind` (lets the engine skip building them).
    public func wants(_ kind: RecordKind) -> Bool { kindMask & (1 << UInt32(kind.rawValue)) != 0 }

    /// Queues `alert` for every output whose filter takes it; never blocks (unless `waitingWhenFull`).
    public func deliver(_ alert: Alert) {
        var box: AlertBox?
        for c in channels where c.wantsAlerts && alert.severity >= c.spec.minSeverity {
            if box == nil { box = AlertBox(alert) }
            c.queue.push(.alert(box!))
        }
    }

    /// A hand-over point for one producer thread's alert batches (see `AlertFeed`).
    public func alertFeed() -> AlertFeed { AlertFeed(channels: channels.filter(\.wantsAlerts)) }

    /// Queues one finished JSON line (no newline) of a non-alert record kind; never blocks (unless `waitingWhenFull`).
    public func deliver(record kind: RecordKind, line: ArraySlice<UInt8>) {
        guard wants(kind) else { return }
        var copy: [UInt8]?
        for c in channels where c.kindMask & (1 << UInt32(kind.rawValue)) != 0 {
            if copy == nil { copy = Array(line) }
            c.queue.push(.record(kind, copy!))
        }
    }

    /// Stops accepting records, delivers what each output can within `seconds` (a replay's TCP or TLS output: on while
    /// its receiver takes bytes), persists spools,
    /// closes connections and files, and reports per output. Later calls return the same reports.
    public func shutdown(deadline seconds: Double) -> [OutputReport] {
        shutDown.withLock { reports in
            if let r = reports { return r }
            let deadline = monotonicSeconds() + max(0, seconds)
            for c in channels { c.requestStop(deadline: deadline) }
            // Allow a little past the deadline for spool fsyncs and the final counts.
            let r = channels.map { $0.stop(deadline: deadline + 2) }
            reports = r
            return r
        }
    }

    /// Current counters of every output (for the periodic stats record).
    public func statsSnapshot() -> [OutputReport] { channels.map { $0.snapshot() } }

    /// Writes `{"outputs":[...]}` members for a stats record: `"outputs":[{...},...]`.
    public func writeStats(to json: inout JSONWriter) {
        json.key("outputs"); json.beginArray()
        for r in statsSnapshot() { r.writeJSON(to: &json) }
        json.endArray()
    }
}

/// One producer's way of handing alerts to the outputs in batches: `deliver(_:now:)` moves a whole list
/// of alerts into one shared batch and queues it with one lock per output, instead of a box, a lock and
/// a copy of every alert (about 400 bytes of references to retain) per alert. Batches and their
/// arrays come back through the queues' retire path and are reused, so a steady stream allocates
/// nothing. Not thread-safe: one feed per producer thread (each may have its own).
public final class AlertFeed {
    private let channels: [OutputChannel]
    /// Batches every output is done with, emptied, capacity kept.
    @exclusivity(unchecked) private var spare: [AlertBatch] = []
    /// Items the consumers retired, handed over by the last push.
    @exclusivity(unchecked) private var reclaimed: [OutputItem] = []
    /// The first output's queue (kept alive by `channels`), read without reference counting.
    private let firstQueue: Unmanaged<ItemQueue>?
    /// Each output's `ItemQueue.takes` when this feed last pushed to it.
    @exclusivity(unchecked) private var takesAtPush: [UInt64]
    /// Batches allocated so far (tests: recycling keeps this small).
    @exclusivity(unchecked) private(set) var batchesMade = 0

    /// Most spare batches kept. Since alerts wait while an output is busy, only a few batches are in flight
    /// at a time (more only when a busy output lets `holdLimit` alerts pile up again and again); this bounds
    /// what an idle feed keeps (each array of `batchCapacity` ~700-byte alerts: at most ~11 MB, usually a few
    /// batches' worth).
    static let spareLimit = 32
    /// Spare batches whose array grew past this many alerts (a final aggregation flush) are dropped.
    static let spareCapacityLimit = 1024
    /// Most alerts held back while the outputs are busy (see `deliver`).
    static let holdLimit = 256
    /// Alerts a new batch's array has room for. Its array becomes the producer's list at the hand-over (`deliver`
    /// swaps them), which the producer then fills: made empty, it grew by reallocation (copying every alert so far)
    /// eight or nine times per batch, 740 instructions an alert of a storm on the capture thread. Twice `holdLimit`,
    /// since a callback may add several alerts past it; within `spareCapacityLimit`, so that it is recycled.
    static let batchCapacity = 512

    init(channels: [OutputChannel]) {
        self.channels = channels
        firstQueue = channels.first.map { Unmanaged.passUnretained($0.queue) }
        takesAtPush = channels.map { $0.queue.takes.load(ordering: .relaxed) &- 1 }
        spare.reserveCapacity(AlertFeed.spareLimit)
        reclaimed.reserveCapacity(4096)
    }

    /// Queues every alert of `alerts`, in order, for every output whose filter takes it; never blocks (unless the
    /// outputs were made `waitingWhenFull`: a replay's wait for room).
    /// Takes the alerts: `alerts` is left empty, with a recycled array's capacity.
    ///
    /// Unless `now` is set, alerts stay in `alerts` (the caller keeps appending to the list) while every
    /// output still has the previous batch in its queue: it would sit beside that one until the output's
    /// thread comes back for more, so the caller waits for that and then hands over everything at once.
    /// A caller that holds alerts must call again with `now` when no more come for a while (engine ticks).
    public func deliver(_ alerts: inout [Alert], now: Bool = true) {
        guard !alerts.isEmpty else { return }
        guard !channels.isEmpty else { alerts.removeAll(keepingCapacity: true); return }
        if !now && alerts.count < AlertFeed.holdLimit && outputsBusy() { return }
        let batch = takeBatch()
        swap(&batch.alerts, &alerts)
        var shared = false
        if channels.count > 1 {
            // Outputs that take every alert share the batch; `readers` must never be too low (see AlertBatch).
            var readers = 0
            for c in channels where batch.alerts.allSatisfy({ $0.severity >= c.spec.minSeverity }) { readers += 1 }
            batch.readers = readers
        }
        for i in channels.indices {
            let c = channels[i]
            let min = c.spec.minSeverity
            var taken = 0
            for a in batch.alerts where a.severity >= min { taken += 1 }
            if taken == batch.alerts.count {
                c.queue.push(batch: batch, reclaiming: &reclaimed)
                shared = true
            } else if taken > 0 {
                // This output filters some of them out: a batch of its own, with copies of the rest.
                let own = takeBatch()
                for a in batch.alerts where a.severity >= min { own.alerts.append(a) }
                c.queue.push(batch: own, reclaiming: &reclaimed)
            } else {
                continue
            }
            takesAtPush[i] = c.queue.takes.load(ordering: .relaxed)
            recycleReclaimed()
        }
        if !shared { recycle(batch) }
    }

    /// Whether no output has taken anything from its queue since this feed last pushed to it. Called for
    /// every engine callback while alerts are held: the usual single output is checked without touching
    /// the channel list (no reference counting, no bounds checks).
    @inline(__always) private func outputsBusy() -> Bool {
        if channels.count == 1, let q = firstQueue {
            return q._withUnsafeGuaranteedRef { $0.takes.load(ordering: .relaxed) } == takesAtPush[0]
        }
        for i in channels.indices where channels[i].queue.takes.load(ordering: .relaxed) != takesAtPush[i] {
            return false
        }
        return true
    }

    private func takeBatch() -> AlertBatch {
        if let b = spare.popLast() { b.readers = 1; return b }
        batchesMade += 1
        let b = AlertBatch()
        b.alerts.reserveCapacity(AlertFeed.batchCapacity)
        return b
    }

    /// Releases what the consumers retired, here, outside the queue's lock; keeps batches no output
    /// holds any more.
    private func recycleReclaimed() {
        while let item = reclaimed.popLast() {
            if case .alerts(let batch) = consume item { recycle(batch) }
        }
    }

    private func recycle(_ batch: consuming AlertBatch) {
        var b = batch
        // Another output may still hold it: that output's retire brings it back later.
        guard isKnownUniquelyReferenced(&b), spare.count < AlertFeed.spareLimit,
              b.alerts.capacity <= AlertFeed.spareCapacityLimit else { return }
        b.alerts.removeAll(keepingCapacity: true)
        spare.append(b)
    }
}

/// One output: its queue, encoder, driver and thread.
final class OutputChannel: @unchecked Sendable {
    let spec: OutputSpec
    let queue: ItemQueue
    /// `spec.records` as bits (a Set lookup per record is measurable on the capture path).
    let kindMask: UInt32
    let wantsAlerts: Bool
    private let driver: any OutputDriver
    @exclusivity(unchecked) private var encoder: MessageEncoder     // the output's thread only
    private let published: Mutex<OutputReport>
    private let stopDeadline = Mutex<Double>(0)
    private let finished = WaitCondition()
    private var isFinished = false
    private var started = false
    /// A replay's output (its driver waits for a connected receiver): `stop` waits on while the receiver takes bytes.
    private let waitsWhenFull: Bool
    private let stallSeconds: Double

    init(spec: OutputSpec, waitsWhenFull: Bool = false, stallSeconds: Double = 10) throws {
        self.spec = spec
        self.waitsWhenFull = waitsWhenFull; self.stallSeconds = stallSeconds
        queue = ItemQueue(capacity: spec.queueCapacity, waitsWhenFull: waitsWhenFull)
        kindMask = spec.records.reduce(0) { $0 | 1 << UInt32($1.rawValue) }
        wantsAlerts = spec.records.contains(.alert)
        var syslog: SyslogOptions?
        switch spec.destination {
        case .stdout:
            driver = StdoutDriver()
        case .directory(let path):
            driver = try FileDriver(spec: spec, directory: path)
        case .syslog(let transport, let host, let port):
            syslog = SyslogOptions(facility: spec.facility, hostname: spec.hostname ?? OutputChannel.hostName(),
                                   appName: spec.appName, procID: spec.procID ?? String(getpid()),
                                   enterpriseNumber: spec.enterpriseNumber)
            switch transport {
            case .udp: driver = DatagramDriver(spec: spec, host: host, port: port)
            case .tcp, .tls:
                driver = try StreamDriver(spec: spec, host: host, port: port, tls: transport == .tls,
                                          waitsForReceiver: waitsWhenFull, stallSeconds: stallSeconds)
            }
        }
        encoder = MessageEncoder(format: spec.format, syslog: syslog)
        var r = OutputReport(url: spec.url)
        driver.fill(&r)
        published = Mutex(r)
    }

    func start(index: Int) {
        started = startThread(name: "zw-output-\(index)") { [self] in run() }
        // No thread to take from the queue: it refuses (counting) from now on, so a replay's pushes do not wait forever.
        if !started { queue.stop() }
    }

    /// The output's thread: take a batch, encode and route it, do the I/O, publish counters.
    private func run() {
        // Batch scheduling: the kernel lets this thread's wake-ups wait for the running thread's time slice
        // instead of preempting it, so delivery does not interrupt capture (and cool its caches) on a busy
        // machine; its share of CPU time is unchanged. Best effort: an error leaves the default policy.
        // On Linux pid 0 is the calling thread; SCHED_BATCH (3) is hidden by Glibc's headers without _GNU_SOURCE.
        var param = sched_param()
        _ = sched_setscheduler(0, 3, &param)
        var batch: [OutputItem] = []
        batch.reserveCapacity(4096)
        while true {
            let stopping = queue.take(into: &batch, timeout: driver.idleWait())
            for item in batch {
                switch item {
                case .alert(let box):
                    encoder.encode(box.alert)
                    driver.route(encoder.message, kind: .alert)
                case .alerts(let shared):
                    // Read in place: copying an alert would retain its strings here, on lines capture frees.
                    shared.alerts.withUnsafeBufferPointer { alerts in
                        for i in alerts.indices {
                            encoder.encode(alerts[i])
                            driver.route(encoder.message, kind: .alert)
                        }
                    }
                    // The only reader: release the alerts here, where they were just read (see AlertBatch).
                    if shared.readers == 1 { shared.alerts.removeAll(keepingCapacity: true) }
                case .record(let kind, let line):
                    encoder.encode(record: kind, line: line[...])
                    driver.route(encoder.message, kind: kind)
                }
            }
            queue.retire(&batch)     // released by the producer (see ItemQueue)
            driver.pump()
            publish()
            if stopping { break }
        }
        driver.finish(deadline: stopDeadline.withLock { $0 })
        publish()
        finished.lock(); isFinished = true; finished.broadcast(); finished.unlock()
    }

    private func publish() {
        var r = OutputReport(url: spec.url)
        driver.fill(&r)
        published.withLock { $0 = r }
    }

    /// The latest counters with the queue's own.
    func snapshot() -> OutputReport {
        var r = published.withLock { $0 }
        let q = queue.counters()
        r.accepted = q.accepted
        r.droppedQueueFull = q.dropped
        r.pending += UInt64(q.queued)
        return r
    }

    /// Asks the thread to finish by `deadline` (monotonic seconds).
    func requestStop(deadline: Double) {
        stopDeadline.withLock { $0 = deadline }
        queue.stop()
    }

    /// Waits for the thread until `waitUntil` (a replay's output: on while its receiver takes bytes) and returns the
    /// final report.
    func stop(deadline waitUntil: Double) -> OutputReport {
        if !started {
            queue.stop()
            driver.finish(deadline: monotonicSeconds())
            return snapshot()
        }
        finished.lock()
        var until = waitUntil, mark = driver.progressMark
        while !isFinished {
            let left = until - monotonicSeconds()
            if left <= 0 {
                // A replay's output delivers at its receiver's pace: wait on while the receiver takes bytes.
                guard waitsWhenFull, driver.progressMark != mark else { break }
                mark = driver.progressMark
                until = monotonicSeconds() + stallSeconds + 2
                continue
            }
            finished.wait(seconds: min(left, 1))
        }
        let done = isFinished
        finished.unlock()
        var r = snapshot()
        r.finished = done
        return r
    }

    static func hostName() -> String {
        var buf = [UInt8](repeating: 0, count: 256)
        guard gethostname(&buf, buf.count) == 0 else { return "-" }
        return String(decoding: buf.prefix(while: { $0 != 0 }), as: UTF8.self)
    }
}
