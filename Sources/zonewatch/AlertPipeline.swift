import Wire
import Records
import Flows
import Engine
import Detection
import Output

/// Connects an engine to detection (policy checks, ICS-operation rules) and to the alert destinations:
/// `alerts.jsonl`/`--alerts -` through the engine's record buffers, and every `--output` SIEM.
final class AlertPipeline: EngineObserver {
    let detector: Detector
    private let sink: EventSink
    private let outputs: OutputSet?
    /// Whether anyone reads alert lines (`alerts.jsonl`, `--alerts -`): without, an alert storm would format each
    /// alert as ECS JSON for nothing (a tenth of the capture thread's time in one).
    private let writesLines: Bool
    @exclusivity(unchecked) private var pending: [Alert] = []   // one engine thread
    @exclusivity(unchecked) private(set) var alertCount: UInt64 = 0

    init(detector: Detector, sink: EventSink, outputs: OutputSet?, writesLines: Bool = true) {
        self.detector = detector; self.sink = sink; self.outputs = outputs; self.writesLines = writesLines
        pending.reserveCapacity(16)
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
    func anomaly(_ a: Anomaly, flow: FlowContext?) { detector.anomaly(a, flow: flow, alerts: &pending); publish() }
    func flowEnded(_ flow: FlowContext, reason: FlowEndReason) { detector.flowEnded(flow) }
    func tick(time: PacketTime) { detector.tick(time: time, alerts: &pending); publish() }
    func finish() { detector.finish(alerts: &pending); publish() }

    /// Files every pending alert as an ECS line (when lines are read) and hands it to the SIEM outputs.
    private func publish() {
        guard !pending.isEmpty else { return }
        for alert in pending {
            alertCount &+= 1
            if writesLines {
                sink.json.reset()
                alert.writeECS(to: &sink.json)
                sink.finishLine(.alert)
            }
            outputs?.deliver(alert)
        }
        pending.removeAll(keepingCapacity: true)
    }
}
