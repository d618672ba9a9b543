import Wire

// IEEE 1815-2012 §9.2.4.2: every link frame carries a CRC after its 8-byte header and after every
// 16-byte block of user data (the last block may be shorter).
//
//   CRC-16/DNP: width 16, polynomial 0x3D65 (reflected form 0xA6BC), initial value 0x0000,
//   input and output reflected, final XOR 0xFFFF. Sent low byte first.
//   Check value over ASCII "123456789": 0xEA82.

/// The DNP3 link-layer CRC-16 (IEEE 1815-2012 §9.2.4.2), table-driven.
public enum DNP3CRC {
    /// The reflected polynomial 0x3D65.
    static let reflectedPolynomial: UInt16 = 0xA6BC

    /// One entry per byte value; built once at start-up (256 × 2 bytes).
    static let table: [UInt16] = (0..<256).map { (byte: Int) -> UInt16 in
        var crc = UInt16(byte)
        for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ reflectedPolynomial : crc >> 1 }
        return crc
    }

    /// The CRC of `count` bytes of `bytes` starting at `offset` (the caller checks the bounds).
    @inlinable public static func compute(_ bytes: ByteView, from offset: Int, count: Int) -> UInt16 {
        precondition(bytes.has(count, at: offset), "DNP3CRC range out of bounds")
        return computeUnchecked(bytes.raw.baseAddress, from: offset, count: count)
    }

    /// The CRC of a raw byte range; `base` may be nil only when `count` is 0.
    @usableFromInline static func computeUnchecked(_ base: UnsafeRawPointer?, from offset: Int, count: Int) -> UInt16 {
        guard let base, count > 0 else { return 0xFFFF }
        var crc: UInt16 = 0
        table.withUnsafeBufferPointer { t in
            for i in offset..<(offset + count) {
                let b = base.load(fromByteOffset: i, as: UInt8.self)
                crc = (crc >> 8) ^ t[Int(UInt8(truncatingIfNeeded: crc) ^ b)]
            }
        }
        return ~crc
    }

    /// Whether the CRC stored (little-endian) right after `count` bytes at `offset` matches them.
    @inlinable public static func check(_ bytes: ByteView, from offset: Int, count: Int) -> Bool {
        guard bytes.has(count + 2, at: offset) else { return false }
        return compute(bytes, from: offset, count: count) == bytes.u16le(offset + count)
    }
}
