#if canImport(Glibc)
import Glibc
#endif
import CPrefetch
import Wire

/// Bounds and timeouts of the flow table.
public struct FlowTableLimits: Sendable {
    /// Live flows at most; the least recently seen is evicted (and counted) to make room.
    public var maximumFlows = 1 << 18
    /// Idle timeout for TCP flows, seconds of packet time.
    public var tcpIdleTimeout: Int64 = 600
    /// Idle timeout for UDP and other flows.
    public var udpIdleTimeout: Int64 = 120
    /// How long a closed TCP flow lingers to absorb stragglers (final ACKs, retransmitted SYN-ACKs) before its
    /// record is written.
    public var closedLinger: Int64 = 120
    /// Creates the defaults.
    public init() {}
}

/// An open-addressing flow table with a hard cap.
///
/// Linear probing over a power-of-two index whose entries carry the upper hash bits beside the slot number,
/// so a probe touches only the index until the one key comparison; backward-shift deletion (no tombstones).
/// The index grows with the live flows (kept at most a quarter full: 8 bytes an entry, and at half full the longer
/// probe runs cost the 10,000-flow foundation capture ~2 % more time than the bigger index does); the key compared is the one in the flow's
/// state (its first cache line, which the packet touches next anyway); LRU links (active TCP, active other and
/// closed lists, for O(1) idle expiry and eviction) sit in a small array of their own, and slots are taken in order
/// up to the cap and then reused: nothing here allocates per packet in steady state.
///
/// A final class, owned by one engine on one thread: callers reach the arrays in place (a struct held in a
/// class property is copied, buffers retained, on some accesses), and exclusivity checks are off.
public final class FlowTable {
    /// Flow states by slot (the first `slotCount` used; the block holds the cap, its pages touched as flows come);
    /// a slot not reachable from the index is free and holds no state, only `vacantKey`'s bytes (see `remove`). A raw
    /// pointer, not an array: the engine reaches it from another module several times per packet, and there a
    /// class's array property costs a dynamic exclusivity check, a uniqueness check and a bounds check per access.
    /// Slot numbers come only from this table; the block never moves.
    @inlinable public var slots: UnsafeMutablePointer<FlowState> { slotStore }
    @usableFromInline let slotStore: UnsafeMutablePointer<FlowState>
    /// Slots used so far (live or free).
    @inlinable public var slotCount: Int { initialisedSlots }
    @exclusivity(unchecked) @usableFromInline var initialisedSlots = 0
    // 0 empty, else (hash << 32) | (slot + 1) (`entry`); raw for the same reasons as the slots (and huge pages).
    @exclusivity(unchecked) @usableFromInline var index: UnsafeMutablePointer<UInt64>
    @exclusivity(unchecked) private var indexSize: Int
    @exclusivity(unchecked) private var freeSlots: [Int32] = []
    /// Community IDs by slot, valid where the slot's state says so (`FlowState.communityIDStored`). Apart from the
    /// states and zeroed by the kernel on first write: most runs compute none, and those that do (records) compute
    /// each once and read it a few times.
    public let communityIDs: UnsafeMutablePointer<InlineText>
    /// LRU links by slot: neighbours, list, and order of the last move to the front (`LRULinks`).
    /// An array of their own, 16 bytes a flow, not fields of the slot: a flow moves to the front on its first packet
    /// in a second, which rewrites its own and three other flows' links; with 10,000 flows the array stays in
    /// the core's L2 (160 KB), where the slots' fifth lines (3 MB) came from L3 or memory, a few misses per move.
    @usableFromInline let lruLinks: UnsafeMutablePointer<LRULinks>
    /// Flows seen again (their first packet in a second of packet time) since the LRU lists were last brought up
    /// to date, in order. `touchLater` notes one with a store and no branch; every other use or change of the lists
    /// first moves these to the front one by one (`applyPendingTouches`), which leaves the lists exactly as
    /// touching each at once would have. A relink on the packet path was an unpredictable branch and four
    /// scattered link updates for one packet in five of a 10,000-flow capture; here the updates run back to back.
    /// New and closed flows' list changes queue here too, in order (`noteListChange`).
    @usableFromInline let pendingTouches = UnsafeMutablePointer<Int32>.allocate(capacity: FlowTable.pendingCapacity)
    @exclusivity(unchecked) @usableFromInline var pendingCount = 0
    @usableFromInline static let pendingCapacity = 1024
    /// `relinkPendingWithNeighbours`' look-ahead, in entries.
    static let relinkAhead = 16
    /// `prefetchAhead`'s packets in flight by position mod 32: [4i] position, [4i+1] flow hash, [4i+2] slot once
    /// looked up (UInt64.max: none), [4i+3] unused.
    @usableFromInline let aheadRing = UnsafeMutablePointer<UInt64>.allocate(capacity: 128)
    @exclusivity(unchecked) @usableFromInline var mask: Int
    private let capacity: Int
    /// The bounds in force.
    public let limits: FlowTableLimits
    /// Most and least recently seen flow of each `LRUList` (by raw value; -1 none).
    private let heads = UnsafeMutablePointer<Int32>.allocate(capacity: 3)
    private let tails = UnsafeMutablePointer<Int32>.allocate(capacity: 3)
    /// The next move to the front's order number (`LRULinks.order`).
    @exclusivity(unchecked) private var nextOrder: UInt64 = 0
    /// Live flows.
    @exclusivity(unchecked) public private(set) var count = 0

    /// The key of the flows' hashes (`FlowKey.fastHash`): the table's callers hash with it.
    public let hashKey: FlowHashKey

    /// Creates a table for `limits.maximumFlows` flows, hashed under `hashKey` (random unless a test fixes it).
    public init(limits: FlowTableLimits = .init(), hashKey: FlowHashKey = .random()) {
        self.limits = limits
        self.hashKey = hashKey
        capacity = max(16, limits.maximumFlows)
        precondition(capacity < 1 << 30, "flow table: at most 2^30 flows")   // `pendingTouches` keeps list changes in the top bits
        mask = 1023
        indexSize = 1024
        index = FlowTable.allocateIndex(1024)
        // Address space for every slot up front: pages are touched (huge pages: 2 MiB at a time) only as flows come,
        // and the block never moves (doubling it copied every flow's state into fresh pages, page faults included).
        slotStore = FlowTable.allocateSlots(capacity)
        lruLinks = LargeBlock.allocate(capacity * MemoryLayout<LRULinks>.stride).bindMemory(to: LRULinks.self, capacity: capacity)
        // Zeroed memory holds valid (empty) texts.
        communityIDs = LargeBlock.mapZeroed(capacity * MemoryLayout<InlineText>.stride).bindMemory(to: InlineText.self, capacity: capacity)
        aheadRing.initialize(repeating: 0, count: 128)
        heads.initialize(repeating: -1, count: 3); tails.initialize(repeating: -1, count: 3)
    }

    deinit {
        // Only live flows' slots hold a state (`remove` moves it out): those the index names.
        for k in 0..<indexSize where index[k] != 0 { (slots + Int(FlowTable.slot(of: index[k]))).deinitialize(count: 1) }
        FlowTable.releaseSlots(slots)
        free(lruLinks)
        LargeBlock.unmap(UnsafeMutableRawPointer(communityIDs), bytes: capacity * MemoryLayout<InlineText>.stride)
        FlowTable.releaseIndex(index, size: indexSize)
        aheadRing.deallocate()
        pendingTouches.deallocate()
        heads.deallocate(); tails.deallocate()
    }

    @inline(__always) @usableFromInline static func entry(_ hash: UInt64, _ slot: Int32) -> UInt64 {
        tag(hash) | UInt64(UInt32(bitPattern: slot) &+ 1)
    }

    /// What an index entry keeps of its flow's hash (its upper half): the hash's lower half, from which the home
    /// position comes (see `home`).
    @inlinable @inline(__always) static func tag(_ hash: UInt64) -> UInt64 { hash << 32 }

    @inlinable @inline(__always) static func slot(of entry: UInt64) -> Int32 {
        Int32(bitPattern: UInt32(truncatingIfNeeded: entry) &- 1)
    }

    /// The index position where the flow with `hash` probes first: from the hash's lower half, which every entry
    /// keeps as its tag, so that deletion and growth find an entry's home from the entry alone (`home(entry:)`;
    /// reading each neighbour's hash by slot was a cache miss per entry shifted with 100,000 flows).
    @inlinable @inline(__always) func home(_ hash: UInt64) -> Int { Int(truncatingIfNeeded: hash) & mask }

    /// `home` of the flow whose index entry is `entry`.
    @inlinable @inline(__always) func home(entry: UInt64) -> Int { Int(truncatingIfNeeded: entry >> 32) & mask }

    /// Doubles the index (rehashing every live flow) while it is more than a quarter full.
    private func growIfNeeded() {
        guard (count + 1) * 4 > indexSize else { return }
        var size = indexSize
        while (count + 1) * 4 > size { size <<= 1 }
        let fresh = FlowTable.allocateIndex(size)
        let m = size - 1
        for k in 0..<indexSize where index[k] != 0 {
            let e = index[k]
            var i = Int(truncatingIfNeeded: e >> 32) & m   // `home(entry:)` in the new size
            while fresh[i] != 0 { i = (i + 1) & m }
            fresh[i] = e
        }
        FlowTable.releaseIndex(index, size: indexSize)
        index = fresh
        indexSize = size
        mask = m
    }

    /// A block of `count` slots on a cache-line boundary (the state's stride is whole lines: a slot's hot
    /// fields then sit in exactly the lines `FlowState` plans for). A block of 2 MiB or more asks for
    /// transparent huge pages: every packet lands on a random flow, and with 4 KiB pages that is a TLB miss on
    /// top of the cache miss.
    private static func allocateSlots(_ count: Int) -> UnsafeMutablePointer<FlowState> {
        allocateBlock(count * MemoryLayout<FlowState>.stride).bindMemory(to: FlowState.self, capacity: count)
    }

    /// A zeroed index of `size` entries (the kernel's zeroed pages: writing zeros over them first was a pass over the
    /// whole index at each doubling). Release with `releaseIndex`.
    private static func allocateIndex(_ size: Int) -> UnsafeMutablePointer<UInt64> {
        LargeBlock.mapZeroed(size * 8).bindMemory(to: UInt64.self, capacity: size)
    }

    private static func releaseIndex(_ index: UnsafeMutablePointer<UInt64>, size: Int) {
        LargeBlock.unmap(UnsafeMutableRawPointer(index), bytes: size * 8)
    }

    private static func allocateBlock(_ bytes: Int) -> UnsafeMutableRawPointer { LargeBlock.allocate(bytes) }

    private static func releaseSlots(_ slots: UnsafeMutablePointer<FlowState>) { free(slots) }


    /// Whether the table is at its cap.
    public var isFull: Bool { count >= limits.maximumFlows }

    /// The slot of `key`, if live.
    @inlinable
    public func find(_ key: FlowKey, hash: UInt64) -> Int32? {
        let tag = UInt32(truncatingIfNeeded: hash)   // `tag(hash)`, compared as the entry's upper half
        var i = home(hash)
        while true {
            let e = index[i]
            if e == 0 { return nil }
            if UInt32(truncatingIfNeeded: e >> 32) == tag {
                let s = FlowTable.slot(of: e)
                if slots[Int(s)].key == key { return s }
            }
            i = (i + 1) & mask
        }
    }

    /// Starts loading the index entry where the flow with `hash` would be (for a packet a few places ahead).
    @inlinable
    public func prefetchIndex(hash: UInt64) {
        zw_prefetch(index + home(hash))
    }

    /// Starts loading the cache lines (see `FlowState`) of the flow with `hash`, when the index
    /// (prefetched a little earlier) names a candidate: the first entry with the hash's tag. There is no key
    /// comparison (that would wait for the very line being prefetched); a wrong guess only wastes a prefetch.
    /// Returns the candidate's slot (-1 none), for a later hint about its application state.
    @discardableResult @inlinable @inline(__always)
    public func prefetchSlot(hash: UInt64) -> Int32 {
        let tag = UInt32(truncatingIfNeeded: hash)   // `tag(hash)`, compared as the entry's upper half
        var i = home(hash)
        for _ in 0..<4 {
            let e = index[i]
            if e == 0 { return -1 }
            if UInt32(truncatingIfNeeded: e >> 32) == tag {
                // The per-packet lines (see `FlowState`); a dissected flow's per-flow lines are asked for later,
                // once its application is known (`prefetchFlowLines`).
                let state = UnsafeRawPointer(slots + Int(FlowTable.slot(of: e)))
                zw_prefetch(state); zw_prefetch(state + 64)
                return FlowTable.slot(of: e)
            }
            i = (i + 1) & mask
        }
        return -1
    }

    /// One step of the flow prefetch pipeline, once per packet, before the packet is processed: `hash` is the flow
    /// hash of the packet `distance` places ahead, numbered `position` (nil: not known). Starts loading that
    /// packet's index entry; looks up the packet `distance / 2` ahead in the index (its entry has had time to
    /// arrive) and starts loading its flow state; returns the slot of the packet `distance / 4` ahead (its state
    /// has had time to arrive; -1: none), for a hint about what the state points to. With thousands of
    /// interleaved flows these are otherwise dependent cache misses on every packet. Hints only: lookups see no
    /// difference, and a stale slot (the flow ended meanwhile) only wastes a prefetch. `distance` must be a
    /// multiple of 4 of at most 16 (packets in flight live in a ring of 32 positions).
    @inlinable @inline(__always)
    public func prefetchAhead(hash: UInt64?, position: UInt64, distance: UInt64) -> Int32 {
        if let h = hash {
            let i = Int(position & 31) &* 4
            aheadRing[i] = position; aheadRing[i &+ 1] = h; aheadRing[i &+ 2] = UInt64.max
            prefetchIndex(hash: h)
        }
        let near = position &- distance / 2, j = Int(near & 31) &* 4
        if aheadRing[j] == near {
            aheadRing[j &+ 2] = UInt64(bitPattern: Int64(prefetchSlot(hash: aheadRing[j &+ 1])))
        }
        let nearest = position &- (distance &- distance / 4), k = Int(nearest & 31) &* 4
        guard aheadRing[k] == nearest else { return -1 }
        let s = Int32(truncatingIfNeeded: aheadRing[k &+ 2])
        return s >= 0 && Int(s) < slotCount ? s : -1
    }

    /// The slot `prefetchAhead` found for the packet numbered `position`, or -1 when there is none. It held the
    /// flow's state then (or another flow's whose hash shares the tag); the flow may have ended since, and the slot
    /// may hold a new flow or be vacant (`vacantKey`). The caller compares keys: with a match this is the flow
    /// `find` would return (keys are unique among live flows), without probing.
    @inlinable @inline(__always)
    public func candidate(at position: UInt64) -> Int32 {
        let k = Int(position & 31) &* 4
        guard aheadRing[k] == position else { return -1 }
        return Int32(truncatingIfNeeded: aheadRing[k &+ 2])
    }

    /// Puts the packet numbered `position` (with flow hash `hash`) into the prefetch pipeline late, if it is not in
    /// it (the lookahead had missed it), and starts loading its index entry. Its slot is looked up by the
    /// pipeline's own stage if that is still to come, else by `lookUpAhead`. A hint only.
    @inline(__always)
    public func noteAhead(position: UInt64, hash: UInt64) {
        let i = Int(position & 31) &* 4
        guard aheadRing[i] != position else { return }
        aheadRing[i] = position; aheadRing[i &+ 1] = hash; aheadRing[i &+ 2] = UInt64.max
        prefetchIndex(hash: hash)
    }

    /// Looks up (and starts loading) the flow state of the packet numbered `position` in the prefetch pipeline
    /// when it has no slot yet (`noteAhead`), for `candidate(at:)`. A hint only.
    @inline(__always)
    public func lookUpAhead(position: UInt64) {
        let i = Int(position & 31) &* 4
        guard aheadRing[i] == position, aheadRing[i &+ 2] == UInt64.max else { return }
        aheadRing[i &+ 2] = UInt64(bitPattern: Int64(prefetchSlot(hash: aheadRing[i &+ 1])))
    }

    /// The key a removed flow's slot keeps until it is reused: no packet has it (VLAN 0xFFFF is reserved by
    /// 802.1Q, and a decoded packet has addresses and a protocol).
    public static let vacantKey = FlowKey(lowIP: IPAddress(v4: 0), highIP: IPAddress(v4: 0), lowPort: 0, highPort: 0,
                                          ipProtocol: 0, vlan: 0xFFFF)

    /// Inserts a new flow; the table must not be full (evict first).
    ///
    /// The state is moved into its slot (a free slot holds no state: `remove` moved it out): a copy retained its
    /// four buffers, and the copy left behind and the slot's vacant state released them again, a dozen reference
    /// counts a flow.
    public func insert(_ state: consuming FlowState, hash: UInt64) -> Int32 {
        growIfNeeded()
        let change = state.key.ipProtocol == 6 ? FlowTable.linkTCP : FlowTable.linkOther
        state.hashLow = UInt32(truncatingIfNeeded: hash)
        let s: Int32
        if let reused = freeSlots.popLast() {
            s = reused
        } else {
            precondition(initialisedSlots < capacity, "flow table full: evict before inserting")
            s = Int32(initialisedSlots)
            initialisedSlots += 1
        }
        (slots + Int(s)).initialize(to: state)
        var i = home(hash)
        while index[i] != 0 { i = (i + 1) & mask }
        index[i] = FlowTable.entry(hash, s)
        count += 1
        noteListChange(s, change)
        return s
    }

    /// Removes a flow and returns its state (moved out: the slot holds none until reused, only the bytes of
    /// `vacantKey` where the key was).
    public func remove(_ s: Int32) -> FlowState {
        applyPendingTouches()
        unlink(s)
        var i = home(UInt64(slots[Int(s)].hashLow))
        while FlowTable.slot(of: index[i]) != s { i = (i + 1) & mask }
        // Backward-shift deletion keeps every probe chain unbroken.
        var j = i
        while true {
            j = (j + 1) & mask
            let t = index[j]
            if t == 0 { break }
            let h = home(entry: t)
            // Move t back to i unless its home lies cyclically in (i, j].
            let inRange = i <= j ? (h > i && h <= j) : (h > i || h <= j)
            if !inRange { index[i] = t; i = j }
        }
        index[i] = 0
        freeSlots.append(s)
        count -= 1
        let state = (slots + Int(s)).move()
        // What a slot `prefetchAhead` named before the flow ended is read for (raw, the slot holding no state): a key
        // that matches no packet (VLAN 0xFFFF is reserved, protocol 0 and no addresses), so that the caller's key
        // comparison (`candidate`) fails, and no application, so that no dissector state is prefetched for it.
        let raw = UnsafeMutableRawPointer(slots + Int(s))
        raw.storeBytes(of: FlowTable.vacantKey, toByteOffset: FlowTable.keyOffset, as: FlowKey.self)
        raw.storeBytes(of: 0, toByteOffset: FlowTable.applicationOffset, as: UInt8.self)
        return state
    }

    private static let keyOffset = MemoryLayout<FlowState>.offset(of: \FlowState.key)!
    private static let applicationOffset = MemoryLayout<FlowState>.offset(of: \FlowState.application)!

    /// Marks a flow as just seen (moves it to the front of its list).
    public func touch(_ s: Int32) {
        applyPendingTouches()
        relink(s)
    }

    /// `touch(s)` if `seen`, deferred until the lists are next used or changed (see `pendingTouches`).
    @inlinable @inline(__always)
    public func touchLater(_ s: Int32, if seen: Bool) {
        pendingTouches[pendingCount] = s
        pendingCount &+= seen ? 1 : 0
        if pendingCount == FlowTable.pendingCapacity { applyPendingTouches() }
    }

    /// Moves the flows `touchLater` noted to the front of their lists, in the order noted.
    @inlinable @inline(__always)
    func applyPendingTouches() {
        if pendingCount > 0 { relinkPending() }
    }

    // What a `pendingTouches` entry asks (its top two bits; the slot below): a touch (what `touchLater` stores),
    // the first link of a new flow into the active TCP or the active other list, or a move to the closed list.
    static let linkTCP: UInt32 = 1 << 30, linkOther: UInt32 = 2 << 30, moveToClosed: UInt32 = 3 << 30
    static let slotBits: UInt32 = (1 << 30) - 1

    /// Queues a list change of flow `s` behind the pending touches (`insert` and `markClosed`): applying them at
    /// each new or closed flow left batches of a few entries (a 100,000-flow plant starts or closes a flow every
    /// dozen packets), too short for their links' prefetches to overlap.
    @inline(__always)
    private func noteListChange(_ s: Int32, _ change: UInt32) {
        pendingTouches[pendingCount] = Int32(bitPattern: UInt32(bitPattern: s) | change)
        pendingCount &+= 1
        if pendingCount == FlowTable.pendingCapacity { applyPendingTouches() }
    }

    @usableFromInline @inline(never)
    func relinkPending() {
        let n = pendingCount
        if count >= 1 << 15 { relinkPendingWithNeighbours(n); pendingCount = 0; return }
        let pending = pendingTouches, links = lruLinks
        var order = nextOrder
        for i in 0..<n {
            // The links of the flow a few entries on, so that consecutive updates overlap.
            if i &+ 8 < n { zw_prefetch(links + Int(UInt32(bitPattern: pending[i &+ 8]) & FlowTable.slotBits)) }
            applyListChange(pending[i], order: &order)
        }
        nextOrder = order
        pendingCount = 0
    }

    /// `relinkPending`'s loop past 32,768 flows (512 KiB of links, more than a core's share of L2): the links of the
    /// entry `2 * ahead` on, then (once those arrived) those of the entry `ahead` on and its neighbours' links, which
    /// unlinking rewrites, so that the updates of consecutive entries overlap instead of waiting miss by miss. Below,
    /// the links are in cache and reading an entry's early only costs instructions.
    private func relinkPendingWithNeighbours(_ n: Int) {
        // How far ahead: an entry takes ~25 cycles, a miss several hundred. At 8 (own links 16 on), reading the
        // entry 8 on still waited on its line in ~60 % of the loop's samples on the 100,000-flow plant; at 16 the
        // loop took a third fewer samples (32: the same as 16).
        let ahead = FlowTable.relinkAhead
        // The table's pointers and the order counter in locals: as fields they were reloaded after every store
        // through a link (the compiler cannot tell the links from the table's own storage).
        let pending = pendingTouches, links = lruLinks, cap = UInt32(capacity)
        var order = nextOrder
        for i in 0..<n {
            if i &+ 2 &* ahead < n { zw_prefetch(links + Int(UInt32(bitPattern: pending[i &+ 2 &* ahead]) & FlowTable.slotBits)) }
            if i &+ ahead < n {
                let e = UInt32(bitPattern: pending[i &+ ahead])
                if e < FlowTable.linkTCP || e >= FlowTable.moveToClosed {
                    let l = links[Int(e & FlowTable.slotBits)]
                    if UInt32(bitPattern: l.previous) < cap { zw_prefetch(links + Int(l.previous)) }
                    if UInt32(bitPattern: l.next) < cap { zw_prefetch(links + Int(l.next)) }
                }
            }
            applyListChange(pending[i], order: &order)
        }
        nextOrder = order
    }

    /// Applies one `pendingTouches` entry, with `order` standing for `nextOrder` (the caller writes it back).
    @inline(__always)
    private func applyListChange(_ entry: Int32, order: inout UInt64) {
        let e = UInt32(bitPattern: entry)
        if e < FlowTable.linkTCP {
            // A touch, the usual entry: `relink`, written out on locals. The flow is linked (its own list change
            // came before it), so it heads its list exactly when it has no previous flow.
            let links = lruLinks, heads = self.heads
            let s = Int(e)
            let l = links[s]
            let list = l.listIndex
            if l.previous < 0 {
                // Already first in its list, but maybe not the most recently seen of all (see `lessRecentlySeen`).
                links[s].listAndOrder = UInt64(list) << 56 | order
                order &+= 1
                return
            }
            // Unlink (not the head: the list keeps its head, and a tail only if `s` was not it), then link at the front.
            let p = l.previous, next = l.next
            links[Int(p)].next = next
            if next >= 0 { links[Int(next)].previous = p } else { tails[list] = p }
            let head = heads[list]
            links[s] = LRULinks(previous: -1, next: head, listIndex: list, order: order)
            order &+= 1
            links[Int(head)].previous = Int32(truncatingIfNeeded: s)
            heads[list] = Int32(truncatingIfNeeded: s)
            return
        }
        nextOrder = order
        applyListChange(entry)
        order = nextOrder
    }

    /// Applies one `pendingTouches` entry.
    @inline(__always)
    private func applyListChange(_ entry: Int32) {
        let e = UInt32(bitPattern: entry)
        if e < FlowTable.linkTCP { relink(entry); return }   // a touch, the usual entry
        let s = Int32(bitPattern: e & FlowTable.slotBits)
        if e < FlowTable.linkOther { link(s, to: Int(LRUList.activeTCP.rawValue)) }
        else if e < FlowTable.moveToClosed { link(s, to: Int(LRUList.activeOther.rawValue)) }
        else if lruLinks[Int(s)].listIndex != Int(LRUList.closed.rawValue) { unlink(s); link(s, to: Int(LRUList.closed.rawValue)) }
    }

    /// Moves flow `s` to the front of its list.
    @inline(__always)
    private func relink(_ s: Int32) {
        let l = lruLinks[Int(s)].listIndex
        if heads[l] == s {
            // Already first in its list, but maybe not the most recently seen of all (see `lessRecentlySeen`).
            lruLinks[Int(s)].listAndOrder = UInt64(l) << 56 | nextOrder
            nextOrder &+= 1
            return
        }
        unlink(s); link(s, to: l)
    }

    /// Moves a flow to the closed list (it lingers there for stragglers).
    public func markClosed(_ s: Int32) {
        noteListChange(s, FlowTable.moveToClosed)
    }

    /// Starts loading the line of slot `s` that holds the streams (the third, see `FlowStateLayoutTests`).
    @inlinable @inline(__always)
    public func prefetchStreamLines(of s: Int32) {
        zw_prefetch(UnsafeRawPointer(slots + Int(s)) + 128)
    }

    /// Starts loading the per-flow line of slot `s` (past the per-packet ones: the third, with the streams, see
    /// `FlowStateLayoutTests`): a dissected flow's records read the first packet's time and number from it.
    @inlinable @inline(__always)
    public func prefetchFlowLines(of s: Int32) {
        zw_prefetch(UnsafeRawPointer(slots + Int(s)) + 128)
    }

    /// The flow listed just before `s` in its LRU list (the next more recently seen; -1 none): the one a sweep ends
    /// after `s`, oldest first. Read right after `oldest` (which applies pending list changes), before `s` is removed.
    @inline(__always)
    public func newerNeighbour(of s: Int32) -> Int32 { lruLinks[Int(s)].previous }

    /// Starts loading all of slot `s`'s lines and its LRU links: what ending the flow reads (a
    /// sweep ends flows a few apart in memory, each a chain of misses otherwise). A hint only.
    @inline(__always)
    public func prefetchWholeFlow(_ s: Int32) {
        let state = UnsafeRawPointer(slots + Int(s))
        var line = 0
        while line < MemoryLayout<FlowState>.stride { zw_prefetch(state + line); line += 64 }
        zw_prefetch(lruLinks + Int(s))
    }

    /// Starts loading the index entry where flow `s`'s probe starts: what `remove` reads first (the flow's slot
    /// should be in cache: its `hashLow` is read here). A hint only.
    @inline(__always)
    public func prefetchIndexEntry(of s: Int32) {
        zw_prefetch(index + home(UInt64(slots[Int(s)].hashLow)))
    }

    /// The least recently seen flow of `list`.
    public func oldest(_ list: LRUList) -> Int32? {
        applyPendingTouches()
        let t = tails[Int(list.rawValue)]
        return t >= 0 ? t : nil
    }

    /// The least recently seen closed flow, or (`closed` false) the least recently seen of all active ones.
    public func oldest(closed: Bool) -> Int32? {
        if closed { return oldest(.closed) }
        return lessRecentlySeen(oldest(.activeTCP), oldest(.activeOther))
    }

    /// Of two flows (either may be absent), the one that moved to the front of its list less recently.
    public func lessRecentlySeen(_ a: Int32?, _ b: Int32?) -> Int32? {
        guard let a else { return b }
        guard let b else { return a }
        return lruLinks[Int(a)].order < lruLinks[Int(b)].order ? a : b
    }

    /// The flow to evict when full: a closed one if any, else the least recently seen.
    public var evictionCandidate: Int32? { oldest(closed: true) ?? oldest(closed: false) }

    // Inlined into `touch` (a relink for nearly every packet of a plant whose flows send less than one packet a
    // second): as calls they doubled its cost.
    @inline(__always)
    private func link(_ s: Int32, to i: Int) {
        let head = heads[i]
        lruLinks[Int(s)] = LRULinks(previous: -1, next: head, listIndex: i, order: nextOrder)
        nextOrder &+= 1
        if head >= 0 { lruLinks[Int(head)].previous = s }
        heads[i] = s
        if tails[i] < 0 { tails[i] = s }
    }

    @inline(__always)
    private func unlink(_ s: Int32) {
        let links = lruLinks[Int(s)]
        let p = links.previous, n = links.next, i = links.listIndex
        if p >= 0 { lruLinks[Int(p)].next = n } else { heads[i] = n }
        if n >= 0 { lruLinks[Int(n)].previous = p } else { tails[i] = p }
        lruLinks[Int(s)].previous = -1; lruLinks[Int(s)].next = -1
    }
}

/// The flow table's recency lists. Active flows are listed by transport because their idle timeouts differ: in one
/// list, a TCP flow within its 600 s kept every UDP flow seen after it alive past its 120 s.
public enum LRUList: UInt8, Sendable {
    case activeTCP = 0, closed = 1, activeOther = 2
}

/// A flow's LRU list and its neighbours there (slot numbers, -1 none): 16 bytes.
public struct LRULinks {
    /// The next more recently seen flow.
    @usableFromInline var previous: Int32
    /// The next less recently seen flow.
    @usableFromInline var next: Int32
    /// The list's raw value (top byte) and when the flow last moved to the front (the rest, increasing over the
    /// table's life: orders flows across lists).
    @usableFromInline var listAndOrder: UInt64
    @usableFromInline init(previous: Int32, next: Int32, listIndex: Int, order: UInt64) {
        self.previous = previous; self.next = next; listAndOrder = UInt64(listIndex) << 56 | order & (1 << 56 - 1)
    }
    /// The list's raw value.
    @usableFromInline var listIndex: Int { Int(truncatingIfNeeded: listAndOrder >> 56) }
    /// Order of the last move to the front.
    @usableFromInline var order: UInt64 { listAndOrder & (1 << 56 - 1) }
}
