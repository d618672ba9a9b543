// Modbus request layouts, Modbus Application Protocol V1.1b3 §6. Offsets are inside the PDU
// (offset 0 is the function code). Quantities and byte counts are checked against the spec's limits.
//
//   FC        offset: field (size)                                                 PDU length
//   1, 2      1: start address (2)  3: quantity of coils/inputs 1–2000 (2)          5
//   3, 4      1: start address (2)  3: quantity of registers 1–125 (2)              5
//   5         1: output address (2) 3: output value 0x0000 | 0xFF00 (2)             5
//   6         1: register address (2) 3: register value (2)                         5
//   7, 11,    (no data)                                                             1
//   12, 17
//   8         1: sub-function (2)   3: data (n)                                     3 + n
//   15        1: start (2) 3: quantity 1–1968 (2) 5: byte count = ⌈q/8⌉ (1) 6: bits   6 + count
//   16        1: start (2) 3: quantity 1–123 (2)  5: byte count = 2q (1)  6: values  6 + count
//   20        1: byte count 7–245, multiple of 7 (1)  2: sub-requests ×7 bytes:       2 + count
//               reference type 6 (1), file number (2), record number (2), record length (2)
//   21        1: byte count 9–251 (1)  2: groups: reference type 6 (1), file (2),      2 + count
//               record (2), record length n (2), record data (2n)
//   22        1: address (2)  3: AND mask (2)  5: OR mask (2)                        7
//   23        1: read start (2) 3: read quantity 1–125 (2) 5: write start (2)         10 + count
//             7: write quantity 1–121 (2) 9: byte count = 2·write quantity (1) 10: values
//   24        1: FIFO pointer address (2)                                           3
//   43        1: MEI type (1); MEI 14: 2: read device id code 1–4 (1) 3: object id   4
//             MEI 13: 2: CANopen data (n)
//   90        1: pairing key (1)  2: UMAS function code (1)  3: data (n)            3 + n
//   others    1: data (n), kept raw
import Wire

extension ModbusPDU {
    @inline(__always) mutating func parseRequest(_ pdu: ByteView) {
        switch functionCode.rawValue {
        case 0x01, 0x02:
            addressQuantity(pdu, maximum: 2000); expectLength(pdu, 5)
        case 0x03, 0x04:
            addressQuantity(pdu, maximum: 125); expectLength(pdu, 5)
        case 0x05:
            singleWrite(pdu)
            if value >= 0 && value != 0x0000 && value != 0xFF00 { flag(.badCoilValue, at: 3, value: Int64(value)) }
        case 0x06:
            singleWrite(pdu)
        case 0x07, 0x0B, 0x0C, 0x11:
            expectLength(pdu, 1)
        case 0x08:
            diagnostics(pdu)
        case 0x0F:
            multipleWrite(pdu, maximum: 1968, kind: .bits)
        case 0x10:
            multipleWrite(pdu, maximum: 123, kind: .registers)
        case 0x14:
            let n = byteCounted(pdu, at: 1)
            if byteCount >= 0 && (byteCount < 7 || byteCount > 0xF5 || byteCount % 7 != 0) {
                flag(.byteCountMismatch, at: 1, value: Int64(byteCount))
            }
            carry(.fileReadRequests, from: 2, length: n)
        case 0x15:
            let n = byteCounted(pdu, at: 1)
            if byteCount >= 0 && (byteCount < 9 || byteCount > 0xFB) { flag(.byteCountMismatch, at: 1, value: Int64(byteCount)) }
            checkFileWriteGroups(pdu, length: n)
            carry(.fileWriteGroups, from: 2, length: n)
        case 0x16:
            maskWrite(pdu)
        case 0x17:
            readWriteRequest(pdu)
        case 0x18:
            if pdu.has(2, at: 1) { address = Int32(pdu.loadBE16(1)) }
            expectLength(pdu, 3)
        case 0x2B:
            guard need(pdu, 2) else { return }
            meiType = Int16(pdu.loadU8(1))
            if meiType == Int16(MEI.readDeviceIdentification) {
                if pdu.has(1, at: 2) { readDeviceIDCode = Int16(pdu.loadU8(2)) }
                if pdu.has(1, at: 3) { objectID = Int16(pdu.loadU8(3)) }
                expectLength(pdu, 4)
                if readDeviceIDCode >= 0 && (readDeviceIDCode < 1 || readDeviceIDCode > 4) {
                    flag(.illegalQuantity, at: 2, value: Int64(readDeviceIDCode))
                }
            } else {
                carry(.raw, from: 2, length: pdu.count - 2)
            }
        case 0x5A:
            umas(pdu)
        default:
            carry(.raw, from: 1, length: pdu.count - 1)
        }
    }

    /// FC 5 / 6 and their echoed responses: address and one value.
    @inline(__always) mutating func singleWrite(_ pdu: ByteView) {
        if pdu.has(2, at: 1) { address = Int32(pdu.loadBE16(1)) }
        if pdu.has(2, at: 3) { value = Int32(pdu.loadBE16(3)) }
        quantity = 1
        expectLength(pdu, 5)
    }

    /// FC 22 request and its echoed response.
    mutating func maskWrite(_ pdu: ByteView) {
        if pdu.has(2, at: 1) { address = Int32(pdu.loadBE16(1)) }
        if pdu.has(2, at: 3) { andMask = Int32(pdu.loadBE16(3)) }
        if pdu.has(2, at: 5) { orMask = Int32(pdu.loadBE16(5)) }
        quantity = 1
        expectLength(pdu, 7)
    }

    /// FC 8 request and response (the response echoes the sub-function).
    mutating func diagnostics(_ pdu: ByteView) {
        guard need(pdu, 3) else { return }
        subfunction = Int32(pdu.loadBE16(1))
        let n = pdu.count - 3
        carry(n > 0 && n % 2 == 0 ? .registers : (n > 0 ? .raw : .none), from: 3, length: n)
    }

    /// FC 15 / 16 request: address, quantity, byte count, values.
    @inline(__always) mutating func multipleWrite(_ pdu: ByteView, maximum: Int32, kind: ModbusPayload) {
        addressQuantityPrefix(pdu, maximum: maximum)
        let n = byteCounted(pdu, at: 5)
        let expected = kind == .bits ? (quantity + 7) / 8 : quantity * 2
        if quantity > 0 && byteCount >= 0 && byteCount != expected {
            flag(.byteCountMismatch, at: 5, value: Int64(byteCount))
        }
        carry(kind, from: 6, length: n)
    }

    /// Address and quantity for layouts that continue after offset 5.
    @inline(__always) mutating func addressQuantityPrefix(_ pdu: ByteView, maximum: Int32) {
        if pdu.has(2, at: 1) { address = Int32(pdu.loadBE16(1)) }
        guard pdu.has(2, at: 3) else { flag(.badLength, at: pdu.count, value: Int64(pdu.count)); return }
        quantity = Int32(pdu.loadBE16(3))
        checkQuantity(quantity, maximum: maximum, address: address, at: 3)
    }

    /// FC 23 request.
    mutating func readWriteRequest(_ pdu: ByteView) {
        guard need(pdu, 9) else { return }
        address = Int32(pdu.loadBE16(1)); quantity = Int32(pdu.loadBE16(3))
        writeAddress = Int32(pdu.loadBE16(5)); writeQuantity = Int32(pdu.loadBE16(7))
        checkQuantity(quantity, maximum: 125, address: address, at: 3)
        checkQuantity(writeQuantity, maximum: 121, address: writeAddress, at: 7)
        let n = byteCounted(pdu, at: 9)
        if writeQuantity > 0 && byteCount >= 0 && byteCount != 2 * writeQuantity {
            flag(.byteCountMismatch, at: 9, value: Int64(byteCount))
        }
        carry(.registers, from: 10, length: n)
    }

    /// FC 21 groups: each group's record length must fit in what the byte count covers.
    mutating func checkFileWriteGroups(_ pdu: ByteView, length: Int) {
        var o = 2
        let end = 2 + length
        while o < end {
            guard o + 7 <= end else { flag(.byteCountMismatch, at: o, value: Int64(end - o)); return }
            let words = Int(pdu.loadBE16(o + 5))
            o += 7 + 2 * words
            if o > end { flag(.byteCountMismatch, at: o - 2 * words - 2, value: Int64(words)); return }
        }
    }

    /// FC 90 (UMAS) request or response: pairing key and UMAS function code / status.
    mutating func umas(_ pdu: ByteView) {
        guard need(pdu, 3) else {
            if pdu.has(1, at: 1) { pairingKey = Int16(pdu.loadU8(1)) }
            return
        }
        pairingKey = Int16(pdu.loadU8(1))
        subfunction = Int32(pdu.loadU8(2))
        carry(pdu.count > 3 ? .raw : .none, from: 3, length: pdu.count - 3)
    }
}
