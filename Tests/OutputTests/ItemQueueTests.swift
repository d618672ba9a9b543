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
}
