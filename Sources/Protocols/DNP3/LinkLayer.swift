import Wire

// IEEE 1815-2012 §9.2 (FT3 frame format), little-endian:
//
//   offset  size  field
//   0       2     start octets 0x05 0x64
//   2       1     LENGTH: octets from CONTROL to the end of user data, CRCs excluded (5...255)
//   3       1     CONTROL: DIR(0x80) PRM(0x40) FCB(0x20)/reserved FCV(0x10)/DFC function(0x0F)
//   4       2     DESTINATION address
//   6       2     SOURCE address
//   8       2     header CRC over octets 0..7
//   10      ...   user data (LENGTH - 5 octets) in blocks of 16, each followed by its 2-octet CRC
//
// Frame size on the wire: 10 + n + 2 * ceil(n / 16) with n = LENGTH - 5, at most 292 octets.

/// One DNP3 link-layer header (IEEE 1815-2012 §9.2.4), parsed from its first 10 octets.
public struct DNP3LinkHeader: Sendable, Equatable {
    /// The LENGTH octet.
    public var length: UInt8
    /// The CONTROL octet.
    public var control: UInt8
    /// Destination address.
    public var destination: UInt16
    /// Source address.
    public var source: UInt16
    /// Whether the header CRC matched.
    public var headerCRCOK: Bool

    /// Octets in the fixed header, CRC included.
    public static let headerSize = 10
    /// The largest frame on the wire (LENGTH 255).
    public static let maximumFrameSize = 292
    /// Octets of user data per CRC block.
    public static let blockSize = 16

    /// DIR: set on frames sent by the master.
    @inlinable public var fromMaster: Bool { control & 0x80 != 0 }
    /// PRM: set on primary (initiating) frames.
    @inlinable public var primary: Bool { control & 0x40 != 0 }
    /// FCB (primary frames only).
    @inlinable public var frameCountBit: Bool { control & 0x20 != 0 }
    /// FCV on primary frames, DFC (data flow control) on secondary frames.
    @inlinable public var frameCountValid: Bool { control & 0x10 != 0 }
    /// The link function code (low 4 bits of CONTROL).
    @inlinable public var function: UInt8 { control & 0x0F }
    /// Octets of user data (transport header included) the frame declares.
    @inlinable public var userDataLength: Int { max(0, Int(length) - 5) }
    /// Octets the whole frame occupies on the wire.
    @inlinable public var frameSize: Int { DNP3LinkHeader.frameSize(userDataLength: userDataLength) }

    /// Frame size on the wire for `n` octets of user data.
    @inlinable public static func frameSize(userDataLength n: Int) -> Int { headerSize + n + 2 * ((n + 15) / 16) }

    /// Whether the link function carries transport/application data. Wireshark and real stacks only
    /// look for user data outside RESET_LINK_STATES/ACK (0), REQUEST_LINK_STATUS (9) and LINK_STATUS (11).
    @inlinable public var functionCarriesUserData: Bool {
        let f = function
        return f != 0x00 && f != 0x09 && f != 0x0B
    }

    /// The link function's name (primary or secondary table).
    public var functionName: StaticString { DNP3LinkHeader.functionName(function, primary: primary) }

    /// Creates a header from its fields (tests, crafted frames).
    public init(length: UInt8, control: UInt8, destination: UInt16, source: UInt16, headerCRCOK: Bool = true) {
        self.length = length; self.control = control; self.destination = destination; self.source = source
        self.headerCRCOK = headerCRCOK
    }

    /// Parses the header at `offset`; nil unless 10 octets starting with 0x05 0x64 are there.
    @inlinable public static func parse(_ bytes: ByteView, at offset: Int) -> DNP3LinkHeader? {
        guard bytes.has(headerSize, at: offset), bytes.u8(offset) == 0x05, bytes.u8(offset + 1) == 0x64 else { return nil }
        return DNP3LinkHeader(length: bytes.u8(offset + 2), control: bytes.u8(offset + 3),
                              destination: bytes.u16le(offset + 4), source: bytes.u16le(offset + 6),
                              headerCRCOK: DNP3CRC.check(bytes, from: offset, count: 8))
    }

    /// IEEE 1815-2012 Table 9-1 (primary) and 9-2 (secondary) link function names.
    public static func functionName(_ f: UInt8, primary: Bool) -> StaticString {
        if primary {
            switch f {
            case 0x00: return "RESET_LINK_STATES"
            case 0x01: return "RESET_USER_PROCESS"
            case 0x02: return "TEST_LINK_STATES"
            case 0x03: return "CONFIRMED_USER_DATA"
            case 0x04: return "UNCONFIRMED_USER_DATA"
            case 0x09: return "REQUEST_LINK_STATUS"
            default: return "unknown"
            }
        }
        switch f {
        case 0x00: return "ACK"
        case 0x01: return "NACK"
        case 0x0B: return "LINK_STATUS"
        case 0x0E: return "LINK_NOT_FUNCTIONING"
        case 0x0F: return "LINK_NOT_SUPPORTED"
        default: return "unknown"
        }
    }
}

/// The result of copying a frame's user data out of its CRC blocks.
public struct DNP3UserData: Sendable, Equatable {
    /// Octets copied.
    public var count: Int
    /// Whether every block CRC matched.
    public var crcOK: Bool
    /// Index of the first block whose CRC failed, -1 when none.
    public var badBlock: Int
}

extension DNP3LinkHeader {
    /// Copies the user data of the frame at `offset` (which must be `frameSize` octets long) into
    /// `destination` (at least 250 octets), checking every block CRC. Copying stops at the first bad
    /// block: nothing after it can be trusted.
    public func extractUserData(_ bytes: ByteView, frameAt offset: Int, into destination: UnsafeMutableRawPointer) -> DNP3UserData {
        precondition(bytes.has(frameSize, at: offset), "DNP3 frame not fully available")
        // The bounds were checked once above: each block is CRC'd and copied in one pass over raw memory.
        guard let base = bytes.raw.baseAddress else { return DNP3UserData(count: 0, crcOK: true, badBlock: -1) }
        return copyUserData(frame: base + offset, into: destination, DNP3CRC.slices)
    }

    /// `extractUserData` for the whole frame at `frame`, with the CRC table (`DNP3CRC.slices`) at hand: the frame loop
    /// reads the table once per delivery (each read of the lazy global is a `swift_once` call), and inlines this.
    @_transparent
    func copyUserData(frame: UnsafeRawPointer, into destination: UnsafeMutableRawPointer, _ t: UnsafePointer<UInt16>) -> DNP3UserData {
        var remaining = userDataLength, read = DNP3LinkHeader.headerSize, written = 0, block = 0
        while remaining > 0 {
            let chunk = min(remaining, DNP3LinkHeader.blockSize)
            if !DNP3CRC.copyBlock(frame + read, count: chunk, to: destination + written, t) {
                return DNP3UserData(count: written, crcOK: false, badBlock: block)
            }
            written += chunk; read += chunk + 2; remaining -= chunk; block += 1
        }
        return DNP3UserData(count: written, crcOK: true, badBlock: -1)
    }

    /// Whether every block CRC of the frame at `frame` (whole, with user data) matches, copying its `userDataLength`
    /// octets of user data to `destination` as `copyUserData` does (which they are only when it does), by carry-less
    /// multiplication (`DNP3CRC.copyBlockMultiplying`; only when `DNP3CRC.carrylessMultiply`). Up to eight octets
    /// past the user data at `destination` may be written (at most 256 in all).
    @_transparent
    func copyUserDataMultiplying(frame: UnsafeRawPointer, into destination: UnsafeMutableRawPointer) -> Bool {
        // Every block but the last is 16 octets and its CRC; the last has 1...16.
        var left = userDataLength, source = frame + DNP3LinkHeader.headerSize, target = destination
        while left > DNP3LinkHeader.blockSize {
            if !DNP3CRC.copyBlockMultiplying(source, count: DNP3LinkHeader.blockSize, to: target) { return false }
            source += DNP3LinkHeader.blockSize + 2; target += DNP3LinkHeader.blockSize; left &-= DNP3LinkHeader.blockSize
        }
        return DNP3CRC.copyBlockMultiplying(source, count: left, to: target)
    }

    /// Whether every user-data block CRC of the frame at `offset` matches (the frame must be there).
    public func userDataCRCsOK(_ bytes: ByteView, frameAt offset: Int) -> Bool {
        guard bytes.has(frameSize, at: offset) else { return false }
        var remaining = userDataLength, read = offset + DNP3LinkHeader.headerSize
        while remaining > 0 {
            let chunk = min(remaining, DNP3LinkHeader.blockSize)
            if !DNP3CRC.check(bytes, from: read, count: chunk) { return false }
            read += chunk + 2; remaining -= chunk
        }
        return true
    }
}
