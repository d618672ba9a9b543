import Wire
import Records

/// Writes the fields of one S7comm PDU (the `s7comm` object of a `pdu` record) from the parsed views.
///
/// Field names follow the issue: `rosctr`, `pdu_reference`, `function_code` and `function` (Job and
/// Ack_Data only — userdata PDUs have no parameter function code, so the key is left out, as tshark
/// leaves out `s7comm.param.func`), `error_class`/`error_code` (acks), `items`, `group`, `subfunction`,
/// `szl_id`/`szl_index` and `access`.
enum S7PDURecord {
    /// Values longer than this are cut (and flagged) in records.
    static let maximumValueBytes = 64

    /// Writes the common header fields.
    static func writeHeader(_ pdu: S7PDU, to j: inout JSONWriter) {
        let h = pdu.header
        j.field("rosctr", Int(h.rosctr))
        j.field("rosctr_name", S7Names.rosctr(h.rosctr))
        j.field("pdu_reference", Int(h.pduReference))
        j.field("parameter_length", h.parameterLength)
        j.field("data_length", h.dataLength)
        if h.isAck {
            j.field("error_class", Int(h.errorClass))
            j.field("error_code", Int(h.errorCode))
            if h.errorClass != 0 || h.errorCode != 0 {
                j.field("error", S7Names.errorCode(UInt16(h.errorClass) << 8 | UInt16(h.errorCode)))
                j.field("error_class_name", S7Names.errorClass(h.errorClass))
            }
        }
        if pdu.truncated { j.field("truncated", true) }
    }

    /// Writes the parameter and data fields of a Job (rosctr 1).
    static func writeJob(_ pdu: S7PDU, to j: inout JSONWriter) {
        guard let f = pdu.functionCode else { return }
        j.field("function_code", Int(f))
        j.field("function", S7Names.function(f))
        let p = pdu.parameters
        switch f {
        case 0x04, 0x05:
            guard p.count >= 2 else { return }
            let count = Int(p.u8(1))
            j.field("item_count", count)
            writeVarSpecs(p, offset: 2, count: count, to: &j)
            if f == 0x05 { writeDataItems(pdu.data, count: count, to: &j) }
        case 0xF0:
            writeSetup(p, to: &j)
        case 0x1A...0x1F:
            writeBlockTransfer(p, rosctr: 1, to: &j)
        case 0x28, 0x29:
            writePIService(p, to: &j)
        default:
            break
        }
    }

    /// Writes the parameter and data fields of an Ack_Data (rosctr 3) or Ack (2).
    static func writeAck(_ pdu: S7PDU, to j: inout JSONWriter) {
        guard let f = pdu.functionCode else { return }
        j.field("function_code", Int(f))
        j.field("function", S7Names.function(f))
        let p = pdu.parameters
        switch f {
        case 0x04:
            guard p.count >= 2 else { return }
            let count = Int(p.u8(1))
            j.field("item_count", count)
            writeDataItems(pdu.data, count: count, to: &j)
        case 0x05:
            guard p.count >= 2 else { return }
            let count = Int(p.u8(1))
            j.field("item_count", count)
            j.key("items"); j.beginArray()
            for i in 0..<min(count, pdu.data.count) {
                let rc = pdu.data.u8(i)
                j.beginObject(); j.field("return_code", Int(rc)); j.field("return_code_name", S7Names.returnCode(rc)); j.endObject()
            }
            j.endArray()
        case 0xF0:
            writeSetup(p, to: &j)
        case 0x1A...0x1F:
            writeBlockTransfer(p, rosctr: 3, to: &j)
            if (f == 0x1B || f == 0x1E), pdu.data.count >= 4 {
                j.field("block_data_length", Int(pdu.data.u16be(0)))
            }
        default:
            break
        }
    }

    /// Writes Read/Write Var item addresses as `items`.
    static func writeVarSpecs(_ p: ByteView, offset: Int, count: Int, to j: inout JSONWriter) {
        var it = S7VarSpecIterator(p, offset: offset, count: count)
        j.key("items"); j.beginArray()
        while let s = it.next() { writeVarSpec(s, to: &j) }
        j.endArray()
        if it.malformed { j.field("items_malformed", true) }
    }

    /// Writes one item address object.
    static func writeVarSpec(_ s: S7VarSpec, to j: inout JSONWriter) {
        j.beginObject()
        j.field("syntax_id", Int(s.syntaxID))
        j.field("syntax", S7Names.syntaxID(s.syntaxID))
        if s.hasAddress {
            j.field("transport_size", Int(s.transportSize))
            j.field("transport_size_name", S7Names.itemTransportSize(s.transportSize))
            j.field("length", s.length)
            j.field("db_number", s.dbNumber)
            j.field("area_code", Int(s.area))
            j.field("area", S7Names.area(s.area))
            if s.area == 0x1C || s.area == 0x1D || s.area == 0x1E || s.area == 0x1F {
                j.field("number", s.byteAddress)
            } else {
                j.field("byte_address", s.byteAddress)
                j.field("bit_address", s.bitAddress)
            }
        }
        j.endObject()
    }

    /// Writes data items (Write Var Job data, Read Var Ack_Data data, cyclic data) as `data_items`.
    static func writeDataItems(_ d: ByteView, count: Int, to j: inout JSONWriter) {
        var it = S7DataItemIterator(d, count: count)
        j.key("data_items"); j.beginArray()
        while let item = it.next() {
            j.beginObject()
            j.field("return_code", Int(item.returnCode))
            j.field("return_code_name", S7Names.returnCode(item.returnCode))
            j.field("transport_size", Int(item.transportSize))
            j.field("transport_size_name", S7Names.dataTransportSize(item.transportSize))
            j.field("length", item.length)
            if item.value.count > 0 {
                j.key("value"); j.hex(item.value.prefix(maximumValueBytes))
                if item.value.count > maximumValueBytes { j.field("value_truncated", true) }
            }
            j.endObject()
        }
        j.endArray()
        if it.malformed { j.field("data_items_malformed", true) }
    }

    /// Writes setup-communication fields.
    static func writeSetup(_ p: ByteView, to j: inout JSONWriter) {
        guard let s = S7SetupCommunication.parse(p) else { return }
        j.field("max_amq_calling", s.maxAmQCalling)
        j.field("max_amq_called", s.maxAmQCalled)
        j.field("pdu_size", s.pduSize)
    }

    /// Writes a block name object.
    static func writeBlock(_ b: S7BlockName, to j: inout JSONWriter) {
        j.beginObject()
        if let t = b.typeCode { j.field("block_type", S7Names.blockType(t)); j.field("block_type_code", Int(t)) }
        if let n = b.number { j.field("block_number", n) }
        if b.fileSystem != 0 { j.key("filesystem"); j.string(bytes: b.raw.slice(from: b.raw.count - 1, length: 1)) }
        j.key("name"); j.string(bytes: b.raw)
        j.endObject()
    }

    /// Writes block up/download fields.
    static func writeBlockTransfer(_ p: ByteView, rosctr: UInt8, to j: inout JSONWriter) {
        guard let t = S7BlockTransfer.parse(p, rosctr: rosctr) else { return }
        j.field("function_status", Int(t.status))
        j.field("more_data_follows", t.moreDataFollows)
        if let id = t.uploadID { j.field("upload_id", UInt64(id)) }
        if let b = t.block { j.key("block"); writeBlock(b, to: &j) }
        if let l = t.loadMemoryLength { j.field(rosctr == 1 ? "load_memory_length" : "block_length", l) }
        if let l = t.mc7Length { j.field("mc7_length", l) }
    }

    /// Writes PI service / PLC stop fields.
    static func writePIService(_ p: ByteView, to j: inout JSONWriter) {
        guard let s = S7PIService.parse(p) else { return }
        if s.name.count > 0 {
            j.key("pi_service"); j.string(bytes: s.name)
            j.field("pi_service_description", S7PIService.describe(s.name))
        }
        if s.nonstandardLayout { j.field("pi_nonstandard_layout", true) }
        if s.hasBlockList {
            j.key("blocks"); j.beginArray()
            for i in 0..<s.blockCount { if let b = s.block(i) { writeBlock(b, to: &j) } }
            j.endArray()
        } else if s.parameterBlock.count > 0 {
            j.key("pi_arguments"); j.string(bytes: s.parameterBlock)
        }
    }

    /// Writes the fields of a userdata PDU; `complete` is the reassembled payload when this PDU is the
    /// last data unit of a fragmented message (nil otherwise).
    static func writeUserdata(_ pdu: S7PDU, _ u: S7UserdataParameters?, complete: ByteView?, to j: inout JSONWriter) {
        guard let u = u else { return }
        j.field("userdata_type", S7Names.userdataType(u.type))
        j.field("method", Int(u.method))
        j.field("group", Int(u.group))
        j.field("group_name", S7Names.group(u.group))
        j.field("subfunction", Int(u.subfunction))
        j.field("subfunction_name", S7Names.subfunction(group: u.group, u.subfunction))
        j.field("function", u.group == 0 ? "Mode transition" : S7Names.subfunction(group: u.group, u.subfunction))
        j.field("sequence_number", Int(u.sequence))
        if u.extended {
            j.field("data_unit_reference", Int(u.dataUnitReference))
            j.field("last_data_unit", u.lastDataUnit)
            j.field("userdata_error_code", Int(u.errorCode))
            if u.errorCode != 0 { j.field("error", S7Names.errorCode(u.errorCode)) }
        }
        if u.group == 0 { j.field("mode", S7Names.mode(u.subfunction)) }
        guard let d = S7UserdataData.parse(pdu.data) else { return }
        j.field("return_code", Int(d.returnCode))
        j.field("return_code_name", S7Names.returnCode(d.returnCode))
        // A fragment other than the last is undecodable on its own (tshark waits for the last too).
        guard u.lastDataUnit else { return }
        let payload = complete ?? d.payload
        if complete != nil { j.field("reassembled_length", payload.count) }
        switch u.group {
        case 0x2: writeCyclic(payload, u, to: &j)
        case 0x3: writeBlockFunction(payload, u, to: &j)
        case 0x4 where u.subfunction == 0x01: writeSZL(payload, u, returnCode: d.returnCode, to: &j)
        case 0x7:
            if payload.count >= 10, let ts = S7Timestamp.parse(payload) { j.key("clock"); ts.write(to: &j) }
        default: break
        }
    }

    /// SZL id/index (request or response) and the decoded response.
    static func writeSZL(_ payload: ByteView, _ u: S7UserdataParameters, returnCode: UInt8, to j: inout JSONWriter) {
        guard returnCode == 0xFF, let (id, index) = S7SZL.idAndIndex(payload) else { return }
        j.field("szl_id", Int(id))
        j.field("szl_index", Int(index))
        j.field("szl_name", S7SZL.name(id))
        if u.isResponse || u.isPush {
            j.key("szl"); j.beginObject(); S7SZL.writeResponse(payload, to: &j); j.endObject()
        }
    }

    /// Cyclic services: subscription items (requests) or data items (responses and pushes).
    static func writeCyclic(_ payload: ByteView, _ u: S7UserdataParameters, to j: inout JSONWriter) {
        guard payload.count >= 2 else { return }
        let count = Int(payload.u16be(0))
        j.field("item_count", count)
        if u.isRequest {
            guard u.subfunction != 0x04, payload.count >= 4 else { return }
            j.field("interval_timebase", Int(payload.u8(2)))
            j.field("interval_factor", Int(payload.u8(3)))
            writeVarSpecs(payload, offset: 4, count: count, to: &j)
        } else {
            writeDataItems(payload.suffix(from: 2), count: count, to: &j)
        }
    }

    /// Block functions: list blocks, list of type, block info.
    static func writeBlockFunction(_ payload: ByteView, _ u: S7UserdataParameters, to j: inout JSONWriter) {
        switch u.subfunction {
        case 0x01 where u.isResponse:
            j.key("block_counts"); j.beginArray()
            var o = 0
            while payload.has(4, at: o) {
                j.beginObject()
                if let t = S7Names.blockTypeCode(payload.u8(o), payload.u8(o + 1)) ?? Optional(payload.u8(o + 1)) {
                    j.field("block_type", S7Names.blockType(t))
                }
                j.field("count", Int(payload.u16be(o + 2)))
                j.endObject()
                o += 4
            }
            j.endArray()
        case 0x02 where u.isRequest && payload.count >= 2:
            if let t = S7Names.blockTypeCode(payload.u8(0), payload.u8(1)) { j.field("block_type", S7Names.blockType(t)) }
        case 0x02 where u.isResponse:
            j.field("block_count", payload.count / 4)
            j.key("block_numbers"); j.beginArray()
            var o = 0
            while payload.has(4, at: o) && o < 4 * 512 { j.int(Int(payload.u16be(o))); o += 4 }
            j.endArray()
        case 0x03 where u.isRequest && payload.count >= 8:
            j.key("block"); writeBlock(S7BlockName.parse(payload.prefix(8), hasIdentifier: false), to: &j)
        default:
            break
        }
    }
}
