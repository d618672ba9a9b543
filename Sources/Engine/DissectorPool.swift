#if canImport(Glibc)
import Glibc
#endif
import CPrefetch
import Records
import Flows

/// Per-flow states of one dissector type, stored inline in one block and reused through a free list,
/// (a final class, so that `states[i].consume(...)` mutates in place), so the engine reaches a flow's dissector without existentials, boxes or enum copies.
///
/// The block is reached through a raw pointer rather than an array property: `states[i].consume(...)` runs for
/// every PDU, and an array held by a class pays a uniqueness and a bounds check on each mutation. Slot numbers
/// come only from `allocate`; the block doubles when full (never while a dissector runs: allocation happens
/// when a flow is identified, before its first delivery).
final class DissectorPool<D: AppDissector> {
    @exclusivity(unchecked) private(set) var states: UnsafeMutablePointer<D>
    /// Each state's flow context, set when the flow is identified (a flow's context never changes): handing it to
    /// the sink per PDU is one copy, where building it from the flow's slot was ~60 instructions.
    @exclusivity(unchecked) private(set) var contexts: UnsafeMutablePointer<FlowContext>
    @exclusivity(unchecked) private var capacity = 16
    @exclusivity(unchecked) private var count = 0
    @exclusivity(unchecked) private var free: [Int32] = []

    init() {
        states = DissectorPool.allocateStates(capacity)
        contexts = DissectorPool.allocateContexts(capacity)
    }

    deinit {
        states.deinitialize(count: count)
        contexts.deinitialize(count: count)
        Glibc.free(states)
        Glibc.free(contexts)
    }

    private static func allocateContexts(_ n: Int) -> UnsafeMutablePointer<FlowContext> {
        LargeBlock.allocate(n * MemoryLayout<FlowContext>.stride).bindMemory(to: FlowContext.self, capacity: n)
    }

    /// Room for `n` states on a cache-line boundary, in huge pages once large (`LargeBlock`).
    private static func allocateStates(_ n: Int) -> UnsafeMutablePointer<D> {
        LargeBlock.allocate(n * MemoryLayout<D>.stride).bindMemory(to: D.self, capacity: n)
    }

    /// A slot holding a fresh state, for the flow with `context`.
    func allocate(context: FlowContext) -> Int32 {
        // A freed slot already holds a fresh state (`release` put it there).
        if let s = free.popLast() { contexts[Int(s)] = context; return s }
        if count == capacity {
            let fresh = DissectorPool.allocateStates(capacity * 2)
            fresh.moveInitialize(from: states, count: count)
            Glibc.free(states)
            states = fresh
            let freshContexts = DissectorPool.allocateContexts(capacity * 2)
            freshContexts.moveInitialize(from: contexts, count: count)
            Glibc.free(contexts)
            contexts = freshContexts
            capacity *= 2
        }
        (states + count).initialize(to: D())
        (contexts + count).initialize(to: context)
        count += 1
        return Int32(count - 1)
    }

    /// Returns a slot; its state is replaced by a fresh one, so that per-flow memory is released now and the slot
    /// is ready for `allocate`.
    func release(_ s: Int32) {
        states[Int(s)] = D()
        free.append(s)
    }

    /// Starts loading the first cache lines of slot `s`'s state (a hint: `s` may be stale, so it is checked).
    func prefetch(_ s: Int32) {
        guard s >= 0 && Int(s) < count else { return }
        let state = UnsafeRawPointer(states + Int(s))
        var line = 0
        while line < min(MemoryLayout<D>.size, 256) { zw_prefetch(state + line); line += 64 }
        let context = UnsafeRawPointer(contexts + Int(s))
        zw_prefetch(context); zw_prefetch(context + MemoryLayout<FlowContext>.size - 1)
    }

    /// Slots in use.
    var live: Int { count - free.count }
}
