// MBAP framing over a reassembled stream: whole ADUs only, any split, any coalescing, resynchronisation
// after garbage, bad headers and gaps.
import Testing
import Records
import Wire
@testable import Modbus

/// A request stream of four ADUs with different lengths.
let requestStream: [[UInt8]] = [
    adu(1, "03 0000 000A"),                                   // read 10 holding registers
    adu(2, unit: 7, "10 0001 0002 04 000A 0102"),            // write 2 registers
    adu(3, "2B 0E 01 00"),                                    // read device identification
    adu(4, unit: 0, "06 0005 1234"),                          // broadcast write
]

@Suite("MBAP framing")
struct FramingTests {
    @Test("every prefix of a valid stream consumes whole ADUs only, and parses each completed ADU once")
    func dripFeed() {
        let stream = requestStream.flatMap { $0 }
        var boundaries = [0]
        for a in requestStream { boundaries.append(boundaries.last! + a.count) }
        for n in 0...stream.count {
            var d = ModbusDissector()
            let sink = EventSink()
            sink.pduRecordsEnabled = true
            let consumed = ByteView.with(Array(stream.prefix(n))) { d.consume($0, side: .initiator, sink: sink) }
            let whole = boundaries.last { $0 <= n }!
            #expect(consumed == whole, "prefix \(n)")
            #expect(sink.pduCounts[Int(AppProtocol.modbus.rawValue)] == UInt64(boundaries.firstIndex(of: whole)!), "prefix \(n)")
            #expect(sink.anomalies.filter { $0.kind.description != "request_flood" }.isEmpty, "prefix \(n)")
        }
    }

    @Test("byte-by-byte delivery gives the same records as one delivery")
    func byteByByte() {
        let stream = requestStream.flatMap { $0 }
        let whole = Harness()
        whole.send(stream)
        let drip = Harness()
        for b in stream { drip.send([b]) }
        #expect(whole.pdus.count == 4)
        #expect(drip.pdus.count == 4)
        for (a, b) in zip(whole.pdus, drip.pdus) {
            #expect(a["transaction_id"] as? Int == b["transaction_id"] as? Int)
            #expect(a["function_code"] as? Int == b["function_code"] as? Int)
            #expect(a["values"] as? [Int] == b["values"] as? [Int])
        }
        #expect(drip.pending(.initiator) == 0)
        #expect(drip.anomalies.isEmpty)
    }

    @Test("an ADU split at any point is parsed once, on the packet that completes it")
    func splitAnywhere() {
        let a = adu(9, unit: 3, "17 0003 0006 000E 0003 06 00FF 00FF 00FF")
        for cut in 1..<a.count {
            let h = Harness()
            #expect(h.send(Array(a[..<cut])) == 0)
            #expect(h.pdus.isEmpty)
            h.send(Array(a[cut...]))
            #expect(h.pdus.count == 1, "cut \(cut)")
            #expect(h.pduRecords.first?["frame"] as? Int == 2)
            #expect(h.pdus.first?["write_quantity"] as? Int == 3)
        }
    }

    @Test("several ADUs in one segment are all parsed, the partial tail is kept")
    func coalesced() {
        let h = Harness()
        let tail = adu(5, "01 0000 0010")
        let used = h.send(requestStream.flatMap { $0 } + tail.prefix(5))
        #expect(h.pdus.map { $0["transaction_id"] as? Int } == [1, 2, 3, 4])
        #expect(used == requestStream.flatMap { $0 }.count)
        #expect(h.pending(.initiator) == 5)
        h.send(Array(tail.dropFirst(5)))
        #expect(h.pdus.count == 5)
    }

    @Test("garbage before and between ADUs is skipped, reported, and counted as consumed")
    func resyncAfterGarbage() {
        let h = Harness()
        let garbage = hex("DE AD BE EF 01 02 03 04 05 06 07")
        h.send(garbage + requestStream[0] + hex("FF FF FF") + requestStream[1])
        #expect(h.pdus.map { $0["transaction_id"] as? Int } == [1, 2])
        #expect(h.anomalyKinds.filter { $0 != "request_flood" } == ["bad_protocol_id", "resync", "bad_protocol_id", "resync"])
        let resyncs = h.anomalies.filter { $0.kind.description == "resync" }
        #expect(resyncs.map { $0.value } == [Int64(garbage.count), 3])
        #expect(resyncs.first?.offset == garbage.count)
        #expect(h.pending(.initiator) == 0)
    }

    @Test("an impossible length field is a bad_length anomaly followed by resynchronisation")
    func badLength() {
        let h = Harness()
        h.send(hex("0001 0000 0000 01 03") + requestStream[0])
        #expect(h.anomalyKinds.prefix(2) == ["bad_length", "resync"])
        #expect(h.anomalies.first?.offset == 4)
        #expect(h.anomalies.first?.value == 0)
        #expect(h.pdus.count == 1)
    }

    @Test("after a gap the stream resynchronises on the next plausible ADU")
    func afterGap() {
        let h = Harness()
        h.send(requestStream[0])
        h.gap(.initiator)
        // The gap ate the start of ADU 2: what arrives begins in its middle.
        h.send(Array(requestStream[1].dropFirst(5)) + requestStream[2] + requestStream[3])
        #expect(h.pdus.map { $0["transaction_id"] as? Int } == [1, 3, 4])
        #expect(h.anomalyKinds.contains("resync"))
    }

    @Test("a gap that ends exactly on an ADU boundary loses nothing and reports nothing")
    func gapOnBoundary() {
        let h = Harness()
        h.send(requestStream[0])
        h.gap(.initiator)
        h.send(requestStream[1] + requestStream[2])
        #expect(h.pdus.count == 3)
        #expect(h.anomalies.isEmpty)
    }

    @Test("while hunting, a candidate ADU split across segments is found once complete")
    func huntAcrossSegments() {
        let h = Harness()
        let a = requestStream[1]
        h.send(hex("00 11 22 33 44") + a.prefix(6))
        #expect(h.pdus.isEmpty)
        h.send(Array(a.dropFirst(6)))
        #expect(h.pdus.count == 1)
        #expect(h.anomalies.first(where: { $0.kind.description == "resync" })?.value == 5)
    }

    @Test("a long run of garbage never grows the carry beyond one ADU and never crashes")
    func longGarbage() {
        var rng = SplitMix(seed: 42)
        let h = Harness()
        for _ in 0..<200 {
            h.send((0..<97).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
            #expect(h.pending(.initiator) <= ModbusDissector.maximumPDUSize)
        }
        #expect(h.anomalyKinds.filter { $0 == "bad_protocol_id" || $0 == "bad_length" }.count <= 3)
        h.send(requestStream[0])
        h.send(requestStream[2])
        #expect(h.pdus.contains { $0["transaction_id"] as? Int == 3 })
    }

    @Test("over UDP every datagram starts in sync: garbage in one does not cost the next")
    func udpDatagrams() {
        let h = Harness(transport: .udp)
        h.send(hex("DE AD BE EF 00 00 00"))
        h.send(requestStream[0])
        h.send(adu(1, "03 14" + String(repeating: "0001", count: 10)), from: .responder)
        #expect(h.pdus.count == 2)
        #expect(!h.anomalyKinds.contains("resync"))
        #expect(h.transactions.first?["matched"] as? Bool == true)
        #expect(h.transactionRecords.first.flatMap { ($0["network"] as? [String: Any])?["transport"] as? String } == "udp")
    }

    @Test("a UMAS frame longer than the spec's 260 bytes is framed, other long frames are flagged")
    func longFrames() {
        let h = Harness()
        let umas = adu(1, unit: 0xFF, "5A 01 31" + String(repeating: "AB", count: 300))
        h.send(umas)
        #expect(h.pdus.count == 1)
        #expect(!h.anomalyKinds.contains("bad_length"))
        let big = adu(2, "41" + String(repeating: "00", count: 270))
        h.send(big)
        #expect(h.pdus.count == 2)
        #expect(h.anomalyKinds.contains("bad_length"))
    }
}

/// A small deterministic generator for test data (SplitMix64).
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
