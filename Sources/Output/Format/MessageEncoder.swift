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
    /// ` HOSTNAME APP-NAME PROCID ` of every syslog header, built once (the options never change).
    private let identity: [UInt8]
    private var timestamps = TimestampText()

    /// Creates an encoder; `productVersion` is the version written in CEF and LEEF headers.
    public init(format: OutputFormat, syslog: SyslogOptions?, productVersion: String = ZoneWatchVersion.current) {
        self.format = format; self.syslog = syslog
        cef = CEFEncoder(version: productVersion)
        leef = LEEFEncoder(leefVersion: format == .leef2 ? .v2 : .v1, version: productVersion)
        var identity: [UInt8] = []
        if let o = syslog { Syslog5424.writeIdentity(options: o, to: &identity) }
        self.identity = identity
        message.reserveCapacity(8192)
    }

    /// Encodes an alert into `message`.
    public mutating func encode(_ alert: Alert) {
        message.removeAll(keepingCapacity: true)
        // Read once: an ID detection deferred is computed here, on the output's thread (a SHA-1 per read).
        let communityID = alert.communityIDText
        if let o = syslog {
            // Syslog5424.writeHeader, with the parts that repeat from message to message copied.
            let severity = Syslog5424.severity(forAlertSeverity: alert.severity)
            Syslog5424.writePriority(o.facility * 8 + severity, to: &message)
            timestamps.write(alert.time, to: &message)
            message.append(contentsOf: identity); message.append(ascii: "alert ")
            Syslog5424.writeAlertSD(alert, communityID: communityID, options: o, to: &message)
            message.append(0x20)
        }
        switch format {
        case .ecs:
            json.reset(); alert.writeECS(communityID: communityID, to: &json); json.withBytes { message.append(contentsOf: $0) }
        case .cef:
            cef.write(alert, communityID: communityID, to: &message)
        case .leef, .leef2:
            leef.write(alert, communityID: communityID, to: &message)
        }
    }

    /// Encodes one finished JSON line (no newline) of a non-alert record into `message`.
    public mutating func encode(record kind: RecordKind, line: ArraySlice<UInt8>) {
        message.removeAll(keepingCapacity: true)
        if let o = syslog {
            Syslog5424.writePriority(o.facility * 8 + 6, to: &message)
            Syslog5424.copyLeadingTimestamp(line, to: &message)
            message.append(contentsOf: identity); message.append(ascii: kind.shortName); message.append(0x20)
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

/// RFC 3339 text of packet times (`PacketTime.writeRFC3339`), formatted once per second: the alerts of
/// a storm share their second, and only the microseconds differ.
struct TimestampText {
    private var seconds: Int64 = .min
    private var text: [UInt8] = []      // YYYY-MM-DDTHH:MM:SS.ffffffZ

    /// Appends the RFC 3339 text of `t`, exactly as `t.writeRFC3339` would.
    mutating func write(_ t: PacketTime, to out: inout [UInt8]) {
        guard t.microseconds >= 0 && t.microseconds < 1_000_000 else { t.writeRFC3339(to: &out); return }
        if t.seconds != seconds {
            text.removeAll(keepingCapacity: true)
            t.writeRFC3339(to: &text)
            seconds = text.count == 27 ? t.seconds : .min
            if seconds == .min { out.append(contentsOf: text); return }
        }
        var us = Int(t.microseconds)
        text.withUnsafeMutableBufferPointer { b in
            for i in stride(from: 25, through: 20, by: -1) { b[i] = UInt8(ascii: "0") &+ UInt8(us % 10); us /= 10 }
        }
        out.append(contentsOf: text)
    }
}

/// The product version written into CEF and LEEF headers.
public enum ZoneWatchVersion {
    /// The version of this build.
    public static let current = "0.1.0"
}
