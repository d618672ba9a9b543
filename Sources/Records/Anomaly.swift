import Wire

/// Something in the traffic that breaks a protocol's rules or our bounds: counted, logged and
/// (through detection) alerted on, never silently dropped.
public struct Anomaly: Sendable {
    /// The layer or protocol that saw it (`modbus`, `dnp3`, `s7comm`, `tcp`, `ip`, `link`, `flow`).
    public var layer: StaticString
    /// A stable, snake_case kind (`bad_protocol_id`, `not_modbus_on_modbus_port`, `gap`, ...).
    public var kind: StaticString
    /// Byte offset in the PDU, stream chunk or packet where it was seen.
    public var offset: Int
    /// A numeric detail (the bad value, the gap length); nil when none.
    public var value: Int64?
    /// The packet (1-based) where it was seen; stamped by the sink.
    public var frame: UInt64 = 0
    /// That packet's time; stamped by the sink.
    public var time: PacketTime = .zero
    /// Which flow side sent the offending bytes; stamped by the sink.
    public var sender: FlowSide = .initiator

    /// Creates an anomaly.
    public init(layer: StaticString, kind: StaticString, offset: Int = 0, value: Int64? = nil) {
        self.layer = layer; self.kind = kind; self.offset = offset; self.value = value
    }
}
