import Wire
import Records
import Flows
import Engine
import Detection
import Output
import Appliance

/// Connects an engine to detection (policy checks, ICS-operation rules) and to the alert destinations:
/// `alerts.jsonl`/`--alerts -` through the engine's record buffers, and every `--output` SIEM.
final class AlertPipeline: EngineObserver, QuietOperationObserver {
    let detector: Detector
    private let sink: EventSink
    /// The SIEM outputs' hand-over point for this thread's alerts (one batch per `publish`).
    private let outputs: AlertFeed?
    /// Whether anyone reads alert lines (`alerts.jsonl`, `--alerts -`): without, an alert storm would format each
    /// alert as ECS JSON for nothing (a tenth of the capture thread's time in one).
    private let writesLines: Bool
    @exclusivity(unchecked) private var pending: [Alert] = []   // one engine thread
    @exclusivity(unchecked) private(set) var alertCount: UInt64 = 0
    /// `pending[..<filed]` are counted and filed already, held for the outputs (see `AlertFeed.deliver`).
    @exclusivity(unchecked) private var filed = 0

    init(detector: Detector, sink: EventSink, outputs: OutputSet?, writesLines: Bool = true) {
        self.detector = detector; self.sink = sink; self.outputs = outputs?.alertFeed(); self.writesLines = writesLines
        // A sweep emits the summaries of every window that closed within a second of packet time at once: in an
        // alert storm, hundreds. Reserved up front so that the list does not grow (reallocate) mid-run.
        pending.reserveCapacity(1024)
    }

    func flowStarting(between a: IPAddress, and b: IPAddress, flowSlot: Int32) {
        detector.prefetchFlowStart(a, b)
    }

    func flowStarted(_ flow: FlowContext, frame: UInt64, time: PacketTime) {
        detector.flowStarted(flow, frame: frame, time: time, alerts: &pending); publish()
    }
    func flowIdentified(_ flow: FlowContext, appProtocol: AppProtocol?, frame: UInt64, time: PacketTime) {
        detector.flowIdentified(flow, appProtocol: appProtocol, frame: frame, time: time, alerts: &pending); publish()
    }
    func operation(_ op: Operation, flow: FlowContext) {
        detector.operation(op, flow: flow, alerts: &pending)
        if !pending.isEmpty { publish() }
    }
    /// `operation` for every operation waiting in `sink`, read in place, with the flow context at `flow` and its serial
    /// and slot at hand (operations the detector passes over quietly then read nothing of the context:
    /// `Detector.operations(_:count:flow:flowSerial:flowSlot:alerts:)`); empties the sink's operations. Alerts are
    /// published after each operation that leaves any, as `operation` does.
    /// The context at `flow` may be unbuilt until `forwarder.materializeFlowContext()` (see
    /// `OperationForwarder.buildsContextOnDemand`): the operations passed over quietly first, which read none of it.
    func operations(in sink: EventSink, flow: UnsafePointer<FlowContext>, flowSerial: UInt64, flowSlot: Int32,
                    forwarder: OperationForwarder) {
        sink.drainOperationsInPlace { ops, count in
            guard count > 0 else { return }
            var start = 0
            if pending.isEmpty {
                start = detector.quietPrefix(ops, count: count, flowSerial: flowSerial, flowSlot: flowSlot)
                if start == count { return }
            }
            forwarder.materializeFlowContext()
            let handled = start &+ detector.operations(ops + start, count: count - start, flow: flow, flowSerial: flowSerial,
                                                        flowSlot: flowSlot, alerts: &pending)
            // The detector stops early only when alerts are pending: with none, every operation was handled.
            if !pending.isEmpty { publishingOperations(ops, count: count, from: handled, flow: flow) }
        }
    }

    /// `operations(in:flow:flowSerial:flowSlot:)` once alerts are pending after the operations before `start`: publishes them, and goes on
    /// with the rest. Out of line: with no alert, forwarding a delivery's operations is one call and no loop.
    @inline(never)
    private func publishingOperations(_ ops: UnsafePointer<Operation>, count: Int, from start: Int, flow: UnsafePointer<FlowContext>) {
        var i = start
        while true {
            publish()
            if i == count { return }
            i += detector.operations(ops + i, count: count - i, flow: flow, alerts: &pending)
            if pending.isEmpty { return }
        }
    }

    /// `--workers`: `operation` for an operation the detector passes over quietly, from its traits alone (see
    /// `QuietOperationObserver`); false, and nothing done, for any other.
    func takeQuietly(_ traits: QuietTraits) -> Bool {
        guard detector.takeQuietly(traits, alerts: &pending) else { return false }
        if !pending.isEmpty { publish() }
        return true
    }
    /// `takeQuietly` for a run of operations (`QuietOperationObserver`): the detector checks them in one call, and stops
    /// at a sweep that leaves alerts (published here, as after one operation). With alerts held already, one at a time.
    func takeQuietly(run first: UnsafeRawPointer, stride: Int, count: Int) -> Int {
        guard pending.isEmpty else { return takeQuietly(first.load(as: QuietTraits.self)) ? 1 : 0 }
        let taken = detector.takeQuietly(run: first, stride: stride, count: count, alerts: &pending)
        if !pending.isEmpty { publish() }
        return taken
    }
    /// The same for two runs merged (`QuietOperationObserver`, `Detector.takeQuietly(merging:)`).
    func takeQuietly(merging a: UnsafeRawPointer, count aCount: Int, with b: UnsafeRawPointer, count bCount: Int, stride: Int) -> (Int, Int) {
        guard pending.isEmpty else { return (0, 0) }
        let taken = detector.takeQuietly(merging: a, count: aCount, with: b, count: bCount, stride: stride, alerts: &pending)
        if !pending.isEmpty { publish() }
        return taken
    }
    func anomaly(_ a: Anomaly, flow: FlowContext?) { detector.anomaly(a, flow: flow, alerts: &pending); publish() }
    func flowEnded(_ flow: FlowContext, reason: FlowEndReason) {
        detector.flowEnded(flow)
        if !pending.isEmpty { publish() }      // held alerts go as soon as the outputs are ready
    }
    /// The detector only forgets a flow's state when it ends, and `finish` publishes what is held.
    var wantsFlowEndsAtEndOfInput: Bool { false }
    func tick(time: PacketTime) { detector.tick(time: time, alerts: &pending); publish(now: true) }
    func finish() { detector.finish(alerts: &pending); publish(now: true) }
    func operationForwarder() -> OperationForwarder? { AlertPipelineForwarder(self) }
    func flowStateTable() -> FlowStateTable {
        let t = detector.entryTable
        return FlowStateTable(base: t.base, count: t.count, stride: t.stride)
    }

    /// Files every new pending alert as an ECS line (when lines are read) and hands the pending alerts to the SIEM
    /// outputs, which take the list itself (moved into one batch, no per-alert copy) and leave `pending` empty —
    /// or, while the outputs still have the last batch queued and `now` is not set, leave them for a later call:
    /// an alert storm then goes out in a few large batches. Every engine callback calls this while alerts are
    /// held, and ticks (each second of packet time; idle ticks when live) and the end of input send them anyway.
    private func publish(now: Bool = false) {
        if pending.count > filed {
            alertCount &+= UInt64(pending.count - filed)
            if writesLines {
                for i in filed..<pending.count {
                    sink.json.reset()
                    pending[i].writeECS(to: &sink.json)
                    sink.finishLine(.alert)
                }
            }
        }
        guard !pending.isEmpty else { return }
        // Optional chaining on the stored reference (`if let` took a retain and a release per call).
        if outputs == nil { pending.removeAll(keepingCapacity: true) } else { outputs?.deliver(&pending, now: now) }
        filed = pending.count
    }
}

/// Drains a sink's operations into an `AlertPipeline`, calling it directly (the engine's generic forwarder goes
/// through the observer protocol's witness for every operation). Holds the pipeline unretained: the engine keeps
/// both, the pipeline as its observer.
private final class AlertPipelineForwarder: OperationForwarder {
    private let pipeline: Unmanaged<AlertPipeline>
    init(_ pipeline: AlertPipeline) { self.pipeline = Unmanaged.passUnretained(pipeline) }
    override func forward(from sink: EventSink, flow: UnsafePointer<FlowContext>, flowSerial: UInt64, flowSlot: Int32) {
        pipeline._withUnsafeGuaranteedRef { $0.operations(in: sink, flow: flow, flowSerial: flowSerial, flowSlot: flowSlot, forwarder: self) }
    }
    /// `operations(in:flow:flowSerial:flowSlot:forwarder:)` builds the context only for an operation it does not pass over quietly.
    override var buildsContextOnDemand: Bool { true }
    /// The detector reads the context only for operations it does not pass over quietly: few with a policy; without
    /// one, every operation that is not a repeat of the flow's unit (all of S7comm's, for one).
    override var readsFlowContext: Bool { pipeline._withUnsafeGuaranteedRef { $0.detector.policy == nil } }
}
