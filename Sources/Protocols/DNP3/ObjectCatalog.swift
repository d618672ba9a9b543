// IEEE 1815-2012 Annex A (object library): the size of one object of each group/variation, which
// is what lets a parser step over objects it does not decode. Sizes in octets, flags included.
//
//   g1  binary input            v1 packed 1 bit, v2 flags(1)
//   g2  binary input event      v1 flags(1), v2 +time48(7), v3 +reltime16(3)
//   g3  double-bit input        v1 packed 2 bits, v2 flags(1)
//   g4  double-bit input event  v1 1, v2 7, v3 3
//   g10 binary output status    v1 packed 1 bit, v2 flags(1)
//   g11 binary output event     v1 1, v2 7          g13 binary command event  v1 1, v2 7
//   g12 v1 CROB / v2 PCB: code(1) count(1) on-ms(4) off-ms(4) status(1) = 11; v3 pattern mask bits
//   g20 counter                 v1 5, v2 3, v3 5, v4 3, v5 4, v6 2, v7 4, v8 2
//   g21 frozen counter          v1 5, v2 3, v3 5, v4 3, v5 11, v6 9, v7 11, v8 9, v9 4, v10 2, v11 4, v12 2
//   g22/g23 counter events      v1 5, v2 3, v3 5, v4 3, v5 11, v6 9, v7 11, v8 9
//   g30 analog input            v1 flag+i32(5), v2 flag+i16(3), v3 i32(4), v4 i16(2), v5 flag+f32(5), v6 flag+f64(9)
//   g31 frozen analog input     v1 5, v2 3, v3 11, v4 9, v5 4, v6 2, v7 5, v8 9
//   g32/g33 analog (frozen) events v1 5, v2 3, v3 11, v4 9, v5 5, v6 9, v7 11, v8 15
//   g34 analog deadband         v1 2, v2 4, v3 4
//   g40 analog output status    v1 flag+i32(5), v2 flag+i16(3), v3 flag+f32(5), v4 flag+f64(9)
//   g41 analog output command   v1 i32+status(5), v2 i16+status(3), v3 f32+status(5), v4 f64+status(9)
//   g42/g43 analog output (command) events  v1 5, v2 3, v3 11, v4 9, v5 5, v6 9, v7 11, v8 15
//   g50 time: v1 time48(6), v2 time48+interval32(10), v3 6, v4 time48+interval32+unit(11)
//   g51 CTO v1/v2 6      g52 delay v1 s(2) / v2 ms(2)      g60 class data: no data
//   g80 IIN: packed bits g81 v1 3    g101 BCD v1 2, v2 4, v3 8    g102 v1 1
//   g110–g113 octet strings and VTO: the variation is the length
//   g0 device attributes: data type(1) length(1) value(length)
//   g70, g82, g83, g85–g88, g90, g91, g120: variable, sized by an object-size prefix (qualifier 0x5B)

/// How big one object of a group/variation is.
public enum DNP3ObjectSize: Sendable, Equatable {
    /// The object carries no data (class data, "any variation").
    case none
    /// A fixed number of octets.
    case fixed(Int)
    /// Packed: this many bits per point, the whole range rounded up to octets.
    case bits(Int)
    /// The variation number is the length (octet strings, VTO).
    case variationLength
    /// Group 0: data type, length, value.
    case deviceAttribute
    /// Variable; only an object-size prefix can say how big.
    case variable
    /// A group/variation this catalog does not know.
    case unknown
}

/// The object library: names and sizes (IEEE 1815-2012 Annex A).
public enum DNP3ObjectCatalog {
    /// The size of one object of `group`/`variation`.
    public static func size(group: UInt8, variation: UInt8) -> DNP3ObjectSize {
        if variation == 0 && group != 0 { return .none }
        let v = Int(variation)
        func pick(_ sizes: (Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int)) -> DNP3ObjectSize {
            let s: Int
            switch v {
            case 1: s = sizes.0
            case 2: s = sizes.1
            case 3: s = sizes.2
            case 4: s = sizes.3
            case 5: s = sizes.4
            case 6: s = sizes.5
            case 7: s = sizes.6
            case 8: s = sizes.7
            case 9: s = sizes.8
            case 10: s = sizes.9
            case 11: s = sizes.10
            case 12: s = sizes.11
            default: s = 0
            }
            return s > 0 ? .fixed(s) : .unknown
        }
        switch group {
        case 0: return .deviceAttribute
        case 1: return v == 1 ? .bits(1) : v == 2 ? .fixed(1) : .unknown
        case 2, 4: return pick((1, 7, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0))
        case 3: return v == 1 ? .bits(2) : v == 2 ? .fixed(1) : .unknown
        case 10: return v == 1 ? .bits(1) : v == 2 ? .fixed(1) : .unknown
        case 11, 13: return pick((1, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
        case 12: return v == 1 || v == 2 ? .fixed(11) : v == 3 ? .bits(1) : .unknown
        case 20: return pick((5, 3, 5, 3, 4, 2, 4, 2, 0, 0, 0, 0))
        case 21: return pick((5, 3, 5, 3, 11, 9, 11, 9, 4, 2, 4, 2))
        case 22, 23: return pick((5, 3, 5, 3, 11, 9, 11, 9, 0, 0, 0, 0))
        case 30: return pick((5, 3, 4, 2, 5, 9, 0, 0, 0, 0, 0, 0))
        case 31: return pick((5, 3, 11, 9, 4, 2, 5, 9, 0, 0, 0, 0))
        case 32, 33, 42, 43: return pick((5, 3, 11, 9, 5, 9, 11, 15, 0, 0, 0, 0))
        case 34: return pick((2, 4, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0))
        case 40, 41: return pick((5, 3, 5, 9, 0, 0, 0, 0, 0, 0, 0, 0))
        case 50: return pick((6, 10, 6, 11, 0, 0, 0, 0, 0, 0, 0, 0))
        case 51: return pick((6, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
        case 52: return pick((2, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
        case 60: return v <= 4 ? .none : .unknown
        case 80: return v == 1 ? .bits(1) : .unknown
        case 81: return v == 1 ? .fixed(3) : .unknown
        case 101: return pick((2, 4, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0))
        case 102: return v == 1 ? .fixed(1) : .unknown
        case 110, 111, 112, 113: return .variationLength
        case 121: return v == 1 ? .fixed(7) : .unknown
        case 122: return pick((7, 13, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
        case 70, 82, 83, 85, 86, 87, 88, 90, 91, 120: return .variable
        default: return .unknown
        }
    }

    /// `size(group:variation:)` in one octet, for the object-header walk of every fragment: 0 unknown, 1...127 that
    /// many octets, `sizeCodeNone`, `sizeCodeBits1`, `sizeCodeBits2`, and `sizeCodeOther` for the sizes the walk
    /// leaves to the general parser (variation-length, device attributes, variable).
    static func sizeCode(group: UInt8, variation: UInt8) -> UInt8 {
        switch size(group: group, variation: variation) {
        case .fixed(let n): n > 0 && n < 0x80 ? UInt8(n) : sizeCodeOther
        case .none: sizeCodeNone
        case .bits(1): sizeCodeBits1
        case .bits(2): sizeCodeBits2
        case .unknown: 0
        default: sizeCodeOther
        }
    }
    static let sizeCodeNone: UInt8 = 0x80
    static let sizeCodeBits1: UInt8 = 0x81
    static let sizeCodeBits2: UInt8 = 0x82
    static let sizeCodeOther: UInt8 = 0x83

    /// `sizeCode` of every group with variations 0...15, at `group << 4 | variation` (4 KiB, built once, never freed
    /// or written after): in the block of `DNP3CRC.slices`, behind the CRC tables.
    static var sizeCodes: UnsafePointer<UInt8> {
        UnsafeRawPointer(DNP3CRC.slices).advanced(by: DNP3CRC.sizeCodesOffset).assumingMemoryBound(to: UInt8.self)
    }
    /// Entries of `sizeCodes`.
    static var sizeCodeCount: Int { 256 * 16 }

    /// Writes `sizeCodes` to `p`.
    static func fillSizeCodes(_ p: UnsafeMutablePointer<UInt8>) {
        for g in 0..<256 {
            for v in 0..<16 { p[g << 4 | v] = sizeCode(group: UInt8(g), variation: UInt8(v)) }
        }
    }

    /// The record name of a group (`unknown` for groups outside the library).
    public static func name(group: UInt8, variation: UInt8) -> StaticString {
        switch group {
        case 0: "device_attributes"
        case 1: "binary_input"
        case 2: "binary_input_event"
        case 3: "double_bit_binary_input"
        case 4: "double_bit_binary_input_event"
        case 10: "binary_output"
        case 11: "binary_output_event"
        case 12: variation == 1 ? "control_relay_output_block" : variation == 2 ? "pattern_control_block" : variation == 3 ? "pattern_mask" : "binary_output_command"
        case 13: "binary_output_command_event"
        case 20: "counter"
        case 21: "frozen_counter"
        case 22: "counter_event"
        case 23: "frozen_counter_event"
        case 30: "analog_input"
        case 31: "frozen_analog_input"
        case 32: "analog_input_event"
        case 33: "frozen_analog_input_event"
        case 34: "analog_input_deadband"
        case 40: "analog_output_status"
        case 41: "analog_output"
        case 42: "analog_output_event"
        case 43: "analog_output_command_event"
        case 50: variation == 3 ? "time_last_recorded" : "time_and_date"
        case 51: "time_and_date_cto"
        case 52: variation == 2 ? "time_delay_fine" : "time_delay_coarse"
        case 60: variation == 1 ? "class_0_data" : variation == 2 ? "class_1_data" : variation == 3 ? "class_2_data" : variation == 4 ? "class_3_data" : "class_data"
        case 70: "file_control"
        case 80: "internal_indications"
        case 81: "device_storage"
        case 82: "device_profile"
        case 83: "private_registration_object"
        case 85: "data_set_prototype"
        case 86: "data_set_descriptor"
        case 87: "data_set"
        case 88: "data_set_event"
        case 90: "application_identifier"
        case 91: "status_of_requested_operation"
        case 101: "binary_coded_decimal"
        case 102: "unsigned_integer"
        case 110: "octet_string"
        case 111: "octet_string_event"
        case 112: "virtual_terminal_output_block"
        case 113: "virtual_terminal_event_data"
        case 120: "authentication"
        case 121: "security_statistic"
        case 122: "security_statistic_event"
        default: "unknown"
        }
    }
}
