import Wire
import CDNP3CRC

// IEEE 1815-2012 §9.2.4.2: every link frame carries a CRC after its 8-byte header and after every
// 16-byte block of user data (the last block may be shorter).
//
//   CRC-16/DNP: width 16, polynomial 0x3D65 (reflected form 0xA6BC), initial value 0x0000,
//   input and output reflected, final XOR 0xFFFF. Sent low byte first.
//   Check value over ASCII "123456789": 0xEA82.
//
// Every frame is CRC'd in full (header and each block), so the CRC is the bulk of a DNP3 frame's cost.
// It is computed eight octets per step ("slicing-by-8"): table k holds the CRC of a byte followed by
// k zero bytes, so the eight octets of a step are looked up independently and XORed, instead of eight
// dependent table lookups. The header (8 octets) is one step, a full block (16) two.

/// The DNP3 link-layer CRC-16 (IEEE 1815-2012 §9.2.4.2), table-driven, eight octets per step.
public enum DNP3CRC {
    /// Whether the CPU multiplies without carries (PCLMULQDQ): then the frame loop's CRCs take two multiplications
    /// per eight octets (`register64`) rather than eight table lookups. Asked once.
    static let carrylessMultiply: Bool = zw_dnp3_clmul_available() != 0

    /// `step8(0, word, _)` by carry-less multiplication; only when `carrylessMultiply`.
    @inline(__always) static func register64(_ word: UInt64) -> UInt16 { zw_dnp3_crc_register64(word) }

    /// Where `DNP3ObjectCatalog.sizeCodes` lies from `slices`, in octets.
    static var sizeCodesOffset: Int { 8 * 256 * 2 }

    /// The reflected polynomial 0x3D65.
    static let reflectedPolynomial: UInt16 = 0xA6BC

    /// One entry per byte value (the classic one-byte table, the first of `slices`).
    static let table: [UInt16] = (0..<256).map { (byte: Int) -> UInt16 in
        var crc = UInt16(byte)
        for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ reflectedPolynomial : crc >> 1 }
        return crc
    }

    /// Eight tables of 256 entries (4 KiB), built once: entry `k * 256 + b` is the CRC register after
    /// byte `b` followed by `k` zero bytes. Never freed, never written after it is built. `DNP3ObjectCatalog.sizeCodes`
    /// follows them in the same block (`sizeCodesOffset`), so that a flow's DNP3 state keeps one pointer for both.
    nonisolated(unsafe) static let slices: UnsafePointer<UInt16> = {
        let block = UnsafeMutableRawPointer.allocate(byteCount: sizeCodesOffset + DNP3ObjectCatalog.sizeCodeCount, alignment: 16)
        DNP3ObjectCatalog.fillSizeCodes((block + sizeCodesOffset).bindMemory(to: UInt8.self, capacity: DNP3ObjectCatalog.sizeCodeCount))
        let p = block.bindMemory(to: UInt16.self, capacity: 8 * 256)
        for b in 0..<256 { p[b] = table[b] }
        for k in 1..<8 {
            for b in 0..<256 {
                let prev = p[(k - 1) * 256 + b]
                p[k * 256 + b] = (prev >> 8) ^ p[Int(prev & 0xFF)]
            }
        }
        return UnsafePointer(p)
    }()

    /// The CRC of `count` bytes of `bytes` starting at `offset` (the caller checks the bounds).
    @inlinable public static func compute(_ bytes: ByteView, from offset: Int, count: Int) -> UInt16 {
        precondition(bytes.has(count, at: offset), "DNP3CRC range out of bounds")
        return computeUnchecked(bytes.raw.baseAddress, from: offset, count: count)
    }

    /// One eight-octet step: the register after `crc` absorbs the little-endian word `word`.
    @inline(__always) static func step8(_ crc: UInt16, _ word: UInt64, _ t: UnsafePointer<UInt16>) -> UInt16 {
        let x = word ^ UInt64(crc)
        return t[7 * 256 + Int(x & 0xFF)] ^ t[6 * 256 + Int((x >> 8) & 0xFF)]
            ^ t[5 * 256 + Int((x >> 16) & 0xFF)] ^ t[4 * 256 + Int((x >> 24) & 0xFF)]
            ^ t[3 * 256 + Int((x >> 32) & 0xFF)] ^ t[2 * 256 + Int((x >> 40) & 0xFF)]
            ^ t[1 * 256 + Int((x >> 48) & 0xFF)] ^ t[Int(x >> 56)]
    }

    /// The CRC register (before the final complement) after `count` bytes at `p`, starting from `crc`.
    @inline(__always) static func register(_ crc: UInt16, _ p: UnsafeRawPointer, count: Int, _ t: UnsafePointer<UInt16>) -> UInt16 {
        var crc = crc, i = 0
        while i + 8 <= count {
            crc = step8(crc, UInt64(littleEndian: p.loadUnaligned(fromByteOffset: i, as: UInt64.self)), t)
            i += 8
        }
        // The tail (most blocks are not a multiple of 8) in at most three steps of 4, 2 and 1 octets: byte by byte,
        // each octet's table load waited for the one before (up to seven dependent loads per block).
        if i + 4 <= count {
            let x = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: i, as: UInt32.self)) ^ UInt32(crc)
            crc = t[3 * 256 + Int(x & 0xFF)] ^ t[2 * 256 + Int((x >> 8) & 0xFF)] ^ t[1 * 256 + Int((x >> 16) & 0xFF)] ^ t[Int(x >> 24)]
            i += 4
        }
        if i + 2 <= count {
            let x = UInt16(littleEndian: p.loadUnaligned(fromByteOffset: i, as: UInt16.self)) ^ crc
            crc = t[1 * 256 + Int(x & 0xFF)] ^ t[Int(x >> 8)]
            i += 2
        }
        if i < count {
            crc = (crc >> 8) ^ t[Int(UInt8(truncatingIfNeeded: crc) ^ p.load(fromByteOffset: i, as: UInt8.self))]
        }
        return crc
    }

    /// The CRC of a raw byte range; `base` may be nil only when `count` is 0.
    @usableFromInline static func computeUnchecked(_ base: UnsafeRawPointer?, from offset: Int, count: Int) -> UInt16 {
        guard let base, count > 0 else { return 0xFFFF }
        return ~register(0, base + offset, count: count, slices)
    }

    /// Whether the CRC stored (little-endian) right after `count` bytes at `offset` matches them.
    @inlinable public static func check(_ bytes: ByteView, from offset: Int, count: Int) -> Bool {
        guard bytes.has(count + 2, at: offset) else { return false }
        return compute(bytes, from: offset, count: count) == bytes.u16le(offset + count)
    }

    /// Copies `count` (1...16) octets from `source` to `destination` and returns whether the CRC stored
    /// right after them at `source` matches: one pass over a user-data block.
    @inline(__always) static func copyBlock(_ source: UnsafeRawPointer, count: Int, to destination: UnsafeMutableRawPointer,
                                            _ t: UnsafePointer<UInt16>) -> Bool {
        let stored = UInt16(littleEndian: source.loadUnaligned(fromByteOffset: count, as: UInt16.self))
        if count == 16 {
            let a = source.loadUnaligned(as: UInt64.self), b = source.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
            destination.storeBytes(of: a, as: UInt64.self)
            destination.storeBytes(of: b, toByteOffset: 8, as: UInt64.self)
            return ~step8(step8(0, UInt64(littleEndian: a), t), UInt64(littleEndian: b), t) == stored
        }
        return ~registerCopying(source, count: count, to: destination, t) == stored
    }

    /// `register(0, source, count: count, t)` for a block shorter than 16 octets, storing each step's octets at
    /// `destination` as it goes: the last block of nearly every frame is short, and copying it took a `memmove` call.
    @inline(__always) static func registerCopying(_ source: UnsafeRawPointer, count: Int, to destination: UnsafeMutableRawPointer,
                                                  _ t: UnsafePointer<UInt16>) -> UInt16 {
        var crc: UInt16 = 0, i = 0
        if count >= 8 {
            let w = source.loadUnaligned(as: UInt64.self)
            destination.storeBytes(of: w, as: UInt64.self)
            crc = step8(crc, UInt64(littleEndian: w), t)
            i = 8
        }
        if i + 4 <= count {
            let w = source.loadUnaligned(fromByteOffset: i, as: UInt32.self)
            destination.storeBytes(of: w, toByteOffset: i, as: UInt32.self)
            let x = UInt32(littleEndian: w) ^ UInt32(crc)
            crc = t[3 * 256 + Int(x & 0xFF)] ^ t[2 * 256 + Int((x >> 8) & 0xFF)] ^ t[1 * 256 + Int((x >> 16) & 0xFF)] ^ t[Int(x >> 24)]
            i += 4
        }
        if i + 2 <= count {
            let w = source.loadUnaligned(fromByteOffset: i, as: UInt16.self)
            destination.storeBytes(of: w, toByteOffset: i, as: UInt16.self)
            let x = UInt16(littleEndian: w) ^ crc
            crc = t[1 * 256 + Int(x & 0xFF)] ^ t[Int(x >> 8)]
            i += 2
        }
        if i < count {
            let b = source.load(fromByteOffset: i, as: UInt8.self)
            destination.storeBytes(of: b, toByteOffset: i, as: UInt8.self)
            crc = (crc >> 8) ^ t[Int(UInt8(truncatingIfNeeded: crc) ^ b)]
        }
        return crc
    }

    /// `copyBlock` by carry-less multiplication (only when `carrylessMultiply`): a block of at most eight octets is one
    /// step, a longer one two. CRC-16/DNP starts from zero, and a zero register stays zero over zero octets, so a
    /// block's CRC is that of the eight or sixteen octets ending where it ends with the ones before it zeroed: the
    /// loads may start up to seven octets before `source`, which lie in the same frame (its header, or the block
    /// before and its CRC). Writes up to eight octets past `count` at `destination` (the scratch buffer has room).
    @inline(__always) static func copyBlockMultiplying(_ source: UnsafeRawPointer, count: Int,
                                                       to destination: UnsafeMutableRawPointer) -> Bool {
        let stored = UInt16(littleEndian: source.loadUnaligned(fromByteOffset: count, as: UInt16.self))
        let last = UInt64(littleEndian: source.loadUnaligned(fromByteOffset: count - 8, as: UInt64.self))
        let crc: UInt16
        if count > 8 {
            destination.storeBytes(of: source.loadUnaligned(as: UInt64.self), as: UInt64.self)
            destination.storeBytes(of: last.littleEndian, toByteOffset: count - 8, as: UInt64.self)
            let lead = UInt64(littleEndian: source.loadUnaligned(fromByteOffset: count - 16, as: UInt64.self))
                & (~0 &<< UInt64(8 * (16 - count)))
            crc = register64(last ^ UInt64(register64(lead)))
        } else {
            destination.storeBytes(of: (last &>> UInt64(8 * (8 - count))).littleEndian, as: UInt64.self)
            crc = register64(last & (~0 &<< UInt64(8 * (8 - count))))
        }
        return ~crc == stored
    }
}
