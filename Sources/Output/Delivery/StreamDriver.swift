import Glibc
import Synchronization
import Records

/// What an output's thread drives: takes encoded messages and does the I/O of one transport.
protocol OutputDriver: AnyObject {
    /// Takes one encoded message (no framing, no newline) of record kind `kind`.
    func route(_ message: [UInt8], kind: RecordKind)
    /// Does the I/O that is due: after each batch, and on idle ticks.
    func pump()
    /// How long the thread may wait for new records before `pump` is due again.
    func idleWait() -> Double
    /// Delivers what it can until `deadline` (monotonic seconds), then flushes to disk and closes.
    func finish(deadline: Double)
    /// Copies its counters into `report`.
    func fill(_ report: inout OutputReport)
    /// Grows while the receiver takes bytes; any thread may read it (a waiter's sign that delivery goes on).
    var progressMark: UInt64 { get }
}

extension OutputDriver {
    var progressMark: UInt64 { 0 }
}

/// Syslog over TCP (RFC 6587) or TLS (RFC 5425), with reconnection and a disk spool.
///
/// Routing keeps order: a message goes straight to the socket while nothing waits in the spool
/// (everything spooled was already sent) and the socket keeps up; otherwise it is appended to the
/// spool, which is replayed oldest first whenever the connection can take more. So the messages in
/// flight are always in acceptance order and older than anything unread in the spool. A lost
/// connection puts every unacknowledged message back in front of the spool (see `InflightWindow`)
/// and reconnects with exponential backoff.
final class StreamDriver: OutputDriver {
    private let host: String
    private let port: UInt16
    private let framing: OutputSpec.Framing
    private let tls: TLSContext?
    private let serverName: String
    private let connectTimeout: Double
    private let spool: Spool

    // The output's thread is the only one that touches a driver, so the runtime's exclusivity checks
    // on the state used per message (a TLS lookup per access) prove nothing: unchecked.
    @exclusivity(unchecked) private var connection: (any StreamConnection)?
    @exclusivity(unchecked) private var ready = false
    private var connectStarted = 0.0
    private var nextAttempt = 0.0
    private var backoff = StreamDriver.initialBackoff
    private var lastPersist = 0.0
    private var addresses: [SocketAddress] = []    // of the host, resolved per round of attempts
    private var addressIndex = 0

    @exclusivity(unchecked) private var out: [UInt8] = []      // framed bytes not yet taken by the socket start at outSent
    @exclusivity(unchecked) private var outSent = 0
    @exclusivity(unchecked) private var plainQueued: UInt64 = 0
    @exclusivity(unchecked) private var plainWritten: UInt64 = 0
    @exclusivity(unchecked) private var inflight = InflightWindow()

    private var sent: UInt64 = 0, spooled: UInt64 = 0, replayed: UInt64 = 0
    private var droppedSpoolFull: UInt64 = 0, droppedErrors: UInt64 = 0
    private var connects: UInt64 = 0, connectFailures: UInt64 = 0, disconnects: UInt64 = 0
    private var lastError: String?

    static let initialBackoff = 0.05
    static let maxBackoff = 5.0
    /// Framed bytes held for the socket before new messages go to the spool instead.
    static let outLimit = 512 << 10

    /// A replay's output: while connected, `route` waits for the receiver to take more instead of spooling (a replay
    /// has no clock to keep up with, and a forensic replay's alerts belong in the SIEM when it ends, not in a spool
    /// for the next run); a receiver that takes nothing for `stallSeconds` is given up on (spooled, as live).
    private let waitsForReceiver: Bool
    private let stallSeconds: Double
    /// The receiver took nothing for `stallSeconds` while `route` waited: spool until it has taken all that waits.
    private var stalled = false
    /// Bytes the socket took, over every connection (`progressMark`).
    private let socketTook = Atomic<UInt64>(0)
    var progressMark: UInt64 { socketTook.load(ordering: .relaxed) }

    init(spec: OutputSpec, host: String, port: UInt16, tls: Bool, waitsForReceiver: Bool = false,
         stallSeconds: Double = 10) throws {
        self.host = host; self.port = port
        self.waitsForReceiver = waitsForReceiver; self.stallSeconds = stallSeconds
        framing = spec.framing
        connectTimeout = spec.connectTimeout
        serverName = spec.tls.serverName ?? host
        self.tls = tls ? try TLSContext(settings: spec.tls) : nil
        spool = try Spool(directory: spec.effectiveSpoolDirectory, limit: spec.spoolLimit)
        out.reserveCapacity(StreamDriver.outLimit + 65536)
        if spool.corruptBytes > 0 {
            lastError = "spool \(spool.directory): skipped \(spool.corruptBytes) unreadable bytes at the end (an interrupted write)"
        }
    }

    private var pendingOut: Int { out.count - outSent }

    func route(_ message: [UInt8], kind: RecordKind) {
        if waitsForReceiver { waitForReceiver() }
        if ready && !spool.hasUnread, let c = connection {
            if pendingOut >= StreamDriver.outLimit {
                // A batch can be large: hand the socket what it takes before falling back to the spool.
                do throws(ConnectionError) { try flushOut(c) } catch { connectionLost(error) }
            }
            if ready && pendingOut < StreamDriver.outLimit {
                frame(message, fromSpool: false)
                return
            }
        }
        if spool.append(message) {
            spooled += 1
        } else {
            droppedSpoolFull += 1
        }
    }

    /// Waits for the first connection's outcome (so a replay's first messages need not wait in the spool), then,
    /// while the receiver is connected and takes bytes, until the socket's share has room and the spool is delivered
    /// (so the next message goes straight to the socket, in order). Stops at a lost connection, or once the receiver
    /// took nothing for `stallSeconds` (then spools until everything waiting has gone). A receiver that is down is
    /// not waited for: its messages are spooled, as live.
    private func waitForReceiver() {
        if connects == 0 && connectFailures == 0 {
            let start = monotonicSeconds()
            while !ready && connectFailures == 0 && monotonicSeconds() - start < connectTimeout + 1 {
                pump()
                if !ready { usleep(1000) }
            }
        }
        guard ready else { return }
        if stalled {
            guard pendingOut < StreamDriver.outLimit && !spool.hasUnread else { return }
            stalled = false
        }
        var lastProgress = monotonicSeconds()
        while ready, let c = connection, pendingOut >= StreamDriver.outLimit || spool.hasUnread {
            let written = plainWritten
            if let error = transfer(c) { connectionLost(error); return }
            let now = monotonicSeconds()
            if plainWritten != written {
                lastProgress = now
            } else if now - lastProgress > stallSeconds {
                stalled = true
                lastError = "receiver took nothing for \(Int(stallSeconds)) s: spooling until it does"
                return
            } else {
                usleep(1000)
            }
        }
    }

    func pump() {
        let now = monotonicSeconds()
        if connection == nil && now >= nextAttempt { startConnect(now) }
        if let c = connection, !ready {
            do throws(ConnectionError) {
                if try c.advance() {
                    ready = true; connects += 1; backoff = StreamDriver.initialBackoff
                    addresses.removeAll(); addressIndex = 0     // resolve afresh after the next loss
                } else if now - connectStarted > connectTimeout {
                    throw ConnectionError("connect to \(host):\(port) timed out after \(connectTimeout) s")
                }
            } catch {
                connectFailed(error)
            }
        }
        if let c = connection, ready {
            if let error = transfer(c) { connectionLost(error) }
        }
        if now - lastPersist > 2 { spool.persist(); lastPersist = now }
    }

    /// Writes, replays and collects acknowledgements; returns the error that ended the connection.
    private func transfer(_ c: any StreamConnection) -> ConnectionError? {
        do throws(ConnectionError) {
            try c.checkAlive()
            try flushOut(c)
            var rounds = 0
            while spool.hasUnread && pendingOut == 0 && rounds < 32 {
                let n = spool.read(maxBytes: StreamDriver.outLimit) { frame($0, fromSpool: true) }
                if n == 0 { break }
                try flushOut(c)
                rounds += 1
            }
            collectAcknowledgements(c)
            return nil
        } catch {
            return error
        }
    }

    func idleWait() -> Double {
        if connection == nil { return min(0.5, max(0, nextAttempt - monotonicSeconds())) }
        if !ready { return 0.002 }
        if pendingOut > 0 || spool.hasUnread { return 0.001 }
        if inflight.count > 0 { return 0.003 }
        return 0.5
    }

    func finish(deadline: Double) {
        // Deliver the queue's last batch and the spool while the deadline allows (a replay's: while the receiver
        // takes bytes, for as long as it takes them).
        var deadline = deadline, mark = progressMark
        if waitsForReceiver && ready { deadline = max(deadline, monotonicSeconds() + stallSeconds) }
        while monotonicSeconds() < deadline {
            if pendingOut == 0 && inflight.count == 0 && spool.liveRecords == 0 { break }
            pump()
            if waitsForReceiver && progressMark != mark {
                mark = progressMark
                deadline = max(deadline, monotonicSeconds() + stallSeconds)
            }
            let wait = min(max(idleWait(), 0.001), max(0, deadline - monotonicSeconds()))
            if wait > 0 { usleep(UInt32(min(wait, 0.05) * 1e6)) }
        }
        if let c = connection, ready, pendingOut == 0 {
            // Clean close: close_notify and FIN after the data, then the last acknowledgements.
            while !c.closeGracefully() && monotonicSeconds() < deadline { usleep(1000) }
            while inflight.count > 0 && monotonicSeconds() < deadline {
                collectAcknowledgements(c)
                if inflight.count > 0 { usleep(1000) }
            }
            collectAcknowledgements(c)
        }
        if let c = connection {
            c.release(reset: inflight.count > 0 || pendingOut > 0)
            connection = nil
            ready = false
        }
        requeueInflight()
        spool.persist()
        spool.close()
    }

    func fill(_ r: inout OutputReport) {
        r.sent = sent; r.spooled = spooled; r.replayed = replayed
        r.inSpool = UInt64(spool.liveRecords); r.recovered = UInt64(spool.recoveredRecords)
        r.pending = UInt64(inflight.directCount)
        r.droppedSpoolFull = droppedSpoolFull; r.droppedErrors = droppedErrors
        r.connects = connects; r.connectFailures = connectFailures; r.disconnects = disconnects
        r.connected = ready
        r.lastError = lastError
    }

    // MARK: - Connection

    private func startConnect(_ now: Double) {
        connectStarted = now
        do throws(ConnectionError) {
            // A name may have several addresses (localhost: ::1 and 127.0.0.1): try each in turn,
            // resolving again once all were tried.
            if addressIndex >= addresses.count {
                addresses = try SocketAddress.resolveAll(host: host, port: port, datagram: false)
                addressIndex = 0
            }
            let address = addresses[addressIndex]
            if let tls {
                connection = try TLSConnection(address: address, context: tls, serverName: serverName)
            } else {
                connection = try TCPConnection(address: address)
            }
            ready = false
        } catch {
            connectFailed(error)
        }
    }

    private func connectFailed(_ error: ConnectionError) {
        connection?.release(reset: true)
        connection = nil; ready = false
        connectFailures += 1
        lastError = error.description
        addressIndex += 1
        if addressIndex < addresses.count { nextAttempt = monotonicSeconds() } else { scheduleReconnect() }
    }

    private func connectionLost(_ error: ConnectionError) {
        // The peer's TCP may have acknowledged more since the last look: count it before requeueing,
        // or those messages would be sent twice.
        if let c = connection { collectAcknowledgements(c) }
        connection?.release(reset: true)
        connection = nil; ready = false
        disconnects += 1
        lastError = error.description
        requeueInflight()
        scheduleReconnect()
    }

    private func scheduleReconnect() {
        nextAttempt = monotonicSeconds() + backoff
        backoff = min(backoff * 2, StreamDriver.maxBackoff)
    }

    /// Puts every unacknowledged message back into the spool, in order. The window holds copies of
    /// them all and they are older than anything unread in the spool, so: retire the spooled ones
    /// from their old place (they are the spool's oldest uncommitted records) and write the whole
    /// window as a segment in front.
    private func requeueInflight() {
        let entries = inflight.pendingEntries()
        for e in entries where e.fromSpool { spool.commit(size: e.size) }
        spool.rewind()
        if !entries.isEmpty {
            if spool.prepend(count: entries.count, message: { inflight.bytes(of: entries[$0]) }) {
                spooled += UInt64(inflight.directCount)
            } else {
                droppedErrors += UInt64(entries.count)
                lastError = "spool: cannot write \(spool.directory)"
            }
        }
        inflight.removeAll()
        out.removeAll(keepingCapacity: true); outSent = 0
        plainQueued = 0; plainWritten = 0
    }

    // MARK: - Bytes

    private func frame(_ message: some Collection<UInt8>, fromSpool: Bool) {
        let before = out.count
        switch framing {
        case .octetCounting:
            out.append(decimal: message.count); out.append(0x20)
            out.append(contentsOf: message)
        case .lineFeed:
            // Encoders never write a raw LF; should one slip through it must not split the message.
            for b in message { out.append(b == 0x0A ? 0x20 : b) }
            out.append(0x0A)
        }
        plainQueued &+= UInt64(out.count - before)
        inflight.add(plainEnd: plainQueued, message: message, fromSpool: fromSpool)
    }

    private func flushOut(_ c: any StreamConnection) throws(ConnectionError) {
        while outSent < out.count {
            var failure: ConnectionError?
            let n: Int = out.withUnsafeBytes { raw in
                do throws(ConnectionError) { return try c.write(UnsafeRawBufferPointer(rebasing: raw[outSent...])) } catch {
                    failure = error; return 0
                }
            }
            if let failure { throw failure }
            if n == 0 { break }
            outSent += n; plainWritten &+= UInt64(n)
            socketTook.add(UInt64(n), ordering: .relaxed)
        }
        inflight.markWritten(upTo: plainWritten, transportOffset: c.transportOffset)
        if outSent == out.count {
            out.removeAll(keepingCapacity: true); outSent = 0
        } else if outSent >= 256 << 10 {
            out.removeFirst(outSent); outSent = 0
        }
    }

    private func collectAcknowledgements(_ c: any StreamConnection) {
        guard inflight.count > 0 else { return }
        let acked = c.ackedOffset()
        inflight.popAcknowledged(upTo: acked) { e in
            sent += 1
            if e.fromSpool { spool.commit(size: e.size); replayed += 1 }
        }
    }
}
