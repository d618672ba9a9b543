// Modbus PDU parser: the entry point and helpers shared by the request and response layouts.
//
// A parse never fails and never allocates: a protocol violation sets a flag in `problems` (with the
// byte offset) and the parse goes on with what is there, because a malformed request is exactly what
// a monitor wants to report (sawp's error flags, not thrown errors). Every read is guarded by a length
// check, so no input can make a `ByteView` read trap.
import Wire

extension ModbusPDU {
    /// Parses one PDU (function code + data; the MBAP header already removed) sent in `direction`.
    public static func parse(_ pdu: ByteView, direction: ModbusDirection) -> ModbusPDU {
        var p = ModbusPDU()
        p.direction = direction
        guard pdu.count >= 1 else { p.flag(.badLength, at: 0, value: 0); return p }
        p.rawFunctionCode = pdu.loadU8(0)
        if p.functionCode.category == .unassigned {
            p.flag(.unknownFunction, at: 0, value: Int64(p.functionCode.rawValue))
        }
        if p.isException {
            // §7: an exception response is exactly the code byte and one exception-code byte.
            if pdu.count >= 2 {
                let code = pdu.loadU8(1)
                p.exceptionCode = code
                if !ExceptionCode(rawValue: code).isKnown { p.flag(.unknownException, at: 1, value: Int64(code)) }
            }
            if pdu.count != 2 { p.flag(.badLength, at: min(pdu.count, 2), value: Int64(pdu.count)) }
            return p
        }
        switch direction {
        case .request: p.parseRequest(pdu)
        case .response: p.parseResponse(pdu)
        }
        return p
    }

    /// Whether `pdu` fits its function's request or response layout exactly (lengths and byte counts).
    /// Functions without a fixed layout (user-defined, vendor, unassigned) always fit.
    public static func fitsLayout(_ pdu: ByteView) -> Bool {
        let structural: ModbusPDUProblems = [.badLength, .byteCountMismatch]
        if parse(pdu, direction: .request).problems.isDisjoint(with: structural) { return true }
        return parse(pdu, direction: .response).problems.isDisjoint(with: structural)
    }

    // MARK: - Helpers shared by the layouts

    /// Requires the PDU to be exactly `length` bytes; flags `badLength` otherwise.
    @inline(__always) mutating func expectLength(_ pdu: ByteView, _ length: Int) {
        if pdu.count != length { flag(.badLength, at: min(pdu.count, length), value: Int64(pdu.count)) }
    }

    /// Requires at least `length` bytes; flags `badLength` and returns false otherwise.
    @inline(__always) mutating func need(_ pdu: ByteView, _ length: Int) -> Bool {
        if pdu.count >= length { return true }
        flag(.badLength, at: pdu.count, value: Int64(pdu.count)); return false
    }

    /// Reads the 8-bit byte count at `offset` and checks it covers exactly the rest of the PDU.
    /// Returns how many data bytes follow it that may be read (never more than are present).
    @inline(__always) mutating func byteCounted(_ pdu: ByteView, at offset: Int) -> Int {
        guard pdu.has(1, at: offset) else { flag(.badLength, at: pdu.count, value: Int64(pdu.count)); return 0 }
        let declared = Int(pdu.loadU8(offset))
        byteCount = Int32(declared)
        let present = pdu.count - offset - 1
        if declared != present { flag(.byteCountMismatch, at: offset, value: Int64(declared)) }
        return min(declared, present)
    }

    /// Reads address + quantity at offsets 1 and 3 and checks 1 ≤ quantity ≤ `maximum` and that the
    /// range stays inside the 16-bit address space.
    @inline(__always) mutating func addressQuantity(_ pdu: ByteView, maximum: Int32) {
        guard need(pdu, 5) else {
            if pdu.has(2, at: 1) { address = Int32(pdu.loadBE16(1)) }
            return
        }
        address = Int32(pdu.loadBE16(1)); quantity = Int32(pdu.loadBE16(3))
        checkQuantity(quantity, maximum: maximum, address: address, at: 3)
    }

    /// Flags `illegalQuantity` when `q` is 0, above `maximum`, or runs past address 65535.
    @inline(__always) mutating func checkQuantity(_ q: Int32, maximum: Int32, address a: Int32, at offset: Int) {
        if q < 1 || q > maximum || (a >= 0 && Int64(a) + Int64(q) > 65_536) {
            flag(.illegalQuantity, at: offset, value: Int64(q))
        }
    }
}
