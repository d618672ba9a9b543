import Wire
import Records

// ArcSight Common Event Format, version 0 (OpenText "Implementing ArcSight CEF"; escaping as in
// logstash-codec-cef and ../shared/reference/siem-formats.md §4.1).
//
//   CEF:0|ZoneWatch|ZoneWatch|<version>|<rule.id>|<rule.name>|<severity 0-10>|<extension>
//
// Header fields      `\` → `\\`, `|` → `\|`; CR and LF (not allowed in a header) → space.
// Extension          `key=value` pairs separated by one space; keys alphanumeric.
// Extension values   `\` → `\\`, `=` → `\=`, LF → `\n`, CR → `\r`; `|`, spaces and tabs stay literal.
// Both               other C0 controls and DEL → space (see `isUnsafeControl`); UTF-8 otherwise as is.
//
// Keys written, in this order (absent fields are left out):
//   rt start end         packet time, first/last seen (epoch milliseconds)
//   cnt                  aggregated alert count (baseEventCount)
//   src spt dst dpt      IPv4 endpoints; IPv6 addresses go to c6a2 / c6a3 with their labels
//   proto app act cat    transport, application protocol, event.action, rule.category
//   cs1 sourceZone  cs2 destinationZone  cs3 conduit  cs4 attackTechnique (ids, comma-separated)
//   cs5 function    cs6 communityId      cn1 unitId   cn2 dnp3Address  cn3 securityLevel
//   flexString1 access
//   msg                  last, so that a reader eyeballing the line sees the prose at the end

/// Writes alerts as CEF:0 text.
public struct CEFEncoder: Sendable {
    /// Device Vendor.
    public var vendor: String = "ZoneWatch" { didSet { prefix = CEFEncoder.prefix(vendor, product, version) } }
    /// Device Product.
    public var product: String = "ZoneWatch" { didSet { prefix = CEFEncoder.prefix(vendor, product, version) } }
    /// Device Version.
    public var version: String { didSet { prefix = CEFEncoder.prefix(vendor, product, version) } }
    /// `CEF:0|vendor|product|version|`, escaped: the same in every record, so built once.
    private var prefix: [UInt8]

    /// Creates an encoder stamping `version` as the Device Version.
    public init(version: String) {
        self.version = version
        prefix = CEFEncoder.prefix("ZoneWatch", "ZoneWatch", version)
    }

    private static func prefix(_ vendor: String, _ product: String, _ version: String) -> [UInt8] {
        var out: [UInt8] = []
        out.append(ascii: "CEF:0|")
        CEFEncoder.header(vendor, to: &out); out.append(UInt8(ascii: "|"))
        CEFEncoder.header(product, to: &out); out.append(UInt8(ascii: "|"))
        CEFEncoder.header(version, to: &out); out.append(UInt8(ascii: "|"))
        return out
    }

    /// Appends the CEF record of `alert` (no trailing newline).
    public func write(_ alert: Alert, to out: inout [UInt8]) { write(alert, communityID: alert.communityIDText, to: &out) }

    /// `write(_:to:)` with the alert's `communityIDText` read once already (a deferred one is computed per read).
    public func write(_ alert: Alert, communityID: InlineText, to out: inout [UInt8]) {
        out.append(contentsOf: prefix)
        CEFEncoder.header(alert.ruleID, to: &out); out.append(UInt8(ascii: "|"))
        CEFEncoder.header(alert.ruleName, to: &out); out.append(UInt8(ascii: "|"))
        out.append(decimal: max(0, min(10, alert.severity))); out.append(UInt8(ascii: "|"))

        // Swap the caller's buffer in and out so that appends never copy it.
        var ext = Extension(out: [])
        swap(&ext.out, &out)
        defer { swap(&ext.out, &out) }
        ext.number("rt", epochMilliseconds(alert.time))
        if let f = alert.firstSeen { ext.number("start", epochMilliseconds(f)) }
        if let l = alert.lastSeen { ext.number("end", epochMilliseconds(l)) }
        if alert.count != 1 { ext.number("cnt", Int64(alert.count)) }
        if let s = alert.source {
            if s.ip.isIPv4 { ext.ip("src", s.ip) } else { ext.text("c6a2Label", "sourceAddress"); ext.ip("c6a2", s.ip) }
            ext.number("spt", Int64(s.port))
        }
        if let d = alert.destination {
            if d.ip.isIPv4 { ext.ip("dst", d.ip) } else { ext.text("c6a3Label", "destinationAddress"); ext.ip("c6a3", d.ip) }
            ext.number("dpt", Int64(d.port))
        }
        if let t = alert.transport, let label = transportLabel(t) { ext.literal("proto", label) }
        if let p = alert.networkProtocol { ext.text("app", p) }
        ext.text("act", alert.action)
        ext.text("cat", alert.category.rawValue)
        if let z = alert.sourceZone { ext.text("cs1Label", "sourceZone"); ext.text("cs1", z) }
        if let z = alert.destinationZone { ext.text("cs2Label", "destinationZone"); ext.text("cs2", z) }
        if let c = alert.conduit { ext.text("cs3Label", "conduit"); ext.text("cs3", c) }
        if !alert.techniques.isEmpty {
            ext.text("cs4Label", "attackTechnique")
            ext.key("cs4")
            for (i, t) in alert.techniques.enumerated() {
                if i > 0 { ext.out.append(UInt8(ascii: ",")) }
                CEFEncoder.value(t.id, to: &ext.out)
            }
        }
        if let f = alert.function { ext.text("cs5Label", "function"); ext.text("cs5", f) }
        if !communityID.isEmpty {
            ext.text("cs6Label", "communityId"); ext.key("cs6"); communityID.withBytes { CEFEncoder.value(bytes: $0, to: &ext.out) }
        }
        if let u = alert.unitID { ext.text("cn1Label", "unitId"); ext.number("cn1", Int64(u)) }
        if let d = alert.dnp3Address { ext.text("cn2Label", "dnp3Address"); ext.number("cn2", Int64(d)) }
        if let s = alert.securityLevel { ext.text("cn3Label", "securityLevel"); ext.number("cn3", Int64(s)) }
        if let a = alert.access { ext.text("flexString1Label", "access"); ext.text("flexString1", a) }
        ext.key("msg"); alert.messageText.withBytes { CEFEncoder.value(bytes: $0, to: &ext.out) }
    }

    /// Appends `s` escaped as a CEF header field.
    public static func header(_ s: String, to out: inout [UInt8]) {
        out.append(s, special: { $0 == UInt8(ascii: "\\") || $0 == UInt8(ascii: "|") || $0 < 0x20 || $0 == 0x7F }) { b, out in
            switch b {
            case UInt8(ascii: "\\"), UInt8(ascii: "|"): out.append(0x5C); out.append(b)
            case 0x09: out.append(0x09)
            default: out.append(0x20)              // CR, LF and other controls
            }
        }
    }

    /// Appends `s` escaped as a CEF extension value.
    public static func value(_ s: String, to out: inout [UInt8]) {
        var s = s
        s.withUTF8 { value(bytes: UnsafeRawBufferPointer($0), to: &out) }
    }

    /// Appends UTF-8 bytes escaped as a CEF extension value.
    static func value(bytes: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        out.append(bytes: bytes, special: { $0 == UInt8(ascii: "\\") || $0 == UInt8(ascii: "=") || $0 < 0x20 || $0 == 0x7F }) { b, out in
            switch b {
            case UInt8(ascii: "\\"), UInt8(ascii: "="): out.append(0x5C); out.append(b)
            case 0x0A: out.append(0x5C); out.append(UInt8(ascii: "n"))
            case 0x0D: out.append(0x5C); out.append(UInt8(ascii: "r"))
            case 0x09: out.append(0x09)
            default: out.append(0x20)
            }
        }
    }

    /// Builds the space-separated extension; owns the buffer while it works so appends stay in place.
    struct Extension {
        var out: [UInt8]
        var first = true

        mutating func key(_ k: StaticString) {
            if !first { out.append(0x20) }
            first = false
            out.append(ascii: k); out.append(UInt8(ascii: "="))
        }
        mutating func text(_ k: StaticString, _ v: String) { key(k); CEFEncoder.value(v, to: &out) }
        mutating func literal(_ k: StaticString, _ v: StaticString) { key(k); out.append(ascii: v) }
        mutating func number(_ k: StaticString, _ v: Int64) { key(k); out.append(decimal: v) }
        mutating func ip(_ k: StaticString, _ a: IPAddress) { key(k); a.write(to: &out) }
    }
}
