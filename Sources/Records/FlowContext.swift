import Wire

/// What a dissector may know about the flow it is parsing; set by the engine, read-only to dissectors.
public struct FlowContext: Sendable {
    /// The side that opened the flow (TCP client; first sender otherwise).
    public var initiator: Endpoint
    /// The other side.
    public var responder: Endpoint
    /// TCP or UDP.
    public var transport: Transport
    /// VLAN id, 0 when untagged.
    public var vlan: UInt16
    /// Community ID v1 text (`1:...`), empty when not computed.
    public var communityID: String
    /// Whether the flow was picked up midstream (no SYN seen), so the initiator is a guess.
    public var midstream: Bool

    /// Creates a context.
    public init(initiator: Endpoint, responder: Endpoint, transport: Transport, vlan: UInt16 = 0,
                communityID: String = "", midstream: Bool = false) {
        self.initiator = initiator; self.responder = responder; self.transport = transport
        self.vlan = vlan; self.communityID = communityID; self.midstream = midstream
    }

    /// The endpoint of `side`.
    @inlinable public func endpoint(_ side: FlowSide) -> Endpoint { side == .initiator ? initiator : responder }
}
