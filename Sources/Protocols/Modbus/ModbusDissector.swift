import Wire
import Records

/// Per-flow Modbus state: the engine's entry point into this protocol (stub until the dissector lands).
public struct ModbusDissector: AppDissector {
    public static var appProtocol: AppProtocol { .modbus }
    public static func isWellKnownPort(_ port: UInt16) -> Bool { port == 502 }
    public static var maximumPDUSize: Int { 260 }
    public static func probe(_ bytes: ByteView, side: FlowSide, transport: Transport) -> ProbeVerdict { .reject }
    public init() {}
    public mutating func consume(_ bytes: ByteView, side: FlowSide, sink: EventSink) -> Int { bytes.count }
    public mutating func gap(side: FlowSide, length: Int, sink: EventSink) {}
    public mutating func finish(sink: EventSink) {}
}
