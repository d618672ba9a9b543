import Glibc
import Synchronization

/// The capture maps being read (`SharedCaptureMap`s: one per replay in the command, a few at once in the tests; or
/// each worker's two `MappedCapture` windows, where no whole-file map could be made): each guarded map's address
/// range. File scope, not static members: the SIGBUS handler reads them, and they are initialised (by
/// `CaptureMapGuard.register`) before any map exists.
private let guardSlots = 32
private let guardStarts = InlineArray<32, Atomic<Int>> { _ in Atomic(0) }
private let guardEnds = InlineArray<32, Atomic<Int>> { _ in Atomic(0) }
private let guardTaken = InlineArray<32, Atomic<Bool>> { _ in Atomic(false) }
private let guardPage = Atomic<Int>(4096)
private let guardInstalled = Atomic<Bool>(false)

/// Keeps a capture file that another process truncates while it is read through a memory map (log rotation by
/// copy-and-truncate, say) from killing the process: a read of the map past the file's new end raises SIGBUS, which
/// would end the replay with nothing written. The handler maps a page of zeros over the page read (so the read
/// completes); the record walks (`WholeFileWalk.next`, `MappedCapture.nextRaw`) stop at an all-zero record header as
/// at a record libpcap must handle, and libpcap reads on and reports the truncated file as usual. At most the records
/// already queued when the file was cut are seen with zeros in place of their bytes. Nothing is checked per record.
/// A SIGBUS anywhere else keeps its default action.
enum CaptureMapGuard {
    /// Guards `length` bytes from `base`; returns the guard's slot for `unregister` (-1 when all are in use:
    /// that map is not guarded).
    static func register(_ base: UnsafeRawPointer, length: Int) -> Int {
        guardPage.store(Int(sysconf(Int32(_SC_PAGESIZE))), ordering: .relaxed)
        installHandler()
        for i in 0..<guardSlots where guardTaken[i].compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged {
            guardStarts[i].store(Int(bitPattern: base), ordering: .relaxed)
            guardEnds[i].store(Int(bitPattern: base) &+ length, ordering: .releasing)
            return i
        }
        return -1
    }

    /// Stops guarding the map of `slot` (it is being unmapped).
    static func unregister(_ slot: Int) {
        guard slot >= 0 && slot < guardSlots else { return }
        guardEnds[slot].store(0, ordering: .releasing)
        guardStarts[slot].store(0, ordering: .relaxed)
        guardTaken[slot].store(false, ordering: .releasing)
    }

    private static func installHandler() {
        guard guardInstalled.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged else { return }
        var action = sigaction()
        action.sa_flags = SA_SIGINFO
        sigemptyset(&action.sa_mask)
        action.__sigaction_handler.sa_sigaction = { _, info, _ in
            let address = Int(bitPattern: info?.pointee._sifields._sigfault.si_addr)
            for i in 0..<guardSlots {
                let end = guardEnds[i].load(ordering: .acquiring), start = guardStarts[i].load(ordering: .relaxed)
                guard start != 0 && address >= start && address < end else { continue }
                let page = guardPage.load(ordering: .relaxed)
                let at = UnsafeMutableRawPointer(bitPattern: address & ~(page - 1))
                if mmap(at, page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != MAP_FAILED { return }
            }
            // Not a read of a guarded map: the default action, when the faulting instruction runs again.
            signal(SIGBUS, SIG_DFL)
        }
        sigaction(SIGBUS, &action, nil)
    }
}
