import Wire
import Records

// IBM QRadar Log Event Extended Format (IBM DSM guide "LEEF event components"; Tenzir's LEEF reader
// for the 2.0 delimiter field; ../shared/reference/siem-formats.md §4.2).
//
//   LEEF:1.0|ZoneWatch|ZoneWatch|<version>|<rule.id>|<attr>␉<attr>␉...
//   LEEF:2.0|ZoneWatch|ZoneWatch|<version>|<rule.id>|<delimiter>|<attr><d><attr><d>...
//   <attr> = key=value      (a reader splits attributes on the delimiter, then each on its first `=`)
//
// LEEF defines no escaping, so nothing in a value may look like structure:
//   header fields    `|` removed; CR, LF and other controls → space
//   values           CR, LF, other C0 controls and the delimiter → space; `=` and `|` stay literal
//                    (only the first `=` of an attribute separates key from value)
//   1.0              the delimiter is always TAB, so a TAB inside a value becomes a space
//   2.0              the delimiter is chosen per record: the first of ^ ~ ` # ; ! TAB that occurs in
//                    no value, so values normally pass unchanged; written as a character, or as
//                    `x09` for TAB (hex form of the spec)
//
// Attributes (predefined names first): devTime devTimeFormat sev cat src dst srcPort dstPort proto,
// then ZoneWatch's own: ruleName action app srcZone dstZone conduit technique function access
// unitId dnp3Address securityLevel communityId count frame msg.

/// Writes alerts as LEEF 1.0 or 2.0 text.
public struct LEEFEncoder: Sendable {
    /// LEEF version.
    public enum Version: Sendable { case v1, v2 }

    /// Which LEEF version to write.
    public var leefVersion: Version
    /// Vendor field.
    public var vendor: String = "ZoneWatch"
    /// Product field.
    public var product: String = "ZoneWatch"
    /// Product version field.
    public var version: String

    /// `devTimeFormat` value matching what `devTime` holds (Java SimpleDateFormat).
    public static let devTimeFormat = "yyyy-MM-dd'T'HH:mm:ss.SSSZ"
    /// Candidate 2.0 delimiters, in order of preference.
    static let delimiters: [UInt8] = [UInt8(ascii: "^"), UInt8(ascii: "~"), UInt8(ascii: "`"), UInt8(ascii: "#"),
                                      UInt8(ascii: ";"), UInt8(ascii: "!"), 0x09]

    /// Bit (b & 63) set for each candidate delimiter byte b: a cheap pre-filter.
    static let candidateMask: UInt64 = delimiters.reduce(0) { $0 | 1 << UInt64($1 & 0x3F) }

    /// Creates an encoder.
    public init(leefVersion: Version, version: String) { self.leefVersion = leefVersion; self.version = version }

    /// One attribute value.
    enum Value {
        case text(String)
        /// The alert's Community ID and message, read from the alert's inline text (no `String` made for them; no
        /// payload, so that a value stays small: one is built and passed per attribute).
        case communityID
        case message
        case literal(StaticString)
        case number(Int)
        case ip(IPAddress)
        case devTime(PacketTime)
    }

    /// Calls `body` with every attribute of `a`, in output order (`communityID`: its `communityIDText`, read once).
    static func forEachAttribute(_ a: Alert, communityID: InlineText, _ body: (StaticString, Value) -> Void) {
        body("devTime", .devTime(a.time))
        body("devTimeFormat", .literal("yyyy-MM-dd'T'HH:mm:ss.SSSZ"))
        body("sev", .number(max(1, min(10, a.severity))))
        body("cat", .text(a.category.rawValue))
        if let s = a.source { body("src", .ip(s.ip)) }
        if let d = a.destination { body("dst", .ip(d.ip)) }
        if let s = a.source { body("srcPort", .number(Int(s.port))) }
        if let d = a.destination { body("dstPort", .number(Int(d.port))) }
        if let t = a.transport, let label = transportLabel(t) { body("proto", .literal(label)) }
        body("ruleName", .text(a.ruleName))
        body("action", .text(a.action))
        if let p = a.networkProtocol { body("app", .text(p)) }
        if let z = a.sourceZone { body("srcZone", .text(z)) }
        if let z = a.destinationZone { body("dstZone", .text(z)) }
        if let c = a.conduit { body("conduit", .text(c)) }
        if !a.techniques.isEmpty { body("technique", .text(a.techniques.map(\.id).joined(separator: ","))) }
        if let f = a.function { body("function", .text(f)) }
        if let x = a.access { body("access", .text(x)) }
        if let u = a.unitID { body("unitId", .number(u)) }
        if let d = a.dnp3Address { body("dnp3Address", .number(d)) }
        if let s = a.securityLevel { body("securityLevel", .number(s)) }
        if !communityID.isEmpty { body("communityId", .communityID) }
        if a.count != 1 { body("count", .number(a.count)) }
        body("frame", .number(Int(clamping: a.frame)))
        body("msg", .message)
    }

    /// The 2.0 delimiter for `a`: the first candidate found in no text value (`^` if all occur).
    static func chooseDelimiter(for a: Alert, communityID: InlineText) -> UInt8 {
        var seen: UInt32 = 0   // bit i: delimiters[i] occurs somewhere
        forEachAttribute(a, communityID: communityID) { _, v in
            func scan(_ buf: UnsafeRawBufferPointer) {
                for b in buf where b < 0x80 && candidateMask & (1 << UInt64(b & 0x3F)) != 0 {
                    for (i, d) in delimiters.enumerated() where b == d { seen |= 1 << UInt32(i) }
                }
            }
            switch v {
            case .text(var s): s.withUTF8 { scan(UnsafeRawBufferPointer($0)) }
            case .communityID: communityID.withBytes(scan)
            case .message: a.messageText.withBytes(scan)
            default: return
            }
        }
        for (i, d) in delimiters.enumerated() where seen & (1 << UInt32(i)) == 0 { return d }
        return delimiters[0]
    }

    /// Appends the LEEF record of `alert` (no trailing newline).
    public func write(_ alert: Alert, to out: inout [UInt8]) { write(alert, communityID: alert.communityIDText, to: &out) }

    /// `write(_:to:)` with the alert's `communityIDText` read once already (a deferred one is computed per read).
    public func write(_ alert: Alert, communityID: InlineText, to out: inout [UInt8]) {
        let delimiter: UInt8 = leefVersion == .v1 ? 0x09 : LEEFEncoder.chooseDelimiter(for: alert, communityID: communityID)
        out.append(ascii: leefVersion == .v1 ? "LEEF:1.0|" : "LEEF:2.0|")
        LEEFEncoder.header(vendor, to: &out); out.append(UInt8(ascii: "|"))
        LEEFEncoder.header(product, to: &out); out.append(UInt8(ascii: "|"))
        LEEFEncoder.header(version, to: &out); out.append(UInt8(ascii: "|"))
        LEEFEncoder.header(alert.ruleID, to: &out); out.append(UInt8(ascii: "|"))
        if leefVersion == .v2 {
            if delimiter == 0x09 { out.append(ascii: "x09") } else { out.append(delimiter) }
            out.append(UInt8(ascii: "|"))
        }
        var first = true
        LEEFEncoder.forEachAttribute(alert, communityID: communityID) { key, value in
            if !first { out.append(delimiter) }
            first = false
            out.append(ascii: key); out.append(UInt8(ascii: "="))
            switch value {
            case .text(let s): LEEFEncoder.value(s, delimiter: delimiter, to: &out)
            case .communityID: communityID.withBytes { LEEFEncoder.value(bytes: $0, delimiter: delimiter, to: &out) }
            case .message: alert.messageText.withBytes { LEEFEncoder.value(bytes: $0, delimiter: delimiter, to: &out) }
            case .literal(let s): out.append(ascii: s)
            case .number(let n): out.append(decimal: n)
            case .ip(let a): a.write(to: &out)
            case .devTime(let t): LEEFEncoder.devTime(t, to: &out)
            }
        }
    }

    /// Appends `t` as `yyyy-MM-dd'T'HH:mm:ss.SSS+0000`.
    static func devTime(_ t: PacketTime, to out: inout [UInt8]) {
        let start = out.count
        t.writeRFC3339(to: &out)            // 2024-01-01T00:00:00.123456Z
        out.removeLast(out.count - start - 23)  // keep milliseconds
        out.append(ascii: "+0000")
    }

    /// Appends a header field: `|` removed, controls → space.
    public static func header(_ s: String, to out: inout [UInt8]) {
        out.append(s, special: { $0 == UInt8(ascii: "|") || $0 < 0x20 || $0 == 0x7F }) { b, out in
            if b != UInt8(ascii: "|") { out.append(0x20) }
        }
    }

    /// Appends a value: CR, LF, controls and the delimiter → space.
    public static func value(_ s: String, delimiter: UInt8, to out: inout [UInt8]) {
        var s = s
        s.withUTF8 { value(bytes: UnsafeRawBufferPointer($0), delimiter: delimiter, to: &out) }
    }

    /// Appends UTF-8 bytes as a value.
    static func value(bytes: UnsafeRawBufferPointer, delimiter: UInt8, to out: inout [UInt8]) {
        out.append(bytes: bytes, special: { $0 == delimiter || $0 == 0x0A || $0 == 0x0D || isUnsafeControl($0) }) { _, out in
            out.append(0x20)
        }
    }
}
