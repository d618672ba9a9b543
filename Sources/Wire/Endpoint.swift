/// One end of a flow: address and port (0 for port-less transports).
public struct Endpoint: Hashable, Sendable {
    /// The IP address.
    public var ip: IPAddress
    /// The transport port.
    public var port: UInt16
    /// Creates an endpoint.
    @inlinable public init(ip: IPAddress, port: UInt16) { self.ip = ip; self.port = port }
}

/// The transport protocol of a flow, with its IANA protocol number.
public enum Transport: UInt8, Sendable {
    case tcp = 6
    case udp = 17
    case icmp = 1
    case icmpv6 = 58
    case other = 0

    /// The ECS `network.transport` name.
    public var name: StaticString {
        switch self {
        case .tcp: "tcp"
        case .udp: "udp"
        case .icmp: "icmp"
        case .icmpv6: "ipv6-icmp"
        case .other: "other"
        }
    }
}

/// Which side of a flow sent some bytes: the initiator (TCP client, first sender) or the responder.
public enum FlowSide: UInt8, Sendable {
    case initiator = 0
    case responder = 1

    /// The other side.
    @inlinable public var opposite: FlowSide { self == .initiator ? .responder : .initiator }
}
