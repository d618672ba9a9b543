import Glibc
import Wire
import Capture
import Decode
import Engine

/// One engine replaying a classic pcap file through a memory map of it (`SharedCaptureMap`, as `--workers` reads a
/// file): each record is a view into the page cache. Through libpcap every packet costs a `read` that copies it
/// from the page cache into stdio's buffer, and a copy from there into libpcap's, plus libpcap's per-record work
/// (about a fifth of the mixed plant's replay time). The records taken are exactly those libpcap would hand on
/// unchanged (`MappedCapture`); at the first record that is not such (or a damaged one) `dispatch` returns 0 with
/// `irregular` set, and libpcap goes on from there after skipping the `records` read here, so damaged files keep
/// libpcap's behaviour and error text.
public final class MappedFileReplay {
    private let engine: Engine
    private let map: SharedCaptureMap
    private let capture: MappedCapture
    private var walk: WholeFileWalk
    private let linkType: Int32
    private let prefetch: Bool
    private let path: String
    /// The next record to hand on, and how many the walk has checked from it on (`Engine.prefetchDistance`, fewer at
    /// the end of what the map takes): the walk runs that far ahead, so its newest is the next packet's prefetch hint,
    /// and the records behind it are found by their lengths alone (their headers checked, and in cache).
    private var next: UnsafeRawPointer
    private var walked = 0
    /// Records handed to the engine.
    public private(set) var records: UInt64 = 0

    /// A replay of `path` into `engine` when the file is a classic pcap file that `MappedCapture` reads, with link
    /// type `linkType` (libpcap's, from the file's header); nil otherwise (pcapng, other versions, not a regular file).
    public init?(path: String, linkType: Int32, engine: Engine, prefetch: Bool = true) {
        guard let map = SharedCaptureMap(path: path, linkType: linkType, workers: 1) else { return nil }
        let capture = MappedCapture(sharing: map, worker: 0)
        guard var walk = capture.wholeFile else { return nil }   // byte-swapped: libpcap reads it
        next = walk.base + walk.offset
        var walked = 0
        while walked < Engine.prefetchDistance, walk.next(capture) != nil { walked &+= 1 }
        self.walked = walked
        self.map = map; self.capture = capture; self.walk = walk; self.engine = engine
        self.linkType = linkType; self.prefetch = prefetch; self.path = path
    }

    deinit {
        map.finished(worker: 0)
    }

    /// The walk met a record libpcap must handle: the caller reads on from there with libpcap, after skipping
    /// `records` records.
    public var irregular: Bool { walk.irregular }

    /// Once `dispatch` has returned 0: whether libpcap is to read on in `source` (the same file, opened by libpcap and
    /// not read yet), which it then has passed over the `records` taken here. It is when the walk met a record libpcap
    /// must handle, or when the file has grown since it was mapped (still being written: `tcpdump -w`). Throws as
    /// `PacketSource.skip` does.
    public func handOver(to source: PacketSource) throws(CaptureError) -> Bool {
        var st = stat()
        guard walk.irregular || (stat(path, &st) == 0 && Int(st.st_size) > walk.size) else { return false }
        return try source.skip(records)
    }

    /// Hands up to `batch` records to the engine, each with the prefetch hint for the packet
    /// `Engine.prefetchDistance` places ahead; returns how many (0: the end of the file, or `irregular`).
    public func dispatch(batch: Int) -> Int {
        var walk = self.walk, next = self.next, walked = self.walked
        let engine = self.engine, linkType = self.linkType, prefetch = self.prefetch
        var taken = 0
        while taken < batch && walked > 0 {
            // Records lying wholly within the file whatever their headers say, before the next position report: the
            // walk's checks without those of the end of the file and the report (the same records and hints as the step
            // below, in fewer instructions; no faster on the bench's host, where the plant waits on memory).
            if !walk.irregular {
                let limit = min(walk.withinLimit, walk.nextReport &- 1)
                while taken < batch && walk.offset <= limit,
                      let a = WholeFileWalk.record(at: walk.offset, base: walk.base, snapshot: walk.snapshot, fractionLimit: walk.fractionLimit) {
                    walk.offset &+= 16 &+ Int(a.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
                    let h = next
                    next = h + (16 &+ Int(h.loadUnaligned(fromByteOffset: 8, as: UInt32.self)))
                    taken &+= 1
                    engine.processRecord(h, microseconds: walk.microseconds(h), ahead: prefetch ? a : nil, linkType: linkType)
                }
                if taken == batch { break }
            }
            // One record the walk's own way: a position report, the end of the file, or a record libpcap must handle.
            let h = next
            next = h + (16 &+ Int(h.loadUnaligned(fromByteOffset: 8, as: UInt32.self)))
            taken &+= 1
            var hint: UnsafeRawPointer?
            if let a = walk.next(capture) {
                if prefetch { hint = a }
            } else {
                walked &-= 1
            }
            engine.processRecord(h, microseconds: walk.microseconds(h), ahead: hint, linkType: linkType)
        }
        self.walk = walk; self.next = next; self.walked = walked
        records &+= UInt64(taken)
        return taken
    }
}
