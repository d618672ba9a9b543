import Wire

extension Alert {
    /// Writes the alert as one ECS JSON object (no trailing newline): the schema of the policy issue.
    public func writeECS(to json: inout JSONWriter) { writeECS(communityID: communityIDText, to: &json) }

    /// `writeECS(to:)` with the alert's `communityIDText` read once already (a deferred one is computed per read).
    public func writeECS(communityID: InlineText, to json: inout JSONWriter) {
        json.beginObject()
        json.key("@timestamp"); json.time(time)
        json.field("frame", frame)
        json.key("event"); json.beginObject()
        json.field("kind", "alert"); json.field("severity", severity); json.field("action", action)
        json.field("count", count)
        if let f = firstSeen { json.key("start"); json.time(f) }
        if let l = lastSeen { json.key("end"); json.time(l) }
        json.endObject()
        json.key("rule"); json.beginObject()
        json.field("id", ruleID); json.field("name", ruleName); json.field("category", category.rawValue)
        json.endObject()
        if let s = source {
            json.key("source"); json.beginObject(); json.key("ip"); json.ip(s.ip); json.field("port", Int(s.port)); json.endObject()
        }
        if let d = destination {
            json.key("destination"); json.beginObject(); json.key("ip"); json.ip(d.ip); json.field("port", Int(d.port)); json.endObject()
        }
        json.key("network"); json.beginObject()
        if let t = transport { json.field("transport", t.name) }
        if let p = networkProtocol { json.field("protocol", p) }
        if !communityID.isEmpty { json.key("community_id"); json.string(communityID) }
        json.endObject()
        if !techniques.isEmpty {
            json.key("threat"); json.beginObject()
            json.field("framework", "MITRE ATT&CK for ICS")
            json.key("technique"); json.beginObject()
            json.key("id"); json.beginArray(); for t in techniques { json.string(t.id) }; json.endArray()
            json.key("name"); json.beginArray(); for t in techniques { json.string(t.name) }; json.endArray()
            json.endObject()
            json.key("framework_version"); json.string(attackVersion)
            json.endObject()
        }
        json.key("ot"); json.beginObject()
        if let z = sourceZone { json.field("source_zone", z) }
        if let z = destinationZone { json.field("destination_zone", z) }
        if let c = conduit { json.field("conduit", c) }
        if let s = securityLevel { json.field("security_level", s) }
        if !iec62443.isEmpty { json.key("iec62443"); json.beginArray(); for r in iec62443 { json.string(r) }; json.endArray() }
        if let a = access { json.field("access", a) }
        if let f = function { json.field("function", f) }
        if let u = unitID { json.field("unit_id", u) }
        if let d = dnp3Address { json.field("dnp3_address", d) }
        json.endObject()
        json.key("message"); json.string(messageText)
        json.endObject()
    }
}
