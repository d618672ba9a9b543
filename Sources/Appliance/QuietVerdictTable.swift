import Wire
import Records
import Detection
import Engine
import CAppliance

/// A `--workers` engine's entries by its flow slot, 16 bytes each: the merge's verdict on the flow (`QuietVerdict`,
/// written by whichever thread runs the merge, read by the engine's thread) and the units the flow's requests last
/// addressed (`QuietUnits`, the engine's thread only). With them the engine leaves unsent the operations the merge
/// would pass over quietly (`EventRecorder.leavesUnsent`); the engine prefetches a flow's entry with its own state
/// (`flowStateTable`). A map of zero pages sized for every slot the engine's flow table hands out: pages are
/// touched only as flows come, and the map never moves under the other thread.
final class QuietVerdictTable: @unchecked Sendable {
    struct Entry {
        var verdict: UInt64
        var units: QuietUnits
    }

    /// Entries (flow slots).
    let capacity: Int
    let entries: UnsafeMutablePointer<Entry>
    /// The rule in force (`QuietDecisionMode`), set by the detection stage, read by the engine once per delivery:
    /// a word of its own, which the engine reaches without a reference to the stage (retained and released per read).
    let modeWord: UnsafeMutablePointer<UInt64>

    init(capacity: Int) {
        self.capacity = max(1, capacity)
        entries = LargeBlock.mapZeroed(self.capacity * MemoryLayout<Entry>.stride).bindMemory(to: Entry.self, capacity: self.capacity)
        modeWord = .allocate(capacity: 1)
        modeWord.initialize(to: UInt64(QuietDecisionMode.off))
    }

    deinit {
        LargeBlock.unmap(UnsafeMutableRawPointer(entries), bytes: capacity * MemoryLayout<Entry>.stride)
        modeWord.deallocate()
    }

    /// The detection stage: the rule from now on.
    func setMode(_ mode: UInt8) { zw_store_release_u64(modeWord, UInt64(mode)) }

    /// The merge: the verdict on the flow in `slot` (ignored beyond the table).
    func publish(_ v: QuietVerdict, slot: Int) {
        guard slot >= 0 && slot < capacity else { return }
        zw_store_relaxed_u64(Self.verdictWord(entries + slot), v.bits)
    }

    /// The merge, at a policy reload: forgets every verdict (they were the old policy's).
    func forgetVerdicts() {
        for slot in 0..<capacity where zw_load_relaxed_u64(Self.verdictWord(entries + slot)) != 0 {
            zw_store_relaxed_u64(Self.verdictWord(entries + slot), 0)
        }
    }

    /// The engine's thread: the verdict published for the flow in `slot`'s entry at `e`.
    @inline(__always) static func verdict(_ e: UnsafeMutablePointer<Entry>) -> QuietVerdict {
        QuietVerdict(bits: zw_load_relaxed_u64(verdictWord(e)))
    }

    /// The verdict's word in the entry at `e` (its first field).
    @inline(__always) static func verdictWord(_ e: UnsafeMutablePointer<Entry>) -> UnsafeMutablePointer<UInt64> {
        UnsafeMutableRawPointer(e).assumingMemoryBound(to: UInt64.self)
    }

    /// The prefetch hint for the engine (`EngineObserver.flowStateTable`).
    var hint: FlowStateTable { FlowStateTable(base: UnsafeRawPointer(entries), count: capacity, stride: MemoryLayout<Entry>.stride) }
}

/// Whether `--workers` engines may leave operations unsent, and by which rule (`EventRecorder.leavesUnsent`): set by
/// the detection stage in each worker's table from its detector's policy, at the start and at every reload (a
/// reload reaches the workers a little later than the merge: in a live capture, its moment is not exact anyway).
enum QuietDecisionMode {
    /// Every operation is sent.
    static let off: UInt8 = 0
    /// No policy: by the operation's own fields (`Detector.passesQuietlyWithoutPolicy`).
    static let withoutPolicy: UInt8 = 1
    /// By the verdicts the merge publishes (`QuietVerdictTable`).
    static let byVerdicts: UInt8 = 2

    /// The mode `detector`'s policy calls for.
    static func following(_ detector: Detector) -> UInt8 { detector.policy != nil ? byVerdicts : withoutPolicy }
}
