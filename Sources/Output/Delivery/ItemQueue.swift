import Glibc
import Synchronization
import Records

/// What an output's queue holds: records not yet encoded (encoding happens on the output's thread,
/// off the capture path).
enum OutputItem {
    case alert(AlertBox)
    /// The alerts of one hand-over (`AlertFeed`), in order.
    case alerts(AlertBatch)
    case record(RecordKind, [UInt8])
}

/// One alert, copied once and shared by every output's queue (an `Alert` is ~400 bytes of
/// references; a queue slot is then one pointer).
final class AlertBox: Sendable {
    let alert: Alert
    init(_ alert: Alert) { self.alert = alert }
}

/// The alerts one engine callback raised, moved (not copied) out of the producer's list, and shared by
/// every output that takes all of them. The producer fills it while it is the only holder and recycles it,
/// array capacity included, once every output has retired it (`AlertFeed`); outputs only read it.
///
/// A batch only one output reads is emptied by that output's thread once encoded (`readers == 1`): the
/// alerts' strings and array slots were just read there, so releasing them there spares capture the
/// cross-core traffic of releasing them later (measured: main-thread CPU time in an alert storm ~3 % lower).
/// A batch several outputs share is emptied by the producer when it comes back.
final class AlertBatch: @unchecked Sendable {
    @exclusivity(unchecked) var alerts: [Alert] = []
    /// Outputs it was queued for (set before the first push, fixed until every one retired it).
    @exclusivity(unchecked) var readers = 1
    init() {}
}

/// A bounded multi-producer, single-consumer queue. `push` never waits for the consumer: it takes a
/// lock held only for an append or an array swap, and drops (counting) when the queue is full. The bound
/// and the counters are in records: a batch item counts its alerts. A queue made `waitsWhenFull` (a replay's:
/// a file gives the same records every time, however slow the output) makes `push` wait for room instead.
///
/// Wake-ups are rationed, because a wake-up is a futex syscall on the producer (the capture thread):
/// at 100,000 alerts/s a consumer that drains each record as it comes and then sleeps costs capture
/// one syscall per alert. So after a take that found records, the consumer naps for up to
/// `coalesceSeconds` without asking to be woken (a stream of records then arrives in batches, one
/// write each), and only an idle consumer, whose last take found nothing, is woken by the next push.
/// A queue filling up during a nap wakes the consumer at half capacity, so the nap cannot cause drops.
///
/// Items are released where they were made: the consumer hands each processed batch back (`retire`)
/// and the next `push` frees it on the producer's thread. An alert's box and strings come from the
/// producer's malloc arena; freed on the output thread they would go back through that arena's lock
/// and leave the producer's heap to be refilled (page faults), which capture would pay for.
/// `push(batch:reclaiming:)` instead hands the retired items to the producer, which frees them (and
/// recycles its batches) after the lock is released. (The alerts of a batch with one reader are the
/// exception: see `AlertBatch`.)
final class ItemQueue: @unchecked Sendable {
    private let condition = WaitCondition()
    // Every stored property below is touched only with `condition` locked, so the runtime's
    // exclusivity checks (a TLS lookup per access, on the capture path) prove nothing: unchecked.
    @exclusivity(unchecked) private var items: [OutputItem] = []
    @exclusivity(unchecked) private var retired: [OutputItem] = []
    @exclusivity(unchecked) private var queuedRecords = 0       // records in `items`
    private let capacity: Int
    /// Takes that found items: a producer that saw this change since its last push knows the consumer has
    /// what it pushed (read without the lock).
    let takes = Atomic<UInt64>(0)
    @exclusivity(unchecked) private var consumerWaiting = false
    @exclusivity(unchecked) private var consumerNapping = false
    @exclusivity(unchecked) private var consumerBusy = false     // the last take returned records
    @exclusivity(unchecked) private var stopped = false
    @exclusivity(unchecked) private var acceptedCount: UInt64 = 0
    @exclusivity(unchecked) private var droppedCount: UInt64 = 0
    @exclusivity(unchecked) private var wakeUpCount: UInt64 = 0
    @exclusivity(unchecked) private var producersWaiting = 0
    @exclusivity(unchecked) private var fullWaitCount: UInt64 = 0
    private let waitsWhenFull: Bool

    /// Longest nap of a busy consumer: the most a record waits for the consumer in a stream.
    static let coalesceSeconds = 0.001

    /// Creates a queue holding at most `capacity` items; `waitsWhenFull`: a full queue makes `push` wait, not drop.
    init(capacity: Int, waitsWhenFull: Bool = false) {
        self.capacity = capacity
        self.waitsWhenFull = waitsWhenFull
        items.reserveCapacity(min(capacity, 4096))
        retired.reserveCapacity(min(capacity, 4096))
    }

    /// Appends `item`, or counts a drop when full or stopped. Returns whether it was queued.
    @discardableResult
    func push(_ item: OutputItem) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        // Frees the consumer's processed items here (see the type's comment); they are few per batch.
        if !retired.isEmpty { retired.removeAll(keepingCapacity: true) }
        if waitsWhenFull { waitForRoom(records: 1) }
        guard !stopped, queuedRecords < capacity else { droppedCount &+= 1; return false }
        append(item, records: 1)
        return true
    }

    /// Appends `batch` (as much of it as fits: the rest is counted as dropped) and moves the items the
    /// consumer retired into `reclaimed` (which must be empty), for the caller to release or recycle
    /// outside the lock. Returns the alerts queued.
    @discardableResult
    func push(batch: AlertBatch, reclaiming reclaimed: inout [OutputItem]) -> Int {
        let count = batch.alerts.count
        condition.lock()
        defer { condition.unlock() }
        if !retired.isEmpty { swap(&retired, &reclaimed) }
        if waitsWhenFull {
            waitForRoom(records: count)
            // Room made, or an empty queue taking a batch larger than the bound whole.
            if !stopped { append(.alerts(batch), records: count); return count }
        }
        let room = stopped ? 0 : max(0, capacity - queuedRecords)
        if count <= room {
            append(.alerts(batch), records: count)
            return count
        }
        droppedCount &+= UInt64(count - room)
        guard room > 0 else { return 0 }
        // Rare (the queue is all but full): the part that fits, in order, as a batch of its own.
        let head = AlertBatch()
        head.alerts = Array(batch.alerts.prefix(room))
        append(.alerts(head), records: room)
        return room
    }

    /// Waits (`condition` locked) until `records` more fit, the queue is empty or it is stopped, waking the consumer
    /// from an idle wait or a nap first.
    private func waitForRoom(records: Int) {
        while !stopped && queuedRecords > 0 && queuedRecords + records > capacity {
            if consumerWaiting || consumerNapping {
                consumerWaiting = false; consumerNapping = false; wakeUpCount &+= 1
            }
            fullWaitCount &+= 1
            producersWaiting += 1
            condition.broadcast()
            condition.wait(seconds: 1)   // bounded: re-checked after a missed wake-up
            producersWaiting -= 1
        }
    }

    /// Wakes the consumer (`condition` locked): with producers waiting for room on the same condition, all of them.
    private func wakeConsumer() {
        if producersWaiting > 0 { condition.broadcast() } else { condition.signal() }
    }

    /// Queues `item` and wakes the consumer if it waits; `condition` is locked.
    private func append(_ item: OutputItem, records: Int) {
        let before = queuedRecords
        items.append(item)
        queuedRecords = before + records
        acceptedCount &+= UInt64(records)
        if consumerWaiting {
            consumerWaiting = false; wakeUpCount &+= 1; wakeConsumer()   // one wake-up per idle wait
        } else if consumerNapping {
            let half = max(1, capacity / 2)
            if before < half && queuedRecords >= half {
                consumerNapping = false; wakeUpCount &+= 1; wakeConsumer()   // filling up: end the nap
            }
        }
    }

    /// Moves every queued item into `batch` (which must be empty), waiting up to `timeout` seconds
    /// for the first one (up to `coalesceSeconds` when the last take found records: see the type's
    /// comment). Returns true once `stop` was called (the batch then holds the rest).
    func take(into batch: inout [OutputItem], timeout: Double) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        if items.isEmpty && !stopped && timeout > 0 {
            if consumerBusy {
                consumerNapping = true
                condition.wait(seconds: min(timeout, ItemQueue.coalesceSeconds))
                consumerNapping = false
            } else {
                consumerWaiting = true
                condition.wait(seconds: timeout)
                consumerWaiting = false
            }
        }
        consumerBusy = !items.isEmpty
        if consumerBusy { takes.add(1, ordering: .relaxed) }
        swap(&items, &batch)
        queuedRecords = 0
        if producersWaiting > 0 { condition.broadcast() }   // room for them
        return stopped
    }

    /// Hands a processed batch back, to be released by the next `push` on the producer's thread;
    /// leaves `batch` empty, with capacity for the next take.
    func retire(_ batch: inout [OutputItem]) {
        guard !batch.isEmpty else { return }
        condition.lock()
        defer { condition.unlock() }
        if retired.isEmpty {
            swap(&retired, &batch)
        } else {
            // The producer has not pushed since the last batch (idle capture): keep them all for it.
            retired.append(contentsOf: batch)
            batch.removeAll(keepingCapacity: true)
        }
    }

    /// Refuses further items and wakes the consumer.
    func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()   // the consumer, and producers waiting for room (they drop from now on)
        condition.unlock()
    }

    /// Times a push woke the consumer (the syscalls producers paid).
    var wakeUps: UInt64 {
        condition.lock()
        defer { condition.unlock() }
        return wakeUpCount
    }

    /// (accepted, dropped because full or stopped, queued now, waits of a `waitsWhenFull` queue's producers).
    func counters() -> (accepted: UInt64, dropped: UInt64, queued: Int, waits: UInt64) {
        condition.lock()
        defer { condition.unlock() }
        return (acceptedCount, droppedCount, queuedRecords, fullWaitCount)
    }
}

/// Seconds on the monotonic clock.
func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// The text of `errno` value `e`.
func errnoText(_ e: Int32) -> String { String(cString: strerror(e)) }
