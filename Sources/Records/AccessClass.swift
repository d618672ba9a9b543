/// The canonical access classes of an ICS operation (the policy file's vocabulary;
/// `../shared/reference/protocols.md`, "Canonical access classes").
public enum AccessClass: UInt8, CaseIterable, Sendable {
    case read, write, control, programDownload, programUpload, config, diagnostic, lifecycle, file, auth, time, session
    /// A response or indication that carries no operation of its own.
    case response

    /// The name used in policies and records.
    public var name: StaticString {
        switch self {
        case .read: "read"
        case .write: "write"
        case .control: "control"
        case .programDownload: "program_download"
        case .programUpload: "program_upload"
        case .config: "config"
        case .diagnostic: "diagnostic"
        case .lifecycle: "lifecycle"
        case .file: "file"
        case .auth: "auth"
        case .time: "time"
        case .session: "session"
        case .response: "response"
        }
    }

    /// Parses a policy name (`program_download`, ...).
    public init?(name: String) {
        guard let c = AccessClass.allCases.first(where: { $0.name.description == name }) else { return nil }
        self = c
    }
}

/// The application protocols ZoneWatch dissects.
public enum AppProtocol: UInt8, CaseIterable, Sendable {
    case modbus, dnp3, s7comm, s7commPlus

    /// The ECS `network.protocol` name and the record key.
    public var name: StaticString {
        switch self {
        case .modbus: "modbus"
        case .dnp3: "dnp3"
        case .s7comm: "s7comm"
        case .s7commPlus: "s7comm_plus"
        }
    }

    /// Parses a policy or record name.
    public init?(name: String) {
        guard let p = AppProtocol.allCases.first(where: { $0.name.description == name }) else { return nil }
        self = p
    }
}
