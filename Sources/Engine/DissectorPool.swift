import Records

/// Per-flow states of one dissector type, stored inline in one array and reused through a free list,
/// so the engine reaches a flow's dissector without existentials, boxes or enum copies.
struct DissectorPool<D: AppDissector> {
    var states: [D] = []
    private var free: [Int32] = []

    /// A slot holding a fresh state.
    mutating func allocate() -> Int32 {
        if let s = free.popLast() { states[Int(s)] = D(); return s }
        states.append(D())
        return Int32(states.count - 1)
    }

    /// Returns a slot; its state is replaced so that per-flow memory is released now.
    mutating func release(_ s: Int32) {
        states[Int(s)] = D()
        free.append(s)
    }

    /// Slots in use.
    var live: Int { states.count - free.count }
}
