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
    /// The 1-based number of the packet being processed.
    @exclusivity(unchecked) public var frame: UInt64 = 0
    /// That packet's time.
    @exclusivity(unchecked) public var time: PacketTime = .zero
    /// The flow the current bytes belong to.
    @exclusivity(unchecked) public var flow = FlowContext(initiator: Endpoint(ip: IPAddress(v4: 0), port: 0),
                                  responder: Endpoint(ip: IPAddress(v4: 0), port: 0), transport: .tcp)

    /// Whether to write one `pdu` record per application PDU (`zonewatch dissect`).
    @exclusivity(unchecked) public var pduRecordsEnabled = false
    /// Whether to write the paired per-protocol logs (`modbus.jsonl`, ...).
    @exclusivity(unchecked) public var transactionRecordsEnabled = false

    /// The record being built.
    @exclusivity(unchecked) public var json = JSONWriter(capacity: 1 << 16)
    /// Finished lines per record kind, newline-terminated; the engine flushes and empties them.
    @exclusivity(unchecked) public var lines: [[UInt8]] = RecordKind.allCases.map { _ in var b = [UInt8](); b.reserveCapacity(1 << 16); return b }
    /// Operations emitted since the engine last drained them.
    @exclusivity(unchecked) public var operations: [Operation] = []
    /// Anomalies emitted since the engine last drained them.
    @exclusivity(unchecked) public var anomalies: [Anomaly] = []
    /// PDUs seen per protocol (indexed by `AppProtocol.rawValue`).
    @exclusivity(unchecked) public var pduCounts = [UInt64](repeating: 0, count: AppProtocol.allCases.count)
    /// Records written per kind.
    @exclusivity(unchecked) public var recordCounts = [UInt64](repeating: 0, count: RecordKind.allCases.count)

    /// Creates a sink.
    public init() { operations.reserveCapacity(64); anomalies.reserveCapacity(64) }

    /// Stamps and queues an operation.
    @inlinable public func emit(_ op: Operation, sender: FlowSide) {
        var o = op; o.frame = frame; o.time = time; o.sender = sender
        operations.append(o)
    }

    /// Stamps and queues an anomaly.
    @inlinable public func emit(_ anomaly: Anomaly, sender: FlowSide) {
        var a = anomaly; a.frame = frame; a.time = time; a.sender = sender
        anomalies.append(a)
    }

    /// Counts one PDU of `p`.
    @inlinable public func countPDU(_ p: AppProtocol) { pduCounts[Int(p.rawValue)] &+= 1 }

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
        json.bytes.append(UInt8(ascii: "\n"))
        lines[kind.rawValue].append(contentsOf: json.bytes)
        recordCounts[kind.rawValue] &+= 1
        json.reset()
    }

    @exclusivity(unchecked) @usableFromInline var currentKind: RecordKind = .pdu
}
