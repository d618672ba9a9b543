import Wire
import Records

/// Up to 16 bytes of a name (PI service, block name) kept inline, so that pending requests stay
/// plain values without heap storage.
struct ShortName {
    private var storage: (UInt64, UInt64) = (0, 0)
    private(set) var count: Int = 0

    init() {}

    /// Copies the first 16 bytes of `v`.
    init(_ v: ByteView) {
        count = min(v.count, 16)
        withUnsafeMutableBytes(of: &storage) { dst in
            for i in 0..<count { dst[i] = v.u8(i) }
        }
    }

    /// Writes the name as a JSON string value.
    func write(to j: inout JSONWriter) {
        var s = storage
        let n = count
        withUnsafeBytes(of: &s) { raw in j.string(bytes: ByteView(raw).prefix(n)) }
    }
}

/// A request (Job or userdata request) waiting for its ack, with what the transaction record needs.
struct PendingRequest {
    var used = false
    var side: FlowSide = .initiator
    var pduReference: UInt16 = 0
    var userdata = false
    var frame: UInt64 = 0
    var time: PacketTime = .zero
    var functionCode: UInt8 = 0
    var group: UInt8 = 0
    var subfunction: UInt8 = 0
    var function: StaticString = ""
    var access: AccessClass = .response
    var itemCount = 0
    var area: Int16 = -1
    var dbNumber: Int32 = -1
    var address: Int64 = -1
    var quantity: Int64 = 0
    var szlID: Int32 = -1
    var szlIndex: Int32 = -1
    var service = ShortName()
    var blockType: Int16 = -1
    var blockNumber: Int32 = -1
}

/// What the answer to a request said, for the transaction record.
struct S7ResponseSummary {
    var frame: UInt64
    var time: PacketTime
    var rosctr: UInt8
    var errorClass: UInt8 = 0
    var errorCode: UInt8 = 0
    var userdataErrorCode: UInt16 = 0
    var returnCode: Int = -1
    var itemsOK = 0
    var itemsFailed = 0

    /// Whether the response reports a failure (return code 0x0A alone is the "no data" acknowledgement
    /// real PLCs send for services that return nothing, so it is not one).
    var failed: Bool {
        errorClass != 0 || errorCode != 0 || userdataErrorCode != 0 || itemsFailed > 0
            || (returnCode >= 0 && returnCode != 0xFF && returnCode != 0x0A)
    }
}

/// The keys of slots `PendingTable.inlineKeyCount`... of a flow that has had more requests in flight than fit inline:
/// allocated when it first does (a polling flow never does).
final class PendingKeyOverflow {
    /// Slot `inlineKeyCount + i`'s key in lane `i` (the last lanes unused).
    @exclusivity(unchecked) var keys = SIMD64<UInt32>()
    init() {}
    init(copying other: PendingKeyOverflow) { keys = other.keys }
}

/// Requests of one flow waiting for their acks, matched by (requesting side, PDU reference, kind).
///
/// Bounded (`capacity`) and allocated on the first request: a peer that never answers cannot grow it;
/// the oldest entry is evicted (and logged as unanswered) instead. Lookups scan a compact key per slot
/// (4 bytes; 0 when free), not the requests themselves (128 bytes each). The first `inlineKeyCount` keys live inline
/// in the flow's dissector state (no pointer to chase: a flow with a request or two in flight touches nothing else),
/// the rest behind one reference allocated when a flow first has more in flight (`overflow`): all 64 inline took
/// 256 bytes of every flow's state.
struct PendingTable {
    static let capacity = 64
    /// Keys kept inline.
    static var inlineKeyCount: Int { 4 }
    // The counters before the inline keys, and those in the dissector state's first line (`S7commDissector`).
    private var storedLive: Int32 = 0
    private var allocated = false   // inline, so that checking it does not touch `slots`' storage
    /// The slot `insertKey` evicts next when the table is full.
    private var evictNext: UInt8 = 0
    /// Keys of slots 0..<inlineKeyCount.
    private var inlineKeys: (UInt32, UInt32, UInt32, UInt32) = (0, 0, 0, 0)
    private(set) var slots: [PendingRequest] = []
    /// Keys of the other slots; nil while all of them are 0 (never written).
    private var overflow: PendingKeyOverflow?
    /// Where the inline keys lie in the table.
    static var keysOffset: Int { MemoryLayout<PendingTable>.offset(of: \PendingTable.inlineKeys)! }

    /// Pending requests.
    var live: Int {
        @inline(__always) get { Int(storedLive) }
        @inline(__always) set { storedLive = Int32(truncatingIfNeeded: newValue) }
    }

    /// The slot key of a request: never 0.
    private static func key(side: FlowSide, pduReference: UInt16, userdata: Bool) -> UInt32 {
        1 << 31 | (side == .initiator ? 0 : 1 << 17) | (userdata ? 1 << 16 : 0) | UInt32(pduReference)
    }

    /// Slot `i`'s key (0: free).
    @inline(__always) private func key(at i: Int) -> UInt32 {
        if i < PendingTable.inlineKeyCount {
            return withUnsafeBytes(of: inlineKeys) { $0.load(fromByteOffset: i &* 4, as: UInt32.self) }
        }
        guard let overflow else { return 0 }
        return overflow.keys[i - PendingTable.inlineKeyCount]
    }

    /// Files key `k` (0: frees) in slot `i`.
    @inline(__always) private mutating func setKey(_ k: UInt32, at i: Int) {
        if i < PendingTable.inlineKeyCount {
            withUnsafeMutableBytes(of: &inlineKeys) { $0.storeBytes(of: k, toByteOffset: i &* 4, as: UInt32.self) }
            return
        }
        setOverflowKey(k, at: i - PendingTable.inlineKeyCount)
    }

    /// `setKey` beyond the inline keys: allocates the overflow keys at their first use (and copies them when shared,
    /// so that the table stays a value).
    @inline(never) private mutating func setOverflowKey(_ k: UInt32, at i: Int) {
        if overflow == nil {
            overflow = PendingKeyOverflow()
        } else if !isKnownUniquelyReferenced(&overflow) {
            overflow = PendingKeyOverflow(copying: overflow!)
        }
        overflow!.keys[i] = k
    }

    /// Adds `r`; returns an entry that had to make room (oldest, or the same key re-used), if any.
    ///
    /// The scan stops once it has seen all `live` keys and a free slot: with the usual one request in
    /// flight that is a slot or two, not 64 (the result is the same as a full scan: every live key is
    /// compared, and `free` is the first free slot either way).
    mutating func insert(_ r: PendingRequest) -> PendingRequest? {
        if !allocated {
            slots = [PendingRequest](repeating: PendingRequest(), count: PendingTable.capacity)
            allocated = true
        }
        let k = PendingTable.key(side: r.side, pduReference: r.pduReference, userdata: r.userdata)
        var r = r
        r.used = true   // set before the store: one write into `slots`, one uniqueness check
        let (free, match) = findSlot(k)
        if match >= 0 { let old = slots[match]; slots[match] = r; return old }
        if free >= 0 { slots[free] = r; setKey(k, at: free); self.live += 1; return nil }
        var oldest = 0
        for i in 1..<slots.count where slots[i].frame < slots[oldest].frame { oldest = i }
        let old = slots[oldest]; slots[oldest] = r; setKey(k, at: oldest)
        return old
    }

    /// Where key `k` is filed (`match`, -1 none) and the first free slot (-1 none) for `insert` and `insertKey`.
    /// Stops once all `live` keys were compared and a free slot is known.
    @inline(__always) private mutating func findSlot(_ k: UInt32) -> (free: Int, match: Int) {
        var free = -1, seen = 0
        let live = self.live
        // The inline keys: plain loads.
        let inlineMatch = withUnsafeBytes(of: &inlineKeys) { raw -> Int in
            for i in 0..<PendingTable.inlineKeyCount {
                let key = raw.load(fromByteOffset: i &* 4, as: UInt32.self)
                if key == 0 {
                    if free < 0 { free = i }
                } else {
                    if key == k { return i }
                    seen += 1
                }
                if seen == live && free >= 0 { return -1 }
            }
            return -1
        }
        if inlineMatch >= 0 { return (free, inlineMatch) }
        if seen == live && free >= 0 { return (free, -1) }
        return findOverflowSlot(k, free: free, seen: seen)
    }

    /// `findSlot` beyond the inline keys (whose scan left `free` and `seen`).
    @inline(never) private func findOverflowSlot(_ k: UInt32, free: Int, seen: Int) -> (free: Int, match: Int) {
        // Without overflow keys every slot beyond the inline ones is free.
        guard let overflow else { return (free >= 0 ? free : PendingTable.inlineKeyCount, -1) }
        var free = free, seen = seen
        let live = self.live
        for i in PendingTable.inlineKeyCount..<PendingTable.capacity {
            let key = overflow.keys[i - PendingTable.inlineKeyCount]
            if key == 0 {
                if free < 0 { free = i }
            } else {
                if key == k { return (free, i) }
                seen += 1
            }
            if seen == live && free >= 0 { break }
        }
        return (free, -1)
    }

    /// What `insertKey` did.
    enum KeyInsertion { case added, sameKey, evicted }

    /// `insert` for a flow without transaction records: only the key is filed (nothing will read the request, and
    /// writing it cost a uniqueness check and a cache miss on the flow's request array per request). A full
    /// table drops the key in slot `evictNext` rather than the oldest (which needs the requests' frames): with
    /// records off the only trace of an eviction is the flow's one `pending_requests_overflow` anomaly, raised at
    /// the first eviction either way, so which key goes is not observable.
    @_transparent
    mutating func insertKey(side: FlowSide, pduReference: UInt16, userdata: Bool) -> KeyInsertion {
        let k = PendingTable.key(side: side, pduReference: pduReference, userdata: userdata)
        // Nothing pending (a poll whose previous request was answered): every key is 0, and `findSlot` would answer
        // slot 0 free and no match, through its loop.
        if live == 0 { inlineKeys.0 = k; live = 1; return .added }
        let (free, match) = findSlot(k)
        if match >= 0 { return .sameKey }
        if free >= 0 { setKey(k, at: free); self.live += 1; return .added }
        setKey(k, at: Int(evictNext))
        evictNext = (evictNext &+ 1) % UInt8(PendingTable.capacity)
        return .evicted
    }

    /// Frees the key of the request from `side` with `pduReference` and returns its slot; -1 when none.
    /// Stops once all `live` keys were compared.
    @inline(__always) private mutating func removeSlot(side: FlowSide, pduReference: UInt16, userdata: Bool) -> Int {
        guard live > 0 else { return -1 }
        let k = PendingTable.key(side: side, pduReference: pduReference, userdata: userdata)
        let live = self.live
        var seen = 0
        let inlineFound = withUnsafeBytes(of: &inlineKeys) { raw -> Int in   // plain loads
            for i in 0..<PendingTable.inlineKeyCount {
                let key = raw.load(fromByteOffset: i &* 4, as: UInt32.self)
                if key == 0 { continue }
                if key == k { return i }
                seen += 1
                if seen == live { return -1 }
            }
            return -1
        }
        let found = inlineFound >= 0 || seen == live ? inlineFound : overflowSlot(of: k, seen: seen)
        if found >= 0 { setKey(0, at: found); self.live -= 1 }
        return found
    }

    /// `removeSlot`'s scan beyond the inline keys (which held `seen` live keys): the slot holding `k`, -1 none.
    @inline(never) private func overflowSlot(of k: UInt32, seen: Int) -> Int {
        guard let overflow else { return -1 }
        var seen = seen
        for i in PendingTable.inlineKeyCount..<PendingTable.capacity {
            let key = overflow.keys[i - PendingTable.inlineKeyCount]
            if key == 0 { continue }
            if key == k { return i }
            seen += 1
            if seen == live { break }
        }
        return -1
    }

    /// Removes and returns the request from `side` with `pduReference`, if pending.
    mutating func take(side: FlowSide, pduReference: UInt16, userdata: Bool) -> PendingRequest? {
        let i = removeSlot(side: side, pduReference: pduReference, userdata: userdata)
        guard i >= 0 else { return nil }
        slots[i].used = false
        return slots[i]
    }

    /// Removes the request from `side` with `pduReference`, if pending, without copying it out
    /// (records off: nothing will read it).
    /// `slots` is not touched: nothing reads a freed request (and a table filled by `insertKey` has none).
    @_transparent
    mutating func remove(side: FlowSide, pduReference: UInt16, userdata: Bool) {
        _ = removeSlot(side: side, pduReference: pduReference, userdata: userdata)
    }

    /// Removes and returns every pending request (oldest first is not guaranteed).
    mutating func drain(_ body: (PendingRequest) -> Void) {
        guard live > 0 else { return }
        for i in 0..<PendingTable.capacity where key(at: i) != 0 {
            setKey(0, at: i)
            // Keys filed by `insertKey` have no request behind them (records off: the caller reads nothing).
            if allocated { slots[i].used = false; body(slots[i]) }
        }
        live = 0
    }
}

/// Writes `s7comm.jsonl` transaction records.
enum S7TransactionRecord {
    /// Writes one record for `req` (and its response, if any); `status` says how it ended.
    static func write(_ req: PendingRequest, response: S7ResponseSummary?, status: StaticString, sink: EventSink) {
        sink.beginRecord(.s7comm, protocolName: "s7comm", objectKey: "s7comm", sender: req.side,
                         frame: req.frame, time: req.time)
        sink.json.field("pdu_reference", Int(req.pduReference))
        sink.json.field("rosctr", req.userdata ? 7 : 1)
        if req.userdata {
            sink.json.field("group", Int(req.group))
            sink.json.field("subfunction", Int(req.subfunction))
        } else {
            sink.json.field("function_code", Int(req.functionCode))
        }
        sink.json.field("function", req.function)
        sink.json.field("access", req.access.name)
        if req.itemCount > 0 { sink.json.field("item_count", req.itemCount) }
        if req.area >= 0 { sink.json.field("area", S7Names.area(UInt8(req.area))); sink.json.field("area_code", Int(req.area)) }
        if req.dbNumber >= 0 { sink.json.field("db_number", Int(req.dbNumber)) }
        if req.address >= 0 { sink.json.field("address", Int(req.address)) }
        if req.quantity > 0 { sink.json.field("quantity", Int(req.quantity)) }
        if req.szlID >= 0 {
            sink.json.field("szl_id", Int(req.szlID)); sink.json.field("szl_index", Int(req.szlIndex))
            sink.json.field("szl_name", S7SZL.name(UInt16(req.szlID)))
        }
        if req.service.count > 0 { sink.json.key("pi_service"); req.service.write(to: &sink.json) }
        if req.blockType >= 0 { sink.json.field("block_type", S7Names.blockType(UInt8(req.blockType))) }
        if req.blockNumber >= 0 { sink.json.field("block_number", Int(req.blockNumber)) }
        sink.json.field("status", status)
        if let r = response {
            sink.json.key("response"); sink.json.beginObject()
            sink.json.field("frame", r.frame)
            sink.json.field("rosctr", Int(r.rosctr))
            if r.rosctr != 7 {
                sink.json.field("error_class", Int(r.errorClass)); sink.json.field("error_code", Int(r.errorCode))
                if r.errorClass != 0 || r.errorCode != 0 {
                    sink.json.field("error", S7Names.errorCode(UInt16(r.errorClass) << 8 | UInt16(r.errorCode)))
                }
            } else if r.userdataErrorCode != 0 {
                sink.json.field("error_code", Int(r.userdataErrorCode))
                sink.json.field("error", S7Names.errorCode(r.userdataErrorCode))
            }
            if r.returnCode >= 0 { sink.json.field("return_code", r.returnCode) }
            if r.itemsOK + r.itemsFailed > 0 { sink.json.field("items_ok", r.itemsOK); sink.json.field("items_failed", r.itemsFailed) }
            sink.json.field("duration_us", Int(r.time.microseconds(since: req.time)))
            sink.json.endObject()
        }
        sink.endRecord()
    }
}
