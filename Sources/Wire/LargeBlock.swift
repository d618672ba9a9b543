#if canImport(Glibc)
import Glibc
#endif

/// Memory for per-flow tables that every packet reaches at a random place (flow slots, dissector states, the
/// detector's per-flow and per-key tables): on a cache-line boundary, and from 2 MiB up in transparent huge pages,
/// because with thousands of flows each access is otherwise a TLB miss (a page walk, nested under virtualisation) on
/// top of the cache miss, and a prefetch waits for the walk.
public enum LargeBlock {
    static let hugePage = 2 << 20

    /// `bytes` bytes (at least 64), uninitialised; traps when memory is exhausted. Release with `free`.
    public static func allocate(_ bytes: Int) -> UnsafeMutableRawPointer {
        var block: UnsafeMutableRawPointer?
        if bytes >= hugePage {
            let rounded = (bytes + hugePage - 1) & ~(hugePage - 1)
            if posix_memalign(&block, hugePage, rounded) == 0, let b = block { adviseHugePages(b, bytes: rounded) }
        } else {
            _ = posix_memalign(&block, 64, Swift.max(bytes, 64))
        }
        guard let b = block else { fatalError("out of memory (\(bytes) bytes)") }
        return b
    }

    /// `bytes` bytes of zeroed anonymous memory, page-aligned, in huge pages where large: pages cost nothing until
    /// written, so a block sized for the most flows ever live costs only what is used. Release with `unmap`.
    public static func mapZeroed(_ bytes: Int) -> UnsafeMutableRawPointer {
        guard let block = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0),
              block != MAP_FAILED else { fatalError("out of memory (\(bytes) bytes)") }
        adviseHugePages(block, bytes: bytes)
        return block
    }

    /// Releases a `mapZeroed` block of `bytes` bytes.
    public static func unmap(_ block: UnsafeMutableRawPointer, bytes: Int) { _ = munmap(block, bytes) }

    /// Asks for transparent huge pages over the whole 2 MiB pages inside `bytes` bytes at `base` (a hint: memory
    /// already touched keeps its pages).
    public static func adviseHugePages(_ base: UnsafeMutableRawPointer, bytes: Int) {
        guard bytes >= hugePage else { return }
        let start = (UInt(bitPattern: base) + UInt(hugePage - 1)) & ~UInt(hugePage - 1)
        let end = (UInt(bitPattern: base) + UInt(bytes)) & ~UInt(hugePage - 1)
        guard end > start, let p = UnsafeMutableRawPointer(bitPattern: start) else { return }
        _ = madvise(p, Int(end - start), 14)   // MADV_HUGEPAGE
    }
}
