// libFuzzer target for the S7comm dissector: TPKT/COTP framing and reassembly, S7comm (jobs, acks,
// userdata, SZL, PI services, block transfer), S7comm-plus, records and pairing.
// Built by scripts/fuzz/s7comm together with Sources/Wire, Sources/Records and Sources/Protocols/S7comm
// as one module (their `import Wire` / `import Records` lines are dropped for that build).
//
// Input layout: byte 0 seeds how the rest is delivered (chunk sizes, sides, gaps) and whether each chunk
// is sent as raw stream bytes or wrapped in a TPKT + COTP DT (so that the fuzzer reaches the S7 and
// S7comm-plus parsers without having to discover the framing first). The stream runs twice, writing records
// and not: both runs must emit the same operations and anomalies (`digest`).

/// One sink reused across inputs, as the engine reuses its worker's sink.
nonisolated(unsafe) let fuzzSink: EventSink = {
    let s = EventSink()
    s.pduRecordsEnabled = true
    s.transactionRecordsEnabled = true
    s.flow = FlowContext(initiator: Endpoint(ip: IPAddress(v4: 0x7F00_0001), port: 40000),
                         responder: Endpoint(ip: IPAddress(v4: 0x7F00_0002), port: 102), transport: .tcp)
    return s
}()

/// Every parser and record writer on the raw bytes, as if they were a COTP payload.
func fuzzParsers(_ v: ByteView) {
    _ = S7commDissector.probe(v, side: .initiator, transport: .tcp)
    _ = TPKT.header(v, at: 0)
    _ = TPKT.resynchronisationPoint(v, from: 0)
    if let h = COTPHeader.parse(v) {
        var it = COTPParameterIterator(v, header: h)
        while it.next() != nil {}
    }
    var j = fuzzSink.json
    j.reset()
    j.beginObject()
    if let pdu = S7PDU.parse(v) {
        S7PDURecord.writeHeader(pdu, to: &j)
        S7PDURecord.writeJob(pdu, to: &j)
        S7PDURecord.writeAck(pdu, to: &j)
        let u = S7UserdataParameters.parse(pdu.parameters)
        S7PDURecord.writeUserdata(pdu, u, complete: nil, to: &j)
        S7PDURecord.writeUserdata(pdu, u, complete: pdu.data, to: &j)
    }
    S7SZL.writeResponse(v, to: &j)
    _ = S7Timestamp.parse(v)
    _ = S7PIService.parse(v).map { s in (0..<s.blockCount).map { s.block($0) } }
    _ = S7BlockTransfer.parse(v, rosctr: 1)
    _ = S7BlockTransfer.parse(v, rosctr: 3)
    if let f = S7PlusFrame.parse(v) { _ = S7PlusDataHeader.parse(v, start: f.dataStart, end: f.dataEnd) }
    j.endObject()
}

@_cdecl("LLVMFuzzerTestOneInput")
public func s7commFuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data, size > 0 else { return 0 }
    let all = ByteView(UnsafeRawBufferPointer(start: data, count: size))
    let control = all.u8(0)
    let stream = all.suffix(from: 1)
    fuzzParsers(stream)
    precondition(run(stream, control: control, records: true) == run(stream, control: control, records: false),
                 "records on and off emit differently")
    return 0
}

/// The stream path, with an engine-like carry per side; returns the digest of what it emitted.
func run(_ stream: ByteView, control: UInt8, records: Bool) -> UInt64 {
    let sink = fuzzSink
    sink.pduRecordsEnabled = records
    sink.transactionRecordsEnabled = records
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    let counts = sink.pduCounts
    var dissector = S7commDissector()
    var carry: [[UInt8]] = [[], []]
    var seed = UInt32(control) &* 2_654_435_761 | 1
    var offset = 0
    var frame: UInt64 = 0
    let wrap = control & 0x80 != 0
    while offset < stream.count {
        seed ^= seed << 13; seed ^= seed >> 17; seed ^= seed << 5
        let side: FlowSide = seed & 1 == 0 ? .initiator : .responder
        let length = min(stream.count - offset, 1 + Int(seed >> 8) % (wrap ? 300 : 64))
        frame += 1
        sink.frame = frame
        sink.time = PacketTime(seconds: 1_000 + Int64(frame), microseconds: 0)
        let s = Int(side.rawValue)
        if seed & 0x3E == 0x3E {
            carry[s].removeAll()
            dissector.gap(side: side, length: 10, sink: sink)
        }
        var chunk = Array(stream.slice(from: offset, length: length).raw)
        if wrap {
            // TPKT + class-0 DT; EOT unless the seed says this piece continues.
            let eot: UInt8 = seed & 0x40 == 0 ? 0x80 : 0x00
            let total = chunk.count + 7
            chunk = [0x03, 0x00, UInt8(total >> 8), UInt8(total & 0xFF), 0x02, 0xF0, eot] + chunk
        }
        let input = carry[s] + chunk
        let used = input.withUnsafeBytes { dissector.consume(ByteView($0), side: side, sink: sink) }
        precondition(used >= 0 && used <= input.count, "consumed \(used) of \(input.count)")
        carry[s] = used < input.count ? Array(input[used...].prefix(70_000)) : []
        offset += length
        digest(sink, into: &h)
        for k in sink.lines.indices { sink.lines[k].removeAll(keepingCapacity: true) }
    }
    dissector.finish(sink: sink)
    for k in sink.lines.indices { sink.lines[k].removeAll(keepingCapacity: true) }
    digest(sink, into: &h)
    for (p, c) in zip(sink.pduCounts, counts) { h = (h ^ (p &- c)) &* 0x100_0000_01B3 }
    return h
}
