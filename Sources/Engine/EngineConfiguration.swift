import Flows

/// What one engine does and its bounds.
public struct EngineConfiguration: Sendable {
    /// Flow-table bounds and timeouts.
    public var flowLimits = FlowTableLimits()
    /// Out-of-order holding bounds per TCP direction.
    public var streamLimits = TCPStreamLimits()
    /// Write one record per PDU (`zonewatch dissect`).
    public var pduRecords = false
    /// Write paired per-protocol records (`modbus.jsonl`, ...).
    public var transactionRecords = false
    /// Write flow records.
    public var flowRecords = true
    /// Write anomaly records.
    public var anomalyRecords = true
    /// Anomaly log lines written per (layer, kind) at most; beyond that they are only counted.
    public var anomalyLogLimitPerKind = 1_000
    /// Bytes buffered while a flow's protocol is undecided, at most.
    public var maximumProbeBytes = 512
    /// Whether the common established-TCP packet takes the one-pass path (`Engine.processEstablishedTCPv4`);
    /// false sends every packet through the general path. The records are the same either way: tests compare them.
    public var establishedTCPPath = true
    /// Which IP, TCP and UDP checksums are verified (`--checksums`).
    public var checksums = ChecksumValidation.auto
    /// Flows are keyed without their VLAN ID (`--ignore-vlans`): a conversation whose two directions a SPAN port
    /// delivers with different tags (a trunk port's tagged, an access port's not) is one flow, not two halves.
    public var ignoresVLANs = false
    /// Creates the defaults.
    public init() {}
}

/// Whether the engine verifies the checksums of the packets it dissects (`--checksums`). A segment with a wrong
/// checksum is dropped by its receiver; a monitor that dissects it can be fed bytes the receiver never sees. Only flows
/// being dissected (ICS protocols, and flows not yet identified) are verified: on others a wrong checksum changes
/// nothing but a packet count.
public enum ChecksumValidation: String, Sendable, CaseIterable {
    /// Per flow side, its first verifiable packet decides: a right checksum and every later wrong one is dropped; a
    /// wrong one and the side is taken as offloaded (a capture on a host whose network card computes checksums: Linux
    /// leaves a partial sum in the field) and not verified, until a right checksum that is not such a partial sum
    /// shows that it is not. Suricata's `checksum-checks: auto` decides once for the whole capture.
    case auto
    /// Every wrong checksum dropped (a SPAN port or TAP: every packet was on the wire).
    case on
    /// Nothing verified (ZoneWatch before checksums were verified; tshark's default).
    case off
}
