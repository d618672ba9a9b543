import Wire
import Records

// Access classes per ../shared/reference/protocols.md §2.2, refined by the objects a request names:
//
//   READ of group 0 only (device attributes)           → diagnostic
//   READ or WRITE of time objects only (g50/g51/g52)   → time
//   WRITE of g80 only (clearing IIN1.7 DEVICE_RESTART) → session: routine acknowledgement after a restart
//   everything else                                     → FunctionCode.baseAccess

/// What one walk over a fragment's object headers found: enough to classify, address and check it.
public struct DNP3ObjectSummary: Sendable, Equatable {
    /// Object headers parsed.
    public var headers = 0
    /// Whether every header is group 0.
    public var onlyDeviceAttributes = true
    /// Whether every header is a time object (g50, g51, g52).
    public var onlyTime = true
    /// Whether every header is g80 (IIN).
    public var onlyIIN = true
    /// First point index named (start, virtual address or first index prefix); -1 when none.
    public var firstIndex: Int64 = -1
    /// Points named, summed over headers.
    public var quantity: Int64 = 0
    /// The error that stopped the walk, if any.
    public var error: DNP3ObjectError?
    /// Headers whose group is not in the object library.
    public var unknownGroups = 0

    /// Walks every header of `fragment` after its application header.
    public init(fragment: ByteView, header: DNP3ApplicationHeader) {
        var parser = DNP3ObjectParser(fragment: fragment, objectsAt: header.length, function: header.function)
        while true {
            let h: DNP3ObjectHeader
            do throws(DNP3ObjectError) {
                guard let next = try parser.next() else { break }
                h = next
            } catch {
                self.error = error
                break
            }
            headers += 1
            if h.group != 0 { onlyDeviceAttributes = false }
            if h.group < 50 || h.group > 52 { onlyTime = false }
            if h.group != 80 { onlyIIN = false }
            if h.size == .unknown && h.variation != 0 { unknownGroups += 1 }   // the parser already looked the size up
            quantity &+= Int64(h.count)
            if firstIndex < 0 {
                switch h.rangeKind {
                case .startStop, .virtualAddress: firstIndex = Int64(h.start)
                case .count where h.prefixIsIndex && h.count > 0: firstIndex = Int64(readUInt(fragment, h.dataOffset, size: h.prefixSize))
                default: break
                }
            }
        }
        if headers == 0 { onlyDeviceAttributes = false; onlyTime = false; onlyIIN = false }
    }
}

/// Maps a fragment to its access class.
public enum DNP3Classifier {
    /// The access class of a fragment with `function` and objects `objects`.
    public static func access(_ function: DNP3FunctionCode, objects: DNP3ObjectSummary) -> AccessClass {
        switch function.rawValue {
        case 0x01:
            if objects.onlyDeviceAttributes { return .diagnostic }
            if objects.onlyTime { return .time }
            return .read
        case 0x02:
            if objects.onlyTime { return .time }
            if objects.onlyIIN { return .session }
            return .write
        default:
            return function.baseAccess
        }
    }
}
