import Testing
import Wire
import Records
@testable import Policy

/// The policy of issue 6, verbatim in shape.
let issuePolicy = """
version: 1
zones:
  - name: enterprise
    security_level: 1
    purdue_level: 4
    networks: [10.0.0.0/16, "2001:db8:1::/48"]
  - name: supervisory
    security_level: 2
    networks: [10.10.20.0/24]
  - name: cell-a
    security_level: 3
    networks: [10.10.30.0/24, 10.10.31.7/32]
assets:
  - {name: eng-ws-1, address: 10.10.20.50, zone: supervisory}
conduits:
  - name: scada-to-cell-a
    from: supervisory
    to: cell-a
    initiators: [10.10.20.10, eng-ws-1]
    responders: [10.10.30.0/28]
    allow:
      - {protocol: modbus, access: [read, write], unit_ids: ["1-10"], addresses: ["0-999"]}
      - {protocol: s7comm, access: [read, diagnostic, session]}
      - {protocol: dnp3, access: [read, control, time, session]}
      - {protocol: tcp, ports: [22]}
    notify: [program_download, lifecycle]
intra_zone: monitor
default: deny
unknown_hosts: alert
"""

func load(_ text: String) -> (CompiledPolicy?, [PolicyError]) { loadPolicy(text: text, file: "p.yaml") }

@Suite struct PolicyLoadTests {
    @Test func issuePolicyLoads() throws {
        let (p, errors) = load(issuePolicy)
        #expect(errors.isEmpty, "\(errors)")
        let policy = try #require(p)
        #expect(policy.zones.map(\.name) == ["enterprise", "supervisory", "cell-a"])
        #expect(policy.zones.map(\.securityLevel) == [1, 2, 3])
        #expect(policy.zones[0].purdueLevel == 4)
        #expect(policy.conduits.count == 1)
        #expect(policy.conduits[0].rules.count == 4)
        #expect(policy.conduits[0].initiators.count == 2)
        #expect(policy.defaultAction == .deny && policy.unknownHosts == .alert)
        #expect(policy.attackVersion == .v19)
    }

    @Test func errorPrintsFileLineColumn() {
        let e = PolicyError(file: "plant.yaml", line: 12, column: 7, message: "bad CIDR")
        #expect(e.description == "plant.yaml:12:7: bad CIDR")
    }

    /// One bad policy per error kind: the error's line, column and a fragment of its message.
    struct Case: CustomTestStringConvertible, Sendable {
        let name: String, text: String, line: Int, column: Int, fragment: String
        var testDescription: String { name }
    }

    static let base = """
    version: 1
    zones:
      - {name: a, security_level: 1, networks: [10.1.0.0/16]}
      - {name: b, security_level: 2, networks: [10.2.0.0/16]}

    """

    static let cases: [Case] = [
        Case(name: "unknown zone in conduit", text: base + """
        conduits:
          - {name: c, from: a, to: nowhere}
        """, line: 6, column: 28, fragment: "unknown zone 'nowhere'"),
        Case(name: "unknown from zone", text: base + """
        conduits:
          - {name: c, from: x, to: b}
        """, line: 6, column: 21, fragment: "comes from unknown zone 'x'"),
        Case(name: "overlapping zone networks", text: base + """
          - {name: c, security_level: 2, networks: [10.2.3.0/24]}
        """, line: 5, column: 45, fragment: "overlaps 10.2.0.0/16 of zone 'b'"),
        Case(name: "bad CIDR length", text: """
        version: 1
        zones:
          - name: a
            security_level: 1
            networks: [10.0.0.0/33]
        """, line: 5, column: 16, fragment: "bad CIDR '10.0.0.0/33'"),
        Case(name: "bad CIDR address", text: """
        version: 1
        zones:
          - name: a
            security_level: 1
            networks:
              - 10.0.300.0/24
        """, line: 6, column: 9, fragment: "not an IPv4 or IPv6 address"),
        Case(name: "CIDR host bits", text: """
        version: 1
        zones:
          - {name: a, security_level: 1, networks: [10.0.0.1/16]}
        """, line: 3, column: 45, fragment: "did you mean 10.0.0.0/16"),
        Case(name: "unknown access class", text: base + """
        conduits:
          - name: c
            from: a
            to: b
            allow:
              - {protocol: modbus, access: [read, wrte]}
        """, line: 10, column: 43, fragment: "unknown access class 'wrte'"),
        Case(name: "SL out of range", text: """
        version: 1
        zones:
          - {name: a, security_level: 5, networks: [10.0.0.0/8]}
        """, line: 3, column: 31, fragment: "security_level 5 is out of range 0–4"),
        Case(name: "SL vector wrong length", text: """
        version: 1
        zones:
          - {name: a, security_level: [1, 2, 3], networks: [10.0.0.0/8]}
        """, line: 3, column: 31, fragment: "needs 7 entries"),
        Case(name: "conduit to itself", text: base + """
        conduits:
          - {name: c, from: a, to: a}
        """, line: 6, column: 28, fragment: "to itself"),
        Case(name: "unknown protocol", text: base + """
        conduits:
          - {name: c, from: a, to: b, allow: [{protocol: bacnet}]}
        """, line: 6, column: 50, fragment: "unknown protocol 'bacnet'"),
        Case(name: "key does not fit protocol", text: base + """
        conduits:
          - {name: c, from: a, to: b, allow: [{protocol: dnp3, unit_ids: [1]}]}
        """, line: 6, column: 66, fragment: "'unit_ids' does not apply to protocol dnp3"),
        Case(name: "bad range", text: base + """
        conduits:
          - {name: c, from: a, to: b, allow: [{protocol: modbus, addresses: ["9-1"]}]}
        """, line: 6, column: 70, fragment: "start is after end"),
        Case(name: "unit id out of range", text: base + """
        conduits:
          - {name: c, from: a, to: b, allow: [{protocol: modbus, unit_ids: ["1-300"]}]}
        """, line: 6, column: 69, fragment: "out of range 0-255"),
        Case(name: "unknown key", text: base + """
        conduits:
          - {name: c, from: a, to: b, alow: []}
        """, line: 6, column: 31, fragment: "unknown key 'alow'"),
        Case(name: "missing name", text: """
        version: 1
        zones:
          - {security_level: 1, networks: [10.0.0.0/8]}
        """, line: 3, column: 5, fragment: "missing 'name'"),
        Case(name: "duplicate zone", text: base + """
          - {name: a, security_level: 2, networks: [10.3.0.0/16]}
        """, line: 5, column: 5, fragment: "duplicate zone name 'a'"),
        Case(name: "unknown asset zone", text: base + """
        assets:
          - {name: h, address: 10.1.0.5, zone: c}
        """, line: 6, column: 40, fragment: "unknown zone 'c'"),
        Case(name: "asset address is a network", text: base + """
        assets:
          - {name: h, address: 10.1.0.0/24, zone: a}
        """, line: 6, column: 24, fragment: "single address"),
        Case(name: "unknown initiator asset", text: base + """
        conduits:
          - {name: c, from: a, to: b, initiators: [ghost]}
        """, line: 6, column: 44, fragment: "not a known asset"),
        Case(name: "initiator outside from zone", text: base + """
        conduits:
          - {name: c, from: a, to: b, initiators: [10.2.0.5]}
        """, line: 6, column: 44, fragment: "not inside zone 'a'"),
        Case(name: "bad intra_zone", text: base + """
        intra_zone: maybe
        """, line: 5, column: 13, fragment: "intra_zone must be one of allow, monitor, enforce"),
        Case(name: "bad purdue level", text: """
        version: 1
        zones:
          - {name: a, security_level: 1, purdue_level: 2.5}
        """, line: 3, column: 48, fragment: "purdue_level '2.5'"),
        Case(name: "version", text: """
        version: 2
        zones: []
        """, line: 1, column: 10, fragment: "unsupported policy version 2"),
        Case(name: "YAML syntax", text: """
        version: 1
        zones:
          - {name: a, security_level: 1
        """, line: 4, column: 1, fragment: "YAML"),
        Case(name: "duplicate key", text: """
        version: 1
        version: 1
        zones: []
        """, line: 2, column: 1, fragment: "duplicate key 'version'"),
    ]

    @Test(arguments: cases) func reportsErrorWithPosition(_ c: Case) {
        let (p, errors) = load(c.text)
        #expect(p == nil, "a bad policy must not load")
        let hit = errors.first { $0.message.contains(c.fragment) }
        #expect(hit != nil, "expected '\(c.fragment)' in \(errors.map(\.description))")
        if let hit {
            #expect(hit.line == c.line && hit.column == c.column, "\(hit.description) expected at \(c.line):\(c.column)")
            #expect(hit.file == "p.yaml")
        }
    }

    @Test func allErrorsReportedAtOnce() {
        let text = """
        version: 1
        zones:
          - {name: a, security_level: 9, networks: [10.1.0.0/16, 10.1.300.0/24]}
          - {name: b, security_level: 2, networks: [10.1.2.0/24]}
        conduits:
          - {name: c, from: a, to: zz, allow: [{protocol: modbus, access: [frobnicate]}]}
          - {name: d, from: b, to: b}
        """
        let (p, errors) = load(text)
        #expect(p == nil)
        let fragments = ["out of range 0–4", "not an IPv4", "overlaps", "unknown zone 'zz'", "unknown access class", "to itself"]
        for f in fragments { #expect(errors.contains { $0.message.contains(f) }, "missing \(f) in \(errors)") }
        // Sorted by position.
        let positions = errors.map { [$0.line, $0.column] }
        #expect(positions == positions.sorted { $0.lexicographicallyPrecedes($1) })
    }

    @Test func checkPolicyFileReadsFromDisk() throws {
        let path = "/tmp/zw-policy-test-\(UInt32.random(in: 0...UInt32.max)).yaml"
        try writeFile(path, issuePolicy)
        let (p, errors) = checkPolicyFile(path: path)
        #expect(p != nil && errors.isEmpty)
        try writeFile(path, "version: 1\nzones:\n  - {name: a, security_level: 7}\n")
        let (q, errs) = checkPolicyFile(path: path)
        #expect(q == nil)
        #expect(errs.first?.description == "\(path):3:31: security_level 7 is out of range 0–4")
        let (_, missing) = checkPolicyFile(path: "/nonexistent/zw.yaml")
        #expect(missing.first?.message == "cannot read the policy file")
    }

    @Test func aliasesExpandAndAreBounded() {
        let ok = """
        version: 1
        zones:
          - {name: a, security_level: 1, networks: [10.1.0.0/16]}
          - {name: b, security_level: 1, networks: [10.2.0.0/16]}
        conduits:
          - {name: c1, from: a, to: b, allow: &reads [{protocol: modbus, access: [read]}]}
          - {name: c2, from: b, to: a, allow: *reads}
        """
        let (p, errors) = load(ok)
        #expect(errors.isEmpty, "\(errors)")
        #expect(p?.conduits[1].rules.count == 1)
        var bomb = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        for i in 1...8 { bomb += "a\(i): &a\(i) [" + Array(repeating: "*a\(i - 1)", count: 10).joined(separator: ", ") + "]\n" }
        let (_, bombErrors) = load(bomb)
        #expect(bombErrors.contains { $0.message.contains("alias bomb") })
    }

    @Test func vectorSecurityLevelUsesItsMaximum() throws {
        let (p, errors) = load("version: 1\nzones:\n  - {name: a, security_level: [2, 2, 0, 1, 3, 1, 3], networks: [10.0.0.0/8]}\n")
        #expect(errors.isEmpty)
        #expect(try #require(p).zones[0].securityLevel == 3)
    }

    @Test func syntheticPolicyWithThousandZonesAndTenThousandRulesLoads() throws {
        let text = makeSyntheticPolicy(zones: 1000, rules: 10_000)
        let (p, errors) = load(text)
        #expect(errors.isEmpty, "\(errors.prefix(5))")
        let policy = try #require(p)
        #expect(policy.zones.count == 1000)
        #expect(policy.conduits.reduce(0) { $0 + $1.rules.count } == 10_000)
        // Spot-check: a host of zone 7 resolves to zone 7, its asset to the asset.
        #expect(policy.host(IPAddress("10.0.7.99")!).zone == 7)
        #expect(policy.host(IPAddress("10.0.7.10")!).asset == 7)
    }
}

func writeFile(_ path: String, _ text: String) throws {
    #if canImport(Glibc)
    let f = fopen(path, "wb")
    #endif
    guard let f else { throw CocoaLikeError.cannotWrite }
    _ = text.utf8CString.withUnsafeBufferPointer { fwrite($0.baseAddress, 1, $0.count - 1, f) }
    fclose(f)
}

enum CocoaLikeError: Error { case cannotWrite }

#if canImport(Glibc)
import Glibc
#endif
