import Wire
import Decode
import Flows

/// Which worker a packet goes to: a symmetric hash of its flow key (VLAN, both addresses, both ports,
/// transport), so both directions of a flow meet in one engine. Packets that do not decode (not IP,
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
        return index(FlowKey(packet: packet).fastHash, workers: workers)
    }

    /// Maps a flow hash to a worker. The flow table indexes by the hash's low bits and tags by its high bits;
    /// remixing first keeps each worker's share of hashes evenly spread over its own table.
    @inline(__always)
    public static func index(_ hash: UInt64, workers: Int) -> Int {
        var x = hash &* 0xD6E8_FEB8_6659_FD93
        x ^= x >> 32
        return Int(((x & 0xFFFF_FFFF) &* UInt64(workers)) >> 32)
    }
}
