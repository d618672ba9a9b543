import Wire

/// Gives the packets of a source that cannot read ahead (live capture) their flow prefetch hints: it holds the last
/// `Engine.prefetchDistance` packets, copied, and processes each with the packet that many places after it as its
/// hint (`Engine.prefetchFlows`), as a file's replay does with its read-ahead. Without hints each packet of a plant
/// with thousands of flows waits on its flow's index entry, then its flow state, in turn: replays without them took
/// about twice the CPU over 10,000 flows and three to four times over 100,000. `drain` processes what is held, in
/// order, when the source has run dry for the moment, so a packet waits at most until the end of its batch.
public final class PacketDelayLine {
    private let engine: Engine
    /// Bytes a held packet may have (the capture's snapshot length): a longer one drains the line and goes unheld.
    private let slotBytes: Int
    private static let distance = Engine.prefetchDistance
    /// `distance + 1` slots of `slotBytes` each: the packets held, and the newest, which is the oldest's hint.
    private let block: UnsafeMutableRawPointer
    private let lengths = UnsafeMutablePointer<Int>.allocate(capacity: distance + 1)
    private let wireLengths = UnsafeMutablePointer<Int>.allocate(capacity: distance + 1)
    private let linkTypes = UnsafeMutablePointer<Int32>.allocate(capacity: distance + 1)
    private let times = UnsafeMutablePointer<PacketTime>.allocate(capacity: distance + 1)
    /// The oldest held packet's slot, and how many are held.
    private var first = 0
    private var count = 0

    /// A line feeding `engine` packets of up to `snapshotLength` bytes.
    public init(engine: Engine, snapshotLength: Int) {
        self.engine = engine
        slotBytes = max(snapshotLength, 64)
        // Address space for the largest packets; pages are touched only as far as packets reach into their slots.
        block = LargeBlock.mapZeroed((Self.distance + 1) * slotBytes)
    }

    deinit {
        LargeBlock.unmap(block, bytes: (Self.distance + 1) * slotBytes)
        lengths.deallocate(); wireLengths.deallocate(); linkTypes.deallocate(); times.deallocate()
    }

    /// Packets held, not yet processed.
    public var held: Int { count }

    /// Takes one packet (`bytes` valid during the call only): copies it in and, once `Engine.prefetchDistance`
    /// packets are held before it, processes the oldest with this one as its hint.
    public func push(_ bytes: ByteView, linkType: Int32, time: PacketTime, wireLength: Int) {
        guard bytes.count <= slotBytes else {
            drain()
            engine.process(bytes, linkType: linkType, time: time, wireLength: wireLength)
            return
        }
        let slot = (first + count) % (Self.distance + 1)
        if let source = bytes.raw.baseAddress, bytes.count > 0 {
            (block + slot * slotBytes).copyMemory(from: source, byteCount: bytes.count)
        }
        lengths[slot] = bytes.count; wireLengths[slot] = wireLength; linkTypes[slot] = linkType; times[slot] = time
        count += 1
        guard count > Self.distance else { return }
        engine.prefetchFlows(ahead: view(slot), linkType: linkType)
        processOldest()
    }

    /// Processes every held packet, oldest first (no hints: none is held that far after them).
    public func drain() {
        while count > 0 { processOldest() }
    }

    private func view(_ slot: Int) -> ByteView {
        ByteView(UnsafeRawBufferPointer(start: block + slot * slotBytes, count: lengths[slot]))
    }

    private func processOldest() {
        let slot = first
        first = (first + 1) % (Self.distance + 1)
        count -= 1
        engine.process(view(slot), linkType: linkTypes[slot], time: times[slot], wireLength: wireLengths[slot])
    }
}
