import Wire
import Records

/// The record formats an output can write.
public enum OutputFormat: String, Sendable, CaseIterable {
    /// ECS JSON, one object per record.
    case ecs
    /// ArcSight CEF:0.
    case cef
    /// QRadar LEEF 1.0.
    case leef
    /// QRadar LEEF 2.0.
    case leef2
}

extension RecordKind {
    /// The short name used as syslog MSGID, in `records=` filters and in stats.
    public var shortName: StaticString {
        switch self {
        case .flow: "flow"
        case .modbus: "modbus"
        case .dnp3: "dnp3"
        case .s7comm: "s7comm"
        case .alert: "alert"
        case .anomaly: "anomaly"
        case .stats: "stats"
        case .pdu: "pdu"
        }
    }

    /// The kind named `name` (`alert`, `flow`, ...).
    public init?(shortName name: some StringProtocol) {
        guard let k = RecordKind.allCases.first(where: { $0.shortName.description == name }) else { return nil }
        self = k
    }
}

/// Turns alerts and finished JSON records into the bytes of one message: the record in the output's
/// format, wrapped in an RFC 5424 header when the output is syslog. Reuses its buffers, so encoding
/// allocates nothing once they have grown.
///
/// Flow and protocol records arrive as finished ECS JSON lines and are sent as JSON whatever the
/// format (CEF and LEEF define no flow schema); the format applies to alerts.
public struct MessageEncoder {
    /// Record format for alerts.
    public let format: OutputFormat
    /// RFC 5424 envelope, or nil for bare records (files, stdout).
    public let syslog: SyslogOptions?
    /// The message built by the last `encode` call (no framing, no newline).
    public private(set) var message: [UInt8] = []

    private var json = JSONWriter(capacity: 8192)
    private let cef: CEFEncoder
    private let leef: LEEFEncoder

    /// Creates an encoder; `productVersion` is the version written in CEF and LEEF headers.
    public init(format: OutputFormat, syslog: SyslogOptions?, productVersion: String = ZoneWatchVersion.current) {
        self.format = format; self.syslog = syslog
        cef = CEFEncoder(version: productVersion)
        leef = LEEFEncoder(leefVersion: format == .leef2 ? .v2 : .v1, version: productVersion)
        message.reserveCapacity(8192)
    }

    /// Encodes an alert into `message`.
    public mutating func encode(_ alert: Alert) {
        message.removeAll(keepingCapacity: true)
        if let o = syslog {
            let severity = Syslog5424.severity(forAlertSeverity: alert.severity)
            Syslog5424.writeHeader(priority: o.facility * 8 + severity, timestamp: alert.time, msgID: "alert",
                                   options: o, to: &message)
            Syslog5424.writeAlertSD(alert, options: o, to: &message)
            message.append(0x20)
        }
        switch format {
        case .ecs:
            json.reset(); alert.writeECS(to: &json); message.append(contentsOf: json.bytes)
        case .cef:
            cef.write(alert, to: &message)
        case .leef, .leef2:
            leef.write(alert, to: &message)
        }
    }

    /// Encodes one finished JSON line (no newline) of a non-alert record into `message`.
    public mutating func encode(record kind: RecordKind, line: ArraySlice<UInt8>) {
        message.removeAll(keepingCapacity: true)
        if let o = syslog {
            Syslog5424.writePriority(o.facility * 8 + 6, to: &message)
            Syslog5424.copyLeadingTimestamp(line, to: &message)
            Syslog5424.writeRest(msgID: kind.shortName, options: o, to: &message)
            Syslog5424.openElement(options: o, to: &message)
            message.append(ascii: " kind=\""); message.append(ascii: kind.shortName); message.append(ascii: "\"]")
            message.append(0x20)
        }
        // A line must stay one line: drop a stray trailing newline the producer may have left.
        var l = line
        while let last = l.last, last == 0x0A || last == 0x0D { l = l.dropLast() }
        message.append(contentsOf: l)
    }
}

/// The product version written into CEF and LEEF headers.
public enum ZoneWatchVersion {
    /// The version of this build.
    public static let current = "0.1.0"
}
