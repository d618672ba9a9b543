import Records
import Policy

/// The MITRE ATT&CK for ICS techniques ZoneWatch reports (`../shared/reference/protocols.md` §3).
///
/// ATT&CK v19 (April 2026) renumbered some techniques; each case knows its id and name in both
/// releases, and the policy's `attack_version` (default v19) picks one. Alerts carry the version.
public enum Technique: UInt8, CaseIterable, Sendable {
    case monitorProcessState, remoteServices, standardApplicationLayerProtocol, programDownload, programUpload,
         modifyProgram, changeOperatingMode, deviceRestartShutdown, denialOfService, commandMessage,
         manipulationOfControl, modifyParameter, remoteSystemDiscovery, remoteSystemInformationDiscovery,
         validAccounts, dataDestruction, modifyFirmware, blockReportingMessage

    /// Id and name in release `version`.
    public func reference(_ version: AttackVersion) -> AttackTechnique {
        let v19 = version == .v19
        switch self {
        case .monitorProcessState: return AttackTechnique(id: "T0801", name: "Monitor Process State")
        case .remoteServices: return AttackTechnique(id: "T0886", name: "Remote Services")
        case .standardApplicationLayerProtocol: return AttackTechnique(id: "T0869", name: "Standard Application Layer Protocol")
        case .programDownload: return AttackTechnique(id: "T0843", name: "Program Download")
        case .programUpload: return AttackTechnique(id: "T0845", name: "Program Upload")
        case .modifyProgram: return AttackTechnique(id: "T0889", name: "Modify Program")
        case .changeOperatingMode: return AttackTechnique(id: "T0858", name: "Change Operating Mode")
        case .deviceRestartShutdown: return AttackTechnique(id: "T0816", name: "Device Restart/Shutdown")
        case .denialOfService: return AttackTechnique(id: "T0814", name: "Denial of Service")
        case .commandMessage:
            return v19 ? AttackTechnique(id: "T1692.001", name: "Unauthorized Message: Command Message")
                       : AttackTechnique(id: "T0855", name: "Unauthorized Command Message")
        case .manipulationOfControl: return AttackTechnique(id: "T0831", name: "Manipulation of Control")
        case .modifyParameter: return AttackTechnique(id: "T0836", name: "Modify Parameter")
        case .remoteSystemDiscovery: return AttackTechnique(id: "T0846", name: "Remote System Discovery")
        case .remoteSystemInformationDiscovery: return AttackTechnique(id: "T0888", name: "Remote System Information Discovery")
        case .validAccounts: return AttackTechnique(id: "T0859", name: "Valid Accounts")
        case .dataDestruction: return AttackTechnique(id: "T0809", name: "Data Destruction")
        case .modifyFirmware:
            return v19 ? AttackTechnique(id: "T1693", name: "Modify Firmware")
                       : AttackTechnique(id: "T0857", name: "System Firmware")
        case .blockReportingMessage:
            return v19 ? AttackTechnique(id: "T1691.002", name: "Block Operational Technology Message: Reporting Message")
                       : AttackTechnique(id: "T0804", name: "Block Reporting Message")
        }
    }

    /// The technique of an operation of class `access` that a conduit does not allow: reading process
    /// values is collection, identity reads are discovery, logic moving in or out is download/upload,
    /// and every other class is a command the conduit did not authorise.
    public static func forDisallowed(_ access: AccessClass) -> Technique {
        switch access {
        case .read: .monitorProcessState
        case .diagnostic: .remoteSystemInformationDiscovery
        case .programDownload: .programDownload
        case .programUpload: .programUpload
        default: .commandMessage
        }
    }
}
