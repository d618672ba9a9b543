import Wire
import Records

// RFC 5424 syslog message, the envelope for every record sent over syslog transports.
//
//   SYSLOG-MSG      = HEADER SP STRUCTURED-DATA [SP MSG]
//   HEADER          = PRI VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID
//   PRI             = "<" PRIVAL ">"      PRIVAL = facility × 8 + severity (0–191)
//   VERSION         = "1"
//   TIMESTAMP       = RFC 3339 with TIME-SECFRAC (we write 6 digits, UTC "Z") / NILVALUE "-"
//   HOSTNAME        = 1*255 PRINTUSASCII    APP-NAME 1*48   PROCID 1*128   MSGID 1*32
//   STRUCTURED-DATA = NILVALUE / 1*SD-ELEMENT
//   SD-ELEMENT      = "[" SD-ID *(SP SD-PARAM) "]"        SD-ID here: zonewatch@<PEN>
//   SD-PARAM        = PARAM-NAME "=" %d34 PARAM-VALUE %d34
//   PARAM-VALUE     = UTF-8, with `"`, `\` and `]` escaped as `\"`, `\\`, `\]`
//   MSG             = the record (CEF, LEEF or ECS JSON), written without a BOM (MSG-ANY)
//
// Choices where the RFC leaves room:
//   - TIMESTAMP is the packet time of the alert (records stay reproducible); for flow and protocol
//     records it is their `@timestamp`, copied from the JSON line.
//   - MSGID is the record kind (`alert`, `flow`, `modbus`, ...).
//   - Severity from the alert's 0–10: 9–10 critical(2), 7–8 error(3), 4–6 warning(4),
//     1–3 notice(5), 0 informational(6); other records informational(6).
//   - C0 controls inside SD values (legal in the RFC, but they break LF framing and receivers
//     rewrite them) are written as spaces; MSG carries the exact values.

/// What goes into the RFC 5424 header and the SD-ID.
public struct SyslogOptions: Sendable, Equatable {
    /// Facility 0–23 (default 20, local4).
    public var facility: Int
    /// HOSTNAME field (PRINTUSASCII; anything else becomes `_`).
    public var hostname: String
    /// APP-NAME field.
    public var appName: String
    /// PROCID field.
    public var procID: String
    /// IANA private enterprise number in the SD-ID `zonewatch@<PEN>` (default 32473, the
    /// documentation number of RFC 5612, until ZoneWatch has its own).
    public var enterpriseNumber: Int

    /// Creates options.
    public init(facility: Int = 20, hostname: String, appName: String = "zonewatch", procID: String = "-",
                enterpriseNumber: Int = 32473) {
        self.facility = facility; self.hostname = hostname; self.appName = appName
        self.procID = procID; self.enterpriseNumber = enterpriseNumber
    }
}

/// RFC 5424 building blocks.
public enum Syslog5424 {
    /// The syslog severity (0–7) for an alert severity (0–10).
    public static func severity(forAlertSeverity s: Int) -> Int {
        switch s {
        case 9...: 2
        case 7...8: 3
        case 4...6: 4
        case 1...3: 5
        default: 6
        }
    }

    /// Appends `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID ` (with the trailing space).
    /// `timestamp` nil writes the NILVALUE.
    static func writeHeader(priority: Int, timestamp: PacketTime?, msgID: StaticString,
                            options: SyslogOptions, to out: inout [UInt8]) {
        writePriority(priority, to: &out)
        if let t = timestamp { t.writeRFC3339(to: &out) } else { out.append(UInt8(ascii: "-")) }
        writeRest(msgID: msgID, options: options, to: &out)
    }

    /// Appends `<PRI>1 `.
    static func writePriority(_ priority: Int, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "<")); out.append(decimal: max(0, min(191, priority))); out.append(ascii: ">1 ")
    }

    /// Appends ` HOSTNAME APP-NAME PROCID MSGID ` (what follows the timestamp).
    static func writeRest(msgID: StaticString, options: SyslogOptions, to out: inout [UInt8]) {
        writeIdentity(options: options, to: &out)
        out.append(ascii: msgID); out.append(0x20)
    }

    /// Appends ` HOSTNAME APP-NAME PROCID ` (the part of every header that only the options decide).
    static func writeIdentity(options: SyslogOptions, to out: inout [UInt8]) {
        out.append(0x20)
        headerField(options.hostname, max: 255, to: &out); out.append(0x20)
        headerField(options.appName, max: 48, to: &out); out.append(0x20)
        headerField(options.procID, max: 128, to: &out); out.append(0x20)
    }

    /// Appends a header field: PRINTUSASCII only (others → `_`), at most `max` octets, `-` when empty.
    static func headerField(_ s: String, max: Int, to out: inout [UInt8]) {
        var n = 0
        for b in s.utf8 where n < max {
            out.append(b >= 33 && b <= 126 ? b : UInt8(ascii: "_")); n += 1
        }
        if n == 0 { out.append(UInt8(ascii: "-")) }
    }

    /// Appends `[zonewatch@PEN` (the caller adds params and `]`).
    static func openElement(options: SyslogOptions, to out: inout [UInt8]) {
        out.append(ascii: "[zonewatch@"); out.append(decimal: options.enterpriseNumber)
    }

    /// Appends ` name="value"` with SD-PARAM escaping.
    public static func param(_ name: StaticString, _ value: String, to out: inout [UInt8]) {
        out.append(0x20); out.append(ascii: name); out.append(ascii: "=\"")
        out.append(value, special: { $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") || $0 == UInt8(ascii: "]") || $0 < 0x20 || $0 == 0x7F }) { b, out in
            if b < 0x20 || b == 0x7F { out.append(0x20) } else { out.append(0x5C); out.append(b) }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// Appends ` name="number"`.
    static func param(_ name: StaticString, number: Int64, to out: inout [UInt8]) {
        out.append(0x20); out.append(ascii: name); out.append(ascii: "=\"")
        out.append(decimal: number)
        out.append(UInt8(ascii: "\""))
    }

    /// Appends PARAM-VALUE text: `"` `\` `]` escaped, controls → space.
    public static func escapeParamValue(_ bytes: some Sequence<UInt8>, to out: inout [UInt8]) {
        for b in bytes {
            switch b {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "]"): out.append(0x5C); out.append(b)
            case 0..<0x20, 0x7F: out.append(0x20)
            default: out.append(b)
            }
        }
    }

    /// Appends the structured data of an alert: `[zonewatch@PEN rule=".." ...]` (`communityID`: its
    /// `communityIDText`, read once).
    static func writeAlertSD(_ a: Alert, communityID: InlineText, options: SyslogOptions, to out: inout [UInt8]) {
        openElement(options: options, to: &out)
        param("kind", "alert", to: &out)
        param("rule", a.ruleID, to: &out)
        param("sev", number: Int64(a.severity), to: &out)
        param("action", a.action, to: &out)
        param("category", a.category.rawValue, to: &out)
        param("frame", number: Int64(clamping: a.frame), to: &out)
        if let z = a.sourceZone { param("srcZone", z, to: &out) }
        if let z = a.destinationZone { param("dstZone", z, to: &out) }
        if let c = a.conduit { param("conduit", c, to: &out) }
        if !a.techniques.isEmpty {
            out.append(ascii: " technique=\"")
            for (i, t) in a.techniques.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                escapeParamValue(t.id.utf8, to: &out)
            }
            out.append(UInt8(ascii: "\""))
        }
        if !communityID.isEmpty { out.append(0x20); out.append(ascii: "communityId=\""); communityID.withBytes { escapeParamValue($0, to: &out) }; out.append(UInt8(ascii: "\"")) }
        out.append(UInt8(ascii: "]"))
    }

    /// Appends the `@timestamp` of an ECS JSON line that starts `{"@timestamp":"`, if that value is a
    /// plausible RFC 3339 text (digits, `-`, `:`, `.`, `T`, `Z`, `+`; 20–35 octets); else the NILVALUE.
    static func copyLeadingTimestamp(_ line: ArraySlice<UInt8>, to out: inout [UInt8]) {
        let prefix: StaticString = "{\"@timestamp\":\""
        let p = prefix.utf8CodeUnitCount
        var ok = line.count > p + 20
        if ok {
            for i in 0..<p where line[line.startIndex + i] != prefix.utf8Start[i] { ok = false; break }
        }
        if ok {
            let start = line.startIndex + p
            var end = start
            while end < line.endIndex, end - start <= 35 {
                let b = line[end]
                if b == UInt8(ascii: "\"") { break }
                let allowed = (b >= 0x30 && b <= 0x3A) || b == UInt8(ascii: "-") || b == UInt8(ascii: ".")
                    || b == UInt8(ascii: "T") || b == UInt8(ascii: "Z") || b == UInt8(ascii: "+")
                if !allowed { ok = false; break }
                end += 1
            }
            if ok, end < line.endIndex, line[end] == UInt8(ascii: "\""), end - start >= 20 {
                out.append(contentsOf: line[start..<end]); return
            }
        }
        out.append(UInt8(ascii: "-"))
    }
}
