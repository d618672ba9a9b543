import Foundation
import Testing
import Wire
import Records
import Output

/// The URL of an output to `route` of `receiver` in `format`, with a private spool.
func url(_ receiver: Receiver, _ route: Route, format: OutputFormat, spool: String, extra: String = "") -> String {
    let port = receiver.ports[route]!
    var u: String
    switch route {
    case .udp: u = "syslog+udp://127.0.0.1:\(port)?format=\(format)&max_size=8192"
    case .tcpOctet: u = "syslog+tcp://127.0.0.1:\(port)?format=\(format)&framing=octet&spool=\(spool)"
    case .tcpLF: u = "syslog+tcp://127.0.0.1:\(port)?format=\(format)&framing=lf&spool=\(spool)"
    case .tls:
        u = "syslog+tls://127.0.0.1:\(port)?format=\(format)&ca=\(receiver.pki.ca)&spool=\(spool)"
        if receiver.kind == .syslogNG { u += "&cert=\(receiver.pki.clientCert)&key=\(receiver.pki.clientKey)" }
    }
    return u + "&hostname=zw-test&procid=4242&records=alert,flow" + extra
}

/// Which output stream a stored message came from: its MSG's format, or `flow`.
func streamOf(_ raw: [UInt8]) -> String {
    guard let m = try? parseSyslog5424(raw) else { return "unparsable" }
    if m.msgID == "flow" { return "flow" }
    let t = m.messageText
    return t.hasPrefix("CEF:") ? "cef" : t.hasPrefix("LEEF:1.0") ? "leef" : t.hasPrefix("LEEF:2.0") ? "leef2" : "ecs"
}

@Suite(.serialized, .enabled(if: ReceiverInstall.available, Comment(rawValue: ReceiverInstall.skipReason ?? "")))
struct ReceiverTests {
    static let cases: [(ReceiverKind, Route)] = [
        (.rsyslog, .udp), (.rsyslog, .tcpOctet), (.rsyslog, .tcpLF), (.rsyslog, .tls),
        (.syslogNG, .udp), (.syslogNG, .tcpOctet), (.syslogNG, .tcpLF), (.syslogNG, .tls),
    ]

    /// Every format over every route to both receivers: what they store is byte-identical to what
    /// was sent, and parses back (RFC 5424, then CEF/LEEF/JSON) to the hostile values.
    @Test(arguments: cases)
    func storesExactlyWhatWasSent(kind: ReceiverKind, route: Route) throws {
        let tmp = TempDir("rx-\(kind)-\(route)")
        let pki = try TestPKI(in: tmp.path)
        let receiver = try Receiver(kind, in: tmp.path, pki: pki)
        try receiver.start()
        defer { receiver.stop() }

        var expected: [[UInt8]] = []
        let flowLine = bytes(#"{"@timestamp":"2024-01-01T00:00:01.000002Z","flow":{"note":"tab\there \"q\" ]"}}"#)
        for format in OutputFormat.allCases {
            let outputs = try OutputSet(specs: [try OutputSpec.parse(url(receiver, route, format: format, spool: tmp.path + "/spool-\(format)"))])
            var encoder = MessageEncoder(format: format, syslog: testSyslog)
            var alerts = [Sample.hostile()]
            for n in 1...40 { alerts.append(Sample.numbered(n)) }
            for a in alerts {
                outputs.deliver(a)
                encoder.encode(a); expected.append(encoder.message)
            }
            outputs.deliver(record: .flow, line: flowLine[...])
            outputs.deliver(record: .modbus, line: flowLine[...])          // filtered out by records=
            encoder.encode(record: .flow, line: flowLine[...]); expected.append(encoder.message)
            if route == .udp { usleep(20_000) }
            let report = outputs.shutdown(deadline: 10)[0]
            #expect(report.finished)
            #expect(report.sent == UInt64(alerts.count + 1), "\(report.summary)")
            #expect(report.dropped == 0 && report.inSpool == 0 && report.pending == 0, "\(report.summary)")
        }

        let arrived = waitUntil(seconds: 15) { receiver.messages(route).count >= expected.count }
        let stored = receiver.messages(route)
        #expect(arrived, "stored \(stored.count) of \(expected.count); receiver log: \(receiver.log)")
        #expect(stored.count == expected.count)
        // One connection per format: a receiver may interleave connections, so order is compared
        // within each format's stream.
        let storedByFormat = Dictionary(grouping: stored, by: streamOf)
        let expectedByFormat = Dictionary(grouping: expected, by: streamOf)
        #expect(Set(storedByFormat.keys) == Set(expectedByFormat.keys))
        for (format, want) in expectedByFormat {
            let got = storedByFormat[format] ?? []
            #expect(got.count == want.count, "\(format): stored \(got.count) of \(want.count)")
            for (i, (g, w)) in zip(got, want).enumerated() {
                #expect(g == w, "\(format) message \(i) differs:\n got \(text(g))\nwant \(text(w))")
            }
        }

        // Parse what the receiver stored, from the specs, back to the hostile values.
        var hostileSeen = 0
        for raw in stored {
            let msg = try parseSyslog5424(raw)
            #expect(msg.hostname == "zw-test" && msg.procID == "4242")
            if msg.msgID == "flow" {
                #expect(msg.message == flowLine)
                continue
            }
            guard msg.param("zonewatch@32473", "frame") == "42" else { continue }
            hostileSeen += 1
            #expect(msg.param("zonewatch@32473", "srcZone") == Hostile.sourceZone)
            #expect(msg.param("zonewatch@32473", "conduit") == Hostile.conduit)
            let body = msg.messageText
            if body.hasPrefix("CEF:") {
                let cef = try parseCEF(body)
                #expect(cef["msg"] == Hostile.message)
                #expect(cef.name == Hostile.ruleName && cef.signatureID == Hostile.ruleID)
                #expect(cef.custom("destinationZone") == Hostile.destinationZone)
            } else if body.hasPrefix("LEEF:2.0") {
                let leef = try parseLEEF(body)
                #expect(leef["dstZone"] == Hostile.destinationZone)
                #expect(leef["srcZone"] == Hostile.sourceZone && leef["function"] == Hostile.function)
            } else if body.hasPrefix("LEEF:1.0") {
                let leef = try parseLEEF(body)
                #expect(leef["srcZone"] == Hostile.sourceZone && leef["conduit"] == Hostile.conduit)
            } else {
                let obj = try #require(try JSONSerialization.jsonObject(with: Data(msg.message)) as? [String: Any])
                #expect(obj["message"] as? String == Hostile.message)
            }
        }
        #expect(hostileSeen == OutputFormat.allCases.count)

        // TLS sessions were closed with close_notify: neither receiver complains of a truncated session.
        receiver.stop()
        if route == .tls {
            #expect(!receiver.log.contains("non-properly terminated") && !receiver.log.contains("SSL error"), "\(receiver.log)")
        }
    }

    /// TLS refuses a server whose certificate does not chain to the configured CA or does not
    /// match the host, and keeps the records in the spool instead of dropping them.
    @Test(arguments: ["ca-other", "name-mismatch"])
    func tlsVerifiesTheServer(variant: String) throws {
        let tmp = TempDir("tls-\(variant)")
        let pki = try TestPKI(in: tmp.path)
        let receiver = try Receiver(.rsyslog, in: tmp.path, pki: pki)
        try receiver.start()
        defer { receiver.stop() }
        let port = receiver.ports[.tls]!
        let u = variant == "ca-other"
            ? "syslog+tls://127.0.0.1:\(port)?format=cef&ca=\(pki.otherCA)&spool=\(tmp.path)/spool"
            : "syslog+tls://127.0.0.1:\(port)?format=cef&ca=\(pki.ca)&server_name=wrong.example&spool=\(tmp.path)/spool"
        let outputs = try OutputSet(specs: [try OutputSpec.parse(u)])
        for n in 1...20 { outputs.deliver(Sample.numbered(n)) }
        #expect(waitUntil(seconds: 5) { (outputs.statsSnapshot()[0].connectFailures) >= 1 })
        let r = outputs.shutdown(deadline: 0.5)[0]
        #expect(r.sent == 0 && r.dropped == 0)
        #expect(r.inSpool == 20, "\(r.summary)")
        #expect(r.lastError?.contains("certificate") == true, "\(r.lastError ?? "no error")")
        #expect(receiver.messages(.tls).isEmpty)
    }

    /// The receiver is stopped in the middle of a stream of thousands of alerts and started again
    /// while the stream goes on: every alert arrives exactly once and in order (the output saw the
    /// connection die, spooled while the receiver was down, reconnected and replayed the spool).
    ///
    /// Two outages of 1000 alerts each. A stop falls between two alerts: once the receiver's TCP
    /// acknowledged alert 1500 and the receiver stored it, it gets SIGTERM and the test waits for it to exit; alert 1501 then
    /// goes into a dead connection and must be sent again. SIGTERM with records in flight is not exactly-once with any plain syslog
    /// sender: rsyslog's kernel acknowledges bytes that arrive after its last read and discards them
    /// on close (seen for the first record after SIGTERM in about 1 run in 20, TCP and TLS alike),
    /// and over TLS it sometimes resets before acknowledging records it stored (duplicates). Only an
    /// application-level acknowledgement (RELP) closes that window.
    @Test(arguments: [Route.tcpOctet, Route.tls])
    func receiverRestartLosesAndDuplicatesNothing(route: Route) throws {
        let tmp = TempDir("restart-\(route)")
        let pki = try TestPKI(in: tmp.path)
        let receiver = try Receiver(.rsyslog, in: tmp.path, pki: pki)
        try receiver.start()
        defer { receiver.stop() }
        let outputs = try OutputSet(specs: [try OutputSpec.parse(url(receiver, route, format: .cef, spool: tmp.path + "/spool"))])

        // Handed over as the alert pipeline does: through a feed, held while the output is busy.
        let feed = outputs.alertFeed()
        var pending: [Alert] = []
        let total = 6000
        var slowest = 0.0
        for n in 1...total {
            let t0 = Date()
            pending.append(Sample.numbered(n))
            feed.deliver(&pending, now: false)
            slowest = max(slowest, Date().timeIntervalSince(t0))
            if n % 20 == 0 { usleep(5_000) }                   // a replay raising alerts over ~1.5 s
            if n == 1500 || n == 3500 {
                feed.deliver(&pending, now: true)
                #expect(waitUntil(seconds: 15) { outputs.statsSnapshot()[0].sent == UInt64(n) }, "stuck before stop at \(n)")
                // Acknowledged by the receiver's TCP is not yet stored: rsyslog discards what it has read but not
                // written out when SIGTERM comes (100 records once, over TLS, in a loaded CI run). The outage
                // starts once alert n is stored, so that the test checks our side of the restart.
                #expect(waitUntil(seconds: 60) { receiver.messages(route).count >= n }, "receiver never stored alert \(n)")
                receiver.stop()
            }
            if n == 2500 || n == 4500 { try receiver.start() }
        }
        feed.deliver(&pending, now: true)
        let report = outputs.shutdown(deadline: 30)[0]
        #expect(report.sent == UInt64(total), "\(report.summary)")
        #expect(report.dropped == 0 && report.inSpool == 0 && report.pending == 0, "\(report.summary)")
        #expect(report.spooled > 0 && report.replayed > 0, "the outage should have gone through the spool: \(report.summary)")
        #expect(report.disconnects >= 2)
        #expect(slowest < 0.5, "deliver() took \(slowest) s")   // does not block (see DeliveryTests' bound)

        // The sender has had every alert acknowledged by now; rsyslog may still be writing them out, slowly when
        // the machine is busy (a full test run: 5,821 of 6,000 after 20 s once). The bound only matters on failure.
        #expect(waitUntil(seconds: 90) { receiver.messages(route).count >= total })
        let frames = try receiver.messages(route).map { raw -> Int in
            let cef = try parseCEF(try parseSyslog5424(raw).messageText)
            return Int(cef["msg"]!.dropFirst("alert #".count).prefix(while: { $0.isNumber }))!
        }
        let counts = Dictionary(frames.map { ($0, 1) }, uniquingKeysWith: +)
        let missing = (1...total).filter { counts[$0] == nil }
        let doubled = counts.filter { $0.value > 1 }.keys.sorted()
        #expect(frames.count == total, "received \(frames.count) of \(total); missing \(missing.prefix(50)); duplicated \(doubled.prefix(50)); \(report.summary)")
        #expect(frames == Array(1...total), "first disorder at index \(Array(zip(frames, 1...total)).firstIndex { $0 != $1 } ?? -1)")
    }

    /// Records spooled while the receiver was down survive the process: a later output on the same
    /// spool recovers and delivers them first, in order, across several spool segments, even when
    /// the last segment ends in a torn write (a crash mid-append).
    @Test func spoolSurvivesARestartOfZoneWatch() throws {
        let tmp = TempDir("persist")
        let pki = try TestPKI(in: tmp.path)
        let receiver = try Receiver(.syslogNG, in: tmp.path, pki: pki)
        let spool = tmp.path + "/spool"
        let u = url(receiver, .tcpOctet, format: .leef2, spool: spool)
        let down = 8000                     // ~6 MB: more than one 4 MiB segment

        let first = try OutputSet(specs: [try OutputSpec.parse(u)])
        for n in 1...down { first.deliver(Sample.numbered(n)) }
        let r1 = first.shutdown(deadline: 0.5)[0]
        #expect(r1.sent == 0 && r1.inSpool == UInt64(down) && r1.dropped == 0, "\(r1.summary)")
        let segments = try FileManager.default.contentsOfDirectory(atPath: spool).filter { $0.hasSuffix(".seg") }.sorted()
        #expect(segments.count >= 2)
        // A torn append: a header promising 255 bytes, then 2.
        let tail = try #require(FileHandle(forWritingAtPath: spool + "/" + segments.last!))
        tail.seekToEndOfFile(); tail.write(Data([0xFF, 0, 0, 0, 0x78, 0x79])); tail.closeFile()

        try receiver.start()
        defer { receiver.stop() }
        let second = try OutputSet(specs: [try OutputSpec.parse(u)])
        for n in (down + 1)...(down + 100) { second.deliver(Sample.numbered(n)) }
        let r2 = second.shutdown(deadline: 20)[0]
        #expect(r2.recovered == UInt64(down) && r2.sent == UInt64(down + 100) && r2.inSpool == 0 && r2.dropped == 0, "\(r2.summary)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: spool).filter { $0.hasSuffix(".seg") }.isEmpty)

        #expect(waitUntil(seconds: 20) { receiver.messages(.tcpOctet).count >= down + 100 })
        let frames = try receiver.messages(.tcpOctet).map { raw -> String in
            try parseLEEF(try parseSyslog5424(raw).messageText)["frame"] ?? "?"
        }
        #expect(frames == (1...(down + 100)).map(String.init))
    }

    /// A DNS name: each address is tried in turn (localhost is ::1, where nothing listens, and
    /// 127.0.0.1), and the certificate is checked against the name (its DNS SAN), sent as SNI.
    @Test func tlsByNameTriesEachAddressAndChecksTheName() throws {
        let tmp = TempDir("tls-name")
        let pki = try TestPKI(in: tmp.path)
        let receiver = try Receiver(.rsyslog, in: tmp.path, pki: pki)
        try receiver.start()
        defer { receiver.stop() }
        let outputs = try OutputSet(specs: [try OutputSpec.parse(
            "syslog+tls://localhost:\(receiver.ports[.tls]!)?format=cef&ca=\(pki.ca)&spool=\(tmp.path)/spool")])
        for n in 1...10 { outputs.deliver(Sample.numbered(n)) }
        let r = outputs.shutdown(deadline: 10)[0]
        #expect(r.sent == 10 && r.dropped == 0 && r.inSpool == 0, "\(r.summary)")
        #expect(waitUntil(seconds: 10) { receiver.messages(.tls).count == 10 })
    }
}
