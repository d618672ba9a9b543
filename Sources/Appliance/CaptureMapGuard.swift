import Glibc
import Synchronization

/// The capture file's map being read (`SharedCaptureMap`): its address range, and whether a read in it went past the
/// file's end. File scope, not static members: the SIGBUS handler reads them, and they are initialised (by
/// `CaptureMapGuard.register`) before any map exists.
private let guardedStart = Atomic<Int>(0)
private let guardedEnd = Atomic<Int>(0)
private let guardedPage = Atomic<Int>(4096)
private let guardHit = Atomic<Bool>(false)
private let guardInstalled = Atomic<Bool>(false)

/// Keeps a capture file that another process truncates while it is read through a memory map (log rotation by
/// copy-and-truncate, say) from killing the process: a read of the map past the file's new end raises SIGBUS, which
/// would end the replay with nothing written. The handler maps a page of zeros over the page read (so the read
/// completes) and notes it; the record walks (`WholeFileWalk.next`, `MappedCapture.nextRaw`) then stop as at a record
/// libpcap must handle, and libpcap reads on and reports the truncated file as usual. At most the record being read
/// when the file was cut is seen with zeros in place of its bytes. A SIGBUS anywhere else keeps its default action.
enum CaptureMapGuard {
    /// Guards `length` bytes from `base` (one map at a time: a replay reads its files one after the other).
    static func register(_ base: UnsafeRawPointer, length: Int) {
        guardedPage.store(Int(sysconf(Int32(_SC_PAGESIZE))), ordering: .relaxed)
        guardHit.store(false, ordering: .relaxed)
        guardedEnd.store(0, ordering: .relaxed)
        guardedStart.store(Int(bitPattern: base), ordering: .relaxed)
        guardedEnd.store(Int(bitPattern: base) &+ length, ordering: .releasing)
        installHandler()
    }

    /// Stops guarding the map at `base` (it is being unmapped).
    static func unregister(_ base: UnsafeRawPointer) {
        guard guardedStart.load(ordering: .relaxed) == Int(bitPattern: base) else { return }
        guardedEnd.store(0, ordering: .releasing)
        guardedStart.store(0, ordering: .relaxed)
    }

    /// Whether a read of the guarded map went past the file's end (it shrank while it was read).
    @inline(__always) static var fileShrank: Bool { guardHit.load(ordering: .relaxed) }

    private static func installHandler() {
        guard guardInstalled.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged else { return }
        var action = sigaction()
        action.sa_flags = SA_SIGINFO
        sigemptyset(&action.sa_mask)
        action.__sigaction_handler.sa_sigaction = { _, info, _ in
            let address = Int(bitPattern: info?.pointee._sifields._sigfault.si_addr)
            let start = guardedStart.load(ordering: .relaxed), end = guardedEnd.load(ordering: .acquiring)
            if address >= start && address < end && start != 0 {
                let page = guardedPage.load(ordering: .relaxed)
                let at = UnsafeMutableRawPointer(bitPattern: address & ~(page - 1))
                if mmap(at, page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != MAP_FAILED {
                    guardHit.store(true, ordering: .relaxed)
                    return
                }
            }
            // Not a read of the map: the default action, when the faulting instruction runs again.
            signal(SIGBUS, SIG_DFL)
        }
        sigaction(SIGBUS, &action, nil)
    }
}
