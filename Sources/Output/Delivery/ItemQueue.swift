import Foundation
import Records

/// What an output's queue holds: records not yet encoded (encoding happens on the output's thread,
/// off the capture path).
enum OutputItem {
    case alert(AlertBox)
    case record(RecordKind, [UInt8])
}

/// One alert, copied once and shared by every output's queue (an `Alert` is ~400 bytes of
/// references; a queue slot is then one pointer).
final class AlertBox: Sendable {
    let alert: Alert
    init(_ alert: Alert) { self.alert = alert }
}

/// A bounded multi-producer, single-consumer queue. `push` never waits for the consumer: it takes a
/// lock held only for an append or an array swap, and drops (counting) when the queue is full.
final class ItemQueue: @unchecked Sendable {
    private let condition = NSCondition()
    private var items: [OutputItem] = []
    private let capacity: Int
    private var consumerWaiting = false
    private var stopped = false
    private var acceptedCount: UInt64 = 0
    private var droppedCount: UInt64 = 0

    /// Creates a queue holding at most `capacity` items.
    init(capacity: Int) {
        self.capacity = capacity
        items.reserveCapacity(min(capacity, 4096))
    }

    /// Appends `item`, or counts a drop when full or stopped. Returns whether it was queued.
    @discardableResult
    func push(_ item: OutputItem) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard !stopped, items.count < capacity else { droppedCount &+= 1; return false }
        items.append(item)
        acceptedCount &+= 1
        if consumerWaiting { consumerWaiting = false; condition.signal() }   // one wake-up per wait
        return true
    }

    /// Moves every queued item into `batch` (which must be empty), waiting up to `timeout` seconds
    /// for the first one. Returns true once `stop` was called (the batch then holds the rest).
    func take(into batch: inout [OutputItem], timeout: Double) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        if items.isEmpty && !stopped && timeout > 0 {
            consumerWaiting = true
            _ = condition.wait(until: Date(timeIntervalSinceNow: timeout))
            consumerWaiting = false
        }
        swap(&items, &batch)
        return stopped
    }

    /// Refuses further items and wakes the consumer.
    func stop() {
        condition.lock()
        stopped = true
        condition.signal()
        condition.unlock()
    }

    /// (accepted, dropped because full or stopped, queued now).
    func counters() -> (accepted: UInt64, dropped: UInt64, queued: Int) {
        condition.lock()
        defer { condition.unlock() }
        return (acceptedCount, droppedCount, items.count)
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
