import Wire

/// S7comm value names, transcribed as facts from the public S7 protocol descriptions
/// (Wireshark `packet-s7comm.c` value tables, snap7 and `../shared/reference/protocols.md` §2.3).
/// Every lookup is a switch returning a `StaticString`, so naming allocates nothing.
enum S7Names {
    /// ROSCTR (header byte 1).
    static func rosctr(_ v: UInt8) -> StaticString {
        switch v {
        case 1: "Job"
        case 2: "Ack"
        case 3: "Ack_Data"
        case 7: "Userdata"
        default: "Unknown"
        }
    }

    /// Parameter function codes of Job and Ack_Data PDUs.
    @_transparent   // once per request on the quiet path, whose caller is too big for `@inline(__always)` to be honoured
    static func function(_ f: UInt8) -> StaticString {
        switch f {
        case 0x00: "CPU services"
        case 0x01: "Mode transition"
        case 0x04: "Read Var"
        case 0x05: "Write Var"
        case 0x1A: "Request download"
        case 0x1B: "Download block"
        case 0x1C: "Download ended"
        case 0x1D: "Start upload"
        case 0x1E: "Upload"
        case 0x1F: "End upload"
        case 0x28: "PI-Service"
        case 0x29: "PLC Stop"
        case 0xF0: "Setup communication"
        default: "Unknown"
        }
    }

    /// Header error class of Ack and Ack_Data PDUs.
    static func errorClass(_ c: UInt8) -> StaticString {
        switch c {
        case 0x00: "No error"
        case 0x81: "Application relationship"
        case 0x82: "Object definition"
        case 0x83: "No resources available"
        case 0x84: "Error on service processing"
        case 0x85: "Error on supplies"
        case 0x87: "Access error"
        default: "Unknown"
        }
    }

    /// Error class and code together (header of acks, userdata parameter error code); the common subset.
    static func errorCode(_ c: UInt16) -> StaticString {
        switch c {
        case 0x0000: "No error"
        case 0x0110: "Invalid block number"
        case 0x0111: "Invalid request length"
        case 0x0112: "Invalid parameter"
        case 0x0113: "Invalid block type"
        case 0x0114: "Block not found"
        case 0x0115: "Block already exists"
        case 0x0116: "Block is write-protected"
        case 0x0117: "The block/operating system update is too large"
        case 0x0119: "Incorrect password entered"
        case 0x011C: "Protocol error"
        case 0x0120: "End of block list"
        case 0x0140: "Insufficient memory available"
        case 0x8001: "The requested service cannot be performed while the block is in the current status"
        case 0x8003: "S7 protocol error: Error occurred while transferring the block"
        case 0x8100: "Application, general error: Service unknown to remote module"
        case 0x8104: "This service is not implemented on the module or a frame error was reported"
        case 0x8204: "The type specification for the object is inconsistent"
        case 0x8301: "Insufficient memory space or work memory on the module"
        case 0x8304: "No further parallel upload possible"
        case 0x8305: "Function not available"
        case 0x8401: "S7 protocol error: Invalid service sequence"
        case 0x8402: "Service cannot execute owing to status of the addressed object"
        case 0x8404: "S7 protocol: The function cannot be performed"
        case 0x8500: "S7 protocol error: Wrong frames"
        case 0x8503: "Alarm from the module: Service canceled prematurely"
        case 0x8701: "Error addressing the object on the communications partner"
        case 0x8702: "The requested service is not supported by the module"
        case 0x8703: "Access to object refused"
        case 0x8704: "Access error: Object damaged"
        case 0xD001: "Protocol error: Illegal job number"
        case 0xD002: "Parameter error: Illegal job variant"
        case 0xD041: "Data error: Illegal status list ID"
        case 0xD081: "Function not permitted in current mode"
        case 0xD0A1: "Function not permitted in current protection level"
        case 0xD0A4: "'Forcing' has already been established"
        case 0xD201: "Syntax error in block name"
        case 0xD202: "Syntax error in function parameters"
        case 0xD209: "(At least) one of the given blocks not found on the module"
        case 0xD20E: "No (further) block available"
        case 0xD210: "Invalid block number"
        case 0xD241: "Function not permitted in current protection level"
        case 0xD602: "Incorrect password entered"
        case 0xD604: "Password already cleared"
        default: "Unknown"
        }
    }

    /// Memory area codes of S7ANY addresses.
    static func area(_ a: UInt8) -> StaticString {
        switch a {
        case 0x01: "RECORD"
        case 0x03: "SI200"
        case 0x05: "SF200"
        case 0x06: "AI200"
        case 0x07: "AO200"
        case 0x1C: "C"
        case 0x1D: "T"
        case 0x1E: "C200"
        case 0x1F: "T200"
        case 0x80: "P"
        case 0x81: "I"
        case 0x82: "Q"
        case 0x83: "M"
        case 0x84: "DB"
        case 0x85: "DI"
        case 0x86: "L"
        case 0x87: "V"
        default: "Unknown"
        }
    }

    /// Transport sizes in S7ANY item addresses.
    static func itemTransportSize(_ t: UInt8) -> StaticString {
        switch t {
        case 1: "BIT"
        case 2: "BYTE"
        case 3: "CHAR"
        case 4: "WORD"
        case 5: "INT"
        case 6: "DWORD"
        case 7: "DINT"
        case 8: "REAL"
        case 9: "DATE"
        case 10: "TOD"
        case 11: "TIME"
        case 12: "S5TIME"
        case 15: "DATE_AND_TIME"
        case 28: "COUNTER"
        case 29: "TIMER"
        case 30: "IEC TIMER"
        case 31: "IEC COUNTER"
        case 32: "HS COUNTER"
        default: "Unknown"
        }
    }

    /// Bytes per element of an item transport size (BIT counts one byte per bit read).
    static func elementSize(_ t: UInt8) -> Int {
        switch t {
        case 1, 2, 3: 1
        case 4, 5, 9, 11, 12, 28, 29: 2
        case 6, 7, 8, 10: 4
        case 15: 8
        default: 1
        }
    }

    /// Transport sizes in data items.
    static func dataTransportSize(_ t: UInt8) -> StaticString {
        switch t {
        case 0x00: "NULL"
        case 0x03: "BIT"
        case 0x04: "BYTE/WORD/DWORD"
        case 0x05: "INTEGER"
        case 0x06: "DINTEGER"
        case 0x07: "REAL"
        case 0x09: "OCTET STRING"
        case 0x11: "NCK ADDRESS1"
        case 0x12: "NCK ADDRESS2"
        default: "Unknown"
        }
    }

    /// Syntax ids of variable specifications.
    static func syntaxID(_ s: UInt8) -> StaticString {
        switch s {
        case 0x10: "S7ANY"
        case 0x11: "ParameterShort"
        case 0x12: "ParameterExtended"
        case 0x13: "PBC-R_ID"
        case 0x15: "ALARM_LOCKFREE"
        case 0x16: "ALARM_IND"
        case 0x19: "ALARM_ACK"
        case 0x1A: "ALARM_QUERYREQ"
        case 0x1C: "NOTIFY_IND"
        case 0x82: "NCK"
        case 0x83: "NCK_M"
        case 0x84: "NCK_I"
        case 0xA2: "DRIVEESANY"
        case 0xB0: "DBREAD"
        case 0xB2: "1200SYM"
        default: "Unknown"
        }
    }

    /// Return codes of data items.
    static func returnCode(_ r: UInt8) -> StaticString {
        switch r {
        case 0x00: "Reserved"
        case 0x01: "Hardware error"
        case 0x03: "Accessing the object not allowed"
        case 0x05: "Invalid address"
        case 0x06: "Data type not supported"
        case 0x07: "Data type inconsistent"
        case 0x0A: "Object does not exist"
        case 0xFF: "Success"
        default: "Unknown"
        }
    }

    /// Block types as transferred in ASCII ("0A" = DB) or as one byte (0x0A = DB).
    static func blockType(_ code: UInt8) -> StaticString {
        switch code {
        case 0x08: "OB"
        case 0x09: "CMod"
        case 0x0A: "DB"
        case 0x0B: "SDB"
        case 0x0C: "FC"
        case 0x0D: "SFC"
        case 0x0E: "FB"
        case 0x0F: "SFB"
        default: "Unknown"
        }
    }

    /// The block type code of the two ASCII hex digits `hi lo` ("0A" → 0x0A), nil if not hex.
    static func blockTypeCode(_ hi: UInt8, _ lo: UInt8) -> UInt8? {
        guard let h = hexValue(hi), let l = hexValue(lo) else { return nil }
        return h << 4 | l
    }

    /// Destination file systems of block names.
    static func fileSystem(_ f: UInt8) -> StaticString {
        switch f {
        case UInt8(ascii: "P"): "Passive (copied, but not chained) module"
        case UInt8(ascii: "A"): "Active embedded module"
        case UInt8(ascii: "B"): "Active as well as passive module"
        default: "Unknown"
        }
    }

    /// Userdata type (high nibble of the type/group byte).
    static func userdataType(_ t: UInt8) -> StaticString {
        switch t {
        case 0x0: "push"
        case 0x4: "request"
        case 0x8: "response"
        case 0x3: "nc_push"
        case 0x7: "nc_request"
        case 0xB: "nc_response"
        default: "unknown"
        }
    }

    /// Userdata function groups (low nibble of the type/group byte).
    static func group(_ g: UInt8) -> StaticString {
        switch g {
        case 0x0: "Mode-transition"
        case 0x1: "Programmer commands"
        case 0x2: "Cyclic services"
        case 0x3: "Block functions"
        case 0x4: "CPU functions"
        case 0x5: "Security"
        case 0x6: "PBC BSEND/BRECV"
        case 0x7: "Time functions"
        case 0xF: "NC programming"
        default: "Unknown"
        }
    }

    /// Userdata sub-functions per group.
    static func subfunction(group g: UInt8, _ s: UInt8) -> StaticString {
        switch g {
        case 0x0: return mode(s)
        case 0x1:
            switch s {
            case 0x01: return "Block status"
            case 0x02: return "Variable status"
            case 0x03: return "Output ISTACK"
            case 0x04: return "Output BSTACK"
            case 0x05: return "Output LSTACK"
            case 0x06: return "Time measurement from to"
            case 0x07: return "Force selection"
            case 0x08: return "Modify variable"
            case 0x09: return "Force"
            case 0x0A: return "Breakpoint"
            case 0x0B: return "Exit HOLD"
            case 0x0C: return "Memory reset"
            case 0x0D: return "Disable job"
            case 0x0E: return "Enable job"
            case 0x0F: return "Delete job"
            case 0x10: return "Read job list"
            case 0x11: return "Read job"
            case 0x12: return "Replace job"
            case 0x13: return "Block status v2"
            case 0x16: return "Flash LED"
            default: return "Unknown"
            }
        case 0x2:
            switch s {
            case 0x01: return "Cyclic transfer"
            case 0x04: return "Unsubscribe"
            case 0x05: return "Change driven transfer"
            case 0x07: return "Change driven transfer modify"
            case 0x08: return "RDREC"
            default: return "Unknown"
            }
        case 0x3:
            switch s {
            case 0x01: return "List blocks"
            case 0x02: return "List blocks of type"
            case 0x03: return "Get block info"
            default: return "Unknown"
            }
        case 0x4:
            switch s {
            case 0x01: return "Read SZL"
            case 0x02: return "Message service"
            case 0x03: return "Diagnostic message"
            case 0x05: return "ALARM_8 indication"
            case 0x06: return "NOTIFY indication"
            case 0x07: return "ALARM_8 lock"
            case 0x08: return "ALARM_8 unlock"
            case 0x09: return "SCAN indication"
            case 0x0B: return "ALARM ack"
            case 0x0C: return "ALARM ack indication"
            case 0x0D: return "ALARM lock indication"
            case 0x0E: return "ALARM unlock indication"
            case 0x10: return "AR_SEND indication"
            case 0x11: return "ALARM_SQ indication"
            case 0x12: return "ALARM_S indication"
            case 0x13: return "ALARM query"
            case 0x16: return "NOTIFY_8 indication"
            default: return "Unknown"
            }
        case 0x5:
            switch s {
            case 0x01: return "PLC password"
            case 0x02: return "Clear password"
            default: return "Unknown"
            }
        case 0x7:
            switch s {
            case 0x01: return "Read clock"
            case 0x02: return "Set clock"
            case 0x03: return "Read clock (following)"
            case 0x04: return "Set clock"
            default: return "Unknown"
            }
        case 0xF:
            switch s {
            case 0x01: return "Request download"
            case 0x02: return "Download block"
            case 0x03: return "Continue download"
            case 0x04: return "Download ended"
            case 0x06: return "Start upload"
            case 0x07: return "Upload"
            case 0x08: return "Continue upload"
            default: return "Unknown"
            }
        default:
            return "Unknown"
        }
    }

    /// CPU operating modes (userdata group 0 "current mode", SZL 0x0424).
    static func mode(_ m: UInt8) -> StaticString {
        switch m {
        case 0: "STOP"
        case 1: "Warm Restart"
        case 2: "RUN"
        case 3: "Hot Restart"
        case 4: "HOLD"
        case 6: "Cold Restart"
        case 9: "RUN_R (H-System redundant)"
        case 11: "LINK-UP"
        case 12: "UPDATE"
        default: "Unknown"
        }
    }

    @inline(__always) static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: c - 0x30
        case 0x41...0x46: c - 0x41 + 10
        case 0x61...0x66: c - 0x61 + 10
        default: nil
        }
    }
}

extension ByteView {
    /// Whether the bytes equal `s` (ASCII comparison, no allocation).
    func equals(_ s: StaticString) -> Bool {
        guard s.utf8CodeUnitCount == count else { return false }
        let p = s.utf8Start
        for i in 0..<count where u8(i) != p[i] { return false }
        return true
    }

    /// Whether the bytes start with `s`.
    func hasPrefix(_ s: StaticString) -> Bool {
        guard s.utf8CodeUnitCount <= count else { return false }
        let p = s.utf8Start
        for i in 0..<s.utf8CodeUnitCount where u8(i) != p[i] { return false }
        return true
    }

    /// The bytes with trailing NUL and space padding removed (S7 strings are fixed-width).
    func trimmingPadding() -> ByteView {
        var n = count
        while n > 0, u8(n - 1) == 0 || u8(n - 1) == 0x20 { n -= 1 }
        var s = 0
        while s < n, u8(s) == 0x20 { s += 1 }
        return slice(from: s, length: n - s)
    }

    /// The bytes up to the first NUL.
    func upToNUL() -> ByteView {
        var n = 0
        while n < count, u8(n) != 0 { n += 1 }
        return prefix(n)
    }

    /// Parses unsigned ASCII decimal digits; nil when any byte is not a digit or the view is empty.
    func asciiDecimal() -> Int? {
        guard count > 0, count <= 9 else { return nil }
        var v = 0
        for i in 0..<count {
            let c = u8(i)
            guard c >= 0x30, c <= 0x39 else { return nil }
            v = v * 10 + Int(c - 0x30)
        }
        return v
    }
}
