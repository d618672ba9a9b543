import Wire

// IEEE 1815-2012 §8.2: the first user-data octet of every link frame is the transport header.
//
//   bit 7  FIN   last segment of an application fragment
//   bit 6  FIR   first segment of an application fragment
//   bits 0-5     SEQUENCE, incremented (mod 64) for every segment a station sends
//
// Segments of one fragment are sent FIR ... FIN with consecutive sequence numbers; a FIR segment
// discards whatever partial fragment the receiver holds; a repeated sequence number is a duplicate.

/// The transport header octet (IEEE 1815-2012 §8.2.1).
public struct DNP3TransportHeader: Sendable, Equatable {
    /// The raw octet.
    public var rawValue: UInt8
    /// Creates a header from its octet.
    @inlinable public init(_ rawValue: UInt8) { self.rawValue = rawValue }
    /// FIN: last segment of the fragment.
    @inlinable public var fin: Bool { rawValue & 0x80 != 0 }
    /// FIR: first segment of the fragment.
    @inlinable public var fir: Bool { rawValue & 0x40 != 0 }
    /// The 6-bit sequence number.
    @inlinable public var sequence: UInt8 { rawValue & 0x3F }
}

/// What adding one transport segment produced.
public struct DNP3TransportResult {
    /// The whole application fragment when this segment completed one; valid until the next `add`.
    public var fragment: ByteView?
    /// How many segments the fragment was built from.
    public var segments: Int = 0
    /// An anomaly this segment caused (`transport` layer), if any.
    public var anomaly: StaticString?
    /// Its numeric detail (a sequence number or a length).
    public var anomalyValue: Int64?
}

/// Reassembles application fragments from transport segments, per (flow side, link source,
/// link destination), into a fixed set of slots whose buffers are allocated once per flow and reused.
///
/// Bounded twice: `slotCount` fragments in progress at once (the least recently used is dropped
/// when a new one needs room) and `fragmentCapacity` octets each. A slot's buffer starts at
/// `initialCapacity` (the spec's default maximum fragment size, 2048) and only grows, by doubling,
/// for a flow that actually sends larger fragments; Wireshark accepts up to 60 segments (14,940
/// octets), so the bound sits just above that and larger fragments are reported and dropped.
public final class DNP3Reassembler {
    /// Fragments in progress at once per flow.
    public static let slotCount = 4
    /// Largest application fragment reassembled.
    public static let fragmentCapacity = 16384
    /// Octets a slot's buffer starts with.
    public static let initialCapacity = 2048

    struct Slot {
        var inUse = false
        var side: FlowSide = .initiator
        var source: UInt16 = 0
        var destination: UInt16 = 0
        var lastSequence: UInt8 = 0
        var length = 0
        var segments = 0
        var lastUse: UInt64 = 0
        var storage: UnsafeMutableRawPointer?
        var capacity = 0
    }

    var slots = [Slot](repeating: Slot(), count: DNP3Reassembler.slotCount)
    var clock: UInt64 = 0

    /// Creates empty slots; buffers come with the first fragment that needs one.
    public init() {}
    deinit { for s in slots { s.storage?.deallocate() } }

    /// Number of fragments in progress.
    public var inProgress: Int { slots.reduce(0) { $0 + ($1.inUse ? 1 : 0) } }

    /// Each fragment in progress, oldest slot first: the side it comes from and the bytes taken so far.
    func forEachInProgress(_ body: (FlowSide, Int) -> Void) {
        for slot in slots where slot.inUse { body(slot.side, slot.length) }
    }

    func find(_ side: FlowSide, _ source: UInt16, _ destination: UInt16) -> Int {
        for i in 0..<slots.count where slots[i].inUse && slots[i].side == side
            && slots[i].source == source && slots[i].destination == destination { return i }
        return -1
    }

    func freeSlot() -> (index: Int, evicted: Bool) {
        var oldest = 0
        for i in 0..<slots.count {
            if !slots[i].inUse { return (i, false) }
            if slots[i].lastUse < slots[oldest].lastUse { oldest = i }
        }
        return (oldest, true)
    }

    /// Adds one segment: `payload` is the user data after the transport header.
    public func add(_ header: DNP3TransportHeader, payload: ByteView, side: FlowSide,
                    source: UInt16, destination: UInt16) -> DNP3TransportResult {
        clock &+= 1
        var result = DNP3TransportResult()
        var index = find(side, source, destination)

        if header.fir {
            if index >= 0 {
                // IEEE 1815-2012 §8.2.2: a new FIR discards the partial fragment.
                result.anomaly = "incomplete_fragment_discarded"; result.anomalyValue = Int64(slots[index].length)
                slots[index].inUse = false
            }
            if header.fin {
                result.fragment = payload; result.segments = 1
                return result
            }
            if index < 0 {
                let free = freeSlot()
                index = free.index
                if free.evicted, result.anomaly == nil {
                    result.anomaly = "reassembly_slots_exhausted"; result.anomalyValue = Int64(slots[index].length)
                }
            }
            slots[index].inUse = true; slots[index].side = side
            slots[index].source = source; slots[index].destination = destination
            slots[index].lastSequence = header.sequence; slots[index].length = 0; slots[index].segments = 0
            slots[index].lastUse = clock
            append(payload, to: index, result: &result)
            return result
        }

        guard index >= 0 else {
            result.anomaly = "segment_without_fir"; result.anomalyValue = Int64(header.sequence)
            return result
        }
        let expected = (slots[index].lastSequence &+ 1) & 0x3F
        if header.sequence == slots[index].lastSequence {
            // A repeated segment (link-layer retry): keep the fragment, ignore the copy.
            result.anomaly = "duplicate_segment"; result.anomalyValue = Int64(header.sequence)
            return result
        }
        guard header.sequence == expected else {
            result.anomaly = "out_of_sequence_segment"; result.anomalyValue = Int64(header.sequence)
            slots[index].inUse = false
            return result
        }
        slots[index].lastSequence = header.sequence
        slots[index].lastUse = clock
        append(payload, to: index, result: &result)
        guard slots[index].inUse, header.fin else { return result }
        slots[index].inUse = false
        result.fragment = ByteView(UnsafeRawBufferPointer(start: slots[index].storage, count: slots[index].length))
        result.segments = slots[index].segments
        return result
    }

    func append(_ payload: ByteView, to index: Int, result: inout DNP3TransportResult) {
        let length = slots[index].length, needed = length + payload.count
        guard needed <= DNP3Reassembler.fragmentCapacity else {
            result.anomaly = "fragment_too_long"; result.anomalyValue = Int64(needed)
            slots[index].inUse = false
            return
        }
        if needed > slots[index].capacity {
            var capacity = max(slots[index].capacity, DNP3Reassembler.initialCapacity)
            while capacity < needed { capacity *= 2 }
            capacity = min(capacity, DNP3Reassembler.fragmentCapacity)
            let grown = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
            if let old = slots[index].storage {
                grown.copyMemory(from: old, byteCount: length)
                old.deallocate()
            }
            slots[index].storage = grown; slots[index].capacity = capacity
        }
        if let base = payload.raw.baseAddress, payload.count > 0, let storage = slots[index].storage {
            (storage + length).copyMemory(from: base, byteCount: payload.count)
        }
        slots[index].length = length + payload.count
        slots[index].segments += 1
    }

    /// Drops every fragment in progress from `side` (stream gap); returns how many were dropped.
    @discardableResult public func drop(side: FlowSide) -> Int {
        var n = 0
        for i in 0..<slots.count where slots[i].inUse && slots[i].side == side { slots[i].inUse = false; n += 1 }
        return n
    }
}
