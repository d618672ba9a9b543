import Testing
import Wire
@testable import Policy

@Suite struct PrefixMatchTests {
    func p(_ s: String) -> IPPrefix { try! IPPrefix.parse(s).get() }
    func ip(_ s: String) -> IPAddress { IPAddress(s)! }

    @Test func mostSpecificWinsIPv4AndIPv6() {
        var t = PrefixTrie()
        t.insert(p("0.0.0.0/0"), value: 0)
        t.insert(p("10.0.0.0/8"), value: 1)
        t.insert(p("10.1.0.0/16"), value: 2)
        t.insert(p("10.1.2.0/24"), value: 3)
        t.insert(p("10.1.2.3/32"), value: 4)
        t.insert(p("2001:db8::/32"), value: 5)
        t.insert(p("2001:db8:1::/48"), value: 6)
        #expect(t.lookup(ip("10.1.2.3")) == 4)
        #expect(t.lookup(ip("10.1.2.4")) == 3)
        #expect(t.lookup(ip("10.1.3.4")) == 2)
        #expect(t.lookup(ip("10.2.0.1")) == 1)
        #expect(t.lookup(ip("192.168.0.1")) == 0)
        #expect(t.lookup(ip("2001:db8:1::7")) == 6)
        #expect(t.lookup(ip("2001:db8:2::7")) == 5)
        #expect(t.lookup(ip("2001:db9::1")) == -1, "IPv4 0/0 must not cover IPv6")
        t.insert(p("::/0"), value: 7)
        #expect(t.lookup(ip("2001:db9::1")) == 7)
        #expect(t.lookup(ip("192.168.0.1")) == 0, "IPv6 ::/0 must not cover IPv4")
    }

    @Test func matchesBruteForceOnRandomPrefixes() {
        var rng = SplitMix(seed: 62443)
        var t = PrefixTrie()
        var list: [(IPPrefix, Int32)] = []
        for i in 0..<400 {
            let v6 = i % 3 == 0
            let a = v6 ? IPAddress(high: 0x2001_0db8_0000_0000 | (rng.next() & 0xFFFF_FFFF), low: rng.next())
                       : IPAddress(v4: UInt32(truncatingIfNeeded: rng.next()) & 0x0AFF_FFFF | 0x0A00_0000)
            let len = v6 ? 32 + Int(rng.next() % 97) : 96 + 8 + Int(rng.next() % 25)
            let prefix = IPPrefix(network: a, length: len)
            t.insert(prefix, value: Int32(i))
            list.removeAll { $0.0 == prefix }
            list.append((prefix, Int32(i)))
        }
        for _ in 0..<3000 {
            let v6 = rng.next() % 3 == 0
            // Probe near stored prefixes so that many probes hit.
            let base = list[Int(rng.next() % UInt64(list.count))].0.network
            let a = v6 ? IPAddress(high: base.isIPv4 ? 0x2001_0db8_0000_0000 : base.high, low: rng.next())
                       : IPAddress(v4: base.isIPv4 ? base.v4 ^ UInt32(rng.next() % 4096) : UInt32(truncatingIfNeeded: rng.next()))
            let expected = list.filter { $0.0.contains(a) }.max { $0.0.length < $1.0.length }?.1 ?? -1
            #expect(t.lookup(a) == expected, "\(a)")
        }
    }

    @Test func assetsWinOverZoneNetworks() throws {
        let text = """
        version: 1
        zones:
          - {name: a, security_level: 1, networks: [10.1.0.0/16, 10.1.2.0/24, "2001:db8:a::/48"]}
          - {name: b, security_level: 2, networks: [10.2.0.0/16, 10.9.9.9/32]}
        assets:
          - {name: jump, address: 10.1.2.3, zone: b}
          - {name: v6host, address: "2001:db8:a::5", zone: b}
          - {name: nine, address: 10.9.9.9, zone: b}
        """
        let (cp, errors) = loadPolicy(text: text)
        #expect(errors.isEmpty, "\(errors)")
        let policy = try #require(cp)
        #expect(policy.host(ip("10.1.2.3")) == HostInfo(zone: 1, asset: 0))
        #expect(policy.host(ip("10.1.2.4")) == HostInfo(zone: 0, asset: -1))
        #expect(policy.host(ip("10.1.200.4")) == HostInfo(zone: 0, asset: -1))
        #expect(policy.host(ip("2001:db8:a::5")) == HostInfo(zone: 1, asset: 1))
        #expect(policy.host(ip("2001:db8:a::6")) == HostInfo(zone: 0, asset: -1))
        #expect(policy.host(ip("10.9.9.9")) == HostInfo(zone: 1, asset: 2), "an asset wins over a /32 network")
        #expect(policy.host(ip("10.3.0.1")) == .unknown)
    }

    @Test(arguments: [
        ("10.0.0.0/8", "10.0.0.0/8"), ("10.1.2.3", "10.1.2.3/32"), ("2001:db8::/32", "2001:db8::/32"),
        ("::ffff:10.0.0.0/104", "10.0.0.0/8"), ("0.0.0.0/0", "0.0.0.0/0"),
    ])
    func parsesCIDR(_ text: String, _ printed: String) throws {
        #expect(try IPPrefix.parse(text).get().description == printed)
    }

    @Test(arguments: ["10.0.0.0/33", "10.0.0/8", "10.0.0.0/", "10.0.0.0/-1", "gateway", "2001:db8::/129", "10.0.0.1/8"])
    func refusesBadCIDR(_ text: String) {
        #expect((try? IPPrefix.parse(text).get()) == nil)
    }
}

/// A small deterministic generator for randomized tests.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
