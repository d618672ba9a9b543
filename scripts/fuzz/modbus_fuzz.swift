// libFuzzer target for the Modbus dissector: probe, PDU parser, JSON writer and the stream path
// (framing, resynchronisation, pairing, records) driven the way the engine drives it.
// Built by scripts/fuzz/modbus together with Sources/Wire, Sources/Records and Sources/Protocols/Modbus
// as one module (their `import Wire` / `import Records` lines are dropped for that build).
//
// Input layout: byte 0 seeds how the rest is cut into deliveries (chunk sizes, sides, gaps, timing;
// bit 7 selects UDP);
// the rest is the stream. So the fuzzer explores framing across arbitrary segment boundaries, not only
// single PDUs.

/// One sink reused across inputs, as the engine reuses its worker's sink.
nonisolated(unsafe) let fuzzSink: EventSink = {
    let s = EventSink()
    s.pduRecordsEnabled = true
    s.transactionRecordsEnabled = true
    return s
}()
let tcpFlow = FlowContext(initiator: Endpoint(ip: IPAddress(v4: 0x7F00_0001), port: 40000),
                          responder: Endpoint(ip: IPAddress(v4: 0x7F00_0001), port: 502), transport: .tcp)
let udpFlow = FlowContext(initiator: Endpoint(ip: IPAddress(v4: 0x7F00_0001), port: 40000),
                          responder: Endpoint(ip: IPAddress(v4: 0x7F00_0001), port: 502), transport: .udp)

@_cdecl("LLVMFuzzerTestOneInput")
public func modbusFuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data, size > 0 else { return 0 }
    let all = ByteView(UnsafeRawBufferPointer(start: data, count: size))
    let control = all.u8(0)
    let stream = all.suffix(from: 1)

    // Stateless entry points on the whole input.
    _ = ModbusDissector.probe(stream, side: .initiator, transport: .tcp)
    _ = ModbusDissector.probe(stream, side: .responder, transport: .udp)
    for direction in [ModbusDirection.request, .response] {
        let pdu = ModbusPDU.parse(stream, direction: direction)
        fuzzSink.json.reset()
        ModbusJSON.writeFields(pdu, bytes: stream, request: pdu, into: &fuzzSink.json)
        _ = ModbusPDU.fitsLayout(stream)
    }

    // The stream path, with an engine-like carry per side (TCP) or whole datagrams (UDP, control bit 7).
    let sink = fuzzSink
    let udp = control & 0x80 != 0
    sink.flow = udp ? udpFlow : tcpFlow
    var dissector = ModbusDissector()
    var limits = ModbusLimits()
    limits.maximumPendingRequests = 4          // small bounds so eviction, flood and storm paths run
    limits.requestFloodThreshold = 3
    limits.exceptionStormThreshold = 2
    limits.responseTimeoutMicroseconds = 50_000
    dissector.limits = limits
    var carry: [[UInt8]] = [[], []]
    var seed = UInt32(control) &* 2_654_435_761 | 1
    var offset = 0
    var frame: UInt64 = 0
    var time = PacketTime(seconds: 1_000, microseconds: 0)
    while offset < stream.count {
        seed ^= seed << 13; seed ^= seed >> 17; seed ^= seed << 5
        let side: FlowSide = seed & 1 == 0 ? .initiator : .responder
        let length = min(stream.count - offset, 1 + Int(seed >> 8) % 64)
        frame += 1
        time = time.adding(microseconds: Int64(seed >> 20))
        sink.frame = frame; sink.time = time
        let s = Int(side.rawValue)
        if seed & 0x1E == 0x1E {
            carry[s].removeAll()
            dissector.gap(side: side, length: length, sink: sink)
        } else {
            carry[s].append(contentsOf: stream.slice(from: offset, length: length).raw)
            let used = carry[s].withUnsafeBytes { dissector.consume(ByteView($0), side: side, sink: sink) }
            precondition(used >= 0 && used <= carry[s].count, "consumed out of range")
            carry[s].removeFirst(used)
            if udp { carry[s].removeAll() }
            if carry[s].count > ModbusDissector.maximumPDUSize {
                carry[s].removeAll()
                dissector.gap(side: side, length: 0, sink: sink)
            }
        }
        offset += length
    }
    dissector.finish(sink: sink)
    for k in sink.lines.indices { sink.lines[k].removeAll(keepingCapacity: true) }
    sink.operations.removeAll(keepingCapacity: true)
    sink.anomalies.removeAll(keepingCapacity: true)
    return 0
}
