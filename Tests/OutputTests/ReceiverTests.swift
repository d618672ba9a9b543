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
        let T0 = Date(); func tick(_ s: String) { print("TIMING \(kind) \(route) \(s) \(Date().timeIntervalSince(T0))") }
        let pki = try TestPKI(in: tmp.path)
        tick("pki")
        let receiver = try Receiver(kind, in: tmp.path, pki: pki)
        tick("config")
        try receiver.start()
        tick("start")
        defer { receiver.stop(); tick("stopped") }

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
            tick("delivered \(format)")
            let report = outputs.shutdown(deadline: 10)[0]
            tick("shutdown \(format)")
            #expect(report.finished)
            #expect(report.sent == UInt64(alerts.count + 1), "\(report.summary)")
            #expect(report.dropped == 0 && report.inSpool == 0 && report.pending == 0, "\(report.summary)")
        }

        let arrived = waitUntil(seconds: 15) { receiver.messages(route).count >= expected.count }
        let stored = receiver.messages(route)
        tick("arrived")
        #expect(arrived, "stored \(stored.count) of \(expected.count); receiver log: \(receiver.log)")
        #expect(stored.count == expected.count)
        for (i, (got, want)) in zip(stored, expected).enumerated() {
            #expect(got == want, "message \(i) differs:\n got \(text(got))\nwant \(text(want))")
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

    /// The receiver is stopped in the middle of a stream of thousands of alerts and started again:
    /// every alert arrives exactly once and in order (the spool took the gap and was replayed).
    @Test(arguments: [Route.tcpOctet, Route.tls])
    func receiverRestartLosesAndDuplicatesNothing(route: Route) throws {
        let tmp = TempDir("restart-\(route)")
        let pki = try TestPKI(in: tmp.path)
        let receiver = try Receiver(.rsyslog, in: tmp.path, pki: pki)
        try receiver.start()
        defer { receiver.stop() }
        let outputs = try OutputSet(specs: [try OutputSpec.parse(url(receiver, route, format: .cef, spool: tmp.path + "/spool"))])

        let total = 6000
        var slowest = 0.0
        for n in 1...total {
            let t0 = Date()
            outputs.deliver(Sample.numbered(n))
            slowest = max(slowest, Date().timeIntervalSince(t0))
            if n % 20 == 0 { usleep(5_000) }                   // a replay raising alerts over ~1.5 s
            if n == 2000 { receiver.stop() }                   // mid-stream, with data in flight
            if n == 4000 { try receiver.start() }
        }
        let report = outputs.shutdown(deadline: 30)[0]
        #expect(report.sent == UInt64(total), "\(report.summary)")
        #expect(report.dropped == 0 && report.inSpool == 0 && report.pending == 0, "\(report.summary)")
        #expect(report.spooled > 0 && report.replayed > 0, "the outage should have gone through the spool: \(report.summary)")
        #expect(report.disconnects >= 1)
        #expect(slowest < 0.05, "deliver() took \(slowest) s")

        #expect(waitUntil(seconds: 20) { receiver.messages(route).count >= total })
        let frames = try receiver.messages(route).map { raw -> Int in
            let cef = try parseCEF(try parseSyslog5424(raw).messageText)
            return Int(cef["msg"]!.dropFirst("alert #".count).prefix(while: { $0.isNumber }))!
        }
        #expect(frames.count == total, "received \(frames.count) of \(total)")
        #expect(frames == Array(1...total), "first disorder at index \(Array(zip(frames, 1...total)).firstIndex { $0 != $1 } ?? -1)")
    }

    /// Records spooled while the receiver was down survive the process: a later output on the same
    /// spool recovers and delivers them first, in order.
    @Test func spoolSurvivesARestartOfZoneWatch() throws {
        let tmp = TempDir("persist")
        let pki = try TestPKI(in: tmp.path)
        let receiver = try Receiver(.syslogNG, in: tmp.path, pki: pki)
        let u = url(receiver, .tcpOctet, format: .leef2, spool: tmp.path + "/spool")

        let first = try OutputSet(specs: [try OutputSpec.parse(u)])
        for n in 1...500 { first.deliver(Sample.numbered(n)) }
        let r1 = first.shutdown(deadline: 0.3)[0]
        #expect(r1.sent == 0 && r1.inSpool == 500 && r1.dropped == 0, "\(r1.summary)")

        try receiver.start()
        defer { receiver.stop() }
        let second = try OutputSet(specs: [try OutputSpec.parse(u)])
        for n in 501...600 { second.deliver(Sample.numbered(n)) }
        let r2 = second.shutdown(deadline: 15)[0]
        #expect(r2.recovered == 500 && r2.sent == 600 && r2.inSpool == 0 && r2.dropped == 0, "\(r2.summary)")

        #expect(waitUntil(seconds: 15) { receiver.messages(.tcpOctet).count >= 600 })
        let frames = try receiver.messages(.tcpOctet).map { raw -> String in
            try parseLEEF(try parseSyslog5424(raw).messageText)["frame"] ?? "?"
        }
        #expect(frames == (1...600).map(String.init))
    }
}
