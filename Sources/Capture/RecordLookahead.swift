import Glibc
import Wire

/// The packets ahead of the current one in a classic pcap file, read from the bytes glibc has already buffered
/// for libpcap and not handed over yet (the stream's unread extent: glibc's FILE read pointers, part of its public
/// ABI). Nothing is copied or consumed: a hint source for prefetching (`PacketSource.upcoming`), so records are not
/// validated beyond staying inside the buffer. A value type, so the dispatch loop keeps it in its own context and
/// steps it without touching the source object.
struct RecordLookahead {
    /// The stream libpcap reads (nil: no lookahead).
    var file: UnsafeMutablePointer<FILE>?
    /// 0 unavailable (pcapng, stdin, live), 1 records in host byte order, 2 byte-swapped.
    var order: UInt8 = 0
    // The record after the one answered last, for which distance, and the unread extent of the buffer then (within
    // one fill its start only grows; a refill moves it back).
    private var next: UnsafeRawPointer?
    private var distance = 0
    private var bufferStart = UnsafeRawPointer(bitPattern: 1)!
    private var bufferEnd = UnsafeRawPointer(bitPattern: 1)!

    /// The captured bytes of the packet `distance` places after the current one (1: the next), if its record is
    /// already buffered. Called once per packet with the same distance, it steps one record on from the previous
    /// answer instead of walking `distance` record headers again.
    @inline(__always)
    mutating func packet(after distance: Int) -> ByteView? {
        guard order != 0, let fp = file else { return nil }
        guard let readPointer = fp.pointee._IO_read_ptr, let readEnd = fp.pointee._IO_read_end else { return nil }
        let start = UnsafeRawPointer(readPointer), end = UnsafeRawPointer(readEnd)
        var record: UnsafeRawPointer
        var remaining: Int
        if let n = next, distance == self.distance, end == bufferEnd, start >= bufferStart, n >= start {
            record = n; remaining = 1   // same buffer fill, one packet later
        } else {
            record = start; remaining = distance
        }
        next = nil
        while end - record >= 16 {
            var captured = record.loadUnaligned(fromByteOffset: 8, as: UInt32.self)
            if order == 2 { captured = captured.byteSwapped }
            let length = Int(captured)
            guard length <= end - record - 16 else { return nil }
            remaining -= 1
            if remaining <= 0 {
                next = record + 16 + length; self.distance = distance
                bufferStart = start; bufferEnd = end
                return ByteView(UnsafeRawBufferPointer(start: record + 16, count: length))
            }
            record += 16 + length
        }
        return nil
    }
}
