import Wire

// S7comm-plus (protocol id 0x72; S7-1200 and S7-1500), in the user data of a COTP DT message.
// Layout from Thomas Wiens' public S7comm-plus Wireshark plugin (packet-s7comm_plus.c) and the
// captures in ../shared/pcaps/public/s7comm-plus. Offsets from the start of the COTP user data:
//
//   offset  size  field
//   0       1     protocol id              0x72
//   1       1     protocol version         1 V1, 2 V2, 3 V3, 0xFE extended keep-alive, 0xFF keep-alive
//   2       2     data length              bytes after this header up to the trailer
//                                          (0xFF keep-alive instead: 1 sequence number, 1 reserved)
//   4       ..    V3 only: integrity part  1 digest length (0x20), digest (32 bytes, HMAC over the data)
//   ..      ..    data part:
//                   1 opcode               0x31 request, 0x32 response, 0x02 response2, 0x33 notification
//                   2 reserved
//                   2 function code        0x04BB Explore, 0x04CA CreateObject, 0x054C GetMultiVariables, ...
//                   2 reserved
//                   2 sequence number
//                   request:  4 session id, 1 transport flags, request set ...
//                   response: 1 transport flags, response set ...
//                   notification (no function): 4 subscription object id, ...
//                   V2 (S7-1500 firmware < 1.5): requests may end with an integrity id and a trailing
//                   digest (0x20 + 32 bytes) just before the trailer.
//   4+len   4     trailer                  0x72, version, 0x0000
//
// A message larger than one COTP DT is sent as several S7comm-plus frames, each with a header;
// only the last carries the trailer ("the packet has a trailer if more than data-length + 4 bytes
// are present"). The data part is continuous across them, so only the first fragment has an opcode.

/// The header of one S7comm-plus frame.
struct S7PlusFrame {
    /// Protocol version (1, 2, 3, 0xFE, 0xFF).
    var version: UInt8
    /// Declared data length (0 for 0xFF keep-alives).
    var dataLength: Int
    /// Whether the frame ends with a trailer (unfragmented, or the last fragment).
    var hasTrailer: Bool
    /// Whether the trailer bytes are `0x72 version`.
    var trailerValid: Bool
    /// Keep-alive sequence number (version 0xFF).
    var keepAliveSequence: UInt8 = 0
    /// V3 integrity digest length (0 when none).
    var digestLength: Int = 0
    /// Offset where the data part starts (after header and integrity part).
    var dataStart: Int
    /// Offset where the data part ends (the trailer or the end of the bytes).
    var dataEnd: Int

    /// Whether the version carries a data part with opcode and function (V1-V3).
    var hasDataPart: Bool { version >= 1 && version <= 3 }

    /// Parses the header of `p`; nil when it is not an S7comm-plus frame (fewer than 4 bytes or not 0x72).
    static func parse(_ p: ByteView) -> S7PlusFrame? {
        guard p.count >= 4, p.u8(0) == 0x72 else { return nil }
        let version = p.u8(1)
        if version == 0xFF {
            return S7PlusFrame(version: version, dataLength: 0, hasTrailer: false, trailerValid: false,
                               keepAliveSequence: p.u8(2), dataStart: 4, dataEnd: 4)
        }
        let length = Int(p.u16be(2))
        let hasTrailer = p.count > length + 4
        let end = min(p.count, 4 + length)
        var f = S7PlusFrame(version: version, dataLength: length, hasTrailer: hasTrailer,
                            trailerValid: hasTrailer && p.has(2, at: 4 + length) && p.u8(4 + length) == 0x72
                                && p.u8(4 + length + 1) == version,
                            dataStart: 4, dataEnd: end)
        if version == 3, p.count > 4 {
            let digest = Int(p.u8(4))
            f.digestLength = digest
            f.dataStart = min(end, 5 + digest)
        }
        return f
    }
}

/// The first bytes of an S7comm-plus data part.
struct S7PlusDataHeader {
    /// Opcode.
    var opcode: UInt8
    /// Function code (0 for notifications).
    var function: UInt16 = 0
    /// Sequence number.
    var sequence: UInt16 = 0
    /// Session id (requests).
    var sessionID: UInt32?
    /// Transport flags (requests and responses).
    var transportFlags: UInt8?
    /// Subscription object id (notifications).
    var subscriptionID: UInt32?

    /// Whether the opcode is one of the known four.
    var knownOpcode: Bool { opcode == 0x31 || opcode == 0x32 || opcode == 0x33 || opcode == 0x02 }

    /// Parses the data part at `[start, end)` of `p`; nil when not even the opcode is there.
    static func parse(_ p: ByteView, start: Int, end: Int) -> S7PlusDataHeader? {
        let d = p.slice(from: start, length: end - start)
        guard d.count >= 1 else { return nil }
        var h = S7PlusDataHeader(opcode: d.u8(0))
        if h.opcode == 0x33 {
            if d.count >= 5 { h.subscriptionID = d.u32be(1) }
            return h
        }
        guard h.knownOpcode, d.count >= 9 else { return h }
        h.function = d.u16be(3)
        h.sequence = d.u16be(7)
        if h.opcode == 0x31 {
            if d.count >= 13 { h.sessionID = d.u32be(9) }
            if d.count >= 14 { h.transportFlags = d.u8(13) }
        } else if d.count >= 10 {
            h.transportFlags = d.u8(9)
        }
        return h
    }
}

/// S7comm-plus names.
enum S7PlusNames {
    /// Protocol versions.
    static func version(_ v: UInt8) -> StaticString {
        switch v {
        case 1: "V1"
        case 2: "V2"
        case 3: "V3"
        case 0xFE: "Ext. Keep Alive"
        case 0xFF: "Keep Alive"
        default: "Unknown"
        }
    }

    /// Opcodes.
    static func opcode(_ o: UInt8) -> StaticString {
        switch o {
        case 0x31: "Request"
        case 0x32: "Response"
        case 0x33: "Notification"
        case 0x02: "Response2"
        default: "Unknown"
        }
    }

    /// Function codes.
    static func function(_ f: UInt16) -> StaticString {
        switch f {
        case 0x04B1: "Error"
        case 0x04BB: "Explore"
        case 0x04CA: "CreateObject"
        case 0x04D4: "DeleteObject"
        case 0x04F2: "SetVariable"
        case 0x04FC: "GetVariable"
        case 0x0506: "AddLink"
        case 0x051A: "RemoveLink"
        case 0x0524: "GetLink"
        case 0x0542: "SetMultiVariables"
        case 0x054C: "GetMultiVariables"
        case 0x0556: "BeginSequence"
        case 0x0560: "EndSequence"
        case 0x056B: "Invoke"
        case 0x057C: "SetVarSubStreamed"
        case 0x0586: "GetVarSubStreamed"
        case 0x0590: "GetVariablesAddress"
        case 0x059A: "Abort"
        default: "Unknown"
        }
    }
}
