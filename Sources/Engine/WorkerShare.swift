import Flows

/// Which of several engines this is (`--workers`) and how packets are dispatched among them: what an engine needs to
/// tell whether a datagram it reassembled is its own (`Engine.workerShare`).
public struct WorkerShare: Sendable {
    /// This engine's index, of `workers`.
    public var worker: Int
    public var workers: Int
    /// The key the dispatch hashes flows under.
    public var key: FlowHashKey

    /// Creates a share.
    public init(worker: Int, workers: Int, key: FlowHashKey) { self.worker = worker; self.workers = workers; self.key = key }

    /// The worker a packet of flow `key` is dispatched to.
    public func worker(of flow: FlowKey) -> Int { FlowHashKey.worker(ofHash: flow.fastHash(key), workers: workers) }
}
