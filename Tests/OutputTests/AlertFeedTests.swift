import Foundation
import Testing
import Records
@testable import Output

/// `AlertFeed` moves whole lists of alerts into the outputs' queues (the capture thread's way in): what
/// the outputs write must be exactly what one `deliver(alert)` per alert writes, and its batches must be
/// reused rather than allocated per hand-over.
@Suite struct AlertFeedTests {
    /// Three outputs, one filtering by severity (so batches are shared by two or three outputs, or copied
    /// for one): batches of 0 to 4 alerts through a feed give the same files, byte for byte and in the same
    /// order, as single deliveries; `alerts` is left empty each time.
    @Test func batchesWriteWhatSingleDeliveriesWrite() throws {
        let tmp = TempDir("feed")
        func specs(_ dir: String) throws -> [OutputSpec] {
            [try OutputSpec.parse("file://\(tmp.path)/\(dir)/cef?format=cef"),
             try OutputSpec.parse("file://\(tmp.path)/\(dir)/high?format=leef&min_severity=6&records=alert"),
             try OutputSpec.parse("file://\(tmp.path)/\(dir)/ecs?format=ecs")]
        }
        let alerts = (1...600).map { Sample.numbered($0, severity: $0 % 11) }

        let single = try OutputSet(specs: try specs("single"))
        for a in alerts { single.deliver(a) }
        let singleReports = single.shutdown(deadline: 5)

        let batched = try OutputSet(specs: try specs("batched"))
        let feed = batched.alertFeed()
        var pending: [Alert] = []
        var next = 0, size = 0
        while next < alerts.count {
            let n = min(size % 5, alerts.count - next)
            pending.append(contentsOf: alerts[next..<next + n])
            feed.deliver(&pending)
            #expect(pending.isEmpty)
            next += n; size += 1
        }
        let batchedReports = batched.shutdown(deadline: 5)

        #expect(singleReports.map(\.sent) == [600, UInt64(alerts.filter { $0.severity >= 6 }.count), 600])
        #expect(batchedReports.map(\.sent) == singleReports.map(\.sent))
        #expect(batchedReports.map(\.accepted) == singleReports.map(\.accepted))
        for (dir, file) in [("cef", "alerts.cef"), ("high", "alerts.leef"), ("ecs", "alerts.jsonl")] {
            let a = try #require(FileManager.default.contents(atPath: "\(tmp.path)/single/\(dir)/\(file)"))
            let b = try #require(FileManager.default.contents(atPath: "\(tmp.path)/batched/\(dir)/\(file)"))
            #expect(!a.isEmpty && a == b, "\(dir)/\(file)")
        }
    }

    /// In a steady stream, handed over as the alert pipeline does (holding while the output is busy), the
    /// consumer retires batches and the feed reuses them: the batches it allocates are the few in flight,
    /// not one per hand-over.
    @Test func batchesAreRecycled() throws {
        let tmp = TempDir("feedrecycle")
        let outputs = try OutputSet(specs: [try OutputSpec.parse("file://\(tmp.path)?format=cef")])
        let feed = outputs.alertFeed()
        var pending: [Alert] = []
        let total = 3000
        for n in 1...total {
            pending.append(Sample.numbered(n))
            feed.deliver(&pending, now: false)
            if n % 50 == 0 { usleep(2000) }          // let the consumer take and retire
        }
        feed.deliver(&pending, now: true)
        #expect(pending.isEmpty)
        let r = outputs.shutdown(deadline: 5)[0]
        #expect(r.sent == UInt64(total) && r.dropped == 0, "\(r.summary)")
        #expect(feed.batchesMade <= 8, "\(feed.batchesMade) batches for \(total) alerts")
    }

    /// A batch larger than the queue's room is cut: what fits is queued in order, the rest counted as dropped.
    @Test func aBatchIsCutAtTheQueueBound() {
        let queue = ItemQueue(capacity: 5)
        var reclaimed: [OutputItem] = []
        let first = AlertBatch()
        first.alerts = (1...3).map { Sample.numbered($0) }
        #expect(queue.push(batch: first, reclaiming: &reclaimed) == 3)
        let second = AlertBatch()
        second.alerts = (4...7).map { Sample.numbered($0) }
        #expect(queue.push(batch: second, reclaiming: &reclaimed) == 2)
        #expect(!queue.push(.record(.flow, [0x7B, 0x7D])))
        let c = queue.counters()
        #expect(c.accepted == 5 && c.dropped == 3 && c.queued == 5)
        var batch: [OutputItem] = []
        _ = queue.take(into: &batch, timeout: 0)
        var frames: [UInt64] = []
        for item in batch { if case .alerts(let b) = item { frames += b.alerts.map(\.frame) } }
        #expect(frames == [1, 2, 3, 4, 5])
        #expect(queue.counters().queued == 0)
        // Retired items go back to the next batch push's caller, to be released outside the lock.
        queue.retire(&batch)
        #expect(queue.push(batch: AlertBatch(), reclaiming: &reclaimed) == 0)
        #expect(reclaimed.count == 2)
    }

    /// While the output still has the feed's last batch queued, `deliver(now: false)` leaves new alerts with the
    /// caller (they would only wait beside it); once the output's thread took that batch, or the caller says
    /// `now`, or `holdLimit` alerts are waiting, everything held goes in one batch, in order.
    @Test func alertsWaitWhileTheLastBatchIsQueued() throws {
        let tmp = TempDir("feedhold")
        let channel = try OutputChannel(spec: try OutputSpec.parse("file://\(tmp.path)?format=cef"))   // no thread: we take
        defer { _ = channel.stop(deadline: 0) }
        let feed = AlertFeed(channels: [channel])
        var pending = [Sample.numbered(1)]
        feed.deliver(&pending, now: false)
        #expect(pending.isEmpty, "nothing queued yet: the first batch goes at once")
        pending.append(Sample.numbered(2))
        feed.deliver(&pending, now: false)
        pending.append(Sample.numbered(3))
        feed.deliver(&pending, now: false)
        #expect(pending.map(\.frame) == [2, 3], "held while batch 1 waits in the queue")

        var taken: [OutputItem] = []
        _ = channel.queue.take(into: &taken, timeout: 0)
        feed.deliver(&pending, now: false)
        #expect(pending.isEmpty, "the output took batch 1: the held alerts follow")
        pending.append(Sample.numbered(4))
        feed.deliver(&pending, now: false)
        #expect(pending.count == 1)
        feed.deliver(&pending, now: true)
        #expect(pending.isEmpty)
        for n in 5..<(5 + AlertFeed.holdLimit) {
            pending.append(Sample.numbered(n))
            feed.deliver(&pending, now: false)
        }
        #expect(pending.isEmpty, "a full hold goes even while the output is busy")

        channel.queue.retire(&taken)
        _ = channel.queue.take(into: &taken, timeout: 0)
        var frames: [UInt64] = []
        for item in taken { if case .alerts(let b) = item { frames += b.alerts.map(\.frame) } }
        #expect(frames == (2...(4 + UInt64(AlertFeed.holdLimit))).map { $0 })
        #expect(channel.queue.counters().accepted == 4 + UInt64(AlertFeed.holdLimit))
    }
}
