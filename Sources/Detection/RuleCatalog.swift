import Records
import Policy

/// Every detection rule ZoneWatch raises, with its stable id (documented in RULES.md; never renumbered).
public enum RuleID: UInt8, CaseIterable, Sendable {
    case zoneNoConduit, zoneWrongDirection, zoneInitiatorNotListed, zoneResponderNotListed, zoneUnzonedHost
    case conduitProtocol, conduitFunction, conduitDevice, conduitData, conduitNotify
    case icsStop, icsModeChange, icsRestart, icsListenOnly, icsProgramDownload, icsProgramUpload, icsBlockDelete,
         icsFirmware, icsDisableUnsolicited, icsBroadcastWrite, icsPassword, icsIdentificationSweep, icsUnitScan, icsHostScan
    case anomalyProtocol, anomalyTransport
    case assetUnknownHost

    /// The rule's definition.
    public var rule: DetectionRule { DetectionRule.catalog[Int(rawValue)] }
}

/// A rule's fixed properties: what RULES.md lists.
public struct DetectionRule: Sendable {
    /// Stable id, e.g. `ZW-CONDUIT-002`.
    public let id: String
    /// Short name (`rule.name`).
    public let name: String
    /// `rule.category`.
    public let category: AlertCategory
    /// `event.action`.
    public let action: String
    /// Severity before the security-level adjustment (see `Severity`).
    public let baseSeverity: Int
    /// IEC 62443-3-3 system requirements.
    public let iec62443: [String]
    /// ATT&CK for ICS techniques (conduit-content rules take theirs from the operation instead).
    public let techniques: [Technique]

    /// All rules, indexed by `RuleID.rawValue`.
    public static let catalog: [DetectionRule] = [
        DetectionRule(id: "ZW-ZONE-001", name: "Cross-zone flow without a conduit", category: .zoneBoundary,
                      action: "zone-flow-without-conduit", baseSeverity: 5, iec62443: ["SR 5.1", "SR 5.2"], techniques: [.remoteServices]),
        DetectionRule(id: "ZW-ZONE-002", name: "Initiator on the wrong side of a conduit", category: .zoneBoundary,
                      action: "zone-wrong-direction", baseSeverity: 6, iec62443: ["SR 5.2"], techniques: [.remoteServices]),
        DetectionRule(id: "ZW-ZONE-003", name: "Initiator not listed on the conduit", category: .zoneBoundary,
                      action: "zone-initiator-not-listed", baseSeverity: 6, iec62443: ["SR 5.2", "SR 2.1"], techniques: [.remoteServices]),
        DetectionRule(id: "ZW-ZONE-004", name: "Responder not listed on the conduit", category: .zoneBoundary,
                      action: "zone-responder-not-listed", baseSeverity: 5, iec62443: ["SR 5.2"], techniques: [.remoteServices]),
        DetectionRule(id: "ZW-ZONE-005", name: "Flow between a zone and a host in no zone", category: .zoneBoundary,
                      action: "zone-flow-with-unzoned-host", baseSeverity: 5, iec62443: ["SR 5.2", "SR 1.2"], techniques: [.remoteServices]),

        DetectionRule(id: "ZW-CONDUIT-001", name: "Protocol not allowed on the conduit", category: .conduit,
                      action: "conduit-protocol-not-allowed", baseSeverity: 6, iec62443: ["SR 5.2", "SR 7.7"],
                      techniques: [.standardApplicationLayerProtocol]),
        DetectionRule(id: "ZW-CONDUIT-002", name: "Operation not allowed on the conduit", category: .conduit,
                      action: "conduit-operation-not-allowed", baseSeverity: 4, iec62443: ["SR 2.1", "SR 5.2"], techniques: []),
        DetectionRule(id: "ZW-CONDUIT-003", name: "Device (unit id / DNP3 address) not allowed on the conduit", category: .conduit,
                      action: "conduit-device-not-allowed", baseSeverity: 4, iec62443: ["SR 2.1", "SR 5.2"], techniques: []),
        DetectionRule(id: "ZW-CONDUIT-004", name: "Data address, area or DB not allowed on the conduit", category: .conduit,
                      action: "conduit-address-not-allowed", baseSeverity: 4, iec62443: ["SR 2.1", "SR 5.2"], techniques: []),
        DetectionRule(id: "ZW-CONDUIT-005", name: "Permitted operation reported for audit (conduit notify)", category: .conduit,
                      action: "conduit-notify", baseSeverity: 2, iec62443: ["SR 2.8", "SR 6.2"], techniques: []),

        DetectionRule(id: "ZW-ICS-001", name: "PLC stop", category: .icsOperation,
                      action: "ics-plc-stop", baseSeverity: 7, iec62443: ["SR 2.1"], techniques: [.changeOperatingMode]),
        DetectionRule(id: "ZW-ICS-002", name: "Operating mode change", category: .icsOperation,
                      action: "ics-mode-change", baseSeverity: 6, iec62443: ["SR 2.1"], techniques: [.changeOperatingMode]),
        DetectionRule(id: "ZW-ICS-003", name: "Device restart", category: .icsOperation,
                      action: "ics-device-restart", baseSeverity: 7, iec62443: ["SR 2.1", "SR 7.1"], techniques: [.deviceRestartShutdown]),
        DetectionRule(id: "ZW-ICS-004", name: "Force listen-only mode", category: .icsOperation,
                      action: "ics-force-listen-only", baseSeverity: 7, iec62443: ["SR 2.1", "SR 7.1"], techniques: [.denialOfService]),
        DetectionRule(id: "ZW-ICS-005", name: "Program download", category: .icsOperation,
                      action: "ics-program-download", baseSeverity: 7, iec62443: ["SR 2.1"], techniques: [.programDownload]),
        DetectionRule(id: "ZW-ICS-006", name: "Program upload", category: .icsOperation,
                      action: "ics-program-upload", baseSeverity: 5, iec62443: ["SR 2.1"], techniques: [.programUpload]),
        DetectionRule(id: "ZW-ICS-007", name: "Block delete", category: .icsOperation,
                      action: "ics-block-delete", baseSeverity: 8, iec62443: ["SR 2.1"], techniques: [.modifyProgram, .dataDestruction]),
        DetectionRule(id: "ZW-ICS-008", name: "Firmware replacement", category: .icsOperation,
                      action: "ics-firmware-replacement", baseSeverity: 8, iec62443: ["SR 2.1"], techniques: [.modifyFirmware]),
        DetectionRule(id: "ZW-ICS-009", name: "Unsolicited reporting disabled", category: .icsOperation,
                      action: "ics-disable-unsolicited", baseSeverity: 5, iec62443: ["SR 2.1"], techniques: [.blockReportingMessage]),
        DetectionRule(id: "ZW-ICS-010", name: "Broadcast write", category: .icsOperation,
                      action: "ics-broadcast-write", baseSeverity: 6, iec62443: ["SR 2.1"], techniques: [.manipulationOfControl, .modifyParameter]),
        DetectionRule(id: "ZW-ICS-011", name: "PLC password attempt", category: .icsOperation,
                      action: "ics-plc-password", baseSeverity: 5, iec62443: ["SR 1.2", "SR 2.1"], techniques: [.validAccounts]),
        DetectionRule(id: "ZW-ICS-012", name: "Device identification sweep", category: .icsOperation,
                      action: "ics-identification-sweep", baseSeverity: 4, iec62443: ["SR 6.2"], techniques: [.remoteSystemInformationDiscovery]),
        DetectionRule(id: "ZW-ICS-013", name: "Unit id scan", category: .icsOperation,
                      action: "ics-unit-id-scan", baseSeverity: 5, iec62443: ["SR 6.2"], techniques: [.remoteSystemDiscovery]),
        DetectionRule(id: "ZW-ICS-014", name: "ICS host scan", category: .icsOperation,
                      action: "ics-host-scan", baseSeverity: 5, iec62443: ["SR 6.2"], techniques: [.remoteSystemDiscovery]),

        DetectionRule(id: "ZW-ANOM-001", name: "ICS protocol anomaly", category: .protocolAnomaly,
                      action: "protocol-anomaly", baseSeverity: 3, iec62443: ["SR 3.5"], techniques: []),
        DetectionRule(id: "ZW-ANOM-002", name: "Transport or capture anomaly", category: .protocolAnomaly,
                      action: "transport-anomaly", baseSeverity: 1, iec62443: ["SR 3.5"], techniques: []),

        DetectionRule(id: "ZW-ASSET-001", name: "Unknown host (in no zone)", category: .asset,
                      action: "asset-unknown-host", baseSeverity: 4, iec62443: ["SR 1.2", "SR 7.8"], techniques: []),
    ]
}

/// Severity 0–10 = the rule's base (for conduit-content rules: the operation's risk tier) plus an
/// adjustment for the highest target security level of the zones involved. RULES.md prints the table.
public enum Severity {
    /// Added per SL-T 0…4; nothing when no zone is involved.
    public static let securityLevelAdjustment = [0, 0, 1, 2, 3]

    /// How dangerous an access class is when a conduit does not allow it: 4 low, 6 medium, 7 high.
    public static func tier(_ access: AccessClass) -> Int {
        switch access {
        case .read, .diagnostic, .time, .session, .response: 4
        case .write, .config, .file, .auth: 6
        case .control, .lifecycle, .programDownload, .programUpload: 7
        }
    }

    /// The severity of `rule` (with `access` for conduit-content rules) at security level `sl` (-1: none).
    public static func of(_ rule: RuleID, access: AccessClass? = nil, securityLevel sl: Int) -> Int {
        var base = rule.rule.baseSeverity
        switch rule {
        case .conduitFunction, .conduitDevice, .conduitData: if let access { base = tier(access) }
        default: break
        }
        let adj = sl >= 0 && sl < securityLevelAdjustment.count ? securityLevelAdjustment[sl] : 0
        return min(10, max(0, base + adj))
    }
}
