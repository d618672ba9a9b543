import Testing
import Records
import Output

@Suite struct OutputSpecTests {
    @Test func theIssuesExamplesParse() throws {
        let udp = try OutputSpec.parse("syslog+udp://host:514?format=cef")
        #expect(udp.destination == .syslog(.udp, host: "host", port: 514) && udp.format == .cef)
        #expect(udp.records == [.alert])

        let tcp = try OutputSpec.parse("syslog+tcp://host:601?format=leef&framing=octet")
        #expect(tcp.destination == .syslog(.tcp, host: "host", port: 601) && tcp.format == .leef && tcp.framing == .octetCounting)
        #expect(try OutputSpec.parse("syslog+tcp://host:601?format=leef&framing=lf").framing == .lineFeed)
        #expect(try OutputSpec.parse("syslog+tcp://host:601?format=leef2").format == .leef2)

        let tls = try OutputSpec.parse("syslog+tls://host:6514?format=cef&ca=/path/ca.pem&cert=/c.pem&key=/k.pem")
        #expect(tls.destination == .syslog(.tls, host: "host", port: 6514))
        #expect(tls.tls.caFile == "/path/ca.pem" && tls.tls.certificateFile == "/c.pem" && tls.tls.keyFile == "/k.pem")
        #expect(tls.framing == .octetCounting)

        let file = try OutputSpec.parse("file:///var/log/zonewatch?format=ecs")
        #expect(file.destination == .directory(path: "/var/log/zonewatch") && file.format == .ecs)
        #expect(file.records == Set(RecordKind.allCases.filter { $0 != .pdu }))

        let out = try OutputSpec.parse("-")
        #expect(out.destination == .stdout && out.format == .ecs && out.records == [.alert])
        #expect(try OutputSpec.parse("-?format=cef&records=alert,flow").records == [.alert, .flow])
    }

    @Test func defaultsPortsAndIPv6Hosts() throws {
        #expect(try OutputSpec.parse("syslog+udp://h").destination == .syslog(.udp, host: "h", port: 514))
        #expect(try OutputSpec.parse("syslog+tcp://h/").destination == .syslog(.tcp, host: "h", port: 601))
        #expect(try OutputSpec.parse("syslog+tls://h").destination == .syslog(.tls, host: "h", port: 6514))
        #expect(try OutputSpec.parse("syslog+tcp://[::1]:1514").destination == .syslog(.tcp, host: "::1", port: 1514))
        #expect(try OutputSpec.parse("syslog+tcp://[2001:db8::5]").destination == .syslog(.tcp, host: "2001:db8::5", port: 601))
    }

    @Test func filtersAndTuning() throws {
        let s = try OutputSpec.parse("syslog+tcp://h:1?min_severity=7&records=alert,flow,modbus&facility=local0&pen=99999"
                                     + "&spool=/var/spool/zw%20a&spool_size=64M&queue=1000&hostname=sensor-1&app=zw&connect_timeout=2.5")
        #expect(s.minSeverity == 7 && s.records == [.alert, .flow, .modbus])
        #expect(s.facility == 16 && s.enterpriseNumber == 99999)
        #expect(s.spoolDirectory == "/var/spool/zw a" && s.spoolLimit == 64 << 20 && s.queueCapacity == 1000)
        #expect(s.hostname == "sensor-1" && s.appName == "zw" && s.connectTimeout == 2.5)
        let f = try OutputSpec.parse("file:///tmp/x?rotate_size=10m&rotate_interval=1h&keep=3")
        #expect(f.rotateBytes == 10 << 20 && f.rotateSeconds == 3600 && f.keepFiles == 3)
        #expect(try OutputSpec.parse("syslog+udp://h?max_size=1180&facility=4").maxDatagram == 1180)
        #expect(try OutputSpec.parse("syslog+udp://h?records=all").records.count == RecordKind.allCases.count - 1)
    }

    @Test(arguments: [
        ("syslog+smtp://h", OutputSpecError.unknownScheme("syslog+smtp")),
        ("nonsense", .notAURL("nonsense")),
        ("syslog+udp://h:0", .badPort("0")),
        ("syslog+udp://h:70000", .badPort("70000")),
        ("syslog+udp://:514", .badHost(":514")),
        ("file://relative/dir", .badPath("relative/dir")),
        ("syslog+udp://h?format=xml", .badValue(parameter: "format", value: "xml")),
        ("syslog+udp://h?fromat=cef", .unknownParameter("fromat")),
        ("syslog+udp://h?format=cef&format=leef", .duplicateParameter("format")),
        ("syslog+udp://h?framing=lf", .notApplicable(parameter: "framing", scheme: "syslog+udp")),
        ("syslog+tls://h?framing=lf", .notApplicable(parameter: "framing=lf", scheme: "syslog+tls (RFC 5425 requires octet counting)")),
        ("syslog+tcp://h?ca=/x", .notApplicable(parameter: "ca", scheme: "syslog+tcp")),
        ("syslog+tls://h?cert=/c.pem", .certificateWithoutKey),
        ("file:///x?facility=local4", .notApplicable(parameter: "facility", scheme: "file")),
        ("syslog+tcp://h?min_severity=11", .badValue(parameter: "min_severity", value: "11")),
        ("syslog+tcp://h?records=alert,bogus", .badValue(parameter: "records", value: "alert,bogus")),
        ("syslog+tcp://h?facility=local9", .badValue(parameter: "facility", value: "local9")),
        ("syslog+tcp://h?spool=relative", .badValue(parameter: "spool", value: "relative")),
        ("syslog+tcp://h?spool_size=12q", .badValue(parameter: "spool_size", value: "12q")),
        ("-?max_size=100", .notApplicable(parameter: "max_size", scheme: "-")),
    ])
    func rejectsWithAClearReason(url: String, error: OutputSpecError) {
        #expect(throws: error) { try OutputSpec.parse(url) }
    }

    @Test func errorsReadWell() {
        #expect(OutputSpecError.unknownParameter("fromat").description == "unknown output parameter 'fromat'")
    }
}
