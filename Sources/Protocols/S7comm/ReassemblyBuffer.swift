import Wire

/// A bounded two-lane (one per flow side) byte buffer for messages that arrive in pieces:
/// COTP DT TPDUs without EOT, S7 userdata data units with "last data unit: no".
///
/// The storage is one array, allocated the first time a flow needs it and reused afterwards
/// (`removeAll` never happens; lanes just reset their fill), so reassembly costs one allocation
/// per flow at most. Appends past `laneCapacity` are refused: the caller drops the message and
/// reports an anomaly, because an unbounded buffer is a memory-exhaustion lever for an attacker.
struct ReassemblyBuffer {
    /// The most bytes one side may have pending. Not stored: the buffer lives in every flow's dissector state, where
    /// each byte is memory the kernel zeroes.
    static var laneCapacity: Int { S7commDissector.reassemblyLimit }
    @inline(__always) var laneCapacity: Int { ReassemblyBuffer.laneCapacity }
    /// Bytes held per lane (at most `laneCapacity`; 32 bits, for the state's size). First: the per-PDU check reads
    /// them, not the storage.
    private var fill0: Int32 = 0, fill1: Int32 = 0
    /// Both lanes back to back; empty until first use.
    private(set) var storage: [UInt8] = []

    init() {}

    /// Bytes held for `side`.
    @inline(__always) func count(_ side: FlowSide) -> Int { Int(side == .initiator ? fill0 : fill1) }

    /// Forgets what `side` holds.
    mutating func reset(_ side: FlowSide) { if side == .initiator { fill0 = 0 } else { fill1 = 0 } }

    /// Appends `bytes` to `side`'s lane; false (and nothing appended) when it would overflow.
    mutating func append(_ bytes: ByteView, side: FlowSide) -> Bool {
        let fill = count(side)
        guard bytes.count <= laneCapacity - fill else { return false }
        if storage.isEmpty { storage = [UInt8](repeating: 0, count: 2 * laneCapacity) }
        if bytes.count > 0 {
            let base = (side == .initiator ? 0 : laneCapacity) + fill
            storage.withUnsafeMutableBytes { dst in
                dst.baseAddress!.advanced(by: base).copyMemory(from: bytes.raw.baseAddress!, byteCount: bytes.count)
            }
        }
        if side == .initiator { fill0 += Int32(bytes.count) } else { fill1 += Int32(bytes.count) }
        return true
    }

    /// Moves the storage out (so the caller can read a lane while mutating its own state) and
    /// leaves an empty array behind; give it back with `restore`.
    mutating func takeStorage() -> [UInt8] { var s: [UInt8] = []; swap(&s, &storage); return s }

    /// Puts back storage taken with `takeStorage`.
    mutating func restore(_ s: inout [UInt8]) { swap(&s, &storage) }

    /// The byte range of `side`'s lane inside the storage.
    func laneRange(_ side: FlowSide) -> (start: Int, count: Int) {
        (side == .initiator ? 0 : laneCapacity, count(side))
    }
}
