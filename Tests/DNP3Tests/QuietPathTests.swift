import Testing
import Wire
import Records
@testable import DNP3

/// With records off, whole single-segment fragments take `quietFrame` and the object summary `commonHeaders`; the
/// layered path and the general walk must come to the same operations, anomalies, counts and summaries.
@Suite struct DNP3QuietPathTests {
    static func describe(_ o: Records.Operation) -> String {
        "\(o.appProtocol) \(o.access) \(o.functionCode) \(o.function) \(o.subfunction) \(o.unitID) \(o.sourceAddress) \(o.area) "
            + "\(o.dbNumber) \(o.address) \(o.quantity) \(o.broadcast) \(o.sender) \(o.unitRepeated) \(o.frame) \(o.time.totalMicroseconds)"
    }

    static func describe(_ a: Anomaly) -> String {
        "\(a.layer) \(a.kind) \(a.offset) \(String(describing: a.value)) \(a.frame) \(a.sender)"
    }

    @Test func recordingAndQuietEmitTheSame() {
        let classPoll: [UInt8] = [0xC1, 0x01, 0x3C, 0x02, 0x06, 0x3C, 0x03, 0x06, 0x3C, 0x04, 0x06, 0x3C, 0x01, 0x06]
        let rangeRead: [UInt8] = [0xC2, 0x01, 0x1E, 0x02, 0x01] + Wire3.le16(3) + Wire3.le16(9)
        let integrity: [UInt8] = [0xC1, 0x81, 0x00, 0x00, 0x1E, 0x01, 0x00, 0x00, 0x02] + Array(repeating: 0x01, count: 15)
        let events: [UInt8] = [0xC3, 0x81, 0x02, 0x00, 0x20, 0x01, 0x28] + Wire3.le16(2) + Wire3.le16(4) + [1, 1, 2, 3, 4]
            + Wire3.le16(7) + [1, 5, 6, 7, 8]
        let bits: [UInt8] = [0xC4, 0x81, 0x00, 0x00, 0x01, 0x01, 0x00, 0x00, 0x0A, 0xFF, 0x07]
        let crob: [UInt8] = [0x0C, 0x01, 0x28] + Wire3.le16(1) + Wire3.le16(5) + [0x03, 0x01] + Wire3.le32(100) + Wire3.le32(0) + [0x00]
        let select: [UInt8] = [0xC5, 0x03] + crob, operate: [UInt8] = [0xC6, 0x04] + crob
        let directOperate: [UInt8] = [0xC7, 0x05] + crob
        let unknownGroupRead: [UInt8] = [0xC8, 0x01, 0xC8, 0x01, 0x06]
        let unknownFunction: [UInt8] = [0xC9, 0x70]
        let truncatedObjects: [UInt8] = [0xCA, 0x81, 0x00, 0x00, 0x1E, 0x01, 0x00, 0x00, 0x09, 0x01]
        let indexPrefixRead: [UInt8] = [0xCB, 0x01, 0x1E, 0x01, 0x17, 0x02, 0x05, 0x09]
        let sizePrefix: [UInt8] = [0xCC, 0x02, 0x46, 0x05, 0x5B, 0x01] + Wire3.le16(2) + [0xAA, 0xBB]
        let timeWrite: [UInt8] = [0xCD, 0x02, 0x32, 0x01, 0x07, 0x01] + Wire3.le48(123456)
        let restartAck: [UInt8] = [0xCE, 0x02, 0x50, 0x01, 0x00, 0x07, 0x07, 0x00]
        let attributes: [UInt8] = [0xCF, 0x01, 0x00, 0xFE, 0x06]
        let virtual: [UInt8] = [0xC0, 0x01, 0x1E, 0x01, 0x04] + Wire3.le16(3)
        let long: [UInt8] = [0xC1, 0x81, 0x00, 0x00, 0x1E, 0x01, 0x00, 0x00, 0x63] + Array(repeating: 0x01, count: 500)
        var frames: [([UInt8], FlowSide)] = [
            (Wire3.request(classPoll), .initiator), (Wire3.response(integrity), .responder),
            (Wire3.request(rangeRead), .initiator), (Wire3.response(events), .responder),
            (Wire3.response(bits), .responder),
            (Wire3.request(select), .initiator), (Wire3.request(operate), .initiator), (Wire3.request(operate), .initiator),
            (Wire3.request(directOperate, destination: 0xFFFF), .initiator),
            (Wire3.request(unknownGroupRead), .initiator), (Wire3.request(unknownFunction), .initiator),
            (Wire3.response(classPoll), .responder), (Wire3.response(truncatedObjects), .responder),
            (Wire3.request(indexPrefixRead), .initiator), (Wire3.request(sizePrefix), .initiator),
            (Wire3.request(timeWrite), .initiator), (Wire3.request(restartAck), .initiator),
            (Wire3.request(attributes), .initiator), (Wire3.request(virtual), .initiator),
            (Wire3.request([0xC1]), .initiator), (Wire3.response([0xC1, 0x81, 0x00]), .responder),
        ]
        frames += Wire3.segmented(long, segmentSize: 200).map { ($0, FlowSide.responder) }
        frames.append((Wire3.request(classPoll), .initiator))
        var corrupt = Wire3.request(classPoll); corrupt[12] ^= 0xFF
        frames.append((corrupt, .initiator))
        frames.append((Wire3.request(classPoll) + Wire3.request(rangeRead), .initiator))

        let recording = Harness(records: true, transactions: true), quiet = Harness(records: false, transactions: false)
        for (bytes, side) in frames { recording.feed(bytes, side: side); quiet.feed(bytes, side: side) }
        recording.finish(); quiet.finish()
        #expect(recording.sink.operations.map(Self.describe) == quiet.sink.operations.map(Self.describe))
        #expect(recording.sink.anomalies.map(Self.describe) == quiet.sink.anomalies.map(Self.describe))
        #expect(recording.sink.pduCounts == quiet.sink.pduCounts)
        #expect(quiet.sink.operations.count >= 15)
    }

    /// A request says whether the initiator's previous request went to the same destination address (what lets
    /// detection without a policy pass over it: the unit-scan counter only counts a change), on the quiet path and the
    /// recording one alike; a request from the responder's side says no and leaves the initiator's last address as it was.
    @Test(arguments: [false, true]) func requestsSayWhetherTheirDestinationIsRepeated(records: Bool) {
        let read: [UInt8] = [0xC1, 0x01, 0x3C, 0x02, 0x06]
        let h = Harness(records: records, transactions: records)
        for (destination, side) in [(UInt16(10), FlowSide.initiator), (10, .initiator), (11, .initiator), (11, .responder),
                                    (11, .initiator), (10, .initiator), (10, .initiator)] {
            let frame = side == .initiator ? Wire3.request(read, destination: destination)
                                           : Wire3.request(read, destination: destination, source: 20)
            h.feed(frame, side: side)
        }
        h.finish()
        #expect(h.sink.operations.map(\.unitRepeated) == [false, true, false, false, true, false, true], "records \(records)")
        #expect(h.sink.operations.map(\.unitID) == [10, 10, 11, 11, 11, 10, 10])
    }

    /// The per-flow state is 32 bytes, two to a cache line in the engine's pool (the last request's address sits in
    /// padding): every DNP3 packet reads it.
    @Test func theStateIsThirtyTwoBytes() {
        #expect(MemoryLayout<DNP3Dissector>.size <= 32)
    }

    /// `objectsAreHeadersOnly` (now from `headersOnlyGroups`' compares) is IEEE 1815's list for every function code.
    @Test func headersOnlyFunctions() {
        for raw in 0...255 {
            for group: UInt8 in [0, 1, 50, 51, 60, 80] {
                let expected: Bool
                switch raw {
                case 0x01: expected = true
                case 0x07...0x0C, 0x14, 0x15, 0x16: expected = group != 50
                default: expected = false
                }
                #expect(DNP3FunctionCode(rawValue: UInt8(raw)).objectsAreHeadersOnly(group: group) == expected, "\(raw) \(group)")
            }
        }
    }

    /// Random object headers of the kinds the walk meets, well-formed or not: whenever `commonHeaders` answers, it
    /// answers what the general walk does.
    @Test func commonHeadersAgreeWithTheGeneralWalk() {
        var rng = SplitMix(seed: 0x5EED)
        let groups: [UInt8] = [0, 1, 2, 3, 10, 12, 20, 30, 32, 50, 51, 52, 60, 70, 80, 110, 120, 200]
        let qualifiers: [UInt8] = [0x00, 0x01, 0x02, 0x03, 0x06, 0x07, 0x08, 0x09, 0x0B, 0x17, 0x28, 0x39, 0x5B, 0x0A, 0x70]
        let functions: [UInt8] = [0x01, 0x02, 0x03, 0x05, 0x14, 0x81, 0x82]
        var answered = 0
        for _ in 0..<20_000 {
            let function = DNP3FunctionCode(rawValue: functions[Int(rng.next() % UInt64(functions.count))])
            var bytes: [UInt8] = function.isResponse ? [0xC0, function.rawValue, 0, 0] : [0xC0, function.rawValue]
            for _ in 0..<Int(rng.next() % 4) {
                bytes += [groups[Int(rng.next() % UInt64(groups.count))], UInt8(rng.next() % 5),
                          qualifiers[Int(rng.next() % UInt64(qualifiers.count))]]
                bytes += (0..<Int(rng.next() % 12)).map { _ in UInt8(truncatingIfNeeded: rng.next() % 6) }
            }
            ByteView.with(bytes) { view in
                let header = DNP3ApplicationHeader(control: 0xC0, function: function, iin: function.isResponse ? 0 : nil)
                let general = DNP3ObjectSummary(walkingEveryHeaderOf: view, header: header)
                let common = DNP3ObjectSummary.commonHeaders(view, from: header.length, function: function)
                if let common {
                    answered += 1
                    #expect(common == general, "\(bytes)")
                }
                // The walk without a summary (a response on the quiet path) succeeds exactly when the summarising walk
                // does and finds no unknown group.
                let succeeds = DNP3ObjectSummary.commonHeaders(view, from: header.length, function: function, summarising: false) != nil
                #expect(succeeds == (common.map { $0.unknownGroups == 0 } ?? false), "\(bytes)")
                #expect(DNP3ObjectSummary(fragment: view, header: header) == general, "\(bytes)")
            }
        }
        #expect(answered > 2_000)
    }
}

/// A small deterministic generator (SplitMix64).
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
