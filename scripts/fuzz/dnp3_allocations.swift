// Steady-state cost of the DNP3 dissector: heap allocations and time per application fragment, with
// records off (the monitoring path: operations and anomalies only) and on (`zonewatch dissect`).
// Built by scripts/fuzz/dnp3-allocations with a malloc-counting shim; exits 1 if the records-off path
// allocates at all once the flow is warm.
import Foundation

@_silgen_name("zw_allocation_count") func allocationCount() -> UInt

/// Link frame with real CRCs.
func frame(_ control: UInt8, _ destination: UInt16, _ source: UInt16, _ user: [UInt8]) -> [UInt8] {
    var h: [UInt8] = [0x05, 0x64, UInt8(user.count + 5), control,
                      UInt8(destination & 0xFF), UInt8(destination >> 8), UInt8(source & 0xFF), UInt8(source >> 8)]
    func crc(_ b: [UInt8]) -> [UInt8] {
        let c = ByteView.with(b) { DNP3CRC.compute($0, from: 0, count: b.count) }
        return [UInt8(c & 0xFF), UInt8(c >> 8)]
    }
    h += crc(h)
    var i = 0
    while i < user.count { let b = Array(user[i..<min(i + 16, user.count)]); h += b + crc(b); i += 16 }
    return h
}

func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8((v >> (8 * UInt32($0))) & 0xFF) } }

/// One exchange per kind of traffic: polls, a 3-segment response, controls, link status, unsolicited.
func exchange() -> (master: [UInt8], outstation: [UInt8]) {
    var m: [UInt8] = [], o: [UInt8] = []
    m += frame(0xC4, 10, 1, [0xC0, 0xC1, 0x01, 0x3C, 0x02, 0x06, 0x3C, 0x03, 0x06, 0x3C, 0x04, 0x06, 0x3C, 0x01, 0x06])
    var rsp: [UInt8] = [0xE1, 0x81, 0x00, 0x00, 0x1E, 0x01, 0x00, 0x00, 0x63]
    for i in 0..<100 { rsp += [0x01] + le32(UInt32(i)) }
    rsp += [0x01, 0x02, 0x00, 0x00, 0x0F] + [UInt8](repeating: 0x81, count: 16)
    var seq: UInt8 = 0, at = 0
    while at < rsp.count {
        let end = min(at + 249, rsp.count)
        let th = (at == 0 ? 0x40 : 0) | (end == rsp.count ? 0x80 : 0) | seq
        o += frame(0x44, 1, 10, [UInt8(th)] + Array(rsp[at..<end])); seq += 1; at = end
    }
    m += frame(0xC4, 10, 1, [0xC1, 0xC1, 0x00])                                      // CONFIRM
    let crob: [UInt8] = [0x0C, 0x01, 0x28, 0x01, 0x00, 0x03, 0x00, 0x03, 0x01] + le32(100) + le32(0) + [0x00]
    m += frame(0xC4, 10, 1, [0xC2, 0xC2, 0x03] + crob)                              // SELECT
    o += frame(0x44, 1, 10, [0xC0 | seq, 0xC2, 0x81, 0x00, 0x00] + crob); seq += 1
    m += frame(0xC4, 10, 1, [0xC3, 0xC3, 0x04] + crob)                              // OPERATE
    o += frame(0x44, 1, 10, [0xC0 | seq, 0xC3, 0x81, 0x00, 0x00] + crob); seq += 1
    m += frame(0xC9, 10, 1, [])                                                      // link status
    o += frame(0x0B, 1, 10, [])
    o += frame(0x44, 1, 10, [0xC0 | seq, 0xF4, 0x82, 0x00, 0x00, 0x02, 0x01, 0x17, 0x01, 0x03, 0x81])
    return (m, o)   // 10 PDUs: 4 requests, 3 responses (one in 3 segments), 1 unsolicited, 2 link-only frames
}

@main struct DNP3Allocations {
    static func run(records: Bool, rounds: Int) -> (allocations: UInt, fragments: UInt64, seconds: Double) {
        let (m, o) = exchange()
        let sink = EventSink()
        sink.pduRecordsEnabled = records
        sink.transactionRecordsEnabled = records
        sink.flow = FlowContext(initiator: Endpoint(ip: IPAddress(v4: 1), port: 40000),
                                responder: Endpoint(ip: IPAddress(v4: 2), port: 20000), transport: .tcp)
        var d = DNP3Dissector()
        func round() {
            sink.frame &+= 1
            _ = m.withUnsafeBytes { d.consume(ByteView($0), side: .initiator, sink: sink) }
            _ = o.withUnsafeBytes { d.consume(ByteView($0), side: .responder, sink: sink) }
            sink.drainOperations { _ in }   // (reading `operations` copies them into a new array)
            sink.anomalies.removeAll(keepingCapacity: true)
            for k in sink.lines.indices { sink.lines[k].removeAll(keepingCapacity: true) }
        }
        for _ in 0..<200 { round() }   // warm up: flow state, reassembly buffer, record buffers
        // PDUs counted first: `pduCounts` returns a fresh array, an allocation that is not the dissector's.
        let pdus = sink.pduCounts[Int(AppProtocol.dnp3.rawValue)], before = allocationCount()
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<rounds { round() }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        return (allocationCount() - before, sink.pduCounts[Int(AppProtocol.dnp3.rawValue)] - pdus, seconds)
    }

    static func main() {
        let rounds = 20_000
        let off = run(records: false, rounds: rounds)
        let on = run(records: true, rounds: rounds)
        for (name, r) in [("records off", off), ("records on ", on)] {
            print(String(format: "%@: %llu PDUs, %.3f allocations/PDU, %.0f ns/PDU", name, r.fragments,
                         Double(r.allocations) / Double(max(r.fragments, 1)), r.seconds * 1e9 / Double(max(r.fragments, 1))))
        }
        if off.allocations != 0 {
            print("FAIL: the records-off path allocated \(off.allocations) times in \(off.fragments) PDUs")
            exit(1)
        }
        print("ok: no heap allocation per PDU with records off")
    }
}
