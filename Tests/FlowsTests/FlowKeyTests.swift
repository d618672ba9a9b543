import Testing
import Wire
import Flows

/// A deterministic stream of tuples (xorshift), so a failure names a reproducible case.
private struct TupleStream {
    var state: UInt64
    mutating func next() -> UInt64 { state ^= state << 13; state ^= state >> 7; state ^= state << 17; return state }
}

// The replay loop hashes packets ahead straight from their bytes (`v4Hash`); the table finds flows by `fastHash` of
// their canonical key. If the two ever differed, every hint would miss (and the first packet's hint would name
// no slot): outputs stay right, but the test keeps the pipeline honest.
@Test(arguments: 0..<4)
func v4HashIsTheKeysHashInBothDirections(seed: Int) {
    let hashKey = seed == 0 ? FlowHashKey(value: 0) : FlowHashKey.random()
    var tuples = TupleStream(state: 0x9E37_79B9_7F4A_7C15 &+ UInt64(seed))
    for _ in 0..<500 {
        let r = tuples.next(), q = tuples.next()
        var a = UInt32(truncatingIfNeeded: r), b = UInt32(truncatingIfNeeded: r >> 32)
        let pa = UInt16(truncatingIfNeeded: q)
        var pb = UInt16(truncatingIfNeeded: q >> 16)
        if q & (1 << 40) != 0 { b = a }                    // same address both sides: ports decide the order
        if q & (1 << 41) != 0 { pb = pa; if a == b { a &+= 1 } }
        let proto: UInt8 = q & (1 << 42) != 0 ? 17 : 6
        let vlan: UInt16 = q & (1 << 43) != 0 ? UInt16(truncatingIfNeeded: q >> 48) & 0x0FFF : 0   // tagged or not
        let key = FlowKey(v4Source: a, destination: b, sourcePort: pa, destinationPort: pb, ipProtocol: proto, vlan: vlan)
        let forward = FlowKey.v4Hash(source: a, destination: b, sourcePort: pa, destinationPort: pb, ipProtocol: proto, vlan: vlan,
                                     key: hashKey)
        let backward = FlowKey.v4Hash(source: b, destination: a, sourcePort: pb, destinationPort: pa, ipProtocol: proto, vlan: vlan,
                                      key: hashKey)
        #expect(forward == key.fastHash(hashKey))
        #expect(backward == key.fastHash(hashKey))
    }
}

@Test func hashTellsFlowsApart() {
    let hashKey = FlowHashKey(value: 0x0123_4567_89AB_CDEF)
    let a = FlowKey(v4Source: 0x0A0A_0001, destination: 0x0A14_0001, sourcePort: 49152, destinationPort: 502, ipProtocol: 6)
    let b = FlowKey(v4Source: 0x0A0A_0001, destination: 0x0A14_0001, sourcePort: 49153, destinationPort: 502, ipProtocol: 6)
    let c = FlowKey(v4Source: 0x0A0A_0001, destination: 0x0A14_0001, sourcePort: 49152, destinationPort: 502, ipProtocol: 17)
    var d = a; d.vlan = 7
    let v6 = FlowKey(lowIP: IPAddress(high: 0x2001_0DB8_0000_0000, low: 1), highIP: IPAddress(high: 0x2001_0DB8_0000_0000, low: 2),
                     lowPort: 502, highPort: 49152, ipProtocol: 6, vlan: 0)
    let hashes = Set([a.fastHash(hashKey), b.fastHash(hashKey), c.fastHash(hashKey), d.fastHash(hashKey), v6.fastHash(hashKey)])
    #expect(hashes.count == 5)
    // The table's index uses the low bits for the position and the high 32 bits as a tag: both must vary.
    var low = Set<UInt64>(), high = Set<UInt64>()
    for port in UInt16(40000)..<UInt16(41024) {
        let h = FlowKey.v4Hash(source: 0x0A0A_0001, destination: 0x0A14_0001, sourcePort: port, destinationPort: 502, ipProtocol: 6, key: hashKey)
        low.insert(h & 1023); high.insert(h >> 32)
    }
    #expect(low.count > 600)     // 1,024 keys into 1,024 positions: about 647 distinct when uniform
    #expect(high.count == 1024)
}

/// Flows a sender can choose so that the unkeyed, linear hash gave them all one value: address pairs with one sum
/// (pings from 10.0.x.y to 10.1.x.y counting up and down), and pairs made by flipping, in both addresses, bits in
/// which the two differ (the sum stays). Under a key, even zero, they hash apart: a table of them is not one
/// long probe walk. (Fixed keys: a random one could, rarely, give two of them one hash by chance, and the test would
/// flicker; `v4HashIsTheKeysHashInBothDirections` runs with random keys.)
@Test(arguments: [FlowHashKey(value: 0), FlowHashKey(value: 0x0123_4567_89AB_CDEF)])
func chosenFlowsDoNotShareAHash(hashKey: FlowHashKey) {
    var sums = Set<UInt64>()
    for i in UInt32(0)..<2_000 {
        sums.insert(FlowKey.v4Hash(source: 0x0A00_0000 &+ i, destination: 0x0A01_0000 &- i, sourcePort: 0, destinationPort: 0,
                                   ipProtocol: 1, key: hashKey))
    }
    #expect(sums.count == 2_000)
    let a: UInt32 = 0x0A00_00FF, b: UInt32 = 0x0A00_FF00   // they differ in bits 0-15
    var flips = Set<UInt64>()
    for m in UInt32(0)..<1_024 {
        let flip = (m & 0xFF) | (m >> 8) << 12   // bits 0-7 and 12-13
        flips.insert(FlowKey.v4Hash(source: a ^ flip, destination: b ^ flip, sourcePort: 40_000, destinationPort: 502,
                                    ipProtocol: 6, key: hashKey))
    }
    #expect(flips.count == 1_024)
    // The key changes the hash.
    let k = FlowKey(v4Source: a, destination: b, sourcePort: 40_000, destinationPort: 502, ipProtocol: 6)
    #expect(k.fastHash(hashKey) != k.fastHash(FlowHashKey(value: hashKey.value ^ 1)))
}

/// The engine's one-pass path compares a slot's key with a packet's as 64-bit words (`Engine.isTCPv4Key`): the key
/// must start its flow slot and keep this layout.
@Test func layoutIsWhatTheEngineComparesAsWords() {
    #expect(MemoryLayout<FlowState>.offset(of: \FlowState.key) == 0)
    #expect(MemoryLayout<IPAddress>.offset(of: \IPAddress.high) == 0)
    #expect(MemoryLayout<IPAddress>.offset(of: \IPAddress.low) == 8)
    #expect(MemoryLayout<FlowKey>.offset(of: \FlowKey.lowIP) == 0)
    #expect(MemoryLayout<FlowKey>.offset(of: \FlowKey.highIP) == 16)
    #expect(MemoryLayout<FlowKey>.offset(of: \FlowKey.lowPort) == 32)
    #expect(MemoryLayout<FlowKey>.offset(of: \FlowKey.highPort) == 34)
    #expect(MemoryLayout<FlowKey>.offset(of: \FlowKey.ipProtocol) == 36)
    #expect(MemoryLayout<FlowKey>.offset(of: \FlowKey.vlan) == 38)
    #expect(MemoryLayout<FlowKey>.size == 40)
}
