import Wire

/// A flow's unconsumed stream bytes per side, waiting for the rest of a PDU: made on a flow's first need (most flows
/// never carry anything), so that the flow's per-packet lines hold one reference where two arrays took twice the room.
/// Each side's array has a stable address while the object lives, so the engine works on it in place.
public final class FlowCarries {
    @usableFromInline let sides: UnsafeMutablePointer<[UInt8]>

    /// Both sides empty.
    public init() {
        sides = .allocate(capacity: 2)
        sides.initialize(repeating: [], count: 2)
    }

    deinit {
        sides.deinitialize(count: 2)
        sides.deallocate()
    }

    /// The side's bytes, in place (valid while this object lives).
    @inlinable @inline(__always)
    public func pointer(_ side: FlowSide) -> UnsafeMutablePointer<[UInt8]> { sides + Int(side.rawValue) }

    /// Whether neither side holds bytes.
    public var areEmpty: Bool { sides[0].isEmpty && sides[1].isEmpty }
}
