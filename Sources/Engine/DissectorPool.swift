#if canImport(Glibc)
import Glibc
#endif
import CPrefetch
import Records
import Flows
import Wire

/// Per-flow states of one dissector type, stored inline in one block and reused through a free list,
/// (a final class, so that `states[i].consume(...)` mutates in place), so the engine reaches a flow's dissector without existentials, boxes or enum copies.
///
/// The block is reached through a raw pointer rather than an array property: `states[i].consume(...)` runs for
/// every PDU, and an array held by a class pays a uniqueness and a bounds check on each mutation. Slot numbers
/// come only from `allocate`. The block is sized for the flow table's cap up front (address space only: a page is
/// touched when a flow first takes a slot in it), so it does not move; were it full it would double (never while
/// a dissector runs: allocation happens when a flow is identified, before its first delivery).
final class DissectorPool<D: AppDissector> {
    @exclusivity(unchecked) private(set) var states: AlignedStates<D>
    /// Each state's flow context, built by the engine when a delivery first needs it (a flow's context never changes):
    /// handing it to the sink per PDU is one copy, where building it from the flow's slot was ~60 instructions. An entry
    /// whose `flowSerial` is not its flow's is not built yet (the block starts zeroed, and no flow has serial 0). Not
    /// written when the flow is identified: with records off and an observer that builds contexts on demand nothing
    /// reads them, and writing them touched ~14 MiB of fresh pages (each zeroed by the kernel) on the 100,000-flow plant.
    @exclusivity(unchecked) private(set) var contexts: UnsafeMutablePointer<FlowContext>
    @exclusivity(unchecked) private var capacity: Int
    @exclusivity(unchecked) private var count = 0
    /// Released slots, the last released on top (a raw block with room for every slot: pushing onto an array
    /// held by a class cost a uniqueness check and a call per flow).
    @exclusivity(unchecked) private var freeSlots: UnsafeMutablePointer<Int32>
    @exclusivity(unchecked) private var freeCount = 0
    /// States allocated and not released.
    var liveStates: Int { count - freeCount }

    /// Bytes from the start of a state that `prefetch` loads: what the dissector's per-packet path reads
    /// (`AppDissector.perPacketStateBytes`), at most four lines.
    @inline(__always) static var prefetchedBytes: Int { min(D.perPacketStateBytes, MemoryLayout<D>.size, 256) }
    /// Whether `prefetch` loads a state's context too: something reads it per packet (records copy it per delivery,
    /// or an observer per operation). Otherwise it stays unread: the observer's forwarder takes the flow's serial and
    /// slot from the engine.
    @exclusivity(unchecked) var prefetchesContext = false

    /// A pool with room for `capacity` states before it must grow: the most flows that can be live at once. Growing
    /// copied every state into a new block whose pages the kernel zeroed again (each doubling touched as many fresh
    /// pages as the block it left); on the 100,000-flow plant that page zeroing was ~4 % of the run.
    init(capacity: Int = 16) {
        let n = max(16, capacity)   // (the blocks were sized by `capacity`, so below 16 the pool overran them)
        self.capacity = n
        states = AlignedStates(capacity: n)
        contexts = DissectorPool.allocateContexts(n)
        freeSlots = .allocate(capacity: n)
    }

    deinit {
        for i in 0..<count { states.pointer(i).deinitialize(count: 1) }
        Glibc.free(states.base)
        DissectorPool.freeContexts(contexts, capacity)
        freeSlots.deallocate()
    }

    /// Zeroed room for `n` contexts (anonymous memory: pages cost nothing until written), in huge pages once large.
    /// `FlowContext` is plain data, so the zeroed block holds valid (unbuilt) contexts.
    private static func allocateContexts(_ n: Int) -> UnsafeMutablePointer<FlowContext> {
        LargeBlock.mapZeroed(n * MemoryLayout<FlowContext>.stride).bindMemory(to: FlowContext.self, capacity: n)
    }

    private static func freeContexts(_ p: UnsafeMutablePointer<FlowContext>, _ n: Int) {
        LargeBlock.unmap(UnsafeMutableRawPointer(p), bytes: n * MemoryLayout<FlowContext>.stride)
    }

    /// A slot holding a fresh state (its context not built: see `contexts`).
    func allocate() -> Int32 {
        // A freed slot already holds a fresh state (`release` put it there).
        if freeCount > 0 { freeCount &-= 1; return freeSlots[freeCount] }
        if count == capacity {
            // (No slot is free now: the free list's new block starts empty.)
            freeSlots.deallocate()
            freeSlots = .allocate(capacity: capacity * 2)
            let fresh = AlignedStates<D>(capacity: capacity * 2)
            for i in 0..<count { fresh.pointer(i).moveInitialize(from: states.pointer(i), count: 1) }
            Glibc.free(states.base)
            states = fresh
            let freshContexts = DissectorPool.allocateContexts(capacity * 2)
            freshContexts.update(from: contexts, count: count)
            DissectorPool.freeContexts(contexts, capacity)
            contexts = freshContexts
            capacity *= 2
        }
        states.pointer(count).initialize(to: D())
        count += 1
        return Int32(count - 1)
    }

    /// Returns a slot; its state is replaced by a fresh one, so that per-flow memory is released now and the slot
    /// is ready for `allocate`.
    func release(_ s: Int32) {
        // Destroyed and initialised in place: assigning `D()` went through an outlined assign-with-take that reloaded
        // every field of the old state (83 instructions a Modbus flow, 153 an S7comm flow).
        let state = states.pointer(Int(s))
        state.deinitialize(count: 1)
        state.initialize(to: D())
        // At most `count` slots are released, and `count` is at most `capacity`: more means one was released twice,
        // which would write past the free list.
        precondition(freeCount < count, "dissector pool: a slot released twice")
        freeSlots[freeCount] = s
        freeCount &+= 1
    }

    /// Releases every slot at once (every flow ended together), in memory order: each holds a fresh state and is free.
    func releaseAll() {
        for i in 0..<count {
            let state = states.pointer(i)
            state.deinitialize(count: 1)
            state.initialize(to: D())
            freeSlots[i] = Int32(i)
        }
        freeCount = count
    }

    /// Starts loading the cache lines of slot `s`'s state that a delivery reads, and its context's (a hint: `s` may
    /// be stale, so it is checked). Inlined into the engine's prefetch stage: a call per packet cost more than its body.
    @inline(__always)
    func prefetch(_ s: Int32) { prefetch(s, stateBytes: Self.prefetchedBytes) }

    /// `prefetch`, but the whole state: what ending the flow reads (`finish`, and `release`'s destroy, whose
    /// reference-counted fields lie past the per-packet line; with 100,000 flows ending at once, that line was a miss
    /// of each Modbus and S7comm flow's end).
    @inline(__always)
    func prefetchWhole(_ s: Int32) { prefetch(s, stateBytes: MemoryLayout<D>.size) }

    /// Starts loading the lines of slot `s`'s state from its start to `stateBytes`, and its context's when something
    /// reads it (`prefetchesContext`).
    @inline(__always)
    private func prefetch(_ s: Int32, stateBytes: Int) {
        guard s >= 0 && Int(s) < count else { return }
        let state = UnsafeRawPointer(states.pointer(Int(s)))
        var line = 0
        while line < stateBytes { zw_prefetch(state + line); line += 64 }
        guard prefetchesContext else { return }
        let context = UnsafeRawPointer(contexts + Int(s))
        zw_prefetch(context); zw_prefetch(context + MemoryLayout<FlowContext>.size - 1)
    }

    /// Slots in use.
    var live: Int { count - freeCount }
    /// Whether a state holds part of a message its dissector reassembles (`AppDissector.holdsUnfinishedMessage`): a
    /// pass over the block in memory order (a free slot holds a fresh state, which holds nothing).
    var anyHoldsUnfinishedMessage: Bool {
        for i in 0..<count where states[i].holdsUnfinishedMessage { return true }
        return false
    }
}

/// A block of dissector states `stride` bytes apart from a cache-line boundary: a power of two up to 64 bytes, a
/// whole number of lines beyond. With `MemoryLayout<D>.stride` apart (240 bytes for Modbus) most states began
/// mid-line, and the lines a packet reads at a state's start were one more than they need be.
struct AlignedStates<D> {
    /// The first state (on a cache-line boundary).
    let base: UnsafeMutableRawPointer

    /// Bytes from one state to the next.
    @inline(__always) static var stride: Int {
        // Closed forms, so that a specialised pool folds it to a constant.
        let s = MemoryLayout<D>.stride
        return s > 64 ? (s + 63) & ~63 : s <= 1 ? 1 : 1 << (Int.bitWidth - (s - 1).leadingZeroBitCount)
    }

    /// Room for `n` states, uninitialised, in huge pages once large (`LargeBlock`).
    init(capacity n: Int) {
        base = LargeBlock.allocate(n * Self.stride)
        for i in 0..<n { (base + i &* Self.stride).bindMemory(to: D.self, capacity: 1) }
    }

    /// State `i` in place.
    @inline(__always) func pointer(_ i: Int) -> UnsafeMutablePointer<D> {
        (base + i &* Self.stride).assumingMemoryBound(to: D.self)
    }

    /// State `i` (initialised), read or mutated in place.
    subscript(i: Int) -> D {
        @inline(__always) unsafeAddress { UnsafePointer(pointer(i)) }
        @inline(__always) nonmutating unsafeMutableAddress { pointer(i) }
    }
}
