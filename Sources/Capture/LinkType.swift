/// The libpcap link-layer header types ZoneWatch decodes (tcpdump.org/linktypes.html).
public enum LinkType: Int32, Sendable {
    /// BSD loopback: 4-byte host-order address family.
    case null = 0
    /// Ethernet II, with optional 802.1Q / QinQ tags.
    case ethernet = 1
    /// Raw IP (as on OpenBSD's DLT_RAW 12, and LINKTYPE_RAW 101).
    case rawLegacy = 12
    /// Raw IP, version from the first nibble.
    case raw = 101
    /// OpenBSD loopback: 4-byte network-order address family.
    case loop = 108
    /// Linux cooked capture v1.
    case linuxSLL = 113
    /// Raw IPv4.
    case ipv4 = 228
    /// Raw IPv6.
    case ipv6 = 229
    /// Linux cooked capture v2.
    case linuxSLL2 = 276
}
