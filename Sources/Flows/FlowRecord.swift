import Wire
import Records

/// Writes a flow's ECS record (one line of `flows.jsonl`).
public enum FlowRecord {
    /// Writes the record of `flow`, ended for `reason`, into `json` (no newline).
    /// `applicationProtocol` is the identified protocol's name, or nil when none was identified; `communityID` the
    /// flow's Community ID text.
    public static func write(_ flow: FlowState, reason: FlowEndReason, applicationProtocol: StaticString?,
                             transport: Transport, communityID: InlineText, into json: inout JSONWriter) {
        let ini = flow.initiator, res = flow.responder
        json.beginObject()
        json.key("@timestamp"); json.time(flow.firstSeen)
        json.key("event"); json.beginObject()
        json.field("kind", "event")
        json.key("category"); json.beginArray(); json.string("network"); json.endArray()
        json.key("type"); json.beginArray(); json.string("connection"); json.string("end"); json.endArray()
        json.key("start"); json.time(flow.firstSeen)
        json.key("end"); json.time(flow.lastSeen)
        json.key("duration"); json.int(flow.lastSeen.microseconds(since: flow.firstSeen) &* 1000)   // ECS: nanoseconds
        json.field("reason", reason.name)
        json.endObject()
        json.key("source"); json.beginObject()
        json.key("ip"); json.ip(ini.ip); json.field("port", Int(ini.port))
        json.field("packets", flow.packets.0); json.field("bytes", flow.bytes.0)
        json.endObject()
        json.key("destination"); json.beginObject()
        json.key("ip"); json.ip(res.ip); json.field("port", Int(res.port))
        json.field("packets", flow.packets.1); json.field("bytes", flow.bytes.1)
        json.endObject()
        json.key("network"); json.beginObject()
        json.field("transport", transport.name)
        if let p = applicationProtocol { json.field("protocol", p) }
        json.field("iana_number", Int(flow.key.ipProtocol))
        json.key("community_id"); json.string(communityID)
        json.field("packets", flow.packets.0 &+ flow.packets.1)
        json.field("bytes", flow.bytes.0 &+ flow.bytes.1)
        if flow.key.vlan != 0 { json.key("vlan"); json.beginObject(); json.field("id", Int(flow.key.vlan)); json.endObject() }
        json.endObject()
        json.key("flow"); json.beginObject()
        json.field("first_frame", flow.firstFrame)
        json.field("midstream", flow.midstream)
        if transport == .tcp {
            let a = flow.initiatorStream, b = flow.responderStream
            json.field("gaps", UInt64(a.gaps) + UInt64(b.gaps))
            json.field("gap_bytes", a.gapBytes &+ b.gapBytes)
            json.field("retransmissions", UInt64(a.retransmissions) + UInt64(b.retransmissions))
            json.field("overlaps", UInt64(a.overlaps) + UInt64(b.overlaps))
            json.field("out_of_order", UInt64(a.outOfOrder) + UInt64(b.outOfOrder))
        }
        json.endObject()
        json.endObject()
    }
}
