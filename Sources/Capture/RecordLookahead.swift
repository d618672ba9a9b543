import CPcap
import Glibc
import Wire

/// The packets ahead of the current one in a classic pcap file, read from the bytes glibc has already buffered
/// for libpcap and not handed over yet (the stream's unread extent: glibc's FILE read pointers, part of its public
/// ABI). Nothing is copied or consumed: a hint source for prefetching (`PacketSource.upcoming`), so records are not
/// validated beyond staying inside the buffer. A value type, so the dispatch loop keeps it in its own context and
/// steps it without touching the source object (`PacketSource.recordLookahead`).
public struct RecordLookahead {
    /// The stream libpcap reads (nil: no lookahead).
    @usableFromInline var file: UnsafeMutablePointer<FILE>?
    /// 0 unavailable (pcapng, stdin, live), 1 records in host byte order, 2 byte-swapped.
    @usableFromInline var order: UInt8 = 0
    // The record after the one answered last, for which distance, and the unread extent of the buffer then (within
    // one fill its start only grows; a refill moves it back).
    @usableFromInline var next: UnsafeRawPointer?
    @usableFromInline var distance = 0
    @usableFromInline var bufferStart = UnsafeRawPointer(bitPattern: 1)!
    @usableFromInline var bufferEnd = UnsafeRawPointer(bitPattern: 1)!

    /// No lookahead (until `PacketSource.openFile` names the stream).
    public init() {}

    /// The captured bytes of the packet `distance` places after the current one (1: the next), if its record is
    /// already buffered. Called once per packet with the same distance, it steps one record on from the previous
    /// answer instead of walking `distance` record headers again.
    @inlinable @inline(__always)
    public mutating func packet(after distance: Int) -> ByteView? {
        // The same buffer fill as the previous answer (the unread extent's end unchanged and its start not moved
        // back) and the same distance: the record after the previous answer. One header read, one store.
        if let n = next, let fp = file, distance == self.distance, UnsafeRawPointer(fp.pointee._IO_read_end) == bufferEnd,
           let readPointer = fp.pointee._IO_read_ptr, UnsafeRawPointer(readPointer) >= bufferStart, n >= UnsafeRawPointer(readPointer) {
            if let view = record(at: n, end: bufferEnd) { return view }
            next = nil
            return nil
        }
        return packetFromStart(after: distance)
    }

    /// `packet(after:)` by walking from the first unread record (a new fill, another distance, or no previous answer).
    @usableFromInline @inline(never)
    mutating func packetFromStart(after distance: Int) -> ByteView? {
        next = nil
        guard order != 0, let fp = file else { return nil }
        guard let readPointer = fp.pointee._IO_read_ptr, let readEnd = fp.pointee._IO_read_end else { return nil }
        let start = UnsafeRawPointer(readPointer), end = UnsafeRawPointer(readEnd)
        var r = start
        for _ in 1..<max(distance, 1) {
            guard let view = record(at: r, end: end) else { return nil }
            r = UnsafeRawPointer(view.raw.baseAddress.unsafelyUnwrapped) + view.raw.count
        }
        guard let view = record(at: r, end: end) else { next = nil; return nil }
        self.distance = distance; bufferStart = start; bufferEnd = end
        return view
    }

    /// The record at `r` if it lies whole before `end` (sets `next` to the record after it).
    @inlinable @inline(__always)
    mutating func record(at r: UnsafeRawPointer, end: UnsafeRawPointer) -> ByteView? {
        guard end - r >= 16 else { return nil }
        var captured = r.loadUnaligned(fromByteOffset: 8, as: UInt32.self)
        if order == 2 { captured = captured.byteSwapped }
        let length = Int(captured)
        guard length <= end - r - 16 else { return nil }
        next = r + 16 + length
        return ByteView(UnsafeRawBufferPointer(start: r + 16, count: length))
    }
}
