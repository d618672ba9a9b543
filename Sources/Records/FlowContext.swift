import Wire

/// What a dissector may know about the flow it is parsing; set by the engine, read-only to dissectors.
public struct FlowContext: Sendable {
    // `flowSerial` and `flowSlot` first: a detector's per-operation check reads these two alone (when the engine does
    // not hand them over itself), and at the start they share one cache line.
    /// Serial number of the flow (1-based, in order of creation); 0 for contexts made outside an engine.
    public var flowSerial: UInt64
    /// The engine's slot for this flow and the flow's serial number (unique within a run): a detector can index
    /// per-flow state by `flowSlot` and check `flowSerial` instead of hashing the endpoints.
    public var flowSlot: Int32
    /// The side that opened the flow (TCP client; first sender otherwise).
    public var initiator: Endpoint
    /// The other side.
    public var responder: Endpoint
    /// TCP or UDP.
    public var transport: Transport
    /// VLAN id, 0 when untagged.
    public var vlan: UInt16
    /// Community ID v1 text (`1:...`), held inline (no reference counting when the context is copied per packet).
    public var communityIDText: InlineText
    /// Whether the flow was picked up midstream (no SYN seen), so the initiator is a guess.
    public var midstream: Bool

    /// Creates a context.
    public init(initiator: Endpoint, responder: Endpoint, transport: Transport, vlan: UInt16 = 0,
                communityID: String = "", midstream: Bool = false, flowSlot: Int32 = -1, flowSerial: UInt64 = 0) {
        self.initiator = initiator; self.responder = responder; self.transport = transport
        self.vlan = vlan; self.communityIDText = InlineText(communityID); self.midstream = midstream
        self.flowSlot = flowSlot; self.flowSerial = flowSerial
    }

    /// Community ID v1 text (`1:...`), empty when not computed.
    public var communityID: String {
        get { communityIDText.string }
        set { communityIDText = InlineText(newValue) }
    }

    /// The endpoint of `side`.
    @inlinable public func endpoint(_ side: FlowSide) -> Endpoint { side == .initiator ? initiator : responder }
}
