#if canImport(Glibc)
import Glibc
#endif
import Capture
import CPcap
import Wire
import Decode
import Flows

/// Hands the packets a `PacketSource` reads to an engine, each with the flow prefetch hint for the packet
/// `Engine.prefetchDistance` places ahead: the replay loop's whole per-packet work.
public final class EngineConsumer {
    /// Keeps the engine alive: the handler context holds it unretained.
    private let engine: Engine

    /// `dispatch(from:batch:)`'s handler context, reached through libpcap's user pointer.
    private let context = UnsafeMutablePointer<HandlerContext>.allocate(capacity: 1)

    /// A consumer feeding `engine` packets of `linkType`.
    public init(engine: Engine, linkType: Int32) {
        self.engine = engine
        // Diagnostic for scripts/bench (ZONEWATCH_NO_PREFETCH=1): measure without the flow prefetch hints.
        let prefetch = getenv("ZONEWATCH_NO_PREFETCH") == nil
        context.initialize(to: HandlerContext(engine: Unmanaged.passUnretained(engine), linkType: linkType, prefetch: prefetch,
                                              lookahead: RecordLookahead()))
    }

    deinit { context.deinitialize(count: 1); context.deallocate() }

    /// What the C handler of `dispatch(from:batch:)` reaches through libpcap's user pointer.
    fileprivate struct HandlerContext {
        /// Not retained: the consumer holds the engine.
        let engine: Unmanaged<Engine>
        let linkType: Int32
        let prefetch: Bool
        /// The source's lookahead, stepped here for the call's duration.
        var lookahead: RecordLookahead
        var count = 0
    }

    /// Reads up to `batch` packets of `source` into the engine and returns how many (0: end of input). The replay
    /// loop's way: libpcap calls one C function per packet, with the header conversion, the lookahead step and the
    /// prefetch stage inlined into it, then the engine's packet step (through `PacketSource.dispatch(batch:to:)` the
    /// packet went through a closure, a class method call and a consumer method: ~30 instructions a packet more).
    /// Throws when the file is truncated, after handing on every packet before the failure.
    public func dispatch(from source: PacketSource, batch: Int32) throws(CaptureError) -> Int {
        context.pointee.lookahead = source.recordLookahead
        context.pointee.count = 0
        let e = context.pointee.engine
        e._withUnsafeGuaranteedRef { engine in
            engine.hintLookahead = context.pointee.prefetch && context.pointee.linkType == PacketDecoder.ethernet
                ? UnsafeMutableRawPointer(context.pointer(to: \.lookahead)!) : nil
        }
        defer {
            source.recordLookahead = context.pointee.lookahead
            e._withUnsafeGuaranteedRef { $0.hintLookahead = nil }
        }
        try source.dispatch(batch: batch, handler: { user, header, data in
            let context = UnsafeMutableRawPointer(user.unsafelyUnwrapped).assumingMemoryBound(to: HandlerContext.self)
            context.pointee.engine._withUnsafeGuaranteedRef { $0.dispatchedPacket(header, data, context) }
        }, user: UnsafeMutableRawPointer(context))
        return context.pointee.count
    }
}

extension Engine {
    /// The hints the prefetch pipeline missed after the packet being processed, when its own hint was missing (the
    /// one-pass path had no candidate slot): the lookahead finds nothing `prefetchDistance` ahead while those records
    /// are not read yet (the last few packets of each fill of the file's read buffer, ~1.5 % of the 100,000-flow
    /// plant's packets), and each such packet then waited on its index entry and its flow state. Starts loading the
    /// index entries of the packets 1 to `prefetchDistance - 1` ahead that have no hint, and looks up the slots of the
    /// nearest half at once (their slot stage has passed). Once per such gap, once the table has used 4,096 slots
    /// (a few thousand flows stay in cache; `slotCount`, not `count`, which costs an exclusivity check from here).
    /// Hints only.
    @inline(never)
    func catchUpHints() {
        guard let raw = hintLookahead, packetsProcessed >= hintsCaughtUpTo, flows.slotCount >= 4096 else { return }
        let lookahead = raw.assumingMemoryBound(to: RecordLookahead.self)
        let current = packetsProcessed   // this packet's number; the lookahead's next record is the one after it
        hintsCaughtUpTo = current &+ UInt64(Engine.prefetchDistance)
        // Asked with distance 1 again and again, the lookahead steps one record on from its previous answer (one
        // record read each; asking for each distance walked from the first unread record every time). The next
        // packet's own call, at `prefetchDistance`, walks afresh.
        for d in 1..<Engine.prefetchDistance {
            guard let bytes = lookahead.pointee.packet(after: 1) else { break }
            guard let t = PacketDecoder.commonEthernetFlowTuple(bytes) else { continue }
            flows.noteAhead(position: current &+ UInt64(d),
                            hash: FlowKey.v4Hash(source: t.source, destination: t.destination, sourcePort: t.sourcePort,
                                                 destinationPort: t.destinationPort, ipProtocol: t.ipProtocol, key: flows.hashKey))
        }
        for d in 1...(Engine.prefetchDistance / 2) { flows.lookUpAhead(position: current &+ UInt64(d)) }
    }

    /// One packet of `EngineConsumer.dispatch(from:batch:)`: the prefetch stage (with the packet the lookahead finds
    /// `prefetchDistance` ahead), then the packet step. Kept out of the C handler (a call either way: the packet
    /// step is not inlined into the handler, and its frame is the larger).
    @inline(never)
    fileprivate func dispatchedPacket(_ header: UnsafePointer<pcap_pkthdr>?, _ data: UnsafePointer<UInt8>?,
                                      _ context: UnsafeMutablePointer<EngineConsumer.HandlerContext>) {
        let (h, bytes) = PacketSource.packet(header, data)
        context.pointee.count &+= 1
        if context.pointee.prefetch {
            prefetchStage(ahead: context.pointee.lookahead.packet(after: Engine.prefetchDistance), linkType: context.pointee.linkType)
        }
        processPacket(bytes, linkType: context.pointee.linkType, time: h.time, wireLength: h.wireLength, frame: 0)
    }
}

extension Engine {
    /// One record of a classic pcap file held in memory: `record` points at its 16-byte header (host byte order,
    /// the captured bytes right after it), whose time fraction is `microseconds` (below 1,000,000, as a checked
    /// record's is: `WholeFileWalk`); `ahead` points at the record
    /// `prefetchDistance` places further on (nil: unknown, or no prefetch hints wanted); `frame` as for `process`. The
    /// prefetch stage and the packet step in one call: a memory-mapped replay's whole per-packet work
    /// (`MappedFileReplay`, and each worker of `--workers` reading a file).
    public func processRecord(_ record: UnsafeRawPointer, microseconds: UInt32, ahead: UnsafeRawPointer?, linkType: Int32,
                              frame number: UInt64 = 0) {
        @inline(__always) func packet(_ r: UnsafeRawPointer) -> ByteView {
            ByteView(UnsafeRawBufferPointer(start: r + 16, count: Int(r.loadUnaligned(fromByteOffset: 8, as: UInt32.self))))
        }
        if let a = ahead { prefetchStage(ahead: packet(a), linkType: linkType) } else { prefetchStage(ahead: nil, linkType: linkType) }
        processPacket(packet(record), linkType: linkType,
                      time: PacketTime(seconds: Int64(record.loadUnaligned(as: UInt32.self)), microsecondsInRange: Int32(microseconds)),
                      wireLength: Int(record.loadUnaligned(fromByteOffset: 12, as: UInt32.self)), frame: number)
    }
}
