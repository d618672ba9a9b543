// Modbus/TCP application data unit (ADU) header: MBAP.
//
// Modbus Messaging on TCP/IP Implementation Guide V1.0b §3.1.3:
//
//   offset  size  field                    rule
//   0       2     transaction identifier   echoed by the server; pairs a response with its request
//   2       2     protocol identifier      0 = Modbus
//   4       2     length                   bytes that follow: unit id + PDU, 2...254 (ADU ≤ 260)
//   6       1     unit identifier          0 = broadcast, 255 = "this device" on TCP
//   7       n     PDU                      function code + data, n = length − 1
//
// Beyond the spec: Schneider UMAS (FC 0x5A) frames run past 254 (PLCs negotiate larger frames for
// program transfer; iti_modicon_test.pcap has length 255), so UMAS is tolerated up to 1024.
import Wire

/// The 7-byte MBAP header in front of every Modbus/TCP PDU.
public struct MBAPHeader: Sendable, Equatable {
    /// Transaction identifier.
    public var transactionID: UInt16
    /// Protocol identifier (0 for Modbus).
    public var protocolID: UInt16
    /// Length of unit id + PDU.
    public var length: UInt16
    /// Unit identifier.
    public var unitID: UInt8

    /// Header size in bytes.
    @inlinable public static var size: Int { 7 }
    /// The spec's largest length (a 260-byte ADU).
    @inlinable public static var maximumLength: UInt16 { 254 }
    /// The largest length accepted for vendor frames (UMAS) that exceed the spec.
    @inlinable public static var toleratedLength: UInt16 { 1024 }

    /// Reads a header at `offset`; nil when fewer than 7 bytes are there.
    @inlinable public init?(_ bytes: ByteView, at offset: Int) {
        guard bytes.has(MBAPHeader.size, at: offset) else { return nil }
        transactionID = bytes.u16be(offset)
        protocolID = bytes.u16be(offset + 2)
        length = bytes.u16be(offset + 4)
        unitID = bytes.u8(offset + 6)
    }

    /// Creates a header from its fields.
    @inlinable public init(transactionID: UInt16, protocolID: UInt16 = 0, length: UInt16, unitID: UInt8) {
        self.transactionID = transactionID; self.protocolID = protocolID; self.length = length; self.unitID = unitID
    }

    /// Header plus PDU.
    @inlinable public var aduLength: Int { Int(length) + 6 }
    /// PDU bytes (function code + data).
    @inlinable public var pduLength: Int { Int(length) - 1 }

    /// Whether `length` is acceptable for a PDU whose function code byte is `functionCode`.
    @inlinable public func lengthFits(functionCode: UInt8) -> Bool {
        let limit = functionCode & 0x7F == FunctionCode.umas.rawValue ? MBAPHeader.toleratedLength : MBAPHeader.maximumLength
        return length >= 2 && length <= limit
    }
}

/// How much an ADU at some offset looks like Modbus: the rule shared by the probe and resynchronisation.
public enum MBAPPlausibility: Sendable, Equatable {
    /// It is a well-formed ADU.
    case plausible
    /// It cannot be one.
    case implausible
    /// The header looks right but the rest has not arrived.
    case incomplete
}

extension MBAPHeader {
    /// Judges the ADU starting at `offset` strictly enough that random bytes do not pass:
    /// protocol id 0 and length 2...254 (UMAS ≤ 1024) always; then either the PDU fits its function's
    /// request or response layout (byte counts included), or the ADU ends exactly where `bytes` end —
    /// nothing but Modbus framing explains a length field that lands precisely on the segment's end,
    /// and real devices do pad fixed layouts (a trailing 0x00 after an MEI request or an exception).
    /// Unassigned function codes (a scanner's FC 0) and exceptions without a defined exception code
    /// never count as fitting, so they pass only by landing exactly on the end.
    public static func plausibility(_ bytes: ByteView, at offset: Int) -> MBAPPlausibility {
        // `loadBE16`/`loadU8`, not `u16be`/`u8`: the probe of every new flow left those calls (about 50 instructions).
        guard bytes.has(4, at: offset) else { return .incomplete }
        if bytes.loadBE16(offset + 2) != 0 { return .implausible }
        guard bytes.has(8, at: offset) else {
            if bytes.has(6, at: offset) {
                let len = bytes.loadBE16(offset + 4)
                if len < 2 || len > MBAPHeader.toleratedLength { return .implausible }
            }
            return .incomplete
        }
        let h = MBAPHeader(transactionID: bytes.loadBE16(offset), protocolID: 0, length: bytes.loadBE16(offset + 4),
                           unitID: bytes.loadU8(offset + 6))
        let fc = bytes.loadU8(offset + 7)
        guard h.lengthFits(functionCode: fc) else { return .implausible }
        guard bytes.has(h.aduLength, at: offset) else { return .incomplete }
        if offset + h.aduLength == bytes.count { return .plausible }
        let pdu = bytes.slice(from: offset + MBAPHeader.size, length: h.pduLength)
        let code = FunctionCode(rawValue: fc)
        if code.category == .unassigned { return .implausible }
        if fc & 0x80 != 0 {
            return pdu.count == 2 && ExceptionCode(rawValue: pdu.u8(1)).isKnown ? .plausible : .implausible
        }
        return ModbusPDU.fitsLayout(pdu) ? .plausible : .implausible
    }
}

extension ByteView {
    // Reads for the per-PDU path, inlined into it: `u16be` and `u8` are the same checked reads, but across the
    // module boundary the optimizer may leave them as calls, which cost more than the read itself.

    /// The byte at `offset` (bounds-checked; traps outside the view).
    @inline(__always) func loadU8(_ offset: Int) -> UInt8 {
        precondition(offset >= 0 && offset < raw.count, "ByteView read out of bounds")
        return raw.load(fromByteOffset: offset, as: UInt8.self)
    }

    /// The big-endian 16-bit value at `offset` (bounds-checked; traps outside the view).
    @inline(__always) func loadBE16(_ offset: Int) -> UInt16 {
        precondition(offset >= 0 && offset <= raw.count - 2, "ByteView read out of bounds")
        return UInt16(bigEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }
}

extension ByteView {
    /// The `length` bytes from `from`, which the caller knows lie inside the view (no clamping to check).
    @inline(__always) func sliceWithin(from: Int, length: Int) -> ByteView {
        ByteView(UnsafeRawBufferPointer(start: raw.baseAddress.map { $0 + from }, count: length))
    }

    /// `slice(from:length:)`, inlined into the per-PDU path.
    @inline(__always) func clampedSlice(from: Int, length: Int) -> ByteView {
        let start = Swift.min(Swift.max(from, 0), raw.count)
        let end = Swift.min(start + Swift.max(length, 0), raw.count)
        return ByteView(UnsafeRawBufferPointer(rebasing: raw[start..<end]))
    }
}
