import Records

/// What one output did: its counters while running, and its summary after `shutdown`.
///
/// Every record an output accepted ends up in exactly one place, so after shutdown
/// `accepted + recovered == sent + inSpool + droppedSpoolFull + droppedErrors + pending` (`pending` is 0 unless the deadline
/// cut delivery short; those records were lost and are counted there).
public struct OutputReport: Sendable, Equatable {
    /// The output's URL.
    public var url: String
    /// Records that passed the output's filter and entered its queue.
    public var accepted: UInt64 = 0
    /// Records delivered: acknowledged by the receiver's TCP (TCP, TLS), handed to the kernel
    /// (UDP), or written (files, stdout).
    public var sent: UInt64 = 0
    /// Records written to the disk spool since start.
    public var spooled: UInt64 = 0
    /// Of `sent`, those that came from the spool.
    public var replayed: UInt64 = 0
    /// Records in the spool now (persisted on shutdown, replayed by the next run).
    public var inSpool: UInt64 = 0
    /// Records found in the spool at start, left by an earlier run.
    public var recovered: UInt64 = 0
    /// Records in memory (queue, encoder, unacknowledged on the wire); after shutdown: lost.
    public var pending: UInt64 = 0
    /// Records dropped because the in-memory queue was full (the output's thread could not keep up
    /// even with the spool) or the output was already shut down.
    public var droppedQueueFull: UInt64 = 0
    /// Records dropped because the spool was full.
    public var droppedSpoolFull: UInt64 = 0
    /// Records dropped on an error the output cannot retry (UDP send error, file write error).
    public var droppedErrors: UInt64 = 0
    /// UDP messages cut to `max_size`.
    public var truncated: UInt64 = 0
    /// Successful connections (TCP, TLS).
    public var connects: UInt64 = 0
    /// Failed connection attempts.
    public var connectFailures: UInt64 = 0
    /// Connections lost after being established.
    public var disconnects: UInt64 = 0
    /// Whether a TCP/TLS output is connected now.
    public var connected: Bool = false
    /// The last error seen, for the operator.
    public var lastError: String?
    /// After shutdown: whether the output finished within the deadline.
    public var finished: Bool = false

    /// All drops.
    public var dropped: UInt64 { droppedQueueFull + droppedSpoolFull + droppedErrors }

    /// Creates an empty report for `url`.
    public init(url: String) { self.url = url }

    /// Writes the report as one JSON object (for the periodic `stats` record and the summary).
    public func writeJSON(to json: inout JSONWriter) {
        json.beginObject()
        json.field("url", url)
        json.field("accepted", accepted); json.field("sent", sent)
        json.field("spooled", spooled); json.field("replayed", replayed); json.field("in_spool", inSpool)
        json.field("recovered", recovered); json.field("pending", pending)
        json.field("dropped", dropped)
        json.field("dropped_queue_full", droppedQueueFull); json.field("dropped_spool_full", droppedSpoolFull)
        json.field("dropped_errors", droppedErrors); json.field("truncated", truncated)
        json.field("connects", connects); json.field("connect_failures", connectFailures)
        json.field("disconnects", disconnects); json.field("connected", connected)
        if let e = lastError { json.field("last_error", e) }
        json.endObject()
    }

    /// One human-readable line for the end-of-run summary.
    public var summary: String {
        var s = "\(url): sent \(sent)"
        if replayed > 0 { s += " (\(replayed) from spool)" }
        if inSpool > 0 { s += ", \(inSpool) left in spool" }
        if dropped > 0 {
            s += ", dropped \(dropped) (queue full \(droppedQueueFull), spool full \(droppedSpoolFull), errors \(droppedErrors))"
        }
        if pending > 0 { s += ", \(pending) undelivered at the deadline" }
        if truncated > 0 { s += ", \(truncated) truncated" }
        if let e = lastError, sent < accepted + recovered { s += "; last error: \(e)" }
        return s
    }
}
