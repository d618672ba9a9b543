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
    /// File offset of the record `Engine.prefetchDistance` places after the next one taken (the prefetch hint), or
    /// `-1` when the file ends before it. Hints only: stepped by the captured length alone.
    private var ahead = -1
    /// Records handed to the engine.
    public private(set) var records: UInt64 = 0

    /// A replay of `path` into `engine` when the file is a classic pcap file that `MappedCapture` reads, with link
    /// type `linkType` (libpcap's, from the file's header); nil otherwise (pcapng, other versions, not a regular file).
    public init?(path: String, linkType: Int32, engine: Engine, prefetch: Bool = true) {
        guard let map = SharedCaptureMap(path: path, linkType: linkType, workers: 1) else { return nil }
        let capture = MappedCapture(sharing: map, worker: 0)
        guard let walk = capture.wholeFile else { return nil }   // byte-swapped: libpcap reads it
        self.map = map; self.capture = capture; self.walk = walk; self.engine = engine
        self.linkType = linkType; self.prefetch = prefetch
        ahead = walk.offset
        for _ in 0..<Engine.prefetchDistance { ahead = step(ahead) }
    }

    deinit { map.finished(worker: 0) }

    /// The walk met a record libpcap must handle: the caller reads on from there with libpcap, after skipping
    /// `records` records.
    public var irregular: Bool { walk.irregular }

    /// The offset of the record after the one at `offset`, or -1 at the end of the file (or of what lies whole in it).
    @inline(__always)
    private func step(_ offset: Int) -> Int {
        guard offset >= 0, offset &+ 16 <= walk.size else { return -1 }
        let next = offset &+ 16 &+ Int(walk.base.loadUnaligned(fromByteOffset: offset &+ 8, as: UInt32.self))
        return next <= walk.size ? next : -1
    }

    /// Hands up to `batch` records to the engine, each with the prefetch hint for the packet
    /// `Engine.prefetchDistance` places ahead; returns how many (0: the end of the file, or `irregular`).
    public func dispatch(batch: Int) -> Int {
        var walk = self.walk, ahead = self.ahead
        let engine = self.engine, linkType = self.linkType, prefetch = self.prefetch, base = walk.base
        var taken = 0
        while taken < batch, let h = walk.next(capture) {
            taken &+= 1
            var hint: UnsafeRawPointer?
            if prefetch && ahead >= 0 {
                hint = base + ahead
                ahead = step(ahead)
            }
            engine.processRecord(h, microseconds: walk.microseconds(h), ahead: hint, linkType: linkType)
        }
        self.walk = walk; self.ahead = ahead
        records &+= UInt64(taken)
        return taken
    }
}
