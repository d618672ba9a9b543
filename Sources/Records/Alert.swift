import Wire

/// A MITRE ATT&CK for ICS technique reference.
public struct AttackTechnique: Hashable, Sendable {
    /// Technique id, e.g. `T0843`.
    public var id: String
    /// Technique name, e.g. `Program Download`.
    public var name: String
    /// Creates a reference.
    public init(id: String, name: String) { self.id = id; self.name = name }
}

/// The category of the check that raised an alert (`rule.category`).
public enum AlertCategory: String, Sendable, CaseIterable {
    case zoneBoundary = "zone-boundary"
    case conduit = "conduit"
    case icsOperation = "ics-operation"
    case protocolAnomaly = "protocol-anomaly"
    case asset = "asset"
    case capture = "capture"
}

/// One alert, shaped as its ECS record (policy issue): built by detection, encoded by outputs.
/// Some captures raise alerts at packet rate, so the per-alert texts (message, Community ID) are held inline;
/// the other `String`s are shared ones (the rule catalog, the policy's names, short protocol names).
public struct Alert: Sendable {
    /// Packet time of the (first) packet that raised it.
    public var time: PacketTime
    /// That packet's 1-based number.
    public var frame: UInt64
    /// 0–10 (`event.severity`).
    public var severity: Int
    /// `event.action`, e.g. `modbus-write-outside-conduit`.
    public var action: String
    /// Stable rule id, e.g. `ZW-CONDUIT-002`.
    public var ruleID: String
    /// Rule name.
    public var ruleName: String
    /// Rule category.
    public var category: AlertCategory
    /// Sender of the offending traffic.
    public var source: Endpoint?
    /// Its peer.
    public var destination: Endpoint?
    /// Transport.
    public var transport: Transport?
    /// Application protocol name (`modbus`, ...) or transport name for non-ICS flows.
    public var networkProtocol: String?
    /// Community ID of the flow (v1 text: 30 bytes), empty when none. When detection deferred it
    /// (`deferCommunityID`), each read computes it (a SHA-1): an encoder reads it once per alert.
    public var communityIDText: InlineText {
        get {
            if communityIDDeferred, let s = source, let d = destination {
                return CommunityIDHasher.text(s, d, ipProtocol: communityIDProtocol)
            }
            return storedCommunityID
        }
        set { storedCommunityID = newValue; communityIDDeferred = false }
    }
    private var storedCommunityID = InlineText()
    /// Whether `communityIDText` is computed from `source`, `destination` and `communityIDProtocol` when read.
    public private(set) var communityIDDeferred = false
    private var communityIDProtocol: UInt8 = 0
    /// Leaves the Community ID to be computed when the alert is encoded, from its `source` and `destination`
    /// (which must be the flow's two endpoints, in either order: the ID orders them) and the flow's IP protocol.
    /// Built at once, it cost the capture thread a SHA-1 per alert of a storm, for outputs whose own threads encode
    /// the alerts.
    public mutating func deferCommunityID(ipProtocol: UInt8) {
        storedCommunityID = InlineText(); communityIDDeferred = true; communityIDProtocol = ipProtocol
    }
    /// `communityIDText` as a string, nil when empty (allocates: for tests and cold paths; a Community ID v1
    /// text fits, longer text is cut to 31 bytes).
    public var communityID: String? {
        get { communityIDText.isEmpty ? nil : communityIDText.string }
        set { communityIDText = InlineText(newValue ?? "") }
    }
    /// ATT&CK for ICS techniques.
    public var techniques: [AttackTechnique] = []
    /// ATT&CK version the ids were taken from.
    public var attackVersion: String = "v19"
    /// Zone of the source.
    public var sourceZone: String?
    /// Zone of the destination.
    public var destinationZone: String?
    /// Conduit the traffic was checked against.
    public var conduit: String?
    /// Highest target security level among the zones involved.
    public var securityLevel: Int?
    /// IEC 62443-3-3 system requirements, e.g. `["SR 5.2"]`.
    public var iec62443: [String] = []
    /// Access class of the operation.
    public var access: String?
    /// Function name of the operation.
    public var function: String?
    /// Modbus unit id.
    public var unitID: Int?
    /// DNP3 outstation address.
    public var dnp3Address: Int?
    /// Human-readable one-liner.
    public var messageText: AlertText
    /// `messageText` as a string (allocates beyond 15 bytes: for tests and cold paths).
    public var message: String {
        get { messageText.string }
        set { messageText = AlertText(newValue) }
    }
    /// How many identical alerts this one stands for (aggregation window).
    public var count: Int = 1
    /// First time seen within the aggregation window.
    public var firstSeen: PacketTime?
    /// Last time seen within the aggregation window.
    public var lastSeen: PacketTime?

    /// Creates an alert with the required fields.
    public init(time: PacketTime, frame: UInt64, severity: Int, action: String, ruleID: String,
                ruleName: String, category: AlertCategory, message: String) {
        self.time = time; self.frame = frame; self.severity = severity; self.action = action
        self.ruleID = ruleID; self.ruleName = ruleName; self.category = category; self.messageText = AlertText(message)
    }
}
