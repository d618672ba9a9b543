import Wire
import Records

/// What `Detector.isAllowedQuietly` reads of an operation and its flow, taken where the operation is made (a
/// `--workers` engine thread), so that the detection thread can decide with `Detector.passesQuietly` whether the
/// operation would change nothing but the aggregation clock, without the operation itself crossing cores.
public struct QuietTraits: Sendable {
    /// The operation's packet time (what `operation` sweeps the aggregation windows to).
    public var time: PacketTime
    /// The flow's engine serial (0: not an engine flow, never quiet this way) and slot, as the detector sees them.
    public var flowSerial: UInt64
    public var flowSlot: Int32
    /// The unit id a request from the initiator would compare with the flow's last one; `Int32.min`: none.
    public var unit: Int32
    /// `1 << op.access.rawValue`.
    public var accessBit: UInt16
    /// `op.appProtocol.rawValue + 1` (how the detector's engine-slot entry stores the flow's quiet protocol).
    public var quietProtocol: UInt8
    /// `response`, `fromInitiator` (the operation's sender field), `identification`, `mayRaise`.
    public var flags: UInt8

    static let response: UInt8 = 1, fromInitiator: UInt8 = 2, identification: UInt8 = 4, mayRaise: UInt8 = 8

    /// No operation: `passesQuietly` says no. (Computed: a stored static went through a lazy-initialisation check
    /// for every event.)
    @inline(__always) public static var none: QuietTraits {
        QuietTraits(time: .zero, flowSerial: 0, flowSlot: -1, unit: .min, accessBit: 0, quietProtocol: 0, flags: 0)
    }

    init(time: PacketTime, flowSerial: UInt64, flowSlot: Int32, unit: Int32, accessBit: UInt16, quietProtocol: UInt8, flags: UInt8) {
        self.time = time; self.flowSerial = flowSerial; self.flowSlot = flowSlot; self.unit = unit
        self.accessBit = accessBit; self.quietProtocol = quietProtocol; self.flags = flags
    }

    /// The traits of `op` on `flow` (the context the detector will be handed: slot and serial as it sees them).
    @inline(__always)
    public init(_ op: Operation, flow: FlowContext) {
        time = op.time
        flowSerial = flow.flowSlot >= 0 ? flow.flowSerial : 0
        flowSlot = flow.flowSlot
        unit = op.unitID >= 0 && (op.appProtocol == .modbus || op.appProtocol == .dnp3) ? op.unitID : .min
        accessBit = 1 << UInt16(op.access.rawValue)
        quietProtocol = op.appProtocol.rawValue &+ 1
        var f: UInt8 = 0
        if op.access == .response { f |= Self.response }
        if op.sender == .initiator { f |= Self.fromInitiator }
        if OperationRules.isIdentification(op) { f |= Self.identification }
        if OperationRules.mayRaise(op) { f |= Self.mayRaise }
        flags = f
    }
}

extension Detector {
    /// Whether `operation(op, flow:)` for an operation with these traits would do nothing but sweep the aggregation
    /// windows to `traits.time` (`tick(time:)`): `isAllowedQuietly` without its clock test, on the same engine-slot
    /// entry. When the clock is due, `checkedOperation` sweeps, then meets the same entry and returns through its
    /// conduit fast path without counting anything (`mayRaise` is false here), so the effect is the same sweep.
    /// Reads the entry only; keep in step with `isAllowedQuietly`.
    @inline(__always)
    public func passesQuietly(_ t: QuietTraits) -> Bool {
        guard policy != nil else { return false }
        let e = Int(t.flowSlot)
        guard t.flowSerial != 0, e >= 0, e < engineSlots.count, engineSlots[e].serial == t.flowSerial else { return false }
        let h = engineSlots[e]
        guard h.hasConduitMasks && !h.protocolDenied else { return false }
        if t.flags & QuietTraits.response != 0 { return true }
        if (t.flags & QuietTraits.fromInitiator != 0) != h.reversed {
            let unitChanged = t.unit != .min && t.unit != h.lastUnit
            if unitChanged || t.flags & QuietTraits.identification != 0 { return false }
        }
        return h.quietProtocol == t.quietProtocol && h.quietAccess & t.accessBit != 0 && t.flags & QuietTraits.mayRaise == 0
    }

    /// `operation` for an operation with these traits when `passesQuietly` says yes: the sweep to its time (true);
    /// nothing when it says no (false: the caller hands over the operation itself). One call for both.
    public func takeQuietly(_ t: QuietTraits, alerts: inout [Alert]) -> Bool {
        guard passesQuietly(t) else { return false }
        aggregator.sweep(t.time, into: &alerts)
        return true
    }
}
