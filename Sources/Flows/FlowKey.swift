import Wire
import Decode

/// A direction-free flow key: (VLAN, transport, the two endpoints in canonical order), so both
/// directions of a conversation find the same flow.
public struct FlowKey: Hashable, Sendable {
    /// The lower endpoint's address (ordered by address, then port).
    public var lowIP: IPAddress
    /// The higher endpoint's address.
    public var highIP: IPAddress
    /// The lower endpoint's port.
    public var lowPort: UInt16
    /// The higher endpoint's port.
    public var highPort: UInt16
    /// IP protocol number.
    public var ipProtocol: UInt8
    /// VLAN id (0 untagged).
    public var vlan: UInt16

    /// Creates a key from its parts (already in canonical order).
    @inlinable public init(lowIP: IPAddress, highIP: IPAddress, lowPort: UInt16, highPort: UInt16, ipProtocol: UInt8, vlan: UInt16) {
        self.lowIP = lowIP; self.highIP = highIP; self.lowPort = lowPort; self.highPort = highPort
        self.ipProtocol = ipProtocol; self.vlan = vlan
    }

    /// The key of `packet`, and whether its sender is the low endpoint.
    @inlinable @inline(__always)
    public init(packet p: PacketView) {
        let sourceIsLow = p.source < p.destination || (p.source == p.destination && p.sourcePort <= p.destinationPort)
        if sourceIsLow {
            lowIP = p.source; highIP = p.destination; lowPort = p.sourcePort; highPort = p.destinationPort
        } else {
            lowIP = p.destination; highIP = p.source; lowPort = p.destinationPort; highPort = p.sourcePort
        }
        ipProtocol = p.ipProtocol; vlan = p.vlan
    }

    @inlinable public static func == (a: FlowKey, b: FlowKey) -> Bool {
        a.lowIP == b.lowIP && a.highIP == b.highIP && a.lowPort == b.lowPort && a.highPort == b.highPort
            && a.ipProtocol == b.ipProtocol && a.vlan == b.vlan
    }

    /// The key of an untagged IPv4 TCP/UDP packet from its addresses and ports (a prefetch hint's key).
    @inlinable @inline(__always)
    public init(v4Source source: UInt32, destination: UInt32, sourcePort: UInt16, destinationPort: UInt16, ipProtocol: UInt8) {
        let s = IPAddress(v4: source), d = IPAddress(v4: destination)
        let sourceIsLow = s < d || (s == d && sourcePort <= destinationPort)
        self.init(lowIP: sourceIsLow ? s : d, highIP: sourceIsLow ? d : s,
                  lowPort: sourceIsLow ? sourcePort : destinationPort, highPort: sourceIsLow ? destinationPort : sourcePort,
                  ipProtocol: ipProtocol, vlan: 0)
    }

    /// Whether `packet` (which must belong to this key) was sent by the low endpoint.
    @inlinable public func sentByLow(_ p: PacketView) -> Bool { p.source == lowIP && p.sourcePort == lowPort }

    /// A cheap, well-mixed 64-bit hash (no SipHash on the per-packet path), symmetric by construction: the
    /// endpoints' hashes are added, so either order of a packet's addresses gives the same value without putting
    /// them in canonical order first (the replay loop hashes packets a few places ahead straight from their bytes,
    /// `v4Hash`).
    @inlinable @inline(__always) public var fastHash: UInt64 {
        FlowKey.finish(FlowKey.endpointHash(lowIP.high, lowIP.low, lowPort) &+ FlowKey.endpointHash(highIP.high, highIP.low, highPort),
                       ipProtocol: ipProtocol, vlan: vlan)
    }

    /// `fastHash` of the untagged IPv4 key of a packet from `source`:`sourcePort` to `destination`:`destinationPort`,
    /// from the packet's own fields (either direction gives the same value).
    @inlinable @inline(__always)
    public static func v4Hash(source: UInt32, destination: UInt32, sourcePort: UInt16, destinationPort: UInt16, ipProtocol: UInt8) -> UInt64 {
        let mapped: UInt64 = 0xFFFF_0000_0000   // IPAddress(v4:)'s low word, high word 0
        return finish(endpointHash(0, mapped | UInt64(source), sourcePort) &+ endpointHash(0, mapped | UInt64(destination), destinationPort),
                      ipProtocol: ipProtocol, vlan: 0)
    }

    @inlinable @inline(__always)
    static func endpointHash(_ high: UInt64, _ low: UInt64, _ port: UInt16) -> UInt64 {
        ((low ^ UInt64(port) << 48) &* 0x9E37_79B9_7F4A_7C15) ^ (high &* 0xBF58_476D_1CE4_E5B9)
    }

    @inlinable @inline(__always)
    static func finish(_ sum: UInt64, ipProtocol: UInt8, vlan: UInt16) -> UInt64 {
        var h = sum ^ (UInt64(ipProtocol) << 8 | UInt64(vlan) << 16)
        h = (h ^ (h >> 32)) &* 0x94D0_49BB_1331_11EB
        return h ^ (h >> 29)
    }
}
