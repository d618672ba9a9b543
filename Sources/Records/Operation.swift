import Wire

/// One application operation in a protocol-neutral shape: what policy and detection check.
///
/// Dissectors emit one for each request (and for operations that flow the other way, such as
/// an S7 download block job sent by the PLC). It holds only scalars and static names, so
/// emitting one allocates nothing.
public struct Operation: Sendable {
    /// The protocol.
    public var appProtocol: AppProtocol
    /// The access class the policy checks.
    public var access: AccessClass
    /// The function code (Modbus FC, DNP3 FC, S7 parameter function or userdata group<<8|subfunction).
    public var functionCode: UInt16
    /// The function's name.
    public var function: StaticString
    /// A sub-function where the protocol has one (Modbus diagnostics, UMAS, S7 userdata); -1 when none.
    public var subfunction: Int32 = -1
    /// Modbus unit id, or DNP3 destination (outstation) address; -1 when none.
    public var unitID: Int32 = -1
    /// DNP3 source address (master); -1 when none.
    public var sourceAddress: Int32 = -1
    /// S7 memory area code (0x84 DB, 0x83 M, ...); -1 when none.
    public var area: Int16 = -1
    /// S7 DB number; -1 when none.
    public var dbNumber: Int32 = -1
    /// First data address touched; -1 when none.
    public var address: Int64 = -1
    /// Number of items (registers, coils, points, bytes) from `address`; 0 when none.
    public var quantity: Int64 = 0
    /// Whether the operation is addressed to every device (Modbus unit 0, DNP3 0xFFFD-0xFFFF).
    public var broadcast = false
    /// Which flow side sent the PDU that carried the operation.
    public var sender: FlowSide = .initiator
    /// Set by a dissector that knows the flow's previous operation addressed the same `unitID` (a poller asking
    /// one device again): detection then need not look up the flow to see that the unit did not change.
    /// False when the unit changed, for the flow's first operation, and from dissectors that do not track it.
    public var unitRepeated = false
    /// The packet (1-based) that completed the PDU.
    public var frame: UInt64 = 0
    /// The time of that packet.
    public var time = PacketTime(seconds: 0, microseconds: 0)

    /// Creates an operation; the sink stamps `frame`, `time` and `sender`.
    @inlinable public init(appProtocol: AppProtocol, access: AccessClass, functionCode: UInt16, function: StaticString) {
        self.appProtocol = appProtocol; self.access = access; self.functionCode = functionCode; self.function = function
    }
}
