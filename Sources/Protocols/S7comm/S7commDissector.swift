import Wire
import Records

/// Per-flow S7comm state: the engine's entry point into this protocol (stub until the dissector lands).
public struct S7commDissector: AppDissector {
    public static var appProtocol: AppProtocol { .s7comm }
    public static func isWellKnownPort(_ port: UInt16) -> Bool { port == 102 }
    public static var maximumPDUSize: Int { 65535 }
    public static func probe(_ bytes: ByteView, side: FlowSide, transport: Transport) -> ProbeVerdict { .reject }
    public init() {}
    public mutating func consume(_ bytes: ByteView, side: FlowSide, sink: EventSink) -> Int { bytes.count }
    public mutating func gap(side: FlowSide, length: Int, sink: EventSink) {}
    public mutating func finish(sink: EventSink) {}
}
