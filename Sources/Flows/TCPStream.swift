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
    /// `count` bytes sent past the FIN that ended this direction in sequence (`TCPStream.endAtFIN`), on the packet
    /// that carried them: no stack sends them and an endpoint drops them, so they are not delivered (a monitor
    /// reading on would see what the endpoint never took; one stopping at the FIN would miss what a careless one did).
    case pastFIN(Int, frame: UInt64, time: PacketTime)
    /// `count` bytes a segment carried otherwise than another copy of the same stream bytes did (a held segment, or
    /// the segment that filled the hole before it), on the packet that carried the later copy. Which copy an endpoint
    /// keeps differs between stacks: an overlap with other content is the classic way to make a monitor reassemble
    /// another stream than the endpoint (the stream delivers one copy, as before, and this says it was contested).
    case overlapConflict(Int, frame: UInt64, time: PacketTime)
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
    @inlinable public var synchronized: Bool { phase != TCPStream.unsynchronised }
    /// Whether a FIN in sequence ended this direction (`endAtFIN`): bytes from `nextSequence` on are `.pastFIN`.
    @inlinable public var endedAtFIN: Bool { phase == TCPStream.ended }
    /// Synchronised and not ended, and no FIN ahead of it (`endAhead`): bytes at `nextSequence` are the stream's next
    /// (one test, on the engine's summary).
    @inlinable public var takesNextBytes: Bool { phase == TCPStream.open }
    // Sixteen bytes: what every stream needs (the next sequence number, its phase) and one reference to what
    // few streams ever need (held segments, anomaly counts), created on first need. Two streams fit in the flow
    // state's third cache line with the per-flow fields (see `FlowState`): at 100,000 flows every byte here is fresh
    // memory the kernel zeroes.
    // Stored under other names so that the accessors above inline into the engine.
    @usableFromInline var expected: UInt32 = 0
    /// Unsynchronised, open (synchronised), ended at a FIN in sequence (at `expected`), or closing (a FIN came ahead
    /// of `expected`, past a hole, at the backlog's `finAt`): one byte, no more.
    @usableFromInline var phase = TCPStream.unsynchronised
    @usableFromInline static var unsynchronised: UInt8 { 0 }
    @usableFromInline static var open: UInt8 { 1 }
    @usableFromInline static var ended: UInt8 { 2 }
    @usableFromInline static var closing: UInt8 { 3 }
    /// Held segments and counters; nil while the stream has held nothing and counted nothing.
    @usableFromInline var backlog: TCPStreamBacklog?

    /// Bytes declared missing.
    public var gapBytes: UInt64 { backlog?.gapBytes ?? 0 }
    /// Counters: holes declared.
    public var gaps: UInt32 { backlog?.gaps ?? 0 }
    /// Segments entirely retransmitted (dropped).
    public var retransmissions: UInt32 { backlog?.retransmissions ?? 0 }
    /// Segments partly overlapping delivered bytes (the new part kept).
    public var overlaps: UInt32 { backlog?.overlaps ?? 0 }
    /// Segments that arrived ahead of a hole and were held.
    public var outOfOrder: UInt32 { backlog?.outOfOrder ?? 0 }
    /// Holes given up on because the holding bounds were reached.
    public var holdOverflows: UInt32 { backlog?.holdOverflows ?? 0 }

    @usableFromInline struct HeldSegment {
        var sequence: UInt32
        var bytes: [UInt8]
        var wireLength: Int
        var frame: UInt64          // the packet that carried it
        var time: PacketTime
    }

    /// The backlog, created if absent and copied if shared (a copied stream shares it: value semantics kept).
    private mutating func ownBacklog() -> TCPStreamBacklog {
        if backlog == nil { backlog = TCPStreamBacklog() } else if !isKnownUniquelyReferenced(&backlog) { backlog = backlog!.copy() }
        return backlog!
    }

    /// Creates an unsynchronised stream.
    public init() {}

    /// Accepts one segment of this direction and delivers whatever became in-order.
    public mutating func segment(sequence: UInt32, syn: Bool, payload: ByteView, wireLength: Int,
                                 limits: TCPStreamLimits, frame: UInt64 = 0, time: PacketTime = .zero,
                                 deliver: (StreamEvent) -> Void) {
        let seq = sequence &+ (syn ? 1 : 0)
        // A SYN starts the stream. On a stream under way, one behind what the stream expects is a retransmitted SYN
        // (rewinding to it would hold every later byte as out of order, and re-open a stream ended at its FIN); one
        // from ahead is no start either (`synJump`): the segment is left whole.
        if syn {
            if phase == TCPStream.unsynchronised { expected = seq; phase = TCPStream.open }
            else if Int32(bitPattern: seq &- expected) > 0 { return }
        }
        guard wireLength > 0 else { return }
        if phase == TCPStream.unsynchronised { expected = seq; phase = TCPStream.open }
        let rel = Int32(bitPattern: seq &- expected)
        if phase == TCPStream.ended {
            // Bytes before the FIN were delivered (a retransmission); any at or past it are the sender's past its end.
            let overlap = rel < 0 ? Int(-Int64(rel)) : 0
            if overlap >= wireLength { ownBacklog().retransmissions &+= 1; return }
            deliver(.pastFIN(wireLength - overlap, frame: frame, time: time))
            return
        }
        if rel == 0 {
            deliverInOrder(payload, wireLength: wireLength, carrier: (frame, time), deliver: deliver)
            drainHeld(after: (payload, seq, frame, time), deliver: deliver)
        } else if rel < 0 {
            let overlap = Int(-Int64(rel))
            if overlap >= wireLength { ownBacklog().retransmissions &+= 1; return }
            ownBacklog().overlaps &+= 1
            deliverInOrder(payload.suffix(from: overlap), wireLength: wireLength - overlap, carrier: (frame, time), deliver: deliver)
            drainHeld(after: (payload, seq, frame, time), deliver: deliver)
        } else {
            if let first = countOutOfOrder(seq, payloadCount: payload.count, limits: limits) {
                // Give up on the oldest hole: everything before the first held byte is lost.
                let target = Int32(bitPattern: seq &- first) < 0 ? seq : first
                skip(to: target, deliver: deliver)
                drainHeld(afterLoss: true, deliver: deliver)
                // The current segment may now be in order (or still ahead).
                segment(sequence: seq, syn: false, payload: payload, wireLength: wireLength, limits: limits,
                        frame: frame, time: time, deliver: deliver)
                return
            }
            hold(seq, payload, wireLength, frame: frame, time: time, deliver: deliver)
        }
    }

    /// How far ahead of the stream's next byte a SYN numbered `sequence` would move it (the sequence numbers it would
    /// skip), or 0: a SYN on an unsynchronised stream starts it, one behind is a retransmission. A stream under way
    /// does not restart at a SYN from ahead (`segment` leaves it): an endpoint drops such a SYN (RFC 5961 section 4),
    /// and a monitor that took it would skip the sender's next bytes as retransmissions.
    public func synJump(at sequence: UInt32) -> Int {
        guard phase != TCPStream.unsynchronised else { return 0 }
        let ahead = Int32(bitPattern: sequence &+ 1 &- expected)
        return ahead > 0 ? Int(ahead) : 0
    }

    /// Forgets the held segments (a FIN ended the stream), and a FIN ahead; the counters stay.
    private mutating func dropHeld() {
        let b = ownBacklog()
        b.finAt = nil
        b.held.removeAll(); b.heldBytes = 0
    }

    /// Counts an out-of-order segment; when holding it would pass the bounds, counts the overflow and returns the
    /// sequence number of the first held segment (`seq` if none). (Here, not in `segment`: no reference to the
    /// backlog outlives it, so the calls after it find the backlog uniquely referenced.)
    private mutating func countOutOfOrder(_ seq: UInt32, payloadCount: Int, limits: TCPStreamLimits) -> UInt32? {
        let b = ownBacklog()
        b.outOfOrder &+= 1
        guard b.held.count >= limits.maximumHeldSegments
                || Int(b.heldBytes) + payloadCount > min(limits.maximumHeldBytes, Int(UInt32.max)) else { return nil }
        b.holdOverflows &+= 1
        return b.held.first.map { $0.sequence } ?? seq
    }

    /// A FIN came at `nextSequence` (in sequence): this direction has ended there. Segments held past it are
    /// `.pastFIN` on the packets that carried them, and so are bytes that come later; a peer's acknowledgement of the
    /// FIN (one more than its sequence number) then finds no hole to give up.
    @inlinable public mutating func endAtFIN(deliver: (StreamEvent) -> Void) {
        guard phase != TCPStream.unsynchronised else { return }
        phase = TCPStream.ended
        if backlog != nil { reportHeldPastFIN(deliver: deliver) }
    }

    /// A FIN came at `end`, ahead of `nextSequence` (past a hole): the stream goes on taking the bytes before it and
    /// ends when they reach it (`endAtFIN`), so that bytes at or past it, held or later, are `.pastFIN` rather than
    /// delivered once the hole fills or is given up. True when the stream is now closing (`takesNextBytes` false: the
    /// engine's one-pass path, which knows nothing of the FIN, leaves this side to the stream).
    @inlinable public mutating func endAhead(at end: UInt32) -> Bool {
        guard phase == TCPStream.open, Int32(bitPattern: end &- expected) > 0 else { return false }
        close(at: end)
        return true
    }

    @usableFromInline mutating func close(at end: UInt32) {
        ownBacklog().finAt = end
        phase = TCPStream.closing
    }

    /// A closing stream whose bytes reached its FIN ends there.
    private mutating func endIfAtFIN(deliver: (StreamEvent) -> Void) {
        guard phase == TCPStream.closing, let fin = backlog?.finAt, expected == fin else { return }
        closeAtFIN(deliver: deliver)
    }

    /// A closing stream ends at its FIN (`expected`).
    private mutating func closeAtFIN(deliver: (StreamEvent) -> Void) {
        ownBacklog().finAt = nil
        endAtFIN(deliver: deliver)
    }

    /// (A closing stream's held segments may lie partly or wholly before the FIN it reached: those bytes were
    /// delivered already, and a segment of nothing else is a retransmission.)
    @usableFromInline mutating func reportHeldPastFIN(deliver: (StreamEvent) -> Void) {
        guard let held = backlog?.held, !held.isEmpty else { return }
        let b = ownBacklog()
        for h in held {
            let overlap = Swift.max(0, Int(Int32(bitPattern: expected &- h.sequence)))
            if overlap >= h.wireLength { b.retransmissions &+= 1 } else { deliver(.pastFIN(h.wireLength - overlap, frame: h.frame, time: h.time)) }
        }
        dropHeld()
    }

    /// The peer acknowledged up to `ack`: a held hole before `ack` was lost before capture.
    /// (A closing stream holding nothing gives up the hole before its FIN when the peer acknowledged the FIN itself;
    /// as an open stream's, a hole the peer acknowledged otherwise becomes a gap only with what comes after it.)
    public mutating func peerAcknowledged(_ ack: UInt32, deliver: (StreamEvent) -> Void) {
        guard phase != TCPStream.unsynchronised, let b = backlog else { return }
        if b.held.isEmpty {
            guard phase == TCPStream.closing, let fin = b.finAt, Int32(bitPattern: ack &- fin) > 0 else { return }
        }
        guard Int32(bitPattern: ack &- expected) > 0 else { return }
        let target = b.held.first.map { Int32(bitPattern: ack &- $0.sequence) < 0 ? ack : $0.sequence } ?? ack
        skip(to: target, deliver: deliver)
        drainHeld(afterLoss: true, deliver: deliver)
    }

    /// The flow is ending: release every held segment, with gaps for the holes.
    public mutating func flush(deliver: (StreamEvent) -> Void) {
        while let first = backlog?.held.first {
            skip(to: first.sequence, deliver: deliver)
            drainHeld(afterLoss: true, deliver: deliver)
        }
    }

    /// Bytes held out of order.
    public var heldByteCount: Int { Int(backlog?.heldBytes ?? 0) }

    /// Whether out-of-order segments are held (then an acknowledgement from the peer may release them).
    @inlinable public var holdsSegments: Bool { backlog.map { !$0.held.isEmpty } ?? false }

    /// Holding nothing and not closing: the peer's acknowledgements can change nothing here (the engine's summary).
    @inlinable public var quiet: Bool { phase != TCPStream.closing && !holdsSegments }

    /// `carrier`: the packet that carried the bytes (for those past a FIN ahead).
    private mutating func deliverInOrder(_ payload: ByteView, wireLength: Int, origin: (UInt64, PacketTime)? = nil,
                                         carrier: (UInt64, PacketTime), deliver: (StreamEvent) -> Void) {
        if phase == TCPStream.closing, let fin = backlog?.finAt {
            // Only the bytes before the FIN are the sender's; the stream ends at it.
            let room = Int(Int32(bitPattern: fin &- expected))
            if room < wireLength {
                if room > 0 {
                    takeInOrder(payload.prefix(Swift.min(room, payload.count)), wireLength: room, origin: origin, deliver: deliver)
                }
                closeAtFIN(deliver: deliver)
                deliver(.pastFIN(wireLength - Swift.max(0, room), frame: carrier.0, time: carrier.1))
                return
            }
        }
        takeInOrder(payload, wireLength: wireLength, origin: origin, deliver: deliver)
        endIfAtFIN(deliver: deliver)
    }

    private mutating func takeInOrder(_ payload: ByteView, wireLength: Int, origin: (UInt64, PacketTime)?,
                                      deliver: (StreamEvent) -> Void) {
        if !payload.isEmpty {
            if let (frame, time) = origin { deliver(.heldData(payload, frame: frame, time: time)) } else { deliver(.data(payload)) }
        }
        if wireLength > payload.count {   // cut by snaplen: the rest is missing for good
            let b = ownBacklog(); b.gaps &+= 1; b.gapBytes &+= UInt64(wireLength - payload.count)
            deliver(.gap(wireLength - payload.count))
        }
        expected = expected &+ UInt32(truncatingIfNeeded: wireLength)
    }

    /// Gives up the hole up to `target` (a closing stream's, at most up to its FIN, where it then ends).
    private mutating func skip(to wanted: UInt32, deliver: (StreamEvent) -> Void) {
        var target = wanted
        if phase == TCPStream.closing, let fin = backlog?.finAt, Int32(bitPattern: target &- fin) > 0 { target = fin }
        let missing = Int32(bitPattern: target &- expected)
        guard missing > 0 else { return }
        let b = ownBacklog(); b.gaps &+= 1; b.gapBytes &+= UInt64(missing)
        deliver(.gap(Int(missing)))
        expected = target
        endIfAtFIN(deliver: deliver)
    }

    private mutating func hold(_ seq: UInt32, _ payload: ByteView, _ wireLength: Int, frame: UInt64, time: PacketTime,
                               deliver: (StreamEvent) -> Void) {
        let b = ownBacklog()
        // The held copies of any of these bytes, compared with this one (both are here; held segments are few).
        var differing = 0
        for h in b.held { h.bytes.withUnsafeBytes { differing &+= TCPStream.differingBytes(ByteView($0), h.sequence, payload, seq) } }
        if differing > 0 { deliver(.overlapConflict(differing, frame: frame, time: time)) }
        var i = b.held.count
        while i > 0 && Int32(bitPattern: b.held[i - 1].sequence &- seq) > 0 { i -= 1 }
        if i > 0 && b.held[i - 1].sequence == seq { b.retransmissions &+= 1; return }   // first copy wins
        b.held.insert(HeldSegment(sequence: seq, bytes: Array(payload.raw), wireLength: wireLength, frame: frame, time: time), at: i)
        b.heldBytes += UInt32(payload.count)
    }

    /// How many of the stream bytes both `a` (from sequence number `aStart`) and `b` (from `bStart`) carry differ.
    static func differingBytes(_ a: ByteView, _ aStart: UInt32, _ b: ByteView, _ bStart: UInt32) -> Int {
        // Where b starts relative to a, and the common stretch (sequence numbers wrap: relative offsets only).
        let bInA = Int(Int32(bitPattern: bStart &- aStart))
        let from = Swift.max(0, bInA), to = Swift.min(a.count, bInA + b.count)
        guard from < to else { return 0 }
        var n = 0
        for k in from..<to where a.raw[k] != b.raw[k - bInA] { n &+= 1 }
        return n
    }

    /// Removes the first held segment, `overlap` bytes of which were delivered already, and counts it; true when it
    /// was all delivered (a retransmission). (Apart from `drainHeld`, like `countOutOfOrder`.)
    private mutating func removeFirstHeld(overlap: Int) -> Bool {
        let b = ownBacklog()
        let first = b.held.removeFirst()
        b.heldBytes -= UInt32(first.bytes.count)
        if overlap >= first.wireLength { b.retransmissions &+= 1; return true }
        if overlap > 0 { b.overlaps &+= 1 }
        return false
    }

    /// Delivers held segments that are now in order. `afterLoss`: the hole before them was given up, so their
    /// bytes are reported on the packet that carried them; a filled hole completes on the filling packet, `after`
    /// (its bytes, from its sequence number, just delivered): held bytes it delivered otherwise are a conflict.
    private mutating func drainHeld(afterLoss: Bool = false, after filling: (ByteView, UInt32, UInt64, PacketTime)? = nil,
                                    deliver: (StreamEvent) -> Void) {
        while let first = backlog?.held.first {
            let rel = Int32(bitPattern: first.sequence &- expected)
            if rel > 0 { return }
            let overlap = Int(-Int64(rel))
            if overlap > 0, let (bytes, start, frame, time) = filling {
                let differing = first.bytes.withUnsafeBytes { TCPStream.differingBytes(bytes, start, ByteView($0), first.sequence) }
                if differing > 0 { deliver(.overlapConflict(differing, frame: frame, time: time)) }
            }
            if removeFirstHeld(overlap: overlap) { continue }
            first.bytes.withUnsafeBytes { raw in
                deliverInOrder(ByteView(raw).suffix(from: overlap), wireLength: first.wireLength - overlap,
                               origin: afterLoss ? (first.frame, first.time) : nil, carrier: (first.frame, first.time), deliver: deliver)
            }
        }
    }
}

/// What a TCP stream keeps only once it has held a segment or counted an anomaly (most streams never do).
@usableFromInline final class TCPStreamBacklog {
    /// Held out-of-order segments, sorted by sequence.
    @usableFromInline var held: [TCPStream.HeldSegment] = []
    /// Bytes of `held` (at most `TCPStreamLimits.maximumHeldBytes`, clamped to 32 bits).
    var heldBytes: UInt32 = 0
    var gapBytes: UInt64 = 0
    var gaps: UInt32 = 0
    var retransmissions: UInt32 = 0
    var overlaps: UInt32 = 0
    var outOfOrder: UInt32 = 0
    var holdOverflows: UInt32 = 0
    /// Where a FIN that came ahead of the stream's next byte lies (the stream is closing: `TCPStream.endAhead`).
    var finAt: UInt32?

    init() {}

    /// A copy for a stream that no longer shares it.
    func copy() -> TCPStreamBacklog {
        let c = TCPStreamBacklog()
        c.held = held; c.heldBytes = heldBytes; c.gapBytes = gapBytes; c.gaps = gaps
        c.retransmissions = retransmissions; c.overlaps = overlaps; c.outOfOrder = outOfOrder; c.holdOverflows = holdOverflows
        c.finAt = finAt
        return c
    }
}
