#if canImport(Glibc)
import Glibc
#endif
import CPrefetch
import Wire
import Records
import Decode
import Flows
import Modbus
import DNP3
import S7comm

/// Which dissector a flow has (stored in `FlowState.application`).
enum ApplicationKind: UInt8 {
    case undecided = 0, none = 1, modbus = 2, dnp3 = 3, s7comm = 4

    /// Set in `FlowState.application` beside a dissected kind once its dissection has ended while the flow lingers
    /// (`Engine.endApplicationAtClose`): no kind matches the byte, so nothing is delivered for the flow, and its record
    /// still names the protocol (`recorded`). `applicationSlot` is then -1, or the state left to release when the flow
    /// ends (its dissector had nothing to report).
    static let endedFlag: UInt8 = 0x80

    /// The kind a flow's record names for `FlowState.application`'s byte, ended or not.
    static func recorded(_ byte: UInt8) -> ApplicationKind { ApplicationKind(rawValue: byte & ~endedFlag) ?? .none }

    var appProtocol: AppProtocol? {
        switch self {
        case .modbus: .modbus
        case .dnp3: .dnp3
        case .s7comm: .s7comm
        case .undecided, .none: nil
        }
    }
}

/// One worker's pipeline: decode → flows → reassembly → dissectors → (policy, detection) → records.
///
/// Fed one packet at a time by the caller (replay loop, live capture loop, or a worker thread);
/// owns all its state; nothing in it is shared with other workers.
public final class Engine {
    // One thread owns an engine; dynamic exclusivity checks on these class properties cost more than a header
    // parse per packet, so they are off (`@exclusivity(unchecked)`) for the per-packet state.
    /// The configuration in force.
    public let configuration: EngineConfiguration
    /// Where records, operations and anomalies collect.
    public let sink = EventSink()
    /// Counters.
    @exclusivity(unchecked) public private(set) var statistics = EngineStatistics()
    /// Receives flow events, operations and anomalies (policy and detection); optional. Set between packets, never
    /// from inside one of its own callbacks: the engine reaches it unretained (`borrowedFlowEventTarget`).
    @exclusivity(unchecked) public var observer: (any EngineObserver)? {
        didSet {
            operationForwarder = observer.map { $0.operationForwarder() ?? Engine.forwarder(to: $0) }
            operationForwarder?.engine = Unmanaged.passUnretained(self)
            borrowedForwarder = operationForwarder.map { Unmanaged.passUnretained($0) }
            observerTable = observer?.flowStateTable() ?? .none
            flowEventTarget = observer.map { Engine.flowEventTarget(for: $0) }
            borrowedFlowEventTarget = flowEventTarget.map { Unmanaged.passUnretained($0) }
            flowEndsAtEndOfInput = observer?.wantsFlowEndsAtEndOfInput ?? true
            setContextPrefetch()
        }
    }
    /// Hands a flow's start, identification and end to `observer` (kept alive here), reached through
    /// `borrowedFlowEventTarget` without reference counting: loading the observer from this class retained and
    /// released it at each, six atomic operations a flow.
    @exclusivity(unchecked) private var flowEventTarget: FlowEventTarget?
    @exclusivity(unchecked) private var borrowedFlowEventTarget: Unmanaged<FlowEventTarget>?
    /// `observer.wantsFlowEndsAtEndOfInput`, asked when the observer is set.
    @exclusivity(unchecked) private var flowEndsAtEndOfInput = true
    /// `finish` is ending the flows (the end of input): the observer hears of their ends only if it wants to.
    @exclusivity(unchecked) private var endingInput = false
    /// Whether the observer hears of the flow ending now (`flowEnded`), and so whether its entry is loaded for it.
    @inline(__always) private var observerHearsFlowEnds: Bool { !endingInput || flowEndsAtEndOfInput }
    /// `observer.flowStateTable()`, refreshed whenever a flow starts.
    @exclusivity(unchecked) private var observerTable = FlowStateTable.none
    /// Operations of a flow whose context is not in the sink are forwarded with the sink's context unbuilt, and the
    /// forwarder builds it when it reads it (`OperationForwarder.buildsContextOnDemand`); no records are written.
    @exclusivity(unchecked) private var contextsOnDemand = false
    /// The flow whose context the sink lacks while its operations are forwarded (`contextsOnDemand`); -1 otherwise.
    @exclusivity(unchecked) private var lazyContextSlot: Int32 = -1
    /// Hands drained operations to `observer` (kept alive here); `borrowedForwarder` reaches it without reference
    /// counting: loading the observer (an existential) from this class retained and released it on every drain,
    /// two atomic operations per request packet.
    @exclusivity(unchecked) private var operationForwarder: OperationForwarder?
    @exclusivity(unchecked) private var borrowedForwarder: Unmanaged<OperationForwarder>?

    /// Packets the one-pass established-TCP path handled (the rest took the general path).
    @exclusivity(unchecked) public private(set) var packetsOnEstablishedPath: UInt64 = 0
    private let establishedTCPPath: Bool
    /// PDU or transaction records are written (dissectors then read the sink's flow context on every record).
    private let recordsEnabled: Bool

    let flows: FlowTable
    let modbus: DissectorPool<ModbusDissector>
    private let dnp3: DissectorPool<DNP3Dissector>
    private let s7comm: DissectorPool<S7commDissector>
    @exclusivity(unchecked) private var frame: UInt64 = 0
    @exclusivity(unchecked) var packetsProcessed: UInt64 = 0
    /// The replay loop's `RecordLookahead` while it dispatches packets with hints (`EngineConsumer`), for
    /// `catchUpHints`; nil otherwise. Raw: this file does not import Capture.
    @exclusivity(unchecked) var hintLookahead: UnsafeMutableRawPointer?
    /// `catchUpHints` has covered the packets before this number.
    @exclusivity(unchecked) var hintsCaughtUpTo: UInt64 = 0
    @exclusivity(unchecked) private var now = PacketTime.zero
    @exclusivity(unchecked) private var nextSweep: Int64 = 0
    /// IP datagrams being reassembled from their fragments.
    private let fragments = IPReassembly()
    /// Set when this engine is one of several (`--workers`), each sent every IP fragment: it processes a datagram
    /// they complete only when the datagram's flow is its own, and only worker 0 (whose packets the fragments are)
    /// counts them and reports their problems. Nil: a single engine.
    public var workerShare: WorkerShare?
    /// A datagram reassembled from fragments is being processed (`takeFragment`).
    @exclusivity(unchecked) private var reassembling = false
    /// A single engine, or worker 0 of several: the one that reports what every engine meets alike, as one engine
    /// would once. It logs a step back of packet time (`capture`/`time_went_back`; every engine ends its flows at the
    /// step), and counts the IP fragments (worker 0's packets) and reports their problems.
    private var reportsForAll: Bool { workerShare.map { $0.worker == 0 } ?? true }
    /// The second packet time stepped back to at the last step logged (`clockWentBack`).
    @exclusivity(unchecked) private var lastLoggedStep: Int64?
    @exclusivity(unchecked) private var sinkFlowSlot: Int32 = -1
    @exclusivity(unchecked) private var anomalyLogged: [UInt64: Int] = [:]   // by `anomalyKindKey`
    /// Diagnostic for scripts/bench (environment ZONEWATCH_NO_DISSECT=1): no flow is handed to a dissector, so
    /// a replay measures decoding, flows and reassembly alone. Not a user option.
    private let noDissect = getenv("ZONEWATCH_NO_DISSECT").map { String(cString: $0) == "1" } ?? false
    private let initiatorStreamOffset = MemoryLayout<FlowState>.offset(of: \FlowState.initiatorStream)!
    private let responderStreamOffset = MemoryLayout<FlowState>.offset(of: \FlowState.responderStream)!
    private let inOrderOffset = MemoryLayout<FlowState>.offset(of: \FlowState.inOrder)!
    private let initiatorCarryOffset = MemoryLayout<FlowState>.offset(of: \FlowState.initiatorCarry)!
    private let responderCarryOffset = MemoryLayout<FlowState>.offset(of: \FlowState.responderCarry)!
    /// A new flow's `checksumSides` (`ChecksumValidation`).
    private let newFlowChecksumSides: UInt8

    /// Creates an engine.
    public init(configuration: EngineConfiguration = .init()) {
        self.configuration = configuration
        establishedTCPPath = configuration.establishedTCPPath
        newFlowChecksumSides = switch configuration.checksums {
        case .auto: FlowState.bothChecksumSides(.undecided)
        case .on: FlowState.bothChecksumSides(.verified)
        case .off: FlowState.bothChecksumSides(.unchecked)
        }
        recordsEnabled = configuration.pduRecords || configuration.transactionRecords
        flows = FlowTable(limits: configuration.flowLimits, hashKey: FlowHashKey.random().ignoringVLANs(configuration.ignoresVLANs))
        // Room for every flow the table can hold (a flow holds at most one dissector state): address space, touched
        // only as flows are identified.
        let poolCapacity = min(configuration.flowLimits.maximumFlows, 1 << 22)
        modbus = DissectorPool(capacity: poolCapacity)
        dnp3 = DissectorPool(capacity: poolCapacity)
        s7comm = DissectorPool(capacity: poolCapacity)
        sink.pduRecordsEnabled = configuration.pduRecords
        sink.transactionRecordsEnabled = configuration.transactionRecords
        setContextPrefetch()
    }

    /// Live flows.
    public var liveFlows: Int { flows.count }

    /// How many packets ahead `prefetchFlows` wants to see (`PacketSource.upcoming(Engine.prefetchDistance)`).
    /// 12: the flow state then has 6 packets to arrive before its line is read for the dissector hint, 3 before the
    /// packet (at 8, 4 and 2, that read stalled in ~10 % of the replay loop's samples on the 100,000-flow plant, and
    /// the loop took ~5 % more CPU time; 16 measured the same as 12). At most 16 (`FlowTable.prefetchAhead`).
    public static let prefetchDistance = 12

    /// Prefetch hints while replaying a file: `ahead` is the packet `prefetchDistance` places after the one about
    /// to be processed, nil when unknown. Three stages, each a few packets before the data is needed: the
    /// packet's flow index entry (`prefetchDistance` ahead), then its flow state (half as far), then its
    /// dissector state (a quarter), each found through what the stage before loaded. With thousands of
    /// interleaved flows these are otherwise three dependent cache misses per packet. Hints only: nothing here
    /// changes what is computed (a stale slot only wastes a prefetch).
    public func prefetchFlows(ahead: ByteView?, linkType: Int32) { prefetchStage(ahead: ahead, linkType: linkType) }

    /// The flow hash of a hint the untagged Ethernet reading did not take: the frame a remote-SPAN packet carries
    /// (`PacketDecoder.commonMirroredFrame`), a tagged or cooked frame (`PacketDecoder.uncommonFlowTuple`); nil for
    /// other shapes. Out of line: the common packet never comes here.
    @inline(never)
    func otherHintHash(_ bytes: ByteView, linkType: Int32) -> UInt64? {
        var frame = bytes
        // `mayBeRemoteSPAN` first: inlined, it turns a tagged or plain frame away for a few instructions where the call
        // of `commonMirroredFrame` took ~34.
        if linkType == PacketDecoder.ethernet, PacketDecoder.mayBeRemoteSPAN(bytes), let start = PacketDecoder.commonMirroredFrame(bytes) {
            frame = bytes.suffix(uncheckedFrom: start)   // within `bytes`: `commonMirroredFrame` checked it
            if let t = PacketDecoder.commonEthernetFlowTuple(frame) {
                return FlowKey.v4Hash(source: t.source, destination: t.destination, sourcePort: t.sourcePort,
                                      destinationPort: t.destinationPort, ipProtocol: t.ipProtocol, key: flows.hashKey)
            }
        }
        guard let t = PacketDecoder.uncommonFlowTuple(frame, linkType: linkType) else { return nil }
        return FlowKey.v4Hash(source: t.source, destination: t.destination, sourcePort: t.sourcePort,
                              destinationPort: t.destinationPort, ipProtocol: t.ipProtocol, vlan: t.vlan, key: flows.hashKey)
    }

    /// `prefetchFlows`, inlined into the replay loop's consumer.
    @inline(always)
    func prefetchStage(ahead: ByteView?, linkType: Int32) {
        var hash: UInt64?
        if let bytes = ahead {
            if linkType == PacketDecoder.ethernet, let t = PacketDecoder.commonEthernetFlowTuple(bytes) {
                hash = FlowKey.v4Hash(source: t.source, destination: t.destination, sourcePort: t.sourcePort,
                                      destinationPort: t.destinationPort, ipProtocol: t.ipProtocol, key: flows.hashKey)
            } else {
                hash = otherHintHash(bytes, linkType: linkType)
            }
        }
        // Positions count this engine's packets (workers see every n-th frame).
        let s = flows.prefetchAhead(hash: hash, position: packetsProcessed &+ 1 &+ UInt64(Engine.prefetchDistance),
                                    distance: UInt64(Engine.prefetchDistance))
        guard s >= 0 else { return }
        // Raw loads of the fields used: the flow may have ended since the slot was named, and a free slot holds no
        // state (only `FlowTable.remove`'s vacant key and application byte; the other bytes are stale, harmless as hints).
        let state = UnsafeRawPointer(flows.slots + Int(s))
        @inline(__always) func field<T>(_ path: KeyPath<FlowState, T>, _: T.Type) -> T {
            state.load(fromByteOffset: MemoryLayout<FlowState>.offset(of: path)!, as: T.self)
        }
        // A TCP flow whose streams are not both synchronised is in its handshake: its next packets (a SYN-ACK) take the
        // general path, which works on the streams (their lines, past the per-packet ones, were misses there: the
        // first read, `TCPStream.peerAcknowledged`, waited on them).
        if field(\.streamSummary, UInt8.self) & 0b1010 != 0b1010 && field(\.key.ipProtocol, UInt8.self) == 6 {
            flows.prefetchStreamLines(of: s)
        }
        // Raw values compared: `ApplicationKind(rawValue:)` was a call per packet here.
        let applicationSlot = field(\.applicationSlot, Int32.self)
        switch field(\.application, UInt8.self) {
        case ApplicationKind.modbus.rawValue: modbus.prefetch(applicationSlot)
        case ApplicationKind.dnp3.rawValue: dnp3.prefetch(applicationSlot)
        case ApplicationKind.s7comm.rawValue: s7comm.prefetch(applicationSlot)
        default: return   // no operations to come: detection reads nothing of this flow's
        }
        // The per-flow lines (Community ID and the like) only for records: operations take the serial from line 1.
        if recordsEnabled { flows.prefetchFlowLines(of: s) }
        // For every dissected flow's packet, though only requests (Modbus, DNP3) bring operations: skipping it for a
        // responder's packets measured 5-7 % slower on the 100,000-flow plant (with or without a branch), skipping it
        // for the initiator's 20 % slower; issuing it with the flow's lines (6 ahead, for every flow) measured the same.
        prefetchObserverEntry(s)
    }

    /// Starts loading the line the observer's entry for flow slot `s` starts in (what a packet's operations read
    /// first); nothing for an `s` beyond its table. The table's fields are read in place: a method of the
    /// `FlowStateTable` value copied the whole hint first, ~1.5 instructions a packet more in callgrind.
    @inline(__always)
    private func prefetchObserverEntry(_ s: Int32) {
        if Int(s) < observerTable.count, let base = observerTable.base { zw_prefetch(base + Int(s) &* observerTable.stride) }
    }

    /// `prefetchObserverEntry`, and the line of the entry's last byte too, for an entry that straddles two (an
    /// observer's table need not start on a line: the detector's 32-byte entries begin 48 bytes into a page, so every
    /// other one does, and what `flowIdentified` and `flowEnded` read past its first 16 bytes was a miss of its own).
    @inline(__always)
    private func prefetchWholeObserverEntry(_ s: Int32) {
        guard Int(s) < observerTable.count, let base = observerTable.base else { return }
        let entry = base + Int(s) &* observerTable.stride
        zw_prefetch(entry); zw_prefetch(entry + (observerTable.stride &- 1))
    }

    // MARK: - Packets

    /// Processes one packet. `bytes` is borrowed for the duration of the call only. `frame` is the packet's
    /// 1-based number when a reader numbers packets for several engines (`--workers`); 0: the engine counts.
    public func process(_ bytes: ByteView, linkType: Int32, time: PacketTime, wireLength: Int, frame number: UInt64 = 0) {
        processPacket(bytes, linkType: linkType, time: time, wireLength: wireLength, frame: number)
    }

    /// `process`, inlined into the replay loop's consumer.
    @inline(always)
    func processPacket(_ bytes: ByteView, linkType: Int32, time: PacketTime, wireLength: Int, frame number: UInt64) {
        frame = number == 0 ? frame &+ 1 : number
        packetsProcessed &+= 1
        // The flow table's idle queries rely on packet time not going back (`FlowTable.clockWentBack`).
        if time.seconds < now.seconds { clockWentBack(to: time) }
        now = time
        statistics.packets &+= 1
        statistics.bytes &+= UInt64(bytes.count)
        if wireLength > bytes.count { statistics.truncatedPackets &+= 1 }
        if time.seconds >= nextSweep { sweep() }
        if linkType == PacketDecoder.ethernet && establishedTCPPath
            && processEstablishedTCPv4(bytes, wireLength: wireLength, time: time, typeAt: 12, vlan: 0) {
            packetsOnEstablishedPath &+= 1
            return
        }
        processUncommon(bytes, linkType: linkType, time: time, wireLength: wireLength)
    }

    /// A packet the untagged Ethernet one-pass path did not take: the one-pass path once more for a frame with one
    /// 802.1Q tag or of a Linux cooked capture, else the general path. Out of line, and the only call the common
    /// path makes, as `processGeneral` was: those readings, inside it, cost every packet ~24 instructions.
    @inline(never)
    private func processUncommon(_ bytes: ByteView, linkType: Int32, time: PacketTime, wireLength: Int) {
        if establishedTCPPath && (processEstablishedUncommonTCPv4(bytes, linkType: linkType, wireLength: wireLength, time: time)
                || (linkType == PacketDecoder.ethernet && PacketDecoder.mayBeRemoteSPAN(bytes)
                    && processEstablishedMirroredTCPv4(bytes, wireLength: wireLength, time: time))) {
            packetsOnEstablishedPath &+= 1
            return
        }
        processGeneral(bytes, linkType: linkType, time: time, wireLength: wireLength)
    }

    /// Everything the one-pass path does not take: decoding with every error reported, flow creation, port reuse,
    /// handshakes and closes, reassembly out of order. Kept out of line so that the common path stays small.
    @inline(never)
    private func processGeneral(_ bytes: ByteView, linkType: Int32, time: PacketTime, wireLength: Int) {
        let packet: PacketView
        do {
            guard let p = try PacketDecoder.decode(bytes, linkType: linkType) else { statistics.nonIPPackets &+= 1; return }
            packet = p
        } catch {
            if error.failure == .ipFragment && takeFragment(bytes, linkType: linkType, time: time, error: error) { return }
            statistics.decodeFailures[Int(error.failure.rawValue)] &+= 1
            logPacketAnomaly(Anomaly(layer: error.failure.layer, kind: error.failure.name, offset: error.offset))
            return
        }

        var key = FlowKey(packet: packet)
        key.vlan &= flows.hashKey.vlanMask   // (`--ignore-vlans`: 0)
        var slot: Int32
        // The prefetch pipeline's slot for this packet, when it holds this flow, is the one `find` would return:
        // the key's hash and the probe are needed only without it (a new flow, or a packet the pipeline missed; a new
        // flow hashes its key twice, which measured cheaper than carrying the hash over).
        let candidate = flows.candidate(at: packetsProcessed)
        let found: Int32? = candidate >= 0 && flows.slots[Int(candidate)].key == key
            ? candidate : flows.find(key, hash: key.fastHash(flows.hashKey))
        // A packet dropped for a wrong checksum still counts among its flow's packets (it was on the wire; the one-pass
        // path counts the ones it takes alike), but nothing else of it is taken.
        var dropped = false
        let captured = wireLength <= bytes.count   // (an IP length past the frame's end: the packet's, not the snapshot's)
        @inline(__always) func sender(in s: Int32) -> FlowSide {
            key.sentByLow(packet) == flows.slots[Int(s)].initiatorIsLow ? .initiator : .responder
        }
        if let s = found {
            slot = s
            // Before anything of the packet is taken (a SYN forged with a wrong checksum must not end the flow).
            dropped = flows.slots[Int(s)].checksumSides != FlowState.bothChecksumSides(.unchecked)
                && checksumDrops(s, side: sender(in: s), packet: packet, bytes: bytes, captured: captured)
            if !dropped && packet.tcpFlags & PacketView.syn != 0 && startsAnotherConnection(s, packet: packet) {
                // The SYN is the next connection's first packet, and its checksum is taken as such (the old flow's
                // sides, or an old flow not dissected, say nothing of the new one's).
                if checksumRefusesNewFlow(packet, bytes: bytes, captured: captured) {
                    dropped = true
                } else {
                    slot = startAnotherConnection(after: s, key: key, packet: packet)
                    dropped = firstPacketChecksumDrops(slot, side: sender(in: slot), packet: packet, bytes: bytes, captured: captured)
                }
            }
        } else {
            if checksumRefusesNewFlow(packet, bytes: bytes, captured: captured) { return }
            slot = createFlow(key, hash: key.fastHash(flows.hashKey), packet: packet)
            dropped = firstPacketChecksumDrops(slot, side: sender(in: slot), packet: packet, bytes: bytes, captured: captured)
        }
        let side = sender(in: slot)
        let ipBytes = UInt64(wireLength)
        if side == .initiator {
            flows.slots[Int(slot)].packets.0 &+= 1; flows.slots[Int(slot)].bytes.0 &+= ipBytes
        } else {
            flows.slots[Int(slot)].packets.1 &+= 1; flows.slots[Int(slot)].bytes.1 &+= ipBytes
        }
        // The LRU order is kept to the second of packet time, which is all that idle expiry (whole seconds) and
        // eviction need: a flow moves to the front on its first packet in a later second, not on every packet.
        Engine.noteTime(time, of: flows.slots + Int(slot), slot, in: flows)
        if dropped { return }

        let payload = bytes.slice(from: packet.payloadOffset, length: packet.payloadLength)
        switch packet.transport {
        case .tcp: tcpSegment(slot, side: side, packet: packet, bytes: bytes, payload: payload)
        case .udp: if packet.payloadLength > 0 { udpDatagram(slot, side: side, packet: packet, bytes: bytes, payload: payload) }
        default: break
        }
    }

    /// A UDP datagram with payload: to the flow's dissector, unless the capture holds it twice
    /// (`isCopyOfRecentDatagram`: counted). Only flows being dissected are checked: on others a copy changes nothing
    /// but the packet count, and their prints would be fresh memory for every DNS lookup (a flow's first datagram,
    /// which identifies it, is recorded once it is known to be dissected). Out of line: the check inlined into
    /// `processGeneral` cost every packet there a few instructions (registers).
    @inline(never)
    private func udpDatagram(_ slot: Int32, side: FlowSide, packet: PacketView, bytes: ByteView, payload: ByteView) {
        switch flows.slots[Int(slot)].application {
        case ApplicationKind.none.rawValue:
            deliver(slot, side: side, event: .data(payload))
        case ApplicationKind.undecided.rawValue:
            deliver(slot, side: side, event: .data(payload))
            if flows.slots[Int(slot)].application != ApplicationKind.none.rawValue {
                _ = isCopyOfRecentDatagram(slot, side: side, packet: packet, bytes: bytes, payload: payload)   // recorded
            }
        default:
            if isCopyOfRecentDatagram(slot, side: side, packet: packet, bytes: bytes, payload: payload) {
                statistics.udpDatagramsCapturedTwice &+= 1
            } else {
                deliver(slot, side: side, event: .data(payload))
            }
        }
    }

    /// Whether a UDP datagram of flow `slot` from `side` is the capture's copy of one that side sent just before
    /// (`RecentDatagrams`); if not, it is recorded as sent. The IPv4 identification is read where it lies before a
    /// UDP header without IP options; 0 otherwise (IPv6, options).
    private func isCopyOfRecentDatagram(_ slot: Int32, side: FlowSide, packet: PacketView, bytes: ByteView, payload: ByteView) -> Bool {
        let identification: UInt16 = packet.ipVersion == 4 && !packet.hasIPOptions && packet.payloadOffset >= 28
            ? bytes.u16be(packet.payloadOffset - 24) : 0
        let print = RecentDatagrams.print(serial: flows.slots[Int(slot)].serial, side: side.rawValue, identification: identification,
                                          payload: payload, key: flows.hashKey)
        return flows.recentDatagrams[2 * Int(slot) + Int(side.rawValue)].isCopy(print, at: now)
    }

    /// The IP fragment `decode` stopped at with `error` (`PacketDecoder.ipFragment`) into reassembly: false for any
    /// other packet (the caller reports it as before). A datagram it completes is processed here, as a packet of this
    /// frame (with `workerShare`, by the engine whose flow it is).
    @inline(never)
    private func takeFragment(_ bytes: ByteView, linkType: Int32, time: PacketTime, error: DecodeError) -> Bool {
        // A fragment inside a datagram reassembled a moment ago (a fragment of a fragment; or an outer fragmented tunnel
        // packet carrying a fragment) is not reassembled: the datagram's buffer is its table's, and nesting would let a
        // sender stack reassemblies (counted as before: `ip_fragment_not_reassembled`).
        guard !reassembling, let f = PacketDecoder.ipFragment(bytes, linkType: linkType, error: error) else { return false }
        let reports = reportsForAll
        if reports { statistics.ipFragments &+= 1 }
        let outcome = fragments.add(f, frame: bytes, time: time)
        if let held = fragments.takeEviction(), reports { logFragmentProblem(.tableFull, offset: 0, value: held) }
        switch outcome {
        case .held: break
        case .copyOfCompleted: if reports { statistics.ipFragmentsCapturedTwice &+= 1 }
        case .rejected(let problem, _):
            if reports { logFragmentProblem(problem, offset: f.fieldAt, value: f.offset) }
        case .complete(let datagram, let datagramLinkType, _):
            if reports { statistics.ipDatagramsReassembled &+= 1 }
            if ownsDatagram(datagram, linkType: datagramLinkType) {
                reassembling = true
                processGeneral(datagram, linkType: datagramLinkType, time: time, wireLength: datagram.count)
                reassembling = false
            }
        }
        return true
    }

    /// Whether a reassembled datagram's flow is this engine's: always for a single engine; with `workerShare`, the
    /// worker its flow hashes to (`WorkerShare.worker(of:)`, as the dispatch sends a packet), worker 0 for one that
    /// does not decode.
    private func ownsDatagram(_ datagram: ByteView, linkType: Int32) -> Bool {
        guard let share = workerShare else { return true }
        guard let packet = try? PacketDecoder.decode(datagram, linkType: linkType) else { return share.worker == 0 }
        return share.worker(of: FlowKey(packet: packet)) == share.worker
    }

    private func logFragmentProblem(_ problem: IPFragmentProblem, offset: Int, value: Int) {
        logPacketAnomaly(Anomaly(layer: "ip", kind: problem.kind, offset: offset, value: Int64(value)))
    }

    /// A fragment another engine of a `--workers` run has as its packet (worker 0: `workerShare`): this engine's clock
    /// moves to it (with the sweep a single engine would run there, when `sweep`) and it is reassembled here too, so
    /// that the engine whose flow the datagram is processes it at this frame. Nothing is counted or reported.
    public func processFragmentCopy(_ bytes: ByteView, linkType: Int32, time: PacketTime, frame number: UInt64, sweep: Bool) {
        advance(frame: number, time: time, sweep: sweep)
        do { _ = try PacketDecoder.decode(bytes, linkType: linkType) } catch { _ = takeFragment(bytes, linkType: linkType, time: time, error: error) }
    }

    /// Most packets of a long-lived ICS connection in one pass: Ethernet II (untagged; with one 802.1Q tag, a SPAN
    /// port copying a trunk keeps the tags, or a Linux cooked capture's, `tcpdump -i any`: through
    /// `processUncommon`), IPv4 without options and not a fragment, TCP with ACK and neither SYN nor RST, the whole
    /// IP packet captured, of a live flow whose streams hold nothing out of order, carrying the next bytes in
    /// sequence (or none). For such a packet this does exactly what the general path below would (counters, LRU,
    /// reassembly, delivery) and returns true; for anything else it changes nothing and returns false. The general
    /// path builds a `PacketView`, a key and a stream event, and costs several times more. `bytes` is read as an
    /// untagged Ethernet frame (`PacketDecoder.uncommonFrame`), its type at `typeAt`, keyed with `vlan`. (Urgent
    /// data goes the general path too, which reports it: the same mask, no instruction more.)
    @inline(always)
    private func processEstablishedTCPv4(_ bytes: ByteView, wireLength: Int, time: PacketTime, typeAt: Int, vlan: UInt16) -> Bool {
        let n = bytes.count
        guard n >= 54, let p = bytes.raw.baseAddress else { return false }
        @inline(__always) func u8(_ o: Int) -> UInt8 { p.load(fromByteOffset: o, as: UInt8.self) }
        @inline(__always) func u16(_ o: Int) -> UInt16 { UInt16(bigEndian: p.loadUnaligned(fromByteOffset: o, as: UInt16.self)) }
        @inline(__always) func u32(_ o: Int) -> UInt32 { UInt32(bigEndian: p.loadUnaligned(fromByteOffset: o, as: UInt32.self)) }
        guard u16(typeAt) == 0x0800 else { return false }
        guard u8(14) == 0x45, u16(20) & 0x3FFF == 0, u8(23) == 6 else { return false }
        let ipEnd = 14 + Int(u16(16))
        let flags = u8(47)
        let payloadOffset = 34 + Int(u8(46) >> 4) * 4
        guard flags & (PacketView.syn | PacketView.rst | PacketView.urg | PacketView.ack) == PacketView.ack,
              payloadOffset >= 54, payloadOffset <= ipEnd, ipEnd <= n else { return false }
        let source = u32(26), destination = u32(30), sourcePort = u16(34), destinationPort = u16(36)
        // The key's canonical order (as `FlowKey(v4Source:...)` puts it), compared field by field with the slot's key.
        let sentByLow = source < destination || (source == destination && sourcePort <= destinationPort)
        let mapped: UInt64 = 0xFFFF_0000_0000   // IPAddress(v4:)'s low word
        let lowIP = mapped | UInt64(sentByLow ? source : destination), highIP = mapped | UInt64(sentByLow ? destination : source)
        let lowPort = sentByLow ? sourcePort : destinationPort, highPort = sentByLow ? destinationPort : sourcePort
        // The prefetch pipeline usually found this flow's slot already: one key comparison instead of a hash and a probe.
        var slot = flows.candidate(at: packetsProcessed)
        if slot < 0 || !Engine.isTCPv4Key(UnsafeRawPointer(flows.slots + Int(slot)), lowIP: lowIP, highIP: highIP, lowPort: lowPort,
                                          highPort: highPort, vlan: vlan) {
            slot = findTCPv4(source: source, destination: destination, sourcePort: sourcePort, destinationPort: destinationPort, vlan: vlan)
            guard slot >= 0 else { return false }
        }
        let state = flows.slots + Int(slot)
        let side: FlowSide = sentByLow == state.pointee.initiatorIsLow ? .initiator : .responder
        // The streams as `FlowState.streamSummary` has them (their own lines are not read here). The peer's held
        // segments would be released by this acknowledgement: the general path handles that.
        // With bytes, this side's stream must also be synchronised, hold nothing, and expect exactly these bytes.
        let length = ipEnd - payloadOffset
        let shift = UInt32(side.rawValue) &* 2
        let peerQuiet: UInt32 = 1 << (2 &- shift)
        let needed = length > 0 ? peerQuiet | 3 << shift : peerQuiet
        guard UInt32(state.pointee.streamSummary) & needed == needed else { return false }
        // Checksums, where this side's are verified or taken as offloaded (`ChecksumSide`): a wrong one where they are
        // verified, a right one where they were taken as offloaded, and an undecided side, go to the general path
        // (a bare acknowledgement too: the general path drops and reports it, and the two paths must agree).
        let checksums = UInt32(state.pointee.checksumSides) >> shift & 3
        if checksums != UInt32(ChecksumSide.unchecked.rawValue) && !Engine.checksumsLetThrough(p, ipEnd: ipEnd, side: checksums) {
            return false
        }
        if length > 0 {
            let next = (UnsafeMutableRawPointer(state) + inOrderOffset).assumingMemoryBound(to: UInt32.self) + Int(side.rawValue)
            let sequence = u32(38)
            guard sequence == next.pointee else { return false }
            next.pointee = sequence &+ UInt32(truncatingIfNeeded: length)
        }
        // What a FIN needs after the delivery, in the one register `flags` took before (the end of its bytes, above a
        // set bit): with the sequence number and length kept apart, every packet saved one more register.
        let finEnd: UInt64 = flags & PacketView.fin != 0 ? 1 << 32 | UInt64(u32(38) &+ UInt32(truncatingIfNeeded: length)) : 0
        let ipBytes = UInt64(wireLength)
        if side == .initiator {
            state.pointee.packets.0 &+= 1; state.pointee.bytes.0 &+= ipBytes
        } else {
            state.pointee.packets.1 &+= 1; state.pointee.bytes.1 &+= ipBytes
        }
        Engine.noteTime(time, of: state, slot, in: flows)
        if length > 0 {
            deliverData(slot, side: side, bytes: ByteView(UnsafeRawBufferPointer(start: p + payloadOffset, count: length)))
        }
        // A FIN after its bytes, as `tcpSegment` takes it (the streams do not count it).
        if finEnd != 0 { noteFIN(slot, side: side, endingAt: UInt32(truncatingIfNeeded: finEnd)) }
        return true
    }

    /// Whether the one-pass path may take the IPv4 TCP packet at `p` (its IP header at 14, its end at `ipEnd`) whose
    /// side's checksums are as `checksums` says (`ChecksumSide`, not `unchecked`): right where they are verified, not
    /// right (nor undecided) where they were taken as offloaded. One call from the one-pass path, with the byte sums
    /// inlined into it (the checks written out in the path itself measured the same).
    @inline(__always)
    private static func checksumsLetThrough(_ p: UnsafeRawPointer, ipEnd: Int, side checksums: UInt32) -> Bool {
        if checksums == UInt32(ChecksumSide.verified.rawValue) { return InternetChecksum.tcpIPv4IsRight(p, ipAt: 14, ipEnd: ipEnd) }
        return checksums != UInt32(ChecksumSide.undecided.rawValue) && InternetChecksum.tcpIPv4Verdict(p, ipAt: 14, ipEnd: ipEnd) != .valid
    }

    /// `processEstablishedTCPv4` for a tagged or cooked frame (`PacketDecoder.uncommonFrame`); false for any other.
    @inline(__always)
    private func processEstablishedUncommonTCPv4(_ bytes: ByteView, linkType: Int32, wireLength: Int, time: PacketTime) -> Bool {
        guard let u = PacketDecoder.uncommonFrame(bytes, linkType: linkType) else { return false }
        return processEstablishedTCPv4(u.frame, wireLength: wireLength, time: time, typeAt: u.typeAt, vlan: u.vlan & flows.hashKey.vlanMask)
    }

    /// `processEstablishedTCPv4` for the frame a remote-SPAN or overlay packet carries
    /// (`PacketDecoder.commonMirroredFrame`), untagged or with one tag; false for any other packet. Out of line, behind
    /// `PacketDecoder.mayBeRemoteSPAN`: as a call for every packet the general path takes, its frame cost ~73
    /// instructions each.
    @inline(never)
    private func processEstablishedMirroredTCPv4(_ bytes: ByteView, wireLength: Int, time: PacketTime) -> Bool {
        guard let start = PacketDecoder.commonMirroredFrame(bytes) else { return false }
        let frame = bytes.suffix(uncheckedFrom: start)
        return processEstablishedTCPv4(frame, wireLength: wireLength, time: time, typeAt: 12, vlan: 0)
            || processEstablishedUncommonTCPv4(frame, linkType: PacketDecoder.ethernet, wireLength: wireLength, time: time)
    }

    /// Notes a packet of flow `slot` (its state at `state`) at `time`: a move to the front of the recency list on its
    /// first packet in a later second, and the flow's latest and earliest packet times. A packet a little back in time
    /// (reordered between capture queues, up to `PacketTime.clockStepSeconds`) leaves `lastSeen` at the latest time,
    /// and an earlier packet than the first moves `firstSeen`: a record's duration is never negative. (`lastSeen` was
    /// the last packet's time, and a flow whose last packet came before its first got a negative `event.duration`.)
    @inline(__always)
    private static func noteTime(_ time: PacketTime, of state: UnsafeMutablePointer<FlowState>, _ slot: Int32, in flows: FlowTable) {
        let last = state.pointee.lastSeen
        flows.touchLater(slot, if: time.seconds > last.seconds)
        if _fastPath(time >= last) { state.pointee.lastSeen = time } else if time < state.pointee.firstSeen { state.pointee.firstSeen = time }
    }

    /// Whether the key at `key` (a `FlowKey` in memory) is the IPv4 TCP key with these canonical fields.
    /// Compared as five 64-bit words with one branch, not field by field (eight branches, and the fields' values
    /// spilled around them): the layout is checked by `FlowKeyTests.layoutIsWhatTheEngineComparesAsWords`.
    @inline(__always)
    private static func isTCPv4Key(_ key: UnsafeRawPointer, lowIP: UInt64, highIP: UInt64, lowPort: UInt16, highPort: UInt16,
                                   vlan: UInt16) -> Bool {
        // lowIP (high 0, low 8), highIP (high 16, low 24), then lowPort 32, highPort 34, ipProtocol 36, a padding
        // byte (masked out), vlan 38.
        let tail = UInt64(lowPort) | UInt64(highPort) << 16 | 6 << 32 | UInt64(vlan) << 48
        let difference = (key.load(as: UInt64.self) | key.load(fromByteOffset: 16, as: UInt64.self))
            | (key.load(fromByteOffset: 8, as: UInt64.self) ^ lowIP) | (key.load(fromByteOffset: 24, as: UInt64.self) ^ highIP)
            | ((key.load(fromByteOffset: 32, as: UInt64.self) & 0xFFFF_00FF_FFFF_FFFF) ^ tail)
        return difference == 0
    }

    /// The one-pass path's lookup when the prefetch pipeline had no slot for the packet: the flow's slot, or -1.
    @inline(never)
    private func findTCPv4(source: UInt32, destination: UInt32, sourcePort: UInt16, destinationPort: UInt16, vlan: UInt16) -> Int32 {
        if packetsProcessed >= hintsCaughtUpTo && flows.slotCount >= 4096 { catchUpHints() }   // (its guard's cheap half here)
        let key = FlowKey(v4Source: source, destination: destination, sourcePort: sourcePort, destinationPort: destinationPort,
                          ipProtocol: 6, vlan: vlan)
        return flows.find(key, hash: key.fastHash(flows.hashKey)) ?? -1
    }

    /// Moves the engine's clock without a packet: the current frame and time become `frame` and `time`, and the
    /// once-per-second sweep (idle timeouts, detection ticks) runs if due and `sweep` is true. A reader feeding
    /// several engines sends this to the engines that did not get the packet at which a single engine would
    /// sweep, so flows end at the same frame; a live capture with no traffic uses it to let time pass.
    public func advance(frame number: UInt64, time: PacketTime, sweep: Bool = true) {
        frame = number
        if time.seconds < now.seconds { clockWentBack(to: time) }
        now = time
        if sweep && time.seconds >= nextSweep { self.sweep() }
    }

    /// Packet time is going back from `now` to `time`. Up to `PacketTime.clockStepSeconds` behind the latest second
    /// swept to, it is the same timeline (flows idle out a little later). Further back it is a discontinuity: on the
    /// old timeline no flow would idle out, and no sweep run, until packet time caught up again (hours, after a
    /// sensor's clock was set back), so every live flow ends here (`clockStep`, its record stamped with its own
    /// times), the step is logged as an anomaly, and sweeps follow the new time from this packet on. (Measured from
    /// the sweeps' second, which a `--workers` reader keeps too, so that every engine meets the step at one frame.)
    @inline(never)
    private func clockWentBack(to time: PacketTime) {
        flows.clockWentBack()
        guard PacketTime.stepsBack(second: time.seconds, nextSweep: nextSweep) else { return }
        let back = nextSweep &- 1 &- time.seconds
        statistics.clockSteps &+= 1
        now = time
        // Logged (an anomaly record and an alert) when it lands more than a step away from the last one logged: a
        // capture whose time alternates between two timelines steps back at every other packet, and each step still
        // ends the flows, but one alert a packet would flood the SIEM (counted in the summary all the same).
        if reportsForAll, lastLoggedStep.map({ abs(time.seconds &- $0) > PacketTime.clockStepSeconds }) ?? true {
            lastLoggedStep = time.seconds
            logPacketAnomaly(Anomaly(layer: "capture", kind: "time_went_back", value: back))
        }
        endAllFlows(activeAs: .clockStep)
        if fragments.pendingCount > 0 { forgetFragments() }
        observer?.clockStepped(to: time)
        nextSweep = time.seconds
    }

    private func createFlow(_ key: FlowKey, hash: UInt64, packet: PacketView) -> Int32 {
        if flows.isFull, let victim = flows.evictionCandidate {
            let closed = flows.slots[Int(victim)].isClosed
            endFlow(victim, reason: closed ? flows.slots[Int(victim)].closedEndReason : .evicted)
        }
        let senderIsLow = key.sentByLow(packet)
        var midstream = false
        var initiatorIsLow = senderIsLow
        if packet.transport == .tcp {
            let f = packet.tcpFlags & (PacketView.syn | PacketView.ack)
            if f == PacketView.syn { initiatorIsLow = senderIsLow }
            else if f == PacketView.syn | PacketView.ack { initiatorIsLow = !senderIsLow }
            else { midstream = true }
        }
        var state = FlowState(key: key, initiatorIsLow: initiatorIsLow, midstream: midstream,
                              firstSeen: now, lastSeen: now, firstFrame: frame)
        state.serial = statistics.flowsCreated &+ 1
        state.checksumSides = newFlowChecksumSides
        if noDissect { state.application = ApplicationKind.none.rawValue; state.checksumSides = FlowState.bothChecksumSides(.unchecked) }
        if packet.tcpFlags & (PacketView.syn | PacketView.ack) == PacketView.syn { state.initialSequence = packet.sequence }
        else if packet.tcpFlags & (PacketView.syn | PacketView.ack) == PacketView.syn | PacketView.ack { state.initialSequence = packet.acknowledgement &- 1 }
        let slot = flows.insert(consume state, hash: hash)   // moved: a copy retained its four buffers
        statistics.flowsCreated &+= 1
        // The Community ID is computed when something first writes it (`writeContext`, `endFlow`), not here.
        if let target = borrowedFlowEventTarget {
            prefetchObserverEntry(slot)
            target._withUnsafeGuaranteedRef { o in
                o.flowStarting(between: key.lowIP, and: key.highIP, flowSlot: slot)
                setSinkFlow(slot)
                o.flowStarted(sink.flow, frame: frame, time: now)
                observerTable = o.flowStateTable()
            }
        }
        return slot
    }

    // MARK: - TCP

    /// Whether a SYN or SYN-ACK on flow `slot` begins another connection on its ports (the old one then ends). A SYN
    /// with another initial sequence number is port reuse (or a restarted peer); the same number again is only a
    /// retransmitted SYN. A SYN-ACK does so only once the flow has closed (a FIN each way, or a RST) and when it
    /// answers another initial number than the flow's: the next connection, whose SYN the capture missed. In an open
    /// connection a SYN-ACK is a retransmission or, from ahead, a jump the stream refuses (`TCPStream.synJump`).
    @inline(__always)
    private func startsAnotherConnection(_ slot: Int32, packet: PacketView) -> Bool {
        let state = flows.slots + Int(slot)
        if packet.tcpFlags & PacketView.ack == 0 {
            return state.pointee.midstream || state.pointee.initialSequence != packet.sequence
        }
        return state.pointee.isClosed && packet.acknowledgement &- 1 != state.pointee.initialSequence
    }

    private func tcpSegment(_ slot: Int32, side: FlowSide, packet: PacketView, bytes: ByteView, payload: ByteView) {
        let flags = packet.tcpFlags
        let limits = configuration.streamLimits
        takeBackInOrder(slot)
        // A SYN from ahead of a stream under way moves nothing (not even what its acknowledgement would give up).
        // Urgent data is reported (one test for both: ICS connections see neither).
        if flags & (PacketView.syn | PacketView.urg) != 0 {
            if flags & PacketView.urg != 0 { reportUrgentData(slot, side: side, packet: packet, bytes: bytes) }
            let jump = flags & PacketView.syn != 0 ? streamPointer(slot, side).pointee.synJump(at: packet.sequence) : 0
            // Reported with how many sequence numbers taking it would have skipped: a way to blind a monitor to one
            // side's next bytes (taken for retransmissions) that endpoints do not follow.
            if jump > 0 { reportTCPAnomaly("syn_sequence_jump", slot, side: side, value: jump, frame: frame, time: now); return }
        }
        // Move the stream out of the table while it delivers (exclusive access; no copy of its buffers).
        // The peer bytes this packet acknowledges were sent before it: release them first, so that a request
        // held behind a hole is dissected before the answer this packet carries.
        // The streams are worked on in place in the flow's slot (a raw block: no copy, no retain/release of the
        // held-segment buffers); slots never move.
        if flags & PacketView.ack != 0 {
            streamPointer(slot, side.opposite).pointee.peerAcknowledged(packet.acknowledgement) { event in
                self.deliver(slot, side: side.opposite, event: event)
            }
        }
        streamPointer(slot, side).pointee.segment(sequence: packet.sequence, syn: flags & PacketView.syn != 0, payload: payload,
                       wireLength: packet.wirePayloadLength, limits: limits, frame: frame, time: now) { event in
            self.deliver(slot, side: side, event: event)
        }
        summariseStreams(slot)
        // A flow moves to the closed list when it closes (it stays there: once is enough, and each move asked of the
        // table costs it a look at the flow's list).
        if flags & PacketView.rst != 0 {
            let wasClosed = flows.slots[Int(slot)].isClosed
            flows.slots[Int(slot)].reset = true   // after FINs too: the flow then ends as `rst`
            if !wasClosed { flows.markClosed(slot) }
        }
        if flags & PacketView.fin != 0 {
            noteFIN(slot, side: side, endingAt: packet.sequence &+ UInt32(truncatingIfNeeded: packet.wirePayloadLength))
        }
    }

    /// Ends flow `old` for the connection a SYN or SYN-ACK begins on its ports (`startsAnotherConnection`) and returns
    /// the new flow's slot. A SYN that ends a connection still open, whose handshake was seen, is reported on the new
    /// flow (`tcp`/`syn_inside_connection`): a peer that restarted and lost the connection, a close the capture missed,
    /// or a SYN forged to end the monitor's view of a connection the endpoints go on with. (A flow picked up midstream
    /// was never known to be open: its SYN is the usual start of the next connection, not reported.)
    @inline(never)
    private func startAnotherConnection(after old: Int32, key: FlowKey, packet: PacketView) -> Int32 {
        // (Fields read in place: a copy of the state retained its buffers.)
        let wasOpen = !flows.slots[Int(old)].isClosed
        let reported = wasOpen && !flows.slots[Int(old)].midstream
        endFlow(old, reason: wasOpen ? .portReuse : flows.slots[Int(old)].closedEndReason)
        let slot = createFlow(key, hash: key.fastHash(flows.hashKey), packet: packet)
        if reported {
            let side: FlowSide = key.sentByLow(packet) == flows.slots[Int(slot)].initiatorIsLow ? .initiator : .responder
            reportTCPAnomaly("syn_inside_connection", slot, side: side, value: nil, frame: frame, time: now)
        }
        return slot
    }

    /// Whether the TCP segment or UDP datagram `packet` (from `bytes`), `side`'s on flow `slot`, is dropped for a wrong
    /// checksum, as its receiver drops it: counted (`EngineStatistics.badChecksums`) and reported (`tcp`/`bad_checksum`,
    /// `udp`/`bad_checksum`, its value the payload bytes not taken). Where the side is undecided, this packet decides
    /// (`ChecksumValidation.auto`): a wrong checksum on a side's first verifiable packet is a sender offloading
    /// checksums, not an error.
    @inline(never)
    private func checksumDrops(_ slot: Int32, side: FlowSide, packet: PacketView, bytes: ByteView, captured: Bool) -> Bool {
        let state = flows.slots + Int(slot)
        let shift = UInt8(side.rawValue) &* 2
        let current = state.pointee.checksumSides >> shift & 3
        guard current != ChecksumSide.unchecked.rawValue, packet.transport == .tcp || packet.transport == .udp else { return false }
        @inline(__always) func become(_ new: ChecksumSide) {
            state.pointee.checksumSides = state.pointee.checksumSides & ~(3 << shift) | new.rawValue << shift
        }
        // A verified side needs only right or wrong (two folds fewer).
        let verified = current == ChecksumSide.verified.rawValue
        var verdict = InternetChecksum.verdict(bytes, packet: packet, ipHeader: !reassembling, ambiguity: !verified, captured: captured)
        // A datagram its sender fragmented had its checksum computed in software, offloading or not (Linux resolves a
        // partial checksum before it fragments, and a card cannot sum across fragments): a wrong one is wrong on any
        // side, and a right one decides nothing.
        if verdict == .invalid && (verified || reassembling) {
            statistics.badChecksums &+= 1
            reportTCPAnomaly("bad_checksum", slot, side: side, value: packet.wirePayloadLength, frame: frame, time: now,
                             layer: packet.transport == .tcp ? "tcp" : "udp")
            return true
        }
        if verified { return false }
        if reassembling && verdict == .valid { verdict = .ambiguous }
        if verdict == .valid {
            // Undecided: verified from now on. Offloaded: a right checksum that an offloading sender could not have
            // left; the side was not offloaded after all (a sender's first packet forged with a wrong checksum must
            // not switch its checks off).
            become(.verified)
        } else if verdict == .invalid && current == ChecksumSide.undecided.rawValue {
            become(.offloaded)
            statistics.checksumOffloadedSides &+= 1
        }
        return false   // unverifiable and ambiguous decide nothing; an offloaded side's wrong checksums are expected
    }

    /// `checksumDrops` for the packet that created flow `slot` under `--checksums auto`: it decides its side (a wrong
    /// checksum is a sender offloading checksums), and drops only a reassembled datagram's wrong one.
    @inline(__always)
    private func firstPacketChecksumDrops(_ slot: Int32, side: FlowSide, packet: PacketView, bytes: ByteView, captured: Bool) -> Bool {
        guard newFlowChecksumSides == FlowState.bothChecksumSides(.undecided) else { return false }
        return checksumDrops(slot, side: side, packet: packet, bytes: bytes, captured: captured)
    }

    /// Under `--checksums on`, whether the packet that would create a flow has a wrong checksum: it then creates none
    /// (counted, and reported without a flow). False under `auto` and `off`.
    @inline(never)
    private func checksumRefusesNewFlow(_ packet: PacketView, bytes: ByteView, captured: Bool) -> Bool {
        guard newFlowChecksumSides == FlowState.bothChecksumSides(.verified), packet.transport == .tcp || packet.transport == .udp,
              InternetChecksum.verdict(bytes, packet: packet, ipHeader: !reassembling, captured: captured) == .invalid else { return false }
        statistics.badChecksums &+= 1
        logPacketAnomaly(Anomaly(layer: packet.transport == .tcp ? "tcp" : "udp", kind: "bad_checksum", offset: 0,
                                 value: Int64(packet.wirePayloadLength)))
        return true
    }

    /// A segment with urgent data (URG) on a flow of an ICS port or protocol: reported (its value the urgent pointer,
    /// the offset from the segment's sequence number of the byte after the urgent data), and its bytes delivered in
    /// line, as tshark shows them. Stacks differ in what they make of it (Linux takes the urgent byte out of the
    /// stream unless the socket asks for it in line; others leave it): a byte a monitor keeps and an endpoint drops
    /// shifts the monitor's framing. No ICS protocol uses urgent data. (Other flows, where
    /// Telnet and FTP may, are not dissected.)
    @inline(never)
    private func reportUrgentData(_ slot: Int32, side: FlowSide, packet: PacketView, bytes: ByteView) {
        guard flows.slots[Int(slot)].application != ApplicationKind.none.rawValue else { return }
        let pointer = Int(bytes.u16be(Int(packet.transportOffset) + 18))
        reportTCPAnomaly("urgent_data", slot, side: side, value: pointer, frame: frame, time: now)
    }

    /// A FIN from `side` whose segment's bytes end at sequence number `end`, after they were taken (the streams and
    /// `streamSummary` as this packet left them): notes it, in sequence or not, and moves a flow it closes to the
    /// closed list. A flow closed by a FIN each way, each in sequence (its side's next byte when it came), has all its
    /// bytes (a segment held past a FIN is no peer's): its dissection ends now (`endApplicationAtClose`).
    @inline(never)
    private func noteFIN(_ slot: Int32, side: FlowSide, endingAt end: UInt32) {
        let state = flows.slots + Int(slot)
        let wasClosed = state.pointee.isClosed
        let initiator = side == .initiator
        // The side's bits: its FIN (`finMask`), its stream synchronised and holding nothing (`streamSummary`).
        let seen: UInt8 = initiator ? 1 : 2, synchronisedBit: UInt8 = initiator ? 0b0010 : 0b1000, quietBit: UInt8 = initiator ? 0b0001 : 0b0100
        let next = initiator ? state.pointee.inOrder.0 : state.pointee.inOrder.1
        let inSequence = state.pointee.streamSummary & synchronisedBit != 0 && next == end
        state.pointee.finMask |= inSequence ? seen | seen << 2 : seen
        if inSequence {
            // The side's stream ends there: what it held past the FIN, and any byte that follows, is `.pastFIN`.
            // Its summary is then no longer "synchronised" (`takesNextBytes`), so that its next bytes take the general
            // path; its next number, which the one-pass path kept in `inOrder`, is the stream's own again.
            let stream = streamPointer(slot, side)
            stream.pointee.nextSequence = next
            stream.pointee.endAtFIN { event in self.deliver(slot, side: side, event: event) }
            state.pointee.streamSummary = state.pointee.streamSummary & ~synchronisedBit | quietBit   // holds nothing now
        } else {
            noteFINOutOfSequence(slot, side: side, endingAt: end)
        }
        if !wasClosed && state.pointee.isClosed { flows.markClosed(slot) }
        if state.pointee.finMask == 0b1111 && !state.pointee.reset { endApplicationAtClose(slot) }
    }

    /// A FIN out of sequence (`noteFIN`): one past a hole closes its side's stream (`TCPStream.endAhead`), which ends
    /// when its bytes reach the FIN. Until then this side's bytes are the stream's to take, not the one-pass path's
    /// (which would take bytes at the FIN's number as the next ones), and the peer's acknowledgements go to the stream
    /// too (the FIN's gives the hole up): the side is neither synchronised nor quiet in the summary. (Its next number is
    /// the stream's own again, first: a FIN without bytes comes by the one-pass path, which kept it in `inOrder`.) Out
    /// of line: in `noteFIN` it cost every FIN in sequence ~13 instructions.
    @inline(never)
    private func noteFINOutOfSequence(_ slot: Int32, side: FlowSide, endingAt end: UInt32) {
        let state = flows.slots + Int(slot)
        let initiator = side == .initiator
        let synchronisedBit: UInt8 = initiator ? 0b0010 : 0b1000, quietBit: UInt8 = initiator ? 0b0001 : 0b0100
        let synchronised = state.pointee.streamSummary & synchronisedBit != 0
        let stream = streamPointer(slot, side)
        let next = synchronised ? (initiator ? state.pointee.inOrder.0 : state.pointee.inOrder.1) : stream.pointee.nextSequence
        // (Tested first on what is at hand: most FINs out of sequence are behind, retransmitted.)
        guard Int32(bitPattern: end &- next) > 0 else { return }
        if synchronised { stream.pointee.nextSequence = next }
        if stream.pointee.endAhead(at: end) { state.pointee.streamSummary &= ~(synchronisedBit | quietBit) }
    }

    /// Ends the dissection of a flow that closed with all its bytes (`noteFIN`), while the flow lingers for
    /// stragglers: what its dissector holds unfinished (a message cut by the close, requests never answered) is
    /// reported at the closing packet, with its frame and time, not on whatever packet ends the linger up to
    /// `FlowTableLimits.closedLinger` later, and its state released; a state with nothing to report is released with
    /// the flow. No byte can follow a FIN in sequence, so a straggler (a retransmission, the last ACK) brings the
    /// dissector nothing it would have taken (bytes past the FIN: `reportBytesPastFIN`).
    private func endApplicationAtClose(_ slot: Int32) {
        let application = flows.slots[Int(slot)].application
        guard application != ApplicationKind.none.rawValue, application & ApplicationKind.endedFlag == 0 else { return }
        // Most flows close with nothing to report: marked ended, their state released with the flow (at the end of
        // input, with every other: `endAllFlowsAtOnce`). Ending each in full here cost the 2.5M plant 2 % more
        // instructions (its context, the dissector's `finish` and release, ~600 a flow).
        let app = Int(flows.slots[Int(slot)].applicationSlot), records = sink.transactionRecordsEnabled
        let finishesQuietly = switch ApplicationKind(rawValue: application) {
        case .modbus: modbus.states[app].finishesQuietly(transactionRecords: records)
        case .dnp3: dnp3.states[app].finishesQuietly(transactionRecords: records)
        case .s7comm: s7comm.states[app].finishesQuietly(transactionRecords: records)
        default: true   // undecided: only its carry to report
        }
        if flows.slots[Int(slot)].holdsCarry || !finishesQuietly {
            endApplication(slot, reason: .fin)
            for side in [FlowSide.initiator, .responder] { carryPointer(slot, side).pointee = [] }   // reported above
            flows.slots[Int(slot)].applicationSlot = -1
        }
        flows.slots[Int(slot)].application = application == ApplicationKind.undecided.rawValue
            ? ApplicationKind.none.rawValue : application | ApplicationKind.endedFlag
    }

    /// Writes the next sequence numbers the one-pass path kept in `FlowState.inOrder` back into the streams, before
    /// they are used.
    private func takeBackInOrder(_ slot: Int32) {
        let state = flows.slots + Int(slot)
        let summary = state.pointee.streamSummary
        if summary & 0b0010 != 0 { state.pointee.initiatorStream.nextSequence = state.pointee.inOrder.0 }
        if summary & 0b1000 != 0 { state.pointee.responderStream.nextSequence = state.pointee.inOrder.1 }
    }

    /// Sets `FlowState.streamSummary` and `inOrder` from the streams, after they were used.
    private func summariseStreams(_ slot: Int32) {
        let state = flows.slots + Int(slot)
        var summary: UInt8 = 0
        if state.pointee.initiatorStream.quiet { summary |= 0b0001 }
        // An ended stream (`TCPStream.endAtFIN`) is not "synchronised" here: the one-pass path would deliver its bytes.
        if state.pointee.initiatorStream.takesNextBytes { summary |= 0b0010; state.pointee.inOrder.0 = state.pointee.initiatorStream.nextSequence }
        if state.pointee.responderStream.quiet { summary |= 0b0100 }
        if state.pointee.responderStream.takesNextBytes { summary |= 0b1000; state.pointee.inOrder.1 = state.pointee.responderStream.nextSequence }
        state.pointee.streamSummary = summary
    }

    /// One side's stream in place in the flow's slot.
    @inline(__always) private func streamPointer(_ slot: Int32, _ side: FlowSide) -> UnsafeMutablePointer<TCPStream> {
        let raw = UnsafeMutableRawPointer(flows.slots + Int(slot))
        return (raw + (side == .initiator ? initiatorStreamOffset : responderStreamOffset)).assumingMemoryBound(to: TCPStream.self)
    }

    /// One side's carry (unconsumed stream bytes) in place in the flow's slot.
    @inline(__always) private func carryPointer(_ slot: Int32, _ side: FlowSide) -> UnsafeMutablePointer<[UInt8]> {
        let raw = UnsafeMutableRawPointer(flows.slots + Int(slot))
        return (raw + (side == .initiator ? initiatorCarryOffset : responderCarryOffset)).assumingMemoryBound(to: [UInt8].self)
    }

    private func takeStream(_ slot: Int32, _ side: FlowSide) -> TCPStream {
        var s = TCPStream()
        if side == .initiator { swap(&s, &flows.slots[Int(slot)].initiatorStream) } else { swap(&s, &flows.slots[Int(slot)].responderStream) }
        return s
    }

    private func putStream(_ slot: Int32, _ side: FlowSide, _ stream: TCPStream) {
        if side == .initiator { flows.slots[Int(slot)].initiatorStream = stream } else { flows.slots[Int(slot)].responderStream = stream }
    }

    // MARK: - Dissection

    /// Hands stream bytes (or a gap) of one side to the flow's dissector, identifying the protocol first.
    private func deliver(_ slot: Int32, side: FlowSide, event: StreamEvent) {
        switch event {
        case .gap(let n): statistics.streamGaps &+= 1; statistics.streamGapBytes &+= UInt64(n)
        // Bytes past a FIN in sequence (`TCPStream.endAtFIN`), whatever the flow's dissection: reported, never delivered.
        case .pastFIN(let n, let f, let t): reportBytesPastFIN(slot, side: side, count: n, frame: f, time: t); return
        case .overlapConflict(let n, let f, let t):
            reportTCPAnomaly("segment_overlap_conflict", slot, side: side, value: n, frame: f, time: t); return
        case .data, .heldData: break
        }
        // No kind: the flow's dissection ended at its close (`ApplicationKind.endedFlag`).
        guard let kind = ApplicationKind(rawValue: flows.slots[Int(slot)].application) else {
            switch event {
            case .data(let b): reportBytesPastFIN(slot, side: side, count: b.count, frame: frame, time: now)
            case .heldData(let b, let f, let t): reportBytesPastFIN(slot, side: side, count: b.count, frame: f, time: t)
            case .gap, .pastFIN, .overlapConflict: break
            }
            return
        }
        switch kind {
        case .none: return
        case .undecided:
            let probeBytes: ByteView
            switch event {
            case .data(let b): probeBytes = b
            case .heldData(let b, _, _): probeBytes = b
            case .gap:
                // A hole before the protocol is known: forget what was stashed for probing.
                carryPointer(slot, side).pointee.removeAll(keepingCapacity: true)
                return
            case .pastFIN, .overlapConflict: return   // reported above
            }
            identify(slot, side: side, bytes: probeBytes)
            // Identified, and the dissector took all the stashed probe bytes: drop the stash's buffer. An empty carry
            // is then the shared empty array, so the `isEmpty` test of every later delivery reads no heap block of
            // this flow's (with the buffer kept, that test was a cache miss per packet: ~40 ns of a Modbus packet).
            // (An empty carry without a buffer is the shared empty array already: nothing to drop, release or retain.)
            if flows.slots[Int(slot)].application != ApplicationKind.undecided.rawValue && carryPointer(slot, side).pointee.isEmpty
                && carryPointer(slot, side).pointee.capacity != 0 {
                carryPointer(slot, side).pointee = []
            }
        case .modbus: deliver(modbus, slot: slot, side: side, event: event)
        case .dnp3: deliver(dnp3, slot: slot, side: side, event: event)
        case .s7comm: deliver(s7comm, slot: slot, side: side, event: event)
        }
    }

    private func deliver<D: AppDissector>(_ pool: DissectorPool<D>, slot: Int32, side: FlowSide, event: StreamEvent) {
        switch event {
        case .gap(let length):
            let app = Int(flows.slots[Int(slot)].applicationSlot)
            setSinkFlow(slot)
            sink.frame = frame; sink.time = now
            carryPointer(slot, side).pointee.removeAll(keepingCapacity: true)
            pool.states[app].gap(side: side, length: length, sink: sink)
            drainSink()
        case .data(let bytes): consume(pool, slot: slot, side: side, bytes: bytes, frame: frame, time: now)
        // Bytes held behind a hole that was given up are reported on the packet that carried them.
        case .heldData(let bytes, let f, let t): consume(pool, slot: slot, side: side, bytes: bytes, frame: f, time: t)
        case .pastFIN, .overlapConflict: return   // reported by `deliver(_:side:event:)`
        }
    }

    /// In-order bytes of an identified flow (the established-TCP path's way in, with no `StreamEvent`).
    @inline(always)
    private func deliverData(_ slot: Int32, side: FlowSide, bytes: ByteView) {
        // On the raw byte: `ApplicationKind(rawValue:)` was left a call (~10 instructions a delivery with the reloads
        // around it) once the delivery was inlined here. Any other byte is an ended kind (`ApplicationKind.endedFlag`).
        switch flows.slots[Int(slot)].application {
        case ApplicationKind.modbus.rawValue: consume(modbus, slot: slot, side: side, bytes: bytes, frame: frame, time: now)
        case ApplicationKind.dnp3.rawValue: consume(dnp3, slot: slot, side: side, bytes: bytes, frame: frame, time: now)
        case ApplicationKind.s7comm.rawValue: consume(s7comm, slot: slot, side: side, bytes: bytes, frame: frame, time: now)
        case ApplicationKind.undecided.rawValue: deliver(slot, side: side, event: .data(bytes))   // identification first
        case ApplicationKind.none.rawValue: return
        default: reportBytesPastFIN(slot, side: side, count: bytes.count, frame: frame, time: now)   // ended at its close
        }
    }

    /// Bytes of a flow whose dissection ended at its close (`endApplicationAtClose`): past a FIN in sequence, which
    /// no stack sends and an endpoint drops. Not dissected; reported (a way to hide bytes from a monitor that would
    /// stop reading at the FIN while a careless endpoint took them), with the packet that carried them. (Out of line:
    /// inlined into `deliverData`, its arguments' setup cost the one-pass path ~0.5 instructions a packet.)
    @inline(never)
    private func reportBytesPastFIN(_ slot: Int32, side: FlowSide, count: Int, frame: UInt64, time: PacketTime) {
        reportTCPAnomaly("data_after_fin", slot, side: side, value: count, frame: frame, time: time)
    }

    /// One `tcp` anomaly (or `layer`'s) of flow `slot`, sent by `side`, stamped with the packet that carried it (`frame`,
    /// `time`): bytes past a FIN, a SYN jump or inside a connection, conflicting copies (`StreamEvent.overlapConflict`:
    /// the value, the bytes that differ), urgent data, a wrong checksum.
    @inline(never)
    private func reportTCPAnomaly(_ kind: StaticString, _ slot: Int32, side: FlowSide, value: Int?, frame: UInt64, time: PacketTime,
                                  layer: StaticString = "tcp") {
        setSinkFlow(slot); sink.frame = frame; sink.time = time
        sink.emit(Anomaly(layer: layer, kind: kind, offset: 0, value: value.map(Int64.init)), sender: side)
        drainSink()
    }

    /// Hands stream bytes to the flow's dissector (after what it left unconsumed before), keeps what it does not
    /// consume for the next delivery, and drains what it found.
    ///
    /// The usual delivery (TCP, nothing carried over, taken whole) and its usual leftovers (nothing, or operations
    /// forwarded with the context built on demand) run here; everything else is an out-of-line call, so that this
    /// frame saves few registers and spills little around the dissector's call. Inlined into the established path
    /// (`deliverData`): the glue around a Modbus request was ~105 instructions as a call of its own with all of it
    /// here, ~45 now.
    @inline(__always)
    private func consume<D: AppDissector>(_ pool: DissectorPool<D>, slot: Int32, side: FlowSide, bytes: ByteView,
                                          frame: UInt64, time: PacketTime) {
        let flow = flows.slots + Int(slot)
        let app = Int(flow.pointee.applicationSlot)
        // The context as `setSinkFlow` builds it, kept with the dissector state. A dissector that reads it only at a
        // flow's first delivery (which follows `identify`, where it is set) gets it below, when something is drained.
        if (D.readsFlowContextAfterFirstDelivery || recordsEnabled) && sinkFlowSlot != slot {
            sink.flow = context(pool, app, slot).pointee; sinkFlowSlot = slot
        }
        sink.frame = frame; sink.time = time
        let carry = carryPointer(slot, side)   // in place: no swap, no retain
        if _fastPath(flow.pointee.key.ipProtocol != 17 && carry.pointee.isEmpty) {
            let used = pool.states[app].consume(bytes, side: side, sink: sink)
            if _slowPath(used != bytes.count) { keepUnconsumed(pool, app: app, side: side, carry: carry, bytes: bytes, used: used) }
        } else {
            consumeAfterCarry(pool, app: app, side: side, carry: carry, bytes: bytes, datagram: flow.pointee.key.ipProtocol == 17)
        }
        // Most deliveries leave nothing (a request waits for its response): no context copy and no call then. Operations
        // alone (a request) go to the forwarder with the context where the pool keeps it: copying it into the sink for
        // them was ~25 instructions a request. Anomalies are drained from the sink, with its context.
        if _slowPath(sink.anomalyCount > 0) {
            drainDeliveryWithAnomalies(slot)
        } else if sink.operationCount > 0 {
            if sinkFlowSlot != slot && contextsOnDemand {
                // The sink's context, built only if the forwarder asks (`materializeFlowContext`): most deliveries'
                // operations are passed over quietly, reading no context at all. The serial from the flow's state (a
                // line the packet's path has loaded), not from the context: the observer's quiet check reads only these two,
                // so the context's line stays unread.
                lazyContextSlot = slot
                sink.withFlowPointer { drainOperations(flow: $0, flowSerial: flow.pointee.serial, flowSlot: slot) }
                lazyContextSlot = -1
            } else {
                drainDeliveryOperations(pool, app: app, slot: slot)
            }
        }
    }

    /// `consume` when the dissector left bytes of a delivery that was not carried over: keeps them (all past
    /// `used`, clamped to the delivery) for the next delivery.
    @inline(never)
    private func keepUnconsumed<D: AppDissector>(_ pool: DissectorPool<D>, app: Int, side: FlowSide,
                                                 carry: UnsafeMutablePointer<[UInt8]>, bytes: ByteView, used: Int) {
        let used = min(max(used, 0), bytes.count)
        if used < bytes.count { carry.pointee.append(contentsOf: bytes.suffix(from: used).raw); dropCarryBeyondBound(pool, app: app, side: side, carry: carry) }
    }

    /// `consume` for a datagram (whole messages: nothing carries over to the next one, the carry stays empty), or for
    /// stream bytes behind what the dissector left unconsumed before (the carry is not empty).
    @inline(never)
    private func consumeAfterCarry<D: AppDissector>(_ pool: DissectorPool<D>, app: Int, side: FlowSide,
                                                    carry: UnsafeMutablePointer<[UInt8]>, bytes: ByteView, datagram: Bool) {
        if datagram {
            _ = pool.states[app].consume(bytes, side: side, sink: sink)
        } else {
            carry.pointee.append(contentsOf: bytes.raw)
            let used = carry.pointee.withUnsafeBytes { raw in
                min(max(pool.states[app].consume(ByteView(raw), side: side, sink: sink), 0), raw.count)
            }
            carry.pointee.removeFirst(used)
            dropCarryBeyondBound(pool, app: app, side: side, carry: carry)
        }
    }

    /// Checked only where the carry may have grown: a delivery the dissector takes whole (the usual one) leaves it empty.
    @inline(__always)
    private func dropCarryBeyondBound<D: AppDissector>(_ pool: DissectorPool<D>, app: Int, side: FlowSide,
                                                       carry: UnsafeMutablePointer<[UInt8]>) {
        guard carry.pointee.count > D.maximumPDUSize else { return }
        // The dissector cannot make progress within its own PDU bound: drop and resynchronise.
        statistics.carryOverflows &+= 1
        sink.emit(Anomaly(layer: "flow", kind: "reassembly_buffer_overflow", offset: 0, value: Int64(carry.pointee.count)), sender: side)
        pool.states[app].gap(side: side, length: carry.pointee.count, sink: sink)
        carry.pointee.removeAll(keepingCapacity: true)
    }

    /// `consume`'s drain when the delivery raised anomalies (rare): built in the sink, since building the pool's copy
    /// would write a page of contexts nothing else reads.
    @inline(never)
    private func drainDeliveryWithAnomalies(_ slot: Int32) {
        setSinkFlow(slot)
        drainSink()
    }

    /// `consume`'s drain of operations alone when the sink holds the flow's context, or contexts are not built on
    /// demand (the pool's copy is then handed on).
    @inline(never)
    private func drainDeliveryOperations<D: AppDissector>(_ pool: DissectorPool<D>, app: Int, slot: Int32) {
        if sinkFlowSlot == slot {
            drainSink()
        } else {
            drainOperations(flow: context(pool, app, slot), flowSerial: flows.slots[Int(slot)].serial, flowSlot: slot)
        }
    }

    private func identify(_ slot: Int32, side: FlowSide, bytes: ByteView) {
        // What the end of identification reads, loading while the dissectors probe: the flow's per-flow lines (its
        // context, `setSinkFlow`) and the observer's entry (`flowIdentified`). With 100,000 flows each was a miss.
        prefetchFlowEndLines(slot)
        // The side's carry in place (moved out and back, its buffer was retained and released per flow).
        let carry = carryPointer(slot, side)
        let transport: Transport = flows.slots[Int(slot)].key.ipProtocol == 6 ? .tcp : .udp
        let isUDP = transport == .udp
        // A side's first bytes (nothing stashed, the usual case) are probed where they lie and copied only if the
        // decision must wait for more: stashing them first cost an allocation and a copy per flow.
        let inPlace = isUDP || carry.pointee.isEmpty
        if !inPlace { carry.pointee.append(contentsOf: bytes.raw) }
        let ini = flows.slots[Int(slot)].initiator.port, res = flows.slots[Int(slot)].responder.port
        var verdictKind = ApplicationKind.none
        var waiting = false
        var rejectedOnOwnPort: ApplicationKind? = nil
        func consider<D: AppDissector>(_: D.Type, _ kind: ApplicationKind, _ view: ByteView) {
            guard verdictKind == .none else { return }
            let wellKnown = D.isWellKnownPort(res) || D.isWellKnownPort(ini)
            switch D.probe(view, side: side, transport: transport) {
            case .accept: verdictKind = kind
            case .needMoreData: waiting = true
            case .reject: if wellKnown && rejectedOnOwnPort == nil { rejectedOnOwnPort = kind }
            }
        }
        func probeAll(_ view: ByteView) {
            // Registered ports first, so that content that fits two protocols goes to the port's owner.
            if ModbusDissector.isWellKnownPort(res) { consider(ModbusDissector.self, .modbus, view) }
            if DNP3Dissector.isWellKnownPort(res) { consider(DNP3Dissector.self, .dnp3, view) }
            if S7commDissector.isWellKnownPort(res) { consider(S7commDissector.self, .s7comm, view) }
            consider(ModbusDissector.self, .modbus, view)
            consider(DNP3Dissector.self, .dnp3, view)
            consider(S7commDissector.self, .s7comm, view)
        }
        if inPlace { probeAll(bytes) } else { carry.pointee.withUnsafeBytes { probeAll(ByteView($0)) } }

        if verdictKind == .none && waiting && (inPlace ? bytes.count : carry.pointee.count) < configuration.maximumProbeBytes && !isUDP {
            if inPlace { carry.pointee.append(contentsOf: bytes.raw) }   // keep the bytes and decide on the next ones
            return
        }
        if verdictKind == .none {
            if carry.pointee.capacity != 0 { carry.pointee.removeAll() }   // (already the shared empty array otherwise)
            flows.slots[Int(slot)].application = ApplicationKind.none.rawValue
            flows.slots[Int(slot)].checksumSides = FlowState.bothChecksumSides(.unchecked)   // not dissected: nothing to verify
            if let k = rejectedOnOwnPort {
                setSinkFlow(slot); sink.frame = frame; sink.time = now
                let kindName: StaticString = switch k {
                case .modbus: "not_modbus_on_modbus_port"
                case .dnp3: "not_dnp3_on_dnp3_port"
                default: "not_s7comm_on_s7comm_port"
                }
                sink.emit(Anomaly(layer: k.appProtocol!.name, kind: kindName, offset: 0), sender: side)
                drainSink()
            }
            notifyIdentified(slot, nil)
            return
        }
        flows.slots[Int(slot)].application = verdictKind.rawValue
        let p = verdictKind.appProtocol!
        statistics.flowsPerProtocol[Int(p.rawValue)] &+= 1
        setSinkFlow(slot)
        switch verdictKind {
        case .modbus: flows.slots[Int(slot)].applicationSlot = modbus.allocate()
        case .dnp3: flows.slots[Int(slot)].applicationSlot = dnp3.allocate()
        case .s7comm: flows.slots[Int(slot)].applicationSlot = s7comm.allocate()
        default: break
        }
        notifyIdentified(slot, p)
        // The stashed bytes (TCP), or the bytes probed in place, go to the new dissector now.
        deliver(slot, side: side, event: .data(inPlace ? bytes : ByteView.empty))
    }

    private func notifyIdentified(_ slot: Int32, _ p: AppProtocol?) {
        guard let target = borrowedFlowEventTarget else { return }
        setSinkFlow(slot)
        target._withUnsafeGuaranteedRef { $0.flowIdentified(sink.flow, appProtocol: p, frame: frame, time: now) }
    }

    /// Whether the dissector pools prefetch a flow's context: records copy it into the sink per delivery, and an
    /// observer's forwarder may read it (a copy of it) per operation, if it says so.
    private func setContextPrefetch() {
        // Through the unretained reference: the optional property took a retain and a release around each question,
        // ~200 instructions per identified flow.
        let f = borrowedForwarder
        let p = recordsEnabled || f?._withUnsafeGuaranteedRef { $0.readsFlowContext } == true
        modbus.prefetchesContext = p; dnp3.prefetchesContext = p; s7comm.prefetchesContext = p
        contextsOnDemand = !recordsEnabled && f?._withUnsafeGuaranteedRef { $0.buildsContextOnDemand } == true
    }

    /// Flow `slot`'s context in `pool` (its dissector state `app`), built from the flow's slot the first time a delivery
    /// needs it (see `DissectorPool.contexts`).
    @inline(__always)
    private func context<D: AppDissector>(_ pool: DissectorPool<D>, _ app: Int, _ slot: Int32) -> UnsafeMutablePointer<FlowContext> {
        let c = pool.contexts + app
        if c.pointee.flowSerial != flows.slots[Int(slot)].serial { buildContext(slot, into: c) }
        return c
    }

    /// Writes flow `slot`'s context at `c` (a pool's copy, built on first need).
    @inline(never)
    private func buildContext(_ slot: Int32, into c: UnsafeMutablePointer<FlowContext>) {
        if sinkFlowSlot == slot { c.pointee = sink.flow } else { writeContext(of: slot, to: &c.pointee) }
    }

    /// Builds the sink's context for the flow whose operations are being forwarded with it unbuilt (`contextsOnDemand`);
    /// nothing otherwise. `OperationForwarder.materializeFlowContext` calls this.
    func materializeLazyContext() {
        guard lazyContextSlot >= 0 else { return }
        setSinkFlow(lazyContextSlot)
        lazyContextSlot = -1
    }

    /// Points the sink's flow context at `slot` (cached: rebuilt only when the flow changes).
    private func setSinkFlow(_ slot: Int32) {
        guard sinkFlowSlot != slot else { return }
        writeContext(of: slot, to: &sink.flow)
        sinkFlowSlot = slot
    }

    /// Flow `slot`'s context, from its slot, written into `c` field by field.
    @inline(__always)
    private func writeContext(of slot: Int32, to c: inout FlowContext) {
        let key = flows.slots[Int(slot)].key
        let transport: Transport = switch key.ipProtocol { case 6: .tcp; case 17: .udp; case 1: .icmp; case 58: .icmpv6; default: .other }
        c.initiator = flows.slots[Int(slot)].initiator
        c.responder = flows.slots[Int(slot)].responder
        c.transport = transport
        c.vlan = key.vlan
        if flows.slots[Int(slot)].communityIDStored {
            c.communityIDText = flows.communityIDs[Int(slot)]
        } else if recordsEnabled {
            // Records read it at every PDU: computed now, once for the flow.
            c.communityIDText = communityID(of: slot)
        } else {
            // Read only if something is written about the flow (an alert, an anomaly record): computed then.
            c.setCommunityIDPending(ipProtocol: key.ipProtocol)
        }
        c.midstream = flows.slots[Int(slot)].midstream
        c.flowSlot = slot
        c.flowSerial = flows.slots[Int(slot)].serial
    }

    /// Flow `slot`'s Community ID, computed and kept (`FlowTable.communityIDs`) the first time it is asked for.
    @inline(never)
    private func communityID(of slot: Int32) -> InlineText {
        if !flows.slots[Int(slot)].communityIDStored {
            let key = flows.slots[Int(slot)].key
            let low = Endpoint(ip: key.lowIP, port: key.lowPort), high = Endpoint(ip: key.highIP, port: key.highPort)
            flows.communityIDs[Int(slot)] = CommunityIDHasher.text(low, high, ipProtocol: key.ipProtocol)
            flows.slots[Int(slot)].communityIDStored = true
        }
        return flows.communityIDs[Int(slot)]
    }

    /// Moves operations and anomalies out of the sink: counted, logged, and handed to the observer.
    /// Small and inlined: a delivery's usual leftover is one operation, and the anomaly loop's frame (set up on
    /// every call while it was in here) cost more than forwarding that operation.
    @inline(__always)
    private func drainSink() {
        if sink.operationCount > 0 {
            sink.withFlowPointer { drainOperations(flow: $0, flowSerial: $0.pointee.flowSerial, flowSlot: $0.pointee.flowSlot) }
        }
        if sink.anomalyCount > 0 { drainAnomalies() }
    }

    /// `drainSink` for the operations (there are some), of the flow whose context is at `flow`, with that context's
    /// serial and slot.
    @inline(__always)
    private func drainOperations(flow: UnsafePointer<FlowContext>, flowSerial: UInt64, flowSlot: Int32) {
        statistics.operations &+= UInt64(sink.operationCount)
        if let f = borrowedForwarder {
            f._withUnsafeGuaranteedRef { $0.forward(from: sink, flow: flow, flowSerial: flowSerial, flowSlot: flowSlot) }
        } else {
            sink.drainOperations { _ in }
        }
    }

    /// `drainSink` for the anomalies.
    @inline(never)
    private func drainAnomalies() {
        for a in sink.anomalies {
            statistics.anomalies &+= 1
            logAnomaly(a, withFlow: true)
            observer?.anomaly(a, flow: sink.flow)
        }
        sink.anomalies.removeAll(keepingCapacity: true)
    }

    // MARK: - Anomaly records

    private func logPacketAnomaly(_ anomaly: Anomaly) {
        var a = anomaly; a.frame = frame; a.time = now
        statistics.anomalies &+= 1
        logAnomaly(a, withFlow: false)
        observer?.anomaly(a, flow: nil)
    }

    private func logAnomaly(_ a: Anomaly, withFlow: Bool) {
        guard configuration.anomalyRecords else { return }
        // Bounded per kind so that a hostile capture cannot flood the log; the rest is counted.
        let id = Engine.anomalyKindKey(a)
        let n = anomalyLogged[id, default: 0]
        guard n < configuration.anomalyLogLimitPerKind else { statistics.anomaliesNotLogged &+= 1; return }
        anomalyLogged[id] = n + 1
        // The sink's writer (no record is open between dissector calls): a fresh writer was an allocation per anomaly.
        sink.json.reset()
        Engine.writeAnomalyRecord(a, flow: withFlow ? sink.flow : nil, into: &sink.json)
        sink.finishLine(.anomaly)
    }

    /// A 64-bit FNV-1a hash of "layer.kind": the per-kind log bound's key without building a String per
    /// anomaly (a hostile capture raises anomalies at packet rate).
    public static func anomalyKindKey(_ a: Anomaly) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        func add(_ text: StaticString) {
            text.withUTF8Buffer { for b in $0 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 } }
        }
        add(a.layer); h = (h ^ UInt64(UInt8(ascii: "."))) &* 0x0000_0100_0000_01B3; add(a.kind)
        return h
    }

    /// Writes one `anomalies.jsonl` record (no newline); `flow` nil for a packet-level anomaly. Public so that a
    /// multi-worker run can log anomalies in packet order from its merged event stream (same bound, same lines).
    public static func writeAnomalyRecord(_ a: Anomaly, flow: FlowContext?, into json: inout JSONWriter) {
        json.beginObject()
        json.key("@timestamp"); json.time(a.time)
        json.field("frame", a.frame)
        json.key("event"); json.beginObject(); json.field("kind", "event"); json.field("action", "anomaly"); json.endObject()
        if let flow {
            let src = flow.endpoint(a.sender), dst = flow.endpoint(a.sender.opposite)
            json.key("source"); json.beginObject(); json.key("ip"); json.ip(src.ip); json.field("port", Int(src.port)); json.endObject()
            json.key("destination"); json.beginObject(); json.key("ip"); json.ip(dst.ip); json.field("port", Int(dst.port)); json.endObject()
            json.key("network"); json.beginObject(); json.field("transport", flow.transport.name)
            json.key("community_id"); json.string(flow.communityIDText); json.endObject()
        }
        json.key("anomaly"); json.beginObject()
        json.field("layer", a.layer); json.field("kind", a.kind); json.field("offset", a.offset)
        if let v = a.value { json.key("value"); json.int(v) }
        json.endObject()
        json.endObject()
    }

    // MARK: - Flow ends

    private func sweep() {
        nextSweep = now.seconds + 1
        observer?.tick(time: now)
        if fragments.pendingCount > 0 { expireFragments() }
        // Whether the observer reads contexts may change with a policy reload: asked once a second of packet time (a
        // prefetch hint; asked per identified flow, it cost ~120 instructions a flow).
        setContextPrefetch()
        let limits = flows.limits
        while let s = flows.oldest(.closed, idle: limits.closedLinger, at: now.seconds) {
            prefetchFlowEnds(after: s)
            endFlow(s, reason: flows.slots[Int(s)].closedEndReason)
        }
        // Each active list is in least-recently-seen order under one timeout: its expired flows are a prefix of it.
        // Both are ended in the order they were last seen, as one list would give them.
        func expired(_ list: LRUList, _ timeout: Int64) -> Int32? { flows.oldest(list, idle: timeout, at: now.seconds) }
        while let s = flows.lessRecentlySeen(expired(.activeTCP, limits.tcpIdleTimeout), expired(.activeOther, limits.udpIdleTimeout)) {
            prefetchFlowEnds(after: s)
            endFlow(s, reason: .idleTimeout)
        }
    }

    /// Gives up the datagrams that have waited the reassembly timeout for their missing fragments (reported).
    @inline(never)
    private func expireFragments() {
        while let held = fragments.nextExpired(at: now.seconds) {
            if reportsForAll { logFragmentProblem(.incomplete, offset: 0, value: held) }
        }
    }

    /// Forgets the datagrams still being reassembled (the input ended, or packet time stepped back): counted as cut
    /// by the capture, as a flow's unfinished message is.
    private func forgetFragments() {
        let n = fragments.removeAll()
        if reportsForAll { statistics.ipDatagramsCutByCapture &+= UInt64(n) }
    }

    private func endFlow(_ slot: Int32, reason: FlowEndReason) {
        prefetchFlowEndLines(slot)
        endApplication(slot, reason: reason)
        if let target = borrowedFlowEventTarget, observerHearsFlowEnds {
            setSinkFlow(slot)
            target._withUnsafeGuaranteedRef { $0.flowEnded(sink.flow, reason: reason) }
        }
        if sinkFlowSlot == slot { sinkFlowSlot = -1 }
        let id = configuration.flowRecords ? communityID(of: slot) : InlineText()
        let state = flows.remove(slot)
        statistics.flowsEnded[Int(reason.rawValue)] &+= 1
        if configuration.flowRecords {
            let transport: Transport = switch state.key.ipProtocol { case 6: .tcp; case 17: .udp; case 1: .icmp; case 58: .icmpv6; default: .other }
            sink.json.reset()
            FlowRecord.write(state, reason: reason, applicationProtocol: ApplicationKind.recorded(state.application).appProtocol?.name,
                             transport: transport, communityID: id, into: &sink.json)
            sink.finishLine(.flow)
        }
    }

    /// Ends flow `slot`'s dissection as the flow ends for `reason`: its held segments (with their gaps) go to the
    /// dissector, then what it leaves unfinished is reported and its state released (nothing for a flow with no
    /// dissector, or whose dissection ended at its close). The flow's state stays.
    private func endApplication(_ slot: Int32, reason: FlowEndReason) {
        // Release held segments (with their gaps) to the dissector before it hears the flow has ended. A stream
        // holding none has nothing to flush: not moving it out and back saves two stream copies a flow.
        takeBackInOrder(slot)
        for side in [FlowSide.initiator, .responder] where streamPointer(slot, side).pointee.holdsSegments {
            var stream = takeStream(slot, side)
            stream.flush { event in self.deliver(slot, side: side, event: event) }
            putStream(slot, side, stream)
        }
        let app = flows.slots[Int(slot)].applicationSlot
        let application = flows.slots[Int(slot)].application
        if application & ApplicationKind.endedFlag != 0 {
            // Ended at its close with nothing to report: only its state, if kept, to release.
            if app >= 0 { releaseApplicationState(ApplicationKind.recorded(application), app) }
            return
        }
        let kind = ApplicationKind(rawValue: application) ?? .none
        // A dissected flow's end is reported under its protocol; an undecided one's only when it kept bytes for
        // identification (too few to tell the protocol: reported as the engine's own, `flow`).
        let layer: StaticString? = kind.appProtocol?.name
            ?? (kind == .undecided && flows.slots[Int(slot)].holdsCarry ? "flow" : nil)
        if let layer {
            setSinkFlow(slot); sink.frame = frame; sink.time = now
            sink.endingAtCaptureBoundary = reason.isCaptureBoundary
            reportUnfinishedPDUs(slot, layer: layer)
            switch kind {
            case .modbus: modbus.states[Int(app)].finish(sink: sink)
            case .dnp3: dnp3.states[Int(app)].finish(sink: sink)
            case .s7comm: s7comm.states[Int(app)].finish(sink: sink)
            default: break
            }
            releaseApplicationState(kind, app)
            drainSink()
        }
    }

    /// Returns a dissected flow's state `app` to its protocol's pool (nothing for any other kind).
    private func releaseApplicationState(_ kind: ApplicationKind, _ app: Int32) {
        switch kind {
        case .modbus: modbus.release(app)
        case .dnp3: dnp3.release(app)
        case .s7comm: s7comm.release(app)
        case .undecided, .none: break
        }
    }

    /// Reports each side's carry of an ending flow, the start of a PDU whose rest never came, or of an undecided flow's
    /// first bytes (`EventSink.unfinishedAtEnd`: an anomaly, or a count where the capture ended the flow): its bytes go
    /// with the flow, and would otherwise vanish without a trace. Before the dissector's `finish`, which reports what
    /// it holds itself.
    private func reportUnfinishedPDUs(_ slot: Int32, layer: StaticString) {
        for side in [FlowSide.initiator, .responder] {
            let held = carryPointer(slot, side).pointee.count
            if held > 0 { sink.unfinishedAtEnd(layer: layer, bytes: held, sender: side) }
        }
    }

    /// Starts loading what `setSinkFlow` and the observer's `flowIdentified`/`flowEnded` read of flow `slot` and
    /// were misses there with many flows: the slot's per-flow lines and the observer's entry. A hint only.
    @inline(__always)
    private func prefetchFlowEndLines(_ slot: Int32) {
        flows.prefetchFlowLines(of: slot)
        if recordsEnabled || configuration.flowRecords { zw_prefetch(flows.communityIDs + Int(slot)) }
        if observerHearsFlowEnds { prefetchWholeObserverEntry(slot) }
    }

    /// Starts loading what ending the flows after `s` (in its LRU list, which a sweep or `finish` ends oldest first)
    /// reads: the one two on, whole (slot, recency), and the next one's index entry, dissector state, per-flow lines and
    /// observer entry, found through its slot (asked for one flow ago). Each flow's end was otherwise a chain of
    /// dependent misses (slot, then dissector state, context lines, observer entry). Called right after `oldest`,
    /// before `s` ends. A hint only: the neighbour may be ended by something else first.
    @inline(__always)
    private func prefetchFlowEnds(after s: Int32) {
        // A few thousand flows' state stays in cache (and the foundation bench's 1,000 flows pay nothing for this).
        // The slots used so far: the live count costs an exclusivity check from this module.
        guard flows.slotCount >= 4096 else { return }
        let next = flows.newerNeighbour(of: s)
        guard next >= 0 else { return }
        prefetchFlowEnds(next: next, afterNext: flows.newerNeighbour(of: next))
    }

    /// `prefetchFlowEnds(after:)` with two flows still to end known (-1: none): `afterNext`, loaded whole, and `next`,
    /// whose slot was loaded earlier (as an `afterNext`), loaded through it.
    @inline(__always)
    private func prefetchFlowEnds(next: Int32, afterNext: Int32) {
        guard next >= 0 else { return }
        if afterNext >= 0 { flows.prefetchWholeFlow(afterNext) }
        // Its index entry, where `remove` starts (its slot was asked for whole earlier, as an `afterNext`).
        flows.prefetchIndexEntry(of: next)
        let state = flows.slots + Int(next)
        switch state.pointee.application & ~ApplicationKind.endedFlag {
        case ApplicationKind.modbus.rawValue: modbus.prefetchWhole(state.pointee.applicationSlot)
        case ApplicationKind.dnp3.rawValue: dnp3.prefetchWhole(state.pointee.applicationSlot)
        case ApplicationKind.s7comm.rawValue: s7comm.prefetchWhole(state.pointee.applicationSlot)
        default: break
        }
        prefetchFlowEndLines(next)
    }

    /// Ends every live flow (end of input or shutdown): each gets its record, in least-recently-seen order (all at
    /// once when nothing is written or told of each end: `endAllFlowsAtOnce`).
    public func finish() {
        endingInput = true
        if fragments.pendingCount > 0 { forgetFragments() }
        if !endAllFlowsAtOnce() { endAllFlows(activeAs: .endOfInput) }
        endingInput = false
        takeSinkCounts()
        observer?.finish()
    }

    /// Ends every live flow, closed ones first, each list least recently seen first: a closed flow as closed (`fin`
    /// or `rst`), an active one with `reason`.
    private func endAllFlows(activeAs reason: FlowEndReason) {
        // Ending a flow moves no other: the order is taken once (`oldest(closed:)` flow by flow gives the same).
        for closed in [true, false] {
            let order = flows.endOrder(closed: closed)
            let prefetching = flows.slotCount >= 4096   // as in `prefetchFlowEnds(after:)`
            for i in order.indices {
                let s = order[i]
                // The order is known ahead, so the pipeline runs further ahead than a sweep's: the flow 8 on whole,
                // the one 4 on through its slot. At 1 and 2 (a sweep's) ending 100,000 flows still waited on their
                // lines: 4 and 8 measured 0.8-2.7 % less user time on the 2.5M/100,000-flow plant (two runs of 120
                // interleaved pairs, SE 0.8-0.9 %), 8 and 16 2.6 % more than 4 and 8.
                if prefetching {
                    prefetchFlowEnds(next: i &+ 4 < order.count ? order[i &+ 4] : -1, afterNext: i &+ 8 < order.count ? order[i &+ 8] : -1)
                }
                endFlow(s, reason: closed ? flows.slots[Int(s)].closedEndReason : reason)
            }
        }
    }

    /// Ends every live flow at the end of input in one pass, when nothing is written or told of each end: no flow
    /// records, no PDU or transaction records (all a dissector's `finish` writes), no observer that wants these ends,
    /// no stream holding segments (their flush is dissected: gaps, operations), and no unfinished PDU in a carry or
    /// a dissector's own reassembly (each end reports it: `truncated_at_end`). Nothing then depends on the
    /// order, and each end is only its count by reason (as `endAllFlows` counts it) and its state's release: the table
    /// and the dissector pools are emptied wholesale. False, having changed nothing, when an end would be seen: the
    /// caller ends the flows in order. (Flow by flow, the end of the 2.5M plant's 100,000 flows took 86 M
    /// instructions, 864 a flow: the recency order, the backward shifts, each flow's context and dissector state.)
    func endAllFlowsAtOnce() -> Bool {
        guard !configuration.flowRecords, !sink.recordsEnabled, borrowedFlowEventTarget == nil || !flowEndsAtEndOfInput else {
            return false
        }
        var ended = [UInt64](repeating: 0, count: statistics.flowsEnded.count), holding = false
        flows.forEachFlow { s, list in
            let state = flows.slots + Int(s)
            // The summary's "holds nothing" bits, kept after every use of the streams (`summariseStreams`).
            assert(state.pointee.initiatorStream.quiet == (state.pointee.streamSummary & 0b0001 != 0)
                   && state.pointee.responderStream.quiet == (state.pointee.streamSummary & 0b0100 != 0))
            if state.pointee.streamSummary & FlowState.quietStreams != FlowState.quietStreams { holding = true }
            // A dissected or undecided flow's carry holds bytes not yet decoded, which its end reports.
            if state.pointee.application != ApplicationKind.none.rawValue && state.pointee.holdsCarry { holding = true }
            ended[Int((list == .closed ? state.pointee.closedEndReason : .endOfInput).rawValue)] &+= 1
        }
        guard !holding, !modbus.anyHoldsUnfinishedMessage, !dnp3.anyHoldsUnfinishedMessage, !s7comm.anyHoldsUnfinishedMessage
        else { return false }
        for r in ended.indices { statistics.flowsEnded[r] &+= ended[r] }
        modbus.releaseAll(); dnp3.releaseAll(); s7comm.releaseAll()
        flows.removeAll()
        sinkFlowSlot = -1
        return true
    }

    /// Copies what the sink counts itself (PDUs per protocol, messages cut by the capture) into `statistics`.
    private func takeSinkCounts() {
        sink.copyPDUCounts(into: &statistics.pdus)   // in place: no array per drain
        (statistics.messagesCutByCapture, statistics.messagesCutByCaptureBytes) = sink.cutByCapture
    }

    /// Hands every finished record line to `body` (kind, bytes) and empties the buffers.
    public func drainRecords(_ body: (RecordKind, [UInt8]) -> Void) {
        takeSinkCounts()
        for kind in RecordKind.allCases where !sink.lines[kind.rawValue].isEmpty {
            body(kind, sink.lines[kind.rawValue])
            sink.lines[kind.rawValue].removeAll(keepingCapacity: true)
        }
    }

    /// Bytes waiting in the record buffers (the caller drains when this grows).
    public var bufferedRecordBytes: Int { sink.lines.reduce(0) { $0 + $1.count } }
}

/// Drains a sink's operations into an observer. A class reached through `Unmanaged` (an existential cannot be),
/// opened once to the observer's concrete type, whose `let` reference is then used with no retain per call. An
/// observer may supply its own subclass (`EngineObserver.operationForwarder()`), compiled for its concrete type:
/// the engine's generic one calls the observer through its protocol witness.
open class OperationForwarder {
    /// Creates a forwarder.
    public init() {}
    /// Hands every operation in `sink` to the observer, with the flow context at `flow` (the sink's, or where the
    /// engine keeps the flow's: valid during the call only), and empties the sink's operations. `flowSerial` and
    /// `flowSlot` are the context's, from the engine's own flow state (in cache), so that a forwarder need not read
    /// the context for them.
    open func forward(from sink: EventSink, flow: UnsafePointer<FlowContext>, flowSerial: UInt64, flowSlot: Int32) {}
    /// Whether `forward(from:flow:flowSerial:flowSlot:)` usually reads the context at `flow` (the engine then
    /// prefetches it with the flow's dissector state). True unless a forwarder says otherwise; asked when the
    /// observer is set and once a second of packet time (at the sweep).
    open var readsFlowContext: Bool { true }
    /// Whether `forward` calls `materializeFlowContext()` before it reads the context at `flow` (and its serial and
    /// slot are all it reads before): the engine may then hand over its sink's context before building it for the
    /// flow, and build it only when asked. False unless a forwarder says otherwise; asked with `readsFlowContext`.
    open var buildsContextOnDemand: Bool { false }
    /// The engine this forwarder serves (set when it becomes the engine's).
    final var engine: Unmanaged<Engine>?
    /// Makes the context `forward` was handed valid (it already is unless `buildsContextOnDemand`). Call it during
    /// `forward`, before reading the context.
    public final func materializeFlowContext() {
        engine?._withUnsafeGuaranteedRef { $0.materializeLazyContext() }
    }
}

private final class TypedOperationForwarder<O: EngineObserver>: OperationForwarder {
    let observer: O
    init(_ observer: O) { self.observer = observer }
    override func forward(from sink: EventSink, flow: UnsafePointer<FlowContext>, flowSerial: UInt64, flowSlot: Int32) {
        sink.drainOperations { observer.operation($0, flow: flow.pointee) }
    }
}

extension Engine {
    fileprivate static func forwarder<O: EngineObserver>(to observer: O) -> OperationForwarder { TypedOperationForwarder(observer) }
    fileprivate static func flowEventTarget<O: EngineObserver>(for observer: O) -> FlowEventTarget { TypedFlowEventTarget(observer) }
}

/// An observer's per-flow methods, reached through `Unmanaged` like `OperationForwarder` (an existential cannot be):
/// the subclass holds the observer as its concrete type, in a `let` used with no retain per call.
private class FlowEventTarget {
    func flowStarting(between a: IPAddress, and b: IPAddress, flowSlot: Int32) {}
    func flowStarted(_ flow: FlowContext, frame: UInt64, time: PacketTime) {}
    func flowStateTable() -> FlowStateTable { .none }
    func flowIdentified(_ flow: FlowContext, appProtocol: AppProtocol?, frame: UInt64, time: PacketTime) {}
    func flowEnded(_ flow: FlowContext, reason: FlowEndReason) {}
}

private final class TypedFlowEventTarget<O: EngineObserver>: FlowEventTarget {
    let observer: O
    init(_ observer: O) { self.observer = observer }
    override func flowStarting(between a: IPAddress, and b: IPAddress, flowSlot: Int32) {
        observer.flowStarting(between: a, and: b, flowSlot: flowSlot)
    }
    override func flowStarted(_ flow: FlowContext, frame: UInt64, time: PacketTime) { observer.flowStarted(flow, frame: frame, time: time) }
    override func flowStateTable() -> FlowStateTable { observer.flowStateTable() }
    override func flowIdentified(_ flow: FlowContext, appProtocol: AppProtocol?, frame: UInt64, time: PacketTime) {
        observer.flowIdentified(flow, appProtocol: appProtocol, frame: frame, time: time)
    }
    override func flowEnded(_ flow: FlowContext, reason: FlowEndReason) { observer.flowEnded(flow, reason: reason) }
}

/// Receives what policy and detection need from an engine. Called on the engine's thread.
public protocol EngineObserver: AnyObject {
    /// First packet of a flow.
    func flowStarted(_ flow: FlowContext, frame: UInt64, time: PacketTime)
    /// The flow's application protocol is known (nil: none of ours).
    func flowIdentified(_ flow: FlowContext, appProtocol: AppProtocol?, frame: UInt64, time: PacketTime)
    /// One classified operation.
    func operation(_ op: Operation, flow: FlowContext)
    /// One anomaly (flow nil for packet-level anomalies).
    func anomaly(_ a: Anomaly, flow: FlowContext?)
    /// A flow is about to start in engine slot `flowSlot`, between hosts `a` and `b` (either order): its
    /// `flowStarted` follows shortly. An observer may start loading what that reads. A hint only.
    func flowStarting(between a: IPAddress, and b: IPAddress, flowSlot: Int32)
    /// A flow ended (its record is about to be written).
    func flowEnded(_ flow: FlowContext, reason: FlowEndReason)
    /// Whether `flowEnded` is wanted for the flows `Engine.finish` ends at the end of input (true unless the observer
    /// says otherwise; asked when it is set). An observer whose `flowEnded` only forgets what it keeps per flow says
    /// false: nothing follows the end of input for which to forget it. With 100,000 flows those calls (for `--workers`
    /// each a context copy and an event, merged in order in the replay's tail) were 2.8 % of a two-worker replay's wall
    /// time (SE 0.8 %, 200 pairs) and 0.45 % of one engine's instructions.
    var wantsFlowEndsAtEndOfInput: Bool { get }
    /// Packet time advanced by at least a second (aggregation windows, periodic work).
    func tick(time: PacketTime)
    /// Packet time went back to `time` by more than `PacketTime.clockStepSeconds` (the engine has ended every flow).
    func clockStepped(to time: PacketTime)
    /// End of input.
    func finish()
    /// Where the observer keeps per-flow state by the engine's flow slot, if it does (`FlowStateTable.none`
    /// otherwise): the engine prefetches a flow's entry with its dissector state, a couple of packets before the
    /// flow's operations arrive. Asked again after every `flowStarted` (which may grow the table). A hint only.
    func flowStateTable() -> FlowStateTable
    /// A forwarder of drained operations to this observer, built for its concrete type (nil: the engine's generic
    /// one, which calls `operation(_:flow:)` through the protocol). Asked when the observer is set.
    func operationForwarder() -> OperationForwarder?
}

extension EngineObserver {
    /// Nothing kept by the clock.
    public func clockStepped(to time: PacketTime) {}
    /// Nothing to load ahead.
    public func flowStarting(between a: IPAddress, and b: IPAddress, flowSlot: Int32) {}
    /// No per-flow state to prefetch.
    public func flowStateTable() -> FlowStateTable { .none }
    /// The engine's generic forwarder.
    public func operationForwarder() -> OperationForwarder? { nil }
    /// Every flow's end.
    public var wantsFlowEndsAtEndOfInput: Bool { true }
}

/// An observer's per-flow state as a prefetch hint: `count` entries of `stride` bytes from `base`, by flow slot.
/// Plain data, so the engine reaches an entry without a call (or a retain of the observer) per packet.
public struct FlowStateTable {
    /// The first entry (nil: nothing to prefetch).
    public var base: UnsafeRawPointer?
    /// Entries.
    public var count: Int
    /// Bytes from one entry to the next.
    public var stride: Int
    /// Creates a hint.
    public init(base: UnsafeRawPointer?, count: Int, stride: Int) { self.base = base; self.count = count; self.stride = stride }
    /// No table.
    public static var none: FlowStateTable { FlowStateTable(base: nil, count: 0, stride: 0) }
}
