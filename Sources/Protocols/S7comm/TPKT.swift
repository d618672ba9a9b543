import Wire

// RFC 1006 §6, "ISO transport service on top of the TCP" — the TPKT packet:
//
//   offset  size  field
//   0       1     version            always 3
//   1       1     reserved           always 0
//   2       2     packet length      big-endian, counts these 4 bytes too (7 ... 65535)
//   4       n     TPDU               one ISO 8073 (COTP) TPDU, see COTP.swift
//
// TCP carries TPKTs back to back; one TCP segment may hold several, and one TPKT may span
// segments. The length field is the only framing there is, so a bad header means we must search
// for the next plausible one (`resynchronisationPoint`).

/// RFC 1006 TPKT framing: header checks and resynchronisation.
enum TPKT {
    /// Bytes in the TPKT header.
    static let headerLength = 4
    /// The shortest TPKT that can carry a TPDU: header, COTP length indicator and TPDU code.
    static let minimumLength = 6
    /// The shortest TPKT accepted while resynchronising: header plus a class-0 DT header.
    static let minimumResyncLength = 7

    /// What the bytes at an offset are.
    enum Header: Equatable {
        /// Fewer than four bytes are there.
        case needMoreData
        /// Not a TPKT header (version, reserved byte or length wrong).
        case invalid
        /// A TPKT of `length` bytes (header included) starts here.
        case valid(length: Int)
    }

    /// Reads the TPKT header at `offset`.
    @inline(__always)
    static func header(_ bytes: ByteView, at offset: Int) -> Header {
        guard bytes.has(headerLength, at: offset) else { return .needMoreData }
        guard bytes.u8(offset) == 3, bytes.u8(offset + 1) == 0 else { return .invalid }
        let length = Int(bytes.u16be(offset + 2))
        guard length >= minimumLength else { return .invalid }
        return .valid(length: length)
    }

    /// Whether a TPKT header at `offset` is believable enough to resynchronise on: the TPKT header is
    /// valid and, as far as the bytes go, the COTP header inside it is too (length indicator fits, TPDU
    /// code known, class-0 DT has LI 2 or 4). Returns nil when too few bytes are there to decide.
    static func isPlausibleStart(_ bytes: ByteView, at offset: Int) -> Bool? {
        switch header(bytes, at: offset) {
        case .needMoreData: return nil
        case .invalid: return false
        case .valid(let length):
            guard length >= minimumResyncLength else { return false }
            guard bytes.has(2, at: offset + 4) else { return nil }
            let li = Int(bytes.u8(offset + 4))
            guard li >= 1, 5 + li <= length else { return false }
            guard let type = COTPType(code: bytes.u8(offset + 5)) else { return false }
            if type == .dt && li != 2 && li != 4 { return false }
            return true
        }
    }

    /// The offset of the first plausible TPKT header at or after `from`, or the offset from which the
    /// remaining bytes are too few to decide (so the caller keeps them for the next call).
    /// Returns `bytes.count` when nothing in the bytes can start a TPKT.
    static func resynchronisationPoint(_ bytes: ByteView, from: Int) -> Int {
        var o = max(from, 0)
        while o < bytes.count {
            if bytes.u8(o) == 3 {
                switch isPlausibleStart(bytes, at: o) {
                case .some(true), .none: return o
                case .some(false): break
                }
            }
            o += 1
        }
        return bytes.count
    }
}
