import Glibc
import Synchronization

/// Flags set by signal handlers and polled by the capture loop between packets (a handler does nothing else:
/// reloading, writing stats and stopping all happen on the capture thread, where they are safe).
public enum SignalFlags {
    /// SIGTERM or SIGINT: stop capturing, end flows, flush outputs, exit 0.
    public static let stop = Atomic<Bool>(false)
    /// SIGHUP: reload the policy.
    public static let reload = Atomic<Bool>(false)
    /// SIGUSR1: write a stats record and the metrics file now.
    public static let stats = Atomic<Bool>(false)

    /// Installs the handlers (SIGTERM, SIGINT, SIGHUP, SIGUSR1) and unblocks those signals.
    public static func install() {
        // Globals are initialised lazily; touch them here so no handler ever runs their initialiser.
        _ = stop.load(ordering: .relaxed); _ = reload.load(ordering: .relaxed); _ = stats.load(ordering: .relaxed)
        set(SIGTERM) { _ in SignalFlags.stop.store(true, ordering: .relaxed) }
        set(SIGINT) { _ in SignalFlags.stop.store(true, ordering: .relaxed) }
        set(SIGHUP) { _ in SignalFlags.reload.store(true, ordering: .relaxed) }
        set(SIGUSR1) { _ in SignalFlags.stats.store(true, ordering: .relaxed) }
        // A parent may start us with these blocked (the mask is inherited across fork and exec): unblock them,
        // or a service manager's SIGTERM would never arrive. Threads started later inherit this mask.
        var set = sigset_t()
        sigemptyset(&set)
        for s in [SIGTERM, SIGINT, SIGHUP, SIGUSR1] { sigaddset(&set, s) }
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }

    private static func set(_ signal: Int32, _ handler: @convention(c) (Int32) -> Void) {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = handler
        sigemptyset(&action.sa_mask)
        // SA_RESTART: writes to log files and sockets resume instead of failing with EINTR.
        action.sa_flags = SA_RESTART
        sigaction(signal, &action, nil)
    }

    /// Takes (and clears) a flag.
    @inline(__always) public static func take(_ flag: borrowing Atomic<Bool>) -> Bool {
        flag.load(ordering: .relaxed) && flag.exchange(false, ordering: .relaxed)
    }
}
