import Glibc
import Synchronization
import Wire

/// What a ring message asks a worker to do.
public enum RingMessageKind: UInt32, Sendable {
    /// A packet: run it through the engine.
    case packet = 1
    /// Move the engine's clock (the once-per-second sweep a single engine would run at this frame, or a live
    /// capture's idle tick).
    case advance = 2
    /// End of input: set the final frame and time, end every flow, report.
    case finish = 3
    /// Filler up to the end of the buffer; the next message starts at offset 0.
    case wrap = 4
    /// Read a capture file with the worker's own handle (`ParallelPipeline.replayFile`): no payload; the file
    /// and where its frames start are in the pipeline's current `FileShare`.
    case file = 5
    /// A copy of an IP fragment another worker has as its packet (`FlowDispatch.everyWorker`): reassembled here too.
    case fragmentCopy = 6
}

/// The fixed header in front of every ring message (40 bytes, 8-aligned).
public struct RingMessageHeader {
    /// `RingMessageKind` raw value.
    public var kind: UInt32
    /// libpcap link type of the packet.
    public var linkType: Int32
    /// Merge key: the reader's dispatch sequence number (detection events are merged in this order).
    public var key: UInt64
    /// The global 1-based packet number (`frame` in records).
    public var frame: UInt64
    /// Packet time (or the clock to advance to).
    public var time: PacketTime
    /// Bytes that follow the header.
    public var capturedLength: UInt32
    /// Bytes on the wire.
    public var wireLength: UInt32
}

/// A single-producer/single-consumer ring of variable-length messages in one preallocated buffer: the reader
/// copies each packet in once, a worker reads it in place and releases it after processing (the release is
/// also the worker's progress mark that the detection merge relies on). No allocation after `init`.
///
/// Positions are byte counts that only grow (`head` written by the producer, `tail` by the consumer); each
/// side keeps a private copy of the other's position and re-reads the shared one only when its copy says
/// full/empty, so the two cores do not bounce one cache line per packet.
public final class PacketRing: @unchecked Sendable {
    /// Buffer size in bytes (a power of two).
    public let capacity: Int
    private let mask: Int
    private let buffer: UnsafeMutableRawPointer
    // Shared positions, each on its own cache line (the padding keeps producer and consumer lines apart).
    private let head = Atomic<Int>(0)
    private let pad0: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0)
    private let tail = Atomic<Int>(0)
    private let pad1: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0)
    // Producer-private.
    private var producerHead = 0
    private var producerTailCopy = 0
    // Consumer-private.
    private var consumerTail = 0
    private var consumerHeadCopy = 0
    private var pendingSize = 0
    private var releasedSincePublish = 0
    // Consumer-private lookahead (`upcomingPacket`): the position of the packet message it answered last, and for
    // which distance.
    private var aheadPosition = -1
    private var aheadDistance = 0
    /// The consumer sleeps here when the ring is empty.
    public let consumerWaiter = Waiter()
    /// The producer sleeps here when the ring is full (replay: never drop).
    public let producerWaiter = Waiter()

    static let headerSize = (MemoryLayout<RingMessageHeader>.size + 7) & ~7

    /// A sleeping consumer is woken once this much is queued (or at `flush()`), and a waiting producer once this
    /// much is free: waking costs a system call on each side, so it is done per batch, never per packet.
    private let wakeBytes: Int

    /// Creates a ring of at least `bytes` bytes (rounded up to a power of two, at least 1 MiB); `prefault`: touch
    /// every page now (live capture), else pages fault in as messages first reach them.
    public init(bytes: Int, prefault: Bool = true) {
        var c = 1 << 20
        while c < bytes && c < 1 << 31 { c <<= 1 }
        capacity = c
        mask = c - 1
        wakeBytes = c / 8
        buffer = UnsafeMutableRawPointer.allocate(byteCount: c, alignment: 64)
        // Live: touch every page now, so the first pass over the ring does not fault on the packet path. Replay
        // need not: a worker reading the file itself gets only a few control messages here, and 2 × 8 MiB of page
        // faults and zeroing were most of `--workers 2`'s start-up, before any worker ran.
        if prefault { buffer.initializeMemory(as: UInt8.self, repeating: 0, count: c) }
    }

    deinit { buffer.deallocate() }

    /// The largest payload a message may carry.
    public var maximumPayload: Int { capacity / 4 }

    // MARK: - Producer

    /// Appends a message; when the ring is full, waits for room if `block` (replay) or returns false
    /// (live: the caller counts a drop). Payloads beyond `maximumPayload` are cut (never happens with
    /// snaplen ≤ 256 KiB and a ring ≥ 1 MiB).
    @inline(__always)
    public func push(_ header: RingMessageHeader, payload: UnsafeRawBufferPointer, block: Bool, publish: Bool = true) -> Bool {
        var h = header
        let n = min(payload.count, maximumPayload)
        h.capturedLength = UInt32(n)
        let size = (Self.headerSize + n + 7) & ~7
        var offset = producerHead & mask
        // A message never straddles the end of the buffer: fill the rest and start over at 0.
        let toEnd = capacity - offset
        let needed = toEnd < size ? toEnd + size : size
        if producerHead + needed - producerTailCopy > capacity {
            producerTailCopy = tail.load(ordering: .acquiring)
            if producerHead + needed - producerTailCopy > capacity {
                guard block else { return false }
                // Full: make sure the consumer runs, then sleep until a good share is free again (hysteresis, so
                // the two threads do not wake each other for every message).
                head.store(producerHead, ordering: .sequentiallyConsistent)
                consumerWaiter.wake()
                let want = min(capacity, max(needed, wakeBytes))
                while producerHead + want - producerTailCopy > capacity {
                    producerWaiter.await(spins: 4) { [self] in
                        producerTailCopy = tail.load(ordering: .acquiring)
                        return producerHead + want - producerTailCopy <= capacity
                    }
                    if producerHead + needed - producerTailCopy > capacity { consumerWaiter.wakeIfSleeping() }
                }
            }
        }
        if toEnd < size {
            buffer.advanced(by: offset).storeBytes(of: RingMessageKind.wrap.rawValue, as: UInt32.self)
            producerHead += toEnd
            offset = 0
        }
        buffer.advanced(by: offset).storeBytes(of: h, as: RingMessageHeader.self)
        if n > 0 { buffer.advanced(by: offset + Self.headerSize).copyMemory(from: payload.baseAddress!, byteCount: n) }
        producerHead += size
        if publish { self.publish() }
        return true
    }

    /// Makes every message pushed so far visible to the consumer, and wakes a sleeping consumer once a good share
    /// is queued. `push(publish: false)` leaves this to the caller, who then publishes every few messages: the
    /// store is a full fence on a line the consumer reads, which cost more than the rest of a push.
    @inline(__always)
    public func publish() {
        head.store(producerHead, ordering: .sequentiallyConsistent)
        if consumerWaiter.sleeping.load(ordering: .sequentiallyConsistent)
            && producerHead - producerTailCopy >= wakeBytes && producerHead - tail.load(ordering: .relaxed) >= wakeBytes {
            consumerWaiter.wake()
        }
    }

    /// Whether a message with `payloadCount` bytes fits without waiting (producer side).
    @inline(__always)
    public func hasRoom(for payloadCount: Int) -> Bool {
        let size = (Self.headerSize + min(payloadCount, maximumPayload) + 7) & ~7
        let toEnd = capacity - (producerHead & mask)
        let needed = toEnd < size ? toEnd + size : size
        if producerHead + needed - producerTailCopy <= capacity { return true }
        producerTailCopy = tail.load(ordering: .acquiring)
        return producerHead + needed - producerTailCopy <= capacity
    }

    /// Wakes a sleeping consumer if anything is queued (the producer's batch ended: a live capture found no
    /// more packets for now, or the input ended).
    public func flush() {
        head.store(producerHead, ordering: .sequentiallyConsistent)
        if consumerWaiter.sleeping.load(ordering: .sequentiallyConsistent) && producerHead != tail.load(ordering: .relaxed) {
            consumerWaiter.wake()
        }
    }

    // MARK: - Consumer

    /// The next message, read in place (valid until `release()`), or nil when the ring is empty.
    @inline(__always)
    public func peek() -> (header: RingMessageHeader, payload: UnsafeRawBufferPointer)? {
        while true {
            if consumerTail == consumerHeadCopy {
                consumerHeadCopy = head.load(ordering: .acquiring)
                if consumerTail == consumerHeadCopy { return nil }
            }
            let offset = consumerTail & mask
            let p = buffer.advanced(by: offset)
            if p.load(as: UInt32.self) == RingMessageKind.wrap.rawValue {
                consumerTail += capacity - offset
                continue
            }
            let h = p.load(as: RingMessageHeader.self)
            pendingSize = (Self.headerSize + Int(h.capturedLength) + 7) & ~7
            return (h, UnsafeRawBufferPointer(start: p + Self.headerSize, count: Int(h.capturedLength)))
        }
    }

    /// The payload of the packet message `distance` packet messages after the one `peek()` returned, when the
    /// producer has already published it (by the consumer's last look at the head: no shared read here);
    /// nil otherwise. Read in place, nothing consumed: a hint source (the flow prefetch). Called once per
    /// message with the same distance, it steps one message on from its previous answer.
    @inline(__always)
    public func upcomingPacket(_ distance: Int) -> UnsafeRawBufferPointer? {
        let current = consumerTail + pendingSize   // the first byte after the message being processed
        var position = current, remaining = distance
        if aheadDistance == distance && aheadPosition >= current {
            // Not released yet, so not overwritten: step past the previous answer.
            let h = buffer.advanced(by: aheadPosition & mask).load(as: RingMessageHeader.self)
            position = aheadPosition + ((Self.headerSize + Int(h.capturedLength) + 7) & ~7)
            remaining = 1
        }
        aheadPosition = -1
        while position < consumerHeadCopy {
            let offset = position & mask
            let p = buffer.advanced(by: offset)
            let kind = p.load(as: UInt32.self)
            if kind == RingMessageKind.wrap.rawValue { position += capacity - offset; continue }
            let h = p.load(as: RingMessageHeader.self)
            if kind == RingMessageKind.packet.rawValue {
                remaining -= 1
                if remaining <= 0 {
                    aheadPosition = position; aheadDistance = distance
                    return UnsafeRawBufferPointer(start: p + Self.headerSize, count: Int(h.capturedLength))
                }
            }
            position += (Self.headerSize + Int(h.capturedLength) + 7) & ~7
        }
        return nil
    }

    /// Frees the message returned by the last `peek()`: after this the producer may overwrite it, and the
    /// detection merge counts everything it caused as done.
    @inline(__always)
    public func release() {
        consumerTail += pendingSize
        pendingSize = 0
        // Published every 32 messages and whenever the consumer has caught up with what it has seen (so an idle
        // worker's ring reads as drained): the store is a full fence on a line the producer reads.
        releasedSincePublish &+= 1
        guard releasedSincePublish >= 32 || consumerTail == consumerHeadCopy else { return }
        releasedSincePublish = 0
        tail.store(consumerTail, ordering: .sequentiallyConsistent)
        // The producer waits for `wakeBytes` of room; wake it once that much is free (by our view of the head,
        // which may lag: an early wake is harmless, it re-checks and sleeps again).
        if producerWaiter.sleeping.load(ordering: .sequentiallyConsistent) && capacity - (consumerHeadCopy - consumerTail) >= wakeBytes {
            producerWaiter.wake()
        }
    }

    /// Waits (bounded) until a message may be there.
    public func waitForMessage() {
        consumerWaiter.await(spins: 16) { [self] in
            consumerHeadCopy = head.load(ordering: .acquiring)
            return consumerTail != consumerHeadCopy
        }
    }

    /// Whether every message pushed so far has been released (read from any thread).
    public var isDrained: Bool { head.load(ordering: .acquiring) == tail.load(ordering: .acquiring) }
}
