import Foundation
import Testing
import Wire
import Records
import Output

/// Encodes `a` in `format` without a syslog envelope.
func encoded(_ a: Alert, _ format: OutputFormat, syslog: SyslogOptions? = nil) -> [UInt8] {
    var e = MessageEncoder(format: format, syslog: syslog, productVersion: "9.9|9")
    e.encode(a)
    return e.message
}

@Suite struct CEFTests {
    @Test func hostileAlertParsesBackFieldByField() throws {
        let a = Sample.hostile()
        let r = try parseCEF(text(encoded(a, .cef)))
        #expect(r.version == "0")
        #expect(r.vendor == "ZoneWatch" && r.product == "ZoneWatch")
        #expect(r.deviceVersion == "9.9|9")
        #expect(r.signatureID == Hostile.ruleID)
        #expect(r.name == Hostile.ruleName)
        #expect(r.severity == "8")
        #expect(r["rt"] == "1704067200123")
        #expect(r["start"] == "1704067199000")
        #expect(r["end"] == "1704067200123")
        #expect(r["cnt"] == "3")
        #expect(r["src"] == "10.2.1.20" && r["spt"] == "49152")
        #expect(r["dst"] == "10.10.1.10" && r["dpt"] == "502")
        #expect(r["proto"] == "TCP" && r["app"] == "modbus")
        #expect(r["act"] == "modbus-write-outside-conduit" && r["cat"] == "conduit")
        #expect(r.custom("sourceZone") == Hostile.sourceZone)
        #expect(r.custom("destinationZone") == Hostile.destinationZone)
        #expect(r.custom("conduit") == Hostile.conduit)
        #expect(r.custom("attackTechnique") == "T0855,T0836")
        #expect(r.custom("function") == Hostile.function)
        #expect(r.custom("communityId") == "1:LQU9qZlK+B5F3KDmev6m5PMibrg=")
        #expect(r.custom("unitId") == "1")
        #expect(r.custom("securityLevel") == "3")
        #expect(r.custom("access") == "write")
        #expect(r["msg"] == Hostile.message)
        #expect(r.extensions.last?.key == "msg")
    }

    @Test func headerEscapesPipeAndBackslashAndFlattensNewlines() {
        var a = Sample.numbered(1)
        a.ruleName = "a|b\\c\nd=e"
        let t = text(encoded(a, .cef))
        #expect(t.contains("|a\\|b\\\\c d=e|5|"))
    }

    @Test func extensionEscapesExactlyPerSpec() {
        var a = Sample.numbered(1)
        a.message = "x=y\\z\nw\rv|u t\u{1}"
        let t = text(encoded(a, .cef))
        #expect(t.hasSuffix(" msg=x\\=y\\\\z\\nw\\rv|u t "))
    }

    @Test func ipv6EndpointsUseLabelledC6aFields() throws {
        let r = try parseCEF(text(encoded(Sample.numbered(7), .cef)))
        #expect(r["src"] == nil && r["dst"] == nil)
        #expect(r.custom("sourceAddress") == "2001:db8::20")
        #expect(r.custom("destinationAddress") == "2001:db8::10")
    }

    @Test(arguments: [-3, 0, 5, 10, 42])
    func severityIsClampedToZeroToTen(severity: Int) throws {
        var a = Sample.numbered(1); a.severity = severity
        let r = try parseCEF(text(encoded(a, .cef)))
        #expect(r.severity == String(max(0, min(10, severity))))
    }

    @Test func parserRejectsWhatTheSpecForbids() {
        #expect(throws: ParseError.self) { try parseCEF("CEF:0|a|b|c|d|e|5|msg=bad=unescaped") }
        #expect(throws: ParseError.self) { try parseCEF("CEF:0|a|b|c|d|e|5|msg=x\\q") }
        #expect(throws: ParseError.self) { try parseCEF("CEF:0|a|b|c|d|e") }
    }
}

@Suite struct LEEFTests {
    @Test func leef1HostileAlertParsesBack() throws {
        let a = Sample.hostile()
        let r = try parseLEEF(text(encoded(a, .leef)))
        #expect(r.version == "1.0" && r.delimiter == "\t")
        #expect(r.vendor == "ZoneWatch" && r.product == "ZoneWatch")
        #expect(r.productVersion == "9.99")                       // `|` stripped from header fields
        #expect(r.eventID == "ZW-TEST1\\x")
        #expect(r["devTime"] == "2024-01-01T00:00:00.123+0000")
        #expect(r["devTimeFormat"] == LEEFEncoder.devTimeFormat)
        #expect(r["sev"] == "8" && r["cat"] == "conduit")
        #expect(r["src"] == "10.2.1.20" && r["dst"] == "10.10.1.10")
        #expect(r["srcPort"] == "49152" && r["dstPort"] == "502" && r["proto"] == "TCP")
        #expect(r["ruleName"] == Hostile.ruleName)
        #expect(r["srcZone"] == Hostile.sourceZone)
        // LEEF has no escapes: the delimiter (TAB) and CR/LF inside values become spaces.
        #expect(r["dstZone"] == Hostile.destinationZone.replacingOccurrences(of: "\t", with: " "))
        #expect(r["conduit"] == Hostile.conduit)
        #expect(r["technique"] == "T0855,T0836")
        #expect(r["function"] == Hostile.function)
        #expect(r["unitId"] == "1" && r["securityLevel"] == "3" && r["count"] == "3" && r["frame"] == "42")
        #expect(r["msg"] == flattened(Hostile.message))
    }

    @Test func leef2ChoosesADelimiterNoValueContainsSoTabsSurvive() throws {
        let a = Sample.hostile()
        let t = text(encoded(a, .leef2))
        let r = try parseLEEF(t)
        #expect(r.version == "2.0")
        #expect(r.delimiter == "^")
        #expect(r["dstZone"] == Hostile.destinationZone)               // TAB kept
        #expect(r["msg"] == Hostile.message.replacingOccurrences(of: "\n", with: " ").replacingOccurrences(of: "\r", with: " "))
        #expect(r["srcZone"] == Hostile.sourceZone)
    }

    @Test func leef2SkipsDelimitersThatOccurInValues() throws {
        var a = Sample.numbered(3)
        a.message = "carets ^ and tildes ~ and backticks ` here"
        let r = try parseLEEF(text(encoded(a, .leef2)))
        #expect(r.delimiter == "#")
        #expect(r["msg"] == a.message)
    }

    @Test func leef2FallsBackToHexTabAndThenToReplacement() throws {
        var a = Sample.numbered(3)
        a.message = "^ ~ ` # ; !"
        let t = text(encoded(a, .leef2))
        #expect(t.contains("|x09|"))
        #expect(try parseLEEF(t)["msg"] == a.message)
        a.message = "^ ~ ` # ; ! \t"
        let r = try parseLEEF(text(encoded(a, .leef2)))
        #expect(r.delimiter == "^")
        #expect(r["msg"] == "  ~ ` # ; ! \t")
    }

    private func flattened(_ s: String) -> String {
        s.replacingOccurrences(of: "\t", with: " ").replacingOccurrences(of: "\n", with: " ").replacingOccurrences(of: "\r", with: " ")
    }
}

@Suite struct SyslogTests {
    @Test(arguments: OutputFormat.allCases)
    func alertEnvelopeFollowsRFC5424(format: OutputFormat) throws {
        let a = Sample.hostile()
        let msg = try parseSyslog5424(encoded(a, format, syslog: testSyslog))
        #expect(msg.priority == 20 * 8 + 3)              // local4, severity 8 → error(3)
        #expect(msg.timestamp == "2024-01-01T00:00:00.123456Z")
        #expect(msg.hostname == "zw-test" && msg.appName == "zonewatch" && msg.procID == "4242" && msg.msgID == "alert")
        let id = "zonewatch@32473"
        #expect(msg.param(id, "kind") == "alert")
        #expect(msg.param(id, "rule") == Hostile.ruleID)
        #expect(msg.param(id, "sev") == "8")
        #expect(msg.param(id, "frame") == "42")
        #expect(msg.param(id, "srcZone") == Hostile.sourceZone)            // `"`, `\`, `]` escaped and back
        #expect(msg.param(id, "dstZone") == Hostile.destinationZone.replacingOccurrences(of: "\t", with: " "))
        #expect(msg.param(id, "conduit") == Hostile.conduit)
        #expect(msg.param(id, "technique") == "T0855,T0836")
        #expect(msg.message == encoded(a, format))                          // MSG is the bare record
    }

    @Test(arguments: [(0, 6), (1, 5), (3, 5), (4, 4), (6, 4), (7, 3), (8, 3), (9, 2), (10, 2)])
    func priorityFromFacilityAndSeverity(alertSeverity: Int, syslogSeverity: Int) throws {
        var a = Sample.numbered(1); a.severity = alertSeverity
        var o = testSyslog; o.facility = 16
        let msg = try parseSyslog5424(encoded(a, .cef, syslog: o))
        #expect(msg.priority == 16 * 8 + syslogSeverity)
    }

    @Test func headerFieldsAreSanitised() throws {
        let o = SyslogOptions(facility: 1, hostname: "host name\u{e9}", appName: String(repeating: "a", count: 60), procID: "")
        let msg = try parseSyslog5424(encoded(Sample.numbered(1), .ecs, syslog: o))
        #expect(msg.hostname == "host_name__")
        #expect(msg.appName.count == 48)
        #expect(msg.procID == "-")
    }

    @Test func recordLinesKeepTheirTimestampAndKind() throws {
        var e = MessageEncoder(format: .cef, syslog: testSyslog)
        let line = #"{"@timestamp":"2024-05-06T07:08:09.000010Z","flow":{"bytes":1}}"#
        e.encode(record: .flow, line: ArraySlice(bytes(line)))
        let msg = try parseSyslog5424(e.message)
        #expect(msg.timestamp == "2024-05-06T07:08:09.000010Z")
        #expect(msg.msgID == "flow" && msg.priority == 20 * 8 + 6)
        #expect(msg.param("zonewatch@32473", "kind") == "flow")
        #expect(msg.messageText == line)
        e.encode(record: .modbus, line: ArraySlice(bytes(#"{"no":"timestamp"}"#)))
        #expect(try parseSyslog5424(e.message).timestamp == "-")
    }
}

@Suite struct ECSTests {
    @Test func hostileAlertIsValidJSONWithDocumentedTypes() throws {
        let a = Sample.hostile()
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(encoded(a, .ecs))) as? [String: Any])
        #expect(obj["@timestamp"] as? String == "2024-01-01T00:00:00.123456Z")
        let event = try #require(obj["event"] as? [String: Any])
        #expect(event["kind"] as? String == "alert")
        #expect(event["severity"] as? Int == 8)
        #expect(event["count"] as? Int == 3)
        #expect(event["start"] is String && event["end"] is String)
        let rule = try #require(obj["rule"] as? [String: Any])
        #expect(rule["id"] as? String == Hostile.ruleID && rule["name"] as? String == Hostile.ruleName)
        let source = try #require(obj["source"] as? [String: Any])
        #expect(source["ip"] as? String == "10.2.1.20" && source["port"] as? Int == 49152)
        let network = try #require(obj["network"] as? [String: Any])
        #expect(network["transport"] as? String == "tcp" && network["protocol"] as? String == "modbus")
        let threat = try #require(obj["threat"] as? [String: Any])
        let technique = try #require(threat["technique"] as? [String: Any])
        #expect(technique["id"] as? [String] == ["T0855", "T0836"])
        let ot = try #require(obj["ot"] as? [String: Any])
        #expect(ot["source_zone"] as? String == Hostile.sourceZone)
        #expect(ot["destination_zone"] as? String == Hostile.destinationZone)
        #expect(ot["conduit"] as? String == Hostile.conduit)
        #expect(ot["unit_id"] as? Int == 1 && ot["security_level"] as? Int == 3)
        #expect(ot["iec62443"] as? [String] == ["SR 5.2", "SR 3.1"])
        #expect(obj["message"] as? String == Hostile.message)
        #expect(!encoded(a, .ecs).contains(0x0A))
    }
}
