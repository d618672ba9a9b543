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
    /// Community ID v1 text (`1:...`) when set; empty while `communityIDPending` (held inline: no reference counting
    /// when the context is copied per packet).
    @usableFromInline var storedCommunityID: InlineText
    /// Whether the flow was picked up midstream (no SYN seen), so the initiator is a guess.
    public var midstream: Bool
    /// `communityIDPending`.
    @usableFromInline var pendingCommunityID = false
    /// The flow's IP protocol number, for a pending Community ID.
    @usableFromInline var pendingCommunityIDProtocol: UInt8 = 0

    /// Creates a context.
    public init(initiator: Endpoint, responder: Endpoint, transport: Transport, vlan: UInt16 = 0,
                communityID: String = "", midstream: Bool = false, flowSlot: Int32 = -1, flowSerial: UInt64 = 0) {
        self.initiator = initiator; self.responder = responder; self.transport = transport
        self.vlan = vlan; self.storedCommunityID = InlineText(communityID); self.midstream = midstream
        self.flowSlot = flowSlot; self.flowSerial = flowSerial
    }

    /// Community ID v1 text (`1:...`), held inline: the one set, or the one computed now if pending (a SHA-1: a reader
    /// that reads it more than once per flow, such as the records of every PDU, should have it set instead).
    /// Empty when neither.
    @inlinable public var communityIDText: InlineText {
        get {
            pendingCommunityID ? CommunityIDHasher.text(initiator, responder, ipProtocol: pendingCommunityIDProtocol) : storedCommunityID
        }
        set { storedCommunityID = newValue; pendingCommunityID = false }
    }

    /// The Community ID is computed from the endpoints and the IP protocol whenever `communityIDText` is read: an
    /// engine builds contexts for every flow, and most flows' IDs are never written (a SHA-1 each).
    @inlinable public var communityIDPending: Bool { pendingCommunityID }
    /// The IP protocol number a pending Community ID is computed with (0 when not pending).
    @inlinable public var communityIDProtocol: UInt8 { pendingCommunityID ? pendingCommunityIDProtocol : 0 }

    /// Leaves the Community ID to be computed when read (`communityIDText`), for IP protocol `ipProtocol`.
    @inlinable public mutating func setCommunityIDPending(ipProtocol: UInt8) {
        storedCommunityID = InlineText(); pendingCommunityID = true; pendingCommunityIDProtocol = ipProtocol
    }

    /// Community ID v1 text (`1:...`), empty when not computed (`communityIDText`).
    public var communityID: String {
        get { communityIDText.string }
        set { communityIDText = InlineText(newValue) }
    }

    /// The endpoint of `side`.
    @inlinable public func endpoint(_ side: FlowSide) -> Endpoint { side == .initiator ? initiator : responder }
}
