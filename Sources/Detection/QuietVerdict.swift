import Wire
import Records

/// What a `--workers` engine needs to know of one of its flows to tell, as `Detector.passesQuietly` would, that an
/// operation would change nothing in the detector, so that it need not be sent to the merge at all: the flow's
/// conduit allows its protocol, the access classes it allows quietly, and which endpoint the verdict calls the
/// initiator. Fixed once the flow is identified (`Detector.quietVerdict`, asked by the merge right after the flow's
/// `flowIdentified`); the one field of the detector's entry that changes later, the last unit the initiator
/// addressed, the engine follows from the flow's operations itself (`QuietUnits`). One word, so that the merge
/// hands it to the engine's thread with one store.
public struct QuietVerdict: Sendable, Equatable {
    /// Bits 0–15: the quiet access mask; 16–19: the quiet protocol (`AppProtocol.rawValue + 1`); 20: reversed;
    /// 24–63: the low 40 bits of the flow's serial in its engine. 0: no verdict.
    public var bits: UInt64

    /// No verdict: every operation goes to the merge.
    @inlinable public static var none: QuietVerdict { QuietVerdict(bits: 0) }

    @inlinable public init(bits: UInt64) { self.bits = bits }

    init(serial: UInt64, quietAccess: UInt16, quietProtocol: UInt8, reversed: Bool) {
        precondition(quietProtocol < 16, "a quiet protocol takes 4 bits")
        bits = (serial & (1 << 40 - 1)) << 24 | (reversed ? 1 << 20 : 0) | UInt64(quietProtocol) << 16 | UInt64(quietAccess)
    }

    /// Whether this is the verdict of the engine's flow with `serial` (not 0), not of an earlier flow in its slot.
    @inlinable @inline(__always) public func isFor(serial: UInt64) -> Bool {
        serial != 0 && bits >> 24 == serial & (1 << 40 - 1)
    }

    /// Whether `Detector.passesQuietly` says yes to the operation with traits `t` of this verdict's flow, whose
    /// requests last addressed `units` (`isFor` checked by the caller): the same check (`QuietTraits.passQuietly`).
    @inlinable @inline(__always) public func passes(_ t: UnsafePointer<QuietTraits>, units: QuietUnits) -> Bool {
        let reversed = bits & 1 << 20 != 0
        return t.pointee.passQuietly(conduitAllows: true, reversed: reversed, lastUnit: reversed ? units.byResponder : units.byInitiator,
                                     quietProtocol: UInt8(truncatingIfNeeded: bits >> 16) & 0xF,
                                     quietAccess: UInt16(truncatingIfNeeded: bits))
    }
}

/// The last unit id (Modbus unit, DNP3 address) a flow's requests addressed, followed by a `--workers` engine under
/// both readings of which endpoint initiates, since it follows them before it learns the verdict's: what
/// `Detector.checkOperation` leaves in the flow's `lastUnit` when the verdict's initiator is the engine's
/// (`byInitiator`) or its responder (`byResponder`). On a flow whose conduit allows its protocol, every request
/// that changes the unit reaches `checkOperation`, which records it; none other changes it.
public struct QuietUnits: Sendable, Equatable {
    public var byInitiator: Int32 = .min
    public var byResponder: Int32 = .min

    @inlinable public init() {}

    /// Follows the operation with traits `t` (taken after the check of that operation). Flags as literals: 1 a
    /// response, 2 sent by the engine's initiator (see `QuietTraits.init(at:)`).
    @inlinable @inline(__always) public mutating func note(_ t: UnsafePointer<QuietTraits>) {
        let flags = t.pointee.flags, unit = t.pointee.unit
        guard flags & 1 == 0, unit != .min else { return }
        if flags & 2 != 0 { byInitiator = unit } else { byResponder = unit }
    }
}

extension Detector {
    /// The verdict a `--workers` engine decides the flow's operations by (`QuietVerdict`), for the engine flow at
    /// `flowSlot` with `flowSerial` as the detector sees them (made unique over workers), whose serial in its engine is
    /// `engineSerial`: `.none` unless a policy is loaded and the flow's conduit allows its identified protocol (the
    /// flows `passesQuietly` can say yes for). Asked right after the flow's `flowIdentified`.
    public func quietVerdict(flowSlot: Int32, flowSerial: UInt64, engineSerial: UInt64) -> QuietVerdict {
        let e = Int(flowSlot)
        guard policy != nil, flowSerial != 0, e >= 0, e < engineSlots.count, engineSlots[e].serial == flowSerial else { return .none }
        let h = engineSlots[e]
        guard h.hasConduitMasks, !h.protocolDenied, h.quietProtocol != 0 else { return .none }
        return QuietVerdict(serial: engineSerial, quietAccess: h.quietAccess, quietProtocol: h.quietProtocol, reversed: h.reversed)
    }
}

/// The other half of a `--workers` engine's decision: it leaves an operation unsent only when an event it sent that
/// sweeps the aggregation windows (a flow started or identified, a tick, an operation) already reached that
/// operation's whole second of packet time, so the merge's sweeps stay what they would be (`Aggregator.nextSweep`).
/// Seconds as the aggregator counts them (`SweepClock`): a packet time whose microseconds wrap counts the same here.
public struct SentSecond: Sendable {
    /// The latest whole second (µs) an event sent reached.
    public var second: Int64 = .min

    @inlinable public init() {}

    /// An event at `time` that sweeps went to the merge.
    @inlinable @inline(__always) public mutating func sent(_ time: PacketTime) {
        let s = SweepClock.second(of: time)
        if s > second { second = s }
    }

    /// Whether an operation at `time` would sweep nothing new (its second reached already).
    @inlinable @inline(__always) public func covers(_ time: PacketTime) -> Bool { SweepClock.second(of: time) <= second }
}
