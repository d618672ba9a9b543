// Steady-state cost of the Modbus dissector per PDU: heap allocations (counted by
// alloc_counter.c) and time, for a realistic polling mix, with and without records.
// Built by scripts/fuzz/modbus-allocations with Sources/Wire, Sources/Records, Sources/Protocols/Modbus.

@_silgen_name("zw_allocation_count") func allocationCount() -> UInt

@main
struct ModbusAllocations {
    static func adu(_ tid: UInt16, _ unit: UInt8, _ pdu: [UInt8]) -> [UInt8] {
        let n = UInt16(pdu.count + 1)
        return [UInt8(tid >> 8), UInt8(tid & 0xFF), 0, 0, UInt8(n >> 8), UInt8(n & 0xFF), unit] + pdu
    }

    /// One polling cycle: request/response pairs of the kinds a SCADA poller sends.
    static func cycle(_ base: UInt16) -> [([UInt8], FlowSide)] {
        let regs = (0..<20).flatMap { [UInt8(0), UInt8($0)] }
        return [
            (adu(base, 1, [0x03, 0, 0, 0, 20]), .initiator), (adu(base, 1, [0x03, 40] + regs), .responder),
            (adu(base &+ 1, 1, [0x01, 0, 0, 0, 16]), .initiator), (adu(base &+ 1, 1, [0x01, 2, 0xA5, 0x5A]), .responder),
            (adu(base &+ 2, 2, [0x10, 0, 10, 0, 2, 4, 0, 1, 0, 2]), .initiator), (adu(base &+ 2, 2, [0x10, 0, 10, 0, 2]), .responder),
            (adu(base &+ 3, 1, [0x05, 0, 3, 0xFF, 0]), .initiator), (adu(base &+ 3, 1, [0x05, 0, 3, 0xFF, 0]), .responder),
            (adu(base &+ 4, 1, [0x2B, 0x0E, 1, 0]), .initiator),
            (adu(base &+ 4, 1, [0x2B, 0x0E, 1, 1, 0, 0, 2, 0, 4, 0x41, 0x43, 0x4D, 0x45, 1, 2, 0x5A, 0x57]), .responder),
            (adu(base &+ 5, 1, [0x03, 0, 0, 0, 1]), .initiator), (adu(base &+ 5, 1, [0x83, 2]), .responder),
        ]
    }

    static func run(records: Bool, cycles: Int) -> (allocations: UInt, nanoseconds: UInt64, pdus: Int) {
        let sink = EventSink()
        sink.pduRecordsEnabled = records
        sink.transactionRecordsEnabled = records
        sink.flow = FlowContext(initiator: Endpoint(ip: IPAddress(v4: 0x0A00_0001), port: 40000),
                                responder: Endpoint(ip: IPAddress(v4: 0x0A00_0002), port: 502), transport: .tcp)
        var dissector = ModbusDissector()
        // Packets prepared up front: the loop measures the dissector, not the test's own arrays.
        let packets = (0..<64).flatMap { cycle(UInt16($0 * 8)) }
        var frame: UInt64 = 0
        var time = PacketTime(seconds: 1_700_000_000, microseconds: 0)
        func pass(_ n: Int) {
            for _ in 0..<n {
                for (bytes, side) in packets {
                    frame &+= 1; time = time.adding(microseconds: 250)
                    sink.frame = frame; sink.time = time
                    _ = bytes.withUnsafeBytes { dissector.consume(ByteView($0), side: side, sink: sink) }
                    // What the engine does after each delivery: drain, keeping capacity.
                    sink.drainOperations { _ in }   // (reading `operations` copies them into a new array)
                    sink.anomalies.removeAll(keepingCapacity: true)
                    for k in sink.lines.indices { sink.lines[k].removeAll(keepingCapacity: true) }
                }
            }
        }
        pass(2)   // warm-up: the pending table, arena and buffers reach their working size
        let before = allocationCount()
        let start = ContinuousClock.now
        pass(cycles)
        let elapsed = ContinuousClock.now - start
        let allocations = allocationCount() - before
        let ns = UInt64(elapsed.components.seconds) * 1_000_000_000 + UInt64(elapsed.components.attoseconds / 1_000_000_000)
        return (allocations, ns, cycles * packets.count)
    }

    static func main() {
        var failed = false
        let only = CommandLine.arguments.dropFirst().first   // "off" or "on" to run one mode (profiling)
        for records in [false, true] where only == nil || (only == "on") == records {
            let r = run(records: records, cycles: only == nil ? 200 : 2000)
            let perPDU = Double(r.allocations) / Double(r.pdus)
            let ns = Double(r.nanoseconds) / Double(r.pdus)
            print("records \(records ? "on " : "off"): \(r.pdus) PDUs, \(r.allocations) allocations (\(perPDU) per PDU), \(Int(ns)) ns per PDU")
            if !records && r.allocations != 0 { failed = true }
        }
        if failed { print("FAIL: the dissector allocated on the per-PDU path without records") }
        exit(failed ? 1 : 0)
    }
}

@_silgen_name("exit") func exit(_ code: Int32) -> Never
