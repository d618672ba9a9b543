import Foundation
import Synchronization
import Testing
import Records
@testable import Output

/// A counter shared with a consumer thread.
private final class SharedCount: Sendable {
    let value = Atomic<Int>(0)
}

@Suite struct ItemQueueTests {
    /// A consumer that keeps up with a steady trickle of records must not cost the producer (the capture
    /// thread) one wake-up syscall per record: after a take that found records it naps instead of asking
    /// to be woken, so the trickle arrives in batches.
    @Test func aSteadyStreamCostsFewWakeUps() {
        let queue = ItemQueue(capacity: 65536)
        let total = 4000
        let taken = SharedCount()
        let consumer = Thread {
            var batch: [OutputItem] = []
            while true {
                let stopping = queue.take(into: &batch, timeout: 0.5)
                taken.value.add(batch.count, ordering: .relaxed)
                queue.retire(&batch)
                if stopping { break }
            }
        }
        consumer.start()
        let line: [UInt8] = Array(#"{"flow":1}"#.utf8)
        for i in 0..<total {
            #expect(queue.push(.record(.flow, line)))
            if i % 4 == 3 { usleep(50) }          // ~ 40,000 records/s: slower than the consumer
        }
        queue.stop()
        let deadline = Date().addingTimeInterval(5)
        while taken.value.load(ordering: .relaxed) < total && Date() < deadline { usleep(1000) }
        let count = taken.value.load(ordering: .relaxed)
        #expect(count == total)
        // Waking on every record would be ~total wake-ups; a nap per batch leaves a handful (one per idle wait).
        #expect(queue.wakeUps < UInt64(total / 20), "wake-ups: \(queue.wakeUps) for \(total) records")
        #expect(queue.counters().dropped == 0)
    }

    /// An idle consumer is woken by the first record, so a lone alert is not held back until a timeout.
    @Test func anIdleConsumerIsWokenAtOnce() {
        let queue = ItemQueue(capacity: 16)
        let received = SharedCount()
        let consumer = Thread {
            var batch: [OutputItem] = []
            _ = queue.take(into: &batch, timeout: 30)    // idle: no earlier take found records
            received.value.store(batch.count, ordering: .relaxed)
        }
        consumer.start()
        usleep(50_000)                                     // let it start waiting
        let start = Date()
        queue.push(.record(.flow, [0x7B, 0x7D]))
        while received.value.load(ordering: .relaxed) == 0 && Date().timeIntervalSince(start) < 10 { usleep(500) }
        let count = received.value.load(ordering: .relaxed)
        #expect(count == 1)
        #expect(Date().timeIntervalSince(start) < 5)
        #expect(queue.wakeUps <= 1)      // 0 if the push came before the consumer began to wait
        queue.stop()
    }

    /// Processed items come back to the producer, which releases them on its next push: an alert's box
    /// and strings are freed on the thread (and malloc arena) that made them.
    @Test func retiredItemsAreReleasedByTheNextPush() {
        let queue = ItemQueue(capacity: 16)
        weak var released: AlertBox?
        do {
            let box = AlertBox(Sample.hostile())
            released = box
            queue.push(.alert(box))
        }
        var batch: [OutputItem] = []
        _ = queue.take(into: &batch, timeout: 0)
        #expect(batch.count == 1)
        queue.retire(&batch)
        #expect(batch.isEmpty)
        #expect(released != nil, "still held for the producer")
        queue.push(.record(.flow, [0x7B, 0x7D]))
        #expect(released == nil, "released by the push")
    }

    /// A replay's queue (`waitsWhenFull`) loses nothing to a slow consumer: a producer far faster than it waits for
    /// room, records and alert batches alike (a batch larger than the bound goes in whole once the queue is empty),
    /// in order. The same traffic through a live queue is dropped, counted.
    @Test(arguments: [true, false])
    func aReplaysQueueWaitsForRoomWhereALiveOneDrops(waits: Bool) {
        let queue = ItemQueue(capacity: 8, waitsWhenFull: waits)
        let seen = Mutex<[Int]>([])
        let done = SharedCount()
        let consumer = Thread {
            var batch: [OutputItem] = []
            while true {
                let stopping = queue.take(into: &batch, timeout: 0.5)
                for item in batch {
                    switch item {
                    case .record(_, let line): seen.withLock { $0.append(Int(line[0]) | Int(line[1]) << 8) }
                    case .alerts(let b): seen.withLock { $0 += b.alerts.map { Int($0.severity) + 1_000_000 } }
                    case .alert: break
                    }
                }
                queue.retire(&batch)
                usleep(2000)                       // a slow output: ~4,000 records/s at most
                if stopping { break }
            }
            done.value.store(1, ordering: .releasing)
        }
        consumer.start()
        let total = 300
        var pushed: [Int] = []
        var reclaimed: [OutputItem] = []
        for i in 0..<total {
            queue.push(.record(.flow, [UInt8(i & 0xFF), UInt8(i >> 8)]))
            pushed.append(i)
            if i == total / 2 {
                let batch = AlertBatch()
                batch.alerts = (0..<20).map { k in var a = Sample.hostile(); a.severity = k % 10; return a }
                queue.push(batch: batch, reclaiming: &reclaimed)
                pushed += (0..<20).map { $0 % 10 + 1_000_000 }
                reclaimed.removeAll()
            }
        }
        queue.stop()
        let deadline = Date().addingTimeInterval(10)
        while done.value.load(ordering: .acquiring) == 0 && Date() < deadline { usleep(1000) }
        let c = queue.counters()
        if waits {
            #expect(seen.withLock { $0 } == pushed)
            #expect(c.dropped == 0 && c.accepted == UInt64(total + 20))
            #expect(c.waits > 0)
        } else {
            #expect(c.dropped > 0 && c.accepted + c.dropped == UInt64(total + 20))
            #expect(seen.withLock { $0.count } == Int(c.accepted))
            #expect(c.waits == 0)
        }
    }

    /// A producer waiting for room is let go (its record dropped, counted) when the queue stops: a shutdown never
    /// hangs on an output that is no longer read.
    @Test func aProducerWaitingForRoomIsReleasedByStop() {
        let queue = ItemQueue(capacity: 2, waitsWhenFull: true)
        queue.push(.record(.flow, [1])); queue.push(.record(.flow, [2]))
        let returned = SharedCount()
        let producer = Thread {
            let queued = queue.push(.record(.flow, [3]))   // full, and nobody takes
            returned.value.store(queued ? 2 : 1, ordering: .releasing)
        }
        producer.start()
        usleep(100_000)
        #expect(returned.value.load(ordering: .acquiring) == 0, "it waits while the queue is full")
        queue.stop()
        let deadline = Date().addingTimeInterval(5)
        while returned.value.load(ordering: .acquiring) == 0 && Date() < deadline { usleep(1000) }
        #expect(returned.value.load(ordering: .acquiring) == 1)
        #expect(queue.counters().dropped == 1)
    }
}
