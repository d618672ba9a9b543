import Capture
import Wire
import Records
import Flows
import Engine
import Policy

/// `zonewatch policy learn POLICY CAPTURE...`: the captures through an engine whose observer is a `ConduitLearner`
/// (no records, no detection), and the policy printed with the learned conduits in place of its own.
enum PolicyLearning {
    /// The engine's observer: hands flows and operations to the learner.
    final class Observer: EngineObserver {
        let learner: ConduitLearner
        init(_ learner: ConduitLearner) { self.learner = learner }
        func flowStarted(_ flow: FlowContext, frame: UInt64, time: PacketTime) { learner.flowStarted(flow) }
        func flowIdentified(_ flow: FlowContext, appProtocol: AppProtocol?, frame: UInt64, time: PacketTime) {
            learner.flowIdentified(flow, appProtocol: appProtocol)
        }
        func operation(_ op: Operation, flow: FlowContext) { learner.operation(op, flow: flow) }
        func anomaly(_ a: Anomaly, flow: FlowContext?) {}
        func flowEnded(_ flow: FlowContext, reason: FlowEndReason) { learner.flowEnded(flow) }
        func tick(time: PacketTime) {}
        func finish() {}
    }

    /// Learns from `captures` (one stream, as `replay` reads several files) under the zones of `policy`: the policy
    /// file's text with the learned conduits in place of its own (only the conduits when its layout is not one this
    /// can edit), and the error that ended the input early, if any (a capture that cannot be opened, or one cut short:
    /// as `replay` does, what came before is learned from; nothing is printed when no packet came before).
    static func learn(policyPath: String, policy: CompiledPolicy, captures: [String]) -> (text: String, error: CaptureError?) {
        let learner = ConduitLearner(policy: policy)
        var c = EngineConfiguration()
        c.flowRecords = false; c.anomalyRecords = false
        let engine = Engine(configuration: c)
        engine.observer = Observer(learner)
        var packets: UInt64 = 0
        var failure: CaptureError?
        files: for path in captures {
            let source: PacketSource
            do { source = try PacketSource.openFile(path) } catch { failure = error; break files }
            let linkType = source.linkType.rawValue
            loop: while true {
                let next: PacketSource.Next
                do { next = try source.next() } catch { failure = error; break files }
                switch next {
                case .packet(let header, let bytes):
                    engine.process(bytes, linkType: linkType, time: header.time, wireLength: header.wireLength)
                    packets &+= 1
                    if engine.bufferedRecordBytes > 1 << 20 { engine.drainRecords { _, _ in } }
                case .timeout: continue
                case .end: break loop
                }
            }
        }
        engine.finish()
        engine.drainRecords { _, _ in }
        if failure != nil && packets == 0 { return ("", failure) }   // nothing to learn from: no policy printed
        let header = [
            "Conduits learned by `zonewatch policy learn` from \(packets) packets, \(learner.flowsSeen) flows:",
            "  " + captures.joined(separator: " "),
            "under the zones and assets of \(policyPath) (its own conduits took no part and are left out).",
            "Each allows what was seen and no more (functions, units, addresses): review before use, widen what",
            "the capture did not show (rare operations, other registers), remove what should not be there.",
            "Program download and upload, lifecycle, file and auth operations are allowed with notice (notify).",
        ]
        let section = learner.conduitsYAML(header: header)
        guard let text = readTextFile(policyPath), let whole = ConduitLearner.policyText(text, withConduits: section) else {
            printError("zonewatch: \(policyPath): not a layout `policy learn` can edit (top-level keys on lines of their own): "
                       + "printing the learned conduits only")
            return (section, failure)
        }
        return (whole, failure)
    }
}
