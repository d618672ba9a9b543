import Wire
import Records

// The PDUs an S7 connection carries nearly all the time, handled in one pass over raw memory when no record is
// written: a whole TPKT holding one class-0 DT with EOT, and in it a Read/Write Var Job or an Ack_Data. Through the
// layered path (TPKT → COTP → message → header → job → items), with a bounds check per field read and a slice per
// layer, such a PDU cost about 880 instructions.
//
// `readWriteVar` does exactly what that path does for these PDUs with records off, or nothing at all (returns false)
// so the layered path handles the PDU: the checks below are the conditions under which the layered path emits no
// anomaly and writes no record, and the effects (PDU count, one operation per item, the pending key, the overflow
// anomaly) are the ones it has then.

extension S7commDissector {
    /// Handles the TPKT of `length` bytes at `tpkt` (whole, and known to be a valid TPKT header) when it is a
    /// Read/Write Var or Setup communication Job or an Ack_Data in one DT TPDU, or a COTP CR or CC, and records are
    /// off; false, with nothing done, for anything else.
    @_transparent
    mutating func readWriteVar(_ tpkt: UnsafeRawPointer, length: Int, side: FlowSide, sink: EventSink) -> Bool {
        // A connection request or confirm (each connection's first two TPKTs): with records off, `handleTPKT` only
        // checks its header as `COTPHeader.parse` does (a bad one is an anomaly: then false).
        let cotpType = tpkt.load(fromByteOffset: 5, as: UInt8.self) >> 4
        if cotpType == COTPType.cr.rawValue || cotpType == COTPType.cc.rawValue {
            let li = Int(tpkt.load(fromByteOffset: 4, as: UInt8.self))
            return li >= 6 && TPKT.headerLength + 1 + li <= length
        }
        // TPKT header (4), COTP DT with LI 2 and EOT (3), S7 header (at least 10; Ack_Data 12) behind it.
        guard length >= 17, tpkt.load(fromByteOffset: 4, as: UInt8.self) == 2,
              tpkt.load(fromByteOffset: 5, as: UInt8.self) >> 4 == COTPType.dt.rawValue,
              tpkt.load(fromByteOffset: 6, as: UInt8.self) & 0x80 != 0,
              tpkt.load(fromByteOffset: 7, as: UInt8.self) == 0x32 else { return false }
        // No COTP message of this side in reassembly (then this DT ends it, not a message of its own). Bytes in the
        // side's COTP lane come only with `cotpFragmentsPending` (every path that clears it empties the lane), so the
        // flag alone says so, and the lane's fill, outside the state's first line, is not read.
        let s = state(side)
        guard !s.cotpDiscarding && !s.cotpFragmentsPending else { return false }
        let pdu = tpkt + 7, count = length - 7
        @inline(__always) func u8(_ o: Int) -> UInt8 { pdu.load(fromByteOffset: o, as: UInt8.self) }
        @inline(__always) func be16(_ o: Int) -> UInt16 { UInt16(bigEndian: pdu.loadUnaligned(fromByteOffset: o, as: UInt16.self)) }
        let rosctr = u8(1)
        let headerLength: Int
        switch rosctr {
        case 1: headerLength = 10
        case 3: headerLength = 12
        default: return false
        }
        let parameterLength = Int(be16(6)), dataLength = Int(be16(8))
        // Not truncated (`s7_length_mismatch`), within the negotiated size (`pdu_exceeds_negotiated_size`), and with a
        // function code.
        guard parameterLength >= 1, headerLength + parameterLength + dataLength <= count,
              negotiatedPDUSize <= 0 || count <= negotiatedPDUSize else { return false }
        let function = u8(headerLength)
        if rosctr == 3 {
            sink.countPDU(.s7comm)
            // Setup communication's ack (without error, its parameters whole) grants the PDU size (`handleAck`).
            if function == 0xF0 && u8(10) == 0 && parameterLength >= 8 { negotiatedPDUSize = Int(be16(headerLength + 6)) }
            pending.remove(side: side.opposite, pduReference: be16(4), userdata: false)
            return true
        }
        // Read and Write Var, and Setup communication (once per connection; one operation, no items).
        guard function == 0x04 || function == 0x05 || function == 0xF0 else { return false }
        sink.countPDU(.s7comm)
        let op = Operation(appProtocol: .s7comm, access: S7Classification.job(function: function, piService: .empty),
                           functionCode: UInt16(function), function: S7Names.function(function))
        // The items (S7VarSpecIterator's walk over the parameter block, which lies whole within the PDU).
        let parameters = pdu + headerLength
        @inline(__always) func p8(_ o: Int) -> UInt8 { parameters.load(fromByteOffset: o, as: UInt8.self) }
        @inline(__always) func p16(_ o: Int) -> UInt16 { UInt16(bigEndian: parameters.loadUnaligned(fromByteOffset: o, as: UInt16.self)) }
        var remaining = function != 0xF0 && parameterLength >= 2 ? Int(p8(1)) : 0
        var offset = 2, emitted = false
        while remaining > 0 {
            guard offset <= parameterLength - 3, p8(offset) == 0x12 else { break }
            let specLength = Int(p8(offset + 1))
            guard specLength >= 1, offset <= parameterLength - 2 - specLength else { break }
            let b = offset + 2
            let o: UnsafeMutablePointer<Operation>
            if emitted {
                // The previous item's operation, with the item fields back to `op`'s: one block copy, where building
                // the operation field by field and stamping it again cost about twice as many instructions.
                o = sink.emittedAgain()
                o.pointee.area = op.area; o.pointee.dbNumber = op.dbNumber
                o.pointee.address = op.address; o.pointee.quantity = op.quantity
            } else {
                o = sink.emitted(op, sender: side)
            }
            switch p8(b) {
            case 0x10 where specLength >= 10:
                let area = p8(b + 6)
                o.pointee.area = Int16(area)
                if area == 0x84 || area == 0x85 { o.pointee.dbNumber = Int32(p16(b + 4)) }
                let address = Int(p8(b + 7)) << 16 | Int(p16(b + 8))
                o.pointee.address = Int64(area >= 0x1C && area <= 0x1F ? address & 0xFFFF : address >> 3)
                o.pointee.quantity = Int64(Int(p16(b + 2)) * S7Names.elementSize(p8(b + 1)))
            case 0xB0 where specLength >= 7:
                o.pointee.area = 0x84
                o.pointee.dbNumber = Int32(p16(b + 3))
                o.pointee.address = Int64(p16(b + 5))
                o.pointee.quantity = Int64(p8(b + 2))   // transport size 2 (BYTE): one byte per element
            default:
                break
            }
            emitted = true
            offset += 2 + specLength
            remaining -= 1
        }
        if !emitted { sink.emit(op, sender: side) }
        if pending.insertKey(side: side, pduReference: be16(4), userdata: false) == .evicted && !reportedPendingOverflow {
            reportedPendingOverflow = true
            sink.emit(Anomaly(layer: "s7comm", kind: "pending_requests_overflow", offset: 0, value: Int64(PendingTable.capacity)), sender: side)
        }
        return true
    }
}
