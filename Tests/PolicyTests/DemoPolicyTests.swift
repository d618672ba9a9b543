import Testing
import Wire
import Records
@testable import Policy
@testable import Detection

/// The repository root, from this file's path (Tests/PolicyTests/...).
let repositoryRoot: String = {
    var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast(3)
    return parts.joined(separator: "/")
}()

@Suite struct DemoPolicyTests {
    @Test func demoPolicyIsValid() throws {
        let (p, errors) = checkPolicyFile(path: repositoryRoot + "/Fixtures/demo/policy.yaml")
        #expect(errors.isEmpty, "\(errors.map(\.description))")
        let policy = try #require(p)
        #expect(policy.zones.map(\.name) == ["enterprise", "supervisory", "cell-a", "substation"])
        #expect(policy.zones[2].securityLevel == 3, "the SL vector's highest entry")
        #expect(policy.conduits.map(\.name) == ["hmi-to-cell-a", "eng-to-cell-a", "hmi-to-substation", "enterprise-to-supervisory"])
        // The plant's hosts land where the story needs them.
        #expect(policy.host(IPAddress("127.0.2.50")!) == HostInfo(zone: 1, asset: 2))
        #expect(policy.host(IPAddress("127.0.9.9")!) == .unknown)
    }

    @Test func demoHostsResolveToTheStoryVerdicts() throws {
        let (p, _) = checkPolicyFile(path: repositoryRoot + "/Fixtures/demo/policy.yaml")
        let policy = try #require(p)
        func kind(_ a: String, _ b: String, _ port: UInt16) -> FlowVerdict.Kind {
            policy.resolve(initiator: Endpoint(ip: IPAddress(a)!, port: 40000), responder: Endpoint(ip: IPAddress(b)!, port: port),
                           transport: .tcp).kind
        }
        #expect(kind("127.0.2.10", "127.0.3.10", 502) == .conduit)
        #expect(kind("127.0.2.50", "127.0.3.20", 102) == .conduit)
        #expect(kind("127.0.1.10", "127.0.3.10", 502) == .noConduit)
        #expect(kind("127.0.9.9", "127.0.3.10", 502) == .unzoned)
        #expect(kind("127.0.2.10", "127.0.4.10", 20000) == .conduit)
        #expect(kind("127.0.2.10", "127.0.3.20", 102) == .responderNotListed)
    }
}
