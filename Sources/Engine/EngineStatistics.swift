import Records
import Flows
import Decode

/// Counters of one engine (one worker), summed for the summary and the stats record.
public struct EngineStatistics: Sendable {
    /// Packets read.
    public var packets: UInt64 = 0
    /// Bytes captured.
    public var bytes: UInt64 = 0
    /// Packets whose capture was cut by snaplen.
    public var truncatedPackets: UInt64 = 0
    /// Frames carrying no IP (ARP, LLDP, ...).
    public var nonIPPackets: UInt64 = 0
    /// Packets not decoded, per `DecodeFailure`.
    public var decodeFailures = [UInt64](repeating: 0, count: DecodeFailure.allCases.count)
    /// Flows created.
    public var flowsCreated: UInt64 = 0
    /// Flows ended, per `FlowEndReason`.
    public var flowsEnded = [UInt64](repeating: 0, count: FlowEndReason.allCases.count)
    /// TCP gaps handed to dissectors (holes in streams).
    public var streamGaps: UInt64 = 0
    /// Bytes missing in those gaps.
    public var streamGapBytes: UInt64 = 0
    /// Times a dissector's carry buffer overflowed its bound (bytes dropped, counted).
    public var carryOverflows: UInt64 = 0
    /// Messages left unfinished by flows the capture ended (end of input, eviction, a step of packet time), and their
    /// bytes: cut by the capture, so counted here rather than reported as anomalies (`EventSink.unfinishedAtEnd`).
    public var messagesCutByCapture: UInt64 = 0
    public var messagesCutByCaptureBytes: UInt64 = 0
    /// IP fragments taken into reassembly, datagrams they completed, and datagrams still incomplete when the input
    /// ended or packet time stepped back (cut by the capture: counted, not reported). A fragment reassembly cannot
    /// place (a length field of 0: TSO, a jumbogram) stays a decode failure (`ip_fragment_not_reassembled`).
    public var ipFragments: UInt64 = 0
    public var ipDatagramsReassembled: UInt64 = 0
    public var ipDatagramsCutByCapture: UInt64 = 0
    /// IP fragments of a datagram completed just before (`IPReassembly.Outcome.copyOfCompleted`): a capture's copy,
    /// dropped (counted in `ipFragments` too).
    public var ipFragmentsCapturedTwice: UInt64 = 0
    /// UDP datagrams the capture held twice (a copy of one its side sent just before, `RecentDatagrams`: a SPAN or
    /// TAP delivering each packet twice, a PRP network's two LANs) on a flow being dissected: counted in the flow's
    /// packets, not dissected again.
    public var udpDatagramsCapturedTwice: UInt64 = 0
    /// TCP segments and UDP datagrams of flows being dissected dropped for a wrong checksum, as their receiver drops
    /// them (`ChecksumValidation`): each also a `bad_checksum` anomaly.
    public var badChecksums: UInt64 = 0
    /// Flow sides (of flows being dissected) whose first verifiable packet had a wrong checksum: taken as captured on
    /// a host that offloads checksums to its network card, so not verified (`ChecksumValidation.auto`).
    public var checksumOffloadedSides: UInt64 = 0
    /// Anomalies reported (all layers).
    public var anomalies: UInt64 = 0
    /// Anomaly log lines not written because the per-kind log bound was reached (still counted).
    public var anomaliesNotLogged: UInt64 = 0
    /// Steps back of packet time beyond `PacketTime.clockStepSeconds` (each ended every live flow).
    public var clockSteps: UInt64 = 0
    /// Operations classified.
    public var operations: UInt64 = 0
    /// Alerts raised.
    public var alerts: UInt64 = 0
    /// PDUs per protocol (`AppProtocol.rawValue`).
    public var pdus = [UInt64](repeating: 0, count: AppProtocol.allCases.count)
    /// Flows identified per protocol.
    public var flowsPerProtocol = [UInt64](repeating: 0, count: AppProtocol.allCases.count)

    /// Decode failures in total.
    public var decodeFailureTotal: UInt64 { decodeFailures.reduce(0, &+) }
    /// Flows ended in total.
    public var flowsEndedTotal: UInt64 { flowsEnded.reduce(0, &+) }

    /// Creates zeroed counters.
    public init() {}
}
