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
        let packet: PacketView
        do {
            guard let p = try PacketDecoder.decode(bytes, linkType: linkType) else { return 0 }
            packet = p
        } catch {
            return 0
        }
        return index(symmetricHash(packet), workers: workers)
    }

    /// Addresses and ports folded with XOR (so the order of the two endpoints does not matter), then mixed.
    @inline(__always)
    static func symmetricHash(_ p: PacketView) -> UInt64 {
        let addresses = p.source.low ^ p.destination.low ^ (p.source.high ^ p.destination.high) &* 0xBF58_476D_1CE4_E5B9
        let ports = UInt64(p.sourcePort ^ p.destinationPort)
        return (addresses ^ ports << 48 ^ ports << 20) &* 0x9E37_79B9_7F4A_7C15
    }

    /// Maps a hash to a worker by its high bits (a multiply's best-mixed ones).
    @inline(__always)
    public static func index(_ hash: UInt64, workers: Int) -> Int {
        Int(((hash >> 32) &* UInt64(workers)) >> 32)
    }
}
