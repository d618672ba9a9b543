import Testing
import Wire
import Flows
import Records

/// corelight/community-id-spec baseline vectors (seed 0 unless stated), as quoted in siem-formats.md §4.4.
@Test(arguments: [
    ("128.232.110.120", UInt16(34855), "66.35.250.204", UInt16(80), UInt8(6), UInt16(0), "1:LQU9qZlK+B5F3KDmev6m5PMibrg="),
    ("66.35.250.204", 80, "128.232.110.120", 34855, 6, 0, "1:LQU9qZlK+B5F3KDmev6m5PMibrg="),
    ("128.232.110.120", 34855, "66.35.250.204", 80, 6, 1, "1:3V71V58M3Ksw/yuFALMcW0LAHvc="),
    ("192.168.1.52", 54585, "8.8.8.8", 53, 17, 0, "1:d/FP5EW3wiY1vCndhwleRRKHowQ="),
])
func communityIDVectors(src: String, sport: UInt16, dst: String, dport: UInt16, proto: UInt8, seed: UInt16, expected: String) throws {
    let a = Endpoint(ip: try #require(IPAddress(src)), port: sport)
    let b = Endpoint(ip: try #require(IPAddress(dst)), port: dport)
    #expect(CommunityID.compute(source: a, destination: b, ipProtocol: proto, seed: seed) == expected)
    // The engine's allocation-free hasher gives the same text, whichever endpoint comes first.
    #expect(CommunityIDHasher.text(a, b, ipProtocol: proto, seed: seed) == InlineText(expected))
    #expect(CommunityIDHasher.text(b, a, ipProtocol: proto, seed: seed) == InlineText(expected))
}

@Test(arguments: 0..<200)
func communityIDHasherAgreesWithTheSpecImplementation(n: Int) {
    // IPv4 and IPv6, equal addresses (ordered by port), every transport that has ports and some that do not.
    var rng = n &* 2_654_435_761 &+ 1
    func next() -> UInt64 { rng = rng &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407; return UInt64(bitPattern: Int64(rng)) }
    let v6 = n % 3 == 0
    func address() -> IPAddress { v6 ? IPAddress(high: next(), low: next()) : IPAddress(v4: UInt32(truncatingIfNeeded: next() % 5)) }
    let a = Endpoint(ip: address(), port: UInt16(truncatingIfNeeded: next() % 4))
    let b = Endpoint(ip: n % 7 == 0 ? a.ip : address(), port: UInt16(truncatingIfNeeded: next()))
    let proto: UInt8 = [6, 17, 1, 58, 132, 46, 0][n % 7]
    let seed = UInt16(truncatingIfNeeded: n % 4)
    #expect(CommunityIDHasher.text(a, b, ipProtocol: proto, seed: seed)
            == InlineText(CommunityID.compute(source: a, destination: b, ipProtocol: proto, seed: seed)))
}

@Test func communityIDWithoutPorts() throws {
    let a = Endpoint(ip: try #require(IPAddress("10.1.12.1")), port: 0)
    let b = Endpoint(ip: try #require(IPAddress("10.1.12.2")), port: 0)
    #expect(CommunityID.compute(source: a, destination: b, ipProtocol: 46) == "1:KHlLkgoJW7ifUTyTSgyVfkFHzKw=")
}

/// A context that leaves its Community ID pending computes it from its endpoints when read: the same text the
/// flow's record carries (the spec vector's flow, and one without ports); setting the text ends the pending state.
@Test func aPendingContextComputesItsCommunityIDWhenRead() throws {
    let a = Endpoint(ip: try #require(IPAddress("128.232.110.120")), port: 34855)
    let b = Endpoint(ip: try #require(IPAddress("66.35.250.204")), port: 80)
    var c = FlowContext(initiator: b, responder: a, transport: .tcp)
    #expect(c.communityIDText.isEmpty && !c.communityIDPending)
    c.setCommunityIDPending(ipProtocol: 6)
    #expect(c.communityIDPending && c.communityIDProtocol == 6)
    #expect(c.communityIDText == InlineText("1:LQU9qZlK+B5F3KDmev6m5PMibrg="))
    #expect(c.communityID == "1:LQU9qZlK+B5F3KDmev6m5PMibrg=")
    c.setCommunityIDPending(ipProtocol: 46)
    #expect(c.communityIDText == InlineText(CommunityID.compute(source: a, destination: b, ipProtocol: 46)))
    c.communityIDText = InlineText("1:set")
    #expect(!c.communityIDPending && c.communityIDText == InlineText("1:set"))
}
