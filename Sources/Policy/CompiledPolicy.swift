import Wire
import Records

/// A zone as the compiled policy knows it.
public struct ZoneInfo: Sendable {
    /// Name.
    public let name: String
    /// Target security level 0–4.
    public let securityLevel: Int
    /// Purdue level, when given.
    public let purdueLevel: Double?
    /// Effective intra-zone mode (the zone's own, else the policy's).
    public let intraZone: IntraZoneMode
}

/// The zone and asset a host resolves to (-1: none).
public struct HostInfo: Sendable, Equatable {
    /// Zone index, -1 when the host is in no zone.
    public var zone: Int32
    /// Asset index, -1 when the host is not a named asset.
    public var asset: Int32
    /// Creates a host resolution.
    public init(zone: Int32, asset: Int32) { self.zone = zone; self.asset = asset }
    /// In no zone.
    public static let unknown = HostInfo(zone: -1, asset: -1)
}

/// What the policy says about a flow as a whole: computed once at the flow's first packet and kept
/// (by the detector or the engine) so that each operation is checked with a few array reads.
public struct FlowVerdict: Sendable, Equatable {
    /// The zone-boundary outcome.
    public enum Kind: UInt8, Sendable {
        /// No policy is loaded.
        case noPolicy
        /// Both hosts in no zone, or a multicast/broadcast destination: nothing to check.
        case outside
        /// One host in a zone, the other in none.
        case unzoned
        /// Same zone, `intra_zone: allow`: no checks.
        case intraAllow
        /// Same zone, `intra_zone: monitor`: ICS-operation detections only.
        case intraMonitor
        /// Covered by one or more conduits (or the zone's own rules under `enforce`): content is checked.
        case conduit
        /// Two zones, no conduit, `default: deny`.
        case noConduit
        /// Two zones, no conduit, `default: allow`.
        case defaultAllow
        /// Only a conduit in the opposite direction exists.
        case wrongDirection
        /// Conduits exist for the zone pair but none lists the initiator.
        case initiatorNotListed
        /// Conduits exist for the zone pair and list the initiator, but none lists the responder.
        case responderNotListed
        /// Same zone, `enforce`, and the zone has no rules for this flow (treated like `noConduit`).
        case intraDenied
    }
    /// The outcome.
    public var kind: Kind
    /// Zone and asset of the flow's (effective) initiator.
    public var initiator: HostInfo
    /// Zone and asset of the (effective) responder.
    public var responder: HostInfo
    /// The conduit the flow is checked against or that it violates (-1: none).
    public var conduit: Int32
    /// Start of this zone pair's conduits in `CompiledPolicy.pairConduits`.
    public var pairStart: Int32
    /// Bit i set when `pairConduits[pairStart + i]` covers the flow's endpoints.
    public var conduitMask: UInt64
    /// Bits of `conduitMask` whose transport rules cover the flow's transport and responder port.
    public var transportMask: UInt64
    /// The initiator was picked up midstream and the reverse direction matches a conduit: the roles are swapped.
    public var reversed: Bool
    /// Highest target security level of the zones involved, -1 when none is zoned.
    public var securityLevel: Int8

    /// A verdict with no policy.
    public static let noPolicy = FlowVerdict(kind: .noPolicy, initiator: .unknown, responder: .unknown, conduit: -1,
                                             pairStart: 0, conduitMask: 0, transportMask: 0, reversed: false, securityLevel: -1)
}

/// What the policy says about one operation on a flow.
public struct OperationVerdict: Sendable, Equatable {
    /// The outcome.
    public enum Kind: UInt8, Sendable {
        /// The flow is not checked per operation (no conduit, intra-zone monitor, no policy).
        case notChecked
        /// A rule allows it.
        case allowed
        /// A rule allows it and its class is in the conduit's `notify`.
        case allowedNotify
        /// No rule of the operation's protocol exists on the conduit(s).
        case protocolDenied
        /// Rules exist, none allows the access class or function.
        case functionDenied
        /// Rules allow the function, none the unit id / DNP3 address.
        case deviceDenied
        /// Rules allow function and device, none the address range / S7 area / DB.
        case dataDenied
    }
    /// The outcome.
    public var kind: Kind
    /// The conduit that allowed it, or the one checked when denied.
    public var conduit: Int32
    /// The rule (index in that conduit) that came closest when denied, or that allowed it.
    public var rule: Int32
    /// Creates a verdict.
    @inlinable public init(kind: Kind, conduit: Int32, rule: Int32) { self.kind = kind; self.conduit = conduit; self.rule = rule }
}

/// A validated policy compiled into lookups: longest-prefix match for hosts, a conduit list per zone pair,
/// masks and sorted ranges per rule. Immutable, so a reload builds a new one and swaps the reference.
public final class CompiledPolicy: Sendable {
    /// Zones in file order (index = zone id).
    public let zones: [ZoneInfo]
    /// Asset names (index = asset id).
    public let assetNames: [String]
    /// Conduits: the file's, in order, then one per zone with `enforce` rules.
    public let conduits: [CompiledConduit]
    /// Conduit indices grouped by (from, to) zone pair.
    public let pairConduits: [Int32]
    /// Traffic between zones without a conduit.
    public let defaultAction: DefaultAction
    /// Hosts in no zone.
    public let unknownHosts: UnknownHostsMode
    /// The ATT&CK release of technique ids.
    public let attackVersion: AttackVersion
    /// The model the policy was compiled from.
    public let policy: Policy

    let hostTrie: PrefixTrie
    let hostEntries: [HostInfo]
    let pairs: [UInt64: (start: Int32, count: Int32)]
    /// `pairs` as a flat from × to table when there are at most `flatPairZones` zones (count 0: no conduit):
    /// an index instead of a SipHash lookup for every new flow.
    let flatPairs: [(start: Int32, count: Int32)]
    static let flatPairZones = 128
    // The per-operation path reads these flat arrays rather than copying `CompiledConduit` values.
    @usableFromInline let appMasks: [UInt8]
    @usableFromInline let notifyMasks: [UInt16]
    @usableFromInline let ruleStart: [Int32]
    @usableFromInline let flatRules: [CompiledRule]
    /// `flatRules`' protocols and access masks, and whether `CompiledRule.match` needs more than the mask: most
    /// rules list only a protocol and access classes, and checking those here reads 4 bytes, not a rule of seven
    /// arrays (whose copy out of `flatRules` retained and released them for every rule an operation was checked
    /// against).
    @usableFromInline let ruleHeads: [RuleHead]

    /// What `evaluate` reads of a rule first.
    @usableFromInline struct RuleHead: Sendable {
        /// `AppProtocol.rawValue`, or 0xFF for a transport rule.
        @usableFromInline var appProtocol: UInt8
        /// Whether the rule has lists beyond its access mask (functions, devices, addresses, areas, DBs).
        @usableFromInline var hasLists: Bool
        @usableFromInline var accessMask: UInt16
        init(_ r: CompiledRule) {
            appProtocol = r.appProtocol?.rawValue ?? 0xFF
            hasLists = !r.functions.isEmpty || !r.devices.isEmpty || !r.addresses.isEmpty || !r.areas.isEmpty || !r.dbNumbers.isEmpty
            accessMask = r.accessMask
        }
    }

    init(policy: Policy, zones: [ZoneInfo], assetNames: [String], conduits: [CompiledConduit], pairConduits: [Int32],
         pairs: [UInt64: (start: Int32, count: Int32)], hostTrie: PrefixTrie, hostEntries: [HostInfo]) {
        self.policy = policy; self.zones = zones; self.assetNames = assetNames; self.conduits = conduits
        self.pairConduits = pairConduits; self.pairs = pairs; self.hostTrie = hostTrie; self.hostEntries = hostEntries
        var flat: [(start: Int32, count: Int32)] = []
        if zones.count <= CompiledPolicy.flatPairZones {
            flat = Array(repeating: (0, 0), count: zones.count * zones.count)
            for (key, pair) in pairs {
                let from = Int(key >> 32), to = Int(key & 0xFFFF_FFFF)
                if from < zones.count && to < zones.count { flat[from * zones.count + to] = pair }
            }
        }
        flatPairs = flat
        self.defaultAction = policy.defaultAction; self.unknownHosts = policy.unknownHosts; self.attackVersion = policy.attackVersion
        appMasks = conduits.map(\.appMask)
        notifyMasks = conduits.map(\.notifyMask)
        var starts: [Int32] = [], rules: [CompiledRule] = []
        for c in conduits { starts.append(Int32(rules.count)); rules.append(contentsOf: c.rules) }
        starts.append(Int32(rules.count))
        ruleStart = starts; flatRules = rules
        ruleHeads = rules.map(RuleHead.init)
    }

    /// Number of trie nodes (bench, tests).
    public var lookupNodeCount: Int { hostTrie.nodeCount }

    /// The zone and asset of `ip` by longest-prefix match (assets win over networks of equal length).
    @inlinable public func host(_ ip: IPAddress) -> HostInfo {
        let v = lookupHost(ip)
        return v < 0 ? .unknown : hostEntry(Int(v))
    }

    @usableFromInline func lookupHost(_ ip: IPAddress) -> Int32 { hostTrie.lookup(ip) }
    @usableFromInline func hostEntry(_ i: Int) -> HostInfo { hostEntries[i] }

    /// The zone name of a zone index, nil for -1.
    public func zoneName(_ z: Int32) -> String? { z >= 0 ? zones[Int(z)].name : nil }

    /// Whether an address is multicast, broadcast or unspecified (never a zone member or an unknown host).
    public static func isNonUnicast(_ ip: IPAddress) -> Bool {
        if ip.isIPv4 {
            let v = ip.v4
            return v >> 28 == 0xE || v == 0xFFFF_FFFF || v == 0
        }
        return ip.high >> 56 == 0xFF || (ip.high == 0 && ip.low == 0)
    }

    // MARK: - Flows

    /// Resolves a flow once: zones, the conduits that cover its endpoints, or why none does.
    public func resolve(initiator: Endpoint, responder: Endpoint, transport: Transport, midstream: Bool = false) -> FlowVerdict {
        resolve(initiator: initiator, responder: responder, transport: transport, midstream: midstream,
                initiatorHost: host(initiator.ip), responderHost: host(responder.ip))
    }

    /// `resolve` with the endpoints' `host` results already known (a caller that caches host lookups).
    public func resolve(initiator: Endpoint, responder: Endpoint, transport: Transport, midstream: Bool,
                        initiatorHost hi: HostInfo, responderHost hr: HostInfo) -> FlowVerdict {
        var v = FlowVerdict(kind: .outside, initiator: hi, responder: hr, conduit: -1, pairStart: 0, conduitMask: 0,
                            transportMask: 0, reversed: false, securityLevel: -1)
        let sl = max(hi.zone >= 0 ? zones[Int(hi.zone)].securityLevel : -1, hr.zone >= 0 ? zones[Int(hr.zone)].securityLevel : -1)
        v.securityLevel = Int8(sl)
        if CompiledPolicy.isNonUnicast(responder.ip) || CompiledPolicy.isNonUnicast(initiator.ip) { return v }
        if hi.zone < 0 && hr.zone < 0 { return v }
        if hi.zone < 0 || hr.zone < 0 { v.kind = .unzoned; return v }
        if hi.zone == hr.zone {
            switch zones[Int(hi.zone)].intraZone {
            case .allow: v.kind = .intraAllow; return v
            case .monitor: v.kind = .intraMonitor; return v
            case .enforce: break
            }
        }
        if match(&v, initiator: initiator, responder: responder, transport: transport) { return v }
        let forwardKind = v.kind
        // Only a conduit the other way: a midstream flow is probably the other way round.
        var r = FlowVerdict(kind: .outside, initiator: hr, responder: hi, conduit: -1, pairStart: 0, conduitMask: 0,
                            transportMask: 0, reversed: true, securityLevel: v.securityLevel)
        if hi.zone != hr.zone, match(&r, initiator: responder, responder: initiator, transport: transport) {
            if midstream { return r }
            v.kind = .wrongDirection; v.conduit = r.conduit
            return v
        }
        if forwardKind == .initiatorNotListed || forwardKind == .responderNotListed { return v }
        v.kind = hi.zone == hr.zone ? .intraDenied : (defaultAction == .deny ? .noConduit : .defaultAllow)
        return v
    }

    /// Fills `v` from the conduits of (initiator zone, responder zone); true when some conduit covers the flow.
    func match(_ v: inout FlowVerdict, initiator: Endpoint, responder: Endpoint, transport: Transport) -> Bool {
        let pair: (start: Int32, count: Int32)
        if !flatPairs.isEmpty {
            // Both zones are >= 0 here (`resolve` returned earlier otherwise).
            let p = flatPairs[Int(v.initiator.zone) * zones.count + Int(v.responder.zone)]
            guard p.count > 0 else { v.kind = .noConduit; return false }
            pair = p
        } else {
            guard let p = pairs[UInt64(UInt32(bitPattern: v.initiator.zone)) << 32 | UInt64(UInt32(bitPattern: v.responder.zone))] else {
                v.kind = .noConduit
                return false
            }
            pair = p
        }
        v.pairStart = pair.start
        var mask: UInt64 = 0, tmask: UInt64 = 0
        var initiatorOK = -1, firstConduit: Int32 = -1
        for i in 0..<Int(pair.count) {
            let ci = pairConduits[Int(pair.start) + i]
            let c = conduits[Int(ci)]
            if firstConduit < 0 { firstConduit = ci }
            guard c.allowsInitiator(initiator.ip) else { continue }
            if initiatorOK < 0 { initiatorOK = Int(ci) }
            guard c.allowsResponder(responder.ip) else { continue }
            mask |= 1 << UInt64(i)
            for rule in c.rules where rule.matchesTransport(transport, port: responder.port) { tmask |= 1 << UInt64(i); break }
        }
        v.conduitMask = mask; v.transportMask = tmask
        if mask != 0 {
            v.kind = .conduit
            v.conduit = pairConduits[Int(pair.start) + mask.trailingZeroBitCount]
            return true
        }
        if initiatorOK >= 0 { v.kind = .responderNotListed; v.conduit = Int32(initiatorOK) }
        else { v.kind = .initiatorNotListed; v.conduit = firstConduit }
        return false
    }

    /// Whether a flow whose application protocol is now known (nil: not an ICS protocol) may use the conduit(s).
    /// Returns the conduit to name, and whether it is allowed.
    public func allowsProtocol(_ app: AppProtocol?, verdict v: FlowVerdict) -> Bool {
        guard v.kind == .conduit else { return true }
        return allowsProtocol(app, pairStart: v.pairStart, conduitMask: v.conduitMask, transportMask: v.transportMask)
    }

    /// `allowsProtocol` for a `.conduit` verdict given by the fields it reads.
    public func allowsProtocol(_ app: AppProtocol?, pairStart: Int32, conduitMask: UInt64, transportMask: UInt64) -> Bool {
        if let app {
            var m = conduitMask
            while m != 0 {
                let i = m.trailingZeroBitCount; m &= m - 1
                if appMasks[Int(pairConduits[Int(pairStart) + i])] & (1 << app.rawValue) != 0 { return true }
            }
        }
        return transportMask != 0
    }

    /// Checks one operation of a flow against the conduit(s) that cover it. Allocation-free.
    @inlinable public func evaluate(_ op: Operation, verdict v: FlowVerdict) -> OperationVerdict {
        if v.kind != .conduit { return OperationVerdict(kind: .notChecked, conduit: v.conduit, rule: -1) }
        return evaluate(op, conduit: v.conduit, pairStart: v.pairStart, conduitMask: v.conduitMask, transportMask: v.transportMask)
    }

    /// `evaluate` for a `.conduit` verdict given by the fields it reads (a caller that keeps them apart from the
    /// verdict).
    @inlinable public func evaluate(_ op: Operation, conduit: Int32, pairStart: Int32, conduitMask: UInt64,
                                    transportMask: UInt64) -> OperationVerdict {
        if op.access == .response { return OperationVerdict(kind: .notChecked, conduit: conduit, rule: -1) }
        var best = OperationVerdict(kind: .protocolDenied, conduit: conduit, rule: -1)
        var bestStage: Int = -1
        var hasRules = false
        let bit: UInt8 = 1 << op.appProtocol.rawValue
        let accessBit: UInt16 = 1 << UInt16(op.access.rawValue)
        var m = conduitMask
        while m != 0 {
            let i = m.trailingZeroBitCount; m &= m - 1
            let ci = pairConduits[Int(pairStart) + i]
            if appMasks[Int(ci)] & bit == 0 { continue }
            hasRules = true
            var r = Int(ruleStart[Int(ci)])
            let end = Int(ruleStart[Int(ci) + 1]), first = r
            while r < end {
                defer { r += 1 }
                let head = ruleHeads[r]
                guard head.appProtocol == op.appProtocol.rawValue else { continue }
                // `CompiledRule.match` of a rule with no lists: its access-mask test alone.
                let stage: CompiledRule.Stage = head.hasLists ? flatRules[r].match(op)
                    : head.accessMask != 0 && head.accessMask & accessBit == 0 ? .function : .matched
                if stage == .matched {
                    let notify = notifyMasks[Int(ci)] & (1 << UInt16(op.access.rawValue)) != 0
                    return OperationVerdict(kind: notify ? .allowedNotify : .allowed, conduit: ci, rule: Int32(r - first))
                }
                if Int(stage.rawValue) > bestStage {
                    bestStage = Int(stage.rawValue)
                    best = OperationVerdict(kind: stage == .function ? .functionDenied : stage == .device ? .deviceDenied : .dataDenied,
                                            conduit: ci, rule: Int32(r - first))
                }
            }
        }
        if !hasRules {
            // No rule for this protocol: a transport rule (any content) may still cover the flow.
            if transportMask != 0 {
                let ci = pairConduits[Int(pairStart) + transportMask.trailingZeroBitCount]
                let notify = notifyMasks[Int(ci)] & (1 << UInt16(op.access.rawValue)) != 0
                return OperationVerdict(kind: notify ? .allowedNotify : .allowed, conduit: ci, rule: -1)
            }
            return best
        }
        return best
    }

    /// The access classes whose operations of `app`, on a `.conduit` flow with these fields, `evaluate` finds
    /// `.allowed` (not `.allowedNotify`, not denied) whatever the operations' other fields: bit
    /// `AccessClass.rawValue`. Computed once per flow when its protocol is known, so that an allowed operation is
    /// one bit test. A class whose outcome depends on more than protocol and class (a rule with function, device
    /// or address lists allows it before any rule allows it outright) is left out: `evaluate` decides it.
    public func quietAccessMask(_ app: AppProtocol, pairStart: Int32, conduitMask: UInt64, transportMask: UInt64) -> UInt16 {
        var decided: UInt16 = 0, quiet: UInt16 = 0, hasRules = false
        let bit: UInt8 = 1 << app.rawValue
        // `evaluate`'s order: conduits by mask bit, rules in file order; the first rule that matches decides.
        var m = conduitMask
        while m != 0 {
            let i = m.trailingZeroBitCount; m &= m - 1
            let ci = Int(pairConduits[Int(pairStart) + i])
            if appMasks[ci] & bit == 0 { continue }
            hasRules = true
            for r in Int(ruleStart[ci])..<Int(ruleStart[ci + 1]) where ruleHeads[r].appProtocol == app.rawValue {
                let head = ruleHeads[r]
                // Classes outside the access mask fail this rule whatever the operation (`match`'s first test).
                let allows: UInt16 = head.accessMask == 0 ? 0xFFFF : head.accessMask
                let open = allows & ~decided
                if !head.hasLists { quiet |= open & ~notifyMasks[ci] }
                decided |= open
            }
        }
        if !hasRules {
            // `evaluate`'s transport-rule case: any content, the transport conduit's notify list aside.
            if transportMask != 0 { quiet = ~notifyMasks[Int(pairConduits[Int(pairStart) + transportMask.trailingZeroBitCount])] }
        }
        return quiet & CompiledPolicy.operationClasses
    }

    /// A bit per access class but `.response` (`evaluate` does not check responses).
    static let operationClasses: UInt16 = AccessClass.allCases.reduce(0) { $1 == .response ? $0 : $0 | 1 << UInt16($1.rawValue) }

    @usableFromInline func pairConduit(_ i: Int) -> Int32 { pairConduits[i] }
    @usableFromInline func conduit(_ i: Int) -> CompiledConduit { conduits[i] }
}
