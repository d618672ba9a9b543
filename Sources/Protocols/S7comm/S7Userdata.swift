import Wire
import Records

// Userdata (ROSCTR 7) parameter block (offsets in the parameter block):
//
//   offset  size  field
//   0       3     parameter head          0x000112 (0x010010 on mode-transition pushes)
//   3       1     parameter length        4, or 8 with the extended fields below
//   4       1     method / syntax id      0x11 (request form), 0x12 (response/extended form), 0x00 (push)
//   5       1     type | function group   high nibble: 0 push, 4 request, 8 response (3/7/11 NC forms);
//                                         low nibble: 0 mode transition, 1 programmer, 2 cyclic,
//                                         3 block, 4 CPU, 5 security, 6 PBC BSEND, 7 time, 15 NC
//   6       1     sub-function            per group (S7Names.subfunction); group 0: the new CPU mode
//   7       1     sequence number
//   8       1     data unit reference     extended form: fragments of one message share it
//   9       1     last data unit          0x00 yes, 0x01 no (more fragments follow)
//   10      2     error code              class and code, as in Ack headers
//
// Userdata data block:
//
//   0       1     return code             0xFF success, 0x0A object does not exist, ...
//   1       1     transport size          0x09 octet string, ...
//   2       2     length of what follows
//   4       n     payload                 SZL (S7SZL.swift), clock, block lists, cyclic items, ...
//
// Cyclic services request payload: 2 item count, 1 interval timebase (0 100 ms, 1 s, 2 10 s),
// 1 interval factor, items as in Read Var (S7Items.swift). Responses and pushes: 2 item count,
// data items. Time functions payload: a 10-byte S7 timestamp (BCD: reserved, year high, year low,
// month, day, hour, minute, second, milliseconds in 3 nibbles and the weekday in the last nibble).
// Block functions: list blocks response: 4-byte entries (2 ASCII type, 2 count); list of type
// request: 2 ASCII type; response: 4-byte entries (2 number, 1 flags, 1 language); block info request:
// 2 ASCII type, 5 ASCII number, 1 file system.

/// A userdata parameter block.
struct S7UserdataParameters {
    /// Parameter head (0x000112 normally).
    var head: UInt32
    /// Method / syntax byte.
    var method: UInt8
    /// Type nibble: 0 push, 4 request, 8 response.
    var type: UInt8
    /// Function group nibble.
    var group: UInt8
    /// Sub-function.
    var subfunction: UInt8
    /// Sequence number.
    var sequence: UInt8
    /// Whether the extended fields are present.
    var extended: Bool
    /// Data unit reference (extended form).
    var dataUnitReference: UInt8 = 0
    /// Last data unit: true unless the extended form says more fragments follow.
    var lastDataUnit = true
    /// Error code (extended form).
    var errorCode: UInt16 = 0

    /// Whether this is a request (plain or NC form).
    var isRequest: Bool { type == 0x4 || type == 0x7 }
    /// Whether this is a response (plain or NC form).
    var isResponse: Bool { type == 0x8 || type == 0xB }
    /// Whether this is a push / indication.
    var isPush: Bool { type == 0x0 || type == 0x3 }

    /// Parses a userdata parameter block; nil when shorter than 8 bytes.
    static func parse(_ p: ByteView) -> S7UserdataParameters? {
        guard p.count >= 8 else { return nil }
        let tg = p.u8(5)
        var u = S7UserdataParameters(head: UInt32(p.u8(0)) << 16 | UInt32(p.u16be(1)), method: p.u8(4),
                                     type: tg >> 4, group: tg & 0x0F, subfunction: p.u8(6), sequence: p.u8(7),
                                     extended: p.count >= 12 && p.u8(3) >= 8)
        if u.extended {
            u.dataUnitReference = p.u8(8)
            u.lastDataUnit = p.u8(9) == 0
            u.errorCode = p.u16be(10)
        }
        return u
    }
}

/// The 4-byte head of a userdata data block and its payload.
struct S7UserdataData {
    /// Return code.
    var returnCode: UInt8
    /// Transport size.
    var transportSize: UInt8
    /// Declared payload length.
    var length: Int
    /// The payload (clamped to what is present).
    var payload: ByteView

    /// Parses a data block; nil when shorter than 4 bytes.
    static func parse(_ d: ByteView) -> S7UserdataData? {
        guard d.count >= 4 else { return nil }
        let len = Int(d.u16be(2))
        return S7UserdataData(returnCode: d.u8(0), transportSize: d.u8(1), length: len, payload: d.slice(from: 4, length: len))
    }
}

/// A BCD S7 timestamp (time functions, diagnostic buffer entries).
struct S7Timestamp {
    var year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int, millisecond: Int, weekday: Int

    /// Parses the 10-byte clock payload (reserved byte first); nil when short or not BCD.
    static func parse(_ v: ByteView, at o: Int = 0) -> S7Timestamp? {
        guard v.has(10, at: o) else { return nil }
        func bcd(_ b: UInt8) -> Int? {
            let hi = b >> 4, lo = b & 0x0F
            guard hi <= 9, lo <= 9 else { return nil }
            return Int(hi) * 10 + Int(lo)
        }
        guard let y1 = bcd(v.u8(o + 1)), let y2 = bcd(v.u8(o + 2)), let mo = bcd(v.u8(o + 3)), let d = bcd(v.u8(o + 4)),
              let h = bcd(v.u8(o + 5)), let mi = bcd(v.u8(o + 6)), let s = bcd(v.u8(o + 7)),
              let msHi = bcd(v.u8(o + 8)) else { return nil }
        let last = v.u8(o + 9)
        guard last >> 4 <= 9 else { return nil }
        // Year byte 1 is the century when set (19/20); otherwise 00-89 means 20xx.
        let year = y1 > 0 ? y1 * 100 + y2 : (y2 < 90 ? 2000 + y2 : 1900 + y2)
        return S7Timestamp(year: year, month: mo, day: d, hour: h, minute: mi, second: s,
                           millisecond: msHi * 10 + Int(last >> 4), weekday: Int(last & 0x0F))
    }

    /// Writes `YYYY-MM-DDThh:mm:ss.mmm` as a JSON string value without allocating.
    func write(to j: inout JSONWriter) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 23) { b in
            func put(_ v: Int, _ at: Int, _ digits: Int) {
                var x = max(0, v)
                for i in stride(from: digits - 1, through: 0, by: -1) { b[at + i] = UInt8(ascii: "0") &+ UInt8(x % 10); x /= 10 }
            }
            put(year, 0, 4); b[4] = UInt8(ascii: "-"); put(month, 5, 2); b[7] = UInt8(ascii: "-"); put(day, 8, 2)
            b[10] = UInt8(ascii: "T"); put(hour, 11, 2); b[13] = UInt8(ascii: ":"); put(minute, 14, 2)
            b[16] = UInt8(ascii: ":"); put(second, 17, 2); b[19] = UInt8(ascii: "."); put(millisecond, 20, 3)
            j.string(bytes: ByteView(UnsafeRawBufferPointer(b)))
        }
    }
}
