/// A packet's capture time: seconds since the Unix epoch and microseconds. Records carry packet time,
/// never the wall clock, so that the same input always gives byte-identical output.
public struct PacketTime: Hashable, Comparable, Sendable {
    /// How far packet time may go back, in whole seconds, and still count as the same timeline (packets reordered
    /// between capture queues, a small clock correction): a step back of more than this is a clock discontinuity (a
    /// sensor's clock set back, captures concatenated out of order), which the engine and detection handle as one.
    public static let clockStepSeconds: Int64 = 60

    /// Whether a packet of whole second `second` steps packet time back by more than `clockStepSeconds` from the
    /// latest second swept to, `nextSweep - 1`. An engine checks it against its own next sweep; a reader feeding
    /// several engines sweeps them all at such a packet, as at a new second, so each meets the step at the same frame.
    @inlinable @inline(__always)
    public static func stepsBack(second: Int64, nextSweep: Int64) -> Bool { nextSweep > second &+ 1 &+ clockStepSeconds }

    /// Whether a reader feeding several engines sweeps them all at a packet of whole second `second`, its next sweep
    /// due at `nextSweep`: a new second, or a clock step (`stepsBack`). The reader's next sweep is then `second + 1`.
    @inlinable @inline(__always)
    public static func sweeps(second: Int64, nextSweep: Int64) -> Bool { second >= nextSweep || stepsBack(second: second, nextSweep: nextSweep) }

    /// Whole seconds since 1970-01-01T00:00:00Z.
    public var seconds: Int64
    /// Microseconds within the second, 0..<1_000_000.
    public var microseconds: Int32

    /// Creates a time; microseconds are normalised into range.
    @inlinable public init(seconds: Int64, microseconds: Int32) {
        var s = seconds, us = Int64(microseconds)
        if us >= 1_000_000 || us < 0 { s += us / 1_000_000; us %= 1_000_000; if us < 0 { us += 1_000_000; s -= 1 } }
        self.seconds = s; self.microseconds = Int32(us)
    }

    /// Creates a time whose microseconds the caller knows are in 0..<1_000_000 (no normalising branch to inline).
    @inlinable @inline(__always) public init(seconds: Int64, microsecondsInRange microseconds: Int32) {
        self.seconds = seconds; self.microseconds = microseconds
    }

    /// The epoch.
    public static let zero = PacketTime(seconds: 0, microseconds: 0)

    /// Total microseconds since the epoch.
    @inlinable public var totalMicroseconds: Int64 { seconds &* 1_000_000 &+ Int64(microseconds) }

    /// The time `us` microseconds later.
    @inlinable public func adding(microseconds us: Int64) -> PacketTime {
        let total = totalMicroseconds &+ us
        var s = total / 1_000_000, r = total % 1_000_000
        if r < 0 { r += 1_000_000; s -= 1 }
        return PacketTime(seconds: s, microseconds: Int32(r))
    }

    /// Microseconds from `other` to `self`.
    @inlinable public func microseconds(since other: PacketTime) -> Int64 { totalMicroseconds &- other.totalMicroseconds }

    public static func < (a: PacketTime, b: PacketTime) -> Bool { a.totalMicroseconds < b.totalMicroseconds }

    /// Appends RFC 3339 UTC text with microseconds: `2024-01-01T00:00:00.123456Z`.
    public func writeRFC3339(to out: inout [UInt8]) {
        StackText.append(to: &out) { writeRFC3339(at: $0) }
    }

    /// `writeRFC3339(to:)` at `p`: always 27 bytes (the year clamped to 0...9999), returns 27.
    @inlinable @inline(__always)
    public func writeRFC3339(at p: UnsafeMutablePointer<UInt8>) -> Int {
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secOfDay = seconds - days * 86_400
        let (y, m, d) = PacketTime.civil(fromDays: days)
        @inline(__always) func digit(_ i: Int, _ v: Int64) { p[i] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: v) }
        @inline(__always) func two(_ i: Int, _ v: Int64) { digit(i, v / 10); digit(i + 1, v % 10) }
        @inline(__always) func mark(_ i: Int, _ c: Unicode.Scalar) { p[i] = UInt8(ascii: c) }
        let year = max(0, min(9999, y))
        digit(0, year / 1000); digit(1, year / 100 % 10); two(2, year % 100); mark(4, "-"); two(5, m); mark(7, "-"); two(8, d)
        mark(10, "T"); two(11, secOfDay / 3600); mark(13, ":"); two(14, secOfDay / 60 % 60); mark(16, ":"); two(17, secOfDay % 60)
        mark(19, ".")
        var us = Int64(microseconds), div: Int64 = 100_000, i = 20
        while div > 0 { digit(i, us / div); us %= div; div /= 10; i += 1 }
        mark(26, "Z")
        return 27
    }

    /// RFC 3339 text.
    public var rfc3339: String { var o: [UInt8] = []; writeRFC3339(to: &o); return String(decoding: o, as: UTF8.self) }

    /// Days since the epoch to (year, month, day), Howard Hinnant's civil_from_days.
    @inlinable static func civil(fromDays z0: Int64) -> (Int64, Int64, Int64) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (m <= 2 ? y + 1 : y, m, d)
    }
}
