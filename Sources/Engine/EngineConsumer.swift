#if canImport(Glibc)
import Glibc
#endif
import Capture
import CPcap
import Wire

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
        defer { source.recordLookahead = context.pointee.lookahead }
        try source.dispatch(batch: batch, handler: { user, header, data in
            let context = UnsafeMutableRawPointer(user.unsafelyUnwrapped).assumingMemoryBound(to: HandlerContext.self)
            context.pointee.engine._withUnsafeGuaranteedRef { $0.dispatchedPacket(header, data, context) }
        }, user: UnsafeMutableRawPointer(context))
        return context.pointee.count
    }
}

extension Engine {
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
