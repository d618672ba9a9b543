import Wire

/// Whether bytes look like a protocol: the content half of protocol identification.
public enum ProbeVerdict: Sendable {
    /// The bytes fit the protocol.
    case accept
    /// The bytes cannot be this protocol.
    case reject
    /// Too few bytes to tell.
    case needMoreData
}

/// The contract between the engine and one application-protocol dissector.
///
/// The engine owns one value per flow (a struct, stored inline in the flow's state: no existential,
/// no class per packet), hands it the in-order bytes of each direction, and buffers whatever the
/// dissector leaves unconsumed (a PDU split across segments) to present it again with the next bytes.
/// Over UDP each datagram is handed over whole and what is left unconsumed is discarded.
public protocol AppDissector {
    /// The protocol this dissector decodes.
    static var appProtocol: AppProtocol { get }
    /// Whether `port` is one of the protocol's registered server ports (502, 20000, 102).
    static func isWellKnownPort(_ port: UInt16) -> Bool
    /// The largest PDU the engine must be ready to buffer for this protocol.
    static var maximumPDUSize: Int { get }
    /// Decides from the first bytes a side sent whether the flow carries this protocol.
    static func probe(_ bytes: ByteView, side: FlowSide, transport: Transport) -> ProbeVerdict
    /// Whether `consume` reads `sink.flow` after a flow's first delivery while PDU and transaction records are off.
    /// When false, the engine puts the flow's context in the sink only if a delivery left something to drain
    /// (operations, anomalies): a 120-byte copy and two cache lines saved on every other packet.
    static var readsFlowContextAfterFirstDelivery: Bool { get }
    /// How many bytes from the start of a state the usual delivery reads (a whole one-PDU exchange): the engine
    /// prefetches these a few packets ahead, and no more, since every line prefetched in vain takes a slot of the
    /// few misses a core can have in flight.
    static var perPacketStateBytes: Int { get }

    /// A fresh per-flow state.
    init()
    /// Parses as many whole PDUs from `bytes` as there are and returns how many bytes it consumed.
    /// Garbage it skips while resynchronising counts as consumed (and is reported as an anomaly).
    mutating func consume(_ bytes: ByteView, side: FlowSide, sink: EventSink) -> Int
    /// `length` bytes from `side` are missing from the stream (never arrived): resynchronise on the next PDU.
    mutating func gap(side: FlowSide, length: Int, sink: EventSink)
    /// The flow ended: report what is still pending (unanswered requests, a message left unfinished in its own
    /// reassembly: `truncated_at_end`) and forget the flow.
    mutating func finish(sink: EventSink)
    /// Whether the state holds part of a message it reassembles itself (beyond the engine's carry), which `finish`
    /// reports: the engine then ends the flow in order, never wholesale.
    var holdsUnfinishedMessage: Bool { get }
    /// Whether `finish` would report nothing: no message in the state's own reassembly, and no request waiting for an
    /// answer while unanswered requests are written (`transactionRecords`). The engine then need not call it.
    func finishesQuietly(transactionRecords: Bool) -> Bool
}

extension AppDissector {
    /// By default a dissector may read the sink's flow context at any time.
    public static var readsFlowContextAfterFirstDelivery: Bool { true }
    /// By default the whole state.
    public static var perPacketStateBytes: Int { MemoryLayout<Self>.size }
    /// By default nothing: every partial PDU is in the engine's carry.
    public var holdsUnfinishedMessage: Bool { false }
    /// By default never known to be quiet: `finish` is called.
    public func finishesQuietly(transactionRecords: Bool) -> Bool { false }
}
