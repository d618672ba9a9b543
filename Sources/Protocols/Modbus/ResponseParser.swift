// Modbus normal-response layouts, Modbus Application Protocol V1.1b3 §6 (exception responses are
// handled in `ModbusPDU.parse`). Offsets are inside the PDU (offset 0 is the function code).
//
//   FC        offset: field (size)                                                 PDU length
//   1, 2      1: byte count n (1)  2: packed bits (n)                               2 + n
//   3, 4, 23  1: byte count n, even, ≤ 250 (1)  2: register values (n)              2 + n
//   5, 6      echo of the request: 1: address (2) 3: value (2)                     5
//   7         1: output data (1)                                                    2
//   8         echo: 1: sub-function (2) 3: data (n)                                 3 + n
//   11        1: status (2)  3: event count (2)                                     5
//   12        1: byte count n (1) 2: status (2) 4: event count (2)                   2 + n
//             6: message count (2) 8: events (n − 6)
//   15, 16    1: start address (2)  3: quantity (2)                                 5
//   17        1: byte count n (1)  2: server id, run indicator, device data (n)      2 + n
//   20        1: response data length n (1)  2: sub-responses: file response        2 + n
//             length m (1), reference type 6 (1), record data (m − 1)
//   21        echo of the request                                                  2 + n
//   22        echo of the request                                                  7
//   24        1: byte count n (2)  3: FIFO count ≤ 31 (2)  5: values (n − 2)         3 + n
//   43/14     1: MEI 14 (1) 2: read device id code (1) 3: conformity level (1)       7 + objects
//             4: more follows 0x00|0xFF (1) 5: next object id (1) 6: number of objects (1)
//             7: objects: id (1), length m (1), value (m)
//   43/13     1: MEI 13 (1) 2: CANopen data (n)                                     2 + n
//   90        1: pairing key (1)  2: status 0xFE OK / 0xFD error (1)  3: data (n)   3 + n
import Wire

extension ModbusPDU {
    @inline(__always) mutating func parseResponse(_ pdu: ByteView) {
        switch functionCode.rawValue {
        case 0x01, 0x02:
            let n = byteCounted(pdu, at: 1)
            carry(.bits, from: 2, length: n)
        case 0x03, 0x04, 0x17:
            let n = byteCounted(pdu, at: 1)
            if byteCount >= 0 && (byteCount % 2 != 0 || byteCount > 250) { flag(.byteCountMismatch, at: 1, value: Int64(byteCount)) }
            carry(.registers, from: 2, length: n - n % 2)
        case 0x05:
            singleWrite(pdu)
            if value >= 0 && value != 0x0000 && value != 0xFF00 { flag(.badCoilValue, at: 3, value: Int64(value)) }
        case 0x06:
            singleWrite(pdu)
        case 0x07:
            if pdu.has(1, at: 1) { value = Int32(pdu.loadU8(1)) }
            expectLength(pdu, 2)
        case 0x08:
            diagnostics(pdu)
        case 0x0B:
            if pdu.has(2, at: 1) { value = Int32(pdu.loadBE16(1)) }
            if pdu.has(2, at: 3) { count = Int32(pdu.loadBE16(3)) }
            expectLength(pdu, 5)
        case 0x0C:
            let n = byteCounted(pdu, at: 1)
            if n >= 6 {
                value = Int32(pdu.loadBE16(2)); count = Int32(pdu.loadBE16(4)); messageCount = Int32(pdu.loadBE16(6))
                carry(.events, from: 8, length: n - 6)
            } else if byteCount >= 0 {
                flag(.byteCountMismatch, at: 1, value: Int64(byteCount))
            }
        case 0x0F:
            addressQuantityPrefix(pdu, maximum: 1968); expectLength(pdu, 5)
        case 0x10:
            addressQuantityPrefix(pdu, maximum: 123); expectLength(pdu, 5)
        case 0x11:
            let n = byteCounted(pdu, at: 1)
            carry(.raw, from: 2, length: n)
        case 0x14:
            let n = byteCounted(pdu, at: 1)
            checkFileReadResponses(pdu, length: n)
            carry(.fileReadResponses, from: 2, length: n)
        case 0x15:
            let n = byteCounted(pdu, at: 1)
            checkFileWriteGroups(pdu, length: n)
            carry(.fileWriteGroups, from: 2, length: n)
        case 0x16:
            maskWrite(pdu)
        case 0x18:
            fifoResponse(pdu)
        case 0x2B:
            guard need(pdu, 2) else { return }
            meiType = Int16(pdu.loadU8(1))
            if meiType == Int16(MEI.readDeviceIdentification) { deviceIdentification(pdu) }
            else { carry(.raw, from: 2, length: pdu.count - 2) }
        case 0x5A:
            umas(pdu)
        default:
            carry(.raw, from: 1, length: pdu.count - 1)
        }
    }

    /// FC 20 response: sub-responses must tile the response data exactly.
    mutating func checkFileReadResponses(_ pdu: ByteView, length: Int) {
        var o = 2
        let end = 2 + length
        while o < end {
            let m = Int(pdu.loadU8(o))
            if m < 1 || o + 1 + m > end { flag(.byteCountMismatch, at: o, value: Int64(m)); return }
            o += 1 + m
        }
    }

    /// FC 24 response: 16-bit byte count, FIFO count (≤ 31), registers.
    mutating func fifoResponse(_ pdu: ByteView) {
        guard need(pdu, 5) else { return }
        let declared = Int(pdu.loadBE16(1))
        byteCount = Int32(declared)
        count = Int32(pdu.loadBE16(3))
        if declared != pdu.count - 3 || declared != 2 + 2 * Int(count) { flag(.byteCountMismatch, at: 1, value: Int64(declared)) }
        if count > 31 { flag(.illegalQuantity, at: 3, value: Int64(count)) }
        let n = min(pdu.count - 5, 2 * Int(count))
        carry(.registers, from: 5, length: n - n % 2)
    }

    /// MEI 14 response: header fields, then the objects, which must tile the rest of the PDU.
    mutating func deviceIdentification(_ pdu: ByteView) {
        guard need(pdu, 7) else { return }
        readDeviceIDCode = Int16(pdu.loadU8(2))
        conformityLevel = Int16(pdu.loadU8(3))
        moreFollows = Int16(pdu.loadU8(4))
        objectID = Int16(pdu.loadU8(5))
        count = Int32(pdu.loadU8(6))
        var o = 7, seen = 0
        while seen < Int(count) {
            guard pdu.has(2, at: o) else { flag(.byteCountMismatch, at: o, value: Int64(seen)); break }
            let m = Int(pdu.loadU8(o + 1))
            guard pdu.has(m, at: o + 2) else { flag(.byteCountMismatch, at: o + 1, value: Int64(m)); break }
            o += 2 + m; seen += 1
        }
        if seen == Int(count) && o != pdu.count { flag(.badLength, at: o, value: Int64(pdu.count)) }
        carry(.deviceObjects, from: 7, length: o - 7)
    }
}
