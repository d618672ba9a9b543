import Wire
import Records

/// Drafts the conduits of a policy from traffic (`zonewatch policy learn`): given the zones and assets, every flow
/// between two zones becomes part of a conduit that allows exactly what was seen, at the depth the policy checks.
///
/// One conduit per initiating host and pair of zones (a master's baseline: which devices it reaches, with which
/// functions, units and addresses), its responders the hosts it reached; hosts that did exactly the same share one,
/// and a zone pair with more than `PolicyCompiler.maximumConduitsPerPair` such groups gets one conduit allowing the
/// union. Each ICS protocol gets one rule per access
/// class, listing the function codes, Modbus unit ids or DNP3 outstation addresses, S7 areas and DB numbers, and the
/// data address ranges seen (adjacent ranges joined; more than `maximumRanges` become their span); other traffic a
/// transport rule with the responder ports seen. Operations are taken as the detector checks them: every one but
/// responses, against its flow's conduit, whichever side sent it (an S7 PLC's download jobs); a flow picked up
/// midstream whose first operation came from its responder is turned round.
/// Traffic inside a zone is not learned (a zone's own rules are for `intra_zone: enforce`), nor broadcast and
/// multicast; hosts in no zone are listed for the engineer to place. Learning never silences a detection: the
/// classes whose operations the ZW-ICS rules report (program download and upload, lifecycle, file, auth) go into the
/// conduit's `notify` list when learned, so they are still reported (a capture taken for learning may hold a
/// maintenance window, or an attack).
public final class ConduitLearner {
    /// Data address ranges kept per rule before they become one span.
    public static let maximumRanges = 8
    /// Hosts in no zone listed by name (a SYN flood from spoofed sources has thousands).
    public static let maximumUnzonedListed = 20
    /// Access classes a learned conduit allows only with notice (`notify`).
    public static let reportedClasses: [AccessClass] = [.programDownload, .programUpload, .lifecycle, .file, .auth]

    private let policy: CompiledPolicy

    /// What one access class of one ICS protocol was seen doing.
    struct ClassTraffic {
        var functions: Set<UInt16> = []
        var devices: Set<Int64> = []
        var areas: Set<Int16> = []
        var dbNumbers: Set<Int64> = []
        var addresses: [ClosedRange<Int64>] = []
    }

    /// What one initiating host did towards one zone.
    struct Traffic {
        var responders: Set<IPAddress> = []
        var ics: [AppProtocol: [AccessClass: ClassTraffic]] = [:]
        var ports: [Transport: Set<UInt16>] = [:]
        var flows = 0
    }

    private struct ConduitKey: Hashable {
        var initiator: IPAddress
        var fromZone: Int32
        var toZone: Int32
    }

    /// A flow under way: its context, protocol, and whether its requests came from its responder.
    private struct OpenFlow {
        var context: FlowContext
        var appProtocol: AppProtocol?
        var reversed: Bool?
    }

    private var open: [UInt64: OpenFlow] = [:]
    private var traffic: [ConduitKey: Traffic] = [:]
    private var unzoned: [IPAddress: Int] = [:]
    /// Flows seen, and those inside one zone (not learned).
    public private(set) var flowsSeen = 0, flowsInsideZones = 0

    /// A learner for the zones and assets of `policy` (its conduits play no part).
    public init(policy: CompiledPolicy) { self.policy = policy }

    /// A flow began.
    public func flowStarted(_ flow: FlowContext) {
        open[flow.flowSerial] = OpenFlow(context: flow, appProtocol: nil, reversed: nil)
    }

    /// A flow's application protocol is known (nil: none of ours).
    public func flowIdentified(_ flow: FlowContext, appProtocol: AppProtocol?) {
        open[flow.flowSerial, default: OpenFlow(context: flow)].appProtocol = appProtocol
    }

    /// One classified operation.
    public func operation(_ op: Operation, flow: FlowContext) {
        guard op.access != .response else { return }
        var f = open[flow.flowSerial, default: OpenFlow(context: flow, appProtocol: op.appProtocol)]
        if f.reversed == nil { f.reversed = flow.midstream && op.sender == .responder }
        open[flow.flowSerial] = f
        let (initiator, responder) = f.reversed! ? (flow.responder, flow.initiator) : (flow.initiator, flow.responder)
        guard let key = conduitKey(initiator: initiator.ip, responder: responder.ip) else { return }
        var c = traffic[key, default: Traffic()].ics[op.appProtocol, default: [:]][op.access, default: ClassTraffic()]
        c.functions.insert(op.functionCode)
        if op.unitID >= 0 { c.devices.insert(Int64(op.unitID)) }
        if op.area >= 0 { c.areas.insert(op.area) }
        if op.dbNumber >= 0 { c.dbNumbers.insert(Int64(op.dbNumber)) }
        if op.address >= 0 { c.addresses = ConduitLearner.adding(op.address...(op.address + max(op.quantity, 1) - 1), to: c.addresses) }
        traffic[key, default: Traffic()].ics[op.appProtocol, default: [:]][op.access] = c
    }

    /// A flow ended: its endpoints and protocol (or transport and port) join its conduit.
    public func flowEnded(_ flow: FlowContext) {
        let f = open.removeValue(forKey: flow.flowSerial) ?? OpenFlow(context: flow)
        flowsSeen += 1
        let (initiator, responder) = f.reversed == true ? (flow.responder, flow.initiator) : (flow.initiator, flow.responder)
        let zones = (policy.host(initiator.ip).zone, policy.host(responder.ip).zone)
        if CompiledPolicy.isNonUnicast(initiator.ip) || CompiledPolicy.isNonUnicast(responder.ip) { return }
        if zones.0 < 0 || zones.1 < 0 {
            for (ip, zone) in [(initiator.ip, zones.0), (responder.ip, zones.1)] where zone < 0 { unzoned[ip, default: 0] += 1 }
            return
        }
        if zones.0 == zones.1 { flowsInsideZones += 1; return }
        let key = ConduitKey(initiator: initiator.ip, fromZone: zones.0, toZone: zones.1)   // (what `conduitKey` checks, checked)
        var t = traffic[key, default: Traffic()]
        t.flows += 1
        t.responders.insert(responder.ip)
        if let app = f.appProtocol {
            if t.ics[app] == nil { t.ics[app] = [:] }   // the protocol allowed, though no operation was seen
        } else if flow.transport == .tcp || flow.transport == .udp || flow.transport == .icmp {
            t.ports[flow.transport, default: []].insert(flow.transport == .icmp ? 0 : responder.port)
        }
        traffic[key] = t
    }

    private func conduitKey(initiator: IPAddress, responder: IPAddress) -> ConduitKey? {
        // (Broadcast and multicast flows are not checked against conduits: nothing to learn.)
        if CompiledPolicy.isNonUnicast(initiator) || CompiledPolicy.isNonUnicast(responder) { return nil }
        let a = policy.host(initiator).zone, b = policy.host(responder).zone
        guard a >= 0, b >= 0, a != b else { return nil }
        return ConduitKey(initiator: initiator, fromZone: a, toZone: b)
    }

    /// `ranges` (sorted, disjoint, not adjacent) with `r` added.
    static func adding(_ r: ClosedRange<Int64>, to ranges: [ClosedRange<Int64>]) -> [ClosedRange<Int64>] {
        var lower = r.lowerBound, upper = r.upperBound
        var out: [ClosedRange<Int64>] = []
        for x in ranges {
            if x.upperBound + 1 < lower || upper + 1 < x.lowerBound { out.append(x); continue }
            lower = min(lower, x.lowerBound); upper = max(upper, x.upperBound)
        }
        out.append(lower...upper)
        return out.sorted { $0.lowerBound < $1.lowerBound }
    }

    /// The learned conduits as a policy's `conduits:` section (YAML), with a comment naming what was not learned.
    public func conduitsYAML(header: [String]) -> String {
        var out = header.map { "# " + $0 + "\n" }.joined()
        if flowsInsideZones > 0 {
            out += "# \(flowsInsideZones) flows inside a zone: not learned (intra_zone rules are written by hand).\n"
        }
        if !unzoned.isEmpty {
            out += "# Hosts in no zone (place them in a zone, or as assets, and learn again), most flows first:\n"
            let hosts = unzoned.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key.description < $1.key.description }
            for (ip, n) in hosts.prefix(ConduitLearner.maximumUnzonedListed) { out += "#   \(ip) (\(n) flow\(n == 1 ? "" : "s"))\n" }
            if hosts.count > ConduitLearner.maximumUnzonedListed {
                out += "#   and \(hosts.count - ConduitLearner.maximumUnzonedListed) more\n"
            }
        }
        let pairs = Dictionary(grouping: traffic.keys) { ZonePair(from: $0.fromZone, to: $0.toZone) }
        guard !pairs.isEmpty else { return out + "conduits: []\n" }
        out += "conduits:\n"
        for pair in pairs.keys.sorted(by: { ($0.from, $0.to) < ($1.from, $1.to) }) {
            let from = policy.zoneName(pair.from)!, to = policy.zoneName(pair.to)!
            // Initiators that did exactly the same share a conduit; a pair's conduits are bounded
            // (`PolicyCompiler.maximumConduitsPerPair`): beyond it, one conduit with the union of what they all did.
            let keys = pairs[pair]!.sorted { $0.initiator.description < $1.initiator.description }
            var groups: [(body: String, initiators: [IPAddress], flows: Int)] = []
            for key in keys {
                let t = traffic[key]!, body = conduitBody(t)
                if let i = groups.firstIndex(where: { $0.body == body }) {
                    groups[i].initiators.append(key.initiator); groups[i].flows += t.flows
                } else {
                    groups.append((body, [key.initiator], t.flows))
                }
            }
            var union = ""
            if groups.count > PolicyCompiler.maximumConduitsPerPair {
                let all = keys.reduce(Traffic()) { ConduitLearner.merged($0, traffic[$1]!) }
                groups = [(conduitBody(all), keys.map(\.initiator), all.flows)]
                union = "    # \(keys.count) initiators did more than \(PolicyCompiler.maximumConduitsPerPair) different things: one conduit "
                    + "allows the union (looser than any of them); split it by hand.\n"
            }
            for (n, g) in groups.enumerated() {
                out += "  - name: \(quoted("learned-\(from)-to-\(to)-\(n + 1)"))\n" + union
                out += "    from: \(quoted(from))\n    to: \(quoted(to))\n"
                out += "    initiators: [\(g.initiators.map(endpoint).joined(separator: ", "))]\n"
                out += g.body
                out += "    description: \(quoted("learned from \(g.flows) flow\(g.flows == 1 ? "" : "s")"))\n"
            }
        }
        return out
    }

    private struct ZonePair: Hashable { var from: Int32, to: Int32 }

    /// A conduit's responders, allow rules and notify list for `t`.
    private func conduitBody(_ t: Traffic) -> String {
        var out = "    responders: [\(t.responders.sorted { $0.description < $1.description }.map(endpoint).joined(separator: ", "))]\n"
        if t.ics.isEmpty && t.ports.isEmpty {
            // Only IP protocols a rule cannot name (GRE, ESP, ...): the conduit admits the hosts, its flows still alert.
            return out + "    allow: []   # only IP protocols no rule can name (not TCP, UDP or ICMP) were seen\n"
        }
        out += "    allow:\n"
        for app in AppProtocol.allCases {
            guard let classes = t.ics[app] else { continue }
            if classes.isEmpty { out += "      - {protocol: \(app.name)}   # no operation seen: allows any; narrow it\n" }
            for access in AccessClass.allCases {
                guard let c = classes[access] else { continue }
                out += "      - " + rule(app, access, c) + "\n"
            }
        }
        for transport in [Transport.tcp, .udp, .icmp] {
            guard let ports = t.ports[transport] else { continue }
            out += transport == .icmp ? "      - {protocol: icmp}\n"
                : "      - {protocol: \(transport.name), ports: [\(ports.sorted().map { String($0) }.joined(separator: ", "))]}\n"
        }
        let learned = Set(t.ics.values.flatMap(\.keys))
        let reported = ConduitLearner.reportedClasses.filter(learned.contains)
        if !reported.isEmpty { out += "    notify: [\(reported.map { "\($0.name)" }.joined(separator: ", "))]\n" }
        return out
    }

    /// What `a` and `b` did together.
    static func merged(_ a: Traffic, _ b: Traffic) -> Traffic {
        var m = a
        m.responders.formUnion(b.responders)
        m.flows += b.flows
        for (transport, ports) in b.ports { m.ports[transport, default: []].formUnion(ports) }
        for (app, classes) in b.ics {
            if m.ics[app] == nil { m.ics[app] = [:] }
            for (access, c) in classes {
                var x = m.ics[app]![access] ?? ClassTraffic()
                x.functions.formUnion(c.functions); x.devices.formUnion(c.devices); x.areas.formUnion(c.areas)
                x.dbNumbers.formUnion(c.dbNumbers)
                for r in c.addresses { x.addresses = adding(r, to: x.addresses) }
                m.ics[app]![access] = x
            }
        }
        return m
    }

    private func rule(_ app: AppProtocol, _ access: AccessClass, _ c: ClassTraffic) -> String {
        var fields = ["protocol: \(app.name)", "access: [\(access.name)]"]
        fields.append("functions: [\(c.functions.sorted().map { String($0) }.joined(separator: ", "))]")
        func ranges(_ values: Set<Int64>) -> String {
            values.sorted().reduce(into: [ClosedRange<Int64>]()) { $0 = ConduitLearner.adding($1...$1, to: $0) }.map(text).joined(separator: ", ")
        }
        if !c.devices.isEmpty {
            if app == .modbus { fields.append("unit_ids: [\(ranges(c.devices))]") }
            if app == .dnp3 { fields.append("dnp3_addresses: [\(ranges(c.devices))]") }
        }
        if !c.addresses.isEmpty {
            let spans = c.addresses.count > ConduitLearner.maximumRanges
                ? [c.addresses.first!.lowerBound...c.addresses.last!.upperBound] : c.addresses
            fields.append("addresses: [\(spans.map(text).joined(separator: ", "))]")
        }
        if app == .s7comm && !c.areas.isEmpty {
            // By the decoder's first name for the code (DB, M, ...), as policies are written.
            let names = c.areas.sorted().map { code in PolicyDecoder.s7AreaNames.first { $0.1 == code }.map(\.0) ?? String(code) }
            fields.append("s7_areas: [\(names.joined(separator: ", "))]")
        }
        if app == .s7comm && !c.dbNumbers.isEmpty { fields.append("db_numbers: [\(ranges(c.dbNumbers))]") }
        return "{" + fields.joined(separator: ", ") + "}"
    }

    private func text(_ r: ClosedRange<Int64>) -> String {
        "\"" + (r.lowerBound == r.upperBound ? "\(r.lowerBound)" : "\(r.lowerBound)-\(r.upperBound)") + "\""
    }

    /// An asset's name for an address that is one (an asset is one address), else the address as a host prefix.
    private func endpoint(_ ip: IPAddress) -> String {
        let asset = policy.host(ip).asset
        return quoted(asset >= 0 ? policy.assetNames[Int(asset)] : "\(ip)/\(ip.isIPv4 ? 32 : 128)")
    }

    /// A YAML double-quoted scalar.
    private func quoted(_ s: String) -> String {
        var out = "\""
        for ch in s { if ch == "\"" || ch == "\\" { out.append("\\") }; out.append(ch) }
        return out + "\""
    }

    /// A whole policy: `text` (the policy the zones came from) without its `conduits:` section, then `section` (the
    /// learned conduits). The section is the lines from the `conduits` key, with the comment lines right above it, to
    /// the next top-level key and the comment lines right above that (or the end); nil when the text is not a block
    /// mapping whose keys start lines of their own.
    public static func policyText(_ text: String, withConduits section: String) -> String? {
        guard case .success(let root) = YAMLReader.parse(text, file: "<policy>"), case .mapping(let entries) = root.content else { return nil }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
        if let i = entries.firstIndex(where: { $0.key.scalar == "conduits" }) {
            var first = entries[i].key.mark.line - 1
            var end = i + 1 < entries.count ? entries[i + 1].key.mark.line - 1 : lines.count
            guard entries[i].key.mark.column == 1, first < end, end <= lines.count else { return nil }
            func isComment(_ line: String) -> Bool { line.drop { $0 == " " }.first == "#" }
            while first > 0 && isComment(lines[first - 1]) { first -= 1 }
            if i + 1 < entries.count { while end - 1 > first && isComment(lines[end - 1]) { end -= 1 } }
            lines.removeSubrange(first..<end)
        }
        return lines.joined(separator: "\n") + "\n\n" + section
    }
}
