import Wire

// Parameter blocks of Job (1) and Ack_Data (3) PDUs, by function code (offsets in the parameter block):
//
// 0xF0 Setup communication   0 func, 1 reserved, 2 max AmQ calling (2), 4 max AmQ called (2), 6 PDU size (2)
// 0x04/0x05 Read/Write Var   0 func, 1 item count, 2 items (Job, see S7Items.swift); Ack_Data: 0 func, 1 count
// 0x1A-0x1F block transfer (Job; 0x1B and 0x1C Jobs are sent by the PLC during a download):
//                            0 func, 1 function status (bit 0: more data follows), 2 unknown (2),
//                            4 upload/session id (4), 8 file name length, 9 file name
//                            (0x1E/0x1F Jobs stop after the id). File name: '_' (complete module) or '$',
//                            block type as 2 ASCII hex digits ("0A" = DB), number as 5 ASCII digits,
//                            destination file system 'P'/'A'/'B' — e.g. "_0A00001P" is DB1, passive.
//                            0x1A adds: part-2 length (1), '1', load memory length (6 ASCII), MC7 length (6 ASCII).
//                            Ack_Data 0x1D: 0 func, 1 status, 2 unknown (2), 4 upload id (4), 8 length of
//                            the block-length string, 9 block length (ASCII). Ack_Data 0x1B/0x1E: 0 func,
//                            1 status; data block: 2 length, 2 unknown (0x00FB), block bytes.
// 0x28 PI service (Job)      0 func, 1 unknown (7), 8 parameter-block length (2), 10 parameter block,
//                            then 1 service-name length, service name ("_INSE", "P_PROGRAM", ...).
//                            _INSE/_INS2/_DELE parameter block: 1 number of blocks, 1 unknown, then 8 bytes
//                            per block: type (2 ASCII), number (5 ASCII), file system (1 ASCII).
//                            Other services: the parameter block is an ASCII argument string.
// 0x29 PLC Stop (Job)        0 func, 1 unknown (5), 6 service-name length, service name ("P_PROGRAM").

/// Setup communication parameters (function 0xF0).
struct S7SetupCommunication {
    /// Max parallel jobs with ack, calling side.
    var maxAmQCalling: Int
    /// Max parallel jobs with ack, called side.
    var maxAmQCalled: Int
    /// Negotiated (requested or granted) PDU size.
    var pduSize: Int

    /// Parses a 0xF0 parameter block; nil when shorter than 8 bytes.
    static func parse(_ p: ByteView) -> S7SetupCommunication? {
        guard p.count >= 8 else { return nil }
        return S7SetupCommunication(maxAmQCalling: Int(p.u16be(2)), maxAmQCalled: Int(p.u16be(4)), pduSize: Int(p.u16be(6)))
    }
}

/// A block name as used in block transfer and PI services: type, number, file system.
struct S7BlockName {
    /// Block type code (0x08 OB, 0x0A DB, ...), nil when the ASCII type is not hex.
    var typeCode: UInt8?
    /// Block number, nil when the ASCII number is not decimal.
    var number: Int?
    /// Destination file system character ('P', 'A', 'B'), 0 when absent.
    var fileSystem: UInt8
    /// File identifier ('_' complete module, '$' header for uploading), 0 when absent.
    var fileIdentifier: UInt8
    /// The raw name bytes.
    var raw: ByteView

    /// Parses a 9-byte file name (`_0A00001P`) or an 8-byte block name without identifier (`0A00001P`).
    static func parse(_ v: ByteView, hasIdentifier: Bool) -> S7BlockName {
        let o = hasIdentifier ? 1 : 0
        var n = S7BlockName(typeCode: nil, number: nil, fileSystem: 0,
                            fileIdentifier: hasIdentifier && v.count > 0 ? v.u8(0) : 0, raw: v)
        if v.count >= o + 2 { n.typeCode = S7Names.blockTypeCode(v.u8(o), v.u8(o + 1)) }
        if v.count >= o + 7 { n.number = v.slice(from: o + 2, length: 5).asciiDecimal() }
        if v.count >= o + 8 { n.fileSystem = v.u8(o + 7) }
        return n
    }
}

/// Block upload/download parameters (functions 0x1A-0x1F).
struct S7BlockTransfer {
    /// The function code.
    var function: UInt8
    /// Function status byte (bit 0: more data follows).
    var status: UInt8
    /// Upload / session id, when present.
    var uploadID: UInt32?
    /// The block named, when present.
    var block: S7BlockName?
    /// 0x1A: load memory length; 0x1D Ack_Data: block length (ASCII decimal).
    var loadMemoryLength: Int?
    /// 0x1A: MC7 code length.
    var mc7Length: Int?

    /// Whether more data follows (status bit 0).
    var moreDataFollows: Bool { status & 0x01 != 0 }

    /// Parses a Job's or Ack_Data's parameter block for 0x1A-0x1F.
    static func parse(_ p: ByteView, rosctr: UInt8) -> S7BlockTransfer? {
        guard p.count >= 2 else { return nil }
        let f = p.u8(0)
        var t = S7BlockTransfer(function: f, status: p.u8(1))
        guard p.count >= 8 else { return t }
        if rosctr == 1 || f == 0x1D { t.uploadID = p.u32be(4) }
        guard p.count >= 9 else { return t }
        let nameLength = Int(p.u8(8))
        let name = p.slice(from: 9, length: nameLength)
        if rosctr == 1 {
            if name.count >= 1 {
                t.block = S7BlockName.parse(name, hasIdentifier: true)
            }
            // Request download: part 2 = '1', load memory length (6), MC7 length (6).
            let part2At = 9 + nameLength
            if f == 0x1A, p.count > part2At {
                let part2 = p.slice(from: part2At + 1, length: Int(p.u8(part2At)))
                if part2.count >= 13 {
                    t.loadMemoryLength = part2.slice(from: 1, length: 6).asciiDecimal()
                    t.mc7Length = part2.slice(from: 7, length: 6).asciiDecimal()
                }
            }
        } else if f == 0x1D {
            t.loadMemoryLength = name.asciiDecimal()   // Ack_Data of start upload: block length
        }
        return t
    }
}

/// PI service (function 0x28) and PLC stop (0x29) parameters.
struct S7PIService {
    /// The service name bytes (`_INSE`, `P_PROGRAM`, ...), empty when absent.
    var name: ByteView
    /// The parameter block (block list or argument string).
    var parameterBlock: ByteView
    /// Whether the parameter block is a block list (`_INSE`, `_INS2`, `_DELE`).
    var hasBlockList: Bool

    /// Whether the layout was not the standard one and the name was recognised at the end instead.
    var nonstandardLayout = false

    /// Parses a Job's 0x28 or 0x29 parameter block; nil when too short for the name.
    static func parse(_ p: ByteView) -> S7PIService? {
        guard p.count >= 1 else { return nil }
        if p.u8(0) == 0x29 {
            guard p.count >= 7 else { return nil }
            return S7PIService(name: p.slice(from: 7, length: Int(p.u8(6))), parameterBlock: .empty, hasBlockList: false)
        }
        guard p.count >= 10 else { return trailingKnownName(p) }
        let blockLength = Int(p.u16be(8))
        let nameAt = 10 + blockLength
        guard p.count > nameAt, Int(p.u8(nameAt)) > 0, nameAt + 1 + Int(p.u8(nameAt)) <= p.count else {
            // The lengths do not add up (tshark calls it malformed); python-snap7 3.x, for one, sends
            // block deletes this way. A known service name at the very end still tells what was asked.
            return trailingKnownName(p) ?? S7PIService(name: .empty, parameterBlock: p.slice(from: 10, length: blockLength), hasBlockList: false)
        }
        let block = p.slice(from: 10, length: blockLength)
        let name = p.slice(from: nameAt + 1, length: Int(p.u8(nameAt)))
        let list = name.equals("_INSE") || name.equals("_INS2") || name.equals("_DELE")
        return S7PIService(name: name, parameterBlock: block, hasBlockList: list)
    }

    /// A PLC service name (`_DELE`, `_INSE`, ...) that ends the parameter block, nil when none does.
    static func trailingKnownName(_ p: ByteView) -> S7PIService? {
        for n in 5...9 where p.count >= n {
            let tail = p.suffix(from: p.count - n)
            if tail.equals("_INSE") || tail.equals("_INS2") || tail.equals("_DELE") || tail.equals("_MODU")
                || tail.equals("_GARB") || tail.equals("P_PROGRAM") {
                return S7PIService(name: tail, parameterBlock: .empty, hasBlockList: false, nonstandardLayout: true)
            }
        }
        return nil
    }

    /// Number of blocks in a block list.
    var blockCount: Int { hasBlockList && parameterBlock.count >= 1 ? Int(parameterBlock.u8(0)) : 0 }

    /// The `i`-th block of a block list, nil when out of range.
    func block(_ i: Int) -> S7BlockName? {
        let at = 2 + 8 * i
        guard hasBlockList, i < blockCount, parameterBlock.has(8, at: at) else { return nil }
        return S7BlockName.parse(parameterBlock.slice(from: at, length: 8), hasIdentifier: false)
    }

    /// The service's code for `Operation.subfunction`: its first four name bytes, big-endian
    /// (`_DELE` → 0x5F44454C), the convention Detection's operation rules read.
    static func code(_ name: ByteView) -> Int32 {
        var v: UInt32 = 0
        for i in 0..<4 { v = v << 8 | UInt32(i < name.count ? name.u8(i) : 0) }
        return Int32(bitPattern: v)
    }

    /// The operation name of a service: "PI-Service <name>" for the known PLC services.
    static func operationName(_ name: ByteView) -> StaticString {
        if name.equals("_INSE") { return "PI-Service _INSE" }
        if name.equals("_INS2") { return "PI-Service _INS2" }
        if name.equals("_DELE") { return "PI-Service _DELE" }
        if name.equals("P_PROGRAM") { return "PI-Service P_PROGRAM" }
        if name.equals("_MODU") { return "PI-Service _MODU" }
        if name.equals("_GARB") { return "PI-Service _GARB" }
        if name.equals("_N_LOGIN_") { return "PI-Service _N_LOGIN_" }
        if name.equals("_N_LOGOUT") { return "PI-Service _N_LOGOUT" }
        return "PI-Service"
    }

    /// Description of a known service name (Wireshark's PI service table).
    static func describe(_ name: ByteView) -> StaticString {
        if name.equals("_INSE") || name.equals("_INS2") { return "Activates a PLC module" }
        if name.equals("_DELE") { return "Removes module from the PLC's passive file system" }
        if name.equals("P_PROGRAM") { return "PLC Start / Stop" }
        if name.equals("_MODU") { return "PLC Copy Ram to Rom" }
        if name.equals("_GARB") { return "Compress PLC memory" }
        if name.equals("_N_LOGIN_") { return "Login" }
        if name.equals("_N_LOGOUT") { return "Logout" }
        if name.equals("_N_NEWPWD") { return "New password" }
        if name.equals("_N_CANCEL") { return "Cancels NC alarm" }
        if name.equals("_N_SELECT") { return "Selects program for execution" }
        if name.equals("_N_F_DELE") { return "Deletes file" }
        if name.equals("_N_F_OPEN") { return "Opens file" }
        if name.equals("_N_F_CLOS") { return "Closes file" }
        if name.equals("_N_F_COPY") { return "Copies file within the NCK" }
        if name.equals("_N_F_RENA") { return "Renames file" }
        if name.equals("_N_F_XFER") { return "Selects file for uploading" }
        if name.hasPrefix("_N_") { return "Sinumerik NC service" }
        return "Unknown"
    }
}
