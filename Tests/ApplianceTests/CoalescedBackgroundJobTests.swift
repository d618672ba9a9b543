import Testing
import Dispatch
import Glibc
import Synchronization
@testable import Appliance

/// A job the test lets finish one run at a time, noting which thread each run took.
private final class GatedJob: Sendable {
    let gate = DispatchSemaphore(value: 0)
    let runs = Atomic<Int>(0)
    let onAskersThread = Atomic<Bool>(false)
    let asker = pthread_self()

    func run() -> Int {
        if pthread_equal(pthread_self(), asker) != 0 { onAskersThread.store(true, ordering: .relaxed) }
        // Bounded: a job run on the asker's thread (the defect this test is for) must fail the test, not hang it.
        _ = gate.wait(timeout: .now() + 5)
        return runs.add(1, ordering: .relaxed).newValue
    }
}

/// Waits (bounded: 5 s) until `done` holds.
private func waitUntil(_ done: () -> Bool) -> Bool {
    for _ in 0..<500 {
        if done() { return true }
        usleep(10_000)
    }
    return done()
}

/// A live capture's SIGHUP compiles the policy through `CoalescedBackgroundJob`: `request` returns while the job runs
/// (the asker keeps reading packets), the job runs on a thread of its own, requests made meanwhile become one more
/// run after it, and the results are taken in order, once each.
@Test func aBackgroundJobRunsOffTheAskersThreadAndCoalescesRequests() {
    let gated = GatedJob()
    let job = CoalescedBackgroundJob<Int>(name: "zw-test-job") { gated.run() }
    #expect(job.take() == nil)
    job.request()
    // The run is held at the gate: the request came back without it.
    #expect(job.isRunning && job.take() == nil)
    job.request(); job.request()   // two more requests while it runs: one more run
    gated.gate.signal()
    #expect(waitUntil { gated.runs.load(ordering: .relaxed) == 1 })
    #expect(job.isRunning)         // the run asked for meanwhile, held at the gate
    #expect(job.take() == 1 && job.take() == nil)
    gated.gate.signal()
    #expect(waitUntil { !job.isRunning })
    #expect(job.take() == 2 && job.take() == nil)
    #expect(gated.runs.load(ordering: .relaxed) == 2 && !gated.onAskersThread.load(ordering: .relaxed))
    // Idle again: the next request starts a run of its own.
    job.request()
    gated.gate.signal()
    #expect(waitUntil { !job.isRunning })
    #expect(job.take() == 3)
    job.finish()
}
