// Readers for CEF, LEEF and RFC 5424 written from the specifications (not from our encoders), used
// to check that what ZoneWatch writes parses back, field by field, to the values it started from.

struct ParseError: Error, CustomStringConvertible {
    var description: String
    init(_ s: String) { description = s }
}

// MARK: - CEF (ArcSight "Implementing ArcSight CEF", rev. 25)

/// A parsed CEF record.
struct CEFRecord {
    var version: String
    var vendor: String
    var product: String
    var deviceVersion: String
    var signatureID: String
    var name: String
    var severity: String
    /// Extension pairs in order.
    var extensions: [(key: String, value: String)]

    subscript(key: String) -> String? { extensions.first { $0.key == key }?.value }

    /// The value of the custom field whose `<key>Label` is `label` (cs1..cs6, cn1..cn3, flexString1..2, c6a1..4).
    func custom(_ label: String) -> String? {
        guard let labelKey = extensions.first(where: { $0.key.hasSuffix("Label") && $0.value == label })?.key else { return nil }
        return self[String(labelKey.dropLast("Label".count))]
    }
}

/// Parses `CEF:Version|Vendor|Product|Version|SignatureID|Name|Severity|Extension`.
/// Header: only `\|` and `\\` are escapes. Extension: `key=value` pairs separated by spaces, where a
/// key is alphanumeric and a value runs to the space before the next unescaped `=`'s key; in values
/// `\\`, `\=`, `\n`, `\r` are the escapes. Any other escape is an error.
func parseCEF(_ text: String) throws -> CEFRecord {
    // Scalars, not Characters: a combining mark after `=` must not hide the `=`.
    let chars = Array(text.unicodeScalars)
    guard text.hasPrefix("CEF:") else { throw ParseError("no CEF: prefix") }
    var fields: [String] = []
    var current = String.UnicodeScalarView()
    var i = 4
    while fields.count < 7 {
        guard i < chars.count else { throw ParseError("header has \(fields.count) of 7 fields") }
        let c = chars[i]
        if c == "\\" {
            guard i + 1 < chars.count else { throw ParseError("dangling backslash in header") }
            let n = chars[i + 1]
            guard n == "|" || n == "\\" else { throw ParseError("bad header escape \\\(n)") }
            current.append(n); i += 2; continue
        }
        if c == "|" { fields.append(String(current)); current = String.UnicodeScalarView(); i += 1; continue }
        if c == "\n" || c == "\r" { throw ParseError("newline in header") }
        current.append(c); i += 1
    }
    let ext = Array(chars[i...])
    // Positions of unescaped `=`.
    var equals: [Int] = []
    var j = 0
    while j < ext.count {
        if ext[j] == "\\" { j += 2; continue }
        if ext[j] == "=" { equals.append(j) }
        j += 1
    }
    func isKeyChar(_ c: Unicode.Scalar) -> Bool {
        (0x30...0x39).contains(c.value) || (0x41...0x5A).contains(c.value) || (0x61...0x7A).contains(c.value)
    }
    var keyStarts: [Int] = []
    for e in equals {
        var k = e
        while k > 0 && ext[k - 1] != " " { k -= 1 }
        guard k < e, ext[k..<e].allSatisfy(isKeyChar) else {
            throw ParseError("bad extension key '\(String(String.UnicodeScalarView(ext[k..<e])))'")
        }
        keyStarts.append(k)
    }
    if let first = keyStarts.first, first != 0 { throw ParseError("text before the first extension key") }
    var pairs: [(key: String, value: String)] = []
    for (n, e) in equals.enumerated() {
        let key = String(String.UnicodeScalarView(ext[keyStarts[n]..<e]))
        let valueEnd = n + 1 < equals.count ? keyStarts[n + 1] - 1 : ext.count
        guard valueEnd >= e + 1 else { throw ParseError("empty pair") }
        if n + 1 < equals.count && ext[valueEnd] != " " { throw ParseError("pairs not space-separated") }
        pairs.append((key, try unescapeCEFValue(Array(ext[(e + 1)..<valueEnd]))))
    }
    return CEFRecord(version: fields[0], vendor: fields[1], product: fields[2], deviceVersion: fields[3],
                     signatureID: fields[4], name: fields[5], severity: fields[6], extensions: pairs)
}

private func unescapeCEFValue(_ chars: [Unicode.Scalar]) throws -> String {
    var out = String.UnicodeScalarView()
    var i = 0
    while i < chars.count {
        if chars[i] == "\\" {
            guard i + 1 < chars.count else { throw ParseError("dangling backslash in value") }
            switch chars[i + 1] {
            case "\\": out.append("\\")
            case "=": out.append("=")
            case "n": out.append("\n")
            case "r": out.append("\r")
            default: throw ParseError("bad value escape \\\(chars[i + 1])")
            }
            i += 2
        } else {
            if chars[i] == "\n" || chars[i] == "\r" { throw ParseError("raw newline in value") }
            out.append(chars[i]); i += 1
        }
    }
    return String(out)
}

// MARK: - LEEF (IBM "LEEF event components")

/// A parsed LEEF record.
struct LEEFRecord {
    var version: String
    var vendor: String
    var product: String
    var productVersion: String
    var eventID: String
    var delimiter: Character
    var attributes: [(key: String, value: String)]

    subscript(key: String) -> String? { attributes.first { $0.key == key }?.value }
}

/// Parses `LEEF:1.0|Vendor|Product|Version|EventID|attrs` (TAB-delimited) or
/// `LEEF:2.0|Vendor|Product|Version|EventID|Delimiter|attrs` (delimiter a character, `xHH` or
/// `0xHH`). Attributes split on the delimiter, each on its first `=`. No escapes exist.
func parseLEEF(_ text: String) throws -> LEEFRecord {
    guard text.hasPrefix("LEEF:") else { throw ParseError("no LEEF: prefix") }
    let parts = text.split(separator: "|", maxSplits: 6, omittingEmptySubsequences: false)
    let version = String(parts[0].dropFirst(5))
    let headerCount = version == "2.0" ? 6 : version == "1.0" ? 5 : -1
    guard headerCount > 0 else { throw ParseError("unknown LEEF version \(version)") }
    guard parts.count >= headerCount + 1 else { throw ParseError("short LEEF header") }
    var delimiter: Character = "\t"
    var rest: Substring
    if version == "2.0" {
        let d = parts[5]
        if d.count == 1 { delimiter = d.first! }
        else if d.hasPrefix("0x") || d.hasPrefix("x"), let v = UInt8(d.drop(while: { $0 != "x" }).dropFirst(), radix: 16) {
            delimiter = Character(Unicode.Scalar(v))
        } else { throw ParseError("bad delimiter '\(d)'") }
        rest = parts[6]
    } else {
        rest = text.split(separator: "|", maxSplits: 5, omittingEmptySubsequences: false)[5]
    }
    var attrs: [(String, String)] = []
    for a in rest.split(separator: delimiter, omittingEmptySubsequences: false) {
        guard let eq = a.firstIndex(of: "=") else { throw ParseError("attribute without '=': '\(a)'") }
        let key = String(a[..<eq])
        guard !key.isEmpty, key.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber) }) else { throw ParseError("bad key '\(key)'") }
        let value = String(a[a.index(after: eq)...])
        if value.contains("\n") || value.contains("\r") { throw ParseError("newline in value of \(key)") }
        attrs.append((key, value))
    }
    return LEEFRecord(version: version, vendor: String(parts[1]), product: String(parts[2]), productVersion: String(parts[3]),
                      eventID: String(parts[4]), delimiter: delimiter, attributes: attrs.map { (key: $0.0, value: $0.1) })
}

// MARK: - RFC 5424

/// A parsed RFC 5424 message.
struct SyslogMessage {
    var priority: Int
    var version: Int
    var timestamp: String
    var hostname: String
    var appName: String
    var procID: String
    var msgID: String
    var structuredData: [(id: String, params: [(name: String, value: String)])]
    var message: [UInt8]

    var messageText: String { String(decoding: message, as: UTF8.self) }

    func param(_ id: String, _ name: String) -> String? {
        structuredData.first { $0.id == id }?.params.first { $0.name == name }?.value
    }
}

/// Parses `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD [MSG]` per RFC 5424 §6.
func parseSyslog5424(_ bytes: [UInt8]) throws -> SyslogMessage {
    var i = 0
    func expect(_ c: UInt8) throws {
        guard i < bytes.count, bytes[i] == c else { throw ParseError("expected '\(Character(Unicode.Scalar(c)))' at \(i)") }
        i += 1
    }
    func token(max: Int) throws -> String {
        let start = i
        while i < bytes.count, bytes[i] != 0x20 {
            guard bytes[i] >= 33 && bytes[i] <= 126 else { throw ParseError("non-PRINTUSASCII at \(i)") }
            i += 1
        }
        guard i > start, i - start <= max else { throw ParseError("bad header field length at \(start)") }
        return String(decoding: bytes[start..<i], as: UTF8.self)
    }
    try expect(UInt8(ascii: "<"))
    var pri = 0, digits = 0
    while i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39 { pri = pri * 10 + Int(bytes[i] - 0x30); i += 1; digits += 1 }
    guard (1...3).contains(digits), pri <= 191 else { throw ParseError("bad PRI") }
    try expect(UInt8(ascii: ">"))
    try expect(UInt8(ascii: "1")); try expect(0x20)
    let timestamp = try token(max: 32); try expect(0x20)
    if timestamp != "-" { try checkRFC3339(timestamp) }
    let host = try token(max: 255); try expect(0x20)
    let app = try token(max: 48); try expect(0x20)
    let procID = try token(max: 128); try expect(0x20)
    let msgID = try token(max: 32); try expect(0x20)
    var sd: [(String, [(String, String)])] = []
    if i < bytes.count, bytes[i] == UInt8(ascii: "-") {
        i += 1
    } else {
        while i < bytes.count, bytes[i] == UInt8(ascii: "[") {
            i += 1
            let id = try sdName()
            var params: [(String, String)] = []
            while i < bytes.count, bytes[i] == 0x20 {
                i += 1
                let name = try sdName()
                try expect(UInt8(ascii: "=")); try expect(UInt8(ascii: "\""))
                var value: [UInt8] = []
                while true {
                    guard i < bytes.count else { throw ParseError("unterminated PARAM-VALUE") }
                    let b = bytes[i]
                    if b == UInt8(ascii: "\\"), i + 1 < bytes.count,
                       [UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "]")].contains(bytes[i + 1]) {
                        value.append(bytes[i + 1]); i += 2; continue
                    }
                    if b == UInt8(ascii: "\"") { i += 1; break }
                    if b == UInt8(ascii: "]") { throw ParseError("unescaped ] in PARAM-VALUE") }
                    value.append(b); i += 1
                }
                guard let text = String(validating: value, as: UTF8.self) else { throw ParseError("PARAM-VALUE not UTF-8") }
                params.append((name, text))
            }
            try expect(UInt8(ascii: "]"))
            sd.append((id, params))
        }
        guard !sd.isEmpty else { throw ParseError("no STRUCTURED-DATA") }
    }
    var msg: [UInt8] = []
    if i < bytes.count {
        try expect(0x20)
        msg = Array(bytes[i...])
    }
    return SyslogMessage(priority: pri, version: 1, timestamp: timestamp, hostname: host, appName: app, procID: procID,
                         msgID: msgID, structuredData: sd.map { (id: $0.0, params: $0.1.map { (name: $0.0, value: $0.1) }) },
                         message: msg)

    func sdName() throws -> String {
        let start = i
        while i < bytes.count, bytes[i] >= 33, bytes[i] <= 126,
              bytes[i] != UInt8(ascii: "="), bytes[i] != UInt8(ascii: "]"), bytes[i] != UInt8(ascii: "\"") { i += 1 }
        guard i > start, i - start <= 32 else { throw ParseError("bad SD-NAME at \(start)") }
        return String(decoding: bytes[start..<i], as: UTF8.self)
    }
}

/// `FULL-DATE "T" FULL-TIME` with TIME-SECFRAC of 1–6 digits and `Z` or `±hh:mm`.
func checkRFC3339(_ s: String) throws {
    let c = Array(s.utf8)
    func digit(_ i: Int) -> Bool { i < c.count && c[i] >= 0x30 && c[i] <= 0x39 }
    guard c.count >= 20, (0..<4).allSatisfy(digit), c[4] == UInt8(ascii: "-"), digit(5), digit(6), c[7] == UInt8(ascii: "-"),
          digit(8), digit(9), c[10] == UInt8(ascii: "T"), digit(11), digit(12), c[13] == UInt8(ascii: ":"),
          digit(14), digit(15), c[16] == UInt8(ascii: ":"), digit(17), digit(18) else { throw ParseError("bad RFC 3339 '\(s)'") }
    var i = 19
    if c[i] == UInt8(ascii: ".") {
        i += 1
        let start = i
        while digit(i) { i += 1 }
        guard (1...6).contains(i - start) else { throw ParseError("bad TIME-SECFRAC in '\(s)'") }
    }
    guard i < c.count else { throw ParseError("no offset in '\(s)'") }
    if c[i] == UInt8(ascii: "Z") { guard i + 1 == c.count else { throw ParseError("junk after Z") }; return }
    guard c.count == i + 6, c[i] == UInt8(ascii: "+") || c[i] == UInt8(ascii: "-"), digit(i + 1), digit(i + 2),
          c[i + 3] == UInt8(ascii: ":"), digit(i + 4), digit(i + 5) else { throw ParseError("bad offset in '\(s)'") }
}

/// Splits octet-counted frames (`MSG-LEN SP MSG`, RFC 6587 §3.4.1).
func splitOctetCounted(_ bytes: [UInt8]) throws -> [[UInt8]] {
    var out: [[UInt8]] = []
    var i = 0
    while i < bytes.count {
        var len = 0, digits = 0
        while i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39 { len = len * 10 + Int(bytes[i] - 0x30); i += 1; digits += 1 }
        guard digits > 0, i < bytes.count, bytes[i] == 0x20, i + 1 + len <= bytes.count else { throw ParseError("bad frame at \(i)") }
        out.append(Array(bytes[(i + 1)..<(i + 1 + len)]))
        i += 1 + len
    }
    return out
}
