// Request/response pairing for one Modbus/TCP flow, and the flow-level anomalies that need memory:
// request flood (requests piling up without answers) and exception storm (many exceptions quickly).
//
// A response is paired with a pending request by (transaction id, unit id) — the flow is implied,
// this state lives in the flow. Among several pending requests with that key, the oldest one with the
// same function code wins; failing that, the oldest with the key (and the function mismatch is an
// anomaly). The table is bounded: it grows to `maximumPendingRequests` entries once and is then reused;
// when full, the oldest entry is evicted (reported unmatched, reason `evicted`). Request PDUs are
// copied into a per-flow arena (one fixed slot per entry) only when paired records are written, since
// only those need the request's values at response time.
import Wire

/// Bounds and thresholds of the per-flow Modbus state (named configuration values).
public struct ModbusLimits: Sendable {
    /// Pending requests kept per flow before the oldest is evicted.
    public var maximumPendingRequests = 64
    /// A request unanswered for this long (packet time) is reported as timed out.
    public var responseTimeoutMicroseconds: Int64 = 10_000_000
    /// This many requests in a row without any response is a request flood.
    public var requestFloodThreshold = 100
    /// This many exception responses within `exceptionStormWindowMicroseconds` is an exception storm.
    public var exceptionStormThreshold = 10
    /// The exception-storm window.
    public var exceptionStormWindowMicroseconds: Int64 = 5_000_000

    /// The defaults.
    public static let `default` = ModbusLimits()
    /// Creates the defaults.
    public init() {}
}

/// One request waiting for its response.
public struct PendingRequest: Sendable {
    /// MBAP transaction id.
    public var transactionID: UInt16 = 0
    /// MBAP unit id.
    public var unitID: UInt8 = 0
    /// The parsed request.
    public var pdu = ModbusPDU()
    /// The request's classification.
    public var classification = ModbusClassification(access: .read, function: "", subfunction: -1, subfunctionName: "")
    /// Packet that completed the request.
    public var frame: UInt64 = 0
    /// Its time.
    public var time: PacketTime = .zero
    /// Insertion order (oldest = smallest).
    public var sequence: UInt64 = 0
    /// Request PDU bytes stored in the arena slot (0 when not stored).
    public var storedLength = 0
    /// Whether the entry is live.
    public var inUse = false
}

/// Per-flow pairing state.
public struct ModbusSession: Sendable {
    /// The limits in force.
    public var limits: ModbusLimits
    /// The table (grows to `limits.maximumPendingRequests`, then reused).
    public private(set) var entries: [PendingRequest] = []
    /// Stored request PDUs, `slotSize` bytes per entry.
    public private(set) var arena: [UInt8] = []
    /// Live entries.
    public private(set) var pendingCount = 0
    /// Bytes of a request PDU kept per slot (the spec's largest PDU is 253 bytes).
    @inlinable public static var slotSize: Int { 256 }

    private var sequence: UInt64 = 0
    private var oldestTime: PacketTime? = nil

    /// Requests since the last response.
    public private(set) var requestsSinceResponse = 0
    private var floodReported = false
    private var exceptionWindowStart = PacketTime.zero
    private var exceptionsInWindow = 0
    private var stormReported = false

    /// Creates an empty session.
    public init(limits: ModbusLimits = .default) { self.limits = limits }

    // MARK: - Table

    /// The index of the oldest entry when the table is full (the caller reports it, then removes it).
    public func evictionCandidate() -> Int? {
        guard pendingCount >= max(1, limits.maximumPendingRequests) else { return nil }
        return oldestIndex()
    }

    /// Adds a request; `storing` copies its PDU bytes for the paired record. Returns the entry index.
    @discardableResult
    public mutating func insert(transactionID: UInt16, unitID: UInt8, pdu: ModbusPDU,
                                classification: ModbusClassification, bytes: ByteView, storing: Bool,
                                frame: UInt64, time: PacketTime) -> Int {
        var index = -1
        if pendingCount < entries.count {
            for i in entries.indices where !entries[i].inUse { index = i; break }
        }
        if index < 0 {
            index = entries.count
            entries.append(PendingRequest())
        }
        sequence &+= 1
        var e = PendingRequest()
        e.transactionID = transactionID; e.unitID = unitID; e.pdu = pdu; e.classification = classification
        e.frame = frame; e.time = time; e.sequence = sequence; e.inUse = true
        if storing {
            let needed = (index + 1) * ModbusSession.slotSize
            if arena.count < needed { arena.append(contentsOf: repeatElement(0, count: needed - arena.count)) }
            let n = min(bytes.count, ModbusSession.slotSize)
            let base = index * ModbusSession.slotSize
            for i in 0..<n { arena[base + i] = bytes.u8(i) }
            e.storedLength = n
        }
        entries[index] = e
        pendingCount += 1
        if let t = oldestTime { if time < t { oldestTime = time } } else { oldestTime = time }
        return index
    }

    /// Finds the pending request a response answers: same key, preferring the same function code.
    /// Returns the index and whether the function codes agree.
    public func match(transactionID: UInt16, unitID: UInt8, functionCode: FunctionCode) -> (index: Int, sameFunction: Bool)? {
        guard pendingCount > 0 else { return nil }
        var best = -1, bestSame = false
        for i in entries.indices where entries[i].inUse
            && entries[i].transactionID == transactionID && entries[i].unitID == unitID {
            let same = entries[i].pdu.functionCode == functionCode
            if best < 0 || (same && !bestSame) || (same == bestSame && entries[i].sequence < entries[best].sequence) {
                best = i; bestSame = same
            }
        }
        return best < 0 ? nil : (best, bestSame)
    }

    /// Frees an entry.
    public mutating func remove(_ index: Int) {
        guard entries.indices.contains(index), entries[index].inUse else { return }
        entries[index].inUse = false
        pendingCount -= 1
        recomputeOldest()
    }

    /// The index of an entry older than the response timeout at `now`, if any.
    public func expired(at now: PacketTime) -> Int? {
        guard pendingCount > 0, let t = oldestTime, now.microseconds(since: t) > limits.responseTimeoutMicroseconds else { return nil }
        var best = -1
        for i in entries.indices where entries[i].inUse && now.microseconds(since: entries[i].time) > limits.responseTimeoutMicroseconds {
            if best < 0 || entries[i].sequence < entries[best].sequence { best = i }
        }
        return best < 0 ? nil : best
    }

    /// The oldest live entry.
    public func oldestIndex() -> Int? {
        var best = -1
        for i in entries.indices where entries[i].inUse {
            if best < 0 || entries[i].sequence < entries[best].sequence { best = i }
        }
        return best < 0 ? nil : best
    }

    private mutating func recomputeOldest() {
        oldestTime = nil
        guard pendingCount > 0 else { return }
        for i in entries.indices where entries[i].inUse {
            let t = entries[i].time
            if let o = oldestTime { if t < o { oldestTime = t } } else { oldestTime = t }
        }
    }

    // MARK: - Flood and storm

    /// Counts a request; true exactly when the run of unanswered requests reaches the flood threshold.
    public mutating func noteRequest() -> Bool {
        requestsSinceResponse += 1
        if !floodReported && requestsSinceResponse >= limits.requestFloodThreshold { floodReported = true; return true }
        return false
    }

    /// Counts a response; for an exception, true exactly when the window's count reaches the storm threshold.
    public mutating func noteResponse(exception: Bool, at now: PacketTime) -> Bool {
        requestsSinceResponse = 0; floodReported = false
        guard exception else { return false }
        if exceptionsInWindow == 0 || now.microseconds(since: exceptionWindowStart) > limits.exceptionStormWindowMicroseconds {
            exceptionWindowStart = now; exceptionsInWindow = 0; stormReported = false
        }
        exceptionsInWindow += 1
        if !stormReported && exceptionsInWindow >= limits.exceptionStormThreshold { stormReported = true; return true }
        return false
    }
}
