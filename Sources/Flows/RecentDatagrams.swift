import Wire

/// The last few UDP datagrams one side of a flow sent, as prints and times, to tell a capture's copy of a datagram
/// from a new one.
///
/// A capture may hold every packet twice: a SPAN session mirroring both ports of a conversation (or a VLAN's ingress
/// and egress), two TAPs merged into one sensor port, a PRP network's two LANs both tapped, a Windows loopback
/// capture's broadcasts. The endpoint takes one copy (PRP's receiver discards the other by design); a dissector fed
/// both sees every request twice (a DNP3 OPERATE after its SELECT's copy, the same transport segment again) and the
/// policy alerts twice. TCP needs nothing of this: the stream takes the copy as a retransmission. A datagram is a
/// copy when it has the print of one of its side's last four datagrams, seen at most `window` before or after it
/// (four: a sender's burst, a DNP3 response's fragments, may come before the first copy does). The print hashes,
/// under the flow table's key, the flow's serial, the side, the IPv4 identification (0 for IPv6) and the payload
/// with its length, so a sender cannot make another datagram pass for a copy without the key. Senders that repeat a
/// datagram themselves (a DNP3 or Modbus/UDP retry) do so after a timeout of hundreds of milliseconds at the least,
/// well past the window; copies come microseconds apart.
public struct RecentDatagrams {
    /// The prints, latest first (0: none).
    var prints = SIMD4<UInt32>(repeating: 0)
    /// When each was seen, in ticks of 8 µs (mod 2^32: about 9.5 hours).
    var ticks = SIMD4<UInt32>(repeating: 0)

    /// How far apart a datagram and its copy may be seen, in microseconds.
    public static let windowMicroseconds: Int64 = 10_000
    static let windowTicks = UInt32(windowMicroseconds / 8)

    /// Whether a datagram with print `print` seen at `time` copies one recorded here; if not, it is recorded (the
    /// oldest record dropped).
    public mutating func isCopy(_ print: UInt32, at time: PacketTime) -> Bool {
        let tick = UInt32(truncatingIfNeeded: time.totalMicroseconds >> 3)
        // Within the window either way (a copy may be captured a little before its original).
        let near = (SIMD4(repeating: tick) &- ticks &+ RecentDatagrams.windowTicks) .<= SIMD4(repeating: 2 * RecentDatagrams.windowTicks)
        if any((prints .== SIMD4(repeating: print)) .& near) { return true }
        prints = SIMD4(print, prints[0], prints[1], prints[2])
        ticks = SIMD4(tick, ticks[0], ticks[1], ticks[2])
        return false
    }

    /// The print of a datagram of flow `serial` from side `side` (0 or 1) with IP identification `identification`
    /// and payload `payload`, under `key` (never 0): 8 bytes at a time, each multiplied in and its high bits folded
    /// down, the last 8 read where they end (overlapping the word before; the length is in the seed), a full mix
    /// last. Datagrams on ICS ports are a few hundred bytes at most.
    public static func print(serial: UInt64, side: UInt8, identification: UInt16, payload: ByteView, key: FlowHashKey) -> UInt32 {
        let n = payload.count
        var h = mix(key.value ^ serial &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(n) << 24 ^ UInt64(identification) << 8 ^ UInt64(side))
        @inline(__always) func step(_ word: UInt64) { h = (h ^ word) &* 0xD6E8_FEB8_6659_FD93; h ^= h >> 31 }
        if let p = payload.raw.baseAddress {
            if n >= 8 {
                var i = 0
                while i + 8 < n { step(p.loadUnaligned(fromByteOffset: i, as: UInt64.self)); i += 8 }
                step(p.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self))
            } else {
                var tail: UInt64 = 0
                for i in 0..<n { tail = tail << 8 | UInt64(p.load(fromByteOffset: i, as: UInt8.self)) }
                step(tail)
            }
        }
        return UInt32(truncatingIfNeeded: mix(h) >> 32) | 1
    }

    /// One round of the hash: a multiply, with the high bits folded back.
    @inline(__always)
    static func mix(_ x: UInt64) -> UInt64 {
        let m = (x ^ x >> 32) &* 0xD6E8_FEB8_6659_FD93
        return m ^ m >> 29
    }
}
