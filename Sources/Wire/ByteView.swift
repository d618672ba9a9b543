/// A borrowed, bounds-checked, read-only view of bytes (a packet, a stream segment, a reassembly buffer).
///
/// It never owns or copies memory: it is valid only as long as the buffer it was made from
/// (for a packet, only inside the libpcap callback). Multi-byte reads are unaligned loads.
/// Every read checks its bounds and traps on a violation; parsers must check `count` first,
/// so a trap means a parser bug (the fuzz targets look for exactly that).
public struct ByteView {
    /// The underlying pointer view.
    public let raw: UnsafeRawBufferPointer

    /// Wraps an existing buffer pointer.
    @inlinable public init(_ raw: UnsafeRawBufferPointer) { self.raw = raw }

    /// An empty view.
    @inlinable public static var empty: ByteView { ByteView(UnsafeRawBufferPointer(start: nil, count: 0)) }

    /// Number of bytes in the view.
    @inlinable public var count: Int { raw.count }
    /// Whether the view is empty.
    @inlinable public var isEmpty: Bool { raw.count == 0 }

    /// The byte at `offset`.
    @inlinable public func u8(_ offset: Int) -> UInt8 {
        precondition(offset >= 0 && offset < raw.count, "ByteView read out of bounds")
        return raw.load(fromByteOffset: offset, as: UInt8.self)
    }

    /// A big-endian 16-bit value at `offset`.
    @inlinable public func u16be(_ offset: Int) -> UInt16 {
        precondition(offset >= 0 && offset + 2 <= raw.count, "ByteView read out of bounds")
        return UInt16(bigEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    /// A little-endian 16-bit value at `offset` (DNP3 is little-endian).
    @inlinable public func u16le(_ offset: Int) -> UInt16 {
        precondition(offset >= 0 && offset + 2 <= raw.count, "ByteView read out of bounds")
        return UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    /// A big-endian 32-bit value at `offset`.
    @inlinable public func u32be(_ offset: Int) -> UInt32 {
        precondition(offset >= 0 && offset + 4 <= raw.count, "ByteView read out of bounds")
        return UInt32(bigEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    /// A little-endian 32-bit value at `offset`.
    @inlinable public func u32le(_ offset: Int) -> UInt32 {
        precondition(offset >= 0 && offset + 4 <= raw.count, "ByteView read out of bounds")
        return UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    /// A big-endian 64-bit value at `offset`.
    @inlinable public func u64be(_ offset: Int) -> UInt64 {
        precondition(offset >= 0 && offset + 8 <= raw.count, "ByteView read out of bounds")
        return UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    /// A little-endian 64-bit value at `offset`.
    @inlinable public func u64le(_ offset: Int) -> UInt64 {
        precondition(offset >= 0 && offset + 8 <= raw.count, "ByteView read out of bounds")
        return UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    /// The sub-view `[from, from+length)`, clamped to the bytes that exist.
    @inlinable public func slice(from: Int, length: Int) -> ByteView {
        let start = Swift.min(Swift.max(from, 0), raw.count)
        let end = Swift.min(start + Swift.max(length, 0), raw.count)
        return ByteView(UnsafeRawBufferPointer(rebasing: raw[start..<end]))
    }

    /// The sub-view from `from` to the end.
    @inlinable public func suffix(from: Int) -> ByteView { slice(from: from, length: raw.count - from) }

    /// `suffix(from:)` for a reader that has checked `from` is within the view (0...count): no clamping, which as a
    /// call of `slice` cost ~26 instructions where a packet's frame is taken from inside a mirror or a tag.
    @inlinable @inline(__always) public func suffix(uncheckedFrom from: Int) -> ByteView {
        ByteView(UnsafeRawBufferPointer(start: raw.baseAddress.map { $0 + from }, count: raw.count - from))
    }

    /// The first `length` bytes.
    @inlinable public func prefix(_ length: Int) -> ByteView { slice(from: 0, length: length) }

    /// Whether `length` bytes are readable at `offset`.
    @inlinable public func has(_ length: Int, at offset: Int) -> Bool {
        offset >= 0 && length >= 0 && offset <= raw.count - length
    }
}

extension ByteView {
    /// Runs `body` with a view of `bytes` (tests, fuzz targets and crafted inputs).
    @inlinable public static func with<R>(_ bytes: [UInt8], _ body: (ByteView) throws -> R) rethrows -> R {
        try bytes.withUnsafeBytes { try body(ByteView($0)) }
    }
}
