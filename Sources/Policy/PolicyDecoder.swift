import Wire
import Records

/// Turns a YAML tree into a `Policy`, collecting every problem (with its mark) instead of stopping
/// at the first: a user fixing a policy sees all its errors at once.
struct PolicyDecoder {
    let file: String
    var errors: [PolicyError] = []

    init(file: String) { self.file = file }

    // MARK: - Top level

    static let topKeys = ["version", "name", "description", "zones", "assets", "conduits", "intra_zone", "default",
                          "unknown_hosts", "attack_version"]

    mutating func decode(_ root: YAMLNode) -> Policy {
        var policy = Policy(version: 1, zones: [], assets: [], conduits: [])
        guard let top = mapping(root, what: "the policy", allowed: PolicyDecoder.topKeys, required: ["version", "zones"]) else {
            return policy
        }
        if let v = top["version"], let n = int(v, what: "version", range: 0...Int64.max) {
            if n != 1 { fail(v.mark, "unsupported policy version \(n) (this ZoneWatch reads version 1)") }
            policy.version = Int(n)
        }
        if let n = top["name"] { _ = string(n, what: "name") }
        if let n = top["description"] { _ = string(n, what: "description") }
        if let z = top["zones"], let items = list(z, what: "zones") {
            policy.zones = items.compactMap { zone($0) }
        }
        if let a = top["assets"], let items = list(a, what: "assets") {
            policy.assets = items.compactMap { asset($0) }
        }
        if let c = top["conduits"], let items = list(c, what: "conduits") {
            policy.conduits = items.compactMap { conduit($0) }
        }
        if let n = top["intra_zone"], let m: IntraZoneMode = choice(n, what: "intra_zone") { policy.intraZone = m }
        if let n = top["default"], let m: DefaultAction = choice(n, what: "default") { policy.defaultAction = m }
        if let n = top["unknown_hosts"], let m: UnknownHostsMode = choice(n, what: "unknown_hosts") { policy.unknownHosts = m }
        if let n = top["attack_version"], let m: AttackVersion = choice(n, what: "attack_version") { policy.attackVersion = m }
        return policy
    }

    // MARK: - Zones, assets, conduits

    static let zoneKeys = ["name", "security_level", "purdue_level", "networks", "description", "intra_zone", "allow", "notify"]

    mutating func zone(_ node: YAMLNode) -> Zone? {
        guard let m = mapping(node, what: "a zone", allowed: PolicyDecoder.zoneKeys, required: ["name", "security_level"]) else { return nil }
        var zone = Zone(name: "", securityLevel: 0, securityLevelVector: nil, purdueLevel: nil, networks: [], networkMarks: [],
                        intraZone: nil, allow: [], notify: [], description: nil, mark: node.mark)
        if let n = m["name"], let s = name(n, what: "zone name") { zone.name = s }
        if let n = m["security_level"] { securityLevel(n, into: &zone) }
        if let n = m["purdue_level"] {
            let allowed: [Double] = [0, 1, 2, 3, 3.5, 4, 5]
            if let s = n.scalar, !n.isNull, let d = Double(s), allowed.contains(d) { zone.purdueLevel = d }
            else { fail(n.mark, "purdue_level \(n.scalar.map { "'\($0)'" } ?? n.kindName) is not one of 0, 1, 2, 3, 3.5, 4, 5") }
        }
        if let n = m["networks"], let items = list(n, what: "networks") {
            for item in items {
                if let p = prefix(item, what: "network") { zone.networks.append(p); zone.networkMarks.append(item.mark) }
            }
        }
        if let n = m["description"] { zone.description = string(n, what: "description") }
        if let n = m["intra_zone"], let v: IntraZoneMode = choice(n, what: "intra_zone") { zone.intraZone = v }
        if let n = m["allow"], let items = list(n, what: "allow") { zone.allow = items.compactMap { rule($0) } }
        if let n = m["notify"] { zone.notify = accessList(n, what: "notify") }
        return zone
    }

    mutating func securityLevel(_ node: YAMLNode, into zone: inout Zone) {
        if case .sequence(let items) = node.content {
            // The 62443-3-3 SL vector {IAC UC SI DC RDF TRE RA}.
            guard items.count == 7 else {
                fail(node.mark, "security_level as a vector needs 7 entries (IAC UC SI DC RDF TRE RA), found \(items.count)")
                return
            }
            var v: [Int] = []
            for item in items {
                guard let n = int(item, what: "security_level entry", range: nil) else { return }
                if !(0...4).contains(n) { fail(item.mark, "security_level \(n) is out of range 0–4"); return }
                v.append(Int(n))
            }
            zone.securityLevelVector = v; zone.securityLevel = v.max() ?? 0
            return
        }
        guard let n = int(node, what: "security_level", range: nil) else { return }
        if !(0...4).contains(n) { fail(node.mark, "security_level \(n) is out of range 0–4"); return }
        zone.securityLevel = Int(n)
    }

    mutating func asset(_ node: YAMLNode) -> Asset? {
        guard let m = mapping(node, what: "an asset", allowed: ["name", "address", "zone", "description"],
                              required: ["name", "address", "zone"]) else { return nil }
        guard let nameNode = m["name"], let assetName = name(nameNode, what: "asset name"),
              let addrNode = m["address"], let zoneNode = m["zone"], let zone = name(zoneNode, what: "asset zone") else {
            if let a = m["address"] { _ = address(a) }
            return nil
        }
        guard let address = address(addrNode) else { return nil }
        return Asset(name: assetName, address: address, zone: zone, description: m["description"].flatMap { string($0, what: "description") },
                     mark: node.mark, zoneMark: zoneNode.mark)
    }

    mutating func address(_ node: YAMLNode) -> IPAddress? {
        guard let s = string(node, what: "address") else { return nil }
        guard let a = IPAddress(s) else {
            fail(node.mark, s.contains("/") ? "asset address '\(s)' must be a single address, not a network"
                                            : "bad address '\(s)'")
            return nil
        }
        return a
    }

    static let conduitKeys = ["name", "from", "to", "initiators", "responders", "allow", "notify", "description"]

    mutating func conduit(_ node: YAMLNode) -> Conduit? {
        guard let m = mapping(node, what: "a conduit", allowed: PolicyDecoder.conduitKeys, required: ["name", "from", "to"]) else { return nil }
        var c = Conduit(name: "", from: "", to: "", initiators: [], initiatorMarks: [], responders: [], responderMarks: [],
                        allow: [], notify: [], description: nil, mark: node.mark, fromMark: node.mark, toMark: node.mark)
        if let n = m["name"], let s = name(n, what: "conduit name") { c.name = s }
        if let n = m["from"], let s = name(n, what: "from") { c.from = s; c.fromMark = n.mark }
        if let n = m["to"], let s = name(n, what: "to") { c.to = s; c.toMark = n.mark }
        if let n = m["initiators"], let items = list(n, what: "initiators") {
            for item in items { if let e = endpoint(item) { c.initiators.append(e); c.initiatorMarks.append(item.mark) } }
        }
        if let n = m["responders"], let items = list(n, what: "responders") {
            for item in items { if let e = endpoint(item) { c.responders.append(e); c.responderMarks.append(item.mark) } }
        }
        if let n = m["allow"], let items = list(n, what: "allow") { c.allow = items.compactMap { rule($0) } }
        if let n = m["notify"] { c.notify = accessList(n, what: "notify") }
        if let n = m["description"] { c.description = string(n, what: "description") }
        return c
    }

    /// An address, CIDR or asset name. Text that starts like an address but does not parse is a bad CIDR,
    /// not an asset name.
    mutating func endpoint(_ node: YAMLNode) -> EndpointSpec? {
        guard let s = string(node, what: "endpoint") else { return nil }
        let looksNumeric = s.first.map { $0.isNumber || $0 == ":" } ?? false
        if looksNumeric || s.contains("/") || s.contains(":") {
            return prefix(node, what: "endpoint").map { .prefix($0) }
        }
        return .asset(s)
    }

    // MARK: - Allow rules

    static let ruleKeys = ["protocol", "access", "functions", "unit_ids", "addresses", "dnp3_addresses", "s7_areas",
                           "db_numbers", "ports"]
    static let s7AreaNames: [(String, Int16)] = [
        ("P", 0x80), ("I", 0x81), ("E", 0x81), ("Q", 0x82), ("A", 0x82), ("M", 0x83), ("DB", 0x84), ("DI", 0x85),
        ("L", 0x86), ("V", 0x87), ("C", 0x1C), ("T", 0x1D),
        ("peripheral", 0x80), ("inputs", 0x81), ("outputs", 0x82), ("flags", 0x83), ("merker", 0x83),
        ("data_blocks", 0x84), ("instance_db", 0x85), ("local", 0x86), ("counters", 0x1C), ("timers", 0x1D),
    ]

    mutating func rule(_ node: YAMLNode) -> ConduitRule? {
        guard let m = mapping(node, what: "an allow rule", allowed: PolicyDecoder.ruleKeys, required: ["protocol"]),
              let pn = m["protocol"], let pname = string(pn, what: "protocol") else { return nil }
        let proto: RuleProtocol
        if let p = AppProtocol(name: pname) { proto = .application(p) }
        else if pname == "tcp" { proto = .transport(.tcp) }
        else if pname == "udp" { proto = .transport(.udp) }
        else if pname == "icmp" { proto = .transport(.icmp) }
        else {
            fail(pn.mark, "unknown protocol '\(pname)' (expected modbus, dnp3, s7comm, s7comm_plus, tcp, udp or icmp)")
            return nil
        }
        var r = ConduitRule(ruleProtocol: proto, mark: node.mark)
        // Which keys fit which protocol: a key that cannot apply is a mistake worth reporting.
        func only(_ key: String, _ ok: Bool, _ expected: String) -> YAMLNode? {
            guard let n = m[key] else { return nil }
            if !ok { fail(n.mark, "'\(key)' does not apply to protocol \(pname) (only \(expected))"); return nil }
            return n
        }
        var isApp = false, isModbus = false, isDNP3 = false, isS7 = false, isPorted = false
        switch proto {
        case .application(let p): isApp = true; isModbus = p == .modbus; isDNP3 = p == .dnp3; isS7 = p == .s7comm
        case .transport(let t): isPorted = t == .tcp || t == .udp
        }
        if let n = only("access", isApp, "ICS protocols") {
            r.access = accessList(n, what: "access")
            if r.access.isEmpty, case .sequence = n.content { fail(n.mark, "empty access list allows nothing: remove the rule instead") }
        }
        if let n = only("functions", isApp, "ICS protocols") {
            r.functions = ranges(n, what: "function", bounds: 0...0xFFFF).flatMap { $0.map { UInt16($0) } }.sorted()
        }
        if let n = only("unit_ids", isModbus, "modbus") { r.unitIDs = ranges(n, what: "unit id", bounds: 0...255) }
        if let n = only("addresses", isApp, "ICS protocols") {
            r.addresses = ranges(n, what: "address", bounds: 0...(isModbus ? 0xFFFF : 0xFFFF_FFFF))
        }
        if let n = only("dnp3_addresses", isDNP3, "dnp3") { r.dnp3Addresses = ranges(n, what: "DNP3 address", bounds: 0...0xFFFF) }
        if let n = only("s7_areas", isS7, "s7comm"), let items = list(n, what: "s7_areas") {
            for item in items {
                guard let s = string(item, what: "S7 area") else { continue }
                if let hit = PolicyDecoder.s7AreaNames.first(where: { $0.0.lowercased() == s.lowercased() }) { r.s7Areas.append(hit.1) }
                else if let v = PolicyDecoder.integer(s), (0...255).contains(v) { r.s7Areas.append(Int16(v)) }
                else { fail(item.mark, "unknown S7 area '\(s)' (expected I, Q, M, DB, DI, L, V, P, C, T or a code 0-255)") }
            }
        }
        if let n = only("db_numbers", isS7, "s7comm") { r.dbNumbers = ranges(n, what: "DB number", bounds: 0...0xFFFF) }
        if let n = only("ports", isPorted, "tcp and udp") { r.ports = ranges(n, what: "port", bounds: 1...0xFFFF) }
        return r
    }

    mutating func accessList(_ node: YAMLNode, what: String) -> [AccessClass] {
        guard let items = list(node, what: what) else { return [] }
        var out: [AccessClass] = []
        for item in items {
            guard let s = string(item, what: "access class") else { continue }
            if let a = AccessClass(name: s), a != .response { if !out.contains(a) { out.append(a) } }
            else {
                let names = AccessClass.allCases.filter { $0 != .response }.map { $0.name.description }.joined(separator: ", ")
                fail(item.mark, "unknown access class '\(s)' (expected one of: \(names))")
            }
        }
        return out
    }

    /// A list of `N`, `"N-M"` (decimal or 0x-hex) within `bounds`.
    mutating func ranges(_ node: YAMLNode, what: String, bounds: ClosedRange<Int64>) -> [ClosedRange<Int64>] {
        guard let items = list(node, what: what + "s") else { return [] }
        var out: [ClosedRange<Int64>] = []
        for item in items {
            guard let s = string(item, what: what) else { continue }
            let parts = s.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false).map { String($0.trimmingSpaces) }
            guard let lo = PolicyDecoder.integer(parts[0]), let hi = parts.count == 2 ? PolicyDecoder.integer(parts[1]) : lo else {
                fail(item.mark, "bad \(what) range '\(s)' (expected N or \"N-M\")"); continue
            }
            guard lo <= hi else { fail(item.mark, "bad \(what) range '\(s)': start is after end"); continue }
            guard bounds.contains(lo), bounds.contains(hi) else {
                fail(item.mark, "\(what) range '\(s)' is out of range \(bounds.lowerBound)-\(bounds.upperBound)"); continue
            }
            out.append(lo...hi)
        }
        return out
    }

    // MARK: - Scalars and shapes

    static func integer(_ s: String) -> Int64? {
        if s.hasPrefix("0x") || s.hasPrefix("0X") { return Int64(s.dropFirst(2), radix: 16) }
        guard !s.isEmpty, s.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == "-" || $0 == "+") }) else { return nil }
        return Int64(s)
    }

    mutating func fail(_ mark: SourceMark, _ message: String) {
        errors.append(PolicyError(file: file, line: mark.line, column: mark.column, message: message))
    }

    mutating func mapping(_ node: YAMLNode, what: String, allowed: [String], required: [String]) -> [String: YAMLNode]? {
        guard case .mapping(let pairs) = node.content else {
            fail(node.mark, "\(what) must be a mapping, found \(node.kindName)"); return nil
        }
        var out: [String: YAMLNode] = [:]
        for (k, v) in pairs {
            guard let key = k.scalar else { fail(k.mark, "keys must be scalars"); continue }
            if out[key] != nil { fail(k.mark, "duplicate key '\(key)' in \(what)"); continue }
            if !allowed.contains(key) {
                fail(k.mark, "unknown key '\(key)' in \(what) (expected one of: \(allowed.joined(separator: ", ")))"); continue
            }
            out[key] = v
        }
        for r in required where out[r] == nil || out[r]!.isNull {
            fail(node.mark, "\(what) is missing '\(r)'")
            out[r] = nil
        }
        return out
    }

    mutating func list(_ node: YAMLNode, what: String) -> [YAMLNode]? {
        switch node.content {
        case .sequence(let items): return items
        case .scalar: return node.isNull ? [] : [node]   // a single value stands for a one-item list
        case .mapping: fail(node.mark, "\(what) must be a list, found a mapping"); return nil
        }
    }

    mutating func string(_ node: YAMLNode, what: String) -> String? {
        guard let s = node.scalar, !node.isNull else { fail(node.mark, "\(what) must be a scalar, found \(node.kindName)"); return nil }
        return s
    }

    mutating func name(_ node: YAMLNode, what: String) -> String? {
        guard let s = string(node, what: what) else { return nil }
        if s.isEmpty || s.contains(where: { $0.isNewline }) { fail(node.mark, "\(what) must be a non-empty single-line name"); return nil }
        return s
    }

    mutating func int(_ node: YAMLNode, what: String, range: ClosedRange<Int64>?) -> Int64? {
        guard let s = string(node, what: what) else { return nil }
        guard let v = PolicyDecoder.integer(s) else { fail(node.mark, "\(what) must be an integer, found '\(s)'"); return nil }
        if let range, !range.contains(v) { fail(node.mark, "\(what) \(v) is out of range \(range.lowerBound)-\(range.upperBound)"); return nil }
        return v
    }

    mutating func choice<E: RawRepresentable & CaseIterable>(_ node: YAMLNode, what: String) -> E? where E.RawValue == String {
        guard let s = string(node, what: what) else { return nil }
        guard let v = E(rawValue: s) else {
            fail(node.mark, "\(what) must be one of \(E.allCases.map { $0.rawValue }.joined(separator: ", ")), found '\(s)'")
            return nil
        }
        return v
    }

    mutating func prefix(_ node: YAMLNode, what: String) -> IPPrefix? {
        guard let s = string(node, what: what) else { return nil }
        switch IPPrefix.parse(s) {
        case .success(let p): return p
        case .failure(.badAddress): fail(node.mark, "bad CIDR '\(s)': not an IPv4 or IPv6 address")
        case .failure(.badLength): fail(node.mark, "bad CIDR '\(s)': prefix length must be 0-32 (IPv4) or 0-128 (IPv6)")
        case .failure(.hostBitsSet(let p)): fail(node.mark, "bad CIDR '\(s)': host bits are set (did you mean \(p)?)")
        }
        return nil
    }
}
