import Testing
import Glibc
import Wire
import Records
@testable import DNP3

@Suite("DNP3 link layer")
struct LinkLayerTests {
    @Test("CRC-16/DNP check value and known frame headers", arguments: [
        // CRC catalogue check value over ASCII "123456789".
        (Array("123456789".utf8), UInt16(0xEA82)),
        // Reset link states, master 1 → outstation 0 (IEEE 1815 example frame 05 64 05 C0 01 00 00 04 E9 21).
        ([0x05, 0x64, 0x05, 0xC0, 0x01, 0x00, 0x00, 0x04], UInt16(0x21E9)),
        // Request link status 1 → 100, from zeek_dnp3_udp_read.pcap frame 1 (CRC bytes 7e 5f).
        ([0x05, 0x64, 0x05, 0x49, 0x64, 0x00, 0x01, 0x00], UInt16(0x5F7E)),
        // Link status 100 → 1, frame 2 (CRC bytes a0 97).
        ([0x05, 0x64, 0x05, 0x8B, 0x01, 0x00, 0x64, 0x00], UInt16(0x97A0)),
        ([], UInt16(0xFFFF)),
    ] as [([UInt8], UInt16)])
    func crcVectors(bytes: [UInt8], expected: UInt16) {
        #expect(Wire3.crc(bytes) == expected)
    }

    @Test("CRC table matches the bitwise definition")
    func crcTable() {
        for byte in 0..<256 {
            var crc = UInt16(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xA6BC : crc >> 1 }
            #expect(DNP3CRC.table[byte] == crc)
        }
    }

    @Test("eight-octet steps give the bitwise CRC at every length and alignment")
    func crcSlicing() {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        let bytes = (0..<64).map { _ -> UInt8 in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return UInt8(truncatingIfNeeded: state >> 33)
        }
        for offset in 0..<9 {
            for count in 0...(64 - offset) {
                var crc: UInt16 = 0
                for b in bytes[offset..<(offset + count)] {
                    crc ^= UInt16(b)
                    for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xA6BC : crc >> 1 }
                }
                let got = ByteView.with(bytes) { DNP3CRC.compute($0, from: offset, count: count) }
                #expect(got == ~crc, "offset \(offset) count \(count)")
            }
        }
    }

    @Test("a user-data block of every length is copied and its CRC checked in one pass")
    func copyBlockEveryLength() {
        var state: UInt64 = 0x2545_F491_4F6C_DD1D
        for count in 1...16 {
            let data = (0..<count).map { _ -> UInt8 in
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                return UInt8(truncatingIfNeeded: state >> 33)
            }
            let crc = ByteView.with(data) { DNP3CRC.compute($0, from: 0, count: count) }
            for corrupt in [false, true] {
                let block = data + [UInt8(crc & 0xFF) ^ (corrupt ? 1 : 0), UInt8(crc >> 8)]
                var copy = [UInt8](repeating: 0, count: 16)
                let ok = block.withUnsafeBytes { src in
                    copy.withUnsafeMutableBytes { DNP3CRC.copyBlock(src.baseAddress!, count: count, to: $0.baseAddress!, DNP3CRC.slices) }
                }
                #expect(ok == !corrupt, "count \(count)")
                #expect(Array(copy.prefix(count)) == data, "count \(count)")
            }
        }
    }

    @Test("the frame loop's one-word header read agrees with DNP3LinkHeader.parse")
    func frameLoopHeader() {
        var frames = [Wire3.frame(control: 0xF3, destination: 0x1234, source: 0xFFFD, userData: [0xC0, 0xC1, 0x01]),
                      Wire3.frame(control: 0x0B, destination: 1, source: 100, userData: [])]
        var bad = frames[0]; bad[9] ^= 0xFF; frames.append(bad)               // header CRC wrong
        var notStart = frames[0]; notStart[1] = 0x65; frames.append(notStart) // not 05 64
        frames.append(Array(frames[0].prefix(9)))                           // too short
        for f in frames {
            for off in 0..<min(3, f.count) {
                let bytes = [UInt8](repeating: 0x05, count: off) + f
                let fast = ByteView.with(bytes) { DNP3Dissector.linkHeader($0, at: off) }
                let slow = ByteView.with(bytes) { DNP3LinkHeader.parse($0, at: off) }
                let multiplied = ByteView.with(bytes) {
                    DNP3Dissector.linkHeader($0, at: off, multiplying: DNP3CRC.carrylessMultiply)
                }
                #expect(fast == slow)
                #expect(multiplied == slow)
            }
        }
    }

    @Test("carry-less multiplication gives the table's CRC of eight octets",
          .enabled(if: DNP3CRC.carrylessMultiply, "the CPU has no PCLMULQDQ"))
    func multiplyingStep() {
        var g = SystemRandomNumberGenerator()
        var words: [UInt64] = [0, ~0, 0x3837_3635_3433_3231]
        words += (0..<64).map { 1 << UInt64($0) }
        words += (0..<20_000).map { _ in g.next() }
        for w in words {
            #expect(DNP3CRC.register64(w) == DNP3CRC.step8(0, w, DNP3CRC.slices), "word \(w)")
        }
    }

    @Test("frames of every user-data length: the multiplying copy agrees with the table's, bad blocks included",
          .enabled(if: DNP3CRC.carrylessMultiply, "the CPU has no PCLMULQDQ"))
    func multiplyingFrames() throws {
        var g = SystemRandomNumberGenerator()
        let table = UnsafeMutableRawPointer.allocate(byteCount: 256, alignment: 16)
        let multiplied = UnsafeMutableRawPointer.allocate(byteCount: 256, alignment: 16)
        defer { table.deallocate(); multiplied.deallocate() }
        for n in 1...250 {
            let frame = Wire3.frame(userData: (0..<n).map { _ in UInt8.random(in: 0...255, using: &g) })
            // Intact, then one bit flipped in each octet after the header (data or CRC) in turn.
            for flip in [-1] + Array(10..<frame.count) {
                var bytes = frame
                if flip >= 0 { bytes[flip] ^= 1 << UInt8.random(in: 0...7, using: &g) }
                let h = try #require(ByteView.with(bytes) { DNP3LinkHeader.parse($0, at: 0) })
                let (a, b) = bytes.withUnsafeBytes { raw in
                    (h.copyUserData(frame: raw.baseAddress!, into: table, DNP3CRC.slices),
                     h.copyUserDataMultiplying(frame: raw.baseAddress!, into: multiplied))
                }
                #expect(a.crcOK == b, "n \(n) flip \(flip)")
                if b { #expect(a.count == n && memcmp(table, multiplied, n) == 0, "n \(n) flip \(flip)") }
            }
        }
    }

    @Test("a bad block CRC stops the copy at that block")
    func userDataBadBlock() throws {
        var bytes = Wire3.frame(userData: (0..<40).map { UInt8($0) })
        bytes[10 + 18 + 5] ^= 0x01          // second block's data
        let h = try #require(ByteView.with(bytes) { DNP3LinkHeader.parse($0, at: 0) })
        let out = UnsafeMutableRawPointer.allocate(byteCount: 256, alignment: 1)
        defer { out.deallocate() }
        let r = ByteView.with(bytes) { h.extractUserData($0, frameAt: 0, into: out) }
        #expect(r == DNP3UserData(count: 16, crcOK: false, badBlock: 1))
        #expect(Array(UnsafeRawBufferPointer(start: out, count: 16)) == (0..<16).map { UInt8($0) })
    }

    @Test("header fields: DIR, PRM, FCB, FCV, function, addresses")
    func headerFields() throws {
        let bytes = Wire3.frame(control: 0xF3, destination: 0x1234, source: 0xFFFD, userData: [0xC0, 0xC1, 0x01])
        let h = try #require(ByteView.with(bytes) { DNP3LinkHeader.parse($0, at: 0) })
        #expect(h.fromMaster && h.primary && h.frameCountBit && h.frameCountValid)
        #expect(h.function == 3 && h.functionName.description == "CONFIRMED_USER_DATA")
        #expect(h.destination == 0x1234 && h.source == 0xFFFD && h.headerCRCOK)
        #expect(h.length == 8 && h.userDataLength == 3 && h.frameSize == bytes.count)
        let secondary = DNP3LinkHeader(length: 5, control: 0x0B, destination: 1, source: 2)
        #expect(!secondary.primary && secondary.functionName.description == "LINK_STATUS" && !secondary.functionCarriesUserData)
    }

    @Test("frame size on the wire", arguments: [(5, 10), (6, 13), (20, 27), (21, 28), (22, 31), (37, 46), (38, 49), (255, 292)])
    func frameSize(length: Int, wire: Int) {
        #expect(DNP3LinkHeader(length: UInt8(length), control: 0xC4, destination: 0, source: 0).frameSize == wire)
        #expect(Wire3.frame(userData: [UInt8](repeating: 0x11, count: length - 5)).count == wire)
    }

    @Test("user data is copied out of its CRC blocks")
    func userDataExtraction() throws {
        let data = (0..<250).map { UInt8($0 & 0xFF) }
        let bytes = Wire3.frame(userData: data)
        let h = try #require(ByteView.with(bytes) { DNP3LinkHeader.parse($0, at: 0) })
        let out = UnsafeMutableRawPointer.allocate(byteCount: 256, alignment: 1)
        defer { out.deallocate() }
        let r = ByteView.with(bytes) { h.extractUserData($0, frameAt: 0, into: out) }
        #expect(r == DNP3UserData(count: 250, crcOK: true, badBlock: -1))
        #expect(Array(UnsafeRawBufferPointer(start: out, count: 250)) == data)
    }

    @Test("link-only frames give one record each with no application fields")
    func linkOnly() {
        let h = Harness()
        h.feed(Wire3.frame(control: 0xC9, destination: 100, source: 1, userData: []))            // REQUEST_LINK_STATUS
        h.feed(Wire3.frame(control: 0x0B, destination: 1, source: 100, userData: []), side: .responder) // LINK_STATUS
        h.feed(Wire3.frame(control: 0xC0, destination: 100, source: 1, userData: []))            // RESET_LINK_STATES
        let p = h.pdus
        #expect(p.count == 3)
        #expect(p.map { $0["link_function"] as? String } == ["REQUEST_LINK_STATUS", "LINK_STATUS", "RESET_LINK_STATES"])
        #expect(p[0]["role"] as? String == "master" && p[1]["role"] as? String == "outstation")
        #expect(p.allSatisfy { $0["function_code"] == nil && $0["crc_ok"] as? Bool == true })
        #expect(h.sink.pduCounts[Int(AppProtocol.dnp3.rawValue)] == 3)
        #expect(h.anomalies.isEmpty)
    }

    @Test("several frames in one segment are all parsed")
    func severalFramesPerSegment() {
        let h = Harness()
        let read = Wire3.request([0xC1, 0x01, 0x3C, 0x02, 0x06], transportSequence: 1)
        let status = Wire3.frame(control: 0xC9, destination: 10, source: 1, userData: [])
        h.feed(read + status + Wire3.request([0xC2, 0x01, 0x3C, 0x01, 0x06], transportSequence: 2))
        #expect(h.pdus.count == 3)
        #expect(h.functionCodes == [1, 1])
        #expect(h.pdus.allSatisfy { ($0["frame"] as? Int) == nil })   // frame is on the envelope, not in dnp3
        #expect(h.records(.pdu).allSatisfy { $0["frame"] as? Int == 1 })
    }

    @Test("a frame split at every possible point is reported once, on the completing segment")
    func splitAcrossSegments() {
        let app: [UInt8] = [0xC3, 0x81, 0x00, 0x00, 0x1E, 0x01, 0x00, 0x00, 0x01] + [0x01] + Wire3.le32(7) + [0x01] + Wire3.le32(9)
        let bytes = Wire3.response(app)
        for cut in 1..<bytes.count {
            let h = Harness()
            h.feed(Array(bytes[..<cut]), side: .responder)
            #expect(h.pdus.isEmpty, "cut \(cut)")
            h.feed(Array(bytes[cut...]), side: .responder)
            #expect(h.functionCodes == [0x81], "cut \(cut)")
            #expect(h.records(.pdu).first?["frame"] as? Int == 2)
            #expect(h.anomalies.isEmpty, "cut \(cut): \(h.anomalies)")
        }
    }

    @Test("drip feed: one octet at a time gives the same records as all at once")
    func dripFeed() {
        var stream: [UInt8] = []
        stream += Wire3.request([0xC0, 0x01, 0x3C, 0x02, 0x06, 0x3C, 0x03, 0x06, 0x3C, 0x04, 0x06, 0x3C, 0x01, 0x06])
        stream += Wire3.frame(control: 0xC9, destination: 10, source: 1, userData: [])
        let big: [UInt8] = [0xC1, 0x02, 0x32, 0x01, 0x07, 0x01] + Wire3.le48(1_700_000_000_000)
            + [0x0C, 0x01, 0x17, 0x01, 0x03, 0x41, 0x01] + Wire3.le32(100) + Wire3.le32(200) + [0x00]
        stream += Wire3.request(big, transportSequence: 1)
        for fragment in Wire3.segmented([0xC0, 0x02] + [0x50, 0x01, 0x00, 0x07, 0x07, 0x00] + [UInt8](repeating: 0, count: 0),
                                        segmentSize: 4, firstSequence: 2, control: 0xC4, destination: 10, source: 1) {
            stream += fragment
        }
        let whole = Harness(); whole.feed(stream)
        let drip = Harness()
        for b in stream { drip.feed([b]) }
        #expect(whole.pdus.count == 4)
        #expect(whole.functionCodes == [1, 2, 2])
        #expect(drip.functionCodes == whole.functionCodes)
        #expect(drip.pdus.map { $0["link_function"] as? String } == whole.pdus.map { $0["link_function"] as? String })
        #expect(drip.anomalies.isEmpty && whole.anomalies.isEmpty, "\(drip.anomalies) \(whole.anomalies)")
    }

    @Test("garbage before a frame is skipped, reported, and the frame still parsed")
    func resync() {
        let h = Harness()
        h.feed([0x00, 0x05, 0x11, 0x64, 0xFF] + Wire3.request([0xC0, 0x01, 0x3C, 0x01, 0x06]))
        #expect(h.functionCodes == [1])
        #expect(h.anomalies == ["garbage_skipped"])   // one run of garbage, one report
        #expect(h.tails[0].isEmpty)
    }

    @Test("a lone 0x05 at the end of a segment is kept for the next one")
    func loneStartOctet() {
        let h = Harness()
        let frame = Wire3.request([0xC0, 0x01, 0x3C, 0x01, 0x06])
        h.feed([0xAA, 0x05])
        #expect(h.tails[0] == [0x05])
        h.feed(Array(frame.dropFirst()))
        #expect(h.functionCodes == [1])
    }

    @Test("bad header CRC: anomaly, record with crc_ok false, next frame still parsed")
    func badHeaderCRC() {
        var bad = Wire3.frame(control: 0xC9, destination: 10, source: 1, userData: [])
        bad[8] ^= 0xFF
        let h = Harness()
        h.feed(bad + Wire3.request([0xC0, 0x01, 0x3C, 0x01, 0x06]))
        #expect(h.anomalies == ["bad_header_crc", "garbage_skipped"])
        #expect(h.pdus.count == 2)
        #expect(h.pdus[0]["crc_ok"] as? Bool == false && h.pdus[0]["bad_crc"] as? String == "header")
        #expect(h.functionCodes == [1])
    }

    @Test("bad header CRC but every data block checks out: the fragment is still decoded")
    func badHeaderCRCGoodData() {
        var frame = Wire3.request([0xC0, 0x01, 0x3C, 0x01, 0x06])
        frame[9] ^= 0x01
        let h = Harness()
        h.feed(frame)
        #expect(h.anomalies == ["bad_header_crc"])
        #expect(h.functionCodes == [1])
        #expect(h.pdus[0]["crc_ok"] as? Bool == false)
    }

    @Test("bad data CRC: anomaly, record with crc_ok false and no application data, flow continues")
    func badDataCRC() {
        var frame = Wire3.request([0xC0, 0x01, 0x3C, 0x01, 0x06])
        frame[12] ^= 0x40
        let h = Harness()
        h.feed(frame + Wire3.request([0xC1, 0x01, 0x3C, 0x02, 0x06], transportSequence: 1))
        #expect(h.anomalies == ["bad_data_crc"])
        #expect(h.pdus.count == 2)
        #expect(h.pdus[0]["crc_ok"] as? Bool == false && h.pdus[0]["bad_crc"] as? String == "data")
        #expect(h.pdus[0]["function_code"] == nil)
        #expect(h.functionCodes == [1])
    }

    @Test("LENGTH below 5 is an anomaly and costs only the header")
    func shortLength() {
        var header: [UInt8] = [0x05, 0x64, 0x03, 0xC4, 0x0A, 0x00, 0x01, 0x00]
        let c = Wire3.crc(header); header += [UInt8(c & 0xFF), UInt8(c >> 8)]
        let h = Harness()
        h.feed(header + Wire3.request([0xC0, 0x01, 0x3C, 0x01, 0x06]))
        #expect(h.anomalies == ["bad_link_length"])
        #expect(h.functionCodes == [1])
    }

    @Test("probe: 05 64 and a valid header CRC", arguments: [
        ([UInt8](), ProbeVerdict.needMoreData),
        ([0x05], .needMoreData),
        ([0x05, 0x64, 0x05], .needMoreData),
        ([0x06], .reject),
        ([0x05, 0x65], .reject),
        ([0x05, 0x64, 0x05, 0xC9, 0x0A, 0x00, 0x01, 0x00, 0x00, 0x00], .reject),
        (Wire3.frame(control: 0xC9, destination: 10, source: 1, userData: []), .accept),
    ] as [([UInt8], ProbeVerdict)])
    func probe(bytes: [UInt8], verdict: ProbeVerdict) {
        let got = ByteView.with(bytes) { DNP3Dissector.probe($0, side: .initiator, transport: .tcp) }
        #expect("\(got)" == "\(verdict)")
        #expect(DNP3Dissector.isWellKnownPort(20000) && !DNP3Dissector.isWellKnownPort(502))
    }
}
