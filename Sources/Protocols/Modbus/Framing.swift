// Stream framing: cuts one direction's reassembled bytes into ADUs (NIO's LengthFieldBasedFrameDecoder
// shape: wait for the header, then for `length` bytes) and resynchronises after a gap or a bad header.
//
// States per direction:
//   synced   — the next byte starts an MBAP header; a header with protocol id ≠ 0 or an impossible
//              length is reported (bad_protocol_id / bad_length) and sends us hunting.
//   hunting  — after a gap or a bad header: scan forward one byte at a time for an ADU that passes
//              `MBAPHeader.plausibility` (the probe's rule), counting what is skipped as consumed.
//
// Every step either returns an ADU, advances the offset, or stops: a loop over `next` always ends.
import Wire

/// One direction's framing state.
public struct ModbusFraming: Sendable {
    // 5 bytes, 2-aligned (a 64-bit count made it 16). The dissector keeps `hunting` (read by every delivery) in its
    // first line and the count in its second.
    /// Bytes skipped in the current hunt, in two 16-bit halves.
    private var skippedLow: UInt16 = 0, skippedHigh: UInt16 = 0
    /// Whether we are looking for the next plausible header.
    public private(set) var hunting = false
    /// Bytes skipped in the current hunt (counting stops at 2^32 - 1, a hunt through 4 GiB of garbage).
    public private(set) var skipped: Int {
        @inline(__always) get { Int(skippedHigh) << 16 | Int(skippedLow) }
        @inline(__always) set {
            let n = UInt32(clamping: newValue)
            skippedLow = UInt16(truncatingIfNeeded: n); skippedHigh = UInt16(truncatingIfNeeded: n >> 16)
        }
    }

    /// Creates a synced framer.
    public init() {}

    /// A framer in the state `hunting` with `skippedCount` bytes skipped (the dissector keeps the two apart).
    @inline(__always) init(hunting: Bool, skippedCount: UInt32) {
        self.hunting = hunting
        skippedLow = UInt16(truncatingIfNeeded: skippedCount); skippedHigh = UInt16(truncatingIfNeeded: skippedCount >> 16)
    }

    /// `skipped` as stored.
    @inline(__always) var skippedCount: UInt32 { UInt32(skippedHigh) << 16 | UInt32(skippedLow) }

    /// What the framer found at the current offset.
    public enum Step: Sendable, Equatable {
        /// A whole ADU at `offset` with `header`.
        case adu(offset: Int, header: MBAPHeader)
        /// A bad header at `offset` (now hunting); the anomaly is `kind` with `value`.
        case badHeader(offset: Int, kind: BadHeader, value: Int)
        /// Sync regained at `offset` after skipping `skipped` bytes (reported as `resync`).
        case resynced(offset: Int, skipped: Int)
        /// Nothing more to do: consume up to `consumed` and wait for more bytes.
        case needMoreData(consumed: Int)
    }

    /// The header fault that started a hunt.
    public enum BadHeader: Sendable, Equatable {
        /// Protocol identifier ≠ 0.
        case protocolID
        /// Length < 2 or beyond the tolerated maximum.
        case length
    }

    /// Drops sync: the bytes that follow do not continue the stream we had (a gap).
    public mutating func lostSync() { hunting = true; skipped = 0 }

    /// Finds the next thing at or after `offset` in `bytes`.
    public mutating func next(_ bytes: ByteView, from offset: Int) -> Step {
        if hunting {
            var p = offset
            while p < bytes.count {
                switch MBAPHeader.plausibility(bytes, at: p) {
                case .plausible:
                    hunting = false
                    let s = skipped + (p - offset)
                    skipped = 0
                    if s > 0 { return .resynced(offset: p, skipped: s) }
                    return next(bytes, from: p)
                case .incomplete:
                    // Keep these bytes: the engine presents them again with what follows.
                    skipped += p - offset
                    return .needMoreData(consumed: p)
                case .implausible:
                    p += 1
                }
            }
            skipped += p - offset
            return .needMoreData(consumed: p)
        }
        guard let h = MBAPHeader(bytes, at: offset), bytes.has(MBAPHeader.size + 1, at: offset) else {
            // A short tail can still be judged on what it has: a wrong protocol id shows in 4 bytes.
            if bytes.has(4, at: offset), bytes.u16be(offset + 2) != 0 {
                hunting = true; skipped = 0
                return .badHeader(offset: offset, kind: .protocolID, value: Int(bytes.u16be(offset + 2)))
            }
            return .needMoreData(consumed: offset)
        }
        if h.protocolID != 0 {
            hunting = true; skipped = 0
            return .badHeader(offset: offset, kind: .protocolID, value: Int(h.protocolID))
        }
        if h.length < 2 || h.length > MBAPHeader.toleratedLength {
            hunting = true; skipped = 0
            return .badHeader(offset: offset, kind: .length, value: Int(h.length))
        }
        guard bytes.has(h.aduLength, at: offset) else { return .needMoreData(consumed: offset) }
        return .adu(offset: offset, header: h)
    }
}
