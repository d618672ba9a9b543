/// Text built at a pointer: on the stack, then appended to a byte array in one piece, or straight into a buffer
/// (`JSONWriter`'s).
///
/// Appending an IPv4 address or a time to a `[UInt8]` one byte at a time checked the array's uniqueness and capacity
/// per byte, a runtime call each; building it on the stack and appending it once measured faster (an address 38
/// against 59 ns). A number's few digits measured the other way round (`writeDecimal(_:to:)`).
public enum StackText {
    /// Bytes a piece may have.
    public static let capacity = 64

    /// Appends the bytes `fill` writes at the start of a `capacity`-byte stack buffer (it returns how many).
    @inlinable @inline(__always)
    public static func append(to out: inout [UInt8], _ fill: (UnsafeMutablePointer<UInt8>) -> Int) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: capacity) { buffer in
            let p = buffer.baseAddress!
            out.append(contentsOf: UnsafeBufferPointer(start: p, count: fill(p)))
        }
    }

    /// Writes the decimal digits of `value` at `p`; returns how many (1 to 20).
    @inlinable @inline(__always)
    public static func writeDecimal(_ value: UInt64, at p: UnsafeMutablePointer<UInt8>) -> Int {
        var count = 1, rest = value
        while rest >= 10 { rest /= 10; count &+= 1 }
        var v = value, i = count
        repeat { i &-= 1; p[i] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: v % 10); v /= 10 } while v > 0
        return count
    }
}
