import Testing
import Wire
import Records
@testable import S7comm

/// TPKT (RFC 1006) and COTP (ISO 8073) framing over the reassembled stream.
@Suite struct FramingTests {
    /// A Read Var job for DB1.DBB0, 4 bytes.
    static let readJob = S7Wire.dt(S7Wire.s7(rosctr: 1, ref: 0x0100, params: [0x04, 0x01] + S7Wire.item(area: 0x84, db: 1, byte: 0, count: 4)))
    /// Its Ack_Data.
    static let readAck = S7Wire.dt(S7Wire.s7(rosctr: 3, ref: 0x0100, params: [0x04, 0x01], data: [0xFF, 0x04, 0x00, 0x20, 1, 2, 3, 4]))

    @Test func tpktHeaderChecks() {
        ByteView.with([0x03, 0x00, 0x00, 0x07]) { #expect(TPKT.header($0, at: 0) == .valid(length: 7)) }
        ByteView.with([0x03, 0x00, 0x00]) { #expect(TPKT.header($0, at: 0) == .needMoreData) }
        ByteView.with([0x02, 0x00, 0x00, 0x07]) { #expect(TPKT.header($0, at: 0) == .invalid) }     // version
        ByteView.with([0x03, 0x01, 0x00, 0x07]) { #expect(TPKT.header($0, at: 0) == .invalid) }     // reserved
        ByteView.with([0x03, 0x00, 0x00, 0x03]) { #expect(TPKT.header($0, at: 0) == .invalid) }     // length < header
    }

    @Test func probeAcceptsTPKTWithCOTPOnly() {
        ByteView.with(S7Wire.connectionRequest()) { #expect(S7commDissector.probe($0, side: .initiator, transport: .tcp) == .accept) }
        ByteView.with(Self.readJob) { #expect(S7commDissector.probe($0, side: .initiator, transport: .tcp) == .accept) }
        ByteView.with([0x03, 0x00]) { #expect(S7commDissector.probe($0, side: .initiator, transport: .tcp) == .needMoreData) }
        ByteView.with(Array("GET / HTTP/1.1\r\n".utf8)) { #expect(S7commDissector.probe($0, side: .initiator, transport: .tcp) == .reject) }
        ByteView.with([0x03, 0x00, 0x00, 0x0B, 0x06, 0x30, 0, 0, 0, 0, 0]) {   // unknown TPDU code 0x3_
            #expect(S7commDissector.probe($0, side: .initiator, transport: .tcp) == .reject)
        }
        ByteView.with(Self.readJob) { #expect(S7commDissector.probe($0, side: .initiator, transport: .udp) == .reject) }
    }

    @Test func severalTPKTsInOneSegment() {
        let h = Harness()
        h.feed(S7Wire.connectionRequest() + Self.readJob + Self.readJob)
        #expect(h.tails[0].isEmpty)
        #expect(h.pdus.count == 3)
        #expect(h.s7[0].obj("cotp")?.str("type") == "CR")
        #expect(h.s7[0]["rosctr"] == nil)          // COTP-only records carry no rosctr
        #expect(h.s7[1].int("rosctr") == 1 && h.s7[2].int("rosctr") == 1)
        #expect(h.pdus.allSatisfy { ($0["frame"] as? Int) == 1 })
    }

    /// Every split point of a two-PDU stream gives the same records (PDU reported when completed).
    @Test(arguments: 1..<(readJob.count + readAck.count))
    func splitAcrossSegments(at cut: Int) {
        let stream = Self.readJob + Self.readJob
        let h = Harness()
        h.feed(Array(stream[..<min(cut, stream.count)]))
        if cut < stream.count { h.feed(Array(stream[cut...])) }
        #expect(h.s7.count == 2)
        #expect(h.s7.allSatisfy { $0.int("function_code") == 4 })
        #expect(h.anomalies.isEmpty)
    }

    @Test func dripFeedOneByteAtATime() {
        let stream = S7Wire.connectionRequest() + Self.readJob + Self.readJob
        let h = Harness()
        for (i, b) in stream.enumerated() {
            h.feed([b])
            let complete = [S7Wire.connectionRequest().count, S7Wire.connectionRequest().count + Self.readJob.count, stream.count]
            #expect(h.pdus.count == complete.filter { $0 <= i + 1 }.count)
        }
        #expect(h.anomalies.isEmpty)
        #expect(h.tails[0].isEmpty)
    }

    @Test func multiDTReassembly() {
        let pdu = S7Wire.s7(rosctr: 1, ref: 7, params: [0x04, 0x02] + S7Wire.item(area: 0x84, db: 2, byte: 10, count: 2)
                                                      + S7Wire.item(area: 0x83, byte: 4, bit: 3, transportSize: 1, count: 1))
        let h = Harness()
        // Three DTs: two without EOT (one of them empty), then the last with EOT.
        h.feed(S7Wire.dt(Array(pdu[0..<9]), eot: false, number: 0))
        h.feed(S7Wire.dt([], eot: false, number: 1))
        #expect(h.s7.isEmpty)
        h.feed(S7Wire.dt(Array(pdu[9...]), eot: true, number: 2))
        #expect(h.s7.count == 1)
        #expect(h.s7[0].int("item_count") == 2)
        #expect(h.pdus[0]["frame"] as? Int == 3)
        let items = h.s7[0].arr("items") ?? []
        #expect(items.count == 2)
        #expect(items.last?.str("area") == "M" && items.last?.int("bit_address") == 3)
    }

    @Test func reassemblyOverflowIsDroppedAndReported() {
        let h = Harness()
        let chunk = [UInt8](repeating: 0x41, count: 4000)
        for _ in 0..<5 { h.feed(S7Wire.dt(chunk, eot: false)) }   // 20000 bytes > 16 KiB
        h.feed(S7Wire.dt([0x42], eot: true))
        #expect(h.anomalies.contains { $0.kind.description == "cotp_reassembly_overflow" })
        #expect(h.s7.isEmpty)
        // The stream keeps working afterwards.
        h.feed(Self.readJob)
        #expect(h.s7.count == 1)
    }

    @Test func garbageBeforeATPKTIsSkipped() {
        let h = Harness()
        h.feed([0x01, 0x02, 0x03, 0x04, 0x05] + Self.readJob)
        #expect(h.anomalies.first?.kind.description == "bad_tpkt_header")
        #expect(h.anomalies.contains { $0.kind.description == "tpkt_resync_skipped" })
        #expect(h.s7.count == 1)
    }

    @Test func resynchronisesAfterGap() {
        let h = Harness()
        let stream = Self.readJob + Self.readJob
        h.feed(Array(stream[..<10]))                 // half a PDU, then bytes go missing
        h.gap(.initiator, length: 30)
        h.feed(Array(Self.readJob[20...]) + Self.readJob)   // the tail of a PDU, then a whole one
        #expect(h.s7.count == 1)
        #expect(h.s7[0].int("pdu_reference") == 0x0100)
        h.feed(Self.readJob)
        #expect(h.s7.count == 2)
    }

    @Test func gapDropsPartialCOTPMessage() {
        let h = Harness()
        let pdu = S7Wire.s7(rosctr: 1, ref: 9, params: [0x04, 0x01] + S7Wire.item(area: 0x84, db: 1, byte: 0, count: 1))
        h.feed(S7Wire.dt(Array(pdu[0..<8]), eot: false))
        h.gap(.initiator)
        h.feed(S7Wire.dt(Array(pdu[8...]), eot: true))   // a continuation without its start: not S7
        #expect(h.s7.isEmpty)
        h.feed(Self.readJob)
        #expect(h.s7.count == 1)
    }

    @Test func connectionRequestRecordHasTSAPsRackSlotAndTPDUSize() {
        let h = Harness()
        h.feed(S7Wire.connectionRequest(srcTSAP: [0x01, 0x00], dstTSAP: [0x03, 0x02], tpduSize: 0x0A))
        let c = h.s7.first?.obj("cotp")
        #expect(c?.str("type") == "CR")
        #expect(c?.int("tpdu_size") == 1024)
        #expect(c?.str("src_tsap") == "0100")
        #expect(c?.str("dst_tsap") == "0302")
        #expect(c?.str("dst_tsap_connection_type") == "S7 basic")
        #expect(c?.int("dst_tsap_rack") == 0 && c?.int("dst_tsap_slot") == 2)
        #expect(h.s7.first?.str("access") == "session")
    }

    @Test func textTSAPOfS7commPlusConnections() {
        let h = Harness()
        h.feed(S7Wire.connectionRequest(srcTSAP: [0x01, 0x00], dstTSAP: Array("SIMATIC-ROOT-HMI".utf8)))
        #expect(h.s7.first?.obj("cotp")?.str("dst_tsap_text") == "SIMATIC-ROOT-HMI")
    }

    @Test(arguments: [
        (UInt8(0xD0), "CC"), (0x80, "DR"), (0xC0, "DC"), (0x70, "ER"), (0x60, "AK"), (0x50, "RJ"), (0x20, "EA"), (0x10, "ED"),
    ])
    func connectionPDUsGetOneRecordEach(code: UInt8, name: String) {
        let tpdu: [UInt8]
        switch code >> 4 {
        case 0xD: tpdu = [0x06, code, 0x00, 0x01, 0x00, 0x02, 0x00]
        case 0x8: tpdu = [0x06, code, 0x00, 0x01, 0x00, 0x02, 0x80]
        case 0xC: tpdu = [0x05, code, 0x00, 0x01, 0x00, 0x02]
        case 0x1: tpdu = [0x04, code, 0x00, 0x01, 0x80, 0xAA]
        default: tpdu = [0x04, code, 0x00, 0x01, 0x01]
        }
        let h = Harness()
        h.feed(S7Wire.tpkt(tpdu))
        #expect(h.s7.count == 1)
        #expect(h.s7.first?.obj("cotp")?.str("type") == name)
        #expect(h.s7.first?["rosctr"] == nil)
    }

    @Test func concatenatedAckAndData() {
        let h = Harness()
        let ak: [UInt8] = [0x04, 0x61, 0x00, 0x01, 0x05]
        let dt: [UInt8] = [0x02, 0xF0, 0x80] + S7Wire.s7(rosctr: 1, ref: 3, params: [0xF0, 0x00, 0x00, 0x01, 0x00, 0x01, 0x01, 0xE0])
        h.feed(S7Wire.tpkt(ak + dt))
        #expect(h.pdus.count == 2)
        #expect(h.s7[1].int("function_code") == 0xF0)
    }

    @Test func foreignCOTPPayloadIsReportedOnce() {
        let h = Harness()
        let mms: [UInt8] = [0x61, 0x0C, 0x30, 0x0A]   // ISO session/MMS, as on IEC 61850 port 102
        h.feed(S7Wire.dt(mms) + S7Wire.dt(mms))
        #expect(h.s7.isEmpty && h.plus.isEmpty)
        #expect(h.anomalies.filter { $0.kind.description == "not_s7_cotp_payload" }.count == 1)
    }

    @Test func disconnectDropsPartialMessage() {
        let h = Harness()
        h.feed(S7Wire.dt([0x32, 0x01, 0x00], eot: false))
        h.feed(S7Wire.tpkt([0x06, 0x80, 0x00, 0x01, 0x00, 0x02, 0x80]))
        h.feed(Self.readJob)
        #expect(h.s7.count == 2)
        #expect(h.s7[1].int("function_code") == 4)
    }

    /// A flow that ends with a message in reassembly reports it at `finish`, from the side that sent it, with its bytes
    /// so far: a COTP message (DTs without EOT) and a userdata message (fragments without the last). An anomaly when a
    /// peer ended the flow; a count with no anomaly when the capture ended it.
    @Test(arguments: [false, true]) func aMessageLeftInReassemblyIsReportedAtTheEnd(atCaptureBoundary: Bool) {
        let pdu = S7Wire.s7(rosctr: 1, ref: 7, params: [0x04, 0x01] + S7Wire.item(area: 0x84, db: 2, byte: 10, count: 2))
        let cotp = Harness(), userdata = Harness()
        cotp.feed(S7Wire.dt(Array(pdu[0..<9]), eot: false, number: 0))
        userdata.feed(S7Wire.dt(S7Wire.userdata(ref: 1, type: 8, group: 4, sub: 1, extended: true, dataUnit: 5, last: false,
                                                payload: [0x00, 0x1C, 0, 0, 0, 34, 0, 1])), side: .responder)
        let userdataHeld = userdata.dissector.userdataBuffer.count(.responder)
        #expect(userdataHeld > 0)
        for (h, side, bytes) in [(cotp, FlowSide.initiator, 9), (userdata, .responder, userdataHeld)] {
            let holds = h.dissector.holdsUnfinishedMessage   // (a failed expectation on the state would print all of it)
            let quiet = h.dissector.finishesQuietly(transactionRecords: false)
            #expect(holds && !quiet)
            h.sink.endingAtCaptureBoundary = atCaptureBoundary
            h.finish()
            let cut = h.anomalies.filter { $0.kind.description == "truncated_at_end" }
            if atCaptureBoundary {
                #expect(cut.isEmpty)
                #expect(h.sink.cutByCapture == (1, UInt64(bytes)))
            } else {
                #expect(cut.count == 1 && cut.first?.layer.description == "s7comm" && cut.first?.value == Int64(bytes) && cut.first?.sender == side)
                #expect(h.sink.cutByCapture == (0, 0))
            }
            let holdsAfter = h.dissector.holdsUnfinishedMessage
            #expect(!holdsAfter)
        }
        // A whole message leaves nothing.
        let whole = Harness()
        whole.feed(S7Wire.dt(pdu))
        let wholeHolds = whole.dissector.holdsUnfinishedMessage
        #expect(!wholeHolds)
        whole.finish()
        #expect(!whole.anomalies.contains { $0.kind.description == "truncated_at_end" })
    }
}
