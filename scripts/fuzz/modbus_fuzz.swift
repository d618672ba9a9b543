// libFuzzer target for the Modbus dissector: probe, PDU parser, JSON writer and the stream path
// (framing, resynchronisation, pairing, records) driven the way the engine drives it.
// Built by scripts/fuzz/modbus together with Sources/Wire, Sources/Records and Sources/Protocols/Modbus
// as one module (their `import Wire` / `import Records` lines are dropped for that build).
//
// Input layout: byte 0 seeds how the rest is cut into deliveries (chunk sizes, sides, gaps, timing;
// bit 7 selects UDP);
// the rest is the stream. So the fuzzer explores framing across arbitrary segment boundaries, not only
// single PDUs.

/// Sinks reused across inputs, as the engine reuses its worker's sink: records on (general path) and off
/// (common PDUs take the fast path); both must see the same operations and anomalies.
nonisolated(unsafe) let fuzzSink: EventSink = {
    let s = EventSink()
    s.pduRecordsEnabled = true
    s.transactionRecordsEnabled = true
    return s
}()
nonisolated(unsafe) let fuzzSinkNoRecords = EventSink()
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
        // The fast path takes a PDU exactly when the parser finds it a well-formed FC 1-6, 15 or 16, with its fields.
        let wellFormed = pdu.problems.isEmpty && [1, 2, 3, 4, 5, 6, 15, 16].contains(pdu.rawFunctionCode)
        if let f = ModbusFields.common(stream, direction: direction) {
            let g = pdu.fields
            precondition(wellFormed && f.rawFunctionCode == g.rawFunctionCode && f.address == g.address && f.quantity == g.quantity
                         && f.value == g.value && f.byteCount == g.byteCount, "fast path fields differ from the parser's")
        } else {
            precondition(!wellFormed, "a well-formed common PDU missed the fast path")
        }
    }

    // The stream path, twice: records on and off must give the same operations and anomalies.
    let on = streamPath(stream, control: control, sink: fuzzSink)
    let off = streamPath(stream, control: control, sink: fuzzSinkNoRecords)
    precondition(on.operations == off.operations, "operations differ with records on and off")
    precondition(on.anomalies == off.anomalies, "anomalies differ with records on and off")
    return 0
}

/// Drives one dissector over `stream` the way the engine does (an engine-like carry per side for TCP, whole
/// datagrams for UDP: control bit 7), and returns fingerprints of the operations and anomalies it emitted.
func streamPath(_ stream: ByteView, control: UInt8, sink: EventSink) -> (operations: [UInt64], anomalies: [UInt64]) {
    var operations: [UInt64] = [], anomalies: [UInt64] = []
    func collect() {
        sink.drainOperations { o in
            operations.append(fingerprint([UInt64(o.access.rawValue), UInt64(o.functionCode), UInt64(bitPattern: Int64(o.subfunction)),
                                           UInt64(bitPattern: Int64(o.unitID)), UInt64(bitPattern: o.address),
                                           UInt64(bitPattern: o.quantity), o.broadcast ? 1 : 0, UInt64(o.sender.rawValue), o.frame,
                                           UInt64(o.function.utf8CodeUnitCount), o.unitRepeated ? 1 : 0]))
        }
        for a in sink.anomalies {
            anomalies.append(fingerprint([UInt64(a.kind.utf8CodeUnitCount), UInt64(bitPattern: Int64(a.offset)),
                                          UInt64(bitPattern: a.value ?? -1), a.frame, UInt64(a.sender.rawValue)]))
        }
        sink.anomalies.removeAll(keepingCapacity: true)
    }
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
        collect()
        offset += length
    }
    dissector.finish(sink: sink)
    collect()
    for k in sink.lines.indices { sink.lines[k].removeAll(keepingCapacity: true) }
    return (operations, anomalies)
}

/// FNV-1a over the words.
func fingerprint(_ words: [UInt64]) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for w in words { h = (h ^ w) &* 0x100_0000_01b3 }
    return h
}
