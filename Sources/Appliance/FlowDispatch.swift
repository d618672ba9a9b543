import Wire
import Decode
import Flows

/// Which worker a packet goes to: a symmetric hash of its two addresses and two ports (a function of its flow
/// key, the same for both directions), so both directions of a flow meet in one engine. One multiply, not the
/// flow table's `fastHash`: with workers reading the file themselves every worker computes it for every packet. Packets that do not decode (not IP,
/// malformed, fragments) all go to worker 0, so their anomaly records and alerts come from one place, as
/// with one worker.
public enum FlowDispatch {
    /// The worker index in `0..<workers` for a packet.
    @inline(__always)
    public static func worker(for bytes: ByteView, linkType: Int32, workers: Int) -> Int {
        guard workers > 1 else { return 0 }
        if linkType == PacketDecoder.ethernet, let h = commonShapeHash(bytes) { return index(h, workers: workers) }
        let packet: PacketView
        do {
            guard let p = try PacketDecoder.decode(bytes, linkType: linkType) else { return 0 }
            packet = p
        } catch {
            return 0
        }
        return index(symmetricHash(packet), workers: workers)
    }

    /// `worker(for:)` of the record whose pcap header is at `header` (its packet 16 bytes on), as the whole-file
    /// walks read them: `ethernet` (the link type's, taken once per walk) and `workers > 1` known, the common shape
    /// hashed here and only other packets handed to `worker(for:)`.
    @inline(always)
    static func worker(forRecordAt header: UnsafeRawPointer, ethernet: Bool, linkType: Int32, workers: Int) -> Int {
        let captured = Int(header.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
        let bytes = ByteView(UnsafeRawBufferPointer(start: header + 16, count: captured))
        if ethernet, let hash = commonShapeHash(bytes) { return index(hash, workers: workers) }
        return worker(for: bytes, linkType: linkType, workers: workers)
    }

    /// `symmetricHash` straight from the bytes for exactly the packets `PacketDecoder.decode` takes its one-pass
    /// path for (untagged Ethernet II, IPv4 without options, not a fragment, TCP or UDP with consistent lengths:
    /// the same checks), whose addresses and ports are then these, and for the ICMP packets of that shape (which
    /// `decode` takes with ports 0, whatever follows the IPv4 header); nil for any other packet. Building the decoder's
    /// whole `PacketView` for a packet that is usually another worker's cost more than the rest of the dispatch.
    @inline(__always)
    static func commonShapeHash(_ bytes: ByteView) -> UInt64? {
        let n = bytes.count
        guard n >= 42, let p = bytes.raw.baseAddress else { return nil }
        @inline(__always) func u16(_ o: Int) -> UInt16 { UInt16(bigEndian: p.loadUnaligned(fromByteOffset: o, as: UInt16.self)) }
        @inline(__always) func u32(_ o: Int) -> UInt32 { UInt32(bigEndian: p.loadUnaligned(fromByteOffset: o, as: UInt32.self)) }
        guard u16(12) == 0x0800, p.load(fromByteOffset: 14, as: UInt8.self) == 0x45, u16(20) & 0x3FFF == 0 else { return nil }
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
            guard ipEnd >= 42, u16(38) >= 8 else { return nil }
        } else if proto == 1 {
            // ICMP: `decode` checks nothing past the IPv4 header and leaves the ports 0 (the plant's pings went through
            // the whole decoder here, ~300 instructions each).
            guard ipEnd >= 34 else { return nil }
            return mix(addresses: UInt64(u32(26) ^ u32(30)), ports: 0)
        } else {
            return nil
        }
        // IPv4 addresses are ::ffff:a.b.c.d: the XOR of the two 128-bit forms is the XOR of the 32-bit ones.
        return mix(addresses: UInt64(u32(26) ^ u32(30)), ports: u16(34) ^ u16(36))
    }

    /// Addresses and ports folded with XOR (so the order of the two endpoints does not matter), then mixed.
    @inline(__always)
    static func symmetricHash(_ p: PacketView) -> UInt64 {
        mix(addresses: p.source.low ^ p.destination.low ^ (p.source.high ^ p.destination.high) &* 0xBF58_476D_1CE4_E5B9,
            ports: p.sourcePort ^ p.destinationPort)
    }

    @inline(__always)
    static func mix(addresses: UInt64, ports: UInt16) -> UInt64 {
        let q = UInt64(ports)
        return (addresses ^ q << 48 ^ q << 20) &* 0x9E37_79B9_7F4A_7C15
    }

    /// Maps a hash to a worker by its high bits (a multiply's best-mixed ones).
    @inline(__always)
    public static func index(_ hash: UInt64, workers: Int) -> Int {
        Int(((hash >> 32) &* UInt64(workers)) >> 32)
    }
}
