import Wire
import Records

/// An allow rule compiled for matching one operation with no allocation: masks and sorted ranges.
public struct CompiledRule: Sendable {
    /// The application protocol, or nil for a transport rule.
    public let appProtocol: AppProtocol?
    /// The transport of a transport rule.
    public let transport: Transport?
    /// Bit `AccessClass.rawValue` set for each allowed class; 0 means any.
    public let accessMask: UInt16
    /// Allowed function codes, sorted; empty means any.
    public let functions: [UInt16]
    /// Allowed Modbus unit ids or DNP3 outstation addresses; empty means any.
    public let devices: [ClosedRange<Int64>]
    /// Allowed data addresses; empty means any.
    public let addresses: [ClosedRange<Int64>]
    /// Allowed S7 areas; empty means any.
    public let areas: [Int16]
    /// Allowed S7 DB numbers; empty means any.
    public let dbNumbers: [ClosedRange<Int64>]
    /// Allowed responder ports; empty means any.
    public let ports: [ClosedRange<Int64>]
    /// Where the rule is written.
    public let mark: SourceMark

    init(_ r: ConduitRule) {
        switch r.ruleProtocol {
        case .application(let p): appProtocol = p; transport = nil
        case .transport(let t): appProtocol = nil; transport = t
        }
        accessMask = r.access.reduce(0) { $0 | (1 << UInt16($1.rawValue)) }
        functions = r.functions.sorted()
        devices = r.unitIDs + r.dnp3Addresses
        addresses = r.addresses; areas = r.s7Areas; dbNumbers = r.dbNumbers; ports = r.ports
        mark = r.mark
    }

    /// How far an operation got through this rule's checks.
    public enum Stage: UInt8, Sendable, Comparable {
        /// The access class or function code is not allowed.
        case function = 0
        /// The unit id or DNP3 address is not allowed.
        case device = 1
        /// The address range, S7 area or DB is not allowed.
        case data = 2
        /// Everything matched.
        case matched = 3
        public static func < (a: Stage, b: Stage) -> Bool { a.rawValue < b.rawValue }
    }

    /// Checks `op` (of this rule's protocol) and says which check it failed, if any.
    @inlinable public func match(_ op: Operation) -> Stage {
        if accessMask != 0 && accessMask & (1 << UInt16(op.access.rawValue)) == 0 { return .function }
        if !functions.isEmpty && !CompiledRule.sortedContains(functions, op.functionCode) { return .function }
        if !devices.isEmpty && op.unitID >= 0 && !CompiledRule.anyContains(devices, Int64(op.unitID)) { return .device }
        if !addresses.isEmpty && op.address >= 0 {
            let last = op.address &+ max(op.quantity, 1) &- 1
            var inside = false
            for r in addresses where r.contains(op.address) && r.contains(last) { inside = true; break }
            if !inside { return .data }
        }
        if !areas.isEmpty && op.area >= 0 && !areas.contains(op.area) { return .data }
        if !dbNumbers.isEmpty && op.dbNumber >= 0 && !CompiledRule.anyContains(dbNumbers, Int64(op.dbNumber)) { return .data }
        return .matched
    }

    /// Whether this transport rule covers a flow of `t` to responder port `port`.
    @inlinable public func matchesTransport(_ t: Transport, port: UInt16) -> Bool {
        guard let transport, transport == t else { return false }
        return ports.isEmpty || CompiledRule.anyContains(ports, Int64(port))
    }

    @inlinable static func anyContains(_ ranges: [ClosedRange<Int64>], _ v: Int64) -> Bool {
        for r in ranges where r.contains(v) { return true }
        return false
    }

    @inlinable static func sortedContains(_ a: [UInt16], _ v: UInt16) -> Bool {
        var lo = 0, hi = a.count
        while lo < hi {
            let mid = (lo + hi) >> 1
            if a[mid] < v { lo = mid + 1 } else { hi = mid }
        }
        return lo < a.count && a[lo] == v
    }
}

/// A conduit compiled for matching: resolved zone indices, endpoint prefixes, rules, notify mask.
public struct CompiledConduit: Sendable {
    /// Name (for intra-zone rules, `<zone> (intra-zone)`).
    public let name: String
    /// Initiating zone index.
    public let from: Int32
    /// Responding zone index.
    public let to: Int32
    /// Allowed initiators (assets resolved to host prefixes); empty: any.
    public let initiators: [IPPrefix]
    /// Allowed responders; empty: any.
    public let responders: [IPPrefix]
    /// Rules in file order.
    public let rules: [CompiledRule]
    /// Bit per `AppProtocol.rawValue` that has at least one rule.
    public let appMask: UInt8
    /// Bit per `AccessClass.rawValue` reported even when allowed.
    public let notifyMask: UInt16
    /// Whether this stands for a zone's own rules (`intra_zone: enforce`).
    public let isIntraZone: Bool

    /// Whether `ip` may initiate.
    @inlinable public func allowsInitiator(_ ip: IPAddress) -> Bool {
        if initiators.isEmpty { return true }
        for p in initiators where p.contains(ip) { return true }
        return false
    }

    /// Whether `ip` may respond.
    @inlinable public func allowsResponder(_ ip: IPAddress) -> Bool {
        if responders.isEmpty { return true }
        for p in responders where p.contains(ip) { return true }
        return false
    }
}
