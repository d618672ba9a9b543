import Wire
import Records
import Policy
import CPrefetch

/// One worker's detection stage: checks each flow against the zone/conduit policy, each operation
/// against the conduit's rules and the ICS-operation rules, turns anomalies into alerts, and folds
/// repeats. Deterministic: alert content depends only on the input (packet time, never the wall
/// clock), and nothing is emitted in dictionary order.
///
/// Per operation with no alert, the work is a flow-cache hit, a few mask tests over the conduit's
/// rules and one scan-counter update, with no heap allocation.
public final class Detector {
    /// The policy in force (nil: only ICS-operation, scan and anomaly alerts).
    // One worker owns a detector and calls it from one thread, so the per-access exclusivity checks on
    // its stored properties (a third of the per-operation cost when measured) are turned off.
    @exclusivity(unchecked) public private(set) var policy: CompiledPolicy? {
        didSet { policyReference = policy.map { Unmanaged.passUnretained($0) } }
    }
    /// `policy`, for the per-flow paths to use without reference counting (`policy` keeps it alive): `if let policy`
    /// retained and released it, two atomic operations in each of a flow's start, verdict and identification. So the
    /// policy is replaced only between the detector's calls (`applyPolicy`), never from inside one.
    @exclusivity(unchecked) private var policyReference: Unmanaged<CompiledPolicy>?
    /// Windows, thresholds, bounds.
    public let config: DetectionConfig
    /// `hostValue`'s key, random per detector.
    let hostValueKey = TableHash.randomKey()

    struct FlowKey: Hashable {
        var initiator: Endpoint
        var responder: Endpoint
        var transport: UInt8
        var vlan: UInt16
        init(_ f: FlowContext) {
            initiator = f.initiator; responder = f.responder; transport = f.transport.rawValue; vlan = f.vlan
        }
        /// One word instead of ten fields through SipHash (a lookup of an engine's flow whose entry lapsed, or of a
        /// context without one), mixed word by word under a key of the process's (`TableHash`): folded together first,
        /// words an attacker chooses could cancel out, and the hasher, however seeded, sees one word for all.
        func hash(into h: inout Hasher) {
            let x = TableHash.round(TableHash.round(FlowKey.hashKey, initiator.ip), responder.ip)
            h.combine(TableHash.round(x, UInt64(initiator.port) << 48 | UInt64(responder.port) << 32 | UInt64(transport) << 16 | UInt64(vlan)))
        }
        static let hashKey = TableHash.randomKey()
    }

    /// A flow's cached verdict (`slots`: one per tracked flow, 56 bytes, fresh memory for each of 100,000 flows).
    struct FlowState {
        var verdict: FlowVerdict
        /// Zones of `FlowContext.initiator` and `.responder` as seen (not swapped for midstream flows): the verdict's,
        /// unswapped (derived, not stored: 16 bytes a flow).
        var initiatorZone: Int32 { verdict.reversed ? verdict.responder.zone : verdict.initiator.zone }
        var responderZone: Int32 { verdict.reversed ? verdict.initiator.zone : verdict.responder.zone }
        var protocolDenied = false
        /// The last unit id / DNP3 address the initiator addressed: the unit-scan counter is only
        /// touched when it changes, so a flow polling one device costs no hash lookup per operation.
        var lastUnit: Int32 = Int32.min
    }

    /// Flow key → index in `slots`; slots freed by `flowEnded` are reused.
    @exclusivity(unchecked) var flows: [FlowKey: Int32] = [:]
    @exclusivity(unchecked) var slots: [FlowState] = []
    @exclusivity(unchecked) var freeSlots: [Int32] = []
    /// How many of `slots` engine flows own (`EngineSlot.ownsSlot`).
    @exclusivity(unchecked) var ownedStates = 0
    @exclusivity(unchecked) var lastKey: FlowKey?
    /// Direct map from the engine's flow slot to our slot, valid while the serial matches (no hashing per
    /// operation when the caller is an engine; contexts without a serial use the dictionary). Serial and slot
    /// side by side: one cache line per lookup, which is what a lookup costs with many flows.
    /// An engine flow slot's entry: whose it is (serial), our slot, and copies of the fields of that slot's state
    /// that `operation` reads in the common case, so that it reads one cache line per operation (kept equal to
    /// the state's: set from it here, and written together with it).
    /// A conduit flow's masks are here too, so that an operation a conduit allows is checked without reading the
    /// state (72 bytes elsewhere: with 100,000 flows, a second cache miss per operation).
    /// What the quiet check (`isAllowedQuietly`, `passesQuietly`) reads is in the first 16 bytes, which never straddle
    /// two lines. The whole 32 bytes may: the array's elements begin 48 bytes into a page (malloc's header and the
    /// array's), so every other entry starts 16 bytes before a line ends; with the masks and flags in its second half,
    /// that half was a miss of its own on half the operations (the engine prefetches the line an entry starts in).
    struct EngineSlot {
        var serial: UInt64 = 0
        var lastUnit: Int32 = Int32.min
        /// `CompiledPolicy.quietAccessMask` for the protocol `quietProtocol - 1` (0: none yet), set by `flowIdentified`:
        /// the access classes an operation of that protocol is allowed with, whatever else it says.
        var quietAccess: UInt16 = 0
        var quietProtocol: UInt8 = 0
        /// `reversed`, `protocolDenied` and `hasConduitMasks`, in one byte.
        var flags: UInt8 = 0
        // The first 16 bytes end here.
        var slot: Int32 = 0
        /// `FlowVerdict.pairStart`.
        var pairStart: Int32 = 0
        /// `FlowVerdict.conduitMask` and `.transportMask` of a `.conduit` verdict whose masks fit 16 bits; 0 otherwise
        /// (a conduit verdict's mask is never 0): `operation` then reads the state.
        var conduitMask: UInt16 = 0
        var transportMask: UInt16 = 0
        var kind: FlowVerdict.Kind = .noPolicy
        /// The state slot was allocated for this entry alone (`flowStarted` of an engine's flow), not through
        /// `flows`: `flowEnded` frees it without hashing the endpoints.
        var ownsSlot = false

        static let reversedFlag: UInt8 = 1, protocolDeniedFlag: UInt8 = 2, conduitMasksFlag: UInt8 = 4
        /// `FlowVerdict.reversed`.
        var reversed: Bool {
            get { flags & Self.reversedFlag != 0 }
            set { flags = newValue ? flags | Self.reversedFlag : flags & ~Self.reversedFlag }
        }
        /// The flow's application protocol is not allowed by its conduit.
        var protocolDenied: Bool {
            get { flags & Self.protocolDeniedFlag != 0 }
            set { flags = newValue ? flags | Self.protocolDeniedFlag : flags & ~Self.protocolDeniedFlag }
        }
        /// `conduitMask != 0`, from the first 16 bytes.
        var hasConduitMasks: Bool { flags & Self.conduitMasksFlag != 0 }

        init() {}
        init(serial: UInt64, slot: Int32, state s: FlowState) {
            self.serial = serial; self.slot = slot
            lastUnit = s.lastUnit; kind = s.verdict.kind; reversed = s.verdict.reversed; protocolDenied = s.protocolDenied
            if s.verdict.kind == .conduit && s.verdict.conduitMask <= 0xFFFF && s.verdict.transportMask <= 0xFFFF {
                pairStart = s.verdict.pairStart
                conduitMask = UInt16(s.verdict.conduitMask); transportMask = UInt16(s.verdict.transportMask)
                if conduitMask != 0 { flags |= Self.conduitMasksFlag }
            }
        }
    }
    @exclusivity(unchecked) var engineSlots: [EngineSlot] = []

    /// A resolved flow state for the fields `CompiledPolicy.resolve` reads (never the initiator's port).
    struct CachedVerdict {
        var initiator: IPAddress
        var responder: IPAddress
        var port: UInt16
        var transport: UInt8
        var midstream: Bool
        var valid: Bool
        var state: FlowState

        @inline(__always) func matches(_ f: FlowContext) -> Bool {
            valid && port == f.responder.port && initiator == f.initiator.ip && responder == f.responder.ip
                && transport == f.transport.rawValue && midstream == f.midstream
        }
    }
    /// Direct-mapped cache of resolved flows: a plant's new flows repeat a few host pairs and server ports, and a
    /// resolve (two longest-prefix walks, the zone pair's conduits and their rules) cost about 1,500 instructions
    /// per new flow. Exact keys, and the policy is immutable: a hit is what resolving again would return.
    @exclusivity(unchecked) var verdictCache: [CachedVerdict] = []
    static let verdictCacheSize = 4096

    /// A resolved flow state by what `CompiledPolicy.resolve` reads of a flow when no conduit lists initiators or
    /// responders and both addresses are unicast: the hosts' zones and assets, the server port, transport, midstream.
    struct CachedZoneVerdict {
        var initiator: HostInfo
        var responder: HostInfo
        var port: UInt16
        var transport: UInt8
        var midstream: Bool
        var valid: Bool
        var state: FlowState

        @inline(__always) func matches(_ hi: HostInfo, _ hr: HostInfo, _ f: FlowContext) -> Bool {
            valid && port == f.responder.port && initiator == hi && responder == hr && transport == f.transport.rawValue
                && midstream == f.midstream
        }
    }
    /// Whether no conduit of the policy lists initiators or responders: a flow's verdict then depends on its
    /// addresses only through their zones and assets (and whether they are unicast), so `zoneVerdicts` answers for
    /// every pair of hosts of the same zones and assets. A plant's new flows are mostly new host pairs (the verdict
    /// cache hit about a fifth of them) over a handful of zone pairs and server ports.
    @exclusivity(unchecked) var addressFreeConduits = false
    /// Direct-mapped cache of resolved flows by zones, assets, port, transport and midstream (see `addressFreeConduits`).
    @exclusivity(unchecked) var zoneVerdicts: [CachedZoneVerdict] = []
    static let zoneVerdictCacheSize = 1024

    /// A host's zone and asset (`CompiledPolicy.host`).
    struct CachedHost { var ip: IPAddress; var info: HostInfo; var valid: Bool }
    /// Direct-mapped cache of host lookups, for flows the verdict cache misses: a plant has far fewer hosts than
    /// host pairs, and a longest-prefix walk bit by bit cost about 390 instructions per endpoint.
    @exclusivity(unchecked) var hostCache: [CachedHost] = []
    static let hostCacheSize = 8192
    /// `hostCache`'s first entry while it holds `hostCacheSize` (set with it; nil before), for `prefetchFlowStart`:
    /// a hint only, never read through (reaching the array from there retained and released it per flow).
    @exclusivity(unchecked) var hostCacheBase: UnsafePointer<CachedHost>?
    @exclusivity(unchecked) var lastSlot = 0
    /// Whether alerts carry their flow's Community ID. A run that writes no alert (it only counts them) turns it off:
    /// an engine leaves each ID to be computed when an alert needs it, a SHA-1 (the first loads libcrypto).
    @exclusivity(unchecked) public var alertCommunityIDs = true
    /// Whether an alert's Community ID, when its flow leaves it pending, is left to whoever encodes the alert
    /// (`Alert.deferCommunityID`): right when only SIEM outputs, on threads of their own, read the alerts. Where this
    /// thread writes alert lines it computes the ID itself, through `lastCommunityID` (a flow's alerts come in runs:
    /// deferred, each line hashed it again, +3.6 % instructions on the hostile mix's first 100,000 packets).
    @exclusivity(unchecked) public var defersCommunityIDs = true
    /// The Community ID last computed for an alert (`communityID(of:)`), by what it is computed from: a flow's alerts
    /// come in runs, and an engine leaves the ID to be computed when an alert first needs it.
    @exclusivity(unchecked) var lastCommunityID: (initiator: Endpoint, responder: Endpoint, ipProtocol: UInt8, text: InlineText)?
    @exclusivity(unchecked) var aggregator: Aggregator
    @exclusivity(unchecked) var scans: DistinctCounter
    @exclusivity(unchecked) var unknownSeen = AddressSet()
    @exclusivity(unchecked) var stats = DetectionCounters()
    /// Each rule's ATT&CK references in the policy's release, by `RuleID.rawValue`: built once per policy, so an
    /// alert shares the array instead of allocating one.
    @exclusivity(unchecked) var techniqueReferences: [[AttackTechnique]] = []
    /// Texts of static strings by address (see `text`).
    @exclusivity(unchecked) var staticTexts: [UInt: String] = [:]
    /// One-technique lists by `Technique.rawValue` in the policy's release (see `singleTechnique`).
    @exclusivity(unchecked) var singleTechniques: [[AttackTechnique]] = []
    /// `event.action` of anomaly alerts by the FNV hash of layer and kind: a handful of distinct texts, built once.
    @exclusivity(unchecked) var anomalyActions: [UInt64: (layer: StaticString, kind: StaticString, action: String)] = [:]

    /// Creates a detector; `policy` nil means only ICS-operation, scan and anomaly alerts.
    public init(policy: CompiledPolicy?, config: DetectionConfig = DetectionConfig()) {
        self.policy = policy
        policyReference = policy.map { Unmanaged.passUnretained($0) }   // (`didSet` does not run in an initialiser)
        self.config = config
        aggregator = Aggregator(windowMicroseconds: Int64(config.aggregationWindowSeconds) * 1_000_000,
                                capacity: config.maximumAggregationEntries)
        scans = DistinctCounter(windowMicroseconds: Int64(config.scanWindowSeconds) * 1_000_000, capacity: config.maximumScanKeys)
        flows.reserveCapacity(1024)
        // Address space for the per-flow tables up front (pages are touched only as flows come): grown by doubling,
        // each growth copied the whole table into fresh pages, which was most of a 100,000-flow replay's page faults.
        slots.reserveCapacity(config.maximumTrackedFlows)
        engineSlots.reserveCapacity(config.maximumTrackedFlows)
        // In huge pages, like the engine's flow slots: an operation reads the entry of one of 100,000 flows at random
        // (a TLB miss as well as a cache miss in 4 KiB pages). Only the whole 2 MiB pages inside the arrays' storage
        // are advised, so their first up to 2 MiB stay in 4 KiB pages; the engine-slot entries in one block huge from
        // the first entry measured the same on the 5M plant (+1.4 %, SE 1.2 %, 100 pairs), so the arrays stay.
        Self.adviseHugePages(&slots)
        Self.adviseHugePages(&engineSlots)
        techniqueReferences = Self.references(policy?.attackVersion ?? .v19)
        singleTechniques = Technique.allCases.map { [$0.reference(policy?.attackVersion ?? .v19)] }
        resetVerdictCache()
    }

    /// Asks for transparent huge pages over `array`'s reserved storage (`LargeBlock.adviseHugePages`); it stays
    /// put while the array stays within its capacity.
    static func adviseHugePages<T>(_ array: inout [T]) {
        let bytes = array.capacity * MemoryLayout<T>.stride
        array.withUnsafeMutableBufferPointer { b in
            guard let base = b.baseAddress else { return }
            LargeBlock.adviseHugePages(UnsafeMutableRawPointer(base), bytes: bytes)
        }
    }

    func resetVerdictCache() {
        verdictCache.removeAll(keepingCapacity: true); hostCache.removeAll(keepingCapacity: true); hostCacheBase = nil
        zoneVerdicts.removeAll(keepingCapacity: true); addressFreeConduits = false
        guard let policy else { return }
        let empty = CachedVerdict(initiator: IPAddress(v4: 0), responder: IPAddress(v4: 0), port: 0, transport: 0, midstream: false,
                                  valid: false, state: FlowState(verdict: .noPolicy))
        verdictCache = Array(repeating: empty, count: Self.verdictCacheSize)
        addressFreeConduits = policy.conduits.allSatisfy { $0.initiators.isEmpty && $0.responders.isEmpty }
        zoneVerdicts = Array(repeating: CachedZoneVerdict(initiator: .unknown, responder: .unknown, port: 0, transport: 0, midstream: false,
                                                          valid: false, state: empty.state), count: Self.zoneVerdictCacheSize)
        hostCache = Array(repeating: CachedHost(ip: IPAddress(v4: 0), info: .unknown, valid: false), count: Self.hostCacheSize)
        hostCacheBase = hostCache.withUnsafeBufferPointer { UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: CachedHost.self) }
    }

    /// `ip`'s entry in `hostCache`.
    @inline(__always) static func hostCacheIndex(_ ip: IPAddress) -> Int {
        let x = (ip.low &* 0x9E37_79B9_7F4A_7C15 ^ ip.high) &* 0xBF58_476D_1CE4_E5B9
        return Int(truncatingIfNeeded: x >> 40) & (Self.hostCacheSize - 1)
    }

    /// `policy.host(ip)` through `hostCache`.
    @inline(__always) func host(_ ip: IPAddress, _ policy: CompiledPolicy) -> HostInfo {
        let i = Self.hostCacheIndex(ip)
        if hostCache[i].valid && hostCache[i].ip == ip { return hostCache[i].info }
        let info = policy.host(ip)
        hostCache[i] = CachedHost(ip: ip, info: info, valid: true)
        return info
    }

    static func references(_ version: AttackVersion) -> [[AttackTechnique]] {
        RuleID.allCases.map { id in id.rule.techniques.map { $0.reference(version) } }
    }

    /// Swaps the policy (a reload). Cached flow verdicts are recomputed lazily; open aggregation windows stay.
    public func replacePolicy(_ p: CompiledPolicy?) {
        policy = p
        techniqueReferences = Self.references(attackVersion)
        singleTechniques = Technique.allCases.map { [$0.reference(attackVersion)] }
        resetVerdictCache()
        flows.removeAll(keepingCapacity: true); slots.removeAll(keepingCapacity: true); freeSlots.removeAll(keepingCapacity: true)
        lastKey = nil
        for i in engineSlots.indices { engineSlots[i].serial = 0; engineSlots[i].ownsSlot = false }
        ownedStates = 0
        unknownSeen.removeAll()
    }

    /// Counters so far.
    public var counters: DetectionCounters {
        var c = stats
        c.aggregated = aggregator.folded
        c.summaries = aggregator.summaries
        c.aggregationOverflows = aggregator.overflows
        c.scanTableResets = scans.resets
        return c
    }

    /// The policy's verdict on a flow (what the detector caches; an engine may keep it itself).
    public func resolveFlow(_ flow: FlowContext) -> FlowVerdict { state(for: flow).verdict }

    // MARK: - Engine entry points

    /// Starts loading what `flowStarted` of a flow between hosts `a` and `b` (either order) reads first: both
    /// hosts' cache entries (`zoneState`). With 100,000 flows each was a miss; an engine calls this before work of
    /// its own (the flow's Community ID) that they can hide behind. A hint only.
    public func prefetchFlowStart(_ a: IPAddress, _ b: IPAddress) {
        guard let c = hostCacheBase else { return }
        zw_prefetch(c + Self.hostCacheIndex(a)); zw_prefetch(c + Self.hostCacheIndex(b))
    }

    /// First packet of a flow: zone boundary, unknown hosts, ICS host scans.
    public func flowStarted(_ flow: FlowContext, frame: UInt64, time: PacketTime, alerts: inout [Alert]) {
        aggregator.sweep(time, into: &alerts)
        let st = makeState(flow)
        // An engine's flow is found by its slot and serial from now on: no key hashed or stored.
        if !storeForEngine(flow, st) { _ = store(FlowKey(flow), st) }
        let v = st.verdict
        if v.kind == .intraAllow { return }

        if let reference = policyReference {
            reference._withUnsafeGuaranteedRef { policy in
                if policy.unknownHosts == .alert {
                    unknownHost(flow.initiator, zone: st.initiatorZone, peer: flow.responder, peerZone: st.responderZone,
                                flow: flow, frame: frame, time: time, alerts: &alerts)
                    unknownHost(flow.responder, zone: st.responderZone, peer: flow.initiator, peerZone: st.initiatorZone,
                                flow: flow, frame: frame, time: time, alerts: &alerts)
                }
                let rule: RuleID?
                switch v.kind {
                case .noConduit, .intraDenied: rule = .zoneNoConduit
                case .wrongDirection: rule = .zoneWrongDirection
                case .initiatorNotListed: rule = .zoneInitiatorNotListed
                case .responderNotListed: rule = .zoneResponderNotListed
                case .unzoned: rule = policy.defaultAction == .deny ? .zoneUnzonedHost : nil
                default: rule = nil
                }
                if let rule {
                    let k = AggregationKey(rule: rule.rawValue, source: flow.initiator.ip, destination: flow.responder.ip,
                                           protocolCode: flow.transport.rawValue)
                    raise(rule, key: k, time: time, frame: frame, alerts: &alerts) { a in
                        zoneAlert(&a, rule, flow: flow, state: st, policy: policy, frame: frame, time: time)
                    }
                }
            }
        }

        // A flow a conduit authorises is not scanning (a SCADA master starting up connects to all its RTUs).
        if v.kind != .conduit && config.icsPorts.contains(flow.responder.port) && !CompiledPolicy.isNonUnicast(flow.responder.ip) {
            let k = AggregationKey(rule: RuleID.icsHostScan.rawValue, source: flow.initiator.ip, destination: IPAddress(v4: 0))
            if scans.add(k, value: hostValue(flow.responder.ip), distinct: true, threshold: config.hostScanThreshold, time: time) {
                raise(.icsHostScan, key: k, time: time, frame: frame, alerts: &alerts) { a in
                    baseAlert(&a, .icsHostScan, time: time, frame: frame, source: flow.initiator, destination: flow.responder,
                                      flow: flow, protocolName: flow.transport.name.description,
                                      sourceZone: st.initiatorZone, destinationZone: st.responderZone, securityLevel: Int(v.securityLevel))
                    message(into: &a.messageText) { m in
                        m.add(flow.initiator.ip); m.add(" opened ICS-port flows to "); m.add(Int64(config.hostScanThreshold))
                        m.add(" or more hosts within "); m.add(Int64(config.scanWindowSeconds)); m.add(" s (latest ")
                        m.add(flow.responder.ip); m.add(" port "); m.add(Int64(flow.responder.port)); m.add(")")
                    }
                }
            }
        }
    }

    /// Starts loading element `i` of `array`. Taken inout: reading a stored array of the detector to get at its
    /// storage retained and released it around the prefetch.
    @inline(__always)
    static func prefetchElement<T>(_ array: inout [T], _ i: Int) {
        array.withUnsafeBufferPointer { b in
            let p = UnsafeRawPointer(b.baseAddress! + i)
            zw_prefetch(p); zw_prefetch(p + MemoryLayout<T>.size - 1)
        }
    }

    /// Starts loading what the first request of a Modbus or DNP3 flow makes `checkOperation` read (its unit is new):
    /// the flow's state and the unit-scan counter's slot for the pair. With 100,000 flows both were misses, and the
    /// flow is identified a few hundred instructions before its first request is checked. A hint only.
    @inline(__always)
    func prefetchFirstRequest(_ flow: FlowContext, _ h: EngineSlot, _ app: AppProtocol) {
        let s = Int(h.slot)
        if s >= 0 && s < slots.count { Self.prefetchElement(&slots, s) }
        // The key `checkOperation` counts a request from the initiator under (the sender as the verdict sees it).
        let sender = h.reversed ? flow.responder : flow.initiator, peer = h.reversed ? flow.initiator : flow.responder
        scans.prefetch(AggregationKey(rule: RuleID.icsUnitScan.rawValue, source: sender.ip, destination: peer.ip,
                                      protocolCode: app.rawValue))
    }

    /// The flow's application protocol is known (nil: not an ICS protocol): the conduit's protocol/port allow-list.
    public func flowIdentified(_ flow: FlowContext, appProtocol: AppProtocol?, frame: UInt64, time: PacketTime, alerts: inout [Alert]) {
        aggregator.sweep(time, into: &alerts)
        guard let reference = policyReference else { return }
        reference._withUnsafeGuaranteedRef {
            flowIdentified(flow, appProtocol: appProtocol, frame: frame, time: time, policy: $0, alerts: &alerts)
        }
    }

    /// `flowIdentified` under `policy`.
    @inline(__always)
    private func flowIdentified(_ flow: FlowContext, appProtocol: AppProtocol?, frame: UInt64, time: PacketTime,
                                policy: CompiledPolicy, alerts: inout [Alert]) {
        if let e = engineSlotIndex(for: flow) {
            // The engine-slot entry says what `allowsProtocol` reads, so an allowed flow's state is not read.
            let h = engineSlots[e]
            if h.lastUnit == Int32.min, h.kind != .intraAllow, let app = appProtocol, app == .modbus || app == .dnp3 {
                prefetchFirstRequest(flow, h, app)
            }
            if h.conduitMask != 0 {
                let (pairStart, conduitMask, transportMask) = (h.pairStart, UInt64(h.conduitMask), UInt64(h.transportMask))
                if let app = appProtocol {
                    engineSlots[e].quietAccess = policy.quietAccessMask(app, pairStart: pairStart, conduitMask: conduitMask,
                                                                        transportMask: transportMask)
                    engineSlots[e].quietProtocol = app.rawValue &+ 1
                }
                if policy.allowsProtocol(appProtocol, pairStart: pairStart, conduitMask: conduitMask, transportMask: transportMask) { return }
            } else if h.kind != .conduit {
                return   // `allowsProtocol` allows every flow that is not `.conduit`
            }
        }
        let slot = slotIndex(for: flow)
        let v = slots[slot].verdict
        guard v.kind == .conduit, !policy.allowsProtocol(appProtocol, verdict: v) else { return }
        slots[slot].protocolDenied = true
        if let e = engineSlotIndex(for: flow) { engineSlots[e].protocolDenied = true }
        let src = v.reversed ? flow.responder : flow.initiator, dst = v.reversed ? flow.initiator : flow.responder
        let k = AggregationKey(rule: RuleID.conduitProtocol.rawValue, source: src.ip, destination: dst.ip,
                               protocolCode: appProtocol.map { $0.rawValue } ?? 0x80 | flow.transport.rawValue,
                               extra: appProtocol == nil ? Int64(dst.port) : 0)
        raise(.conduitProtocol, key: k, time: time, frame: frame, alerts: &alerts) { a in
            let name = appProtocol.map { $0.name.description } ?? flow.transport.name.description
            baseAlert(&a, .conduitProtocol, time: time, frame: frame, source: src, destination: dst, flow: flow,
                              protocolName: name, sourceZone: v.initiator.zone, destinationZone: v.responder.zone,
                              securityLevel: Int(v.securityLevel))
            let conduit = policy.conduits[Int(v.conduit)].name
            a.conduit = conduit
            message(into: &a.messageText) { m in
                m.add(name)
                if appProtocol == nil { m.add(" to port "); m.add(Int64(dst.port)) }
                m.add(" from "); m.add(src.ip); m.addAsset(v.initiator, policy); m.add(" to "); m.add(dst.ip); m.addAsset(v.responder, policy)
                m.add(" is not allowed by conduit '"); m.add(conduit); m.add("' (allows "); m.add(allowedProtocols(policy, v)); m.add(")")
            }
        }
    }

    /// One application operation: conduit content, ICS-operation rules, unit-id scans and identification sweeps.
    public func operation(_ op: Operation, flow: FlowContext, alerts: inout [Alert]) {
        let quiet = withUnsafePointer(to: op) { isAllowedQuietly($0, flowSerial: flow.flowSerial, flowSlot: flow.flowSlot) }
        if quiet { return }
        checkedOperation(op, flow: flow, alerts: &alerts)
    }

    /// `operation` for each of the `count` operations at `ops` in turn, all of the flow at `flow`, stopping after the
    /// first one that leaves `alerts` non-empty; returns how many it handled (the caller hands on the alerts and goes on
    /// from there). An engine's drain passes the sink's operations and context in place: calling `operation` once per
    /// operation copied both (a 120-byte context) through two calls, more than the check itself costs.
    public func operations(_ ops: UnsafePointer<Operation>, count: Int, flow: UnsafePointer<FlowContext>, alerts: inout [Alert]) -> Int {
        operations(ops, count: count, flow: flow, flowSerial: flow.pointee.flowSerial, flowSlot: flow.pointee.flowSlot, alerts: &alerts)
    }

    /// `operations(_:count:flow:alerts:)` for a caller that has the context's `flowSerial` and `flowSlot` at hand (an
    /// engine, from the flow's own state): the operations passed over quietly then read nothing of the context, whose
    /// cache line was otherwise a miss of its own on nearly every request and response of a plant with many flows.
    /// `flowSerial` and `flowSlot` must be the context's.
    public func operations(_ ops: UnsafePointer<Operation>, count: Int, flow: UnsafePointer<FlowContext>, flowSerial: UInt64,
                           flowSlot: Int32, alerts: inout [Alert]) -> Int {
        guard count > 0 else { return 0 }
        // The first operation (usually the only one) on its own, so that a single operation pays for no loop.
        var quiet = isAllowedQuietly(ops, flowSerial: flowSerial, flowSlot: flowSlot)
        if !quiet { checkedOperation(ops.pointee, flow: flow.pointee, alerts: &alerts) }
        var i = 1
        while i < count && alerts.isEmpty {
            let op = ops + i
            // An operation whose every field `isAllowedQuietly` reads equals its quiet predecessor's is quiet too: the
            // quiet check changes nothing, so what it read is as it was (the items of one S7 request, ~2.5 a request).
            if !(quiet && Self.sameQuietInputs(op, op - 1)) {
                quiet = isAllowedQuietly(op, flowSerial: flowSerial, flowSlot: flowSlot)
                if !quiet { checkedOperation(op.pointee, flow: flow.pointee, alerts: &alerts) }
            }
            i += 1
        }
        return i
    }

    /// How many of the operations at `ops`, from the first, `operations(_:count:flow:flowSerial:flowSlot:alerts:)` would
    /// pass over quietly (reading no flow context, changing nothing, raising nothing): it may then be called for the
    /// rest alone, with a context built only now. The same checks, in the same order, as there.
    @inline(__always)
    public func quietPrefix(_ ops: UnsafePointer<Operation>, count: Int, flowSerial: UInt64, flowSlot: Int32) -> Int {
        guard count > 0, isAllowedQuietly(ops, flowSerial: flowSerial, flowSlot: flowSlot) else { return 0 }
        var i = 1
        while i < count {
            let op = ops + i
            if !Self.sameQuietInputs(op, op - 1) && !isAllowedQuietly(op, flowSerial: flowSerial, flowSlot: flowSlot) { break }
            i += 1
        }
        return i
    }

    /// Whether `a` and `b` agree on every field `isAllowedQuietly` reads (and `QuietTraits` takes).
    @inlinable @inline(__always)
    public static func sameQuietInputs(_ a: UnsafePointer<Operation>, _ b: UnsafePointer<Operation>) -> Bool {
        a.pointee.appProtocol == b.pointee.appProtocol && a.pointee.access == b.pointee.access
            && a.pointee.functionCode == b.pointee.functionCode && a.pointee.unitID == b.pointee.unitID
            && a.pointee.sender == b.pointee.sender && a.pointee.broadcast == b.pointee.broadcast
            && a.pointee.unitRepeated == b.pointee.unitRepeated
            && a.pointee.time.seconds == b.pointee.time.seconds && a.pointee.time.microseconds == b.pointee.time.microseconds
    }

    /// Whether `checkedOperation` would do nothing at all for `op`: no aggregation window is due, and there is no
    /// policy and no rule to raise, or the operation
    /// is a response or a request of the quiet kind on an engine flow whose conduit allows its protocol (its access
    /// class in the flow's quiet mask, the unit as before or the sender the responder, no identification, no
    /// ICS-operation rule). Reads the flow's engine-slot entry and nothing else, and changes nothing: nearly every
    /// operation of a plant ends here, in a function small enough that it sets up no stack frame worth the name
    /// (`checkedOperation`'s, sized for its alert paths, cost more than the checks). The operation is read in place,
    /// field by field (taken as a value, the caller copied it first); of the flow, only its context's serial and slot.
    @inline(__always)
    func isAllowedQuietly(_ op: UnsafePointer<Operation>, flowSerial serial: UInt64, flowSlot: Int32) -> Bool {
        guard op.pointee.time.totalMicroseconds < aggregator.nextSweep else { return false }
        let access = op.pointee.access, appProtocol = op.pointee.appProtocol
        // Without a policy: what `checkedOperation` would pass over, decided from the operation alone.
        if policy == nil { return Self.passesQuietlyWithoutPolicy(op) }
        let e = Int(flowSlot)
        guard serial != 0, e >= 0, e < engineSlots.count, engineSlots[e].serial == serial else { return false }
        let h = engineSlots[e]
        guard h.hasConduitMasks && !h.protocolDenied else { return false }
        if access == .response { return true }
        if (op.pointee.sender == .initiator) != h.reversed {
            let unit = op.pointee.unitID
            let unitChanged = unit >= 0 && unit != h.lastUnit && (appProtocol == .modbus || appProtocol == .dnp3)
            if unitChanged || OperationRules.isIdentification(access: access) { return false }
        }
        let accessBit: UInt16 = 1 << UInt16(access.rawValue)
        return h.quietProtocol == appProtocol.rawValue &+ 1 && h.quietAccess & accessBit != 0
            && !OperationRules.mayRaise(appProtocol: appProtocol, access: access, functionCode: op.pointee.functionCode,
                                        broadcast: op.pointee.broadcast)
    }

    /// `isAllowedQuietly` without a policy, clock aside: decided by the operation's own fields, so a `--workers` engine
    /// decides it too. No ICS-operation rule can match, and then what `isQuiet` passes under the no-policy verdict
    /// (never reversed): a response, a request from the responder's side, or a request that is no identification and
    /// whose unit cannot be a change for the unit-scan counter (the dissector saw it repeated, or it has no unit the
    /// counter tracks: S7comm, or none). Without the last two, every S7comm and DNP3 operation of a run without a
    /// policy went to `checkedOperation` (~10 % of such a replay's instructions on the mixed plant).
    @inlinable @inline(__always)
    public static func passesQuietlyWithoutPolicy(_ op: UnsafePointer<Operation>) -> Bool {
        let access = op.pointee.access, appProtocol = op.pointee.appProtocol
        guard !OperationRules.mayRaise(appProtocol: appProtocol, access: access, functionCode: op.pointee.functionCode,
                                       broadcast: op.pointee.broadcast) else { return false }
        if access == .response || op.pointee.sender == .responder { return true }
        let unitSteady = op.pointee.unitRepeated || op.pointee.unitID < 0 || (appProtocol != .modbus && appProtocol != .dnp3)
        return unitSteady && !OperationRules.isIdentification(access: access)
    }

    /// `operation` from the start, for whatever `isAllowedQuietly` leaves.
    @inline(never)
    func checkedOperation(_ op: Operation, flow: FlowContext, alerts: inout [Alert]) {
        aggregator.sweep(op.time, into: &alerts)
        // Without a policy every flow's verdict is the same, and a unit the dissector saw repeated is not a unit
        // change: the common case needs no per-flow state at all (`isQuiet` with the no-policy verdict).
        if policy == nil && op.unitRepeated && OperationRules.rule(for: op) == nil && !OperationRules.isIdentification(op) { return }
        // This runs for every request. The common case is decided from a few fields of the flow's state: the
        // copies in the engine-slot entry when the caller is an engine (one cache line), else the state itself.
        let slot: Int
        if let e = engineSlotIndex(for: flow) {
            let h = engineSlots[e]
            // A conduit flow (its masks are in the entry) whose protocol is allowed: `isQuiet` would say no at once.
            if h.conduitMask != 0 && !h.protocolDenied {
                // What `checkOperation` does for an operation the conduit allows (not notified), decided from the
                // entry alone: count an ICS-operation rule as suppressed, and a request's new unit (the unit-scan
                // counter), nothing else. A response is not checked at all. A denial or notify, or an identification
                // request from the initiator (the identification counters), goes on to `checkOperation`, with nothing
                // changed here. (Written out here: as a function it stayed out of line, a call and copies per operation.)
                if op.access == .response { return }
                let fromInitiator = (op.sender == .initiator) != h.reversed
                let unitChanged = op.unitID >= 0 && op.unitID != h.lastUnit && (op.appProtocol == .modbus || op.appProtocol == .dnp3)
                if !fromInitiator || !OperationRules.isIdentification(op) {
                    let accessBit: UInt16 = 1 << UInt16(op.access.rawValue)
                    if h.quietProtocol == op.appProtocol.rawValue &+ 1 && h.quietAccess & accessBit != 0 || isAllowedByEvaluation(op, h) {
                        if OperationRules.mayRaise(op) && OperationRules.rule(for: op) != nil { stats.suppressedByConduit &+= 1 }
                        // An allowed request whose only news is its unit: every Modbus or DNP3 flow's first request (no
                        // unit before it), and each request of a master polling several units behind a gateway on one
                        // connection. The unit-scan counter is all `checkOperation` would do more (it evaluated the
                        // request again and read the flow's state first).
                        if fromInitiator && unitChanged { countUnitChange(op, flow: flow, slot: Int(h.slot), engineEntry: e, alerts: &alerts) }
                        return
                    }
                }
            } else if isQuiet(op, kind: h.kind, reversed: h.reversed, protocolDenied: h.protocolDenied, lastUnit: h.lastUnit) {
                return
            }
            slot = Int(h.slot)
        } else {
            slot = slotIndex(for: flow)
            let s = slots[slot]
            if isQuiet(op, kind: s.verdict.kind, reversed: s.verdict.reversed, protocolDenied: s.protocolDenied, lastUnit: s.lastUnit) {
            }
        }
        checkOperation(op, flow: flow, slot: slot, alerts: &alerts)
    }

    /// Whether `checkOperation` would do nothing for `op` on a flow with these state fields: nothing to check
    /// against a conduit, no ICS-operation rule, and nothing for the scan counters (the same unit id as the
    /// flow's last request, not an identification request).
    // `@inline(always)`: as a hint it stayed a call from `checkedOperation` (every S7comm operation without a policy).
    @inline(always)
    func isQuiet(_ op: Operation, kind: FlowVerdict.Kind, reversed: Bool, protocolDenied: Bool, lastUnit: Int32) -> Bool {
        if kind == .intraAllow { return true }
        if policy != nil && kind == .conduit && !protocolDenied { return false }
        if OperationRules.rule(for: op) != nil { return false }
        if (op.sender == .initiator) == reversed || op.access == .response { return true }
        let unitChanged = op.unitID >= 0 && op.unitID != lastUnit && (op.appProtocol == .modbus || op.appProtocol == .dnp3)
        return !unitChanged && !OperationRules.isIdentification(op)
    }

    /// Whether `CompiledPolicy.evaluate` allows `op` (not `.allowedNotify`) on the conduit flow whose masks `h` holds:
    /// for operations the flow's quiet mask does not decide. Kept out of line: `operation`'s common path stays small.
    @inline(never)
    func isAllowedByEvaluation(_ op: Operation, _ h: EngineSlot) -> Bool {
        // Only the verdict's kind is read; the conduit it would name is for denials.
        guard let policy else { return false }
        return policy.evaluate(op, conduit: -1, pairStart: h.pairStart, conduitMask: UInt64(h.conduitMask),
                               transportMask: UInt64(h.transportMask)).kind == .allowed
    }

    /// Everything `operation` checks, for the flow's state in `slot`.
    func checkOperation(_ op: Operation, flow: FlowContext, slot: Int, alerts: inout [Alert]) {
        let st = slots[slot]
        let v = st.verdict
        if v.kind == .intraAllow { return }
        let fromInitiator = (op.sender == .initiator) != v.reversed
        let sender = flow.endpoint(op.sender), peer = flow.endpoint(op.sender.opposite)
        let senderZone = op.sender == .initiator ? st.initiatorZone : st.responderZone
        let peerZone = op.sender == .initiator ? st.responderZone : st.initiatorZone

        var permitted = false, notify = false, conduitIndex: Int32 = v.conduit
        if let policy, v.kind == .conduit, !st.protocolDenied {
            let ov = policy.evaluate(op, verdict: v)
            conduitIndex = ov.conduit
            let rule: RuleID?
            switch ov.kind {
            case .allowed: permitted = true; rule = nil
            case .allowedNotify: permitted = true; notify = true; rule = nil
            case .notChecked: rule = nil
            case .protocolDenied: rule = .conduitProtocol
            case .functionDenied: rule = .conduitFunction
            case .deviceDenied: rule = .conduitDevice
            case .dataDenied: rule = .conduitData
            }
            if let rule {
                let k = AggregationKey(rule: rule.rawValue, source: sender.ip, destination: peer.ip, protocolCode: op.appProtocol.rawValue,
                                       function: rule == .conduitProtocol ? 0 : op.functionCode,
                                       subfunction: rule == .conduitProtocol ? -1 : op.subfunction,
                                       unit: rule == .conduitProtocol ? -1 : op.unitID,
                                       extra: rule == .conduitProtocol ? 0 : Int64(op.access.rawValue))
                raise(rule, key: k, time: op.time, frame: op.frame, alerts: &alerts) { a in
                    conduitAlert(&a, rule, op: op, verdict: ov, flow: flow, sender: sender, peer: peer, senderZone: senderZone,
                                 peerZone: peerZone, securityLevel: Int(v.securityLevel), policy: policy)
                }
            }
        }

        if let rule = OperationRules.rule(for: op) {
            if permitted && !notify {
                stats.suppressedByConduit &+= 1
            } else {
                let ei = v.reversed ? flow.responder : flow.initiator, er = v.reversed ? flow.initiator : flow.responder
                let k = AggregationKey(rule: rule.rawValue, source: ei.ip, destination: er.ip, protocolCode: op.appProtocol.rawValue,
                                       unit: op.unitID)
                raise(rule, key: k, time: op.time, frame: op.frame, alerts: &alerts) { a in
                    operationAlert(&a, rule, op: op, flow: flow, sender: sender, peer: peer, senderZone: senderZone,
                                           peerZone: peerZone, securityLevel: Int(v.securityLevel))
                    if let policy, conduitIndex >= 0 { a.conduit = policy.conduits[Int(conduitIndex)].name }
                    let conduit = a.conduit
                    message(into: &a.messageText) { m in
                        m.add(rule.rule.name); m.add(": "); describe(op, into: &m)
                        m.add(" from "); m.add(sender.ip); m.add(" to "); m.add(peer.ip)
                        if notify, let c = conduit { m.add(" (permitted by conduit '"); m.add(c); m.add("', reported as it is in its notify list)") }
                    }
                }
            }
        } else if notify {
            let k = AggregationKey(rule: RuleID.conduitNotify.rawValue, source: sender.ip, destination: peer.ip,
                                   protocolCode: op.appProtocol.rawValue, function: op.functionCode, subfunction: op.subfunction,
                                   unit: op.unitID, extra: Int64(op.access.rawValue))
            raise(.conduitNotify, key: k, time: op.time, frame: op.frame, alerts: &alerts) { a in
                operationAlert(&a, .conduitNotify, op: op, flow: flow, sender: sender, peer: peer, senderZone: senderZone,
                                       peerZone: peerZone, securityLevel: Int(v.securityLevel))
                a.techniques = singleTechnique(Technique.forDisallowed(op.access))
                if let policy, conduitIndex >= 0 { a.conduit = policy.conduits[Int(conduitIndex)].name }
                let conduit = a.conduit ?? ""
                message(into: &a.messageText) { m in
                    describe(op, into: &m); m.add(" from "); m.add(sender.ip); m.add(" to "); m.add(peer.ip)
                    m.add(" permitted by conduit '"); m.add(conduit); m.add("' and reported (notify: "); m.add(op.access.name); m.add(")")
                }
            }
        }

        guard fromInitiator, op.access != .response else { return }
        if op.unitID >= 0 && op.unitID != st.lastUnit && (op.appProtocol == .modbus || op.appProtocol == .dnp3) {
            countUnitChange(op, flow: flow, slot: slot, engineEntry: engineSlotIndex(for: flow), alerts: &alerts)
        }
        if OperationRules.isIdentification(op) {
            let devices = AggregationKey(rule: RuleID.icsIdentificationSweep.rawValue, source: sender.ip, destination: IPAddress(v4: 0), extra: 1)
            let requests = AggregationKey(rule: RuleID.icsIdentificationSweep.rawValue, source: sender.ip, destination: peer.ip, extra: 2)
            let device = hostValue(peer.ip, unit: Int64(op.unitID))
            let manyDevices = scans.add(devices, value: device, distinct: true, threshold: config.identificationDeviceThreshold, time: op.time)
            let manyRequests = scans.add(requests, value: 0, distinct: false, threshold: config.identificationRequestThreshold, time: op.time)
            if manyDevices || manyRequests {
                let k = manyDevices ? devices : requests
                raise(.icsIdentificationSweep, key: k, time: op.time, frame: op.frame, alerts: &alerts) { a in
                    operationAlert(&a, .icsIdentificationSweep, op: op, flow: flow, sender: sender, peer: peer, senderZone: senderZone,
                                           peerZone: peerZone, securityLevel: Int(v.securityLevel))
                    message(into: &a.messageText) { m in
                        m.add(sender.ip)
                        if manyDevices {
                            m.add(" sent identification requests to "); m.add(Int64(config.identificationDeviceThreshold))
                            m.add(" or more devices within "); m.add(Int64(config.scanWindowSeconds)); m.add(" s (latest ")
                            describe(op, into: &m); m.add(" to "); m.add(peer.ip); m.add(")")
                        } else {
                            m.add(" sent "); m.add(Int64(config.identificationRequestThreshold)); m.add(" or more identification requests to ")
                            m.add(peer.ip); m.add(" within "); m.add(Int64(config.scanWindowSeconds)); m.add(" s (latest ")
                            describe(op, into: &m); m.add(")")
                        }
                    }
                }
            }
        }
    }

    /// A request from the initiator's side addressing another unit than the flow's last (Modbus unit id, DNP3
    /// destination): the flow's state in `slot` and, for an engine's flow, its entry `engineEntry` take the new unit
    /// (the two are kept equal), and the unit-scan counter the value; an alert when it reaches the threshold.
    func countUnitChange(_ op: Operation, flow: FlowContext, slot: Int, engineEntry e: Int?, alerts: inout [Alert]) {
        slots[slot].lastUnit = op.unitID
        if let e { engineSlots[e].lastUnit = op.unitID }
        let sender = flow.endpoint(op.sender), peer = flow.endpoint(op.sender.opposite)
        let k = AggregationKey(rule: RuleID.icsUnitScan.rawValue, source: sender.ip, destination: peer.ip,
                               protocolCode: op.appProtocol.rawValue)
        guard scans.add(k, value: Int64(op.unitID), distinct: true, threshold: config.unitScanThreshold, time: op.time) else { return }
        let st = slots[slot]
        let senderZone = op.sender == .initiator ? st.initiatorZone : st.responderZone
        let peerZone = op.sender == .initiator ? st.responderZone : st.initiatorZone
        raise(.icsUnitScan, key: k, time: op.time, frame: op.frame, alerts: &alerts) { a in
            operationAlert(&a, .icsUnitScan, op: op, flow: flow, sender: sender, peer: peer, senderZone: senderZone,
                           peerZone: peerZone, securityLevel: Int(st.verdict.securityLevel))
            message(into: &a.messageText) { m in
                m.add(sender.ip); m.add(" addressed "); m.add(Int64(config.unitScanThreshold)); m.add(" or more ")
                m.add(op.appProtocol == .modbus ? "unit ids" : "DNP3 addresses"); m.add(" on "); m.add(peer.ip)
                m.add(" within "); m.add(Int64(config.scanWindowSeconds)); m.add(" s ("); m.add(op.appProtocol.name); m.add(")")
            }
        }
    }

    /// A protocol anomaly from a dissector or the flow layer: an alert, folded with its repeats.
    public func anomaly(_ a: Anomaly, flow: FlowContext?, alerts: inout [Alert]) {
        aggregator.sweep(a.time, into: &alerts)
        let rule: RuleID = Self.isApplicationLayer(a.layer) ? .anomalyProtocol : .anomalyTransport
        let src = flow?.endpoint(a.sender), dst = flow?.endpoint(a.sender.opposite)
        let zero = IPAddress(v4: 0)
        let k = AggregationKey(rule: rule.rawValue, source: src?.ip ?? zero, destination: dst?.ip ?? zero,
                               extra: Int64(bitPattern: Self.fnv(a.layer, a.kind)))
        raise(rule, key: k, time: a.time, frame: a.frame, alerts: &alerts) { alert in
            var sz: Int32 = -1, dz: Int32 = -1, sl = -1
            if let flow, policy != nil {
                let st = state(for: flow)
                sz = a.sender == .initiator ? st.initiatorZone : st.responderZone
                dz = a.sender == .initiator ? st.responderZone : st.initiatorZone
                sl = Int(st.verdict.securityLevel)
            }
            baseAlert(&alert, rule, time: a.time, frame: a.frame, source: src, destination: dst, flow: flow,
                                  protocolName: a.layer.description, sourceZone: sz, destinationZone: dz, securityLevel: sl)
            alert.action = anomalyAction(a.layer, a.kind, hash: UInt64(bitPattern: k.extra))
            message(into: &alert.messageText) { m in
                m.add(a.layer); m.add(" anomaly "); m.add(a.kind); m.add(" at offset "); m.add(Int64(a.offset))
                if let value = a.value { m.add(" (value "); m.add(value); m.add(")") }
            }
        }
    }

    /// The flow ended: forget its cached verdict (optional; the cache is bounded anyway).
    public func flowEnded(_ flow: FlowContext) {
        let e = Int(flow.flowSlot)
        if let o = engineSlotIndex(for: flow), engineSlots[o].ownsSlot {
            freeSlots.append(engineSlots[o].slot)
            engineSlots[o].serial = 0; engineSlots[o].ownsSlot = false
            ownedStates &-= 1
        }
        // Only this flow's entry: a stale end must not forget the flow now in the slot.
        if e >= 0, e < engineSlots.count, engineSlots[e].serial == flow.flowSerial { engineSlots[e].serial = 0 }
        // Engine flows whose state was dropped by a cache reset have nothing to remove.
        if flows.isEmpty { return }
        let key = FlowKey(flow)
        if let i = flows.removeValue(forKey: key) { freeSlots.append(i) }
        if lastKey == key { lastKey = nil }
    }

    /// Closes aggregation windows up to `time` (a live capture calls this when no packet arrives for a while).
    public func tick(time: PacketTime, alerts: inout [Alert]) { aggregator.sweep(time, into: &alerts) }

    /// End of input: emits every pending summary.
    public func finish(alerts: inout [Alert]) { aggregator.flushAll(into: &alerts) }

    // MARK: - Flow state

    func makeState(_ flow: FlowContext) -> FlowState {
        guard let reference = policyReference else { return FlowState(verdict: .noPolicy) }
        return reference._withUnsafeGuaranteedRef { policy in makeState(flow, policy) }
    }

    private func makeState(_ flow: FlowContext, _ policy: CompiledPolicy) -> FlowState {
        if addressFreeConduits && !CompiledPolicy.isNonUnicast(flow.initiator.ip) && !CompiledPolicy.isNonUnicast(flow.responder.ip) {
            return zoneState(flow, policy)
        }
        var x = flow.initiator.ip.low &* 0x9E37_79B9_7F4A_7C15 ^ flow.initiator.ip.high ^ flow.responder.ip.high << 7
        x = (x ^ (x >> 29) ^ flow.responder.ip.low) &* 0xBF58_476D_1CE4_E5B9
        x = (x ^ UInt64(flow.responder.port) << 8 ^ UInt64(flow.transport.rawValue)) &* 0x94D0_49BB_1331_11EB
        let i = Int(truncatingIfNeeded: x >> 40) & (Self.verdictCacheSize - 1)
        if verdictCache[i].matches(flow) { return verdictCache[i].state }
        let v = policy.resolve(initiator: flow.initiator, responder: flow.responder, transport: flow.transport, midstream: flow.midstream,
                               initiatorHost: host(flow.initiator.ip, policy), responderHost: host(flow.responder.ip, policy))
        let st = FlowState(verdict: v)
        verdictCache[i] = CachedVerdict(initiator: flow.initiator.ip, responder: flow.responder.ip, port: flow.responder.port,
                                        transport: flow.transport.rawValue, midstream: flow.midstream, valid: true, state: st)
        return st
    }

    /// `makeState` through `zoneVerdicts`, for a flow between unicast hosts under a policy whose conduits list no
    /// hosts: the hosts' zones and assets (from the host cache) instead of the flow's addresses as the key.
    func zoneState(_ flow: FlowContext, _ policy: CompiledPolicy) -> FlowState {
        let hi = host(flow.initiator.ip, policy), hr = host(flow.responder.ip, policy)
        var x = UInt64(UInt32(bitPattern: hi.zone)) << 32 | UInt64(UInt32(bitPattern: hr.zone))
        x = (x ^ UInt64(UInt32(bitPattern: hi.asset)) << 16 ^ UInt64(UInt32(bitPattern: hr.asset)) << 40) &* 0x9E37_79B9_7F4A_7C15
        x = (x ^ UInt64(flow.responder.port) << 8 ^ UInt64(flow.transport.rawValue) ^ (flow.midstream ? 0x80 : 0)) &* 0xBF58_476D_1CE4_E5B9
        let i = Int(truncatingIfNeeded: x >> 40) & (Self.zoneVerdictCacheSize - 1)
        if zoneVerdicts[i].matches(hi, hr, flow) { return zoneVerdicts[i].state }
        let v = policy.resolve(initiator: flow.initiator, responder: flow.responder, transport: flow.transport, midstream: flow.midstream,
                               initiatorHost: hi, responderHost: hr)
        let st = FlowState(verdict: v)
        zoneVerdicts[i] = CachedZoneVerdict(initiator: hi, responder: hr, port: flow.responder.port, transport: flow.transport.rawValue,
                                            midstream: flow.midstream, valid: true, state: st)
        return st
    }

    func state(for flow: FlowContext) -> FlowState { slots[slotIndex(for: flow)] }

    /// The index of `flow`'s entry in `engineSlots` when it has one (an engine's context whose slot we mapped).
    @inline(__always) func engineSlotIndex(for flow: FlowContext) -> Int? {
        let e = Int(flow.flowSlot)
        guard flow.flowSerial != 0, e >= 0, e < engineSlots.count, engineSlots[e].serial == flow.flowSerial else { return nil }
        return e
    }

    /// Where the entry for an engine's flow slot lies (nil: beyond the table), for an engine to prefetch a few
    /// packets before that flow's operations arrive: with 100,000 flows the entry is otherwise a cache miss per
    /// operation, most of what `operation` costs. A hint only: the address is never read through, and it is stale
    /// once the table grows.
    public func entryAddress(flowSlot: Int32) -> UnsafeRawPointer? {
        let e = Int(flowSlot)
        guard e >= 0, e < engineSlots.count else { return nil }
        return engineSlots.withUnsafeBufferPointer { UnsafeRawPointer($0.baseAddress! + e) }
    }

    /// The whole engine-slot table as a prefetch hint (first entry, entries, bytes per entry): an engine computes
    /// `entryAddress` itself from it, without a call per packet. Valid until the next `flowStarted` (which may grow
    /// the table); a hint only, never read through.
    public var entryTable: (base: UnsafeRawPointer?, count: Int, stride: Int) {
        engineSlots.withUnsafeBufferPointer { (UnsafeRawPointer($0.baseAddress), $0.count, MemoryLayout<EngineSlot>.stride) }
    }

    /// The slot of `flow`'s cached state, resolving the flow when it is not cached (one-entry cache first).
    @inline(__always) func slotIndex(for flow: FlowContext) -> Int {
        let e = Int(flow.flowSlot)
        if flow.flowSerial != 0, e >= 0, e < engineSlots.count, engineSlots[e].serial == flow.flowSerial {
            return Int(engineSlots[e].slot)
        }
        let key = FlowKey(flow)
        let slot: Int
        if let lastKey, lastKey == key { slot = lastSlot }
        else if let i = flows[key] { lastKey = key; lastSlot = Int(i); slot = lastSlot }
        else { slot = store(key, makeState(flow)) }
        if flow.flowSerial != 0, e >= 0 {
            if e >= engineSlots.count { growEngineSlots(to: e) } else { releaseOwnedState(at: e) }
            engineSlots[e] = EngineSlot(serial: flow.flowSerial, slot: Int32(slot), state: slots[slot])
        }
        return slot
    }

    /// Caches `s` for `key` (replacing what was there) and returns its slot.
    func store(_ key: FlowKey, _ s: FlowState) -> Int {
        if let i = flows[key] {
            slots[Int(i)] = s
            lastKey = key; lastSlot = Int(i)
            return lastSlot
        }
        let i = allocateSlot(s)
        flows[key] = Int32(i)
        lastKey = key; lastSlot = i
        return i
    }

    /// Caches `s` for an engine's flow under its slot and serial only (true), or returns false when `flow` has none.
    /// Saves hashing the endpoints when the flow starts and ends; every later lookup goes through `engineSlots` anyway.
    func storeForEngine(_ flow: FlowContext, _ s: FlowState) -> Bool {
        let e = Int(flow.flowSlot)
        guard flow.flowSerial != 0, e >= 0 else { return false }
        if e >= engineSlots.count { growEngineSlots(to: e) } else { releaseOwnedState(at: e) }
        let i = allocateSlot(s)
        var entry = EngineSlot(serial: flow.flowSerial, slot: Int32(i), state: s)
        entry.ownsSlot = true
        ownedStates &+= 1
        engineSlots[e] = entry
        return true
    }

    /// Frees the state entry `e`'s flow owns before another flow takes the entry: that flow never ended here, and its
    /// state is unreachable from now on.
    func releaseOwnedState(at e: Int) {
        guard engineSlots[e].ownsSlot else { return }
        freeSlots.append(engineSlots[e].slot)
        engineSlots[e].ownsSlot = false
        ownedStates &-= 1
    }

    /// Makes `engineSlots[e]` exist, growing by 4,096 entries at least (an engine hands out slots one after another,
    /// and growing by one entry per new flow cost a generic append per flow). Not by half: the entries appended are
    /// written, and with 100,000 flows a half was up to 1.6 MB of fresh memory no flow used.
    func growEngineSlots(to e: Int) {
        let count = max(e + 1, engineSlots.count + 4096)
        engineSlots.append(contentsOf: repeatElement(EngineSlot(), count: count - engineSlots.count))
    }

    /// A free state slot holding `s`; empties the cache first when it tracks `maximumTrackedFlows` flows. With a
    /// policy, the states engine flows own (`storeForEngine`) are not counted nor emptied: each lives as long as its
    /// flow, so the engines' flow cap bounds them, and a `--workers` engine decides its flows' quiet operations by
    /// copies of their entries (`QuietVerdict`), which must not go stale under it.
    func allocateSlot(_ s: FlowState) -> Int {
        let kept = policy != nil ? ownedStates : 0
        if slots.count - freeSlots.count - kept >= config.maximumTrackedFlows {
            if kept > 0 {
                for (_, i) in flows { freeSlots.append(i) }
                flows.removeAll(keepingCapacity: true)
                for i in engineSlots.indices where !engineSlots[i].ownsSlot { engineSlots[i].serial = 0 }
            } else {
                flows.removeAll(keepingCapacity: true); slots.removeAll(keepingCapacity: true); freeSlots.removeAll(keepingCapacity: true)
                for i in engineSlots.indices { engineSlots[i].serial = 0; engineSlots[i].ownsSlot = false }
                ownedStates = 0
            }
            lastKey = nil
            stats.flowCacheResets &+= 1
        }
        if let f = freeSlots.popLast() { let i = Int(f); slots[i] = s; return i }
        slots.append(s)
        return slots.count - 1
    }

    // MARK: - Raising

    /// Counts an occurrence; builds and emits the alert only when it is not a repeat within an open window.
    @inline(__always)
    func raise(_ rule: RuleID, key: AggregationKey, time: PacketTime, frame: UInt64, alerts: inout [Alert],
               _ build: (inout Alert) -> Void) {
        stats.perCategory[Detector.categoryIndex(rule.rule.category)] &+= 1
        if aggregator.fold(key, time: time, frame: frame, alerts: &alerts) { return }
        stats.raised &+= 1
        // Built in place (a function returning an alert was compiled as a copy and a destroy of the whole alert, a
        // dozen reference counts each way, at every return), then copied once into the window's template and moved
        // into the list. A full table is flushed after the new alert is listed and before its window opens.
        var alert = Alert(time: time, frame: frame, severity: 0, action: "", ruleID: "", ruleName: "", category: .capture, message: "")
        build(&alert)
        if aggregator.isFull {
            alerts.append(alert)
            aggregator.makeRoom(alerts: &alerts)
            aggregator.open(key, alert: alert)
        } else {
            aggregator.open(key, alert: copy alert)
            alerts.append(consume alert)
        }
    }

    func unknownHost(_ host: Endpoint, zone: Int32, peer: Endpoint, peerZone: Int32, flow: FlowContext, frame: UInt64,
                     time: PacketTime, alerts: inout [Alert]) {
        guard zone < 0, !CompiledPolicy.isNonUnicast(host.ip) else { return }
        if unknownSeen.contains(host.ip) { return }
        if unknownSeen.count >= config.maximumUnknownHosts { unknownSeen.removeAll(); stats.unknownHostResets &+= 1 }
        unknownSeen.insert(host.ip)
        let k = AggregationKey(rule: RuleID.assetUnknownHost.rawValue, source: host.ip, destination: IPAddress(v4: 0))
        raise(.assetUnknownHost, key: k, time: time, frame: frame, alerts: &alerts) { a in
            let sl = peerZone >= 0 ? policy!.zones[Int(peerZone)].securityLevel : -1
            baseAlert(&a, .assetUnknownHost, time: time, frame: frame, source: host, destination: peer, flow: flow,
                              protocolName: flow.transport.name.description, sourceZone: -1, destinationZone: peerZone, securityLevel: sl)
            let role = host == flow.initiator ? "initiating a flow to" : "answering"
            let peerHost = policy!.host(peer.ip)
            message(into: &a.messageText) { m in
                m.add("first sight of "); m.add(host.ip); m.add(", which is in no zone, "); m.add(role); m.add(" ")
                m.add(peer.ip); m.addAsset(peerHost, policy!)
            }
        }
    }

    // MARK: - Alert building (only when an alert is emitted)

    var attackVersion: AttackVersion { policy?.attackVersion ?? .v19 }

    func baseAlert(_ a: inout Alert, _ rule: RuleID, time: PacketTime, frame: UInt64, source: Endpoint?, destination: Endpoint?, flow: FlowContext?,
                   protocolName: String?, sourceZone: Int32, destinationZone: Int32, securityLevel: Int, access: AccessClass? = nil) {
        let r = rule.rule
        // Every field set in place, as a new `Alert` would have it: assigning a new alert built a second one (its
        // 240-byte inline text included) and destroyed the one `raise` had just made, for every alert built.
        a.time = time; a.frame = frame; a.severity = Severity.of(rule, access: access, securityLevel: securityLevel)
        a.action = r.action; a.ruleID = r.id; a.ruleName = r.name; a.category = r.category; a.messageText.removeAll()
        a.conduit = nil; a.access = nil; a.function = nil; a.unitID = nil; a.dnp3Address = nil
        a.count = 1; a.firstSeen = nil; a.lastSeen = nil
        a.source = source; a.destination = destination
        a.transport = flow?.transport
        a.networkProtocol = protocolName
        setCommunityID(&a, flow: flow)
        a.attackVersion = attackVersion.rawValue
        a.techniques = techniqueReferences[Int(rule.rawValue)]
        a.sourceZone = policy?.zoneName(sourceZone)
        a.destinationZone = policy?.zoneName(destinationZone)
        a.securityLevel = securityLevel >= 0 ? securityLevel : nil
        a.iec62443 = r.iec62443
    }

    /// `flow.communityIDText`, through `lastCommunityID` when the context leaves it pending (a SHA-1 per read).
    func communityID(of flow: FlowContext) -> InlineText {
        guard flow.communityIDPending else { return flow.communityIDText }
        guard alertCommunityIDs else { return InlineText() }
        if let c = lastCommunityID, c.initiator == flow.initiator && c.responder == flow.responder
            && c.ipProtocol == flow.communityIDProtocol {
            return c.text
        }
        let text = flow.communityIDText
        lastCommunityID = (flow.initiator, flow.responder, flow.communityIDProtocol, text)
        return text
    }

    /// The alert's Community ID: `flow`'s, deferred to whoever encodes the alert (an output's thread) when the flow
    /// leaves it pending and the alert's endpoints are the flow's (the same ID, in either order). Out of line: the
    /// alert builders are inlined into the detector's per-flow paths, which it made larger.
    @inline(never)
    func setCommunityID(_ a: inout Alert, flow: FlowContext?) {
        if let f = flow, f.communityIDPending && alertCommunityIDs && defersCommunityIDs, let s = a.source, let d = a.destination,
           (s == f.initiator && d == f.responder) || (s == f.responder && d == f.initiator) {
            a.deferCommunityID(ipProtocol: f.communityIDProtocol)
        } else {
            a.communityIDText = flow.map { communityID(of: $0) } ?? InlineText()
        }
    }

    func operationAlert(_ a: inout Alert, _ rule: RuleID, op: Operation, flow: FlowContext, sender: Endpoint, peer: Endpoint, senderZone: Int32,
                        peerZone: Int32, securityLevel: Int) {
        baseAlert(&a, rule, time: op.time, frame: op.frame, source: sender, destination: peer, flow: flow,
                          protocolName: op.appProtocol.name.description, sourceZone: senderZone, destinationZone: peerZone,
                          securityLevel: securityLevel, access: op.access)
        a.access = text(op.access.name)
        a.function = text(op.function)
        if op.unitID >= 0 {
            if op.appProtocol == .dnp3 { a.dnp3Address = Int(op.unitID) } else if op.appProtocol == .modbus { a.unitID = Int(op.unitID) }
        }
    }

    func zoneAlert(_ a: inout Alert, _ rule: RuleID, flow: FlowContext, state st: FlowState, policy: CompiledPolicy, frame: UInt64, time: PacketTime) {
        let v = st.verdict
        baseAlert(&a, rule, time: time, frame: frame, source: flow.initiator, destination: flow.responder, flow: flow,
                          protocolName: flow.transport.name.description, sourceZone: st.initiatorZone,
                          destinationZone: st.responderZone, securityLevel: Int(v.securityLevel))
        if v.conduit >= 0 { a.conduit = policy.conduits[Int(v.conduit)].name }
        let si = policy.host(flow.initiator.ip), di = policy.host(flow.responder.ip)
        let port = Int64(flow.responder.port)
        let sourceZone = a.sourceZone ?? "", destinationZone = a.destinationZone ?? "", conduit = a.conduit ?? ""
        message(into: &a.messageText) { m in
            switch rule {
            case .zoneInitiatorNotListed:
                m.add(flow.initiator.ip); m.addAsset(si, policy); m.add(" may not initiate on conduit '"); m.add(conduit)
                m.add("' (not in its initiators); flow to "); m.add(flow.responder.ip); m.addAsset(di, policy); m.add(" port "); m.add(port)
            case .zoneResponderNotListed:
                m.add(flow.responder.ip); m.addAsset(di, policy); m.add(" is not a listed responder of conduit '"); m.add(conduit)
                m.add("'; flow from "); m.add(flow.initiator.ip); m.addAsset(si, policy); m.add(" port "); m.add(port)
            default:
                m.add("flow from "); m.add(flow.initiator.ip); m.addAsset(si, policy)
                m.add(" to "); m.add(flow.responder.ip); m.addAsset(di, policy); m.add(" port "); m.add(port)
                if rule == .zoneNoConduit && v.kind == .intraDenied {
                    m.add(" inside zone '"); m.add(sourceZone); m.add("' matches none of the zone's rules (intra_zone: enforce)")
                } else if rule == .zoneNoConduit {
                    m.add(": no conduit from zone '"); m.add(sourceZone); m.add("' to zone '"); m.add(destinationZone); m.add("' (default: deny)")
                } else if rule == .zoneWrongDirection {
                    m.add(" runs against conduit '"); m.add(conduit); m.add("', which only allows zone '"); m.add(destinationZone)
                    m.add("' to initiate")
                } else {
                    m.add(" between a zone and a host in no zone (default: deny)")
                }
            }
        }
    }

    func conduitAlert(_ a: inout Alert, _ rule: RuleID, op: Operation, verdict ov: OperationVerdict, flow: FlowContext, sender: Endpoint, peer: Endpoint,
                      senderZone: Int32, peerZone: Int32, securityLevel: Int, policy: CompiledPolicy) {
        operationAlert(&a, rule, op: op, flow: flow, sender: sender, peer: peer, senderZone: senderZone, peerZone: peerZone,
                               securityLevel: securityLevel)
        let c = policy.conduits[Int(ov.conduit)]
        a.conduit = c.name
        if rule == .conduitProtocol {
            a.access = nil; a.function = nil
            message(into: &a.messageText) { m in
                m.add(op.appProtocol.name); m.add(" from "); m.add(sender.ip); m.add(" to "); m.add(peer.ip)
                m.add(" is not allowed by conduit '"); m.add(c.name); m.add("'")
            }
            return
        }
        a.techniques = singleTechnique(Technique.forDisallowed(op.access))
        let r = ov.rule >= 0 ? c.rules[Int(ov.rule)] : nil
        message(into: &a.messageText) { m in
            describe(op, into: &m); m.add(" from "); m.add(sender.ip); m.add(" to "); m.add(peer.ip)
            m.add(" violates conduit '"); m.add(c.name); m.add("': ")
            switch rule {
            case .conduitFunction:
                m.add(op.access.name); m.add(" (function "); m.add(Int64(op.functionCode)); m.add(") is not allowed")
                let accesses = r.map { $0.accessMask != 0 } ?? false, functions = r.map { !$0.functions.isEmpty } ?? false
                if accesses || functions { m.add("; allowed: ") }
                if accesses, let r {
                    var first = true
                    for x in AccessClass.allCases where r.accessMask & (1 << UInt16(x.rawValue)) != 0 {
                        if !first { m.add(", ") }
                        first = false; m.add(x.name)
                    }
                }
                if accesses && functions { m.add("; ") }
                if functions, let r {
                    m.add("functions ")
                    for (i, f) in r.functions.enumerated() { if i > 0 { m.add(", ") }; m.add(Int64(f)) }
                }
            case .conduitDevice:
                m.add(op.appProtocol == .dnp3 ? "DNP3 address " : "unit id "); m.add(Int64(op.unitID)); m.add(" is not allowed")
                if let r { m.add("; allowed: "); addRanges(r.devices, into: &m) }
            default:
                if let r, !r.addresses.isEmpty, op.address >= 0,
                   !r.addresses.contains(where: { $0.contains(op.address) && $0.contains(op.address + max(op.quantity, 1) - 1) }) {
                    m.add("addresses "); addAddresses(op, into: &m); m.add(" are outside the allowed "); addRanges(r.addresses, into: &m)
                } else if let r, !r.areas.isEmpty, op.area >= 0, !r.areas.contains(op.area) {
                    m.add("S7 area "); addAreaName(op.area, into: &m); m.add(" is not allowed; allowed: ")
                    for (i, area) in r.areas.enumerated() { if i > 0 { m.add(", ") }; addAreaName(area, into: &m) }
                } else if let r {
                    m.add("DB "); m.add(Int64(op.dbNumber)); m.add(" is not allowed; allowed: "); addRanges(r.dbNumbers, into: &m)
                } else {
                    m.add("data address not allowed")
                }
            }
        }
    }

    /// What `describe` returns, written into `m`.
    func describe(_ op: Operation, into m: inout MessageText) {
        m.add(op.appProtocol.name); m.add(" "); m.add(op.function); m.add(" ("); m.add(op.access.name); m.add(")")
        if op.unitID >= 0 { m.add(op.appProtocol == .dnp3 ? " outstation " : " unit "); m.add(Int64(op.unitID)) }
        if op.area >= 0 { m.add(" area "); addAreaName(op.area, into: &m) }
        if op.dbNumber >= 0 { m.add(" DB "); m.add(Int64(op.dbNumber)) }
        if op.address >= 0 { m.add(op.quantity > 1 ? " addresses " : " address "); addAddresses(op, into: &m) }
    }

    /// What `addressText` returns, written into `m`.
    func addAddresses(_ op: Operation, into m: inout MessageText) {
        m.add(op.address)
        if op.quantity > 1 { m.add("-"); m.add(op.address + op.quantity - 1) }
    }

    /// What `rangesText` returns, written into `m`.
    func addRanges(_ r: [ClosedRange<Int64>], into m: inout MessageText) {
        if r.isEmpty { m.add("any"); return }
        for (i, x) in r.enumerated() {
            if i > 0 { m.add(", ") }
            m.add(x.lowerBound)
            if x.lowerBound != x.upperBound { m.add("-"); m.add(x.upperBound) }
        }
    }

    /// What `areaName` returns, written into `m`.
    func addAreaName(_ code: Int16, into m: inout MessageText) {
        if let name = Self.knownAreaName(code) { m.add(name) } else { m.add(areaName(code)) }
    }

    /// The S7 area's name, nil for a code with none.
    static func knownAreaName(_ code: Int16) -> StaticString? {
        switch code {
        case 0x80: "P"; case 0x81: "I"; case 0x82: "Q"; case 0x83: "M"; case 0x84: "DB"; case 0x85: "DI"
        case 0x86: "L"; case 0x87: "V"; case 0x1C: "C"; case 0x1D: "T"
        default: nil
        }
    }

    /// `s` as a `String` shared by every alert that names it (a `String` made from a static string of more than 15
    /// bytes is a heap allocation): function and access names are a fixed vocabulary.
    func text(_ s: StaticString) -> String {
        guard s.hasPointerRepresentation else { return s.description }
        let key = UInt(bitPattern: s.utf8Start)
        if let t = staticTexts[key] { return t }
        let t = s.description
        if staticTexts.count < 4096 { staticTexts[key] = t }
        return t
    }

    /// `[t.reference(attackVersion)]`, built once per technique and release.
    func singleTechnique(_ t: Technique) -> [AttackTechnique] { singleTechniques[Int(t.rawValue)] }

    func describe(_ op: Operation) -> String {
        var s = "\(op.appProtocol.name) \(op.function) (\(op.access.name))"
        if op.unitID >= 0 { s += op.appProtocol == .dnp3 ? " outstation \(op.unitID)" : " unit \(op.unitID)" }
        if op.area >= 0 { s += " area \(areaName(op.area))" }
        if op.dbNumber >= 0 { s += " DB \(op.dbNumber)" }
        if op.address >= 0 { s += " address\(op.quantity > 1 ? "es" : "") \(addressText(op))" }
        return s
    }

    func addressText(_ op: Operation) -> String {
        op.quantity > 1 ? "\(op.address)-\(op.address + op.quantity - 1)" : "\(op.address)"
    }

    func rangesText(_ r: [ClosedRange<Int64>]) -> String {
        r.isEmpty ? "any" : r.map { $0.lowerBound == $0.upperBound ? "\($0.lowerBound)" : "\($0.lowerBound)-\($0.upperBound)" }.joined(separator: ", ")
    }

    func areaName(_ code: Int16) -> String {
        switch code {
        case 0x80: "P"; case 0x81: "I"; case 0x82: "Q"; case 0x83: "M"; case 0x84: "DB"; case 0x85: "DI"
        case 0x86: "L"; case 0x87: "V"; case 0x1C: "C"; case 0x1D: "T"
        default: "0x" + String(code, radix: 16)
        }
    }

    func allowedProtocols(_ policy: CompiledPolicy, _ v: FlowVerdict) -> String {
        var names: [String] = []
        var m = v.conduitMask
        while m != 0 {
            let i = m.trailingZeroBitCount; m &= m - 1
            for r in policy.conduits[Int(policy.pairConduits[Int(v.pairStart) + i])].rules {
                var n = r.appProtocol.map { $0.name.description } ?? r.transport!.name.description
                if r.appProtocol == nil && !r.ports.isEmpty { n += " " + rangesText(r.ports) }
                if !names.contains(n) { names.append(n) }
            }
        }
        return names.isEmpty ? "nothing" : names.joined(separator: ", ")
    }

    // MARK: - Small helpers

    /// Writes an alert message into `text` (emptied first) piece by piece, in place: an interpolation grew a string
    /// piece by piece (about 640 instructions per piece measured in an alert storm) and allocated it; a text built on
    /// the side and assigned was copied whole (264 bytes) once more per alert.
    func message(into text: inout AlertText, _ build: (inout MessageText) -> Void) {
        text.removeAll()
        withUnsafeMutablePointer(to: &text) { p in
            var m = MessageText(target: p)
            build(&m)
        }
    }

    /// `anomaly-<layer>-<kind>`, from the cache when this layer and kind were seen before.
    func anomalyAction(_ layer: StaticString, _ kind: StaticString, hash: UInt64) -> String {
        if let c = anomalyActions[hash], Self.equal(c.layer, layer), Self.equal(c.kind, kind) { return c.action }
        let action = "anomaly-\(layer)-\(kind)"
        if anomalyActions.count < 4096 { anomalyActions[hash] = (layer, kind, action) }
        return action
    }

    /// The index of `c` in `AlertCategory.allCases` without building that array.
    static func categoryIndex(_ c: AlertCategory) -> Int {
        switch c {
        case .zoneBoundary: 0
        case .conduit: 1
        case .icsOperation: 2
        case .protocolAnomaly: 3
        case .asset: 4
        case .capture: 5
        }
    }

    static func isApplicationLayer(_ layer: StaticString) -> Bool {
        equal(layer, "modbus") || equal(layer, "dnp3") || equal(layer, "s7comm") || equal(layer, "s7comm_plus")
            || equal(layer, "cotp") || equal(layer, "tpkt") || equal(layer, "umas")
    }

    static func equal(_ a: StaticString, _ b: StaticString) -> Bool {
        guard a.hasPointerRepresentation, b.hasPointerRepresentation, a.utf8CodeUnitCount == b.utf8CodeUnitCount else { return false }
        for i in 0..<a.utf8CodeUnitCount where a.utf8Start[i] != b.utf8Start[i] { return false }
        return true
    }

    /// FNV-1a over the bytes of the anomaly's layer and kind: a stable key without building a String.
    static func fnv(_ a: StaticString, _ b: StaticString) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ s: StaticString) {
            if s.hasPointerRepresentation {
                for i in 0..<s.utf8CodeUnitCount { h = (h ^ UInt64(s.utf8Start[i])) &* 0x100_0000_01b3 }
            }
            h = (h ^ 0xFF) &* 0x100_0000_01b3
        }
        mix(a); mix(b)
        return h
    }

    /// A host's distinct value for the scan counters (with a unit id: a device's): its address (and unit) hashed under
    /// `hostValueKey`. The unkeyed fold before (low word ^ high word × constant) let anyone choose IPv6 addresses that
    /// all came out as one value, so a scan of them counted one host and raised nothing.
    func hostValue(_ ip: IPAddress, unit: Int64 = 0) -> Int64 {
        Int64(bitPattern: TableHash.finish(TableHash.round(TableHash.round(hostValueKey, ip), UInt64(bitPattern: unit))))
    }
}

/// Alert message text under construction (see `Detector.message(into:_:)`): appends to an alert's own text in
/// place, writing what string interpolation would.
struct MessageText {
    /// The text written to (an alert's, for the duration of `Detector.message(into:_:)`).
    let target: UnsafeMutablePointer<AlertText>

    /// A text built by `build` on its own (tests and cold paths).
    static func text(_ build: (inout MessageText) -> Void) -> AlertText {
        var t = AlertText()
        withUnsafeMutablePointer(to: &t) { p in
            var m = MessageText(target: p)
            build(&m)
        }
        return t
    }

    mutating func add(_ s: StaticString) { target.pointee.append(s) }

    mutating func add(_ s: String) { target.pointee.append(s) }

    /// The address as `IPAddress.description` writes it.
    mutating func add(_ ip: IPAddress) { target.pointee.append(ip) }

    /// Decimal, as `\(value)` writes it.
    mutating func add(_ value: Int64) { target.pointee.append(decimal: value) }

    /// ` (asset name)` after a host's address when the host is a named asset.
    mutating func addAsset(_ h: HostInfo, _ policy: CompiledPolicy) {
        guard h.asset >= 0 else { return }
        add(" ("); add(policy.assetNames[Int(h.asset)]); add(")")
    }
}
