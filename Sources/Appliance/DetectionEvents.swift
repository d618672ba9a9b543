import Synchronization
import CPrefetch
import CAppliance
import Wire
import Records
import Flows
import Engine
import Detection

/// One `EngineObserver` call, recorded by a worker for the detection thread. Every payload is a plain value
/// (no references), so copying an event into the queue is a memory copy.
public enum DetectionEvent: Sendable {
    case flowStarted(FlowContext, frame: UInt64, time: PacketTime)
    case flowIdentified(FlowContext, AppProtocol?, frame: UInt64, time: PacketTime)
    case operation(Operation, FlowContext)
    case anomaly(Anomaly, FlowContext?)
    case flowEnded(FlowContext, FlowEndReason)
    case tick(PacketTime)
    case finish

    /// Calls the matching method of `observer` (the detection thread's single `AlertPipeline`).
    @inline(__always)
    public func replay(into observer: any EngineObserver) {
        switch self {
        case .flowStarted(let f, let frame, let time): observer.flowStarted(f, frame: frame, time: time)
        case .flowIdentified(let f, let p, let frame, let time): observer.flowIdentified(f, appProtocol: p, frame: frame, time: time)
        case .operation(let op, let f): observer.operation(op, flow: f)
        case .anomaly(let a, let f): observer.anomaly(a, flow: f)
        case .flowEnded(let f, let r): observer.flowEnded(f, reason: r)
        case .tick(let t): observer.tick(time: t)
        case .finish: break   // forwarded once, after every worker finished
        }
    }
}

/// A detection event and the merge key of the ring message that caused it.
public struct KeyedEvent: Sendable {
    /// The reader's dispatch sequence number of the message being processed.
    public var key: UInt64
    /// The event.
    public var event: DetectionEvent
}

/// An observer that can take an operation the detector would pass over quietly as its packet time alone
/// (`zonewatch`'s `AlertPipeline`): the workers then send each operation's `QuietTraits` beside it, and the
/// detection thread reads the operation itself only when `passesQuietly` says no.
public protocol QuietOperationObserver: EngineObserver {
    /// When `Detector.passesQuietly` says `operation` would only sweep the aggregation windows to `traits.time`,
    /// does what `operation` does for it (the sweep, and publishing the summaries that closes) and returns true;
    /// otherwise does nothing and returns false.
    func takeQuietly(_ traits: QuietTraits) -> Bool

    /// `takeQuietly` for each of the `count` traits at `first` (`stride` bytes apart) in turn, stopping at the first it
    /// says no to, or right after one whose sweep raised alerts (they are published before the next is taken);
    /// returns how many it took. The merge hands over a run of one worker's queued operations at once.
    func takeQuietly(run first: UnsafeRawPointer, stride: Int, count: Int) -> Int

    /// `takeQuietly(run:)` over two runs of queued events merged (`Detector.takeQuietly(merging:)`: records of a merge
    /// key and the traits, `stride` bytes apart, taken in key order, `a`'s first at equal keys, until one is used up);
    /// returns how many of each it took.
    func takeQuietly(merging a: UnsafeRawPointer, count aCount: Int, with b: UnsafeRawPointer, count bCount: Int, stride: Int) -> (Int, Int)
}

extension QuietOperationObserver {
    /// One `takeQuietly` per operation.
    public func takeQuietly(run first: UnsafeRawPointer, stride: Int, count: Int) -> Int {
        var i = 0
        while i < count && takeQuietly((first + i &* stride).load(as: QuietTraits.self)) { i &+= 1 }
        return i
    }

    /// None: the merge goes on one run at a time.
    public func takeQuietly(merging a: UnsafeRawPointer, count aCount: Int, with b: UnsafeRawPointer, count bCount: Int,
                            stride: Int) -> (Int, Int) { (0, 0) }
}

/// What the detection thread reads of every queued event: its merge key, whether its slot holds an operation
/// (`OperationSlot`) or a `DetectionEvent`, and, for an operation, its quiet traits (`traits.flowSerial` 0: none;
/// `traits.flowSlot` is the flow's slot for any event that reads the detector's entry, a prefetch hint). 48 bytes,
/// so the operations the detector passes over cost the detection thread one cache line for 1.3 events instead
/// of the event's four.
struct EventHeader {
    var key: UInt64
    var traits: QuietTraits
    var isOperation: Bool
    /// An operation's slot holds its flow context too; without, the detection thread has the context from the
    /// flow's `flowIdentified` event (`DetectionStage`'s table, by `traits.flowSlot`).
    var contextInSlot: Bool
    /// A `flowIdentified` event naming a protocol: the detection thread keeps its context for the flow's operations.
    var keepsContext: Bool = false

    /// Where `traits` lies in a header: after the key (checked by `EventQueue.init`; a stored static was read
    /// through a lazy global's check per run).
    static var traitsOffset: Int { 8 }
}

/// How an operation lies in an event queue's slot: the operation, then (when the header says so) its flow's
/// context, each copied straight from where the worker has it (building a `DetectionEvent.operation` first copied
/// both twice more).
enum OperationSlot {
    /// Where the flow context lies in the slot.
    @inline(__always) static var flowOffset: Int {
        (MemoryLayout<Operation>.size + MemoryLayout<FlowContext>.alignment - 1) / MemoryLayout<FlowContext>.alignment
            * MemoryLayout<FlowContext>.alignment
    }
    @inline(__always) static var size: Int { flowOffset + MemoryLayout<FlowContext>.size }
}

/// Single-producer/single-consumer queue of detection events with their merge keys, in preallocated arrays
/// (a worker → whichever thread runs the merge: the detection thread, or the workers themselves while they read a
/// file). The producer waits when it is full; nothing is ever dropped. Keys and quiet
/// traits (`EventHeader`) lie apart from the events: the event of an operation that passes quietly is written but
/// never read, so its cache lines stay with the producer's core. A slot holds a `DetectionEvent` or, for an
/// operation sent with its context, an `OperationSlot`; an operation sent without lies in its own, smaller slot
/// (`operations`) (raw memory: events hold no references, so slots are reused without
/// deinitialization).
public final class EventQueue: @unchecked Sendable {
    /// Events the queue holds, and the index mask: both may only shrink (`narrow`), while the queue is empty.
    @exclusivity(unchecked) private var capacity: Int
    @exclusivity(unchecked) private var mask: Int
    private let headers: UnsafeMutablePointer<EventHeader>
    private let slots: UnsafeMutableRawPointer
    /// The slots of operations sent without their context (nearly all), apart: 96 bytes each instead of a slot's
    /// 208, so that the lines a worker writes per operation, and the ring's share of its cache, are half as many.
    private let operations: UnsafeMutableRawPointer
    // What each side writes lies at least a cache line away from everything the other side reads or writes (objects
    // are only 16-byte aligned: 64 bytes of padding between two fields keep them off one line). With the producer's
    // and the consumer's private indices side by side, every push took the line the merge was reading from it.
    private let pad0: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
    private let head = Atomic<Int>(0)
    private let pad1: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
    private let tail = Atomic<Int>(0)
    private let pad2: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
    private var producerHead = 0
    private var producerTailCopy = 0
    private let pad3: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
    private var consumerTail = 0
    private var consumerHeadCopy = 0
    /// Events up to which `skip` has looked for events to be read in full, to fetch their slots ahead.
    @exclusivity(unchecked) private var consumerScanned = 0
    private let pad4: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
    /// The producer (a worker) sleeps here while the queue is full.
    public let producerWaiter = Waiter()

    /// Bytes per slot: room for either form, in whole 16-byte units.
    @inline(__always) static var slotStride: Int {
        (max(MemoryLayout<DetectionEvent>.size, OperationSlot.size) + 15) & ~15
    }
    /// Bytes per slot of `operations`.
    @inline(__always) static var operationStride: Int { (MemoryLayout<Operation>.size + 15) & ~15 }

    /// Creates a queue of `capacity` events (rounded up to a power of two).
    public init(capacity: Int) {
        precondition(_isPOD(DetectionEvent.self) && _isPOD(Operation.self) && _isPOD(FlowContext.self),
                     "queued events are copied as plain memory")
        precondition(MemoryLayout<EventHeader>.offset(of: \EventHeader.traits) == EventHeader.traitsOffset)
        var c = 64
        while c < capacity { c <<= 1 }
        self.capacity = c
        mask = c - 1
        // Left uninitialized: an entry is written before it is published, and only published entries are read.
        // Plain values, so writing one over another needs no deinitialization; and the pages are first touched by
        // the worker that writes them, not all at once (about 8 MiB a queue) before the workers start.
        headers = .allocate(capacity: c)
        slots = .allocate(byteCount: c * Self.slotStride, alignment: 64)
        operations = .allocate(byteCount: c * Self.operationStride, alignment: 64)
    }

    deinit {
        headers.deallocate()
        slots.deallocate()
        operations.deallocate()
    }

    /// Holds at most `capacity` events (a power of two, no more than now) from here on, using only the first slots,
    /// so that the slots the producer writes and the consumer reads stay in cache (producer side). `consumerSide`
    /// runs `body` excluding the consumer (the merge lock, under which every consumer reads the queue), or returns
    /// false when it cannot now; the change is made there, once the consumer has taken every queued event, and
    /// `whileWaiting` runs meanwhile.
    func narrow(to capacity: Int, consumerSide: (() -> Void) -> Bool, whileWaiting: () -> Void) {
        guard capacity >= 64, capacity < self.capacity, capacity & (capacity - 1) == 0 else { return }
        while true {
            var done = false
            if tail.load(ordering: .acquiring) == producerHead {
                // Nothing queued, and nothing pushed until we return (we are the producer).
                _ = consumerSide {
                    self.capacity = capacity
                    mask = capacity - 1
                    done = true
                }
            }
            if done { return }
            whileWaiting()
            spinPause()
        }
    }

    @inline(__always) private func slot(_ i: Int) -> UnsafeMutableRawPointer { slots + i &* Self.slotStride }
    @inline(__always) private func operationSlot(_ i: Int) -> UnsafeMutableRawPointer { operations + i &* Self.operationStride }

    /// Appends an event, waiting for room (waking `consumer` so it drains) when the queue is full; `beforeWait`
    /// runs before each wait (the producer publishes its progress so the merge can go on, and may run the merge).
    @inline(__always)
    public func push(_ e: KeyedEvent, consumer: Waiter, beforeWait: () -> Void = {}) {
        push(key: e.key, e.event, traits: .none, consumer: consumer, beforeWait: beforeWait)
    }

    /// `push` with the event's quiet traits (an operation; `.none` for any other event).
    @inline(__always)
    public func push(key: UInt64, _ event: DetectionEvent, traits: QuietTraits, consumer: Waiter, beforeWait: () -> Void = {}) {
        push(key: key, event, traits: traits, keepsContext: false, consumer: consumer, beforeWait: beforeWait)
    }

    /// `push`, saying whether the event is a `flowIdentified` whose context the detection thread keeps.
    @inline(__always)
    func push(key: UInt64, _ event: DetectionEvent, traits: QuietTraits, keepsContext: Bool, consumer: Waiter, beforeWait: () -> Void) {
        let i = reserve(consumer: consumer, beforeWait: beforeWait)
        (headers + i).initialize(to: EventHeader(key: key, traits: traits, isOperation: false, contextInSlot: false, keepsContext: keepsContext))
        slot(i).assumingMemoryBound(to: DetectionEvent.self).initialize(to: event)
        commit(consumer: consumer)
    }

    /// `push` of the operation at `op` on `flow`, copied into its slot as an `OperationSlot`; nil: the flow's context
    /// is not sent (the detection thread has it by `traits.flowSlot`), the operation goes to its `operations` slot.
    @inline(__always)
    func pushOperation(key: UInt64, _ op: UnsafePointer<Operation>, flow: UnsafePointer<FlowContext>?, traits: QuietTraits,
                       consumer: Waiter, beforeWait: () -> Void) {
        let i = reserve(consumer: consumer, beforeWait: beforeWait)
        (headers + i).initialize(to: EventHeader(key: key, traits: traits, isOperation: true, contextInSlot: flow != nil))
        if let f = flow {
            let s = slot(i)
            s.copyMemory(from: op, byteCount: MemoryLayout<Operation>.size)
            (s + OperationSlot.flowOffset).copyMemory(from: f, byteCount: MemoryLayout<FlowContext>.size)
        } else {
            operationSlot(i).copyMemory(from: op, byteCount: MemoryLayout<Operation>.size)
        }
        commit(consumer: consumer)
    }

    /// `pushOperation` of the operation at `op` without its context, with its quiet traits for (unique) `flowSerial` and
    /// `flowSlot`: the traits are made once the slot is reserved, straight into its header (made before, as an
    /// argument, they were kept on the stack across the reservation's possible wait).
    @inline(__always)
    func pushQuietOperation(key: UInt64, _ op: UnsafePointer<Operation>, traits: UnsafePointer<QuietTraits>, consumer: Waiter,
                            beforeWait: () -> Void) {
        let i = reserve(consumer: consumer, beforeWait: beforeWait)
        (headers + i).initialize(to: EventHeader(key: key, traits: traits.pointee, isOperation: true, contextInSlot: false))
        operationSlot(i).copyMemory(from: op, byteCount: MemoryLayout<Operation>.size)
        commit(consumer: consumer)
    }

    /// Waits for room (waking the consumer so it drains), then returns the next slot's index (producer side).
    @inline(__always)
    private func reserve(consumer: Waiter, beforeWait: () -> Void) -> Int {
        if producerHead &- producerTailCopy >= capacity {
            Self.waitForRoom(Unmanaged.passUnretained(self), consumer: Unmanaged.passUnretained(consumer), beforeWait: beforeWait)
        }
        return producerHead & mask
    }

    /// `reserve`'s wait, out of line: inlined, it kept the per-event path's values from registers (spilled around it).
    /// The queue and `consumer` unretained (the caller holds both): passed as references to a call, they were retained
    /// and released for every event.
    @inline(never)
    private static func waitForRoom(_ queue: Unmanaged<EventQueue>, consumer: Unmanaged<Waiter>, beforeWait: () -> Void) {
        queue._withUnsafeGuaranteedRef { q in
            consumer._withUnsafeGuaranteedRef { c in q.waitForRoom(consumer: c, beforeWait: beforeWait) }
        }
    }

    /// `waitForRoom`'s body.
    private func waitForRoom(consumer: Waiter, beforeWait: () -> Void) {
        producerTailCopy = tail.load(ordering: .acquiring)
        while producerHead &- producerTailCopy >= capacity {
            // Each time round: while the workers run the merge themselves, the producer may make the room.
            beforeWait()
            producerTailCopy = tail.load(ordering: .acquiring)
            if producerHead &- producerTailCopy < capacity { break }
            consumer.wake()
            producerWaiter.await { [self] in
                producerTailCopy = tail.load(ordering: .acquiring)
                return producerHead &- producerTailCopy < capacity
            }
        }
    }

    /// Publishes the slot `reserve` returned, once written (producer side).
    @inline(__always)
    private func commit(consumer: Waiter) {
        // The header a few places on was last read by the consumer's core: start taking its line back now; and the
        // lines of the operation slot there (an operation sent without its context is most events; its slot starts
        // at 0 or 32 in a line, so its 92 bytes lie in two).
        let h = producerHead
        let ahead = (h &+ Self.prefetchDistance) & mask
        let s = operationSlot(ahead)
        zw_prefetch(s)
        zw_prefetch(s + 64)
        zw_prefetch(UnsafeRawPointer(headers + ahead))
        producerHead = h &+ 1
        head.store(h &+ 1, ordering: .releasing)
        // Half full (by the possibly stale count): make sure the consumer is awake before the producer has to wait.
        if h &+ 1 &- producerTailCopy == capacity &>> 1 { consumer.wakeIfSleeping() }
    }

    /// Whether an event is queued (consumer side).
    @inline(__always)
    private func hasHead() -> Bool {
        if consumerTail == consumerHeadCopy {
            consumerHeadCopy = head.load(ordering: .acquiring)
            if consumerTail == consumerHeadCopy { return false }
        }
        return true
    }

    /// The merge key of the oldest event, or nil when empty (consumer side; reads only the key).
    @inline(__always)
    public func headKey() -> UInt64? {
        guard hasHead() else { return nil }
        return (headers + (consumerTail & mask)).pointee.key
    }

    /// Where the oldest event's quiet traits lie, and how many events from it on are queued in one stretch of the
    /// header array (up to its end) with keys below `limit`: they lie `EventHeader`'s stride apart. Only after
    /// `headKey()` returned a key below `limit` (consumer side; a worker's keys never decrease, so the stretch ends
    /// where a binary search finds the first key at `limit` or above).
    @inline(__always)
    func headRun(below limit: UInt64) -> (UnsafeRawPointer, Int) {
        let start = consumerTail & mask
        var n = min(consumerHeadCopy &- consumerTail, capacity &- start)
        let h = headers + start
        if h[n &- 1].key >= limit {
            // Runs are mostly short (the workers' keys interleave): gallop from the head, then halve.
            var below = 0, atOrAbove = n &- 1, step = 1
            while step < atOrAbove {
                if h[step].key >= limit { atOrAbove = step; break }
                below = step
                step &<<= 1
            }
            while atOrAbove &- below > 1 {
                let mid = (below &+ atOrAbove) >> 1
                if h[mid].key < limit { below = mid } else { atOrAbove = mid }
            }
            n = atOrAbove
        }
        return (UnsafeRawPointer(h) + EventHeader.traitsOffset, n)
    }

    /// Where the oldest event's header lies, and how many are queued in one stretch of the header array from it
    /// (consumer side; after `headKey()` returned non-nil).
    @inline(__always)
    func headRecords() -> (UnsafeRawPointer, Int) {
        let start = consumerTail & mask
        return (UnsafeRawPointer(headers + start), min(consumerHeadCopy &- consumerTail, capacity &- start))
    }

    /// Removes the `n` oldest events, all read through `headRun` (consumer side); publishes the room as `pop` does.
    /// Then starts loading the slots of the events among the next `prefetchDistance` that will be read in full (no
    /// quiet traits: flow starts and ends, anomalies), as `pop` does one at a time: runs taken in one call bypass it,
    /// and an event's slot read at the head of the queue was otherwise a miss (written on the other core).
    @inline(__always)
    func skip(_ n: Int) {
        let old = consumerTail
        consumerTail &+= n
        var i = max(consumerScanned, consumerTail)
        let end = min(consumerTail &+ Self.prefetchDistance, consumerHeadCopy)
        while i < end {
            if (headers + (i & mask)).pointee.traits.flowSerial == 0 { Self.prefetch(slot(i & mask)) }
            i &+= 1
        }
        consumerScanned = i
        if old >> 6 != consumerTail >> 6 || consumerTail == consumerHeadCopy {
            tail.store(consumerTail, ordering: .sequentiallyConsistent)
            producerWaiter.wakeIfSleeping()
        }
    }

    /// The oldest event's quiet traits; only after `headKey()` returned non-nil (consumer side).
    @inline(__always)
    public var headTraits: QuietTraits { (headers + (consumerTail & mask)).pointee.traits }

    /// The engine flow slot of the event `distance` places after the oldest, when it is queued already, from its
    /// header (consumer side; -1: none or not queued): a prefetch hint, since the event will read the detector's
    /// entry for that slot.
    @inline(__always)
    public func flowSlot(ahead distance: Int) -> Int32 {
        guard consumerTail &+ distance < consumerHeadCopy else { return -1 }
        return (headers + ((consumerTail &+ distance) & mask)).pointee.traits.flowSlot
    }

    /// The oldest event, when it is an operation, where it lies (valid until `pop()`), with its flow context when
    /// that was sent in the slot; only after `headKey()` returned non-nil (consumer side).
    @inline(__always)
    var headOperation: (UnsafePointer<Operation>, UnsafePointer<FlowContext>?)? {
        let h = headers + (consumerTail & mask)
        guard h.pointee.isOperation else { return nil }
        guard h.pointee.contextInSlot else {
            return (UnsafeRawPointer(operationSlot(consumerTail & mask)).assumingMemoryBound(to: Operation.self), nil)
        }
        let s = UnsafeRawPointer(slot(consumerTail & mask))
        return (s.assumingMemoryBound(to: Operation.self), (s + OperationSlot.flowOffset).assumingMemoryBound(to: FlowContext.self))
    }

    /// Whether the oldest event is a `flowIdentified` whose context the detection thread keeps; only after
    /// `headKey()` returned non-nil (consumer side).
    @inline(__always)
    var headKeepsContext: Bool { (headers + (consumerTail & mask)).pointee.keepsContext }

    /// The oldest event where it lies, when it is not an operation (`headOperation` nil), valid until `pop()`;
    /// only after `headKey()` returned non-nil (consumer side).
    @inline(__always)
    var headSlot: UnsafeMutablePointer<DetectionEvent> { slot(consumerTail & mask).assumingMemoryBound(to: DetectionEvent.self) }

    /// Slots prefetched ahead, by both sides: an event spans several cache lines, written on one core and read on
    /// another, and each line otherwise arrives only when the event is touched.
    static let prefetchDistance = 8

    @inline(__always)
    static func prefetch(_ slot: UnsafeMutableRawPointer) {
        var offset = 0
        while offset < slotStride { zw_prefetch(slot + offset); offset &+= 64 }
    }

    /// Removes the oldest event (consumer side); publishes the room every 64 events and when empty.
    @inline(__always)
    public func pop() {
        if consumerTail &+ Self.prefetchDistance < consumerHeadCopy {
            // An event sent with quiet traits is mostly never read: only the others' slots are fetched ahead, as
            // their headers say (fetched further ahead still).
            let i = (consumerTail &+ Self.prefetchDistance) & mask
            if consumerTail &+ 2 &* Self.prefetchDistance < consumerHeadCopy {
                zw_prefetch(UnsafeRawPointer(headers + ((consumerTail &+ 2 &* Self.prefetchDistance) & mask)))
            }
            if (headers + i).pointee.traits.flowSerial == 0 { Self.prefetch(slot(i)) }
        }
        consumerTail += 1
        if consumerTail & 63 == 0 || consumerTail == consumerHeadCopy {
            tail.store(consumerTail, ordering: .sequentiallyConsistent)
            producerWaiter.wakeIfSleeping()
        }
    }
}

/// A worker's `EngineObserver`: records every call with the current message's merge key. Engine flow slots
/// and serials are per engine; they are made unique across workers (slot·N + worker, serial·N + worker)
/// because the single detector caches per-flow state by them.
public final class EventRecorder: EngineObserver, @unchecked Sendable {
    let queue: EventQueue
    let consumer: Waiter
    let worker: Int32
    let workers: Int32
    /// The merge key of the message being processed (set by the worker before each message). Only the worker's
    /// thread touches it: unchecked, since a dynamic exclusivity check per packet and per event cost about 5% of a
    /// worker's instructions.
    @exclusivity(unchecked) public var key: UInt64 = 0
    /// Merge key up to which every event of this worker has been pushed (read by the detection thread: the
    /// worker's lower bound while it has work in hand). Stored by the worker after each message and, since the
    /// worker processes keys in order, as `key - 1` before it waits for room in its event queue.
    let completed = Atomic<UInt64>(0)

    /// Whether operations go with their `QuietTraits` (the detection observer is a `QuietOperationObserver`).
    let sendsTraits: Bool
    /// The detection stage, whose merge this worker runs itself while waiting for room when the workers merge
    /// (`DetectionStage.workersMerge`); set once by the pipeline before its threads start.
    unowned(unsafe) var stage: DetectionStage?

    /// Before a wait for room in the event queue (each time round): everything before the current message is
    /// pushed (the merge may need that bound to go on), and while the workers merge, a merge step here, which
    /// may free the room (nothing else would while the other workers are busy).
    @inline(never) func waitingForRoom() {
        completed.store(key &- 1, ordering: .releasing)
        if let s = stage, s.workersMerge.load(ordering: .relaxed) {
            // Full while the workers merge: the worker on merge duty is behind; this one takes the duty.
            s.merger.store(Int(worker), ordering: .relaxed)
            _ = s.tryMerge()
        }
    }

    /// This engine's flows' verdicts and units (`leavesUnsent`; empty unless `sendsTraits`), and its entries and their
    /// number as plain values (reached through the table, each operation retained and released it).
    let verdicts: QuietVerdictTable
    private let verdictEntries: UnsafeMutablePointer<QuietVerdictTable.Entry>
    private let verdictSlots: Int
    private let verdictMode: UnsafeMutablePointer<UInt64>
    /// The rule the detection stage has set (`QuietDecisionMode`).
    @inline(__always) var quietMode: UInt8 { UInt8(truncatingIfNeeded: zw_load_acquire_u64(verdictMode)) }
    /// The latest whole second of packet time an event sent reached that sweeps the detector's aggregation windows
    /// (a flow started or identified, a tick, an operation): an operation of no later second may stay unsent.
    @exclusivity(unchecked) var sent = SentSecond()
    /// Operations left unsent (`leavesUnsent`; read once the worker's thread is done).
    @exclusivity(unchecked) var unsentOperations: UInt64 = 0

    /// The detection observer's answer (`EngineObserver.wantsFlowEndsAtEndOfInput`): this engine's end-of-input flow
    /// ends cross to it only if it wants them.
    public let wantsFlowEndsAtEndOfInput: Bool

    init(queue: EventQueue, consumer: Waiter, worker: Int, workers: Int, sendsTraits: Bool, flowSlots: Int,
         wantsFlowEndsAtEndOfInput: Bool) {
        self.queue = queue; self.consumer = consumer; self.worker = Int32(worker); self.workers = Int32(workers)
        self.sendsTraits = sendsTraits; self.wantsFlowEndsAtEndOfInput = wantsFlowEndsAtEndOfInput
        verdicts = QuietVerdictTable(capacity: sendsTraits ? flowSlots : 0)
        verdictEntries = verdicts.entries; verdictSlots = verdicts.capacity; verdictMode = verdicts.modeWord
    }

    @inline(__always) func unique(_ f: FlowContext) -> FlowContext {
        var c = f
        if c.flowSlot >= 0 { c.flowSlot = c.flowSlot &* workers &+ worker }
        if c.flowSerial != 0 { c.flowSerial = c.flowSerial &* UInt64(workers) &+ UInt64(worker) }
        return c
    }

    @inline(__always) func push(_ e: DetectionEvent, traits: QuietTraits = .none) {
        queue.push(key: key, e, traits: traits, consumer: consumer) { waitingForRoom() }
    }

    /// No quiet traits, but the flow slot the event's detector entry is at (`EventQueue.flowSlot(ahead:)`).
    @inline(__always) static func slotOnly(_ f: FlowContext) -> QuietTraits {
        var t = QuietTraits.none
        t.flowSlot = f.flowSlot
        return t
    }

    public func flowStarted(_ flow: FlowContext, frame: UInt64, time: PacketTime) {
        if UInt(bitPattern: Int(flow.flowSlot)) < UInt(bitPattern: verdictSlots) { verdictEntries[Int(flow.flowSlot)].units = QuietUnits() }
        push(.flowStarted(unique(flow), frame: frame, time: time))
        noteSent(time)
    }
    public func flowIdentified(_ flow: FlowContext, appProtocol: AppProtocol?, frame: UInt64, time: PacketTime) {
        let f = unique(flow)
        queue.push(key: key, .flowIdentified(f, appProtocol, frame: frame, time: time), traits: Self.slotOnly(f),
                   keepsContext: appProtocol != nil && f.flowSlot >= 0, consumer: consumer) { waitingForRoom() }
        noteSent(time)
    }
    public func operation(_ op: Operation, flow: FlowContext) {
        var o = op, f = unique(flow)
        pushOperation(at: &o, uniqueFlow: &f)
    }

    /// Queues the operation at `op` with its traits at `t` (the flow's unique serial and slot in them), without its
    /// context (the detection thread has it from the flow's `flowIdentified`); only when `sendsTraits`.
    @inline(__always) func pushOperation(at op: UnsafePointer<Operation>, traits t: UnsafePointer<QuietTraits>) {
        queue.pushQuietOperation(key: key, op, traits: t, consumer: consumer) { waitingForRoom() }
    }

    /// Whether the operation at `op` (traits at `t`) of this engine's flow in `slot` with `serial` may stay unsent:
    /// the merge would pass it over quietly (`QuietVerdict.passes` on the verdict published for the flow, or, without
    /// a policy, `Detector.passesQuietlyWithoutPolicy`), and its second of packet time is no later than an event
    /// already sent that sweeps the aggregation windows, so the merge's sweeps stay what they would be
    /// (`Aggregator.nextSweep`). Follows the flow's units either way. Only when `sendsTraits`.
    @inline(__always) func leavesUnsent(_ op: UnsafePointer<Operation>, traits t: UnsafePointer<QuietTraits>, slot: Int32, serial: UInt64,
                                        mode: UInt8) -> Bool {
        var quiet = false
        guard UInt(bitPattern: Int(slot)) < UInt(bitPattern: verdictSlots) else { return false }
        let e = verdictEntries + Int(slot)
        if sent.covers(op.pointee.time) {
            if mode == QuietDecisionMode.byVerdicts {
                let v = QuietVerdictTable.verdict(e)
                quiet = v.isFor(serial: serial) && v.passes(t, units: e.pointee.units)
            } else if mode == QuietDecisionMode.withoutPolicy {
                quiet = Detector.passesQuietlyWithoutPolicy(op)
            }
        }
        // Followed whatever the rule: a reload may bring in a policy, and verdicts, while the flow goes on.
        e.pointee.units.note(t)
        if quiet { unsentOperations &+= 1 } else { sent.sent(op.pointee.time) }
        return quiet
    }

    /// Queues the operation at `op` on the (made unique) flow context at `f`, copied from where they lie.
    @inline(__always) func pushOperation(at op: UnsafePointer<Operation>, uniqueFlow f: UnsafePointer<FlowContext>) {
        queue.pushOperation(key: key, op, flow: f, traits: sendsTraits ? QuietTraits(op.pointee, flow: f.pointee) : Self.slotOnly(f.pointee),
                            consumer: consumer) { waitingForRoom() }
    }

    public func operationForwarder() -> OperationForwarder? { EventRecorderForwarder(self) }
    public func flowStateTable() -> FlowStateTable { sendsTraits ? verdicts.hint : .none }
    public func anomaly(_ a: Anomaly, flow: FlowContext?) { push(.anomaly(a, flow.map(unique))) }
    public func flowEnded(_ flow: FlowContext, reason: FlowEndReason) {
        let f = unique(flow)
        push(.flowEnded(f, reason), traits: Self.slotOnly(f))
    }
    public func tick(time: PacketTime) {
        push(.tick(time))
        noteSent(time)
    }
    public func finish() { push(.finish) }

    /// An event that sweeps the aggregation windows to `time` was sent (`leavesUnsent`).
    @inline(__always) func noteSent(_ time: PacketTime) { sent.sent(time) }
    /// The seconds sent so far are another timeline's: an operation is left unsent again only once an event of the
    /// new one has gone (the merge's sweeps follow the new time, see `Aggregator.stepFloor`).
    public func clockStepped(to time: PacketTime) { sent = SentSecond() }
}

/// Drains a sink's operations into an `EventRecorder` directly (the engine's generic forwarder calls `operation`
/// through the observer protocol for each), making the flow context unique once per drain rather than per
/// operation. Holds the recorder unretained: the engine keeps both, the recorder as its observer.
///
/// When operations go with their quiet traits, an engine flow's context is not read nor sent at all: contexts never
/// change during a flow, and operations come only after the flow's `flowIdentified`, which carries it to the
/// detection thread, which keeps it by flow slot for the few operations it replays in full. Reading the context
/// here was a cache miss per delivery (the engine keeps it apart from the flow's state), and sending it two more
/// cache lines per operation, written on one core and mostly never read.
private final class EventRecorderForwarder: OperationForwarder {
    private let recorder: Unmanaged<EventRecorder>
    init(_ recorder: EventRecorder) { self.recorder = Unmanaged.passUnretained(recorder) }

    override func forward(from sink: EventSink, flow: UnsafePointer<FlowContext>, flowSerial: UInt64, flowSlot: Int32) {
        recorder._withUnsafeGuaranteedRef { r in
            guard r.sendsTraits && flowSlot >= 0 else { forwardUnique(from: sink, flow: flow); return }
            let slot = flowSlot &* r.workers &+ r.worker
            let serial = flowSerial != 0 ? flowSerial &* UInt64(r.workers) &+ UInt64(r.worker) : 0
            let mode = r.quietMode
            sink.drainOperationsInPlace { ops, count in
                var unsent = false
                for j in 0..<count {
                    let op = ops + j
                    // Like its predecessor in all the check reads (the items of one S7 request): left unsent as it was.
                    if unsent && Detector.sameQuietInputs(op, op - 1) { r.unsentOperations &+= 1; continue }
                    var t = QuietTraits(at: op, flowSerial: serial, flowSlot: slot)
                    unsent = r.leavesUnsent(op, traits: &t, slot: flowSlot, serial: flowSerial, mode: mode)
                    if !unsent { r.pushOperation(at: op, traits: &t) }
                }
            }
        }
    }

    override var readsFlowContext: Bool { !recorder._withUnsafeGuaranteedRef { $0.sendsTraits } }
    /// With traits, an operation crosses with the flow's serial and slot alone (`scratch` is any context): the engine
    /// need not build the flow's context for it (a line of the pool's per delivery, 100,000 flows' worth of pages).
    override var buildsContextOnDemand: Bool { recorder._withUnsafeGuaranteedRef { $0.sendsTraits } }

    /// Operations with the whole context, made unique to this worker (no quiet traits, or no engine slot).
    private func forwardUnique(from sink: EventSink, flow: UnsafePointer<FlowContext>) {
        materializeFlowContext()   // the context at `flow` is read below: built now if the engine left it unbuilt
        recorder._withUnsafeGuaranteedRef { r in
            var f = r.unique(flow.pointee)
            withUnsafePointer(to: &f) { f in
                sink.drainOperationsInPlace { ops, count in
                    for j in 0..<count { r.pushOperation(at: ops + j, uniqueFlow: f) }
                }
            }
        }
    }
}
