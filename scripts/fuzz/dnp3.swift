// libFuzzer target for the DNP3 dissector: link framing and resynchronisation, CRC checks, transport
// reassembly, application headers, object headers and point values, pairing and records.
// Built and run by scripts/fuzz/dnp3 (swiftc -sanitize=fuzzer,address); a trap or a sanitizer report
// is a bug.
//
// The first input octet picks how the rest is used, so that the fuzzer reaches every layer:
//   0 mod 4  a TCP byte stream, cut into segments at points taken from the input, both directions
//   1 mod 4  UDP datagrams (length-prefixed)
//   2 mod 4  link frames built with correct CRCs from (control, transport, length, data) records, so
//            mutations land in the transport and application layers instead of failing a CRC
//   3 mod 4  one application fragment handed straight to the application-layer parser and writers
//
// Modes 0-2 run twice, writing records and not: both runs must emit the same operations and anomalies
// (`digest`). Mode 3 checks the object summary's common-header walk against the general one.

import Wire
import Records
@testable import DNP3

/// Appends a link frame with real CRCs around `userData` (at most 250 octets).
func appendFrame(_ out: inout [UInt8], control: UInt8, destination: UInt16, source: UInt16, userData: ArraySlice<UInt8>) {
    var header: [UInt8] = [0x05, 0x64, UInt8(userData.count + 5), control,
                           UInt8(destination & 0xFF), UInt8(destination >> 8), UInt8(source & 0xFF), UInt8(source >> 8)]
    let crc = ByteView.with(header) { DNP3CRC.compute($0, from: 0, count: 8) }
    header += [UInt8(crc & 0xFF), UInt8(crc >> 8)]
    out += header
    var i = userData.startIndex
    while i < userData.endIndex {
        let block = Array(userData[i..<min(i + 16, userData.endIndex)])
        let c = ByteView.with(block) { DNP3CRC.compute($0, from: 0, count: block.count) }
        out += block + [UInt8(c & 0xFF), UInt8(c >> 8)]
        i += 16
    }
}

func makeSink(_ transport: Transport, records: Bool) -> EventSink {
    let sink = EventSink()
    sink.pduRecordsEnabled = records
    sink.transactionRecordsEnabled = records
    sink.flow = FlowContext(initiator: Endpoint(ip: IPAddress(v4: 0x0A00_0001), port: 40000),
                            responder: Endpoint(ip: IPAddress(v4: 0x0A00_0002), port: 20000), transport: transport)
    return sink
}

/// Feeds `segment` the way the engine does: the unconsumed tail of the side comes first.
func feed(_ d: inout DNP3Dissector, _ tails: inout [[UInt8]], _ segment: ArraySlice<UInt8>, side: FlowSide, sink: EventSink,
          digest h: inout UInt64) {
    let s = Int(side.rawValue)
    let input = tails[s] + segment
    let used = ByteView.with(input) { d.consume($0, side: side, sink: sink) }
    precondition(used >= 0 && used <= input.count, "consume returned an impossible count")
    tails[s] = Array(input[used...])
    precondition(tails[s].count <= DNP3Dissector.maximumPDUSize, "unconsumed tail larger than maximumPDUSize")
    sink.frame &+= 1
    digest(sink, into: &h)
    for k in sink.lines.indices { sink.lines[k].removeAll(keepingCapacity: true) }
}

func fuzzStream(_ data: ArraySlice<UInt8>, records: Bool) -> UInt64 {
    let sink = makeSink(.tcp, records: records)
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    var d = DNP3Dissector(), tails: [[UInt8]] = [[], []]
    var i = data.startIndex, side = FlowSide.initiator
    while i < data.endIndex {
        let cut = Int(data[i]) % 64 + 1
        let end = min(data.endIndex, i + 1 + cut)
        feed(&d, &tails, data[(i + 1)..<end], side: side, sink: sink, digest: &h)
        if data[i] & 0x80 != 0 { side = side.opposite }
        if data[i] & 0x40 != 0 && data[i] & 0x3F == 0 { d.gap(side: side, length: cut, sink: sink); tails[Int(side.rawValue)] = [] }
        i = end
    }
    d.finish(sink: sink)
    digest(sink, into: &h)
    for p in sink.pduCounts { h = (h ^ p) &* 0x100_0000_01B3 }
    return h
}

func fuzzDatagrams(_ data: ArraySlice<UInt8>, records: Bool) -> UInt64 {
    let sink = makeSink(.udp, records: records)
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    var d = DNP3Dissector()
    var i = data.startIndex
    while i < data.endIndex {
        let n = Int(data[i]) + 1
        let end = min(data.endIndex, i + 1 + n)
        let datagram = Array(data[(i + 1)..<end])
        let used = ByteView.with(datagram) { d.consume($0, side: data[i] & 1 == 0 ? .initiator : .responder, sink: sink) }
        precondition(used >= 0 && used <= datagram.count)
        sink.frame &+= 1
        digest(sink, into: &h)
        for k in sink.lines.indices { sink.lines[k].removeAll(keepingCapacity: true) }
        i = end
    }
    d.finish(sink: sink)
    digest(sink, into: &h)
    for p in sink.pduCounts { h = (h ^ p) &* 0x100_0000_01B3 }
    return h
}

func fuzzFrames(_ data: ArraySlice<UInt8>, records: Bool) -> UInt64 {
    let sink = makeSink(.tcp, records: records)
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    var d = DNP3Dissector(), tails: [[UInt8]] = [[], []]
    var i = data.startIndex
    while i + 3 <= data.endIndex {
        let control = data[i], transport = data[i + 1], length = Int(data[i + 2]) % 250
        let start = i + 3, end = min(data.endIndex, start + length)
        var stream: [UInt8] = []
        var user: [UInt8] = [transport]
        user += data[start..<end]
        let fromMaster = control & 0x80 != 0
        appendFrame(&stream, control: control, destination: fromMaster ? 10 : 1, source: fromMaster ? 1 : 10,
                    userData: user.prefix(250))
        feed(&d, &tails, stream[...], side: fromMaster ? .initiator : .responder, sink: sink, digest: &h)
        i = end
    }
    d.finish(sink: sink)
    digest(sink, into: &h)
    for p in sink.pduCounts { h = (h ^ p) &* 0x100_0000_01B3 }
    return h
}

func fuzzFragment(_ data: ArraySlice<UInt8>) {
    let fragment = Array(data)
    ByteView.with(fragment) { v in
        guard let ah = try? DNP3ApplicationHeader.parse(v) else { return }
        let objects = DNP3ObjectSummary(fragment: v, header: ah)
        precondition(objects == DNP3ObjectSummary(walkingEveryHeaderOf: v, header: ah), "common-header walk disagrees")
        let access = DNP3Classifier.access(ah.function, objects: objects)
        var json = JSONWriter(capacity: 1024)
        json.beginObject()
        DNP3Records.writeApplication(v, header: ah, transport: DNP3TransportHeader(0xC0), segments: 1, access: access, to: &json)
        json.endObject()
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func LLVMFuzzerTestOneInput(_ pointer: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    guard count > 0 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: pointer, count: count))
    let rest = bytes[1...]
    switch bytes[0] % 4 {
    case 0: precondition(fuzzStream(rest, records: true) == fuzzStream(rest, records: false), "records on and off emit differently")
    case 1: precondition(fuzzDatagrams(rest, records: true) == fuzzDatagrams(rest, records: false), "records on and off emit differently")
    case 2: precondition(fuzzFrames(rest, records: true) == fuzzFrames(rest, records: false), "records on and off emit differently")
    default: fuzzFragment(rest)
    }
    return 0
}
