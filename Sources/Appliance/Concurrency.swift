import Glibc
import Synchronization
import CAppliance

/// A sleep/wake point for one waiting thread: a pthread mutex and condition with a "woken" flag, so a wake
/// that arrives before the wait is not lost. Waits are always bounded (a timeout), so a missed wake-up can
/// only cost that long, never hang.
public final class Waiter: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var woken = false
    /// Set (sequentially consistent) by the waiting thread before it re-checks its condition and sleeps;
    /// the other side calls `wake()` only when it sees this set, so the fast path costs one load.
    public let sleeping = Atomic<Bool>(false)

    /// Creates a waiter.
    public init() {
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition); pthread_mutex_destroy(mutex)
        condition.deallocate(); mutex.deallocate()
    }

    /// Wakes the waiting thread (or makes its next wait return at once).
    public func wake() {
        pthread_mutex_lock(mutex)
        woken = true
        pthread_cond_signal(condition)
        pthread_mutex_unlock(mutex)
    }

    /// Wakes the waiting thread if it announced that it sleeps.
    @inline(__always) public func wakeIfSleeping() {
        if sleeping.load(ordering: .sequentiallyConsistent) { wake() }
    }

    /// Sleeps until `wake()` or `microseconds` pass.
    public func wait(microseconds: Int) {
        var deadline = timespec()
        clock_gettime(CLOCK_MONOTONIC, &deadline)
        let ns = Int(deadline.tv_nsec) + (microseconds % 1_000_000) * 1000
        deadline.tv_sec += microseconds / 1_000_000 + ns / 1_000_000_000
        deadline.tv_nsec = ns % 1_000_000_000
        pthread_mutex_lock(mutex)
        while !woken {
            if pthread_cond_timedwait(condition, mutex, &deadline) == ETIMEDOUT { break }
        }
        woken = false
        pthread_mutex_unlock(mutex)
    }

    /// The waiting side's protocol: spin briefly on `ready`, then announce sleep, re-check, and sleep bounded.
    /// Returns when `ready()` is true or after one bounded sleep (the caller loops).
    @inline(__always)
    public func await(spins: Int = 64, sleepMicroseconds: Int = 2000, _ ready: () -> Bool) {
        for _ in 0..<spins { if ready() { return }; spinPause() }
        sleeping.store(true, ordering: .sequentiallyConsistent)
        if !ready() { wait(microseconds: sleepMicroseconds) }
        sleeping.store(false, ordering: .relaxed)
    }
}

/// A hint to the CPU that this is a spin loop (yields the core to its hyper-thread sibling; on a busy
/// machine a real yield follows).
@inline(__always) public func spinPause() {
    sched_yield()
}

/// A started POSIX thread running a closure; `join()` waits for it.
public final class WorkerThread: @unchecked Sendable {
    private final class Box { let body: () -> Void; init(_ b: @escaping () -> Void) { body = b } }
    private var thread = pthread_t()
    private var started = false

    /// Starts `body` on a new thread named `name` (visible in `top -H` and /proc/PID/task/*/comm).
    public init(name: String, _ body: @escaping @Sendable () -> Void) {
        let threadName = String(name.prefix(15))
        let box = Unmanaged.passRetained(Box({
            // PR_SET_NAME names the calling thread (visible in `top -H` and /proc/PID/task/*/comm).
            threadName.withCString { _ = zw_prctl(PR_SET_NAME, UInt(bitPattern: $0), 0, 0, 0) }
            body()
        })).toOpaque()
        let status = pthread_create(&thread, nil, { p in
            Unmanaged<Box>.fromOpaque(p!).takeRetainedValue().body()
            return nil
        }, box)
        if status == 0 {
            started = true
        } else {
            // No thread: run inline so nothing is silently lost (only under resource exhaustion).
            Unmanaged<Box>.fromOpaque(box).takeRetainedValue().body()
        }
    }

    /// Waits for the thread to end.
    public func join() {
        guard started else { return }
        pthread_join(thread, nil)
        started = false
    }
}

/// Monotonic seconds (intervals; records carry packet time).
public func monotonicNow() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Wall-clock time (stats records, idle ticks of a live capture, capture alerts).
public func wallClock() -> (seconds: Int64, microseconds: Int32) {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return (Int64(ts.tv_sec), Int32(ts.tv_nsec / 1000))
}
