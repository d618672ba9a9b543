import Glibc
import Synchronization
import Wire
import Capture
import CAppliance

/// A classic pcap file read in place through a memory map (a window of its own that slides, or a cursor over the
/// workers' `SharedCaptureMap` of the whole file), for `ParallelPipeline.replayFile`: every worker
/// reads every record of the file, and through libpcap each would pay a `read` into stdio's buffer and a copy into
/// libpcap's for all of them (the other workers' packets included), which streamed twice the file through each
/// core's cache. Here a record is a pointer into the page cache: a worker touches only the headers of the packets
/// that are not its own.
///
/// Only what libpcap would hand on unchanged is read this way: classic pcap 2.4, micro- or nanosecond timestamps
/// (nanoseconds scaled down to microseconds, as libpcap does by default), host byte order (swapped files only for
/// Ethernet, whose frames libpcap never rewrites), records whose captured length is within the file's snapshot
/// length (libpcap's adjusted value), whose seconds are below 2^31 (libpcap reads them as signed), which hold at
/// least one byte (an all-zero header is where a file was cut: see `WholeFileWalk.next`) and which lie wholly inside
/// the file. `nextRaw()` stops at the first record
/// that is not so (`irregular`): the caller lets libpcap take over from that record on, so damaged files keep
/// libpcap's behaviour and error messages exactly.
final class MappedCapture {
    fileprivate let descriptor: Int32
    fileprivate let fileSize: Int
    private let swapped: Bool
    private let nanoseconds: Bool
    private let snapshot: Int
    fileprivate let pageSize: Int
    /// Bytes mapped at a time, and the least left beyond a record's start before the window moves on (one whole
    /// record of the largest allowed size always fits).
    private let windowBytes: Int
    private let margin: Int
    private var window: UnsafeMutableRawPointer?
    private var windowStart = 0
    private var windowLength = 0
    /// The window before, unmapped only when the next one replaces this one: views handed out a few records
    /// back may point into it after a move.
    private var previousWindow: UnsafeMutableRawPointer?
    private var previousLength = 0
    /// The two windows' `CaptureMapGuard` slots (-1: not guarded), so that a file cut short by another process while
    /// a window of it is read ends the walk as a whole-file map's cut does, not the process.
    private var windowGuard = -1
    private var previousGuard = -1
    /// File offset of the next record.
    private(set) var offset = 24
    /// Records handed out.
    private(set) var records: UInt64 = 0
    /// `nextRaw()` met a record libpcap must handle (or a damaged one); nothing more comes from here.
    private(set) var irregular = false
    /// How far ahead of the current record the file is prefetched, in bytes.
    static let prefetchAhead = 6 << 10

    /// Maps `path` when it is a classic pcap file of the shape described above with link type `linkType`; nil
    /// otherwise (pcapng, modified formats, other versions: libpcap reads those).
    init?(path: String, linkType: Int32, windowBytes: Int = 4 << 20) {
        // Non-blocking: a named pipe whose writer has gone would block this open for ever (libpcap read it already);
        // it is then no regular file and left to libpcap. Reads of a regular file ignore the flag.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return nil }
        var st = stat()
        var header = [UInt8](repeating: 0, count: 24)
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_size >= 24,
              pread(fd, &header, 24, 0) == 24 else { close(fd); return nil }
        func u32(_ o: Int) -> UInt32 { UInt32(header[o]) | UInt32(header[o + 1]) << 8 | UInt32(header[o + 2]) << 16 | UInt32(header[o + 3]) << 24 }
        let magic = u32(0)
        let swap: Bool
        switch magic {
        case 0xA1B2_C3D4: swap = false; nanoseconds = false
        case 0xA1B2_3C4D: swap = false; nanoseconds = true
        case 0xD4C3_B2A1: swap = true; nanoseconds = false
        case 0x4D3C_B2A1: swap = true; nanoseconds = true
        default: close(fd); return nil
        }
        func field(_ o: Int) -> UInt32 { swap ? u32(o).byteSwapped : u32(o) }
        let major = swap ? (UInt16(header[4]) << 8 | UInt16(header[5])) : (UInt16(header[4]) | UInt16(header[5]) << 8)
        let minor = swap ? (UInt16(header[6]) << 8 | UInt16(header[7])) : (UInt16(header[6]) | UInt16(header[7]) << 8)
        // 2.3 and older may have caplen and len swapped (libpcap fixes them up).
        guard major == 2, minor == 4, !swap || linkType == 1 else { close(fd); return nil }
        // libpcap's pcap_adjust_snapshot: 0 or more than the link type's maximum (262,144 for ours) means the maximum.
        let snap = Int(field(16))
        snapshot = snap == 0 || snap > 262_144 ? 262_144 : snap
        shared = nil; worker = 0
        descriptor = fd; fileSize = Int(st.st_size); swapped = swap
        pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
        margin = (16 + snapshot + pageSize - 1) / pageSize * pageSize + pageSize
        self.windowBytes = max(windowBytes, margin * 2)
        _ = posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL)
    }

    /// The whole-file map this cursor reads (`init(sharing:worker:)`), which it tells how far it has read.
    private let shared: SharedCaptureMap?
    private let worker: Int
    /// The offset at which the cursor next reports its position to `shared`.
    private var nextReport = 0

    /// A cursor over `shared`'s map of the whole file, for worker `worker`: the same records as a map of its own.
    init(sharing shared: SharedCaptureMap, worker: Int) {
        let t = shared.template
        descriptor = -1; fileSize = t.fileSize; swapped = t.swapped; nanoseconds = t.nanoseconds; snapshot = t.snapshot
        pageSize = t.pageSize; windowBytes = t.windowBytes; margin = t.margin
        self.shared = shared; self.worker = worker
        window = UnsafeMutableRawPointer(mutating: shared.base); windowStart = 0; windowLength = fileSize
    }

    deinit {
        guard shared == nil else { return }
        CaptureMapGuard.unregister(windowGuard)
        CaptureMapGuard.unregister(previousGuard)
        if let w = window { munmap(w, windowLength) }
        if let w = previousWindow { munmap(w, previousLength) }
        close(descriptor)
    }

    /// Tells the shared map how far this cursor has read (every `SharedCaptureMap.reportBytes`).
    @inline(__always)
    private func report() {
        if let s = shared, offset >= nextReport {
            nextReport = offset &+ SharedCaptureMap.reportBytes
            s.advance(worker: worker, to: offset)
        }
    }

    /// The whole file in memory, when this cursor reads a `SharedCaptureMap` of a file in host byte order: then
    /// `FileShareReader.readMapped` walks the records itself (`WholeFileWalk`), without the window checks `nextRaw`
    /// makes for every record; nil otherwise.
    var wholeFile: WholeFileWalk? {
        guard let s = shared, !swapped, !irregular else { return nil }
        return WholeFileWalk(base: s.base, size: fileSize, snapshot: snapshot,
                             fractionLimit: nanoseconds ? 1_000_000_000 : 1_000_000,
                             nanoseconds: nanoseconds, offset: offset, nextReport: nextReport)
    }

    /// Takes back a `WholeFileWalk` started from `wholeFile`: where it stopped, what it took, and whether it met a
    /// record libpcap must handle.
    func finishWalk(_ walk: WholeFileWalk, records taken: UInt64) {
        offset = walk.offset; nextReport = walk.nextReport
        records &+= taken
        if walk.irregular { irregular = true }
    }

    /// Tells the shared map how far a `WholeFileWalk` has read.
    @inline(never)
    fileprivate func report(walk offset: Int) { shared?.advance(worker: worker, to: offset) }

    /// Maps the window holding `offset` and at least `margin` bytes after it (or the rest of the file).
    private func map(at offset: Int) -> Bool {
        CaptureMapGuard.unregister(previousGuard)
        if let w = previousWindow { munmap(w, previousLength) }
        previousWindow = window; previousLength = windowLength; previousGuard = windowGuard
        window = nil; windowGuard = -1
        let start = offset / pageSize * pageSize
        let length = min(windowBytes, fileSize - start)
        // MAP_POPULATE: the window's page table entries are filled in one go (the file is normally in the page
        // cache), not by a fault every few pages in the packet loop.
        guard length > 0, let p = mmap(nil, length, PROT_READ, MAP_PRIVATE | MAP_POPULATE, descriptor, off_t(start)), p != MAP_FAILED else {
            return false
        }
        _ = madvise(p, length, MADV_SEQUENTIAL)
        window = p; windowStart = start; windowLength = length
        windowGuard = CaptureMapGuard.register(p, length: length)
        return true
    }

    /// A record's fields, the time not yet built (`fraction` in microseconds).
    struct RawRecord {
        var bytes: ByteView
        var seconds: UInt32
        var fraction: UInt32
        var wireLength: UInt32
        /// The record's time, as libpcap hands it on.
        @inline(__always) var time: PacketTime { PacketTime(seconds: Int64(seconds), microseconds: Int32(fraction)) }
    }

    /// The next record, valid until the window moves twice (views a few records back stay valid); nil at the end
    /// of the file or at a record libpcap must handle (`irregular` then says which). The time is not built: a
    /// worker builds it only for its own packets and at sweeps.
    @inline(__always)
    func nextRaw() -> RawRecord? {
        guard !irregular else { return nil }
        if offset &+ 16 &+ snapshot > windowStart &+ windowLength && windowStart &+ windowLength < fileSize || window == nil {
            if offset >= fileSize { return nil }
            guard map(at: offset) else { irregular = true; return nil }
        }
        if offset == fileSize { return nil }
        report()
        guard let w = window, offset >= windowStart, offset &+ 16 <= windowStart &+ windowLength else { irregular = true; return nil }
        let p = UnsafeRawPointer(w) + (offset &- windowStart)
        var seconds = p.loadUnaligned(as: UInt32.self), fraction = p.loadUnaligned(fromByteOffset: 4, as: UInt32.self)
        var captured = p.loadUnaligned(fromByteOffset: 8, as: UInt32.self), length = p.loadUnaligned(fromByteOffset: 12, as: UInt32.self)
        if swapped {
            seconds = seconds.byteSwapped; fraction = fraction.byteSwapped; captured = captured.byteSwapped; length = length.byteSwapped
        }
        let caplen = Int(captured)
        // Seconds from 2^31 on: libpcap reads them as a signed 32-bit value (times before 1970), which it must do.
        guard caplen > 0, caplen <= snapshot, fraction < (nanoseconds ? 1_000_000_000 : 1_000_000), seconds < 0x8000_0000,
              offset &+ 16 &+ caplen <= windowStart &+ windowLength else {
            irregular = true; return nil
        }
        if nanoseconds { fraction /= 1000 }
        if offset &+ Self.prefetchAhead &+ 64 < windowStart &+ windowLength {
            let ahead = UnsafeRawPointer(w) + (offset &+ Self.prefetchAhead &- windowStart)
            zw_prefetch_read(ahead)
            zw_prefetch_read(ahead + 64)
        }
        offset &+= 16 &+ caplen
        records &+= 1
        return RawRecord(bytes: ByteView(UnsafeRawBufferPointer(start: p + 16, count: caplen)), seconds: seconds, fraction: fraction,
                         wireLength: length)
    }
}

/// `MappedCapture.nextRaw` over a whole-file map, as a value the read loop keeps in registers: the same records, the
/// same checks (`irregular` where `nextRaw` would set it), the same prefetch ahead and position reports, but no
/// window to test for each record.
struct WholeFileWalk {
    let base: UnsafeRawPointer
    let size: Int
    let snapshot: Int
    let fractionLimit: UInt32
    let nanoseconds: Bool
    /// File offset of the next record.
    var offset: Int
    /// The offset at which the position is next reported to the shared map.
    var nextReport: Int
    /// Met a record libpcap must handle (`nextRaw` would have set `irregular`).
    var irregular = false

    /// The next record's header (at `base + offset`, the packet 16 bytes on), or nil at the end of the file or
    /// at a record libpcap must handle. The fraction is in the file's unit (`microseconds` converts).
    @inline(__always)
    mutating func next(_ capture: MappedCapture) -> UnsafeRawPointer? {
        if offset == size || irregular { return nil }
        if offset >= nextReport {
            nextReport = offset &+ SharedCaptureMap.reportBytes
            capture.report(walk: offset)
        }
        guard offset &+ 16 <= size else { irregular = true; return nil }
        let p = base + offset
        let caplen = Int(p.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
        // (Seconds from 2^31 on: libpcap's, as in `nextRaw`.)
        // A record of no captured bytes is left to libpcap too (one test with the snapshot's): an all-zero header is
        // what a file cut short by another process reads as, in the rest of its last page and in the pages of zeros
        // `CaptureMapGuard` maps past its end. So the walk stops where the file was cut, with no check of its own per
        // record; empty records are rare enough that libpcap may read on from the first.
        guard UInt(bitPattern: caplen &- 1) < UInt(snapshot), p.loadUnaligned(fromByteOffset: 4, as: UInt32.self) < fractionLimit,
              p.loadUnaligned(as: UInt32.self) < 0x8000_0000, offset &+ 16 &+ caplen <= size else { irregular = true; return nil }
        // Past the end of the map too: a prefetch never faults, and a test for each record would cost more.
        zw_prefetch_read(p + MappedCapture.prefetchAhead)
        zw_prefetch_read(p + MappedCapture.prefetchAhead + 64)
        offset &+= 16 &+ caplen
        return p
    }

    /// The last offset at which a record lies wholly in the file whatever its header says (its captured length is
    /// checked against the snapshot length): `record(at:...)` may read there. Negative for a file shorter than that.
    var withinLimit: Int { size &- 16 &- snapshot }

    /// The header of the record at `offset` of a map at `base`, for an offset of at most `withinLimit`: `next`'s record
    /// tests without those of the end of the file, which are then implied, and its prefetch; nil for a record libpcap
    /// must handle (the caller then calls `next`, which finds the same and says so). The caller moves on (16 bytes and
    /// the captured length) and makes the position reports. Static, on the fields: the owner pass's loop keeps them
    /// in registers.
    @inline(__always)
    static func record(at offset: Int, base: UnsafeRawPointer, snapshot: Int, fractionLimit: UInt32) -> UnsafeRawPointer? {
        let p = base + offset
        let caplen = Int(p.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
        guard UInt(bitPattern: caplen &- 1) < UInt(snapshot), p.loadUnaligned(fromByteOffset: 4, as: UInt32.self) < fractionLimit,
              p.loadUnaligned(as: UInt32.self) < 0x8000_0000 else { return nil }
        zw_prefetch_read(p + MappedCapture.prefetchAhead)
        zw_prefetch_read(p + MappedCapture.prefetchAhead + 64)
        return p
    }

    /// The fraction of a record's time in microseconds (libpcap scales nanoseconds down).
    @inline(__always)
    func microseconds(_ header: UnsafeRawPointer) -> UInt32 {
        let f = header.loadUnaligned(fromByteOffset: 4, as: UInt32.self)
        return nanoseconds ? f / 1000 : f
    }
}

/// One memory map of a whole classic pcap file for all the workers of a `replayFile`. They are threads of one
/// process, so one set of page-table entries serves them all: with a map per worker, each made and dropped the
/// entries of every page of the file (about a tenth of a worker's CPU time, in the kernel). Entries are made ahead
/// of the leading worker, a few MiB at a time, by whichever worker gets there first (`MADV_POPULATE_READ`; where
/// that is missing, pages fault in as read), and dropped behind the slowest (`MADV_DONTNEED`: the pages stay in the
/// page cache and would fault back in if read), so the map's resident part stays a few MiB, as with windows.
final class SharedCaptureMap: @unchecked Sendable {
    /// The file opened and checked as for a map of its own (its descriptor and header fields).
    fileprivate let template: MappedCapture
    let base: UnsafeRawPointer
    private let length: Int
    /// Bytes from the start whose entries were made (claimed by one worker, then made) or dropped.
    private let populated = Atomic<Int>(0)
    private let released = Atomic<Int>(0)
    /// Each worker's reported offset (`Int.max`: not reading here).
    private final class Position: Sendable { let offset = Atomic<Int>(0) }
    private let positions: [Position]
    /// How often a cursor reports, how far ahead entries are made and in what steps, and how far behind the slowest
    /// cursor they are dropped (views handed out a few records back stay mapped anyway).
    static let reportBytes = 1 << 20
    static let aheadBytes = 4 << 20
    static let stepBytes = 2 << 20
    static let behindBytes = 1 << 20
    /// Entries are dropped in whole 2 MiB blocks of the map (which starts on such a boundary when the kernel aligns
    /// it): a page cache of large folios is mapped a block to an entry, and dropping part of a block split its entry
    /// into 512. And at least `releaseBytes` at a time: each drop is a TLB shootdown, an interrupt to every core
    /// running another worker.
    static let blockBytes = 2 << 20
    static let releaseBytes = 4 << 20

    /// Maps `path` when `MappedCapture(path:linkType:)` would read it; nil otherwise (or when the map fails).
    init?(path: String, linkType: Int32, workers: Int) {
        guard let t = MappedCapture(path: path, linkType: linkType) else { return nil }
        guard let p = mmap(nil, t.fileSize, PROT_READ, MAP_PRIVATE | MAP_NORESERVE, t.descriptor, 0), p != MAP_FAILED else { return nil }
        // Huge pages asked for (a hint; the whole map, so that its area stays one): what the map reads back into the
        // page cache then comes as 2 MiB folios, readahead in huge-page order. Without it, the holes a partial
        // eviction (a DAMON pageout, memory pressure) leaves in a cached capture came back as 4 KiB folios beside
        // the cached ones, and every later replay of the file paid for them: the 5M plant's map cost 45-73 ms to
        // populate and ~20 ms to unmap, against 2-3 ms and under 1 ms with the file in 2 MiB folios.
        _ = madvise(p, t.fileSize, MADV_HUGEPAGE)
        _ = madvise(p, t.fileSize, MADV_SEQUENTIAL)
        template = t; base = UnsafeRawPointer(p); length = t.fileSize
        positions = (0..<max(1, workers)).map { _ in Position() }
        guardSlot = CaptureMapGuard.register(base, length: length)
    }

    /// This map's slot in `CaptureMapGuard` (-1: not guarded).
    let guardSlot: Int

    deinit {
        CaptureMapGuard.unregister(guardSlot)
        munmap(UnsafeMutableRawPointer(mutating: base), length)
    }

    /// Worker `worker` has read up to `offset`: make the entries ahead of it, drop those behind every worker.
    func advance(worker: Int, to offset: Int) {
        positions[worker].offset.store(offset, ordering: .relaxed)
        let want = min(length, offset &+ Self.aheadBytes)
        var p = populated.load(ordering: .acquiring)
        while p < want {
            let end = min(length, p &+ Self.stepBytes)
            let (claimed, current) = populated.compareExchange(expected: p, desired: end, ordering: .acquiringAndReleasing)
            if claimed {
                _ = madvise(UnsafeMutableRawPointer(mutating: base + p), end &- p, 22 /* MADV_POPULATE_READ */)
                p = end
            } else {
                p = current
            }
        }
        var slowest = Int.max
        for position in positions { slowest = min(slowest, position.offset.load(ordering: .relaxed)) }
        // (Blocks of the address space: the map's base may not be on a boundary.)
        let misalignment = Int(bitPattern: UInt(bitPattern: base) % UInt(Self.blockBytes))
        let behind = max(0, min(slowest, length) &- Self.behindBytes)
        let keep = max(0, (misalignment &+ behind) / Self.blockBytes * Self.blockBytes &- misalignment)
        let r = released.load(ordering: .acquiring)
        if keep &- r >= Self.releaseBytes {
            let (claimed, _) = released.compareExchange(expected: r, desired: keep, ordering: .acquiringAndReleasing)
            if claimed { _ = madvise(UnsafeMutableRawPointer(mutating: base + r), keep &- r, MADV_DONTNEED) }
        }
    }

    /// Worker `worker` reads no more from here (the end of the file, or libpcap takes over): it no longer holds
    /// entries back.
    func finished(worker: Int) { positions[worker].offset.store(Int.max, ordering: .relaxed) }
}
