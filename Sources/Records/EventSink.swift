import Wire

/// Where dissectors put what they find: JSON records, operations for policy, anomalies.
///
/// One sink per worker, owned by the engine, which sets the packet and flow context before each
/// call into a dissector and drains `operations` and `anomalies` after it. Records are built into
/// one reusable `JSONWriter` and appended, as finished lines, to a buffer per record kind that the
/// engine flushes. It is a final class so that dissectors reach it by reference without retain
/// traffic on every call; one engine uses it from one thread, so its dynamic exclusivity checks
/// (which cost more than a header parse) are off.
public final class EventSink {
    // The state lives in one heap block reached through a pointer, and every property below is a computed view
    // of it: dissectors in other modules touch the sink for every PDU, and a stored class property accessed
    // from another module gets a dynamic exclusivity check (swift_beginAccess, a TLS lookup and an access-set
    // insert) whatever `@exclusivity(unchecked)` says at its declaration; pointer accesses get none. About a
    // quarter of the instructions per packet went to those checks. One engine uses a sink from one thread.
    @usableFromInline struct State {
        @usableFromInline var frame: UInt64 = 0
        @usableFromInline var time: PacketTime = .zero
        @usableFromInline var flow = FlowContext(initiator: Endpoint(ip: IPAddress(v4: 0), port: 0),
                                                 responder: Endpoint(ip: IPAddress(v4: 0), port: 0), transport: .tcp)
        @usableFromInline var pduRecordsEnabled = false
        @usableFromInline var transactionRecordsEnabled = false
        /// Either of the two above (kept by their setters).
        @usableFromInline var recordsEnabled = false
        @usableFromInline var json = JSONWriter(capacity: 1 << 16)
        // Each kind's buffer has room for what accumulates between drains (the replay loop drains once the buffers
        // hold 1 MiB) up front: address space only, pages are touched as lines come. Grown by doubling, a buffer
        // reallocated whenever a kind's share of a drain first crossed a new power of two, well into a run.
        @usableFromInline var lines: [[UInt8]] = RecordKind.allCases.map { _ in var b = [UInt8](); b.reserveCapacity(1 << 20 + 1 << 17); return b }
        /// Operations emitted since the last drain, in a block of their own: appending and draining one per PDU
        /// costs no uniqueness check, retain or `removeAll` (an `Operation` is plain data).
        @usableFromInline var operationBuffer = UnsafeMutablePointer<Operation>.allocate(capacity: 64)
        @usableFromInline var operationCount = 0
        @usableFromInline var operationCapacity = 64
        @usableFromInline var anomalies: [Anomaly] = []
        /// Whether the flow ending now ends at the capture's boundary (`unfinishedAtEnd`).
        @usableFromInline var endingAtCaptureBoundary = false
        /// Messages, and their bytes, that flows ending at the capture's boundary left unfinished.
        @usableFromInline var cutByCapture: UInt64 = 0
        @usableFromInline var cutByCaptureBytes: UInt64 = 0
        /// PDUs per protocol, in a block of their own (counted on every PDU: no array uniqueness check).
        @usableFromInline var pduCountBuffer: UnsafeMutablePointer<UInt64> = {
            let p = UnsafeMutablePointer<UInt64>.allocate(capacity: AppProtocol.allCases.count)
            p.initialize(repeating: 0, count: AppProtocol.allCases.count)
            return p
        }()
        @usableFromInline var recordCounts = [UInt64](repeating: 0, count: RecordKind.allCases.count)
        @usableFromInline var currentKind: RecordKind = .pdu
        @usableFromInline var scratch = UnsafeMutableRawPointer.allocate(byteCount: EventSink.scratchBytes, alignment: 16)
        init() {}
    }
    @usableFromInline let state: UnsafeMutablePointer<State>

    /// The 1-based number of the packet being processed.
    @inlinable public var frame: UInt64 {
        get { state.pointee.frame } set { state.pointee.frame = newValue } _modify { yield &state.pointee.frame } }
    /// That packet's time.
    @inlinable public var time: PacketTime {
        get { state.pointee.time } set { state.pointee.time = newValue } _modify { yield &state.pointee.time } }
    /// The flow the current bytes belong to.
    @inlinable public var flow: FlowContext {
        get { state.pointee.flow } set { state.pointee.flow = newValue } _modify { yield &state.pointee.flow } }

    /// Whether to write one `pdu` record per application PDU (`zonewatch dissect`).
    @inlinable public var pduRecordsEnabled: Bool {
        get { state.pointee.pduRecordsEnabled }
        set { state.pointee.pduRecordsEnabled = newValue; state.pointee.recordsEnabled = newValue || state.pointee.transactionRecordsEnabled }
    }
    /// Whether to write the paired per-protocol logs (`modbus.jsonl`, ...).
    @inlinable public var transactionRecordsEnabled: Bool {
        get { state.pointee.transactionRecordsEnabled }
        set { state.pointee.transactionRecordsEnabled = newValue; state.pointee.recordsEnabled = state.pointee.pduRecordsEnabled || newValue }
    }
    /// Whether either kind of record is written: the dissectors' per-delivery test, one load (both flags took two
    /// loads and two branches).
    @inlinable public var recordsEnabled: Bool { state.pointee.recordsEnabled }

    /// The record being built.
    @inlinable public var json: JSONWriter {
        get { state.pointee.json } set { state.pointee.json = newValue } _modify { yield &state.pointee.json } }
    /// Finished lines per record kind, newline-terminated; the engine flushes and empties them.
    @inlinable public var lines: [[UInt8]] {
        get { state.pointee.lines } set { state.pointee.lines = newValue } _modify { yield &state.pointee.lines } }
    /// Operations emitted since the engine last drained them (a copy: the engine reads them in place with
    /// `operationCount` and `drainOperations`).
    public var operations: [Operation] {
        get { Array(UnsafeBufferPointer(start: state.pointee.operationBuffer, count: state.pointee.operationCount)) }
        set {
            state.pointee.operationCount = 0
            for op in newValue { append(op) }
        }
    }
    /// How many operations are waiting to be drained.
    @inlinable public var operationCount: Int { state.pointee.operationCount }
    /// Hands every waiting operation to `body`, in the order they were emitted, and then forgets them.
    @inlinable public func drainOperations(_ body: (Operation) -> Void) {
        var i = 0
        while i < state.pointee.operationCount {
            body(state.pointee.operationBuffer[i])
            i += 1
        }
        state.pointee.operationCount = 0
    }
    /// Hands `body` the waiting operations where they lie (no copy per operation), and then forgets them. `body` must
    /// not emit into this sink; the pointer is valid during the call only.
    @inlinable public func drainOperationsInPlace(_ body: (UnsafePointer<Operation>, Int) -> Void) {
        body(state.pointee.operationBuffer, state.pointee.operationCount)
        state.pointee.operationCount = 0
    }
    /// Hands `body` the address of `flow` (valid during the call only, while nothing sets `flow`).
    @inlinable public func withFlowPointer<R>(_ body: (UnsafePointer<FlowContext>) -> R) -> R {
        withUnsafePointer(to: &state.pointee.flow, body)
    }
    /// How many anomalies are waiting to be drained.
    @inlinable public var anomalyCount: Int { state.pointee.anomalies.count }
    /// Anomalies emitted since the engine last drained them.
    @inlinable public var anomalies: [Anomaly] {
        get { state.pointee.anomalies } set { state.pointee.anomalies = newValue } _modify { yield &state.pointee.anomalies } }
    /// PDUs seen per protocol (indexed by `AppProtocol.rawValue`).
    public var pduCounts: [UInt64] {
        get { Array(UnsafeBufferPointer(start: state.pointee.pduCountBuffer, count: AppProtocol.allCases.count)) }
        set { for i in 0..<min(newValue.count, AppProtocol.allCases.count) { state.pointee.pduCountBuffer[i] = newValue[i] } }
    }
    /// Copies the PDU counts into `counts` in place (the getter builds an array: an allocation per call).
    public func copyPDUCounts(into counts: inout [UInt64]) {
        let n = AppProtocol.allCases.count
        if counts.count != n { counts = [UInt64](repeating: 0, count: n) }
        counts.withUnsafeMutableBufferPointer { c in for i in 0..<n { c[i] = state.pointee.pduCountBuffer[i] } }
    }
    /// How many bytes `scratch` holds.
    public static let scratchBytes = 256
    /// `scratchBytes` bytes (16-byte aligned) a dissector may use during one call into it (`consume`, `gap`,
    /// `finish`): what it writes there does not outlive the call. A block kept with the sink rather than stack
    /// memory, which gave the engine's delivery a large frame with a stack-protector check on every call.
    @inlinable public var scratch: UnsafeMutableRawPointer { state.pointee.scratch }
    /// Records written per kind.
    @inlinable public var recordCounts: [UInt64] {
        get { state.pointee.recordCounts } set { state.pointee.recordCounts = newValue } _modify { yield &state.pointee.recordCounts } }

    /// Creates a sink.
    public init() {
        state = .allocate(capacity: 1)
        state.initialize(to: State())
        anomalies.reserveCapacity(64)
    }

    deinit {
        state.pointee.operationBuffer.deallocate()
        state.pointee.pduCountBuffer.deallocate()
        state.pointee.scratch.deallocate()
        state.deinitialize(count: 1)
        state.deallocate()
    }

    /// Stamps and queues an operation.
    @inlinable @inline(__always) public func emit(_ op: Operation, sender: FlowSide) {
        // Stamped before it is queued: stamping the queued copy stored those fields twice.
        var op = op
        op.frame = state.pointee.frame; op.time = state.pointee.time; op.sender = sender
        append(op)
    }

    /// `emit`, handing back where the operation is queued (valid until the next emit or drain): a dissector that
    /// emits one operation per item fills in the item's fields there instead of copying the operation twice.
    @inlinable @inline(__always) public func emitted(_ op: Operation, sender: FlowSide) -> UnsafeMutablePointer<Operation> {
        let p = append(op)
        p.pointee.frame = state.pointee.frame; p.pointee.time = state.pointee.time; p.pointee.sender = sender
        return p
    }

    /// Queues a copy of the operation queued last (stamp and sender included; there must be one since the last drain)
    /// and returns where it is stored (valid until the next emit or drain): a dissector emitting one operation per item
    /// of a request copies the previous item's and changes the item's fields.
    @inlinable @inline(__always) public func emittedAgain() -> UnsafeMutablePointer<Operation> {
        precondition(state.pointee.operationCount > 0, "no operation to repeat")
        if state.pointee.operationCount == state.pointee.operationCapacity { growOperations() }
        let p = state.pointee.operationBuffer + state.pointee.operationCount
        p.initialize(to: (p - 1).pointee)
        state.pointee.operationCount += 1
        return p
    }

    /// Queues `op` as it is and returns where it is stored (valid until the next append or drain).
    @inlinable @inline(__always) @discardableResult func append(_ op: Operation) -> UnsafeMutablePointer<Operation> {
        if state.pointee.operationCount == state.pointee.operationCapacity { growOperations() }
        let p = state.pointee.operationBuffer + state.pointee.operationCount
        p.initialize(to: op)
        state.pointee.operationCount &+= 1   // bounded by the capacity
        return p
    }

    /// Doubles the operation block (a burst of operations in one delivery; the block is then kept).
    @usableFromInline func growOperations() {
        let capacity = state.pointee.operationCapacity * 2
        let fresh = UnsafeMutablePointer<Operation>.allocate(capacity: capacity)
        fresh.moveInitialize(from: state.pointee.operationBuffer, count: state.pointee.operationCount)
        state.pointee.operationBuffer.deallocate()
        state.pointee.operationBuffer = fresh
        state.pointee.operationCapacity = capacity
    }

    /// Stamps and queues an anomaly.
    @inlinable public func emit(_ anomaly: Anomaly, sender: FlowSide) {
        var a = anomaly; a.frame = frame; a.time = time; a.sender = sender
        anomalies.append(a)
    }

    /// Whether the flow ending now ends at the capture's boundary (end of input, eviction, a step of packet time)
    /// rather than on the wire: set by the engine around the end's reports (`unfinishedAtEnd`).
    public var endingAtCaptureBoundary: Bool {
        get { state.pointee.endingAtCaptureBoundary } set { state.pointee.endingAtCaptureBoundary = newValue } }
    /// Messages that flows ending at the capture's boundary left unfinished, and their bytes (`unfinishedAtEnd`).
    public var cutByCapture: (messages: UInt64, bytes: UInt64) {
        (state.pointee.cutByCapture, state.pointee.cutByCaptureBytes)
    }

    /// A message `sender` left unfinished when its flow ended (`bytes` of it held, dropped with the flow). A flow a
    /// peer ended (FIN, RST, silence, a reused port) ended mid-message on the wire: a `truncated_at_end` anomaly on
    /// `layer`. One the capture ended (`endingAtCaptureBoundary`) was cut by the capture, no peer's doing: counted in
    /// `cutByCapture` (and the summary), with no anomaly to alert on, so that the end of a capture file does
    /// not blame the devices whose last messages it cut.
    public func unfinishedAtEnd(layer: StaticString, bytes: Int, sender: FlowSide) {
        if state.pointee.endingAtCaptureBoundary {
            state.pointee.cutByCapture &+= 1
            state.pointee.cutByCaptureBytes &+= UInt64(bytes)
        } else {
            emit(Anomaly(layer: layer, kind: "truncated_at_end", offset: 0, value: Int64(bytes)), sender: sender)
        }
    }

    /// Counts one PDU of `p`.
    @inlinable @inline(__always) public func countPDU(_ p: AppProtocol) { state.pointee.pduCountBuffer[Int(p.rawValue)] &+= 1 }

    /// Starts a record: writes the envelope (`@timestamp`, `frame`, `source`, `destination`, `network`)
    /// and opens the object named `objectKey`; the caller writes its fields into `json` and calls `endRecord`.
    /// `sender` is the side that sent the (first) PDU of the record; `frame`/`time` default to the current packet.
    public func beginRecord(_ kind: RecordKind, protocolName: StaticString, objectKey: StaticString,
                            sender: FlowSide, frame: UInt64? = nil, time: PacketTime? = nil) {
        json.reset()
        json.beginObject()
        json.key("@timestamp"); json.time(time ?? self.time)
        json.field("frame", frame ?? self.frame)
        let src = flow.endpoint(sender), dst = flow.endpoint(sender.opposite)
        json.key("source"); json.beginObject(); json.key("ip"); json.ip(src.ip); json.field("port", Int(src.port)); json.endObject()
        json.key("destination"); json.beginObject(); json.key("ip"); json.ip(dst.ip); json.field("port", Int(dst.port)); json.endObject()
        json.key("network"); json.beginObject()
        json.field("transport", flow.transport.name)
        json.field("protocol", protocolName)
        if !flow.communityIDText.isEmpty { json.key("community_id"); json.string(flow.communityIDText) }
        if flow.vlan != 0 { json.key("vlan"); json.beginObject(); json.field("id", Int(flow.vlan)); json.endObject() }
        json.endObject()
        json.key(objectKey); json.beginObject()
        currentKind = kind
    }

    /// Closes the object opened by `beginRecord` and the envelope, and files the line.
    public func endRecord() {
        json.endObject(); json.endObject()
        finishLine(currentKind)
    }

    /// Files the text in `json` as one finished line of `kind`.
    public func finishLine(_ kind: RecordKind) {
        json.appendByte(UInt8(ascii: "\n"))
        json.withBytes { lines[kind.rawValue].append(contentsOf: $0) }
        recordCounts[kind.rawValue] &+= 1
        json.reset()
    }

    @inlinable var currentKind: RecordKind {
        get { state.pointee.currentKind } set { state.pointee.currentKind = newValue } }
}
