#if canImport(Glibc)
import Glibc
#endif

/// Memory for per-flow tables that every packet reaches at a random place (flow slots, dissector states): on a
/// cache-line boundary, and from 2 MiB up in transparent huge pages, because with thousands of flows each access
/// is otherwise a TLB miss (a page walk, nested under virtualisation) on top of the cache miss. Release with `free`.
public enum LargeBlock {
    /// `bytes` bytes (at least 64), uninitialised; traps when memory is exhausted.
    public static func allocate(_ bytes: Int) -> UnsafeMutableRawPointer {
        let huge = 2 << 20
        var block: UnsafeMutableRawPointer?
        if bytes >= huge {
            let rounded = (bytes + huge - 1) & ~(huge - 1)
            if posix_memalign(&block, huge, rounded) == 0, let b = block {
                _ = madvise(b, rounded, 14)   // MADV_HUGEPAGE; only a hint
            }
        } else {
            _ = posix_memalign(&block, 64, Swift.max(bytes, 64))
        }
        guard let b = block else { fatalError("out of memory (\(bytes) bytes)") }
        return b
    }
}
