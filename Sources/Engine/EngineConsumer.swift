#if canImport(Glibc)
import Glibc
#endif
import Capture
import Wire

/// Hands the packets `PacketSource.dispatch` reads to an engine, each with the flow prefetch hint for the packet
/// `Engine.prefetchDistance` places ahead: the replay loop's whole per-packet work, one call per packet.
public final class EngineConsumer: PacketConsumer {
    private let engine: Engine
    private let linkType: Int32
    // Diagnostic for scripts/bench (ZONEWATCH_NO_PREFETCH=1): measure without the flow prefetch hints.
    private let prefetch = getenv("ZONEWATCH_NO_PREFETCH") == nil

    /// A consumer feeding `engine` packets of `linkType`.
    public init(engine: Engine, linkType: Int32) {
        self.engine = engine; self.linkType = linkType
    }

    override public var lookahead: Int { prefetch ? Engine.prefetchDistance : 0 }

    /// The caller asks between `dispatch` calls (a batch is a fraction of a second).
    override public var stopsWithinBatch: Bool { false }

    override public func consume(_ header: PacketHeader, _ bytes: ByteView, ahead: ByteView?) {
        engine.prefetchStage(ahead: ahead, linkType: linkType)
        engine.processPacket(bytes, linkType: linkType, time: header.time, wireLength: header.wireLength, frame: 0)
    }

    override public func consume(_ header: PacketHeader, _ bytes: ByteView) {
        engine.process(bytes, linkType: linkType, time: header.time, wireLength: header.wireLength)
    }
}
