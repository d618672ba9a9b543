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
    /// Creates the defaults.
    public init() {}
}
