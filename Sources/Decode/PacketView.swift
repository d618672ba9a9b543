import Wire

/// A decoded packet: scalars and offsets into the captured bytes, nothing copied.
public struct PacketView: Sendable {
    /// Outer VLAN id (802.1Q), 0 when untagged; with QinQ the innermost (customer) tag.
    public var vlan: UInt16 = 0
    /// Number of VLAN tags seen.
    public var vlanTags: UInt8 = 0
    /// 4 or 6.
    public var ipVersion: UInt8 = 0
    /// Offset of the IP header in the captured bytes (the carried frame's, for a mirror); for `InternetChecksum`.
    public var ipOffset: Int32 = 0
    /// Source address.
    public var source = IPAddress(high: 0, low: 0)
    /// Destination address.
    public var destination = IPAddress(high: 0, low: 0)
    /// IP protocol number of the transport (after IPv6 extension headers).
    public var ipProtocol: UInt8 = 0
    /// The transport.
    public var transport: Transport = .other
    /// Source port (0 for port-less transports).
    public var sourcePort: UInt16 = 0
    /// Destination port.
    public var destinationPort: UInt16 = 0
    /// TCP flags (FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10, URG 0x20).
    public var tcpFlags: UInt8 = 0
    /// TCP sequence number.
    public var sequence: UInt32 = 0
    /// TCP acknowledgement number.
    public var acknowledgement: UInt32 = 0
    /// Offset of the transport payload in the captured bytes.
    public var payloadOffset: Int = 0
    /// Payload bytes present in the capture.
    public var payloadLength: Int = 0
    /// Payload bytes the packet carried on the wire (more than `payloadLength` when snaplen cut it).
    public var wirePayloadLength: Int = 0
    /// IPv4 header carried options.
    public var hasIPOptions = false
    /// 1 when this is the frame a remote-SPAN packet (ERSPAN, transparent Ethernet bridging over GRE) or an overlay
    /// tunnel's (VXLAN, Geneve) carried, decoded in its place (`PacketDecoder.mirroredFrame`, `overlayFrame`); 0 for a
    /// packet as captured.
    public var mirrorsRemoved: UInt8 = 0
    /// Offset of the TCP or UDP header in the captured bytes; for `InternetChecksum`.
    public var transportOffset: Int32 = 0

    /// Creates an empty view.
    @inlinable public init() {}

    /// TCP flag bits.
    public static let fin: UInt8 = 0x01, syn: UInt8 = 0x02, rst: UInt8 = 0x04, psh: UInt8 = 0x08, ack: UInt8 = 0x10, urg: UInt8 = 0x20
}

/// Why a packet could not be decoded; counted per reason.
public enum DecodeFailure: UInt8, CaseIterable, Sendable {
    case truncatedLinkHeader, tooManyVLANTags, truncatedIPv4Header, badIPv4Version, badIPv4HeaderLength, badIPv4TotalLength
    case truncatedIPv6Header, badIPv6ExtensionHeader, ipFragment, truncatedTCPHeader, badTCPHeaderLength, truncatedUDPHeader, badUDPLength
    case unknownAddressFamily

    /// A stable snake_case name for logs and stats.
    public var name: StaticString {
        switch self {
        case .truncatedLinkHeader: "truncated_link_header"
        case .tooManyVLANTags: "too_many_vlan_tags"
        case .truncatedIPv4Header: "truncated_ipv4_header"
        case .badIPv4Version: "bad_ip_version"
        case .badIPv4HeaderLength: "bad_ipv4_header_length"
        case .badIPv4TotalLength: "bad_ipv4_total_length"
        case .truncatedIPv6Header: "truncated_ipv6_header"
        case .badIPv6ExtensionHeader: "bad_ipv6_extension_header"
        case .ipFragment: "ip_fragment_not_reassembled"
        case .truncatedTCPHeader: "truncated_tcp_header"
        case .badTCPHeaderLength: "bad_tcp_header_length"
        case .truncatedUDPHeader: "truncated_udp_header"
        case .badUDPLength: "bad_udp_length"
        case .unknownAddressFamily: "unknown_address_family"
        }
    }

    /// The layer the failure belongs to.
    public var layer: StaticString {
        switch self {
        case .truncatedLinkHeader, .tooManyVLANTags, .unknownAddressFamily: "link"
        case .truncatedIPv4Header, .badIPv4Version, .badIPv4HeaderLength, .badIPv4TotalLength,
             .truncatedIPv6Header, .badIPv6ExtensionHeader, .ipFragment: "ip"
        case .truncatedTCPHeader, .badTCPHeaderLength: "tcp"
        case .truncatedUDPHeader, .badUDPLength: "udp"
        }
    }
}

/// A packet that could not be decoded: why, and at which byte offset.
public struct DecodeError: Error, Sendable {
    /// The reason.
    public var failure: DecodeFailure
    /// For an `ipFragment`: the IP version of the fragmented packet (4 or 6; 0 otherwise).
    public var ipVersion: UInt8 = 0
    /// For an `ipFragment` in a frame a remote-SPAN or overlay packet carried (`PacketDecoder.decodeMirrored`): that
    /// frame's offset (0: the fragment is the captured frame's own), and when it is an IP packet without a link header
    /// (Geneve), its type (0 otherwise). (Small fields first: the error stays 16 bytes.)
    public var frameIPType: UInt16 = 0
    public var frameStart: Int32 = 0
    /// Byte offset in the captured packet where decoding stopped.
    public var offset: Int
    /// Creates an error.
    @inlinable public init(_ failure: DecodeFailure, at offset: Int) { self.failure = failure; self.offset = offset }
}

/// A fragment of an IPv4 or IPv6 datagram (`PacketDecoder.ipFragment`): where it lies in its frame and what places it.
public struct IPFragment: Sendable {
    /// Where the frame its datagram belongs to starts in the captured bytes (0; or the frame a remote-SPAN or overlay
    /// packet carried), and the link type to read that frame with once the datagram is whole.
    public var frameStart: Int
    public var frameLinkType: Int32
    /// 4 or 6.
    public var version: UInt8
    /// Offset of the IP header in the captured bytes (from `frameStart` to it: the frame's link header).
    public var ipStart: Int
    /// The datagram's headers kept in front of its payload end here (IPv4: its header; IPv6: the fragment header,
    /// which the datagram loses), and this fragment's payload starts at `payloadStart`.
    public var prefixEnd: Int
    public var payloadStart: Int
    /// Bytes the datagram's length field counts before the payload (IPv4: the header; IPv6: the extension headers
    /// before the fragment header).
    public var lengthBefore: Int
    /// IPv6: the byte that named the fragment header (the datagram's then names what the fragment header named); -1.
    public var nextHeaderAt: Int
    /// Where its fragment offset field lies (an anomaly's offset).
    public var fieldAt: Int
    /// Bytes of the datagram's payload this fragment carried on the wire, and how many of them were captured.
    public var payloadLength: Int
    public var capturedPayload: Int
    /// Where its bytes go in the datagram's payload (the fragment offset field × 8).
    public var offset: Int
    /// The M flag: more fragments follow (clear on the last).
    public var moreFragments: Bool
    /// What names its datagram (RFC 791: source, destination, protocol, identification; RFC 8200: source,
    /// destination, identification; with the VLAN it came on).
    public var identification: UInt32
    public var source: IPAddress
    public var destination: IPAddress
    /// The protocol of the datagram's payload (IPv6: the fragment header's next header).
    public var ipProtocol: UInt8
    public var vlan: UInt16

    /// Creates a fragment's description.
    @inlinable
    public init(frameStart: Int, frameLinkType: Int32, version: UInt8, ipStart: Int, prefixEnd: Int, payloadStart: Int,
                lengthBefore: Int, nextHeaderAt: Int, fieldAt: Int, payloadLength: Int, capturedPayload: Int, offset: Int,
                moreFragments: Bool, identification: UInt32, source: IPAddress, destination: IPAddress, ipProtocol: UInt8,
                vlan: UInt16) {
        self.frameStart = frameStart; self.frameLinkType = frameLinkType; self.version = version; self.ipStart = ipStart
        self.prefixEnd = prefixEnd; self.payloadStart = payloadStart; self.lengthBefore = lengthBefore
        self.nextHeaderAt = nextHeaderAt; self.fieldAt = fieldAt; self.payloadLength = payloadLength
        self.capturedPayload = capturedPayload; self.offset = offset; self.moreFragments = moreFragments
        self.identification = identification; self.source = source; self.destination = destination
        self.ipProtocol = ipProtocol; self.vlan = vlan
    }
}
