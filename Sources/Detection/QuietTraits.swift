import Wire
import Records
import CPrefetch

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

    /// No operation: `passesQuietly` says no. (Computed, and its time too: a stored static, `PacketTime.zero`
    /// included, went through a lazy-initialisation check for every event.)
    @inline(__always) public static var none: QuietTraits {
        QuietTraits(time: PacketTime(seconds: 0, microsecondsInRange: 0), flowSerial: 0, flowSlot: -1, unit: .min, accessBit: 0,
                    quietProtocol: 0, flags: 0)
    }

    @usableFromInline
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

    /// `init(_:flow:)` for the operation at `op` on a flow with this serial and slot (as the detector sees them), read in
    /// place and inlined: taken by value, the operation and a flow context were copied for each call (about 80
    /// instructions an operation on a `--workers` engine thread). The flags are `response`, `fromInitiator`,
    /// `identification` and `mayRaise`, as literals (a static constant is read through a lazy global's check).
    @inlinable @inline(__always)
    public init(at op: UnsafePointer<Operation>, flowSerial: UInt64, flowSlot: Int32) {
        let access = op.pointee.access, appProtocol = op.pointee.appProtocol, unitID = op.pointee.unitID
        var f: UInt8 = access == .response ? 1 : 0
        if op.pointee.sender == .initiator { f |= 2 }
        if OperationRules.isIdentification(access: access) { f |= 4 }
        if OperationRules.mayRaise(appProtocol: appProtocol, access: access, functionCode: op.pointee.functionCode,
                                   broadcast: op.pointee.broadcast) { f |= 8 }
        self.init(time: op.pointee.time, flowSerial: flowSlot >= 0 ? flowSerial : 0, flowSlot: flowSlot,
                  unit: unitID >= 0 && (appProtocol == .modbus || appProtocol == .dnp3) ? unitID : .min,
                  accessBit: 1 << UInt16(access.rawValue), quietProtocol: appProtocol.rawValue &+ 1, flags: f)
    }
}

extension QuietTraits {
    /// The quiet check itself, on the fields of the flow's detector entry: its conduit allows its protocol
    /// (`conduitAllows`), whether the verdict swaps the engine's initiator and responder, the unit the verdict's
    /// initiator last addressed, the quiet protocol and access mask. Behind `Detector.passesQuietly` and
    /// `QuietVerdict.passes` (a `--workers` engine), so that both say the same. Flags as literals (see `init(at:)`).
    @inlinable @inline(__always)
    public func passQuietly(conduitAllows: Bool, reversed: Bool, lastUnit: Int32, quietProtocol: UInt8, quietAccess: UInt16) -> Bool {
        guard conduitAllows else { return false }
        if flags & 1 != 0 { return true }                        // a response
        if (flags & 2 != 0) != reversed {                        // from the verdict's initiator
            if (unit != .min && unit != lastUnit) || flags & 4 != 0 { return false }   // a new unit, or identification
        }
        return quietProtocol == self.quietProtocol && quietAccess & accessBit != 0 && flags & 8 == 0   // (8: may raise)
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
        guard policy != nil, let (slots, entries) = slotTable else { return false }
        return withUnsafePointer(to: t) { Self.passesQuietly(at: $0, slots: slots, entries: entries) }
    }

    /// `operation` for an operation with these traits when `passesQuietly` says yes: the sweep to its time (true);
    /// nothing when it says no (false: the caller hands over the operation itself). One call for both.
    public func takeQuietly(_ t: QuietTraits, alerts: inout [Alert]) -> Bool {
        guard passesQuietly(t) else { return false }
        aggregator.sweep(t.time, into: &alerts)
        return true
    }
}

extension Detector {
    /// `passesQuietly` for the traits at `t`, on the engine-slot table at `slots` with `entries` entries (`entryTable`,
    /// read once per batch: the table does not change while operations are passed over, and reading the array
    /// through the detector reloaded it and checked bounds per operation).
    @inline(__always)
    private static func passesQuietly(at t: UnsafePointer<QuietTraits>, slots: UnsafePointer<EngineSlot>, entries: Int) -> Bool {
        let e = Int(t.pointee.flowSlot)
        guard UInt(bitPattern: e) < UInt(bitPattern: entries) else { return false }
        let h = slots + e
        guard t.pointee.flowSerial != 0, h.pointee.serial == t.pointee.flowSerial else { return false }
        return t.pointee.passQuietly(conduitAllows: h.pointee.flags & (EngineSlot.conduitMasksFlag | EngineSlot.protocolDeniedFlag) == EngineSlot.conduitMasksFlag,
                                     reversed: h.pointee.reversed, lastUnit: h.pointee.lastUnit, quietProtocol: h.pointee.quietProtocol,
                                     quietAccess: h.pointee.quietAccess)
    }

    /// Starts loading the engine-slot entry the traits at `t` will read (with many flows each is otherwise a miss).
    @inline(__always)
    private static func prefetchEntry(_ t: UnsafePointer<QuietTraits>, slots: UnsafePointer<EngineSlot>, entries: Int) {
        let s = Int(t.pointee.flowSlot)
        if UInt(bitPattern: s) < UInt(bitPattern: entries) { zw_prefetch(slots + s) }
    }

    /// The engine-slot table for the batch loops (nil: no entries).
    @inline(__always)
    private var slotTable: (UnsafePointer<EngineSlot>, Int)? {
        let (base, entries, _) = entryTable
        guard let b = base, entries > 0 else { return nil }
        return (b.assumingMemoryBound(to: EngineSlot.self), entries)
    }

    /// `takeQuietly` for each of the `count` traits at `first` (`stride` bytes apart) in turn, stopping at the first it
    /// says no to, or after one whose sweep leaves `alerts` non-empty; returns how many it took. One call for a
    /// run of operations merged from one `--workers` engine: per operation, the check and the clock comparison inline.
    public func takeQuietly(run first: UnsafeRawPointer, stride: Int, count: Int, alerts: inout [Alert]) -> Int {
        guard policy != nil, let (slots, entries) = slotTable else { return 0 }
        var nextSweep = aggregator.nextSweep
        var i = 0
        while i < count {
            if i &+ 6 < count { Self.prefetchEntry((first + (i &+ 6) &* stride).assumingMemoryBound(to: QuietTraits.self), slots: slots, entries: entries) }
            let t = (first + i &* stride).assumingMemoryBound(to: QuietTraits.self)
            guard Self.passesQuietly(at: t, slots: slots, entries: entries) else { return i }
            i &+= 1
            guard sweepIfDue(t.pointee.time.totalMicroseconds, nextSweep: &nextSweep, alerts: &alerts) else { return i }
        }
        return i
    }

    /// After a quiet operation at `time` was taken: sweeps the aggregation windows if due (`nextSweep`, the
    /// aggregator's, kept in a register by the caller); false when the sweep raised alerts (the caller stops there).
    @inline(__always)
    private func sweepIfDue(_ time: Int64, nextSweep: inout Int64, alerts: inout [Alert]) -> Bool {
        guard time >= nextSweep else { return true }
        aggregator.sweepDue(time, into: &alerts)
        if !alerts.isEmpty { return false }
        nextSweep = aggregator.nextSweep
        return true
    }

    /// `takeQuietly(run:)` over two runs at once, merged: each record is a merge key (`UInt64`) followed by the traits,
    /// `stride` bytes apart, keys never decreasing within a run; they are taken in key order, `a`'s first at equal
    /// keys, stopping at the first record `takeQuietly` says no to, after one whose sweep leaves `alerts` non-empty, or
    /// when either run is used up (what the other holds may precede that run's next, not yet seen). Returns how many
    /// of each it took. The `--workers 2` merge: there, the two workers' events interleave a few at a time.
    public func takeQuietly(merging a: UnsafeRawPointer, count aCount: Int, with b: UnsafeRawPointer, count bCount: Int,
                            stride: Int, alerts: inout [Alert]) -> (Int, Int) {
        guard policy != nil, aCount > 0, bCount > 0, let (slots, entries) = slotTable else { return (0, 0) }
        // Each run's next record is at `ra` / `rb`. The entry a record will read is fetched `entryAhead` records
        // on in its run (with 100,000 flows most entries are misses).
        let entryAhead = 8
        let endA = a + aCount &* stride, endB = b + bCount &* stride
        var ra = a, rb = b
        var ka = ra.load(as: UInt64.self), kb = rb.load(as: UInt64.self)
        for k in 0..<min(entryAhead, aCount) {
            Self.prefetchEntry((a + k &* stride + 8).assumingMemoryBound(to: QuietTraits.self), slots: slots, entries: entries)
        }
        for k in 0..<min(entryAhead, bCount) {
            Self.prefetchEntry((b + k &* stride + 8).assumingMemoryBound(to: QuietTraits.self), slots: slots, entries: entries)
        }
        var nextSweep = aggregator.nextSweep
        /// Takes the record at `r` (its run ends at `end`) if it passes quietly: sweeps if due, moves `r` on; false
        /// when it does not pass, or when its sweep left alerts (after taking it).
        @inline(__always) func take(_ r: inout UnsafeRawPointer, end: UnsafeRawPointer) -> Bool {
            let t = (r + 8).assumingMemoryBound(to: QuietTraits.self)
            guard Self.passesQuietly(at: t, slots: slots, entries: entries) else { return false }
            let ahead = r + (entryAhead &+ 1) &* stride
            if ahead < end { Self.prefetchEntry((ahead + 8).assumingMemoryBound(to: QuietTraits.self), slots: slots, entries: entries) }
            r += stride
            return sweepIfDue(t.pointee.time.totalMicroseconds, nextSweep: &nextSweep, alerts: &alerts)
        }
        // Runs of each in turn: `a`'s while its keys are at most `b`'s next, then `b`'s while below `a`'s next.
        outer: while true {
            while ka <= kb {
                guard take(&ra, end: endA), ra != endA else { break outer }
                ka = ra.load(as: UInt64.self)
            }
            while kb < ka {
                guard take(&rb, end: endB), rb != endB else { break outer }
                kb = rb.load(as: UInt64.self)
            }
        }
        return ((ra - a) / stride, (rb - b) / stride)
    }
}
