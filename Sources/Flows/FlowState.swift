import Wire

/// Why a flow's record was written.
public enum FlowEndReason: UInt8, Sendable, CaseIterable {
    case fin, rst, idleTimeout, evicted, endOfInput, portReuse
    /// Packet time went back by more than `PacketTime.clockStepSeconds`: every live flow ends there.
    case clockStep

    /// The name in flow records (`event.reason`).
    public var name: StaticString {
        switch self {
        case .fin: "fin"
        case .rst: "rst"
        case .idleTimeout: "idle_timeout"
        case .evicted: "evicted"
        case .endOfInput: "end_of_input"
        case .portReuse: "port_reuse"
        case .clockStep: "clock_step"
        }
    }

    /// Whether the capture, not a peer on the wire, ended the flow: its end (end of input), the monitor's flow cap
    /// (eviction) or a step of its packet time.
    public var isCaptureBoundary: Bool { self == .endOfInput || self == .evicted || self == .clockStep }
}

/// Everything ZoneWatch keeps about one live flow, stored by value in the flow table's slots.
///
/// Field order is layout (Swift keeps declaration order): what every packet reads or writes comes first, so an
/// in-order packet of an established flow touches the first two cache lines of its slot and no more (10,000
/// interleaved flows do not fit in a core's L2, and each further line is a miss per packet); the streams, read
/// only by the engine's general path, come next, and what is written once per flow last, in the third line. Three
/// lines in all: with 100,000 flows every byte here is a byte of fresh memory the kernel zeroes (the Community ID,
/// which most runs never compute, lives in `FlowTable.communityIDs`; a stream's held segments and anomaly counters,
/// which most streams never need, in a `TCPStreamBacklog` made on first need).
/// `FlowStateLayoutTests` checks the offsets and that the stride is a whole number of cache lines (the table
/// allocates slots 64-byte aligned).
public struct FlowState {
    // ---- per packet
    /// The key.
    public var key: FlowKey
    /// Packets per side (index: `FlowSide.rawValue`).
    public var packets: (UInt64, UInt64) = (0, 0)
    /// IP bytes per side.
    public var bytes: (UInt64, UInt64) = (0, 0)
    /// Time of the latest packet.
    public var lastSeen: PacketTime
    /// Whether the initiator is the key's low endpoint.
    public var initiatorIsLow: Bool
    /// No SYN was seen: the initiator is whoever sent first.
    public var midstream: Bool
    /// FIN seen per side (bit 0 initiator, bit 1 responder); bits 2 and 3: that side's FIN came in sequence.
    public var finMask: UInt8 = 0
    /// RST seen.
    public var reset = false
    /// Application state owned by the engine: which dissector (0 undecided) and its slot.
    public var application: UInt8 = 0
    /// What the engine's one-pass path needs of the two streams, so that it reads nothing of them: per side
    /// (`FlowSide.rawValue`), bit 2·side: the stream holds no out-of-order segments; bit 2·side + 1: the stream is
    /// synchronised and its next sequence number is `inOrder`'s, not its own (stale until the engine writes it
    /// back, before the stream is used: see `Engine.tcpSegment`).
    public var streamSummary: UInt8 = FlowState.quietStreams
    /// The flow's Community ID is in `FlowTable.communityIDs` (computed when first written). Here, in a byte the
    /// line had spare.
    public var communityIDStored = false
    /// Per side (bits 2·`FlowSide.rawValue`), what the engine verifies of its checksums (`ChecksumSide`). In a byte the
    /// line had spare, beside `streamSummary`, which the one-pass path reads too.
    public var checksumSides: UInt8 = 0
    /// The engine's slot for the dissector state.
    public var applicationSlot: Int32 = -1
    /// The next sequence number per side while `streamSummary` says so.
    public var inOrder: (UInt32, UInt32) = (0, 0)
    /// Serial number of the flow within the run (1-based), set by the engine. Here, not with the per-flow fields:
    /// a dissected packet's operations carry it to the detector, and this line is loaded anyway.
    public var serial: UInt64 = 0
    /// Unconsumed stream bytes waiting for the rest of a PDU, initiator side.
    public var initiatorCarry: [UInt8] = []
    /// Same, responder side.
    public var responderCarry: [UInt8] = []
    // ---- per packet of the engine's general path
    /// In-order reassembly, initiator → responder.
    public var initiatorStream = TCPStream()
    /// In-order reassembly, responder → initiator.
    public var responderStream = TCPStream()
    /// The initiator's SYN sequence number (valid when `midstream` is false): a SYN with the same number
    /// on a closed flow is a retransmission, a different one is port reuse (a new conversation).
    public var initialSequence: UInt32 = 0
    /// The lower half of the flow's hash, set by the table: where `FlowTable.remove` starts probing (in bytes the
    /// line had spare; a table of hashes beside the slots was 8 more bytes of fresh memory a flow).
    public internal(set) var hashLow: UInt32 = 0
    // ---- per flow
    /// First packet time.
    public var firstSeen: PacketTime
    /// Number of the first packet.
    public var firstFrame: UInt64

    /// `checksumSides` with both sides `side`.
    @inlinable public static func bothChecksumSides(_ side: ChecksumSide) -> UInt8 { side.rawValue | side.rawValue << 2 }

    /// Creates the state of a new flow.
    public init(key: FlowKey, initiatorIsLow: Bool, midstream: Bool, firstSeen: PacketTime, lastSeen: PacketTime,
                firstFrame: UInt64) {
        self.key = key; self.initiatorIsLow = initiatorIsLow; self.midstream = midstream
        self.firstSeen = firstSeen; self.lastSeen = lastSeen; self.firstFrame = firstFrame
    }

    /// The initiator's endpoint.
    @inlinable public var initiator: Endpoint {
        initiatorIsLow ? Endpoint(ip: key.lowIP, port: key.lowPort) : Endpoint(ip: key.highIP, port: key.highPort)
    }
    /// The responder's endpoint.
    @inlinable public var responder: Endpoint {
        initiatorIsLow ? Endpoint(ip: key.highIP, port: key.highPort) : Endpoint(ip: key.lowIP, port: key.lowPort)
    }
    /// `streamSummary` of a flow whose streams hold nothing and are not synchronised.
    public static var quietStreams: UInt8 { 0b0101 }

    /// Whether the flow has closed (both FINs or a RST) and only lingers for stragglers.
    @inlinable public var isClosed: Bool { reset || finMask & 3 == 3 }

    /// Whether either side's carry holds bytes not yet dissected (a PDU's start, or an undecided flow's first bytes).
    @inlinable public var holdsCarry: Bool { !(initiatorCarry.isEmpty && responderCarry.isEmpty) }

    /// What a closed flow ends as: `rst` after a RST, else `fin`.
    @inlinable public var closedEndReason: FlowEndReason { reset ? .rst : .fin }
}

/// What the engine verifies of one flow side's checksums (two bits of `FlowState.checksumSides`).
public enum ChecksumSide: UInt8, Sendable {
    /// No verifiable packet yet: the next one decides.
    case undecided = 0
    /// Taken as offloaded (its first verifiable packet was wrong): not verified.
    case offloaded = 1
    /// Verified: a wrong checksum is dropped.
    case verified = 2
    /// Not verified (the flow is not dissected, or `--checksums off`).
    case unchecked = 3
}
