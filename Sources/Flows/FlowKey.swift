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
    public init(v4Source source: UInt32, destination: UInt32, sourcePort: UInt16, destinationPort: UInt16, ipProtocol: UInt8,
                vlan: UInt16 = 0) {
        let s = IPAddress(v4: source), d = IPAddress(v4: destination)
        let sourceIsLow = s < d || (s == d && sourcePort <= destinationPort)
        self.init(lowIP: sourceIsLow ? s : d, highIP: sourceIsLow ? d : s,
                  lowPort: sourceIsLow ? sourcePort : destinationPort, highPort: sourceIsLow ? destinationPort : sourcePort,
                  ipProtocol: ipProtocol, vlan: vlan)
    }

    /// Whether `packet` (which must belong to this key) was sent by the low endpoint.
    @inlinable public func sentByLow(_ p: PacketView) -> Bool { p.source == lowIP && p.sourcePort == lowPort }

    /// A cheap, well-mixed 64-bit hash under `key` (no SipHash on the per-packet path), symmetric by construction:
    /// the endpoints' hashes are combined by operations that ignore their order, so either order of a packet's
    /// addresses gives the same value without putting them in canonical order first (the replay loop hashes packets a
    /// few places ahead straight from their bytes, `v4Hash`). Keyed, and not linear in the addresses: with the plain
    /// sum of two multiplied addresses it was, flows whose address pairs add up alike (a sender choosing them: a
    /// scan or a spoofed flood) all had one hash, and the table's lookups became walks along every one of them.
    @inlinable @inline(__always) public func fastHash(_ key: FlowHashKey) -> UInt64 {
        FlowKey.finish(FlowKey.combine(FlowKey.endpointHash(lowIP.high, lowIP.low, lowPort, key),
                                       FlowKey.endpointHash(highIP.high, highIP.low, highPort, key)),
                       ipProtocol: ipProtocol, vlan: vlan & key.vlanMask)
    }

    /// `fastHash` of the IPv4 key (on VLAN `vlan`, 0: untagged) of a packet from `source`:`sourcePort` to
    /// `destination`:`destinationPort`, from the packet's own fields (either direction gives the same value).
    @inlinable @inline(__always)
    public static func v4Hash(source: UInt32, destination: UInt32, sourcePort: UInt16, destinationPort: UInt16, ipProtocol: UInt8,
                              vlan: UInt16 = 0, key: FlowHashKey) -> UInt64 {
        // `endpointHash(0, 0xFFFF_0000_0000 | address, port, key)`, the mapped word and the key taken together.
        @inline(__always) func endpoint(_ address: UInt32, _ port: UInt16) -> UInt64 {
            (UInt64(address) ^ UInt64(port) << 48 ^ key.mappedV4) &* 0x9E37_79B9_7F4A_7C15
        }
        return finish(combine(endpoint(source, sourcePort), endpoint(destination, destinationPort)), ipProtocol: ipProtocol,
                      vlan: vlan & key.vlanMask)
    }

    /// One endpoint's hash: the key mixed in before the multiplication, so which bits of two endpoints' hashes
    /// differ cannot be told from their addresses (the high word needs no key of its own: it only adds known bits).
    @inlinable @inline(__always)
    static func endpointHash(_ high: UInt64, _ low: UInt64, _ port: UInt16, _ key: FlowHashKey) -> UInt64 {
        ((low ^ UInt64(port) << 48 ^ key.value) &* 0x9E37_79B9_7F4A_7C15) ^ (high &* 0xBF58_476D_1CE4_E5B9)
    }

    /// The two endpoints' hashes, order-free: the sum alone is kept by changes that move one up and the other down
    /// by as much (flipping a bit in which two addresses differ, in both), the exclusive or added to it is not. (Not
    /// rotated by 32: `finish` folds the halves onto each other, and the two terms' changes then cancelled.)
    @inlinable @inline(__always)
    static func combine(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let x = a ^ b
        return (a &+ b) &+ (x << 17 | x >> 47)
    }

    @inlinable @inline(__always)
    static func finish(_ sum: UInt64, ipProtocol: UInt8, vlan: UInt16) -> UInt64 {
        var h = sum ^ (UInt64(ipProtocol) << 8 | UInt64(vlan) << 16)
        h = (h ^ (h >> 32)) &* 0x94D0_49BB_1331_11EB
        return h ^ (h >> 29)
    }
}

/// The secret a flow table's hashes are keyed with: drawn from the system's random source for each table, so a
/// sender cannot choose flows that share a hash. Nothing written depends on it (only where flows sit in the index).
public struct FlowHashKey: Sendable {
    /// The key's bits.
    public let value: UInt64
    /// The low word of an IPv4 address (`IPAddress(v4:)`: 0xFFFF above the address) under the key, for `v4Hash`.
    public let mappedV4: UInt64
    /// What of a VLAN ID the hashes take: all of it, or none when flows are tracked across VLANs (`ignoringVLANs`), so
    /// that every hash of a flow (the table's, the prefetch hints', the workers' dispatch) agrees with its key's.
    public private(set) var vlanMask: UInt16 = 0xFFFF

    /// A key of the given bits (tests).
    @inlinable public init(value: UInt64) { self.value = value; mappedV4 = 0xFFFF_0000_0000 ^ value }

    /// This key, its hashes taking no VLAN ID when `ignoring` (the keys hashed must then carry none: `FlowKey.vlan` 0).
    public func ignoringVLANs(_ ignoring: Bool) -> FlowHashKey {
        var k = self
        k.vlanMask = ignoring ? 0 : 0xFFFF
        return k
    }

    /// A fresh random key.
    public static func random() -> FlowHashKey { FlowHashKey(value: UInt64.random(in: .min ... .max)) }

    /// The worker in `0..<workers` a flow of hash `hash` is dispatched to: by the hash's high bits (a multiply's
    /// best-mixed ones).
    @inlinable @inline(__always)
    public static func worker(ofHash hash: UInt64, workers: Int) -> Int { Int(((hash >> 32) &* UInt64(workers)) >> 32) }
}
