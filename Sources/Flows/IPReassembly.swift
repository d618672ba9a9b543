import Wire
import Decode

/// Bounds of IP reassembly: datagrams pending at once, pieces a datagram may arrive in, and how long (seconds of
/// packet time, from its first fragment) a datagram may take to complete.
public struct IPReassemblyLimits: Sendable {
    /// Datagrams being reassembled at once; a fragment of a new one beyond this gives up the oldest (reported).
    public var maximumDatagrams = 64
    /// Separate pieces a datagram may be in while it is reassembled (adjacent fragments join into one piece).
    public var maximumPieces = 64
    /// Seconds of packet time from a datagram's first fragment seen to its giving up (Linux's `ipfrag_time`).
    public var timeoutSeconds: Int64 = 30
    /// The defaults.
    public init() {}
}

/// Why a datagram was given up while it was reassembled (an `ip` anomaly each: `kind`).
public enum IPFragmentProblem: UInt8, Sendable, CaseIterable {
    /// A fragment overlapped bytes already received with different bytes: the datagram has two readings, as hosts
    /// differ in which they keep (an IDS evasion; Linux and RFC 5722 drop such a datagram, as done here).
    case overlapConflict
    /// A fragment reached past 65,535 bytes of datagram ("ping of death"; IPv6: of payload, jumbograms aside).
    case tooLarge
    /// A fragment that is not the last whose length is not a multiple of 8, a second last fragment ending elsewhere,
    /// or bytes past the end the last fragment set.
    case badLength
    /// More separate pieces than `IPReassemblyLimits.maximumPieces`.
    case tooManyPieces
    /// A fragment cut by the capture's snapshot length: its bytes are not all there to reassemble.
    case truncated
    /// The datagram did not complete within the timeout (`value`: its payload bytes held).
    case incomplete
    /// The table was full: the oldest datagram was given up for a new one (`value`: its payload bytes held).
    case tableFull

    /// The anomaly kind.
    public var kind: StaticString {
        switch self {
        case .overlapConflict: "fragment_overlap_conflict"
        case .tooLarge: "fragment_too_large"
        case .badLength: "fragment_bad_length"
        case .tooManyPieces: "too_many_fragments"
        case .truncated: "fragment_truncated"
        case .incomplete: "fragments_incomplete"
        case .tableFull: "fragment_table_full"
        }
    }
}

/// Reassembles IPv4 and IPv6 datagrams from their fragments (RFC 791, RFC 8200 section 4.5, the checks of RFC 815's
/// hole descriptors), each into a buffer of its own set aside once: the link header and IP headers of its first
/// fragment (offset 0; the frame a remote-SPAN or overlay packet carried, for a fragment inside one; IPv6: the
/// headers before the fragment header, which the datagram loses), then its payload, so that a completed datagram reads
/// as one unfragmented frame (`Outcome.complete`). Overlaps
/// with the same bytes are accepted (a resent fragment); overlaps with different bytes give the datagram up, as
/// Linux does, and are reported, since hosts that keep the first or the last reading would see different data
/// than the monitor. Pending datagrams are found by a scan of at most `maximumDatagrams` keys: fragments are rare on
/// a plant network, and nothing here runs for an unfragmented packet.
public final class IPReassembly {
    /// What a fragment did.
    public enum Outcome {
        /// Kept; its datagram is not complete yet.
        case held
        /// Its datagram is complete: the frame (valid until the next call on this table), its link type (the first
        /// fragment's `frameLinkType`) and the number of fragments.
        case complete(frame: ByteView, linkType: Int32, fragments: Int)
        /// Its datagram was given up (the datagram's payload bytes held, for the anomaly's value).
        case rejected(IPFragmentProblem, held: Int)
        /// A fragment of a datagram that completed, seen after it completed within the datagram's time span (from
        /// its first fragment to its completion) widened by `copyWindowMicroseconds`: the capture's second copy (a
        /// SPAN or TAP delivering each packet twice), dropped. Taken into reassembly, the copies of the fragments that
        /// come after the original's last would begin a datagram that never completes (`fragments_incomplete` after
        /// the timeout, for nothing on the wire).
        case copyOfCompleted
    }

    /// How far outside a completed datagram's time span a fragment of it is still taken for a capture's copy.
    public static let copyWindowMicroseconds: Int64 = 10_000

    private struct Key: Equatable {
        var source: IPAddress
        var destination: IPAddress
        var identification: UInt32
        var version: UInt8
        /// IPv4's protocol (IPv6 keys its datagrams without it: 0).
        var ipProtocol: UInt8
        var vlan: UInt16
    }

    private struct Pending {
        var key = Key(source: IPAddress(high: 0, low: 0), destination: IPAddress(high: 0, low: 0), identification: 0, version: 0,
                      ipProtocol: 0, vlan: 0)
        var inUse = false
        /// Order of arrival (the oldest is given up when the table is full) and its first fragment's second.
        var sequence: UInt64 = 0
        var firstSecond: Int64 = 0
        var firstMicroseconds: Int64 = 0
        /// Bytes of link and IP header stored in front of the payload (0: the first fragment not seen yet).
        var prefixLength = 0
        /// From the first fragment: its `lengthBefore`, where its IP header and (IPv6) the byte naming the fragment
        /// header lie in the prefix, what that byte is to name instead, and its frame's link type.
        var lengthBefore = 0
        var ipAt = 0
        var nextHeaderAt = -1
        var ipProtocol: UInt8 = 0
        var linkType: Int32 = 0
        /// The payload's length once the last fragment set it, -1 before.
        var total = -1
        var pieces = 0
        var fragments = 0
        var held = 0
    }

    /// Room in front of a payload for the first fragment's link header (Ethernet with up to 4 tags, 30 bytes; SLL2,
    /// 20) and IP headers (IPv4's, 60; IPv6's with extension headers, up to what is left: a longer one is `tooLarge`).
    static let prefixRoom = 256
    static let payloadRoom = 65_535
    static let slotBytes = prefixRoom + payloadRoom

    public let limits: IPReassemblyLimits
    private var slots: [Pending]
    /// Per slot, `maximumPieces` received ranges of the payload, sorted and disjoint (start, end).
    private let pieces: UnsafeMutablePointer<(Int32, Int32)>
    /// Per slot, `slotBytes` of buffer: address space, touched only where fragments are written.
    private let buffers: UnsafeMutableRawPointer
    private var arrivals: UInt64 = 0
    /// Datagrams pending.
    public private(set) var pendingCount = 0

    /// Creates an empty table.
    public init(limits: IPReassemblyLimits = .init()) {
        self.limits = limits
        let n = max(1, limits.maximumDatagrams)
        slots = [Pending](repeating: Pending(), count: n)
        pieces = .allocate(capacity: n * max(1, limits.maximumPieces))
        buffers = .allocate(byteCount: n * Self.slotBytes, alignment: 64)
    }

    deinit { pieces.deallocate(); buffers.deallocate() }

    /// Takes fragment `f` of `frame`, seen at `second` of packet time (a whole second: tests and the decoder's fuzz
    /// target).
    public func add(_ f: IPFragment, frame: ByteView, second: Int64) -> Outcome {
        add(f, frame: frame, time: PacketTime(seconds: second, microseconds: 0))
    }

    /// Takes fragment `f` of `frame`, seen at `time`.
    public func add(_ f: IPFragment, frame: ByteView, time: PacketTime) -> Outcome {
        let second = time.seconds, now = time.totalMicroseconds
        let key = Key(source: f.source, destination: f.destination, identification: f.identification, version: f.version,
                      ipProtocol: f.version == 4 ? f.ipProtocol : 0, vlan: f.vlan)
        for c in completed where c.key == key && now >= c.first &- Self.copyWindowMicroseconds
            && now <= c.last &+ Self.copyWindowMicroseconds { return .copyOfCompleted }
        var s = -1, free = -1
        for i in slots.indices {
            if slots[i].inUse {
                if slots[i].key == key { s = i; break }
            } else if free < 0 {
                free = i
            }
        }
        if s < 0 {
            if free < 0 {
                // Full: the oldest gives way (`takeEviction` reports it).
                free = oldest()
                lastEviction = slots[free].held
                release(free)
            }
            s = free
            arrivals &+= 1
            slots[s] = Pending(key: key, inUse: true, sequence: arrivals, firstSecond: second, firstMicroseconds: now)
            pendingCount &+= 1
        }
        let first = slots[s].firstMicroseconds
        let outcome = place(f, frame: frame, in: s)
        if case .complete = outcome {
            completed[nextCompleted] = (key, min(first, now), max(first, now))
            nextCompleted = (nextCompleted + 1) % completed.count
        }
        return outcome
    }

    /// The datagrams completed last (ring, oldest overwritten), with their first fragment's and completion's times: a
    /// fragment of one seen then is a copy.
    private var completed = [(key: Key, first: Int64, last: Int64)](
        repeating: (Key(source: IPAddress(high: 0, low: 0), destination: IPAddress(high: 0, low: 0), identification: 0, version: 0,
                        ipProtocol: 0, vlan: 0), Int64.min / 2, Int64.min / 2), count: 16)
    private var nextCompleted = 0

    /// The payload bytes held by the datagram the last `add` gave up to make room for a new one (`tableFull`), nil
    /// when it gave none up; cleared by reading.
    public func takeEviction() -> Int? {
        defer { lastEviction = nil }
        return lastEviction
    }
    private var lastEviction: Int?

    /// Gives up one datagram whose first fragment came more than the timeout before `second`: its payload bytes held;
    /// nil when none is due. (Called until nil at each sweep.)
    public func nextExpired(at second: Int64) -> Int? {
        guard pendingCount > 0 else { return nil }
        for i in slots.indices where slots[i].inUse && second &- slots[i].firstSecond >= limits.timeoutSeconds {
            let held = slots[i].held
            release(i)
            return held
        }
        return nil
    }

    /// Forgets every pending datagram (the end of the input, or a step of packet time): how many there were.
    @discardableResult
    public func removeAll() -> Int {
        let n = pendingCount
        for i in slots.indices where slots[i].inUse { release(i) }
        return n
    }

    private func oldest() -> Int {
        var best = 0
        for i in slots.indices where slots[i].sequence < slots[best].sequence { best = i }
        return best
    }

    private func release(_ s: Int) {
        slots[s].inUse = false
        pendingCount &-= 1
    }

    private func rejected(_ problem: IPFragmentProblem, _ s: Int) -> Outcome {
        let held = slots[s].held
        release(s)
        return .rejected(problem, held: held)
    }

    private func place(_ f: IPFragment, frame: ByteView, in s: Int) -> Outcome {
        let start = f.offset, end = f.offset + f.payloadLength
        guard f.lengthBefore + end <= Self.payloadRoom else { return rejected(.tooLarge, s) }
        guard f.capturedPayload == f.payloadLength else { return rejected(.truncated, s) }
        if f.moreFragments {
            guard f.payloadLength % 8 == 0 else { return rejected(.badLength, s) }
            if slots[s].total >= 0 && end > slots[s].total { return rejected(.badLength, s) }
        } else {
            if slots[s].total >= 0 && slots[s].total != end { return rejected(.badLength, s) }
            let ranges = pieces + s * limits.maximumPieces
            if slots[s].pieces > 0 && Int(ranges[slots[s].pieces - 1].1) > end { return rejected(.badLength, s) }
            slots[s].total = end
        }
        let buffer = buffers + s * Self.slotBytes
        let payload = buffer + Self.prefixRoom
        guard let bytes = frame.raw.baseAddress else { return rejected(.truncated, s) }
        let data = bytes + f.payloadStart
        // Overlaps must repeat what is there.
        let ranges = pieces + s * limits.maximumPieces
        let count = slots[s].pieces
        for i in 0..<count {
            let a = max(start, Int(ranges[i].0)), b = min(end, Int(ranges[i].1))
            if a < b && !Self.same(payload + a, data + (a - start), b - a) { return rejected(.overlapConflict, s) }
        }
        if start < end {
            // The ranges it touches or adjoins merge with it into one.
            var first = 0
            while first < count && Int(ranges[first].1) < start { first += 1 }
            var last = first
            var merged = (Int32(start), Int32(end))
            while last < count && Int(ranges[last].0) <= end {
                merged = (min(merged.0, ranges[last].0), max(merged.1, ranges[last].1))
                last += 1
            }
            let newCount = count - (last - first) + 1
            guard newCount <= limits.maximumPieces else { return rejected(.tooManyPieces, s) }
            (payload + start).copyMemory(from: data, byteCount: end - start)
            if last - first != 1 {
                // Shift the ranges after the merged ones into place.
                let shift = 1 - (last - first)
                if shift > 0 {
                    var i = count - 1
                    while i >= last { ranges[i + shift] = ranges[i]; i -= 1 }
                } else if shift < 0 {
                    for i in last..<count { ranges[i + shift] = ranges[i] }
                }
            }
            ranges[first] = merged
            slots[s].pieces = newCount
            slots[s].held = 0
            for i in 0..<newCount { slots[s].held += Int(ranges[i].1 - ranges[i].0) }
        }
        if start == 0 {
            // The first fragment's link and IP headers go right in front of the payload.
            let prefix = f.prefixEnd - f.frameStart
            if prefix <= Self.prefixRoom {
                (payload - prefix).copyMemory(from: bytes + f.frameStart, byteCount: prefix)
                slots[s].prefixLength = prefix
                slots[s].lengthBefore = f.lengthBefore
                slots[s].ipAt = f.ipStart - f.frameStart
                slots[s].nextHeaderAt = f.nextHeaderAt < 0 ? -1 : f.nextHeaderAt - f.frameStart
                slots[s].ipProtocol = f.ipProtocol
                slots[s].linkType = f.frameLinkType
            } else {
                return rejected(.tooLarge, s)
            }
        }
        slots[s].fragments += 1
        guard slots[s].prefixLength > 0, slots[s].total >= 0, slots[s].pieces == 1,
              ranges[0].0 == 0, Int(ranges[0].1) == slots[s].total else { return .held }
        // Complete: the IP header now describes the whole datagram, unfragmented (an IPv4 header's checksum is left as
        // it came: nothing here verifies checksums).
        let p = slots[s], total = p.total
        guard p.lengthBefore + total <= Self.payloadRoom else { return rejected(.tooLarge, s) }
        let prefix = p.prefixLength, frameStart = payload - prefix
        let length = UInt16(p.lengthBefore + total)
        if p.nextHeaderAt < 0 {
            (frameStart + p.ipAt).storeBytes(of: length.bigEndian, toByteOffset: 2, as: UInt16.self)
            (frameStart + p.ipAt).storeBytes(of: UInt16(0), toByteOffset: 6, as: UInt16.self)
        } else {
            (frameStart + p.ipAt).storeBytes(of: length.bigEndian, toByteOffset: 4, as: UInt16.self)
            (frameStart + p.nextHeaderAt).storeBytes(of: p.ipProtocol, as: UInt8.self)
        }
        let fragments = p.fragments, linkType = p.linkType
        release(s)
        return .complete(frame: ByteView(UnsafeRawBufferPointer(start: frameStart, count: prefix + total)), linkType: linkType,
                         fragments: fragments)
    }

    /// Whether `count` bytes at `a` and `b` are the same.
    private static func same(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ count: Int) -> Bool {
        for i in 0..<count where a.load(fromByteOffset: i, as: UInt8.self) != b.load(fromByteOffset: i, as: UInt8.self) { return false }
        return true
    }
}
