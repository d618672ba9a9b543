import Wire

// S7comm PDU (protocol id 0x32), the user data of one COTP DT message (EOT). Offsets from the PDU start.
//
//   offset  size  field
//   0       1     protocol id          0x32
//   1       1     ROSCTR               1 Job, 2 Ack, 3 Ack_Data, 7 Userdata
//   2       2     redundancy id        reserved, 0x0000
//   4       2     PDU reference        chosen by the sender of a Job/request, echoed in its ack
//   6       2     parameter length
//   8       2     data length
//   10      1     error class          only in Ack (2) and Ack_Data (3)
//   11      1     error code           only in Ack (2) and Ack_Data (3)
//   10|12   plen  parameter block      function code first (Job/Ack_Data), see S7Parameters.swift
//   ..      dlen  data block           see S7Items.swift and S7Userdata.swift
//
// Wireshark's heuristic accepts a PDU when it has at least 10 bytes, starts with 0x32 and has a
// ROSCTR between 1 and 7; we use the same gate so that per-frame results compare.

/// The fixed header of an S7comm PDU.
struct S7Header {
    /// ROSCTR, the PDU type.
    var rosctr: UInt8
    /// Redundancy identification (reserved).
    var redundancyID: UInt16
    /// PDU reference.
    var pduReference: UInt16
    /// Declared parameter block length.
    var parameterLength: Int
    /// Declared data block length.
    var dataLength: Int
    /// Error class (acks only).
    var errorClass: UInt8 = 0
    /// Error code (acks only).
    var errorCode: UInt8 = 0
    /// 10, or 12 for Ack and Ack_Data.
    var headerLength: Int

    /// Whether this ROSCTR carries the error class and code.
    var isAck: Bool { rosctr == 2 || rosctr == 3 }

    /// Whether `pdu` passes the S7comm gate (length, protocol id, ROSCTR 1-7).
    static func looksLikeS7(_ pdu: ByteView) -> Bool {
        pdu.count >= 10 && pdu.u8(0) == 0x32 && pdu.u8(1) >= 1 && pdu.u8(1) <= 7
    }

    /// Parses the header of `pdu`; nil when it fails the gate. Acks shorter than 12 bytes keep
    /// error class/code 0 and are flagged by `S7PDU.truncated`.
    @inline(__always) static func parse(_ pdu: ByteView) -> S7Header? {
        guard looksLikeS7(pdu) else { return nil }
        let rosctr = pdu.u8(1)
        // The gate guaranteed 10 bytes: the four big-endian fields are read without per-read checks.
        let raw = pdu.raw
        @inline(__always) func be16(_ o: Int) -> UInt16 { UInt16(bigEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt16.self)) }
        var h = S7Header(rosctr: rosctr, redundancyID: be16(2), pduReference: be16(4),
                         parameterLength: Int(be16(6)), dataLength: Int(be16(8)),
                         headerLength: (rosctr == 2 || rosctr == 3) ? 12 : 10)
        if h.isAck && pdu.count >= 12 { h.errorClass = pdu.u8(10); h.errorCode = pdu.u8(11) }
        return h
    }
}

/// An S7comm PDU split into header, parameter block and data block (views into the PDU bytes).
struct S7PDU {
    /// The header.
    var header: S7Header
    /// The parameter block (clamped to the bytes present).
    var parameters: ByteView
    /// The data block (clamped to the bytes present).
    var data: ByteView
    /// Whether the declared lengths run past the PDU's end.
    var truncated: Bool
    /// Bytes after header, parameters and data (padding or garbage).
    var trailing: Int

    /// Splits `pdu`; nil when it fails the S7comm gate.
    /// Inlined into `handleS7`, its only caller on the packet path.
    @inline(__always) static func parse(_ pdu: ByteView) -> S7PDU? {
        guard let h = S7Header.parse(pdu) else { return nil }
        let hl = min(h.headerLength, pdu.count)
        let params = pdu.slice(from: hl, length: h.parameterLength)
        let data = pdu.slice(from: hl + params.count, length: h.dataLength)
        let declared = h.headerLength + h.parameterLength + h.dataLength
        return S7PDU(header: h, parameters: params, data: data,
                     truncated: declared > pdu.count, trailing: max(0, pdu.count - declared))
    }

    /// The parameter function code (first parameter byte), nil when the block is empty.
    var functionCode: UInt8? { parameters.count > 0 ? parameters.u8(0) : nil }
}
