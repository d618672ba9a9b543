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
        if let summary = DNP3ObjectSummary.commonHeaders(fragment, from: header.length, function: header.function) {
            self = summary
        } else {
            self.init(walkingEveryHeaderOf: fragment, header: header)
        }
    }

    /// The summary through `DNP3ObjectParser`, whatever the headers are.
    init(walkingEveryHeaderOf fragment: ByteView, header: DNP3ApplicationHeader) {
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

extension DNP3ObjectSummary {
    /// The summary of a fragment whose object headers are all of the usual kinds, or nil (the general walk then
    /// decides, from the start). Usual: start/stop, count and all-points ranges, no prefix or an index prefix, objects
    /// of a fixed size, packed bits or none, and no error anywhere. This is the walk `DNP3ObjectParser` makes for them,
    /// over raw memory with one bounds check per header and the object size from `sizeCodes`: polls and their
    /// responses, every fragment of a plant's steady state, cost about 350 instructions through the general walk.
    ///
    /// With `summarising` false (a response on the quiet path, which needs only that the walk succeeds and finds no
    /// unknown group) a header of an unknown group ends the walk with nil too, and the summary's other fields are not
    /// filled in: keeping them cost a dozen spilled values per header.
    @_transparent
    static func commonHeaders(_ fragment: ByteView, from start: Int, function: DNP3FunctionCode,
                              sizeCodes sizes: UnsafePointer<UInt8> = DNP3ObjectCatalog.sizeCodes,
                              summarising: Bool = true) -> DNP3ObjectSummary? {
        let n = fragment.count
        guard start < n else { return DNP3ObjectSummary(headerless: ()) }
        guard let base = fragment.raw.baseAddress else { return nil }
        @inline(__always) func u8(_ o: Int) -> UInt8 { base.load(fromByteOffset: o, as: UInt8.self) }
        @inline(__always) func le16(_ o: Int) -> UInt16 { UInt16(littleEndian: base.loadUnaligned(fromByteOffset: o, as: UInt16.self)) }
        @inline(__always) func le32(_ o: Int) -> UInt32 { UInt32(littleEndian: base.loadUnaligned(fromByteOffset: o, as: UInt32.self)) }
        @inline(__always) func read(_ o: Int, _ w: Int) -> UInt32 { w == 1 ? UInt32(u8(o)) : w == 2 ? UInt32(le16(o)) : le32(o) }
        // The summary's fields as locals: the three "only" flags as one mask (bit 0 device attributes, 1 time, 2 IIN).
        var headers = 0, quantity: Int64 = 0, firstIndex: Int64 = -1, unknownGroups = 0
        var only: UInt8 = 0x07
        let headersOnly = function.headersOnlyGroups
        // A header's unknown group (left to the general walk when not summarising: false) and its place in the summary.
        @inline(always) func noteHeader(group: UInt8, variation: UInt8, code: UInt8) -> Bool {
            if code == 0 && variation != 0 {
                guard summarising else { return false }
                unknownGroups += 1
            }
            if summarising {
                headers += 1
                only &= (group == 0 ? 0x01 : 0) | (group &- 50 < 3 ? 0x02 : 0) | (group == 80 ? 0x04 : 0)
            }
            return true
        }
        var at = start
        while at < n {
            guard at <= n - 3 else { return nil }
            let group = u8(at), variation = u8(at + 1), qualifier = u8(at + 2)
            let code = variation < 16 ? sizes[Int(group) << 4 | Int(variation)] : DNP3ObjectCatalog.sizeCode(group: group, variation: variation)
            if qualifier == 0x06 {
                // Every point, no prefix (a poll's class reads, three or four a request): no range, no objects, nothing
                // named; what the steps below come to for it, without their switch and arithmetic.
                guard noteHeader(group: group, variation: variation, code: code) else { return nil }
                at += 3
                continue
            }
            let prefixCode = (qualifier >> 4) & 0x07, rangeCode = qualifier & 0x0F
            guard prefixCode <= 3 else { return nil }   // object-size prefixes and the reserved code: the general walk
            var count = 0, rangeSize = 0, first: Int64 = -1, all = false
            switch rangeCode {
            case 0x0, 0x1, 0x2:
                let w = rangeCode == 0 ? 1 : rangeCode == 1 ? 2 : 4
                rangeSize = 2 * w
                guard at + 3 <= n - rangeSize else { return nil }
                let lo = read(at + 3, w), hi = read(at + 3 + w, w)
                guard hi >= lo else { return nil }
                count = Int(hi - lo) + 1; first = Int64(lo)
            case 0x6:
                all = true
            case 0x7, 0x8, 0x9:
                rangeSize = rangeCode == 7 ? 1 : rangeCode == 8 ? 2 : 4
                guard at + 3 <= n - rangeSize else { return nil }
                count = Int(read(at + 3, rangeSize))
            default:
                return nil
            }
            let dataOffset = at + 3 + rangeSize
            let prefix = prefixCode == 3 ? 4 : Int(prefixCode)
            let available = n - dataOffset
            var length: Int
            if headersOnly.all || (headersOnly.allButTime && group != 50) || code == DNP3ObjectCatalog.sizeCodeNone || all {
                length = count * prefix
            } else if code != 0 && code < 0x80 {
                length = count * (prefix + Int(code))
            } else if code == DNP3ObjectCatalog.sizeCodeBits1 || code == DNP3ObjectCatalog.sizeCodeBits2, prefix == 0 {
                length = (count * Int(code & 0x03) + 7) / 8
            } else {
                return nil
            }
            guard length <= available else { return nil }
            guard noteHeader(group: group, variation: variation, code: code) else { return nil }
            if summarising {
                quantity &+= Int64(count)
                if firstIndex < 0 {
                    if first >= 0 { firstIndex = first }
                    else if prefixCode != 0 && count > 0 { firstIndex = Int64(read(dataOffset, prefix)) }
                }
            }
            at = dataOffset + length
        }
        guard summarising && headers > 0 else { return DNP3ObjectSummary(headerless: ()) }
        var summary = DNP3ObjectSummary()
        summary.headers = headers
        summary.onlyDeviceAttributes = only & 0x01 != 0
        summary.onlyTime = only & 0x02 != 0
        summary.onlyIIN = only & 0x04 != 0
        summary.firstIndex = firstIndex
        summary.quantity = quantity
        summary.unknownGroups = unknownGroups
        return summary
    }

    /// Nothing walked yet.
    init() {}

    /// The summary of a fragment without object headers.
    static var noHeaders: DNP3ObjectSummary { DNP3ObjectSummary(headerless: ()) }

    /// `noHeaders` where the object walk is inlined (the property stayed a call there).
    @_transparent
    init(headerless: ()) {
        self.init()
        onlyDeviceAttributes = false; onlyTime = false; onlyIIN = false
    }
}

/// Maps a fragment to its access class.
public enum DNP3Classifier {
    /// The access class of a fragment with `function` and objects `objects`.
    @_transparent   // once per request on the quiet path, whose caller is too big for `@inline(__always)` to be honoured
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
