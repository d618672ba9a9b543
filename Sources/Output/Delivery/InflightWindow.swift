/// Messages framed for the current connection but not yet acknowledged by the receiver's TCP, oldest
/// first, so that a lost connection sends exactly those again.
///
/// Plain TCP's `send` returning says nothing about delivery: bytes in our send buffer, or in flight,
/// die with the connection. Each message is therefore kept until the peer's TCP acknowledged its last
/// byte (`tcpi_bytes_acked`). A receiver that stops once it has stored what its TCP acknowledged gets
/// every message exactly once across its restart. One that stops (or crashes) with acknowledged
/// bytes not yet stored loses them — rsyslog discards what it has read but not written out when
/// SIGTERM comes under load: plain syslog has no application-level acknowledgement (RELP would be needed).
struct InflightWindow {
    struct Entry {
        /// Plaintext stream position just past this message's frame.
        var plainEnd: UInt64
        /// Transport stream position once the frame was fully handed to the socket (`.max` before).
        var transportEnd: UInt64
        /// Message length (unframed).
        var size: Int
        /// Whether it was read from the spool (it is still there, uncommitted) or sent from memory.
        var fromSpool: Bool
        /// Where the message's copy starts in `storage` (absolute position).
        var storageStart: Int
    }

    private(set) var entries: [Entry] = []
    private var head = 0
    private var firstUnwritten = 0
    private var storage: [UInt8] = []
    private var storageBase = 0      // absolute position of storage[0]
    /// Messages from memory in the window.
    private(set) var directCount = 0

    /// Messages in the window.
    var count: Int { entries.count - head }

    /// Adds a message whose frame ends at `plainEnd`, keeping a copy to requeue it.
    mutating func add(plainEnd: UInt64, message: some Collection<UInt8>, fromSpool: Bool) {
        let start = storageBase + storage.count
        storage.append(contentsOf: message)
        if !fromSpool { directCount += 1 }
        entries.append(Entry(plainEnd: plainEnd, transportEnd: .max, size: message.count, fromSpool: fromSpool,
                             storageStart: start))
    }

    /// Records that everything up to plaintext position `written` is in the socket, which has
    /// handed `transportOffset` bytes to TCP so far.
    mutating func markWritten(upTo written: UInt64, transportOffset: UInt64) {
        while firstUnwritten < entries.count, entries[firstUnwritten].plainEnd <= written {
            entries[firstUnwritten].transportEnd = transportOffset
            firstUnwritten += 1
        }
    }

    /// Removes, oldest first, the messages acknowledged up to transport position `acked`.
    mutating func popAcknowledged(upTo acked: UInt64, _ body: (Entry) -> Void) {
        while head < firstUnwritten, entries[head].transportEnd <= acked {
            let e = entries[head]
            if !e.fromSpool { directCount -= 1 }
            body(e)
            head += 1
        }
        compact()
    }

    /// The message bytes of an entry.
    func bytes(of e: Entry) -> ArraySlice<UInt8> {
        let s = e.storageStart - storageBase
        return storage[s..<(s + e.size)]
    }

    /// The messages still in the window, oldest first.
    func pendingEntries() -> [Entry] { Array(entries[head...]) }

    /// Empties the window (after the connection is gone).
    mutating func removeAll() {
        entries.removeAll(keepingCapacity: true); head = 0; firstUnwritten = 0
        storageBase += storage.count
        storage.removeAll(keepingCapacity: true)
        directCount = 0
    }

    private mutating func compact() {
        if head == entries.count {
            entries.removeAll(keepingCapacity: true); firstUnwritten = 0; head = 0
            storageBase += storage.count; storage.removeAll(keepingCapacity: true)
            return
        }
        guard head >= 4096, head * 2 >= entries.count else { return }
        // Drop the acknowledged prefix of entries and of the stored bytes.
        let dropBytes = entries[head].storageStart - storageBase
        if dropBytes > 0 { storage.removeFirst(dropBytes); storageBase += dropBytes }
        entries.removeFirst(head)
        firstUnwritten -= head
        head = 0
    }
}
