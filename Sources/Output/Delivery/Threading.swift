import Glibc

// Threads and waits on pthreads directly: the output module used Foundation's Thread and
// NSCondition only for these, and linking Foundation (with ICU) cost every zonewatch process
// several milliseconds of dynamic linking and page faults at start-up.

/// A mutex with one condition variable (the pattern of `NSCondition`). Timed waits run on the
/// monotonic clock, so a wall-clock step cannot stretch or cut them short.
final class WaitCondition: @unchecked Sendable {
    // pthread objects must not move: they live in their own allocations.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>

    init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        condition = .allocate(capacity: 1)
        condition.initialize(to: pthread_cond_t())
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition)
        condition.deallocate()
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func lock() { pthread_mutex_lock(mutex) }
    func unlock() { pthread_mutex_unlock(mutex) }
    /// Wakes one waiter (call with the lock held).
    func signal() { pthread_cond_signal(condition) }
    /// Wakes every waiter (call with the lock held).
    func broadcast() { pthread_cond_broadcast(condition) }

    /// Waits (lock held) for a signal for at most `seconds`; does not wait when `seconds` is not positive.
    /// Returns false on timeout. Like any condition wait it may return early without a signal.
    @discardableResult
    func wait(seconds: Double) -> Bool {
        guard seconds > 0 else { return false }
        var deadline = timespec()
        clock_gettime(CLOCK_MONOTONIC, &deadline)
        let whole = seconds.rounded(.towardZero)
        var sec = deadline.tv_sec + Int(min(whole, 1e9))
        var nsec = deadline.tv_nsec + Int((seconds - whole) * 1e9)
        if nsec >= 1_000_000_000 { sec += 1; nsec -= 1_000_000_000 }
        deadline.tv_sec = sec; deadline.tv_nsec = nsec
        return pthread_cond_timedwait(condition, mutex, &deadline) == 0
    }
}

/// What a new thread runs, handed through `pthread_create`'s context pointer.
private final class ThreadStart {
    let name: String
    let body: () -> Void
    init(name: String, body: @escaping () -> Void) { self.name = name; self.body = body }
}

/// Names the calling thread (fails harmlessly past 15 bytes, as `Thread.name` did). Glibc's module hides
/// `pthread_setname_np` (a GNU extension), so it is looked up by name.
private func nameThread(_ name: String) {
    typealias SetName = @convention(c) (pthread_t, UnsafePointer<CChar>) -> Int32
    guard let symbol = dlsym(nil, "pthread_setname_np") else { return }
    _ = unsafeBitCast(symbol, to: SetName.self)(pthread_self(), name)
}

/// Starts a detached thread named `name` (at most 15 bytes, or it stays unnamed) running `body`, with the
/// default stack size (as Foundation's `Thread` did). Returns false when no thread could be created.
@discardableResult
func startThread(name: String, _ body: @escaping () -> Void) -> Bool {
    let start = Unmanaged.passRetained(ThreadStart(name: name, body: body))
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
    var thread = pthread_t()
    let rc = pthread_create(&thread, &attributes, { context in
        let start = Unmanaged<ThreadStart>.fromOpaque(context!).takeRetainedValue()
        nameThread(start.name)
        start.body()
        return nil
    }, start.toOpaque())
    pthread_attr_destroy(&attributes)
    if rc != 0 { start.release(); return false }
    return true
}
