import Wire

// Read/Write Var items (parameter block of Job 0x04/0x05, after function code and item count):
//
//   offset  size  field
//   0       1     variable specification   0x12
//   1       1     length of the address specification that follows (10 for S7ANY)
//   2       1     syntax id                0x10 S7ANY, 0xB0 DBREAD, 0xB2 1200SYM, 0x82-0x84 NCK, ...
//   S7ANY (0x10):
//   3       1     transport size           1 BIT, 2 BYTE, 4 WORD, ... 28 COUNTER, 29 TIMER
//   4       2     length                   number of elements of that size
//   6       2     DB number                0 outside DBs
//   8       1     area                     0x81 I, 0x82 Q, 0x83 M, 0x84 DB, 0x1C C, 0x1D T, ...
//   9       3     address                  byte address << 3 | bit (timers/counters: the number)
//   DBREAD (0xB0), S7-400:
//   3       1     number of areas, then per area: 1 bytes to read, 2 DB number, 2 start address
//
// Data items (data block of a Write Var Job and of a Read Var Ack_Data):
//
//   0       1     return code              0x00 in requests, 0xFF success, 0x0A object does not exist, ...
//   1       1     transport size           3 BIT, 4 BYTE/WORD/DWORD, 5 INTEGER (length in bits);
//                                          6, 7, 9 (length in bytes)
//   2       2     length
//   4       n     value
//   4+n     0/1   fill byte when n is odd and another item follows
//
// Write Var Ack_Data data block: one return code byte per item.

/// One variable specification of a Read/Write Var (or cyclic) request.
struct S7VarSpec {
    /// Syntax id (0x10 S7ANY, ...).
    var syntaxID: UInt8
    /// Length of the address specification.
    var specLength: Int
    /// S7ANY transport size (0 otherwise).
    var transportSize: UInt8 = 0
    /// S7ANY element count; DBREAD bytes to read.
    var length: Int = 0
    /// DB number (0 outside data blocks).
    var dbNumber: Int = 0
    /// Area code (0x84 DB, ...); 0 when the syntax has none.
    var area: UInt8 = 0
    /// Byte address (S7ANY address >> 3; timer/counter number for T and C).
    var byteAddress: Int = 0
    /// Bit address (S7ANY address & 7).
    var bitAddress: Int = 0
    /// Whether address fields were decoded (S7ANY, DBREAD).
    var hasAddress = false

    /// Bytes the item reads or writes (element count × element size).
    var byteCount: Int { length * S7Names.elementSize(transportSize) }
}

/// Walks the variable specifications of a parameter block from `offset`; stops on the first
/// malformed item (`malformed` tells).
struct S7VarSpecIterator: IteratorProtocol {
    let view: ByteView
    var offset: Int
    var remaining: Int
    /// Whether the walk stopped at a malformed item.
    private(set) var malformed = false

    /// Items start at `offset`; `count` of them are declared.
    init(_ view: ByteView, offset: Int, count: Int) {
        self.view = view; self.offset = offset; remaining = count
    }

    /// Inlined into the item loops (one per Read/Write Var Job), so each spec is built in registers.
    @inline(__always) mutating func next() -> S7VarSpec? {
        guard remaining > 0 else { return nil }
        guard view.has(3, at: offset), view.u8(offset) == 0x12 else { malformed = true; remaining = 0; return nil }
        let len = Int(view.u8(offset + 1))
        guard len >= 1, view.has(2 + len, at: offset) else { malformed = true; remaining = 0; return nil }
        var spec = S7VarSpec(syntaxID: view.u8(offset + 2), specLength: len)
        let b = offset + 2
        switch spec.syntaxID {
        case 0x10 where len >= 10:
            spec.transportSize = view.u8(b + 1)
            spec.length = Int(view.u16be(b + 2))
            spec.dbNumber = Int(view.u16be(b + 4))
            spec.area = view.u8(b + 6)
            let address = Int(view.u8(b + 7)) << 16 | Int(view.u16be(b + 8))
            if spec.area == 0x1C || spec.area == 0x1D || spec.area == 0x1E || spec.area == 0x1F {
                spec.byteAddress = address & 0xFFFF   // timers and counters are addressed by number
            } else {
                spec.byteAddress = address >> 3; spec.bitAddress = address & 7
            }
            spec.hasAddress = true
        case 0xB0 where len >= 7:
            // DBREAD: first of its areas stands for the item.
            spec.transportSize = 2
            spec.length = Int(view.u8(b + 2))
            spec.dbNumber = Int(view.u16be(b + 3))
            spec.byteAddress = Int(view.u16be(b + 5))
            spec.area = 0x84
            spec.hasAddress = true
        default:
            break
        }
        offset += 2 + len
        remaining -= 1
        return spec
    }
}

/// One data item: return code, transport size and value bytes.
struct S7DataItem {
    /// Return code (0xFF success in responses).
    var returnCode: UInt8
    /// Data transport size.
    var transportSize: UInt8
    /// The raw length field.
    var length: Int
    /// The value bytes (clamped to what is present).
    var value: ByteView
    /// Whether the value ran past the data block.
    var truncated: Bool
}

/// Walks data items; `count` is the item count from the parameter block.
struct S7DataItemIterator: IteratorProtocol {
    let view: ByteView
    var offset = 0
    var remaining: Int
    /// Whether the walk stopped at a truncated item.
    private(set) var malformed = false

    init(_ view: ByteView, count: Int) { self.view = view; remaining = count }

    /// Value bytes of a length field: bit-counted for transport sizes 3, 4, 5.
    static func valueBytes(transportSize: UInt8, length: Int) -> Int {
        switch transportSize {
        case 0x03, 0x04, 0x05: (length + 7) / 8
        default: length
        }
    }

    mutating func next() -> S7DataItem? {
        guard remaining > 0 else { return nil }
        guard view.has(1, at: offset) else { malformed = true; remaining = 0; return nil }
        let rc = view.u8(offset)
        // A failed read item may be just the return code plus zeroed size/length, or only 4 bytes.
        guard view.has(4, at: offset) else {
            malformed = true; remaining = 0
            return S7DataItem(returnCode: rc, transportSize: 0, length: 0, value: .empty, truncated: true)
        }
        let ts = view.u8(offset + 1), len = Int(view.u16be(offset + 2))
        let n = S7DataItemIterator.valueBytes(transportSize: ts, length: len)
        let value = view.slice(from: offset + 4, length: n)
        let truncated = value.count < n
        remaining -= 1
        offset += 4 + n
        if n % 2 == 1 && remaining > 0 { offset += 1 }   // fill byte between items
        if truncated { malformed = true; remaining = 0 }
        return S7DataItem(returnCode: rc, transportSize: ts, length: len, value: value, truncated: truncated)
    }
}
