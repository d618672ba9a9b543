import Records

/// Per-flow states of one dissector type, stored inline in one array and reused through a free list,
/// (a final class, so that `states[i].consume(...)` mutates in place), so the engine reaches a flow's dissector without existentials, boxes or enum copies.
final class DissectorPool<D: AppDissector> {
    @exclusivity(unchecked) var states: [D] = []
    @exclusivity(unchecked) private var free: [Int32] = []

    /// A slot holding a fresh state.
    func allocate() -> Int32 {
        if let s = free.popLast() { states[Int(s)] = D(); return s }
        states.append(D())
        return Int32(states.count - 1)
    }

    /// Returns a slot; its state is replaced so that per-flow memory is released now.
    func release(_ s: Int32) {
        states[Int(s)] = D()
        free.append(s)
    }

    /// Slots in use.
    var live: Int { states.count - free.count }
}
