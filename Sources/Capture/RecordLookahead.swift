import CPcap
import Glibc
import Wire

/// The packets ahead of the current one in a pcap or pcapng file (or standard input), read from the bytes glibc has
/// already buffered for libpcap and not handed over yet (the stream's unread extent: glibc's FILE read pointers, part
/// of its public ABI; libpcap reads both formats through that stream, a block or record at a time). Nothing is copied
/// or consumed: a hint source for prefetching (`PacketSource.upcoming`), so records are not validated beyond staying
/// inside the buffer. A value type, so the dispatch loop keeps it in its own context and steps it without touching
/// the source object (`PacketSource.recordLookahead`).
public struct RecordLookahead {
    /// How the file's records are laid out, as `PacketSource.openFile` found them (a file's first bytes, or how
    /// libpcap read standard input's header).
    @usableFromInline enum Layout: UInt8 {
        /// No lookahead (live capture, the old modified pcap formats in a file).
        case none
        /// Classic pcap: 16-byte record headers, in host byte order or byte-swapped.
        case classic, classicSwapped
        /// pcapng: blocks, in host byte order or byte-swapped (the first section's byte-order magic).
        case pcapng, pcapngSwapped
    }

    /// The stream libpcap reads (nil: no lookahead).
    @usableFromInline var file: UnsafeMutablePointer<FILE>?
    @usableFromInline var layout = Layout.none
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
        guard layout != .none, let fp = file else { return nil }
        guard let readPointer = fp.pointee._IO_read_ptr, let readEnd = fp.pointee._IO_read_end else { return nil }
        let start = UnsafeRawPointer(readPointer), end = UnsafeRawPointer(readEnd)
        var r = start
        // Each answer sets `next` to the record after it (in pcapng the packet's bytes are not the block's end).
        for _ in 1..<max(distance, 1) {
            guard record(at: r, end: end) != nil, let n = next else { next = nil; return nil }
            r = n
        }
        guard let view = record(at: r, end: end) else { next = nil; return nil }
        self.distance = distance; bufferStart = start; bufferEnd = end
        return view
    }

    /// The packet of the record at `r` if it lies whole before `end` (sets `next` to the record after it).
    @inlinable @inline(__always)
    mutating func record(at r: UnsafeRawPointer, end: UnsafeRawPointer) -> ByteView? {
        guard layout.rawValue >= Layout.pcapng.rawValue else {
            guard end - r >= 16 else { return nil }
            var captured = r.loadUnaligned(fromByteOffset: 8, as: UInt32.self)
            if layout == .classicSwapped { captured = captured.byteSwapped }
            let length = Int(captured)
            guard length <= end - r - 16 else { return nil }
            next = r + 16 + length
            return ByteView(UnsafeRawBufferPointer(start: r + 16, count: length))
        }
        return block(at: r, end: end)
    }

    /// How many blocks without a packet (interface descriptions, statistics, name resolution, custom, a new section)
    /// `block(at:end:)` steps over before it gives up on an answer.
    @usableFromInline static let blocksSkipped = 8

    /// The packet of the first pcapng packet block at or after `r` that lies whole before `end` (sets `next` to the
    /// block after it): an enhanced packet block (type 6) or the obsolete packet block (type 2), whose captured length
    /// is at byte 20 and data at 28, or a simple packet block (type 3), data at 12, as much of the original length as
    /// the block holds. Other blocks are stepped over by their total length. Bounds as libpcap reads them: a block
    /// is at least 12 bytes, a multiple of 4. A hint only: a packet whose interface has another link type is answered
    /// all the same.
    @usableFromInline
    mutating func block(at start: UnsafeRawPointer, end: UnsafeRawPointer) -> ByteView? {
        let swapped = layout == .pcapngSwapped
        @inline(__always) func u32(_ p: UnsafeRawPointer, _ offset: Int) -> Int {
            let v = p.loadUnaligned(fromByteOffset: offset, as: UInt32.self)
            return Int(swapped ? v.byteSwapped : v)
        }
        var r = start
        for _ in 0...RecordLookahead.blocksSkipped {
            guard end - r >= 12 else { return nil }
            let type = u32(r, 0), total = u32(r, 4)
            guard total >= 12, total & 3 == 0, total <= end - r else { return nil }
            switch type {
            case 6, 2:
                guard total >= 32 else { return nil }
                let captured = u32(r, 20)
                guard captured <= total - 32 else { return nil }
                next = r + total
                return ByteView(UnsafeRawBufferPointer(start: r + 28, count: captured))
            case 3:
                guard total >= 16 else { return nil }
                next = r + total
                return ByteView(UnsafeRawBufferPointer(start: r + 12, count: min(u32(r, 8), total - 16)))
            default:
                r += total
            }
        }
        return nil
    }
}
