import Wire

// ISO 8073 / ITU-T X.224 connection-oriented transport protocol (COTP), as carried in a TPKT.
// Offsets are from the start of the TPDU (the byte after the TPKT header).
//
//   offset  size  field
//   0       1     LI, length indicator: header bytes after this one (user data excluded)
//   1       1     TPDU code: high nibble = type; CR/CC/AK/RJ carry the credit (CDT) in the low nibble
//
//   CR 0xE_ / CC 0xD_   2 DST-REF, 2 SRC-REF, 1 class+options (class in the high nibble), parameters
//   DR 0x80             2 DST-REF, 2 SRC-REF, 1 reason, parameters
//   DC 0xC0             2 DST-REF, 2 SRC-REF, parameters
//   DT 0xF0  class 0    1 TPDU-NR (bit 8 = EOT)                                 LI = 2
//            class 2-4  2 DST-REF, 1 TPDU-NR (bit 8 = EOT)                      LI = 4
//   ED 0x10             2 DST-REF, 1 ED-TPDU-NR (bit 8 = EOT)
//   AK 0x6_ / RJ 0x5_   2 DST-REF, 1 YR-TU-NR
//   EA 0x20             2 DST-REF, 1 YR-NR
//   ER 0x70             2 DST-REF, 1 reject cause, parameters
//
//   parameter: 1 code, 1 length, value. 0xC0 TPDU size (2^value bytes), 0xC1 calling (source) TSAP,
//   0xC2 called (destination) TSAP, 0xC3 checksum, 0xC4 version, 0xC6 additional options,
//   0xF0 preferred maximum TPDU size. User data follows the header (DT, ED; CR/CC/DR may carry some).

/// COTP TPDU types (X.224 §13, the high nibble of the TPDU code).
enum COTPType: UInt8 {
    case ed = 0x1, ea = 0x2, rj = 0x5, ak = 0x6, er = 0x7, dr = 0x8, dc = 0xC, cc = 0xD, cr = 0xE, dt = 0xF

    /// The type of a TPDU code byte, nil when unknown.
    @inline(__always) init?(code: UInt8) { self.init(rawValue: code >> 4) }

    /// The short name (`CR`, `DT`, ...).
    var name: StaticString {
        switch self {
        case .ed: "ED"
        case .ea: "EA"
        case .rj: "RJ"
        case .ak: "AK"
        case .er: "ER"
        case .dr: "DR"
        case .dc: "DC"
        case .cc: "CC"
        case .cr: "CR"
        case .dt: "DT"
        }
    }

    /// The long name.
    var longName: StaticString {
        switch self {
        case .ed: "Expedited Data"
        case .ea: "Expedited Data Acknowledgement"
        case .rj: "Reject"
        case .ak: "Data Acknowledgement"
        case .er: "TPDU Error"
        case .dr: "Disconnect Request"
        case .dc: "Disconnect Confirm"
        case .cc: "Connection Confirm"
        case .cr: "Connection Request"
        case .dt: "Data"
        }
    }
}

/// One parsed COTP TPDU header: scalars and the offset of its user data.
struct COTPHeader {
    /// The TPDU type.
    var type: COTPType
    /// The raw TPDU code byte.
    var code: UInt8
    /// The length indicator.
    var lengthIndicator: Int
    /// Offset of the user data in the TPDU (1 + LI).
    var userDataOffset: Int
    /// DST-REF, when the TPDU has one.
    var destinationReference: UInt16 = 0
    /// SRC-REF (CR, CC, DR, DC).
    var sourceReference: UInt16 = 0
    /// DT/ED: TPDU number; AK/RJ/EA: the number acknowledged.
    var number: UInt8 = 0
    /// DT/ED: end of TSDU (the last TPDU of a message).
    var endOfTSDU = true
    /// CR/CC: protocol class (0-4); DR: disconnect reason; ER: reject cause.
    var classOrReason: UInt8 = 0
    /// CR/CC: the option bits of the class byte.
    var options: UInt8 = 0
    /// Offset of the variable part (parameters), equal to `userDataOffset` when there are none.
    var parametersOffset: Int

    /// Parses the header of the TPDU in `tpdu` (the TPKT payload). Nil when malformed.
    static func parse(_ tpdu: ByteView) -> COTPHeader? {
        guard tpdu.count >= 2 else { return nil }
        let li = Int(tpdu.u8(0))
        guard li >= 1, 1 + li <= tpdu.count else { return nil }
        let code = tpdu.u8(1)
        guard let type = COTPType(code: code) else { return nil }
        let end = 1 + li
        var h = COTPHeader(type: type, code: code, lengthIndicator: li, userDataOffset: end, parametersOffset: end)
        switch type {
        case .dt:
            if li == 2 {
                let nr = tpdu.u8(2)
                h.number = nr & 0x7F; h.endOfTSDU = nr & 0x80 != 0
            } else {
                guard li >= 4 else { return nil }
                h.destinationReference = tpdu.u16be(2)
                let nr = tpdu.u8(4)
                h.number = nr & 0x7F; h.endOfTSDU = nr & 0x80 != 0
            }
        case .ed:
            guard li >= 4 else { return nil }
            h.destinationReference = tpdu.u16be(2)
            let nr = tpdu.u8(4)
            h.number = nr & 0x7F; h.endOfTSDU = nr & 0x80 != 0
        case .cr, .cc:
            guard li >= 6 else { return nil }
            h.destinationReference = tpdu.u16be(2); h.sourceReference = tpdu.u16be(4)
            h.classOrReason = tpdu.u8(6) >> 4; h.options = tpdu.u8(6) & 0x0F
            h.parametersOffset = 7
        case .dr:
            guard li >= 6 else { return nil }
            h.destinationReference = tpdu.u16be(2); h.sourceReference = tpdu.u16be(4)
            h.classOrReason = tpdu.u8(6)
            h.parametersOffset = 7
        case .dc:
            guard li >= 5 else { return nil }
            h.destinationReference = tpdu.u16be(2); h.sourceReference = tpdu.u16be(4)
            h.parametersOffset = 6
        case .ak, .rj, .ea:
            guard li >= 4 else { return nil }
            h.destinationReference = tpdu.u16be(2); h.number = tpdu.u8(4)
            h.parametersOffset = 5
        case .er:
            guard li >= 4 else { return nil }
            h.destinationReference = tpdu.u16be(2); h.classOrReason = tpdu.u8(4)
            h.parametersOffset = 5
        }
        return h
    }
}

/// One variable-part parameter of a TPDU: its code and value bytes.
struct COTPParameter {
    /// The parameter code (0xC0 TPDU size, 0xC1/0xC2 TSAPs, ...).
    var code: UInt8
    /// The value bytes.
    var value: ByteView
}

/// Walks the variable part `[start, end)` of a TPDU; stops at the first parameter that overruns it.
struct COTPParameterIterator: IteratorProtocol {
    let tpdu: ByteView
    var offset: Int
    let end: Int

    init(_ tpdu: ByteView, header: COTPHeader) {
        self.tpdu = tpdu; offset = header.parametersOffset; end = min(header.userDataOffset, tpdu.count)
    }

    mutating func next() -> COTPParameter? {
        guard offset + 2 <= end else { return nil }
        let code = tpdu.u8(offset), length = Int(tpdu.u8(offset + 1))
        guard offset + 2 + length <= end else { offset = end; return nil }
        let p = COTPParameter(code: code, value: tpdu.slice(from: offset + 2, length: length))
        offset += 2 + length
        return p
    }
}

/// COTP names used in records.
enum COTPNames {
    /// X.224 §13.3.4 table of CR/CC parameter codes.
    static func parameterName(_ code: UInt8) -> StaticString {
        switch code {
        case 0xC0: "tpdu_size"
        case 0xC1: "src_tsap"
        case 0xC2: "dst_tsap"
        case 0xC3: "checksum"
        case 0xC4: "version"
        case 0xC5: "protection"
        case 0xC6: "additional_options"
        case 0xC7: "alternative_classes"
        case 0xF0: "preferred_max_tpdu_size"
        case 0x85: "acknowledge_time"
        case 0x87: "priority"
        case 0xE0: "additional_information"
        default: "unknown"
        }
    }

    /// X.224 §13.5.3 disconnect reasons.
    static func disconnectReason(_ r: UInt8) -> StaticString {
        switch r {
        case 0: "Reason not specified"
        case 1: "Congestion at TSAP"
        case 2: "Session entity not attached to TSAP"
        case 3: "Address unknown"
        case 128: "Normal disconnect initiated by session entity"
        case 129: "Remote transport entity congestion at connect request time"
        case 130: "Connection negotiation failed"
        case 131: "Duplicate source reference"
        case 132: "Mismatched references"
        case 133: "Protocol error"
        case 135: "Reference overflow"
        case 136: "Connection request refused on this network connection"
        case 138: "Header or parameter length invalid"
        default: "Unknown"
        }
    }

    /// X.224 §13.12.3 reject causes of an ER TPDU.
    static func rejectCause(_ c: UInt8) -> StaticString {
        switch c {
        case 0: "Reason not specified"
        case 1: "Invalid parameter code"
        case 2: "Invalid TPDU type"
        case 3: "Invalid parameter value"
        default: "Unknown"
        }
    }

    /// S7 TSAP connection types (first TSAP byte): 1 PG, 2 OP, 3 S7 basic; 0x10+ S7 with routing.
    static func s7ConnectionType(_ b: UInt8) -> StaticString {
        switch b {
        case 0x01: "PG"
        case 0x02: "OP"
        case 0x03: "S7 basic"
        default: "other"
        }
    }
}
