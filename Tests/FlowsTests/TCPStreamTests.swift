import Testing
import Wire
import Flows

/// What a stream handed on, in order of kind.
private struct Seen {
    var out: [UInt8] = []
    var gaps: [Int] = []
    /// `.pastFIN` events: (bytes, frame).
    var pastFIN: [(Int, UInt64)] = []
    /// `.overlapConflict` events: (bytes that differ, frame).
    var conflicts: [(Int, UInt64)] = []

    mutating func record(_ e: StreamEvent) {
        switch e {
        case .data(let d), .heldData(let d, _, _): out.append(contentsOf: d.raw)
        case .gap(let n): gaps.append(n)
        case .pastFIN(let n, let frame, _): pastFIN.append((n, frame))
        case .overlapConflict(let n, let frame, _): conflicts.append((n, frame))
        }
    }
}

/// Feeds segments (sequence, bytes) to one stream direction and records what comes out.
private struct Harness {
    var stream = TCPStream()
    var seen = Seen()
    var limits = TCPStreamLimits()
    var out: [UInt8] { seen.out }
    var gaps: [Int] { seen.gaps }
    var pastFIN: [(Int, UInt64)] { seen.pastFIN }
    var conflicts: [(Int, UInt64)] { seen.conflicts }

    mutating func send(_ seq: UInt32, _ bytes: [UInt8], syn: Bool = false, wire: Int? = nil, frame: UInt64 = 0) {
        var seen = self.seen
        let limits = self.limits
        ByteView.with(bytes) { v in
            stream.segment(sequence: seq, syn: syn, payload: v, wireLength: wire ?? bytes.count, limits: limits, frame: frame) { seen.record($0) }
        }
        self.seen = seen
    }
    mutating func ack(_ a: UInt32) {
        var seen = self.seen
        stream.peerAcknowledged(a) { seen.record($0) }
        self.seen = seen
    }
    mutating func flush() {
        var seen = self.seen
        stream.flush { seen.record($0) }
        self.seen = seen
    }
    mutating func endAhead(_ end: UInt32) -> Bool { stream.endAhead(at: end) }
    mutating func endAtFIN() {
        var seen = self.seen
        stream.endAtFIN { seen.record($0) }
        self.seen = seen
    }
}

@Test func inOrderSegmentsAfterSYN() {
    var h = Harness()
    h.send(99, [], syn: true)
    h.send(100, [1, 2, 3]); h.send(103, [4, 5])
    #expect(h.out == [1, 2, 3, 4, 5] && h.gaps.isEmpty)
}

@Test func midstreamPickup() {
    var h = Harness()
    h.send(5000, [9, 9]); h.send(5002, [8])
    #expect(h.out == [9, 9, 8])
}

@Test func outOfOrderIsHeldThenReleased() {
    var h = Harness()
    h.send(0, [], syn: true)
    h.send(4, [4, 5, 6])        // ahead of a hole
    #expect(h.out.isEmpty)
    h.send(1, [1, 2, 3])        // fills it
    #expect(h.out == [1, 2, 3, 4, 5, 6] && h.gaps.isEmpty && h.stream.outOfOrder == 1)
}

@Test func retransmissionWithDifferentBytesKeepsTheFirstCopy() {
    var h = Harness()
    h.send(0, [], syn: true)
    h.send(1, [1, 2, 3]); h.send(1, [7, 7, 7])
    #expect(h.out == [1, 2, 3] && h.stream.retransmissions == 1)
}

@Test func overlapKeepsOnlyTheNewTail() {
    var h = Harness()
    h.send(0, [], syn: true)
    h.send(1, [1, 2, 3]); h.send(2, [9, 9, 4, 5])
    #expect(h.out == [1, 2, 3, 4, 5] && h.stream.overlaps == 1)
}

@Test func holeAcknowledgedByPeerBecomesAGap() {
    var h = Harness()
    h.send(0, [], syn: true)
    h.send(1, [1, 2]); h.send(6, [6, 7])   // bytes 3..5 never arrive
    h.ack(8)
    #expect(h.out == [1, 2, 6, 7] && h.gaps == [3] && h.stream.gaps == 1 && h.stream.gapBytes == 3)
}

@Test func holeStillOpenAtFlowEndBecomesAGap() {
    var h = Harness()
    h.send(0, [], syn: true)
    h.send(1, [1]); h.send(10, [10])
    h.flush()
    #expect(h.out == [1, 10] && h.gaps == [8])
}

@Test func holdingBoundGivesUpOnTheHole() {
    var h = Harness()
    h.limits.maximumHeldSegments = 2
    h.send(0, [], syn: true)
    h.send(1, [1])
    h.send(10, [10]); h.send(11, [11]); h.send(12, [12])   // third held segment exceeds the bound
    #expect(h.out == [1, 10, 11, 12] && h.gaps == [8] && h.stream.holdOverflows == 1)
}

@Test func snaplenCutSegmentDeliversAGapForTheMissingTail() {
    var h = Harness()
    h.send(0, [], syn: true)
    h.send(1, [1, 2], wire: 5); h.send(6, [6])
    #expect(h.out == [1, 2, 6] && h.gaps == [3])
}

@Test func sequenceWrapAround() {
    var h = Harness()
    h.send(UInt32.max - 1, [], syn: true)
    h.send(UInt32.max, [1, 2, 3]); h.send(2, [4])
    #expect(h.out == [1, 2, 3, 4] && h.gaps.isEmpty)
}

@Test func bytesReleasedAfterAGivenUpHoleKeepTheirOwnFrame() {
    var stream = TCPStream()
    var frames: [UInt64] = []
    let limits = TCPStreamLimits()
    func record(_ e: StreamEvent) { if case .heldData(_, let f, _) = e { frames.append(f) } else if case .data = e { frames.append(0) } }
    ByteView.with([]) { stream.segment(sequence: 0, syn: true, payload: $0, wireLength: 0, limits: limits, frame: 1, deliver: record) }
    ByteView.with([1]) { stream.segment(sequence: 1, syn: false, payload: $0, wireLength: 1, limits: limits, frame: 2, deliver: record) }
    ByteView.with([5]) { stream.segment(sequence: 5, syn: false, payload: $0, wireLength: 1, limits: limits, frame: 3, deliver: record) }
    stream.peerAcknowledged(6, deliver: record)   // the hole 2..4 is given up at a later packet
    #expect(frames == [0, 3])                      // frame 2's bytes in order; the held byte keeps frame 3
}

/// A stream's held segments and counters live in a backlog object made on first need: a copied stream must not
/// share it (value semantics), and a stream that never needs it must not have one.
@Test func copiedStreamsKeepTheirOwnHeldSegmentsAndCounters() {
    var h = Harness()
    h.send(0, [], syn: true)
    h.send(1, [1]); h.send(1, [1])      // a retransmission: the backlog is made
    h.send(5, [5, 6])                   // held ahead of a hole
    var copy = h
    copy.send(2, [2, 3, 4])             // fills the copy's hole only
    #expect(copy.out == [1, 2, 3, 4, 5, 6] && copy.stream.outOfOrder == 1 && copy.stream.retransmissions == 1)
    #expect(!copy.stream.holdsSegments && copy.stream.heldByteCount == 0)
    #expect(h.out == [1] && h.stream.holdsSegments && h.stream.heldByteCount == 2)
    h.send(2, [2, 3, 4]); h.send(2, [2])
    #expect(h.out == [1, 2, 3, 4, 5, 6] && h.stream.retransmissions == 2 && copy.stream.retransmissions == 1)
}

@Test func aStreamWithoutAnomaliesCountsNothing() {
    var h = Harness()
    h.send(0, [], syn: true)
    h.send(1, [1, 2]); h.send(3, [3])
    #expect(h.stream.gaps == 0 && h.stream.gapBytes == 0 && h.stream.retransmissions == 0 && h.stream.overlaps == 0
            && h.stream.outOfOrder == 0 && h.stream.holdOverflows == 0 && !h.stream.holdsSegments)
}

/// A FIN in sequence ends the direction: a segment held past it (sent after the FIN, arrived first) is reported as
/// past the FIN on its own packet, and the peer's acknowledgement of the FIN (its number + 1) gives up no hole and
/// delivers nothing. (Before, that acknowledgement declared a one-byte gap and delivered the held bytes.)
@Test func aSegmentHeldPastAFINIsReportedNotDeliveredWhenTheFINIsAcknowledged() {
    var h = Harness()
    h.send(99, [], syn: true)
    h.send(100, [1, 2, 3], frame: 2)
    h.send(104, [7, 7, 7, 7], frame: 3)   // past the FIN's number (103): held
    #expect(h.out == [1, 2, 3] && h.stream.holdsSegments)
    h.endAtFIN()                          // the FIN at 103, in sequence
    #expect(h.pastFIN.map { $0.0 } == [4] && h.pastFIN.map { $0.1 } == [3])
    #expect(!h.stream.holdsSegments && h.stream.endedAtFIN)
    h.ack(104)
    #expect(h.out == [1, 2, 3] && h.gaps.isEmpty && h.pastFIN.count == 1)
}

/// After the FIN, bytes at or past its number are the sender's past its end, whole or in part; bytes before it
/// are a retransmission. A SYN from ahead does not start the direction afresh (`synJump`): what follows is still past
/// the FIN. (Before, it restarted the stream.)
@Test(arguments: [(UInt32(103), 5, 5), (104, 2, 2), (101, 4, 2), (100, 3, 0)])
func bytesAfterTheFINAreReportedAndRetransmissionsCounted(seq: UInt32, length: Int, past: Int) {
    var h = Harness()
    h.send(99, [], syn: true)
    h.send(100, [1, 2, 3])
    h.endAtFIN()
    h.send(seq, [UInt8](repeating: 9, count: length), frame: 7)
    #expect(h.out == [1, 2, 3] && h.gaps.isEmpty)
    #expect(h.pastFIN.map { $0.0 } == (past > 0 ? [past] : []))
    #expect(h.stream.retransmissions == (past > 0 ? 0 : 1))
    #expect(h.stream.synJump(at: 500) == 398 && h.stream.synJump(at: 99) == 0)
    h.send(500, [], syn: true)
    h.send(501, [4], frame: 8)
    #expect(h.stream.endedAtFIN && h.out == [1, 2, 3] && h.pastFIN.last.map { $0.1 } == 8)
}

/// A SYN retransmitted after data (its number behind what the stream expects) changes nothing: the next bytes are
/// still in order, and a stream ended at its FIN stays ended. (Before, it rewound the stream to the SYN: every later
/// byte was held as out of order, and an ended stream took bytes again.)
@Test(arguments: [false, true])
func aRetransmittedSYNDoesNotRewindTheStream(ended: Bool) {
    var h = Harness()
    h.send(99, [], syn: true)
    h.send(100, [1, 2, 3])
    if ended { h.endAtFIN() }
    h.send(99, [], syn: true)
    h.send(103, [4])
    #expect(h.out == (ended ? [1, 2, 3] : [1, 2, 3, 4]) && !h.stream.holdsSegments && h.gaps.isEmpty)
    #expect(h.stream.endedAtFIN == ended && h.pastFIN.count == (ended ? 1 : 0))
}

/// A FIN past a hole (at 106, bytes 103–105 missing): the stream takes the bytes before it and ends when they reach it,
/// however they come (the hole filled, in one segment crossing the FIN, given up by the peer's acknowledgement of the
/// FIN, or at the flow's end); bytes at or past the FIN, held or later, are `.pastFIN` on their packets, not delivered.
/// (Before, the FIN's place was not remembered and they were delivered once the hole was filled or given up.)
@Test(arguments: ["filled", "crossing", "acknowledged", "flushed"])
func aFINPastAHoleEndsTheStreamWhereItLies(how: String) {
    var h = Harness()
    h.send(99, [], syn: true)
    h.send(100, [1, 2, 3])
    let closing = h.endAhead(106)
    #expect(closing && !h.stream.takesNextBytes && h.stream.synchronized)
    h.send(107, [9, 9], frame: 5)   // past the FIN: held
    switch how {
    case "filled": h.send(103, [4, 5, 6], frame: 6)
    case "crossing": h.send(103, [4, 5, 6, 7], frame: 6)   // one byte at the FIN's number
    case "acknowledged": h.ack(107)
    default: h.flush()
    }
    let delivered: [UInt8] = how == "filled" || how == "crossing" ? [1, 2, 3, 4, 5, 6] : [1, 2, 3]
    #expect(h.out == delivered && h.stream.endedAtFIN && !h.stream.holdsSegments)
    #expect(h.gaps == (delivered.count == 3 ? [3] : []))
    // The held segment (frame 5), and the crossing segment's byte at the FIN (frame 6).
    #expect(h.pastFIN.map { $0.0 }.sorted() == (how == "crossing" ? [1, 2] : [2]))
    h.send(109, [8], frame: 7)
    #expect(h.out == delivered && h.pastFIN.last.map { $0.1 } == 7)
}

/// A FIN behind or at the next byte is not ahead; a SYN from a number ahead leaves a closing stream as it is (its
/// payload too), and a SYN at the next byte's number would skip one: also refused. (Before, it restarted the stream.)
@Test func aFINAheadIsOnlyAheadAndASYNFromAheadLeavesAClosingStream() {
    var h = Harness()
    h.send(99, [], syn: true)
    h.send(100, [1, 2, 3])
    let atNext = h.endAhead(103), behind = h.endAhead(101)
    #expect(!atNext && !behind && h.stream.takesNextBytes)
    let ahead = h.endAhead(110)
    #expect(ahead)
    #expect(h.stream.synJump(at: 103) == 1 && h.stream.synJump(at: 102) == 0 && h.stream.synJump(at: 500) == 398)
    h.send(500, [9], syn: true)
    h.send(501, [4])
    #expect(!h.stream.takesNextBytes && h.out == [1, 2, 3] && h.pastFIN.isEmpty)
    h.send(103, [4, 5, 6, 7, 8, 9, 10])
    #expect(h.out == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] && h.stream.endedAtFIN && h.pastFIN.map { $0.0 } == [1])
}

/// Two copies of the same stream bytes with other content are reported (`.overlapConflict`, the bytes that differ,
/// on the later copy's packet): a held segment and a later held copy (from the same number or overlapping it), and a
/// held segment and the segment that fills the hole before it and runs into it. Which copy an endpoint keeps differs
/// between stacks, so such an overlap is the classic way to show a monitor another stream than the endpoint's; the
/// stream still delivers one copy (the first held, or the filling segment). The same bytes again are no conflict, and
/// bytes already delivered are not kept (zero copy), so a retransmission of them is only counted.
struct OverlapCase: Sendable, CustomTestStringConvertible {
    /// Segments after the SYN: (sequence number, bytes, frame).
    var segments: [(UInt32, [UInt8], UInt64)]
    var delivered: [UInt8]
    /// (bytes that differ, frame of the later copy)
    var conflicts: [(Int, UInt64)]
    var testDescription: String { segments.map { "\($0.0):\($0.1)" }.joined(separator: " ") }

    static let all: [OverlapCase] = [
        OverlapCase(segments: [(5, [5, 6, 7], 2), (5, [5, 9, 7], 3), (1, [1, 2, 3, 4], 4)], delivered: [1, 2, 3, 4, 5, 6, 7],
                    conflicts: [(1, 3)]),
        OverlapCase(segments: [(5, [5, 6, 7], 2), (6, [6, 8, 9], 3), (1, [1, 2, 3, 4], 4)], delivered: [1, 2, 3, 4, 5, 6, 7, 9],
                    conflicts: [(1, 3)]),
        OverlapCase(segments: [(5, [5, 6, 7], 2), (1, [1, 2, 3, 4, 9, 9], 3)], delivered: [1, 2, 3, 4, 9, 9, 7], conflicts: [(2, 3)]),
        OverlapCase(segments: [(5, [5, 6, 7], 2), (3, [3, 4, 5, 6], 3), (1, [1, 2], 4)], delivered: [1, 2, 3, 4, 5, 6, 7], conflicts: []),
        OverlapCase(segments: [(5, [5, 6, 7], 2), (5, [5, 6, 7], 3), (1, [1, 2, 3, 4, 5, 6], 4)], delivered: [1, 2, 3, 4, 5, 6, 7],
                    conflicts: []),
        OverlapCase(segments: [(1, [1, 2, 3], 2), (1, [7, 7, 7], 3)], delivered: [1, 2, 3], conflicts: []),
    ]
}

@Test(arguments: OverlapCase.all)
func overlapsWithOtherContentAreReported(_ c: OverlapCase) {
    let (segments, delivered, conflicts) = (c.segments, c.delivered, c.conflicts)
    var h = Harness()
    h.send(0, [], syn: true)
    for (seq, bytes, frame) in segments { h.send(seq, bytes, frame: frame) }
    #expect(h.out == delivered && h.gaps.isEmpty)
    #expect(h.conflicts.map { $0.0 } == conflicts.map { $0.0 } && h.conflicts.map { $0.1 } == conflicts.map { $0.1 }, "\(h.conflicts)")
}
