import Wire
import Records

/// Where an S7comm-plus frame sits in a message split over several frames.
enum S7PlusFragment {
    case none, first, inner, last

    var name: StaticString {
        switch self {
        case .none: "none"
        case .first: "first"
        case .inner: "inner"
        case .last: "last"
        }
    }
}

/// How an S7comm-plus frame is integrity-protected.
enum S7PlusIntegrity {
    case none, headerDigest, trailerDigest

    var name: StaticString {
        switch self {
        case .none: "none"
        case .headerDigest: "header_digest"
        case .trailerDigest: "trailer_digest"
        }
    }
}

/// S7comm-plus frames: identification, header summary, operations and records.
extension S7commDissector {
    mutating func handlePlus(_ message: ByteView, side: FlowSide, sink: EventSink) {
        guard let f = S7PlusFrame.parse(message) else { return }
        sink.countPDU(.s7commPlus)
        var fragment = S7PlusFragment.none
        var data: S7PlusDataHeader?
        if f.hasDataPart {
            var s = state(side)
            if !f.hasTrailer {
                if !s.plusActive {
                    fragment = .first
                    data = S7PlusDataHeader.parse(message, start: f.dataStart, end: f.dataEnd)
                    s.plusActive = true
                    s.plusOpcode = data?.opcode ?? 0; s.plusFunction = data?.function ?? 0; s.plusSequence = data?.sequence ?? 0
                    s.plusBytes = UInt16(clamping: f.dataEnd - f.dataStart)
                } else {
                    fragment = .inner
                    s.plusBytes = UInt16(clamping: Int(s.plusBytes) + f.dataEnd - f.dataStart)
                }
            } else if s.plusActive {
                fragment = .last
                s.plusActive = false; s.plusBytes = 0
            } else {
                data = S7PlusDataHeader.parse(message, start: f.dataStart, end: f.dataEnd)
            }
            if fragment == .inner || fragment == .last {
                // Only the first fragment has the data header; later ones continue its data part.
                data = S7PlusDataHeader(opcode: s.plusOpcode, function: s.plusFunction, sequence: s.plusSequence)
            }
            setState(s, side)
        }
        if f.hasTrailer && !f.trailerValid {
            sink.emit(Anomaly(layer: "s7comm_plus", kind: "bad_trailer", offset: 4 + f.dataLength), sender: side)
        }
        if let d = data, fragment == .none || fragment == .first, !d.knownOpcode {
            sink.emit(Anomaly(layer: "s7comm_plus", kind: "unknown_opcode", offset: f.dataStart, value: Int64(d.opcode)), sender: side)
        }

        // V3 carries a digest in every frame; V2 requests of S7-1500 (firmware < 1.5) end with one.
        var integrity = S7PlusIntegrity.none
        if f.version == 3 && f.digestLength > 0 {
            integrity = .headerDigest
        } else if f.version == 2, f.hasTrailer, data?.opcode == 0x31, f.dataEnd - 33 >= f.dataStart,
                  message.u8(f.dataEnd - 33) == 0x20 {
            integrity = .trailerDigest
        }

        let isRequest = data?.opcode == 0x31
        let access: AccessClass = isRequest ? S7Classification.plusFunction(data?.function ?? 0) : .response
        if isRequest, fragment == .none || fragment == .first, let d = data {
            sink.emit(Operation(appProtocol: .s7commPlus, access: access, functionCode: d.function,
                                function: S7PlusNames.function(d.function)), sender: side)
        }

        guard sink.pduRecordsEnabled else { return }
        sink.beginRecord(.pdu, protocolName: "s7comm_plus", objectKey: "s7comm_plus", sender: side)
        S7commDissector.writePlusFields(f, data, fragment: fragment, integrity: integrity, access: access, to: &sink.json)
        sink.endRecord()
    }

    /// Writes the fields of the `s7comm_plus` object.
    static func writePlusFields(_ f: S7PlusFrame, _ data: S7PlusDataHeader?, fragment: S7PlusFragment,
                                integrity: S7PlusIntegrity, access: AccessClass, to j: inout JSONWriter) {
        j.field("version", Int(f.version))
        j.field("version_name", S7PlusNames.version(f.version))
        if f.version == 0xFF {
            j.field("keepalive_sequence", Int(f.keepAliveSequence))
        } else {
            j.field("data_length", f.dataLength)
            j.field("trailer", f.hasTrailer)
        }
        j.field("integrity_protected", integrity != .none)
        j.field("integrity", integrity.name)
        if f.digestLength > 0 { j.field("digest_length", f.digestLength) }
        if fragment != .none { j.field("fragment", fragment.name) }
        if let d = data {
            j.field("opcode", Int(d.opcode))
            j.field("opcode_name", S7PlusNames.opcode(d.opcode))
            if d.opcode != 0x33 {
                j.field("function_code", Int(d.function))
                j.field("function", S7PlusNames.function(d.function))
                j.field("sequence_number", Int(d.sequence))
            }
            if let id = d.sessionID { j.field("session_id", UInt64(id)) }
            if let t = d.transportFlags { j.field("transport_flags", Int(t)) }
            if let id = d.subscriptionID { j.field("subscription_id", UInt64(id)) }
        }
        j.field("access", access.name)
    }
}
