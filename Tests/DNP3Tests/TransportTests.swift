import Testing
import Wire
import Records
@testable import DNP3

@Suite("DNP3 transport layer")
struct TransportTests {
    /// A response fragment of `points` g30v1 objects (5 octets each) with start/stop 16-bit range.
    static func bigResponse(points: Int, sequence: UInt8 = 0) -> [UInt8] {
        var app: [UInt8] = [0xC0 | sequence, 0x81, 0x00, 0x00, 0x1E, 0x01, 0x01] + Wire3.le16(0) + Wire3.le16(UInt16(points - 1))
        for i in 0..<points { app += [0x01] + Wire3.le32(UInt32(i)) }
        return app
    }

    @Test("transport header bits")
    func header() {
        let t = DNP3TransportHeader(0xC5)
        #expect(t.fin && t.fir && t.sequence == 5)
        #expect(!DNP3TransportHeader(0x3F).fin && !DNP3TransportHeader(0x3F).fir && DNP3TransportHeader(0x3F).sequence == 63)
    }

    @Test("a fragment in several segments is reported once, on the FIN segment", arguments: [2, 3, 8])
    func reassembly(segmentCount: Int) {
        let app = Self.bigResponse(points: 40 * segmentCount)
        let segments = Wire3.segmented(app, segmentSize: (app.count + segmentCount - 1) / segmentCount, firstSequence: 12)
        #expect(segments.count == segmentCount)
        let h = Harness()
        for (i, s) in segments.enumerated() {
            h.feed(s, side: .responder)
            #expect(h.pdus.count == (i == segments.count - 1 ? 1 : 0))
        }
        let p = h.pdus[0]
        #expect(p["function_code"] as? Int == 0x81)
        #expect((p["transport"] as? [String: Any])?["segments"] as? Int == segmentCount)
        #expect(p.points.count == 40 * segmentCount)
        #expect(p.points.last?["value"] as? Int == 40 * segmentCount - 1)
        #expect(h.anomalies.isEmpty)
        #expect(h.records(.pdu)[0]["frame"] as? Int == segmentCount)
    }

    @Test("a 14 kB fragment in 60 segments (Wireshark's limit) is reassembled")
    func largeFragment() {
        let app = Self.bigResponse(points: 2980)
        let segments = Wire3.segmented(app, segmentSize: 249)
        #expect(segments.count == 60)
        let h = Harness()
        for s in segments { h.feed(s, side: .responder) }
        #expect(h.functionCodes == [0x81])
        #expect(h.anomalies.isEmpty)
    }

    @Test("segment sequence numbers wrap from 63 to 0")
    func sequenceWrap() {
        let app = Self.bigResponse(points: 150)
        let h = Harness()
        for s in Wire3.segmented(app, segmentSize: 249, firstSequence: 63) { h.feed(s, side: .responder) }
        #expect(h.functionCodes == [0x81])
        #expect(h.anomalies.isEmpty)
    }

    @Test("a missing middle segment: anomaly, no fragment, the next fragment is fine")
    func missingSegment() {
        let segments = Wire3.segmented(Self.bigResponse(points: 150), segmentSize: 249, firstSequence: 0)
        #expect(segments.count == 4)
        let h = Harness()
        h.feed(segments[0], side: .responder)
        h.feed(segments[2], side: .responder)
        h.feed(segments[3], side: .responder)
        #expect(h.functionCodes.isEmpty)
        #expect(h.anomalies == ["out_of_sequence_segment", "segment_without_fir"])
        h.feed(Wire3.response([0xC1, 0x81, 0x00, 0x00], transportSequence: 4), side: .responder)
        #expect(h.functionCodes == [0x81])
    }

    @Test("a repeated segment (link retry) is ignored; the fragment completes")
    func duplicateSegment() {
        let segments = Wire3.segmented(Self.bigResponse(points: 100), segmentSize: 249)
        let h = Harness()
        h.feed(segments[0], side: .responder)
        h.feed(segments[1], side: .responder)
        h.feed(segments[1], side: .responder)
        for s in segments[2...] { h.feed(s, side: .responder) }
        #expect(h.functionCodes == [0x81])
        #expect(h.anomalies == ["duplicate_segment"])
    }

    @Test("a new FIR discards the partial fragment")
    func firDiscardsPartial() {
        let segments = Wire3.segmented(Self.bigResponse(points: 100), segmentSize: 249, firstSequence: 0)
        let h = Harness()
        h.feed(segments[0], side: .responder)
        h.feed(Wire3.response([0xC1, 0x81, 0x00, 0x00], transportSequence: 1), side: .responder)
        #expect(h.functionCodes == [0x81])
        #expect(h.anomalies == ["incomplete_fragment_discarded"])
    }

    @Test("fragments beyond the bound are dropped and reported; the flow goes on")
    func overflow() {
        let app = Self.bigResponse(points: 3300)   // ~16.5 kB > 16384
        let h = Harness()
        for s in Wire3.segmented(app, segmentSize: 249) { h.feed(s, side: .responder) }
        #expect(h.functionCodes.isEmpty)
        #expect(h.anomalies.first == "fragment_too_long")
        h.feed(Wire3.response([0xC1, 0x81, 0x00, 0x00], transportSequence: 7), side: .responder)
        #expect(h.functionCodes == [0x81])
    }

    @Test("fragments from different link addresses reassemble independently")
    func perAddressReassembly() {
        let a = Wire3.segmented(Self.bigResponse(points: 60), segmentSize: 200, firstSequence: 0, source: 10)
        let b = Wire3.segmented(Self.bigResponse(points: 60), segmentSize: 200, firstSequence: 20, source: 11)
        let h = Harness()
        h.feed(a[0], side: .responder); h.feed(b[0], side: .responder)
        h.feed(a[1], side: .responder); h.feed(b[1], side: .responder)
        #expect(h.pdus.map { $0["source"] as? Int } == [10, 11])
        #expect(h.anomalies.isEmpty)
    }

    @Test("a stream gap drops the partial fragment")
    func gap() {
        let segments = Wire3.segmented(Self.bigResponse(points: 100), segmentSize: 249)
        let h = Harness()
        h.feed(segments[0], side: .responder)
        h.dissector.gap(side: .responder, length: 300, sink: h.sink)
        h.tails[1] = []
        for s in segments[1...] { h.feed(s, side: .responder) }
        #expect(h.functionCodes.isEmpty)
        #expect(h.anomalies.first == "fragment_lost_in_gap")
    }

    @Test("reassembler bounds: slots are reused, the least recently used is evicted")
    func slotEviction() {
        let r = DNP3Reassembler()
        let payload: [UInt8] = [1, 2, 3]
        ByteView.with(payload) { p in
            for source in 0..<UInt16(DNP3Reassembler.slotCount) {
                #expect(r.add(DNP3TransportHeader(0x40), payload: p, side: .responder, source: source, destination: 1).anomaly == nil)
            }
            let res = r.add(DNP3TransportHeader(0x40), payload: p, side: .responder, source: 99, destination: 1)
            #expect(res.anomaly?.description == "reassembly_slots_exhausted")
            #expect(r.inProgress == DNP3Reassembler.slotCount)
            let done = r.add(DNP3TransportHeader(0x81), payload: p, side: .responder, source: 99, destination: 1)
            #expect(done.fragment.map { Array($0.raw) } == [1, 2, 3, 1, 2, 3])
        }
    }

    /// A flow that ends with a fragment in reassembly (its first segment taken, its last never come) reports it at
    /// `finish`: a `truncated_at_end` anomaly with the bytes taken when a peer ended the flow, a count with no anomaly
    /// when the capture ended it. A whole fragment leaves nothing to report.
    @Test("a fragment left in reassembly is reported at the flow's end", arguments: [false, true])
    func aFragmentLeftInReassemblyIsReportedAtTheEnd(atCaptureBoundary: Bool) {
        let app: [UInt8] = [0xC0, 0x81, 0x00, 0x00] + [UInt8](repeating: 0, count: 400)
        let segments = Wire3.segmented(app)
        #expect(segments.count == 2)
        let whole = Harness(records: false)
        for s in segments { whole.feed(s, side: .responder) }
        let wholeHolds = whole.dissector.holdsUnfinishedMessage   // (a failed expectation on the state would print all of it)
        let wholeQuiet = whole.dissector.finishesQuietly(transactionRecords: false)
        #expect(!wholeHolds && wholeQuiet)

        let h = Harness(records: false)
        h.feed(segments[0], side: .responder)
        let holds = h.dissector.holdsUnfinishedMessage, quiet = h.dissector.finishesQuietly(transactionRecords: false)
        #expect(holds && !quiet)
        h.sink.endingAtCaptureBoundary = atCaptureBoundary
        h.finish()
        let cut = h.sink.anomalies.filter { $0.kind.description == "truncated_at_end" }
        if atCaptureBoundary {
            #expect(cut.isEmpty)
            #expect(h.sink.cutByCapture == (1, 249))
        } else {
            #expect(cut.count == 1 && cut.first?.layer.description == "dnp3" && cut.first?.value == 249 && cut.first?.sender == .responder)
            #expect(h.sink.cutByCapture == (0, 0))
        }
        whole.finish()
        #expect(!whole.anomalies.contains("truncated_at_end") && whole.sink.cutByCapture == (0, 0))
    }
}
