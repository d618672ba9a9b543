import Wire
import Records

// Request/response pairing and select-before-operate (IEEE 1815-2012 §4.4.2, §4.4.4):
//
//   * A solicited response carries the sequence number of the request it answers; a multi-fragment
//     response continues with consecutive numbers (FIR on the first fragment, FIN on the last).
//   * An OPERATE must follow its SELECT with the next sequence number (mod 16) and exactly the same
//     objects, within the outstation's select timeout. Anything else is refused by a compliant
//     outstation — and is worth reporting when it is seen on the wire.

/// A request waiting for its response.
public struct DNP3PendingRequest: Sendable {
    /// Whether the slot holds a request.
    public var active = false
    /// The request's function code.
    public var function: UInt8 = 0
    /// Its access class.
    public var access: AccessClass = .read
    /// Master (link source of the request).
    public var source: UInt16 = 0
    /// Outstation (link destination of the request).
    public var destination: UInt16 = 0
    /// Application sequence number.
    public var sequence: UInt8 = 0
    /// Packet that completed the request.
    public var frame: UInt64 = 0
    /// Its time.
    public var time: PacketTime = .zero
    /// Response fragments seen so far (multi-fragment responses).
    public var responseFragments = 0
    /// Packet of the first response fragment.
    public var responseFrame: UInt64 = 0
}

/// A SELECT waiting for its OPERATE.
public struct DNP3PendingSelect: Sendable {
    /// Whether a SELECT is pending.
    public var active = false
    /// Master and outstation addresses.
    public var source: UInt16 = 0, destination: UInt16 = 0
    /// The SELECT's sequence number.
    public var sequence: UInt8 = 0
    /// Octets of objects and their FNV-1a hash: the OPERATE must repeat them exactly.
    public var objectLength = 0, objectHash: UInt64 = 0
    /// When it was seen.
    public var time: PacketTime = .zero
}

/// What an OPERATE found when checked against the pending SELECT.
public enum DNP3OperateCheck: Sendable, Equatable {
    /// A matching SELECT preceded it.
    case matched
    /// No SELECT was pending.
    case withoutSelect
    /// A SELECT was pending but with other objects or a sequence number that does not follow.
    case mismatch
    /// The SELECT was older than the select timeout.
    case expired
}

/// Per-flow application session state: fixed tables, allocated once with the flow state.
public struct DNP3Session {
    /// How long a SELECT stays armed (opendnp3's default outstation select timeout).
    public static let selectTimeoutMicroseconds: Int64 = 10_000_000

    /// Pending requests, indexed by requester side × 16 + sequence.
    public var requests = [DNP3PendingRequest](repeating: DNP3PendingRequest(), count: 32)
    /// The request whose multi-fragment response is in progress, per responder side; -1 when none.
    public var openResponse: (Int, Int) = (-1, -1)
    /// The next response sequence expected for the open response, per responder side.
    public var openResponseNext: (UInt8, UInt8) = (0, 0)
    /// Pending SELECT per requester side.
    public var selects = [DNP3PendingSelect](repeating: DNP3PendingSelect(), count: 2)

    /// Creates empty tables.
    public init() {}

    /// The request slot for `side`'s request number `sequence`.
    @inlinable public static func slot(side: FlowSide, sequence: UInt8) -> Int { Int(side.rawValue) * 16 + Int(sequence & 0x0F) }

    /// FNV-1a over the objects of a fragment (everything after its 2-octet request header).
    public static func objectHash(_ fragment: ByteView, from offset: Int) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        var i = offset
        while i < fragment.count { h = (h ^ UInt64(fragment.u8(i))) &* 0x0000_0100_0000_01B3; i += 1 }
        return h
    }

    /// Arms a SELECT.
    public mutating func select(side: FlowSide, source: UInt16, destination: UInt16, sequence: UInt8,
                                fragment: ByteView, objectsAt offset: Int, time: PacketTime) {
        selects[Int(side.rawValue)] = DNP3PendingSelect(active: true, source: source, destination: destination,
                                                         sequence: sequence, objectLength: max(0, fragment.count - offset),
                                                         objectHash: DNP3Session.objectHash(fragment, from: offset), time: time)
    }

    /// Checks an OPERATE against the pending SELECT and disarms it.
    public mutating func operate(side: FlowSide, source: UInt16, destination: UInt16, sequence: UInt8,
                                 fragment: ByteView, objectsAt offset: Int, time: PacketTime) -> DNP3OperateCheck {
        let s = selects[Int(side.rawValue)]
        selects[Int(side.rawValue)].active = false
        guard s.active, s.source == source, s.destination == destination else { return .withoutSelect }
        guard time.microseconds(since: s.time) <= DNP3Session.selectTimeoutMicroseconds else { return .expired }
        guard sequence == (s.sequence &+ 1) & 0x0F, s.objectLength == max(0, fragment.count - offset),
              s.objectHash == DNP3Session.objectHash(fragment, from: offset) else { return .mismatch }
        return .matched
    }
}
