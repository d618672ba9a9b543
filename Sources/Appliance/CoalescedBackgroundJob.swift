import Synchronization

/// Runs a job on a thread of its own when asked, so that the asker (a live capture's thread, which must keep reading
/// packets) never waits for it: a SIGHUP's policy load and compile took ~100 ms for a 10,000-rule policy on the capture
/// thread, while the kernel's buffer filled. Requests made while the job runs are coalesced into one more run after it
/// (what it reads may have changed again since it started). The asker takes the results between its own work, in the
/// order they were made.
public final class CoalescedBackgroundJob<Result: Sendable>: Sendable {
    private struct State {
        var running = false
        var again = false
        var results: [Result] = []
        var thread: WorkerThread?
    }

    private let name: String
    private let job: @Sendable () -> Result
    private let state = Mutex(State())
    /// Set while a result waits: the asker's check between packets is one load, not a lock.
    private let ready = Atomic<Bool>(false)

    /// A job named `name` (the thread's name) that runs `job` on each request.
    public init(name: String, _ job: @escaping @Sendable () -> Result) {
        self.name = name; self.job = job
    }

    deinit { finish() }

    /// Starts the job, or (while it runs) asks for one more run after it. The asker's thread only.
    public func request() {
        // (starts, the previous run's thread): that thread has ended or is ending (`running` was false), and is
        // joined before another is made.
        let (starts, previous) = state.withLock { s -> (Bool, WorkerThread?) in
            if s.running { s.again = true; return (false, nil) }
            s.running = true
            defer { s.thread = nil }
            return (true, s.thread)
        }
        guard starts else { return }
        previous?.join()
        let thread = WorkerThread(name: name) { [self] in run() }
        state.withLock { $0.thread = thread }
    }

    private func run() {
        while true {
            let result = job()
            let more = state.withLock { s -> Bool in
                s.results.append(result)
                if s.again { s.again = false; return true }
                s.running = false
                return false
            }
            ready.store(true, ordering: .releasing)
            if !more { return }
        }
    }

    /// The oldest result not taken yet, or nil (none has finished since the last take).
    public func take() -> Result? {
        guard ready.load(ordering: .acquiring) else { return nil }
        return state.withLock { s -> Result? in
            guard !s.results.isEmpty else { return nil }
            let r = s.results.removeFirst()
            if s.results.isEmpty { ready.store(false, ordering: .relaxed) }
            return r
        }
    }

    /// Whether a run is under way or asked for.
    public var isRunning: Bool { state.withLock { $0.running } }

    /// Waits for the runs under way and asked for to end (their results stay to be taken). The asker's thread only,
    /// as `request`: no new run can start meanwhile.
    public func finish() {
        state.withLock { s -> WorkerThread? in defer { s.thread = nil }; return s.thread }?.join()
    }
}
