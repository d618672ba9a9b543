import Wire
import Records

// The policy as written (issue 6): zones, assets, conduits with allow rules, and three global modes.
// Loaded by `PolicyDecoder`, checked by `PolicyValidator`, then compiled into `CompiledPolicy`.

/// What happens to traffic between hosts of the same zone.
public enum IntraZoneMode: String, Sendable, CaseIterable {
    /// No checks at all, not even ICS-operation detections.
    case allow
    /// Only ICS-operation and anomaly detections (the default).
    case monitor
    /// The zone's own `allow` rules apply as if they were a conduit from the zone to itself.
    case enforce
}

/// What happens to traffic between two zones that no conduit covers.
public enum DefaultAction: String, Sendable, CaseIterable {
    /// Alert (62443-3-3 SR 5.2 RE1: deny by default, allow by exception).
    case deny
    /// No zone-boundary alert.
    case allow
}

/// What happens when an address that is in no zone is seen.
public enum UnknownHostsMode: String, Sendable, CaseIterable {
    /// Alert on the first sight of each such address.
    case alert
    /// Ignore.
    case ignore
}

/// The ATT&CK for ICS release whose technique ids alerts carry (v19 renumbered some techniques).
public enum AttackVersion: String, Sendable, CaseIterable {
    case v18, v19
}

/// A zone: hosts sharing security requirements, with a target security level.
public struct Zone: Sendable {
    /// Unique name.
    public var name: String
    /// Target security level SL-T, 0–4 (the highest entry when written as a 7-vector).
    public var securityLevel: Int
    /// The SL-T vector by foundational requirement, when written as seven integers.
    public var securityLevelVector: [Int]?
    /// Purdue level 0–5 (3.5 for an industrial DMZ), when given.
    public var purdueLevel: Double?
    /// The zone's networks.
    public var networks: [IPPrefix]
    /// Marks of each network entry (parallel to `networks`).
    public var networkMarks: [SourceMark]
    /// Per-zone override of the global `intra_zone`.
    public var intraZone: IntraZoneMode?
    /// Rules for traffic inside the zone under `intra_zone: enforce`.
    public var allow: [ConduitRule]
    /// Access classes reported even when allowed inside the zone.
    public var notify: [AccessClass]
    /// Free text.
    public var description: String?
    /// Where the zone is defined.
    public var mark: SourceMark
}

/// A named host placed in a zone (more specific than the zone's networks).
public struct Asset: Sendable {
    /// Unique name.
    public var name: String
    /// Its address.
    public var address: IPAddress
    /// The zone it belongs to.
    public var zone: String
    /// Free text.
    public var description: String?
    /// Where the asset is defined.
    public var mark: SourceMark
    /// Where its `zone` value is.
    public var zoneMark: SourceMark
}

/// An initiator or responder restriction of a conduit: an address prefix or an asset's name.
public enum EndpointSpec: Sendable, Hashable {
    case prefix(IPPrefix)
    case asset(String)
}

/// The protocol an allow rule covers: an ICS protocol checked per operation, or a transport by port.
public enum RuleProtocol: Sendable, Hashable {
    case application(AppProtocol)
    case transport(Transport)

    /// The policy name.
    public var name: String {
        switch self {
        case .application(let p): p.name.description
        case .transport(let t): t.name.description
        }
    }
}

/// One entry of a conduit's `allow` list. Empty lists mean "any".
public struct ConduitRule: Sendable {
    /// The protocol.
    public var ruleProtocol: RuleProtocol
    /// Allowed access classes.
    public var access: [AccessClass] = []
    /// Allowed function codes (refines `access` when both are given: an operation must match both).
    public var functions: [UInt16] = []
    /// Allowed Modbus unit ids.
    public var unitIDs: [ClosedRange<Int64>] = []
    /// Allowed data addresses (registers, coils, points, byte offsets).
    public var addresses: [ClosedRange<Int64>] = []
    /// Allowed DNP3 outstation addresses.
    public var dnp3Addresses: [ClosedRange<Int64>] = []
    /// Allowed S7 area codes (0x84 DB, ...).
    public var s7Areas: [Int16] = []
    /// Allowed S7 DB numbers.
    public var dbNumbers: [ClosedRange<Int64>] = []
    /// Allowed responder ports (transport rules).
    public var ports: [ClosedRange<Int64>] = []
    /// Where the rule is written.
    public var mark: SourceMark
}

/// A conduit: the permitted communication from one zone's initiators to another zone's responders.
public struct Conduit: Sendable {
    /// Unique name.
    public var name: String
    /// The zone whose hosts initiate.
    public var from: String
    /// The zone whose hosts respond.
    public var to: String
    /// Only these may initiate (empty: any host of `from`).
    public var initiators: [EndpointSpec]
    /// Marks of the initiators (parallel).
    public var initiatorMarks: [SourceMark]
    /// Only these may respond (empty: any host of `to`).
    public var responders: [EndpointSpec]
    /// Marks of the responders (parallel).
    public var responderMarks: [SourceMark]
    /// Allowed traffic.
    public var allow: [ConduitRule]
    /// Access classes that are allowed but still reported (audit).
    public var notify: [AccessClass]
    /// Free text.
    public var description: String?
    /// Where the conduit is defined, and its `from` and `to` values.
    public var mark: SourceMark
    public var fromMark: SourceMark
    public var toMark: SourceMark
}

/// A whole policy file.
public struct Policy: Sendable {
    /// Format version (1).
    public var version: Int
    /// Zones in file order.
    public var zones: [Zone]
    /// Assets in file order.
    public var assets: [Asset]
    /// Conduits in file order.
    public var conduits: [Conduit]
    /// Traffic inside a zone.
    public var intraZone: IntraZoneMode = .monitor
    /// Traffic between zones with no conduit.
    public var defaultAction: DefaultAction = .deny
    /// Hosts in no zone.
    public var unknownHosts: UnknownHostsMode = .alert
    /// ATT&CK release of the technique ids in alerts.
    public var attackVersion: AttackVersion = .v19
}
