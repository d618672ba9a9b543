import Wire

/// What in-order reassembly hands on: bytes of the stream, or the length of a hole that will never be filled.
public enum StreamEvent {
    /// The next in-order bytes (borrowed: the packet or a held segment).
    case data(ByteView)
    /// `length` bytes are missing (lost before capture, cut by snaplen, or given up on).
    case gap(Int)
    /// In-order bytes of a segment that was held behind a hole that was then given up on: reported on the
    /// packet that carried them (`frame`, `time`), as tshark does, not on the packet that gave the hole up.
    case heldData(ByteView, frame: UInt64, time: PacketTime)
}

/// Bounds on what one direction of a TCP stream may hold while waiting for a missing segment.
public struct TCPStreamLimits: Sendable {
    /// Out-of-order segments held at most.
    public var maximumHeldSegments = 32
    /// Out-of-order bytes held at most.
    public var maximumHeldBytes = 64 * 1024
    /// Creates the defaults.
    public init() {}
}

/// In-order delivery of one direction of a TCP stream.
///
/// In-order segments are handed on without a copy. Out-of-order segments are copied and held (bounded);
/// retransmitted bytes are dropped (first copy wins, as most stacks and tshark do); a hole that the peer
/// acknowledges, that outlives the holding bounds, or that is still open when the flow ends becomes an
/// explicit `.gap` — never silent.
public struct TCPStream {
    /// The sequence number of the next byte expected (set: the engine's one-pass path kept it elsewhere meanwhile).
    @inlinable public var nextSequence: UInt32 { get { expected } set { expected = newValue } }
    /// Whether `nextSequence` is known (SYN seen, or first data when picked up midstream).
    @inlinable public var synchronized: Bool { isSynchronized }
    // Field order and widths keep the stream at 45 bytes, so that two fit in the flow state's third and fourth cache
    // lines with the per-flow fields (see `FlowState`).
    // Stored under other names so that the accessors above inline into the engine.
    @usableFromInline var expected: UInt32 = 0
    /// Bytes of `held` (at most `TCPStreamLimits.maximumHeldBytes`, clamped to 32 bits).
    private var heldBytes: UInt32 = 0
    /// Held out-of-order segments, sorted by sequence.
    @usableFromInline var held: [HeldSegment] = []

    /// Bytes declared missing.
    public private(set) var gapBytes: UInt64 = 0
    /// Counters: holes declared.
    public private(set) var gaps: UInt32 = 0
    /// Segments entirely retransmitted (dropped).
    public private(set) var retransmissions: UInt32 = 0
    /// Segments partly overlapping delivered bytes (the new part kept).
    public private(set) var overlaps: UInt32 = 0
    /// Segments that arrived ahead of a hole and were held.
    public private(set) var outOfOrder: UInt32 = 0
    /// Holes given up on because the holding bounds were reached.
    public private(set) var holdOverflows: UInt32 = 0
    @usableFromInline var isSynchronized = false

    @usableFromInline struct HeldSegment {
        var sequence: UInt32
        var bytes: [UInt8]
        var wireLength: Int
        var frame: UInt64          // the packet that carried it
        var time: PacketTime
    }

    /// Creates an unsynchronised stream.
    public init() {}

    /// Accepts one segment of this direction and delivers whatever became in-order.
    public mutating func segment(sequence: UInt32, syn: Bool, payload: ByteView, wireLength: Int,
                                 limits: TCPStreamLimits, frame: UInt64 = 0, time: PacketTime = .zero,
                                 deliver: (StreamEvent) -> Void) {
        var seq = sequence
        if syn {
            expected = sequence &+ 1; isSynchronized = true
            if held.capacity != 0 { held.removeAll() }   // (else already the shared empty array: no release and retain)
            heldBytes = 0
            seq = sequence &+ 1
        }
        guard wireLength > 0 else { return }
        if !isSynchronized { expected = seq; isSynchronized = true }
        let rel = Int32(bitPattern: seq &- expected)
        if rel == 0 {
            deliverInOrder(payload, wireLength: wireLength, deliver: deliver)
            drainHeld(deliver: deliver)
        } else if rel < 0 {
            let overlap = Int(-Int64(rel))
            if overlap >= wireLength { retransmissions &+= 1; return }
            overlaps &+= 1
            deliverInOrder(payload.suffix(from: overlap), wireLength: wireLength - overlap, deliver: deliver)
            drainHeld(deliver: deliver)
        } else {
            outOfOrder &+= 1
            if held.count >= limits.maximumHeldSegments || Int(heldBytes) + payload.count > min(limits.maximumHeldBytes, Int(UInt32.max)) {
                // Give up on the oldest hole: everything before the first held byte is lost.
                holdOverflows &+= 1
                let first = held.first.map { $0.sequence } ?? seq
                let target = Int32(bitPattern: seq &- first) < 0 ? seq : first
                skip(to: target, deliver: deliver)
                drainHeld(afterLoss: true, deliver: deliver)
                // The current segment may now be in order (or still ahead).
                segment(sequence: seq, syn: false, payload: payload, wireLength: wireLength, limits: limits,
                        frame: frame, time: time, deliver: deliver)
                return
            }
            hold(seq, payload, wireLength, frame: frame, time: time)
        }
    }

    /// The peer acknowledged up to `ack`: a held hole before `ack` was lost before capture.
    public mutating func peerAcknowledged(_ ack: UInt32, deliver: (StreamEvent) -> Void) {
        guard isSynchronized, let first = held.first else { return }
        guard Int32(bitPattern: ack &- expected) > 0 else { return }
        let target = Int32(bitPattern: ack &- first.sequence) < 0 ? ack : first.sequence
        skip(to: target, deliver: deliver)
        drainHeld(afterLoss: true, deliver: deliver)
    }

    /// The flow is ending: release every held segment, with gaps for the holes.
    public mutating func flush(deliver: (StreamEvent) -> Void) {
        while let first = held.first {
            skip(to: first.sequence, deliver: deliver)
            drainHeld(afterLoss: true, deliver: deliver)
        }
    }

    /// Bytes held out of order.
    public var heldByteCount: Int { Int(heldBytes) }

    /// Whether out-of-order segments are held (then an acknowledgement from the peer may release them).
    @inlinable public var holdsSegments: Bool { !held.isEmpty }

    private mutating func deliverInOrder(_ payload: ByteView, wireLength: Int, origin: (UInt64, PacketTime)? = nil,
                                         deliver: (StreamEvent) -> Void) {
        if !payload.isEmpty {
            if let (frame, time) = origin { deliver(.heldData(payload, frame: frame, time: time)) } else { deliver(.data(payload)) }
        }
        if wireLength > payload.count {   // cut by snaplen: the rest is missing for good
            gaps &+= 1; gapBytes &+= UInt64(wireLength - payload.count)
            deliver(.gap(wireLength - payload.count))
        }
        expected = expected &+ UInt32(truncatingIfNeeded: wireLength)
    }

    private mutating func skip(to target: UInt32, deliver: (StreamEvent) -> Void) {
        let missing = Int32(bitPattern: target &- expected)
        guard missing > 0 else { return }
        gaps &+= 1; gapBytes &+= UInt64(missing)
        deliver(.gap(Int(missing)))
        expected = target
    }

    private mutating func hold(_ seq: UInt32, _ payload: ByteView, _ wireLength: Int, frame: UInt64, time: PacketTime) {
        var i = held.count
        while i > 0 && Int32(bitPattern: held[i - 1].sequence &- seq) > 0 { i -= 1 }
        if i > 0 && held[i - 1].sequence == seq { retransmissions &+= 1; return }   // first copy wins
        held.insert(HeldSegment(sequence: seq, bytes: Array(payload.raw), wireLength: wireLength, frame: frame, time: time), at: i)
        heldBytes += UInt32(payload.count)
    }

    /// Delivers held segments that are now in order. `afterLoss`: the hole before them was given up, so their
    /// bytes are reported on the packet that carried them; a filled hole completes on the filling packet.
    private mutating func drainHeld(afterLoss: Bool = false, deliver: (StreamEvent) -> Void) {
        while let first = held.first {
            let rel = Int32(bitPattern: first.sequence &- expected)
            if rel > 0 { return }
            held.removeFirst()
            heldBytes -= UInt32(first.bytes.count)
            let overlap = Int(-Int64(rel))
            if overlap >= first.wireLength { retransmissions &+= 1; continue }
            if overlap > 0 { overlaps &+= 1 }
            first.bytes.withUnsafeBytes { raw in
                deliverInOrder(ByteView(raw).suffix(from: overlap), wireLength: first.wireLength - overlap,
                               origin: afterLoss ? (first.frame, first.time) : nil, deliver: deliver)
            }
        }
    }
}
