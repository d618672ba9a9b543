import Testing
import Wire
import Records
@testable import Output

/// The encoders copy what repeats from message to message (timestamp text of the current second, the
/// syslog identity, the CEF header prefix); the copies must never differ from writing it afresh.
@Suite struct EncoderCacheTests {
    @Test func cachedTimestampsMatchRFC3339() {
        var cache = TimestampText()
        let seconds: [Int64] = [1_704_067_200, 1_704_067_200, 1_704_067_201, 0, -1, -86_401, 253_402_300_799,
                                253_402_300_800, 951_782_400, 1_704_067_200]
        for s in seconds {
            for us: Int32 in [0, 7, 123_456, 999_999, 500_000] {
                var t = PacketTime(seconds: s, microseconds: us)
                var cached: [UInt8] = [], fresh: [UInt8] = []
                cache.write(t, to: &cached); t.writeRFC3339(to: &fresh)
                #expect(cached == fresh, "\(s) \(us)")
                t.microseconds = 1_000_000 + us          // out of range: written uncached, still identical
                cached.removeAll(); fresh.removeAll()
                cache.write(t, to: &cached); t.writeRFC3339(to: &fresh)
                #expect(cached == fresh)
            }
        }
    }

    @Test func syslogHeaderMatchesTheUncachedOne() {
        let options = SyslogOptions(facility: 4, hostname: "plant gw\u{00e9}", appName: "zonewatch", procID: "", enterpriseNumber: 1)
        var encoder = MessageEncoder(format: .cef, syslog: options)
        for n in [1, 2, 1500, 1501] {
            let alert = Sample.numbered(n, severity: n % 11)
            encoder.encode(alert)
            var expected: [UInt8] = []
            Syslog5424.writeHeader(priority: 4 * 8 + Syslog5424.severity(forAlertSeverity: alert.severity),
                                   timestamp: alert.time, msgID: "alert", options: options, to: &expected)
            Syslog5424.writeAlertSD(alert, communityID: alert.communityIDText, options: options, to: &expected)
            expected.append(0x20)
            CEFEncoder(version: ZoneWatchVersion.current).write(alert, to: &expected)
            #expect(encoder.message == expected)
        }
        let line = Array(#"{"@timestamp":"2024-01-01T00:00:00.000001Z","a":1}"#.utf8)
        encoder.encode(record: .flow, line: line[...])
        var expected: [UInt8] = []
        Syslog5424.writePriority(4 * 8 + 6, to: &expected)
        Syslog5424.copyLeadingTimestamp(line[...], to: &expected)
        Syslog5424.writeRest(msgID: "flow", options: options, to: &expected)
        expected.append(contentsOf: Array(#"[zonewatch@1 kind="flow"] "#.utf8) + line)
        #expect(encoder.message == expected)
    }

    @Test func cefPrefixFollowsVendorProductAndVersion() throws {
        var cef = CEFEncoder(version: "1|2")
        cef.vendor = "Acme\\Corp"
        cef.product = "Zone|Watch"
        var out: [UInt8] = []
        cef.write(Sample.hostile(), to: &out)
        #expect(String(decoding: out, as: UTF8.self).hasPrefix(#"CEF:0|Acme\\Corp|Zone\|Watch|1\|2|"#))
        cef.version = "3"
        out.removeAll()
        cef.write(Sample.hostile(), to: &out)
        #expect(String(decoding: out, as: UTF8.self).hasPrefix(#"CEF:0|Acme\\Corp|Zone\|Watch|3|"#))
    }

    /// An alert whose Community ID detection deferred (`Alert.deferCommunityID`) encodes, in every format with and
    /// without the syslog envelope, exactly as the same alert with that ID stored.
    @Test func deferredCommunityIDEncodesAsStored() {
        let syslog = SyslogOptions(facility: 4, hostname: "gw", appName: "zonewatch", procID: "1", enterpriseNumber: 1)
        var deferred = Sample.hostile()
        deferred.deferCommunityID(ipProtocol: 6)
        var stored = deferred
        stored.communityIDText = CommunityIDHasher.text(stored.source!, stored.destination!, ipProtocol: 6)
        #expect(deferred.communityIDDeferred && !stored.communityIDDeferred && stored.communityIDText.count == 30)
        for format in OutputFormat.allCases {
            for options in [nil, syslog] {
                var a = MessageEncoder(format: format, syslog: options), b = MessageEncoder(format: format, syslog: options)
                a.encode(deferred); b.encode(stored)
                #expect(a.message == b.message, "\(format) \(options == nil ? "bare" : "syslog")")
                let text = String(decoding: a.message, as: UTF8.self)
                // (Its trailing "=" is escaped in CEF and LEEF values.)
                #expect(text.contains(stored.communityID!.dropLast()), "\(format): \(text)")
            }
        }
    }
}
