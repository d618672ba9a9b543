import Wire
import Records

/// Cross-checks a decoded policy (names, references, overlaps) and compiles it into a `CompiledPolicy`.
/// Every problem is collected; the policy compiles only when there is none.
struct PolicyCompiler {
    let file: String
    var errors: [PolicyError] = []

    /// The most conduits one ordered zone pair may have (a flow's matching set is one 64-bit mask).
    static let maximumConduitsPerPair = 64

    init(file: String) { self.file = file }

    mutating func fail(_ mark: SourceMark, _ message: String) {
        errors.append(PolicyError(file: file, line: mark.line, column: mark.column, message: message))
    }

    mutating func compile(_ policy: Policy) -> CompiledPolicy? {
        // Zones: unique names.
        var zoneIndex: [String: Int32] = [:]
        for (i, z) in policy.zones.enumerated() where !z.name.isEmpty {
            if let first = zoneIndex[z.name] {
                fail(z.mark, "duplicate zone name '\(z.name)' (first defined at line \(policy.zones[Int(first)].mark.line))")
            } else { zoneIndex[z.name] = Int32(i) }
        }
        checkOverlaps(policy)

        // Hosts: zone networks first, then assets (an asset wins over a network prefix of the same length).
        var trie = PrefixTrie()
        var entries: [HostInfo] = []
        for (i, z) in policy.zones.enumerated() {
            for p in z.networks {
                entries.append(HostInfo(zone: Int32(i), asset: -1))
                trie.insert(p, value: Int32(entries.count - 1))
            }
        }
        var assetIndex: [String: Int] = [:]
        var assetByAddress: [IPAddress: Int] = [:]
        var assetZone: [Int32] = []
        for (i, a) in policy.assets.enumerated() {
            let zone = zoneIndex[a.zone] ?? -1
            assetZone.append(zone)
            if let first = assetIndex[a.name] {
                fail(a.mark, "duplicate asset name '\(a.name)' (first defined at line \(policy.assets[first].mark.line))")
            } else { assetIndex[a.name] = i }
            if zone < 0 { fail(a.zoneMark, "asset '\(a.name)' names unknown zone '\(a.zone)'") }
            if let first = assetByAddress[a.address] {
                fail(a.mark, "asset '\(a.name)' has the same address \(a.address) as asset '\(policy.assets[first].name)'")
                continue
            }
            assetByAddress[a.address] = i
            entries.append(HostInfo(zone: zone, asset: Int32(i)))
            trie.insert(IPPrefix(network: a.address, length: 128), value: Int32(entries.count - 1))
        }

        // Conduits: names, zones, endpoints.
        var conduits: [CompiledConduit] = []
        var conduitNames: [String: Int] = [:]
        var byPair: [UInt64: [Int32]] = [:]
        var pairOrder: [UInt64] = []
        func hostZone(_ ip: IPAddress) -> Int32 {
            let v = trie.lookup(ip)
            return v < 0 ? -1 : entries[Int(v)].zone
        }
        for (i, c) in policy.conduits.enumerated() {
            if !c.name.isEmpty {
                if let first = conduitNames[c.name] {
                    fail(c.mark, "duplicate conduit name '\(c.name)' (first defined at line \(policy.conduits[first].mark.line))")
                } else { conduitNames[c.name] = i }
            }
            let from = zoneIndex[c.from], to = zoneIndex[c.to]
            if from == nil && !c.from.isEmpty { fail(c.fromMark, "conduit '\(c.name)' comes from unknown zone '\(c.from)'") }
            if to == nil && !c.to.isEmpty { fail(c.toMark, "conduit '\(c.name)' goes to unknown zone '\(c.to)'") }
            if !c.from.isEmpty && c.from == c.to {
                fail(c.toMark, "conduit '\(c.name)' goes from zone '\(c.from)' to itself (use the zone's own 'allow' with intra_zone: enforce)")
            }
            let initiators = endpoints(c.initiators, marks: c.initiatorMarks, zone: from, zoneName: c.from, role: "initiator",
                                       conduit: c.name, assets: policy.assets, assetIndex: assetIndex, assetZone: assetZone,
                                       zones: policy.zones, hostZone: hostZone)
            let responders = endpoints(c.responders, marks: c.responderMarks, zone: to, zoneName: c.to, role: "responder",
                                       conduit: c.name, assets: policy.assets, assetIndex: assetIndex, assetZone: assetZone,
                                       zones: policy.zones, hostZone: hostZone)
            guard let from, let to, from != to else { continue }
            conduits.append(compileConduit(name: c.name, from: from, to: to, initiators: initiators, responders: responders,
                                           rules: c.allow, notify: c.notify, intra: false))
            let key = UInt64(UInt32(from)) << 32 | UInt64(UInt32(to))
            if byPair[key] == nil { pairOrder.append(key) }
            byPair[key, default: []].append(Int32(conduits.count - 1))
            if byPair[key]!.count == PolicyCompiler.maximumConduitsPerPair + 1 {
                fail(c.mark, "more than \(PolicyCompiler.maximumConduitsPerPair) conduits from '\(c.from)' to '\(c.to)': merge some")
            }
        }

        // Zones under enforce get their own rules as an intra-zone conduit.
        var zoneInfos: [ZoneInfo] = []
        for (i, z) in policy.zones.enumerated() {
            let mode = z.intraZone ?? policy.intraZone
            zoneInfos.append(ZoneInfo(name: z.name, securityLevel: z.securityLevel, purdueLevel: z.purdueLevel, intraZone: mode))
            if mode == .enforce && !z.allow.isEmpty {
                conduits.append(compileConduit(name: "\(z.name) (intra-zone)", from: Int32(i), to: Int32(i), initiators: [],
                                               responders: [], rules: z.allow, notify: z.notify, intra: true))
                let key = UInt64(UInt32(i)) << 32 | UInt64(UInt32(i))
                pairOrder.append(key)
                byPair[key] = [Int32(conduits.count - 1)]
            }
        }
        guard errors.isEmpty else { return nil }

        var pairConduits: [Int32] = []
        var pairs: [UInt64: (start: Int32, count: Int32)] = [:]
        for key in pairOrder {
            let list = byPair[key]!
            pairs[key] = (Int32(pairConduits.count), Int32(list.count))
            pairConduits.append(contentsOf: list)
        }
        return CompiledPolicy(policy: policy, zones: zoneInfos, assetNames: policy.assets.map(\.name), conduits: conduits,
                              pairConduits: pairConduits, pairs: pairs, hostTrie: trie, hostEntries: entries)
    }

    func compileConduit(name: String, from: Int32, to: Int32, initiators: [IPPrefix], responders: [IPPrefix],
                        rules: [ConduitRule], notify: [AccessClass], intra: Bool) -> CompiledConduit {
        let compiled = rules.map(CompiledRule.init)
        let appMask = compiled.reduce(UInt8(0)) { $0 | ($1.appProtocol.map { 1 << $0.rawValue } ?? 0) }
        let notifyMask = notify.reduce(UInt16(0)) { $0 | (1 << UInt16($1.rawValue)) }
        return CompiledConduit(name: name, from: from, to: to, initiators: initiators, responders: responders, rules: compiled,
                               appMask: appMask, notifyMask: notifyMask, isIntraZone: intra)
    }

    /// Resolves asset names to host prefixes and checks every entry belongs to the conduit's zone.
    mutating func endpoints(_ specs: [EndpointSpec], marks: [SourceMark], zone: Int32?, zoneName: String, role: String,
                            conduit: String, assets: [Asset], assetIndex: [String: Int], assetZone: [Int32],
                            zones: [Zone], hostZone: (IPAddress) -> Int32) -> [IPPrefix] {
        var out: [IPPrefix] = []
        for (spec, mark) in zip(specs, marks) {
            switch spec {
            case .asset(let name):
                guard let i = assetIndex[name] else { fail(mark, "\(role) '\(name)' of conduit '\(conduit)' is not a known asset"); continue }
                if let zone, assetZone[i] >= 0, assetZone[i] != zone {
                    fail(mark, "\(role) '\(name)' of conduit '\(conduit)' is in zone '\(assets[i].zone)', not '\(zoneName)'")
                }
                out.append(IPPrefix(network: assets[i].address, length: 128))
            case .prefix(let p):
                out.append(p)
                guard let zone else { continue }
                let inside: Bool
                if p.length == 128 {
                    inside = hostZone(p.network) == zone
                } else {
                    inside = zones[Int(zone)].networks.contains { $0.covers(p) }
                }
                if !inside { fail(mark, "\(role) \(p) of conduit '\(conduit)' is not inside zone '\(zoneName)'") }
            }
        }
        return out
    }

    /// Reports every network that overlaps a network of another zone, in one sorted sweep.
    mutating func checkOverlaps(_ policy: Policy) {
        struct Item { var prefix: IPPrefix; var zone: Int; var mark: SourceMark }
        var items: [Item] = []
        for (zi, z) in policy.zones.enumerated() {
            for (p, m) in zip(z.networks, z.networkMarks) { items.append(Item(prefix: p, zone: zi, mark: m)) }
        }
        items.sort { a, b in
            if a.prefix.network != b.prefix.network { return a.prefix.network < b.prefix.network }
            if a.prefix.length != b.prefix.length { return a.prefix.length < b.prefix.length }
            return (a.mark.line, a.mark.column) < (b.mark.line, b.mark.column)
        }
        var open: [Item] = []   // enclosing prefixes, outermost first
        var found: [(SourceMark, String)] = []
        for item in items {
            while let top = open.last, !top.prefix.covers(item.prefix) { open.removeLast() }
            if let other = open.last(where: { $0.zone != item.zone }) {
                // Report at whichever of the two is written later, naming the other.
                let (later, earlier) = (other.mark.line, other.mark.column) < (item.mark.line, item.mark.column) ? (item, other) : (other, item)
                found.append((later.mark, "network \(later.prefix) of zone '\(policy.zones[later.zone].name)' overlaps \(earlier.prefix) of zone '\(policy.zones[earlier.zone].name)' (line \(earlier.mark.line))"))
            }
            open.append(item)
        }
        for (m, msg) in found { fail(m, msg) }
    }
}

/// Parses and compiles policy text. On any error returns them all (sorted by position) and no policy.
public func loadPolicy(text: String, file: String = "<string>") -> (CompiledPolicy?, [PolicyError]) {
    let root: YAMLNode
    switch YAMLReader.parse(text, file: file) {
    case .success(let r): root = r
    case .failure(let e): return (nil, [e])
    }
    var decoder = PolicyDecoder(file: file)
    let policy = decoder.decode(root)
    var compiler = PolicyCompiler(file: file)
    let compiled = compiler.compile(policy)
    let errors = (decoder.errors + compiler.errors).sorted { ($0.line, $0.column, $0.message) < ($1.line, $1.column, $1.message) }
    if !errors.isEmpty { return (nil, errors) }
    return (compiled, [])
}

/// Reads, validates and compiles the policy file at `path` (`zonewatch policy check FILE`).
/// Errors print as `FILE:LINE:COLUMN: message`; a policy with any error is not returned.
public func checkPolicyFile(path: String) -> (CompiledPolicy?, [PolicyError]) {
    guard let text = readTextFile(path) else {
        return (nil, [PolicyError(file: path, line: 1, column: 1, message: "cannot read the policy file")])
    }
    return loadPolicy(text: text, file: path)
}
