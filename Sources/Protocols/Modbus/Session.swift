// Request/response pairing for one Modbus/TCP flow, and the flow-level anomalies that need memory:
// request flood (requests piling up without answers) and exception storm (many exceptions quickly).
//
// A response is paired with a pending request by (transaction id, unit id) — the flow is implied,
// this state lives in the flow. Among several pending requests with that key, the oldest one with the
// same function code wins; failing that, the oldest with the key (and the function mismatch is an
// anomaly). The table is bounded: it grows to `maximumPendingRequests` entries once and is then reused;
// when full, the oldest entry is evicted (reported unmatched, reason `evicted`).
//
// Layout, for the per-PDU cost: a polling client has one request outstanding at a time, so entry 0 lives
// inline in the session (in the flow's dissector state, no other block to fetch; what a polling exchange
// reads and writes of it in the state's first cache line, the rest in the second) and only entries
// 1... (pipelined requests) live in an array. An entry holds what pairing, expiry, the fit check and the
// classification need, not the parsed PDU. The parsed request PDU (`requests`) and its bytes (`arena`,
// one fixed slot per entry) are kept only when records are written, since only those need the request's
// values at response time. Those, entries 1... and non-default limits live behind one reference allocated at
// first need (`ModbusSessionTables`); the exception window stays inline (exception responses are normal plant
// traffic).
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

/// One request waiting for its response: its key, when it came, and the request fields that the
/// response is checked against and the classification is made from.
public struct PendingRequest: Sendable {
    // 64 bytes, one cache line: the time first, so that the 16-bit fields fill the 4 bytes behind its 12.

    /// Its time (the epoch, as `PacketTime.zero`, built in place: reading that global cost a once-check wherever an
    /// entry is made).
    public var time = PacketTime(seconds: 0, microsecondsInRange: 0)
    /// MBAP transaction id.
    public var transactionID: UInt16 = 0
    /// Request PDU bytes stored in the arena slot (0 when not stored).
    public var storedLength: Int16 = 0
    /// MBAP unit id.
    public var unitID: UInt8 = 0
    /// The request's function code byte as sent.
    public var rawFunctionCode: UInt8 = 0
    /// Whether the entry is live.
    public var inUse = false
    /// FC 43 MEI type (-1: none).
    public var meiType: Int16 = -1
    /// The request's address (-1: none).
    public var address: Int32 = -1
    /// The request's quantity (-1: none).
    public var quantity: Int32 = -1
    /// FC 5/6 value (-1: none).
    public var value: Int32 = -1
    /// FC 8 sub-function or FC 90 UMAS code (-1: none).
    public var subfunction: Int32 = -1
    /// FC 22 AND mask (-1: none).
    public var andMask: Int32 = -1
    /// FC 22 OR mask (-1: none).
    public var orMask: Int32 = -1
    /// Insertion order (oldest = smallest).
    public var sequence: UInt64 = 0
    /// Packet that completed the request.
    public var frame: UInt64 = 0

    /// An empty entry.
    public init() {}

    /// The request's function code (exception bit cleared).
    @inlinable public var functionCode: FunctionCode { FunctionCode(rawValue: rawFunctionCode) }

    /// The request's classification (what `ModbusClassification.of` gives for the request PDU).
    public var classification: ModbusClassification {
        ModbusClassification.of(functionCode: functionCode, subfunction: subfunction, meiType: meiType, direction: .request)
    }
}

/// What a flow's session needs only for pipelined requests, records or limits other than the
/// defaults: behind one reference, allocated at the first need, so that a polling flow's state holds (and its set-up
/// and tear-down touch) none of it.
final class ModbusSessionTables: @unchecked Sendable {
    // Only the flow's own dissector (one thread) reaches it: no dynamic exclusivity checks.
    @exclusivity(unchecked) var limits: ModbusLimits
    /// Entry 1, inline: a flow with two requests in flight allocates this object and nothing more (an array for
    /// entries 1... was the allocation this object replaced).
    @exclusivity(unchecked) var second = PendingRequest()
    /// Entries 2...
    @exclusivity(unchecked) var beyondSecond: [PendingRequest] = []

    /// Entry `index` (1...).
    @inline(__always) func entry(_ index: Int) -> PendingRequest { index == 1 ? second : beyondSecond[index - 2] }

    /// Sets entry `index` (1...; at most one past those made so far).
    func store(_ e: PendingRequest, at index: Int) {
        if index == 1 { second = e; return }
        if index - 2 < beyondSecond.count { beyondSecond[index - 2] = e; return }
        // Room for two at first (then doubling): with entry 1 inline, as few allocations as one array for all
        // entries 1... took, whatever their number.
        if beyondSecond.isEmpty { beyondSecond.reserveCapacity(2) }
        beyondSecond.append(e)
    }

    /// Sets entry `index`'s stored length (1...).
    func setStoredLength(_ n: Int16, at index: Int) {
        if index == 1 { second.storedLength = n } else { beyondSecond[index - 2].storedLength = n }
    }

    /// Frees entry `index` (1...).
    func free(_ index: Int) {
        if index == 1 { second.inUse = false } else { beyondSecond[index - 2].inUse = false }
    }
    // What records keep of each entry's request (`insert(... pdu:)`, `storing`): entry 0's parsed PDU and bytes inline,
    // so that a recording flow with one request at a time allocates this object and nothing more (as arrays for
    // every entry, the records' two arrays were as many allocations as this object replaced).
    /// The parsed request PDU of entry 0 (meaningful when `keptRequests > 0`).
    @exclusivity(unchecked) var firstRequest = ModbusPDU()
    /// The parsed request PDUs of entries 1... (`keptRequests - 1` of them, or more).
    @exclusivity(unchecked) var moreRequests: [ModbusPDU] = []
    /// Entries whose parsed request is kept: `request(i)` answers for `i < keptRequests`.
    @exclusivity(unchecked) var keptRequests = 0
    /// Entry 0's stored request bytes, `ModbusSession.slotSize` of them.
    @exclusivity(unchecked) var firstBytes = SIMD32<UInt64>()
    /// Entries 1...'s stored request bytes, `slotSize` per entry.
    @exclusivity(unchecked) var moreBytes: [UInt8] = []
    /// Entries with room for stored bytes (the arena's slots).
    @exclusivity(unchecked) var storedSlots = 0

    init(limits: ModbusLimits) { self.limits = limits }

    /// A copy (for a session copied before it changes: the session is a value).
    init(copying t: ModbusSessionTables) {
        limits = t.limits
        second = t.second; beyondSecond = t.beyondSecond
        firstRequest = t.firstRequest; moreRequests = t.moreRequests; keptRequests = t.keptRequests
        firstBytes = t.firstBytes; moreBytes = t.moreBytes; storedSlots = t.storedSlots
    }
}

/// Per-flow pairing state.
public struct ModbusSession: Sendable {
    // 112 bytes in two parts. The first 56 (`quietBytes`; with the dissector's 8 in front of the session, the state's
    // first cache line) hold everything a polling delivery with records off reads or writes: entry 0's key, time,
    // frame, sequence and the fields a common response is checked against, and the counters. The rest (the second
    // line) holds what only rare paths need: the insertion counter, the oldest time when entry 0 is not the only
    // pending request, the exception window, `tables`, the table size and entry 0's other request fields (none for
    // a common request: `Flags.coldFirstPending` says when they must be written). With entry 0 as one 64-byte
    // `PendingRequest` and the counters behind it, a request wrote the first line and every delivery read the second.

    // Entry 0, the fields a quiet delivery touches.
    private var firstSeconds: Int64 = 0
    private var firstFrame: UInt64 = 0
    /// Entry 0's insertion order. A quiet `insertFirst` (nothing pending) gives it 0 without reading the counter: only
    /// the order among live entries matters, and every entry filed while it is live gets 1 or more.
    private var firstSequence: UInt64 = 0
    private var firstMicroseconds: Int32 = 0
    private var firstAddress: Int32 = -1
    private var firstQuantity: Int32 = -1
    private var firstValue: Int32 = -1
    private var storedPendingCount: Int32 = 0
    private var storedRequestsSinceResponse: Int32 = 0
    private var firstTransactionID: UInt16 = 0
    private var firstUnitID: UInt8 = 0
    private var firstRawFunctionCode: UInt8 = 0
    private var firstInUse = false
    private var floodReported = false
    private var stormReported = false
    private var flags: Flags = .coldFirstPending

    // The second line.
    /// The insertion counter (entries filed by `insert` take the next value).
    private var sequence: UInt64 = 0
    /// Smallest `time` of the live entries, in microseconds, when entry 0 is not the only one (`oldestMicroseconds`).
    private var storedOldestMicroseconds = Int64.max
    private var exceptionWindowStart: Int64 = 0
    /// Everything else; nil until needed (`mutableTables`). (In the first line, in place of entry 0's sequence, it
    /// saved the miss destroying a released state takes here, but initialising the fresh state then missed on this
    /// line's write instead, and the quiet path took 2 instructions more a packet.)
    private var tables: ModbusSessionTables?
    /// Entries made so far (the table grows to `limits.maximumPendingRequests`, then is reused).
    private var storedTableSize: Int32 = 0
    /// Exceptions in the current window (counting stops at 2^31 - 1).
    private var exceptionsInWindow: Int32 = 0
    // Entry 0's other fields: a common request has none (-1, nothing stored).
    private var firstSubfunction: Int32 = -1
    private var firstAndMask: Int32 = -1
    private var firstOrMask: Int32 = -1
    private var firstStoredLength: Int16 = 0
    private var firstMeiType: Int16 = -1

    /// One-bit facts read on the quiet path in place of second-line fields.
    struct Flags: OptionSet, Sendable {
        let rawValue: UInt8
        /// The limits were set (`tables` holds them); otherwise they are the defaults.
        static let customLimits = Flags(rawValue: 1)
        /// The next `insertFirst` must write the second line: entry 0's other fields are not all none, or the
        /// table size is still 0.
        static let coldFirstPending = Flags(rawValue: 2)
    }

    /// Bytes from the session's start that the quiet path reads and writes (the first part).
    static var quietBytes: Int { MemoryLayout<ModbusSession>.offset(of: \ModbusSession.sequence)! }

    /// Live entries.
    public private(set) var pendingCount: Int {
        @inline(__always) get { Int(storedPendingCount) }
        @inline(__always) set { storedPendingCount = Int32(truncatingIfNeeded: newValue) }
    }
    /// Requests since the last response (wraps after 2^31 - 1).
    public private(set) var requestsSinceResponse: Int {
        @inline(__always) get { Int(storedRequestsSinceResponse) }
        @inline(__always) set { storedRequestsSinceResponse = Int32(truncatingIfNeeded: newValue) }
    }
    private var tableSize: Int {
        @inline(__always) get { Int(storedTableSize) }
        @inline(__always) set { storedTableSize = Int32(truncatingIfNeeded: newValue) }
    }
    /// Smallest `time` of the live entries, in microseconds (`Int64.max`: none). Entry 0's own time when it is the
    /// only one (the polling case: no second-line read), else the stored value, which `insert` and `remove` keep.
    private var oldestMicroseconds: Int64 {
        @inline(__always) mutating get {
            if storedPendingCount == 1 && firstInUse { return firstOnlyMicroseconds }
            return storedOldestMicrosecondsOrNone()
        }
    }
    /// Entry 0's time in microseconds.
    private var firstOnlyMicroseconds: Int64 { @inline(__always) mutating get { firstSeconds &* 1_000_000 &+ Int64(firstMicroseconds) } }
    /// `oldestMicroseconds` when entry 0 is not the only entry. Out of line, here and for the limits below, so that
    /// the compiler cannot load the second-line field ahead of the test that says it is needed (as a select, it
    /// did: a second line read by every delivery again), and `mutating` so that a call takes the session in place
    /// (a non-mutating one copied it to the stack first).
    @inline(never) private mutating func storedOldestMicrosecondsOrNone() -> Int64 {
        storedPendingCount == 0 ? .max : storedOldestMicroseconds
    }
    /// The limits in `tables` (`limits` when `Flags.customLimits` is set).
    @inline(never) private mutating func customLimits() -> ModbusLimits { tables?.limits ?? ModbusLimits() }

    /// The limits in force.
    public var limits: ModbusLimits {
        get { tables?.limits ?? ModbusLimits() }
        set { mutableTables().limits = newValue; flags.insert(.customLimits) }
    }
    /// `limits.responseTimeoutMicroseconds`, read per PDU: the default without reaching `tables`.
    var responseTimeoutMicroseconds: Int64 {
        @inline(__always) mutating get {
            flags.contains(.customLimits) ? customLimits().responseTimeoutMicroseconds : ModbusLimits().responseTimeoutMicroseconds
        }
    }
    /// `limits.requestFloodThreshold`, read per request.
    private var requestFloodThreshold: Int {
        @inline(__always) mutating get {
            flags.contains(.customLimits) ? customLimits().requestFloodThreshold : ModbusLimits().requestFloodThreshold
        }
    }

    /// Stored request PDUs, `slotSize` bytes per entry (a copy, for inspection).
    public var arena: [UInt8] {
        guard let t = tables, t.storedSlots > 0 else { return [] }
        return withUnsafeBytes(of: t.firstBytes) { Array($0) } + t.moreBytes
    }

    /// Calls `body` with the stored bytes of entry `index`'s request (`entry(index).storedLength` of them).
    func withStoredRequest<R>(_ index: Int, _ body: (ByteView) -> R) -> R {
        let length = Int(entry(index).storedLength)
        guard let t = tables, length > 0 else { return body(.empty) }
        if index == 0 { return withUnsafeBytes(of: t.firstBytes) { body(ByteView($0).prefix(length)) } }
        return t.moreBytes.withUnsafeBytes { body(ByteView($0).slice(from: (index - 1) * ModbusSession.slotSize, length: length)) }
    }
    /// Bytes of a request PDU kept per slot (the spec's largest PDU is 253 bytes).
    @inlinable public static var slotSize: Int { 256 }

    /// Creates an empty session.
    public init(limits: ModbusLimits) { tables = ModbusSessionTables(limits: limits); flags.insert(.customLimits) }

    /// An empty session with the default limits (nothing allocated).
    public init() {}

    /// `tables`, created (or copied, when this session's copy shares them) for a change.
    @inline(never) private mutating func mutableTables() -> ModbusSessionTables {
        if tables == nil {
            tables = ModbusSessionTables(limits: ModbusLimits())
        } else if !isKnownUniquelyReferenced(&tables) {
            tables = ModbusSessionTables(copying: tables!)
        }
        return tables!
    }

    // MARK: - Table

    /// The table: every entry made so far, live or free (a copy, for inspection).
    public var entries: [PendingRequest] { (0..<tableSize).map { entry($0) } }

    /// Entry `index` of the table.
    @inline(__always) public func entry(_ index: Int) -> PendingRequest { index == 0 ? first : tables!.entry(index) }

    /// Entry 0, from its two parts.
    private var first: PendingRequest {
        get {
            var e = PendingRequest()
            e.time = PacketTime(seconds: firstSeconds, microsecondsInRange: firstMicroseconds)
            e.transactionID = firstTransactionID; e.storedLength = firstStoredLength; e.unitID = firstUnitID
            e.rawFunctionCode = firstRawFunctionCode; e.inUse = firstInUse; e.meiType = firstMeiType
            e.address = firstAddress; e.quantity = firstQuantity; e.value = firstValue; e.subfunction = firstSubfunction
            e.andMask = firstAndMask; e.orMask = firstOrMask; e.sequence = firstSequence; e.frame = firstFrame
            return e
        }
        set {
            firstSeconds = newValue.time.seconds; firstMicroseconds = newValue.time.microseconds
            firstTransactionID = newValue.transactionID; firstUnitID = newValue.unitID
            firstRawFunctionCode = newValue.rawFunctionCode; firstInUse = newValue.inUse
            firstAddress = newValue.address; firstQuantity = newValue.quantity; firstValue = newValue.value
            firstSequence = newValue.sequence; firstFrame = newValue.frame
            firstMeiType = newValue.meiType; firstSubfunction = newValue.subfunction
            firstAndMask = newValue.andMask; firstOrMask = newValue.orMask; firstStoredLength = newValue.storedLength
            if Self.hasOtherFields(meiType: firstMeiType, subfunction: firstSubfunction, andMask: firstAndMask,
                                   orMask: firstOrMask, storedLength: firstStoredLength) {
                flags.insert(.coldFirstPending)
            }
        }
    }

    /// Whether entry fields outside the quiet part are not all none.
    @inline(__always)
    private static func hasOtherFields(meiType: Int16, subfunction: Int32, andMask: Int32, orMask: Int32, storedLength: Int16) -> Bool {
        meiType != -1 || subfunction != -1 || andMask != -1 || orMask != -1 || storedLength != 0
    }

    /// The parsed request PDU of entry `index`, when it was kept (records on).
    public func request(_ index: Int) -> ModbusPDU? {
        guard let t = tables, index < t.keptRequests else { return nil }
        return index == 0 ? t.firstRequest : t.moreRequests[index - 1]
    }

    /// The time of entry `index` (entry 0's from the quiet part).
    @inline(__always) mutating func entryTime(_ index: Int) -> PacketTime {
        index == 0 ? PacketTime(seconds: firstSeconds, microsecondsInRange: firstMicroseconds) : tables!.entry(index).time
    }

    @inline(__always) private func inUse(_ index: Int) -> Bool { index == 0 ? firstInUse : tables!.entry(index).inUse }
    @inline(__always) private func sequence(_ index: Int) -> UInt64 { index == 0 ? firstSequence : tables!.entry(index).sequence }

    // The queries below (and the getters above that the quiet path reads) are `mutating` although they change
    // nothing: the dissector calls them on its stored session for every PDU, and a non-mutating call on a stored
    // struct of this size loads a copy of the whole session first (a 200-byte memcpy per call, measured); a mutating
    // call works on it in place.

    /// The index of the oldest entry when the table is full (the caller reports it, then removes it).
    @inline(__always) public mutating func evictionCandidate() -> Int? {
        let maximum = tables?.limits.maximumPendingRequests ?? ModbusLimits().maximumPendingRequests
        guard pendingCount >= max(1, maximum) else { return nil }
        return oldestIndex()
    }

    /// Adds a request: its key, its fields and when it came. `pdu` is the parsed request, kept for the records
    /// (nil: not kept); `storing` copies its PDU bytes for the paired record. Returns the entry index.
    @discardableResult
    public mutating func insert(transactionID: UInt16, unitID: UInt8, request pdu: ModbusPDU, bytes: ByteView,
                                keeping: Bool, storing: Bool, frame: UInt64, time: PacketTime) -> Int {
        insert(transactionID: transactionID, unitID: unitID, fields: pdu.fields, keeping: keeping ? pdu : nil, bytes: bytes,
               storing: storing, frame: frame, time: time)
    }

    @discardableResult @inline(__always)
    mutating func insert(transactionID: UInt16, unitID: UInt8, fields q: ModbusFields, keeping pdu: ModbusPDU?, bytes: ByteView,
                         storing: Bool, frame: UInt64, time: PacketTime) -> Int {
        // The lowest free index: entry 0 whenever nothing is pending.
        var index = 0
        if pendingCount > 0 {
            index = tableSize
            if pendingCount < tableSize {
                for i in 0..<tableSize where !inUse(i) { index = i; break }
            }
        }
        let oldest = oldestMicroseconds
        sequence &+= 1
        if index == 0 {
            var e = PendingRequest()
            Self.fill(&e, transactionID: transactionID, unitID: unitID, request: q, frame: frame, time: time, sequence: sequence)
            first = e
        } else {
            var e = PendingRequest()
            Self.fill(&e, transactionID: transactionID, unitID: unitID, request: q, frame: frame, time: time, sequence: sequence)
            mutableTables().store(e, at: index)
        }
        if let pdu {
            // Entries below `index` never kept read as `ModbusPDU()` (as the padding of one array for all did).
            let t = mutableTables()
            if index == 0 {
                t.firstRequest = pdu
            } else {
                if t.moreRequests.count < index { t.moreRequests.append(contentsOf: repeatElement(ModbusPDU(), count: index - t.moreRequests.count)) }
                t.moreRequests[index - 1] = pdu
            }
            if t.keptRequests <= index { t.keptRequests = index + 1 }
        }
        if storing {
            let t = mutableTables()
            let n = min(bytes.count, ModbusSession.slotSize)
            if index == 0 {
                withUnsafeMutableBytes(of: &t.firstBytes) { slot in for i in 0..<n { slot[i] = bytes.u8(i) } }
            } else {
                let needed = index * ModbusSession.slotSize
                if t.moreBytes.count < needed { t.moreBytes.append(contentsOf: repeatElement(0, count: needed - t.moreBytes.count)) }
                let base = (index - 1) * ModbusSession.slotSize
                for i in 0..<n { t.moreBytes[base + i] = bytes.u8(i) }
            }
            if t.storedSlots <= index { t.storedSlots = index + 1 }
            if index == 0 {
                firstStoredLength = Int16(n)
                if n != 0 { flags.insert(.coldFirstPending) }
            } else {
                t.setStoredLength(Int16(n), at: index)
            }
        }
        if index == tableSize { tableSize += 1 }
        pendingCount += 1
        let t = time.totalMicroseconds
        storedOldestMicroseconds = t < oldest ? t : oldest
        return index
    }

    /// `insert` of a request when nothing is pending (the polling case): it goes to entry 0. Only the session's quiet
    /// part is written (for a common request, once the table has its first entry): entry 0 takes sequence 0 (it is
    /// the oldest live entry while it lives), and the oldest time is its own while it is the only entry.
    @inline(__always)
    mutating func insertFirst(transactionID: UInt16, unitID: UInt8, fields q: ModbusFields, frame: UInt64, time: PacketTime) {
        firstSeconds = time.seconds; firstMicroseconds = time.microseconds; firstFrame = frame; firstSequence = 0
        firstTransactionID = transactionID; firstUnitID = unitID; firstRawFunctionCode = q.rawFunctionCode; firstInUse = true
        firstAddress = q.address; firstQuantity = q.quantity; firstValue = q.value
        if flags.contains(.coldFirstPending)
            || Self.hasOtherFields(meiType: q.meiType, subfunction: q.subfunction, andMask: q.andMask, orMask: q.orMask, storedLength: 0) {
            setFirstOtherFields(q)
        }
        pendingCount = 1
    }

    /// `insertFirst`'s second-line writes: entry 0's other fields, and the table's first entry.
    @inline(never)
    private mutating func setFirstOtherFields(_ q: ModbusFields) {
        firstMeiType = q.meiType; firstSubfunction = q.subfunction; firstAndMask = q.andMask; firstOrMask = q.orMask
        firstStoredLength = 0
        if tableSize == 0 { tableSize = 1 }
        if Self.hasOtherFields(meiType: q.meiType, subfunction: q.subfunction, andMask: q.andMask, orMask: q.orMask, storedLength: 0) {
            flags.insert(.coldFirstPending)
        } else {
            flags.remove(.coldFirstPending)
        }
    }

    /// Sets every field of entry `e` (a live entry for the request `q`).
    @inline(__always)
    private static func fill(_ e: inout PendingRequest, transactionID: UInt16, unitID: UInt8, request q: ModbusFields,
                             frame: UInt64, time: PacketTime, sequence: UInt64) {
        e.transactionID = transactionID; e.unitID = unitID; e.rawFunctionCode = q.rawFunctionCode; e.inUse = true
        e.storedLength = 0; e.meiType = q.meiType
        e.address = q.address; e.quantity = q.quantity; e.value = q.value
        e.andMask = q.andMask; e.orMask = q.orMask; e.subfunction = q.subfunction
        e.frame = frame; e.time = time; e.sequence = sequence
    }

    /// Finds the pending request a response answers: same key, preferring the same function code.
    /// Returns the index and whether the function codes agree.
    @inline(__always)
    public mutating func match(transactionID: UInt16, unitID: UInt8, functionCode: FunctionCode) -> (index: Int, sameFunction: Bool)? {
        guard pendingCount > 0 else { return nil }
        // One request outstanding, in entry 0: the polling case.
        if pendingCount == 1 && firstInUse {
            guard firstTransactionID == transactionID && firstUnitID == unitID else { return nil }
            return (0, FunctionCode(rawValue: firstRawFunctionCode) == functionCode)
        }
        return matchAny(transactionID: transactionID, unitID: unitID, functionCode: functionCode)
    }

    /// Whether a response with this key and function code (exception bit cleared) answers entry 0, the only
    /// pending request, with the same function: what `match` answers with `(0, true)` in the polling case.
    @inline(__always)
    mutating func answersOnlyPending(transactionID: UInt16, unitID: UInt8, functionCode: UInt8) -> Bool {
        pendingCount == 1 && firstInUse && firstTransactionID == transactionID && firstUnitID == unitID
            && FunctionCode(rawValue: firstRawFunctionCode) == FunctionCode(rawValue: functionCode)
    }

    /// Entry 0 as a common response's fit check reads it (`ModbusDissector.misfit` for FC 1–6, 15, 16: the function,
    /// address, quantity and value), from the quiet part only; its other fields read as none.
    var firstEntryForCommonFit: PendingRequest {
        @inline(__always) mutating get {
            var e = PendingRequest()
            e.rawFunctionCode = firstRawFunctionCode; e.address = firstAddress; e.quantity = firstQuantity; e.value = firstValue
            return e
        }
    }

    private mutating func matchAny(transactionID: UInt16, unitID: UInt8, functionCode: FunctionCode) -> (index: Int, sameFunction: Bool)? {
        var best = -1, bestSame = false, bestSequence: UInt64 = 0
        for i in 0..<tableSize {
            let e = entry(i)
            guard e.inUse && e.transactionID == transactionID && e.unitID == unitID else { continue }
            let same = e.functionCode == functionCode
            if best < 0 || (same && !bestSame) || (same == bestSame && e.sequence < bestSequence) {
                best = i; bestSame = same; bestSequence = e.sequence
            }
        }
        return best < 0 ? nil : (best, bestSame)
    }

    /// Frees an entry.
    @inline(__always) public mutating func remove(_ index: Int) {
        // Entry 0 the only live one (what a flow's end usually finds): without reading the table size.
        if index == 0 && pendingCount == 1 && firstInUse { removeOnlyPending(); return }
        guard index >= 0 && index < tableSize && inUse(index) else { return }
        if index == 0 { firstInUse = false } else { mutableTables().free(index) }
        pendingCount -= 1
        if pendingCount > 0 { recomputeOldest() }
    }

    /// `remove(0)` when entry 0 is the only pending request.
    @inline(__always) mutating func removeOnlyPending() {
        firstInUse = false
        pendingCount = 0
    }

    /// Whether some entry is older than the response timeout at `now` (`expired(at:)` is not nil).
    @inline(__always) mutating func anyExpired(at now: PacketTime) -> Bool {
        now.totalMicroseconds &- oldestMicroseconds > responseTimeoutMicroseconds
    }

    /// The index of an entry older than the response timeout at `now`, if any.
    @inline(__always) public mutating func expired(at now: PacketTime) -> Int? {
        guard pendingCount > 0, now.totalMicroseconds &- oldestMicroseconds > responseTimeoutMicroseconds else { return nil }
        return oldestExpired(at: now)
    }

    private mutating func oldestExpired(at now: PacketTime) -> Int? {
        var best = -1, bestSequence: UInt64 = 0
        for i in 0..<tableSize {
            let e = entry(i)
            if e.inUse && now.microseconds(since: e.time) > responseTimeoutMicroseconds && (best < 0 || e.sequence < bestSequence) {
                best = i; bestSequence = e.sequence
            }
        }
        return best < 0 ? nil : best
    }

    /// The oldest live entry.
    public mutating func oldestIndex() -> Int? {
        // Nothing pending, or entry 0 alone (a flow's end, usually): without reading the table size.
        if pendingCount == 0 { return nil }
        if pendingCount == 1 && firstInUse { return 0 }
        var best = -1, bestSequence: UInt64 = 0
        for i in 0..<tableSize where inUse(i) {
            let s = sequence(i)
            if best < 0 || s < bestSequence { best = i; bestSequence = s }
        }
        return best < 0 ? nil : best
    }

    private mutating func recomputeOldest() {
        var oldest = Int64.max
        for i in 0..<tableSize {
            let e = entry(i)
            if e.inUse && e.time.totalMicroseconds < oldest { oldest = e.time.totalMicroseconds }
        }
        storedOldestMicroseconds = oldest
    }

    // MARK: - Flood and storm

    /// Counts a request; true exactly when the run of unanswered requests reaches the flood threshold.
    @inline(__always) public mutating func noteRequest() -> Bool {
        // Reset by every response; 32 bits wrap after 2^31 - 1 requests without one, long after any flood threshold
        // but an absurd one was reached (a compare to stop there cost two instructions a request).
        storedRequestsSinceResponse &+= 1
        if !floodReported && requestsSinceResponse >= requestFloodThreshold { floodReported = true; return true }
        return false
    }

    /// Counts a response; for an exception, true exactly when the window's count reaches the storm threshold.
    @inline(__always) public mutating func noteResponse(exception: Bool, at now: PacketTime) -> Bool {
        requestsSinceResponse = 0; floodReported = false
        guard exception else { return false }
        return noteException(at: now)
    }

    /// `noteResponse(exception: false, at:)`: a normal response ends the run of unanswered requests.
    @inline(__always) mutating func noteResponse() {
        requestsSinceResponse = 0; floodReported = false
    }

    private mutating func noteException(at now: PacketTime) -> Bool {
        let t = now.totalMicroseconds
        let window = tables?.limits.exceptionStormWindowMicroseconds ?? ModbusLimits().exceptionStormWindowMicroseconds
        if exceptionsInWindow == 0 || t &- exceptionWindowStart > window {
            exceptionWindowStart = t; exceptionsInWindow = 0; stormReported = false
        }
        if exceptionsInWindow < Int32.max { exceptionsInWindow += 1 }
        let threshold = tables?.limits.exceptionStormThreshold ?? ModbusLimits().exceptionStormThreshold
        if !stormReported && Int(exceptionsInWindow) >= threshold { stormReported = true; return true }
        return false
    }
}
