import Wire
import Records

// SZL (System-Zustandsliste, system status list) reads: userdata group 4, sub-function 1.
// Offsets in the userdata payload (after the 4-byte data head, see S7Userdata.swift):
//
//   request:   0 SZL id (2), 2 SZL index (2)
//   response:  0 SZL id (2), 2 SZL index (2), 4 entry length (2), 6 entry count (2), 8 entries
//
// SZL id: bits 15-12 module class, 11-8 extract number, 7-0 partial list number (names below are by
// the partial list number). Entries decoded here (Siemens "System Software for S7-300/400, System
// and Standard Functions", SZL chapter; layouts cross-checked with snap7 and public captures):
//
//   xy11 module identification, 28-byte entries:
//        0 index (1 module, 6 basic hardware, 7 basic firmware), 2 order number (MLFB, 20 ASCII),
//        22 module type (2), 24 Ausbg (2), 26 Ausbe (2). Firmware: Ausbg = 'V' major, Ausbe = minor patch;
//        hardware: Ausbe = revision.
//   xy1C component identification, 34-byte entries: 0 index, 2 text (32, NUL-padded):
//        1 automation system (PLC) name, 2 module name, 3 plant designation, 4 copyright,
//        5 serial number, 7 module type name, 8 memory card serial, 9 manufacturer/profile (binary),
//        10 OEM id (binary), 11 location designation.
//   xy24 modes, 20-byte entries: 0 event id (2), 2 ae, 3 bzu-id (low nibble = current mode: 4 STOP,
//        8 RUN, 0xA HOLD, ...).
//   xy32 communication status, index 4 (protection), entries: 0 index, 2 protection level
//        (1 none, 2 write-protected, 3 read/write-protected), 4 sch_par, 6 sch_rel, 8 mode selector
//        (1 RUN, 2 RUN-P, 3 STOP, 4 MRES), 10 factory protection.
//   0131  communication capability, index 1: 0 index, 2 max PDU size, 4 max connections.

/// SZL names and payload decoders.
enum S7SZL {
    /// The name of an SZL id, by its partial list number.
    static func name(_ id: UInt16) -> StaticString {
        switch id & 0xFF {
        case 0x00: "List of all the SZL-IDs of a module"
        case 0x11: "Module identification"
        case 0x12: "CPU characteristics"
        case 0x13: "User memory areas"
        case 0x14: "System areas"
        case 0x15: "Block types"
        case 0x16: "Priority classes"
        case 0x17: "List of the permitted SDBs with a number < 1000"
        case 0x18: "Maximum S7-300 I/O configuration"
        case 0x19: "Status of the module LEDs"
        case 0x1C: "Component Identification"
        case 0x21: "Interrupt / error assignment"
        case 0x22: "Interrupt status"
        case 0x23: "Priority classes"
        case 0x24: "Modes"
        case 0x25: "Assignment between process image partitions and OBs"
        case 0x31: "Communication capability parameters"
        case 0x32: "Communication status data"
        case 0x33: "Diagnostics: device logon list"
        case 0x37: "Ethernet - Details of a Module"
        case 0x71: "H CPU group information"
        case 0x74: "Status of the module LEDs"
        case 0x75: "Switched DP slaves in the H-system"
        case 0x81: "Start information list"
        case 0x82: "Start event list"
        case 0x91: "Module status information"
        case 0x92: "Rack / station status information"
        case 0x94: "Rack / station status information"
        case 0x95: "Extended DP master system information"
        case 0x96: "Module status information, PROFINET IO and PROFIBUS DP"
        case 0xA0: "Diagnostic buffer of the CPU"
        case 0xB1: "Module diagnostic information (data record 0)"
        case 0xB2: "Module diagnostic information (data record 1), geographical address"
        case 0xB3: "Module diagnostic information (data record 1), logical address"
        case 0xB4: "Diagnostic data of a DP slave"
        default: "Unknown"
        }
    }

    /// Names of module identification indices.
    static func moduleIndexName(_ i: UInt16) -> StaticString {
        switch i {
        case 0x0001: "Module identification"
        case 0x0006: "Basic hardware"
        case 0x0007: "Basic firmware"
        case 0x0081: "Firmware extension"
        default: "Unknown"
        }
    }

    /// Record keys of component identification indices.
    static func componentKey(_ i: UInt16) -> StaticString? {
        switch i {
        case 1: "plc_name"
        case 2: "module_name"
        case 3: "plant_identification"
        case 4: "copyright"
        case 5: "serial_number"
        case 7: "module_type_name"
        case 8: "memory_card_serial"
        case 9: "manufacturer_profile"
        case 10: "oem_id"
        case 11: "location"
        default: nil
        }
    }

    /// Current-mode names of the bzu-id nibble in SZL xy24.
    static func operatingMode(_ m: UInt8) -> StaticString {
        switch m {
        case 0x1: "STOP (update)"
        case 0x2: "STOP (memory reset)"
        case 0x3: "STOP (self initialization)"
        case 0x4: "STOP"
        case 0x5: "STARTUP (complete restart)"
        case 0x6: "STARTUP (cold restart)"
        case 0x7: "STARTUP (restart)"
        case 0x8: "RUN"
        case 0x9: "RUN (redundant)"
        case 0xA: "HOLD"
        case 0xD: "DEFECT"
        default: "Unknown"
        }
    }

    /// SZL id and index of a request or response payload, nil when shorter than 4 bytes.
    static func idAndIndex(_ payload: ByteView) -> (id: UInt16, index: UInt16)? {
        guard payload.count >= 4 else { return nil }
        return (payload.u16be(0), payload.u16be(2))
    }

    /// Writes the decoded content of a (complete) SZL response payload as the fields of an open
    /// JSON object: entry length and count, then the known per-list decodings.
    static func writeResponse(_ payload: ByteView, to j: inout JSONWriter) {
        guard payload.count >= 8 else { return }
        let id = payload.u16be(0), index = payload.u16be(2)
        let entryLength = Int(payload.u16be(4)), entryCount = Int(payload.u16be(6))
        j.field("entry_length", entryLength)
        j.field("entry_count", entryCount)
        let entries = payload.suffix(from: 8)
        guard entryLength > 0 else { return }
        let available = min(entryCount, entries.count / entryLength)
        if available < entryCount { j.field("entries_truncated", true) }
        switch id & 0xFF {
        case 0x11 where entryLength >= 22:
            j.key("module_identification"); j.beginArray()
            for i in 0..<available {
                let e = entries.slice(from: i * entryLength, length: entryLength)
                let idx = e.u16be(0)
                j.beginObject()
                j.field("index", Int(idx))
                j.field("name", moduleIndexName(idx))
                let mlfb = e.slice(from: 2, length: 20).trimmingPadding()
                if mlfb.count > 0 { j.key("order_number"); j.string(bytes: mlfb) }
                if e.count >= 28 {
                    let ausbg = e.u16be(24), ausbe = e.u16be(26)
                    if ausbg >> 8 == 0x56 {   // 'V': a firmware version V x.y.z
                        j.key("version"); writeVersion(Int(ausbg & 0xFF), Int(ausbe >> 8), Int(ausbe & 0xFF), to: &j)
                    } else {
                        j.field("hardware_revision", Int(ausbe))
                    }
                }
                j.endObject()
            }
            j.endArray()
        case 0x1C where entryLength >= 4:
            j.key("component_identification"); j.beginObject()
            for i in 0..<available {
                let e = entries.slice(from: i * entryLength, length: entryLength)
                let idx = e.u16be(0)
                guard let key = componentKey(idx) else { continue }
                let text = e.suffix(from: 2)
                j.key(key)
                if idx == 9 || idx == 10 { j.hex(text) } else { j.string(bytes: text.upToNUL().trimmingPadding()) }
            }
            j.endObject()
        case 0x24 where entryLength >= 4 && available > 0:
            let mode = entries.u8(3) & 0x0F
            j.field("operating_mode_code", Int(mode))
            j.field("operating_mode", operatingMode(mode))
        case 0x32 where index == 0x0004 && entryLength >= 10 && available > 0:
            j.key("protection"); j.beginObject()
            j.field("protection_level", Int(entries.u16be(2)))
            j.field("mode_selector", Int(entries.u16be(8)))
            j.endObject()
        case 0x31 where index == 0x0001 && entryLength >= 6 && available > 0:
            j.field("max_pdu_size", Int(entries.u16be(2)))
            j.field("max_connections", Int(entries.u16be(4)))
        case 0x00 where entryLength == 2:
            j.key("szl_ids"); j.beginArray()
            for i in 0..<min(available, 256) { j.int(Int(entries.u16be(i * 2))) }
            j.endArray()
        default:
            break
        }
    }

    /// Writes `V<a>.<b>.<c>` as a JSON string without allocating.
    static func writeVersion(_ a: Int, _ b: Int, _ c: Int, to j: inout JSONWriter) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 12) { buf in
            var n = 0
            func put(_ v: Int) {
                let x = max(0, min(v, 255))
                if x >= 100 { buf[n] = UInt8(ascii: "0") &+ UInt8(x / 100); n += 1 }
                if x >= 10 { buf[n] = UInt8(ascii: "0") &+ UInt8(x / 10 % 10); n += 1 }
                buf[n] = UInt8(ascii: "0") &+ UInt8(x % 10); n += 1
            }
            buf[n] = UInt8(ascii: "V"); n += 1
            put(a); buf[n] = UInt8(ascii: "."); n += 1
            put(b); buf[n] = UInt8(ascii: "."); n += 1
            put(c)
            j.string(bytes: ByteView(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(buf)[0..<n])))
        }
    }
}
