import Wire
import Decode
import Flows

/// Which worker a packet goes to: its flow key's hash under a key (`FlowKey.fastHash`, the flow table's: symmetric,
/// so both directions of a flow meet in one engine, and every packet the engine puts in a flow goes there). Packets
/// that do not decode (not IP, malformed) all go to worker 0, so their anomaly records and alerts come from one
/// place, as with one worker; IP fragments go to every worker (`everyWorker`).
///
/// Keyed because a sender must not choose where its flows go: under the earlier unkeyed fold of the two addresses
/// and the two ports, flows chosen for one worker (half of all source ports, or every tuple with the same exclusive
/// or of addresses and of ports, whatever the ports) all went there, and on a live capture that worker's ring filled
/// and dropped while the others idled. A live capture draws its key at random (`liveKey`); a replay uses
/// `replayKey`, fixed, so that the same input is split the same way every time (under a binding `--max-flows`, each
/// worker's evictions, and so the records, depend on the split). The keyed hash costs about 15 instructions more a
/// packet than the fold did; two workers replaying the mixed plant measured +0.6 % wall time (SE 0.9 %, 120 rounds).
public enum FlowDispatch {
    /// What `worker(for:)` gives for a fragment of an IP datagram (`PacketDecoder.ipFragment`): its flow is known
    /// only once the datagram is whole, so it is worker 0's packet (which counts it and reports its problems) and
    /// every other worker gets a copy (`Engine.processFragmentCopy`); each reassembles, and the one whose flow the
    /// datagram is processes it (`Engine.workerShare`). Above any worker index (`--workers` is at most 64).
    public static let everyWorker = 255

    /// Whether worker `index` acts on a packet `worker(for:)` gave `w` as its own (worker 0 for `everyWorker`).
    @inline(__always)
    static func owns(_ w: Int, _ index: Int) -> Bool { w == index || (w == everyWorker && index == 0) }

    /// Whether worker `index` gets a copy of a packet `worker(for:)` gave `w` (a fragment, not worker 0).
    @inline(__always)
    static func copies(_ w: Int, _ index: Int) -> Bool { w == everyWorker && index != 0 }

    /// The key every replay dispatches by.
    public static let replayKey = FlowHashKey(value: 0x2545_F491_4F6C_DD1D)

    /// A fresh key for a live capture.
    public static func liveKey() -> FlowHashKey { .random() }

    /// The worker index in `0..<workers` for a packet, under `key`.
    @inline(__always)
    public static func worker(for bytes: ByteView, linkType: Int32, workers: Int, key: FlowHashKey) -> Int {
        guard workers > 1 else { return 0 }
        if linkType == PacketDecoder.ethernet, let h = commonShapeHash(bytes, key: key) { return index(h, workers: workers) }
        if let h = uncommonShapeHash(bytes, linkType: linkType, key: key) { return index(h, workers: workers) }
        let packet: PacketView
        do {
            guard let p = try PacketDecoder.decode(bytes, linkType: linkType) else { return 0 }
            packet = p
        } catch {
            if PacketDecoder.ipFragment(bytes, linkType: linkType, error: error) != nil { return everyWorker }
            return 0
        }
        return index(flowHash(packet, key: key), workers: workers)
    }

    /// `worker(for:)` of the record whose pcap header is at `header` (its packet 16 bytes on), as the whole-file walks
    /// read them: `ethernet` (the link type's, taken once per walk) and `workers > 1` known, the common shape hashed
    /// here and only other packets handed to `worker(for:)`.
    @inline(always)
    static func worker(forRecordAt header: UnsafeRawPointer, ethernet: Bool, linkType: Int32, workers: Int, key: FlowHashKey) -> Int {
        let captured = Int(header.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
        let bytes = ByteView(UnsafeRawBufferPointer(start: header + 16, count: captured))
        if ethernet, let hash = commonShapeHash(bytes, key: key) { return index(hash, workers: workers) }
        return worker(for: bytes, linkType: linkType, workers: workers, key: key)
    }

    /// `flowHash` straight from the bytes for exactly the packets `PacketDecoder.decode` takes its one-pass
    /// path for (untagged Ethernet II, IPv4 without options, not a fragment, TCP or UDP (not to an overlay tunnel's
    /// port: its flow is the frame it carries) with consistent lengths:
    /// the same checks), whose addresses and ports are then these, and for the ICMP packets of that shape (which
    /// `decode` takes with ports 0, whatever follows the IPv4 header); nil for any other packet. Building the decoder's
    /// whole `PacketView` for a packet that is usually another worker's cost more than the rest of the dispatch.
    @inline(__always)
    static func commonShapeHash(_ bytes: ByteView, key: FlowHashKey) -> UInt64? { shapeHash(bytes, key: key, typeAt: 12, vlan: 0) }

    /// `commonShapeHash` for the same packets in a frame with one 802.1Q tag (keyed with its VLAN ID, as `decode`
    /// keys it) or a Linux cooked capture's (SLL, SLL2), each read from where the rest lies as in an untagged Ethernet
    /// frame; nil for other packets. Out of line: only what the common shape did not take comes here (the reader
    /// thread of a live capture from a SPAN port that keeps the tags decoded each such packet whole).
    @inline(never)
    static func uncommonShapeHash(_ bytes: ByteView, linkType: Int32, key: FlowHashKey) -> UInt64? {
        guard let u = PacketDecoder.uncommonFrame(bytes, linkType: linkType) else { return nil }
        return shapeHash(u.frame, key: key, typeAt: u.typeAt, vlan: u.vlan)
    }

    /// `commonShapeHash` of `bytes` read as an untagged Ethernet frame whose type is at `typeAt` (an SLL2 frame's lies
    /// before the view), keyed with `vlan`.
    @inline(__always)
    static func shapeHash(_ bytes: ByteView, key: FlowHashKey, typeAt: Int, vlan: UInt16) -> UInt64? {
        let n = bytes.count
        guard n >= 42, let p = bytes.raw.baseAddress else { return nil }
        @inline(__always) func u16(_ o: Int) -> UInt16 { UInt16(bigEndian: p.loadUnaligned(fromByteOffset: o, as: UInt16.self)) }
        @inline(__always) func u32(_ o: Int) -> UInt32 { UInt32(bigEndian: p.loadUnaligned(fromByteOffset: o, as: UInt32.self)) }
        guard u16(typeAt) == 0x0800, p.load(fromByteOffset: 14, as: UInt8.self) == 0x45, u16(20) & 0x3FFF == 0 else { return nil }
        // The IPv4 total length must be at least 20; TCP's and UDP's tests below imply it. TCP is tested first (a switch
        // tested ICMP and UDP first).
        let ipEnd = 14 + Int(u16(16))
        let proto = p.load(fromByteOffset: 23, as: UInt8.self)
        if _fastPath(proto == 6) {
            // (A header of at least 20 bytes within the IP packet and the capture implies both hold 54 bytes; the
            // capture's length is tested first, before the data offset is read.)
            guard n >= 54 else { return nil }
            let dataOffset = Int(p.load(fromByteOffset: 46, as: UInt8.self) >> 4) * 4
            guard dataOffset >= 20, 34 + dataOffset <= Swift.min(ipEnd, n) else { return nil }
        } else if proto == 17 {
            guard ipEnd >= 42, u16(38) >= 8, !PacketDecoder.isOverlayPort(u16(36)) else { return nil }
        } else if proto == 1 {
            // ICMP: `decode` checks nothing past the IPv4 header and leaves the ports 0 (the plant's pings went through
            // the whole decoder here, ~300 instructions each).
            guard ipEnd >= 34 else { return nil }
            return FlowKey.v4Hash(source: u32(26), destination: u32(30), sourcePort: 0, destinationPort: 0, ipProtocol: 1, vlan: vlan,
                                  key: key)
        } else {
            return nil
        }
        return FlowKey.v4Hash(source: u32(26), destination: u32(30), sourcePort: u16(34), destinationPort: u16(36),
                              ipProtocol: proto, vlan: vlan, key: key)
    }

    /// The hash of `p`'s flow key under `key` (what `commonShapeHash` computes from the bytes).
    @inline(__always)
    static func flowHash(_ p: PacketView, key: FlowHashKey) -> UInt64 { FlowKey(packet: p).fastHash(key) }

    /// Maps a hash to a worker (`FlowHashKey.worker(ofHash:workers:)`).
    @inline(__always)
    public static func index(_ hash: UInt64, workers: Int) -> Int { FlowHashKey.worker(ofHash: hash, workers: workers) }
}
