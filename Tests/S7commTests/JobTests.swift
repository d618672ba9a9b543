import Testing
import Wire
import Records
@testable import S7comm

/// Jobs and acks: read/write var, setup communication, block transfer, PI services, PLC stop, pairing.
@Suite struct JobTests {
    @Test func readVarJobItemsAndOperations() {
        let h = Harness()
        let params: [UInt8] = [0x04, 0x03]
            + S7Wire.item(area: 0x84, db: 5, byte: 100, transportSize: 0x04, count: 3)   // DB5.DBW100, 3 words
            + S7Wire.item(area: 0x81, byte: 2, bit: 7, transportSize: 0x01, count: 1)    // I2.7
            + S7Wire.item(area: 0x1D, byte: 0, transportSize: 0x1D, count: 2)             // T
        h.feed(S7Wire.dt(S7Wire.s7(rosctr: 1, ref: 0x1234, params: params)))
        let r = h.s7[0]
        #expect(r.int("rosctr") == 1 && r.int("pdu_reference") == 0x1234)
        #expect(r.int("function_code") == 4 && r.str("function") == "Read Var" && r.str("access") == "read")
        let items = r.arr("items") ?? []
        #expect(items.count == 3)
        #expect(items[0].str("area") == "DB" && items[0].int("db_number") == 5 && items[0].int("byte_address") == 100)
        #expect(items[0].str("transport_size_name") == "WORD" && items[0].int("length") == 3)
        #expect(items[1].str("area") == "I" && items[1].int("byte_address") == 2 && items[1].int("bit_address") == 7)
        #expect(items[2].str("area") == "T")
        #expect(h.operations.count == 3)
        #expect(h.operations[0].area == 0x84 && h.operations[0].dbNumber == 5 && h.operations[0].address == 100 && h.operations[0].quantity == 6)
        #expect(h.operations[1].area == 0x81 && h.operations[1].dbNumber == -1)
        #expect(h.operations.allSatisfy { $0.access == .read && $0.functionCode == 4 && $0.appProtocol == .s7comm })
    }

    @Test func writeVarJobDataItemsAndAck() {
        let h = Harness()
        let params: [UInt8] = [0x05, 0x02] + S7Wire.item(area: 0x83, byte: 10, count: 3) + S7Wire.item(area: 0x82, byte: 0, bit: 1, transportSize: 1, count: 1)
        // Items: 3 bytes (bit length 24, fill byte), 1 bit.
        let data: [UInt8] = [0x00, 0x04, 0x00, 0x18, 0xAA, 0xBB, 0xCC, 0x00, 0x00, 0x03, 0x00, 0x01, 0x01]
        h.feed(S7Wire.dt(S7Wire.s7(rosctr: 1, ref: 2, params: params, data: data)))
        h.feed(S7Wire.dt(S7Wire.s7(rosctr: 3, ref: 2, params: [0x05, 0x02], data: [0xFF, 0x0A])), side: .responder)
        let job = h.s7[0]
        #expect(job.str("access") == "write")
        let values = job.arr("data_items") ?? []
        #expect(values.count == 2 && values[0].str("value") == "aabbcc" && values[1].str("value") == "01")
        let ack = h.s7[1]
        #expect(ack.int("rosctr") == 3 && ack.int("error_class") == 0 && ack.str("access") == "response")
        #expect((ack.arr("items") ?? []).map { $0.int("return_code") } == [0xFF, 0x0A])
        #expect(h.operations.count == 2 && h.operations.allSatisfy { $0.access == .write })
        let tx = h.tx
        #expect(tx.count == 1)
        #expect(tx[0].str("status") == "error")     // one item failed
        #expect(tx[0].obj("response")?.int("items_failed") == 1)
        #expect(h.transactions[0]["frame"] as? Int == 1)
    }

    @Test func readVarAckDataValues() {
        let h = Harness()
        h.feed(FramingTests.readJob)
        h.feed(FramingTests.readAck, side: .responder)
        let ack = h.s7[1]
        #expect(ack.int("function_code") == 4)
        let items = ack.arr("data_items") ?? []
        #expect(items.first?.int("return_code") == 0xFF && items.first?.str("value") == "01020304")
        #expect(h.tx.first?.str("status") == "ok")
        #expect(h.tx.first?.str("area") == "DB" && h.tx.first?.int("db_number") == 1 && h.tx.first?.int("quantity") == 4)
        #expect(h.tx.first?.obj("response")?.int("duration_us") == 1_000_000)
    }

    @Test func setupCommunicationNegotiatesPDUSize() {
        let h = Harness()
        h.feed(S7Wire.dt(S7Wire.s7(rosctr: 1, ref: 0, params: [0xF0, 0x00, 0x00, 0x01, 0x00, 0x01, 0x03, 0xC0])))
        h.feed(S7Wire.dt(S7Wire.s7(rosctr: 3, ref: 0, params: [0xF0, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0xF0])), side: .responder)
        #expect(h.s7[0].int("pdu_size") == 960 && h.s7[0].str("access") == "session")
        #expect(h.s7[1].int("pdu_size") == 240)
        #expect(h.dissector.negotiatedPDUSize == 240)
        h.feed(S7Wire.dt(S7Wire.s7(rosctr: 1, ref: 1, params: [0x05, 0x01] + S7Wire.item(area: 0x84, db: 1, byte: 0, count: 300),
                                   data: [0x00, 0x04] + S7Wire.be16(2400) + [UInt8](repeating: 0, count: 300))))
        #expect(h.anomalies.contains { $0.kind.description == "pdu_exceeds_negotiated_size" })
    }

    @Test func ackWithErrorClass() {
        let h = Harness()
        h.feed(S7Wire.dt(S7Wire.s7(rosctr: 1, ref: 9, params: [0x1D, 0, 0, 0, 0, 0, 0, 0, 0x09] + Array("_0B00000A".utf8))))
        h.feed(S7Wire.dt(S7Wire.s7(rosctr: 2, ref: 9, params: [], errorClass: 0xD2, errorCode: 0x0C)), side: .responder)
        let ack = h.s7[1]
        #expect(ack.int("rosctr") == 2 && ack.int("error_class") == 0xD2 && ack.int("error_code") == 0x0C)
        #expect(ack["function_code"] == nil)
        #expect(h.tx.first?.str("status") == "error")
        #expect(h.tx.first?.str("block_type") == "SDB")
    }

    static let piCases: [(String, [UInt8], String, AccessClass)] = [
        ("_INSE", [0x01, 0x00] + Array("0A00001P".utf8), "Activates a PLC module", .programDownload),
        ("_DELE", [0x01, 0x00] + Array("0C00042B".utf8), "Removes module from the PLC's passive file system", .programDownload),
        ("P_PROGRAM", Array("C ".utf8), "PLC Start / Stop", .lifecycle),
        ("_MODU", Array("EP".utf8), "PLC Copy Ram to Rom", .config),
        ("_GARB", [], "Compress PLC memory", .config),
        ("_N_LOGIN_", Array("pw".utf8), "Login", .auth),
        ("_N_F_DELE", Array("/x".utf8), "Deletes file", .file),
    ]

    @Test(arguments: piCases)
    func piServiceNamesArgumentsAndClasses(service: String, block: [UInt8], description: String, access: AccessClass) {
        let name = Array(service.utf8)
        let params: [UInt8] = [0x28, 0, 0, 0, 0, 0, 0, 0xFD] + S7Wire.be16(block.count) + block + [UInt8(name.count)] + name
        let h = Harness()
        h.feed(S7Wire.dt(S7Wire.s7(rosctr: 1, ref: 4, params: params)))
        let r = h.s7[0]
        #expect(r.str("pi_service") == service)
        #expect(r.str("pi_service_description") == description)
        #expect(r.str("access") == access.name.description)
        #expect(h.operations.first?.access == access)
        #expect(h.operations.first?.subfunction == ByteView.with(name) { S7PIService.code($0) })
        if service == "_INSE" {
            let blocks = r.arr("blocks") ?? []
            #expect(blocks.count == 1 && blocks[0].str("block_type") == "DB" && blocks[0].int("block_number") == 1 && blocks[0].str("filesystem") == "P")
            #expect(h.operations.first?.dbNumber == 1)
            #expect(h.operations.first?.function.description == "PI-Service _INSE")
        } else if service == "_DELE" {
            #expect(h.operations.first?.subfunction == 0x5F44_454C)   // Detection's block-delete convention
            #expect((r.arr("blocks") ?? []).first?.str("block_type") == "FC")
        } else if !block.isEmpty {
            #expect(r.str("pi_arguments") == String(decoding: block, as: UTF8.self))
        }
    }

    @Test func plcStop() {
        let h = Harness()
        h.feed(S7Wire.dt(S7Wire.s7(rosctr: 1, ref: 0x3500, params: [0x29, 0, 0, 0, 0, 0, 0x09] + Array("P_PROGRAM".utf8))))
        #expect(h.s7[0].str("function") == "PLC Stop" && h.s7[0].str("pi_service") == "P_PROGRAM")
        #expect(h.operations.first?.access == .lifecycle && h.operations.first?.functionCode == 0x29)
    }

    /// In a download the PLC sends the Download block and Download ended Jobs: still program_download.
    @Test func downloadIsClassifiedByTheDirectionOfTheLogic() {
        let h = Harness()
        let name = Array("_0A00001P".utf8)
        h.feed(S7Wire.dt(S7Wire.s7(rosctr: 1, ref: 1, params: [0x1A, 0x00, 0x01, 0x00, 0, 0, 0, 0, 0x09] + name + [0x0D] + Array("1000216000088".utf8))))
        h.feed(S7Wire.dt(S7Wire.s7(rosctr: 3, ref: 1, params: [0x1A])), side: .responder)
        h.feed(S7Wire.dt(S7Wire.s7(rosctr: 1, ref: 0x6501, params: [0x1B, 0, 0, 0, 0, 0, 0, 0, 0x09] + name)), side: .responder)
        h.feed(S7Wire.dt(S7Wire.s7(rosctr: 3, ref: 0x6501, params: [0x1B, 0x00], data: [0x00, 0x04, 0x00, 0xFB, 1, 2, 3, 4])))
        h.feed(S7Wire.dt(S7Wire.s7(rosctr: 1, ref: 0x6701, params: [0x1C, 0, 0, 0, 0, 0, 0, 0, 0x09] + name)), side: .responder)
        h.feed(S7Wire.dt(S7Wire.s7(rosctr: 3, ref: 0x6701, params: [0x1C])))
        #expect(h.s7[0].int("load_memory_length") == 216 && h.s7[0].int("mc7_length") == 88)
        #expect(h.s7[0].obj("block")?.str("block_type") == "DB" && h.s7[0].obj("block")?.int("block_number") == 1)
        #expect(h.s7[3].int("block_data_length") == 4)
        #expect(h.operations.count == 3)
        #expect(h.operations.allSatisfy { $0.access == .programDownload && $0.dbNumber == 1 })
        #expect(h.operations[1].sender == .responder)     // the PLC sent that Job
        #expect(h.tx.count == 3 && h.tx.allSatisfy { $0.str("status") == "ok" })
        #expect(h.transactions[1]["source"].flatMap { ($0 as? [String: Any])?["port"] as? Int } == 102)
    }

    @Test(arguments: [(UInt8(0x1D), AccessClass.programUpload), (0x1E, .programUpload), (0x1F, .programUpload),
                      (0x1A, .programDownload), (0x00, .diagnostic), (0x01, .lifecycle), (0x04, .read), (0x05, .write),
                      (0x29, .lifecycle), (0xF0, .session), (0x77, .control)])
    func jobClasses(function: UInt8, access: AccessClass) {
        #expect(S7Classification.job(function: function, piService: .empty) == access)
    }

    @Test func unansweredJobsAreFlushedAtFinish() {
        let h = Harness()
        let quietBefore = h.dissector.finishesQuietly(transactionRecords: true)
        h.feed(FramingTests.readJob)
        // `finish` has a record to write for it, and nothing to report without records (the engine then skips it).
        let quiet = (h.dissector.finishesQuietly(transactionRecords: true), h.dissector.finishesQuietly(transactionRecords: false))
        #expect(quietBefore && quiet == (false, true))
        h.finish()
        #expect(h.tx.count == 1 && h.tx[0].str("status") == "unanswered")
    }

    @Test func unmatchedAckIsLogged() {
        let h = Harness()
        h.feed(FramingTests.readAck, side: .responder)
        #expect(h.tx.count == 1 && h.tx[0].str("status") == "unmatched_response")
    }

    @Test func pendingTableIsBounded() {
        let h = Harness()
        for ref in 0..<(PendingTable.capacity + 3) {
            h.feed(S7Wire.dt(S7Wire.s7(rosctr: 1, ref: ref, params: [0x04, 0x01] + S7Wire.item(area: 0x84, db: 1, byte: 0, count: 1))))
        }
        #expect(h.tx.filter { $0.str("status") == "evicted" }.count == 3)
        #expect(h.anomalies.filter { $0.kind.description == "pending_requests_overflow" }.count == 1)   // once per flow
        #expect(h.dissector.pending.live == PendingTable.capacity)
    }

    /// Without transaction records only keys are filed (`PendingTable.insertKey`): the overflow anomaly comes at the
    /// same request as with records, once, and the request array is never allocated.
    @Test func pendingTableWithoutRecordsKeepsKeysOnly() {
        let with = Harness(), without = Harness(records: false, transactions: false)
        var overflowAt: [Int] = [], overflowAtWithout: [Int] = []
        for ref in 0..<(PendingTable.capacity + 3) {
            let pdu = S7Wire.dt(S7Wire.s7(rosctr: 1, ref: ref, params: [0x04, 0x01] + S7Wire.item(area: 0x84, db: 1, byte: 0, count: 1)))
            with.feed(pdu); without.feed(pdu)
            if with.anomalies.contains(where: { $0.kind.description == "pending_requests_overflow" }) && overflowAt.isEmpty { overflowAt.append(ref) }
            if without.anomalies.contains(where: { $0.kind.description == "pending_requests_overflow" }) && overflowAtWithout.isEmpty {
                overflowAtWithout.append(ref)
            }
        }
        #expect(overflowAt == [PendingTable.capacity] && overflowAtWithout == overflowAt)
        #expect(without.anomalies.filter { $0.kind.description == "pending_requests_overflow" }.count == 1)
        #expect(without.dissector.pending.live == PendingTable.capacity && without.dissector.pending.slots.isEmpty)
        #expect(without.operations.count == with.operations.count)
    }

    /// What every PDU reads (the PDU size, both sides' states, the table's counter and inline keys) is the state's first
    /// line, the part the engine prefetches; the whole state fits a 128-byte pool slot.
    @Test func hotFieldsAreInTheStatesFirstLine() {
        let hot: [PartialKeyPath<S7commDissector>] = [\.negotiatedPDUSizeField, \.reportedPendingOverflow, \.initiatorState,
                                                      \.responderState, \.pending]
        for k in hot { #expect(MemoryLayout<S7commDissector>.offset(of: k)! < 64) }
        #expect(MemoryLayout<S7commDissector>.offset(of: \.responderState)! + MemoryLayout<S7SideState>.size <= 64)
        #expect(S7commDissector.perPacketKeysEnd <= 64)
        #expect(MemoryLayout<S7commDissector>.size <= 128)
    }

    /// A table that has had more requests in flight than fit inline keeps its keys beyond them in a shared block copied
    /// on change: a copy of the table is a value.
    @Test func overflowKeysAreCopiedOnChange() {
        var t = PendingTable()
        for ref in 0..<(PendingTable.inlineKeyCount + 2) {
            #expect(t.insertKey(side: .initiator, pduReference: UInt16(ref), userdata: false) == .added)
        }
        let copy = t
        t.remove(side: .initiator, pduReference: UInt16(PendingTable.inlineKeyCount + 1), userdata: false)
        var c = copy
        #expect(c.insertKey(side: .initiator, pduReference: UInt16(PendingTable.inlineKeyCount + 1), userdata: false) == .sameKey)
        #expect(t.insertKey(side: .initiator, pduReference: UInt16(PendingTable.inlineKeyCount + 1), userdata: false) == .added)
        #expect(t.live == PendingTable.inlineKeyCount + 2 && copy.live == PendingTable.inlineKeyCount + 2)
    }

    @Test func insertKeySupersedesEvictsAndFillsHoles() {
        var t = PendingTable()
        #expect(t.insertKey(side: .initiator, pduReference: 1, userdata: false) == .added)
        #expect(t.insertKey(side: .initiator, pduReference: 1, userdata: false) == .sameKey)
        #expect(t.insertKey(side: .responder, pduReference: 1, userdata: false) == .added)   // the side is part of the key
        #expect(t.insertKey(side: .initiator, pduReference: 1, userdata: true) == .added)    // and the kind
        t.remove(side: .initiator, pduReference: 1, userdata: false)
        #expect(t.live == 2)
        #expect(t.insertKey(side: .initiator, pduReference: 9, userdata: false) == .added)   // into the hole
        for ref in 100..<(100 + PendingTable.capacity - 3) {
            #expect(t.insertKey(side: .initiator, pduReference: UInt16(ref), userdata: false) == .added)
        }
        #expect(t.live == PendingTable.capacity)
        #expect(t.insertKey(side: .initiator, pduReference: 9, userdata: false) == .sameKey)
        #expect(t.insertKey(side: .initiator, pduReference: 7, userdata: false) == .evicted)
        #expect(t.live == PendingTable.capacity && t.slots.isEmpty)
        var drained = 0
        t.drain { _ in drained += 1 }
        #expect(drained == 0 && t.live == 0)   // keys only: nothing to hand out
        // Emptied (drained, or every key removed): the next key is filed (in slot 0, without a scan) and found again.
        #expect(t.insertKey(side: .responder, pduReference: 5, userdata: false) == .added)
        #expect(t.insertKey(side: .responder, pduReference: 5, userdata: false) == .sameKey)
        t.remove(side: .responder, pduReference: 5, userdata: false)
        #expect(t.live == 0)
        #expect(t.insertKey(side: .initiator, pduReference: 6, userdata: false) == .added)
        #expect(t.insertKey(side: .initiator, pduReference: 7, userdata: false) == .added)
        t.remove(side: .initiator, pduReference: 6, userdata: false)
        #expect(t.insertKey(side: .initiator, pduReference: 7, userdata: false) == .sameKey)   // behind the hole
        #expect(t.live == 1)
    }

    /// The scans stop early once every live key was seen; holes left by acks must not hide a live key
    /// behind them, and a new request takes the first hole.
    @Test func pendingTableFindsKeysBehindHoles() {
        var t = PendingTable()
        func request(_ ref: Int, frame: UInt64) -> PendingRequest {
            var r = PendingRequest(); r.pduReference = UInt16(ref); r.frame = frame; return r
        }
        for ref in 0..<6 { #expect(t.insert(request(ref, frame: UInt64(ref))) == nil) }
        t.remove(side: .initiator, pduReference: 1, userdata: false)
        t.remove(side: .initiator, pduReference: 3, userdata: false)
        #expect(t.live == 4)
        #expect(t.take(side: .initiator, pduReference: 3, userdata: false) == nil)
        #expect(t.take(side: .responder, pduReference: 5, userdata: false) == nil)
        #expect(t.take(side: .initiator, pduReference: 5, userdata: true) == nil)
        #expect(t.insert(request(4, frame: 40))?.frame == 4)          // same key behind two holes: superseded
        #expect(t.insert(request(7, frame: 70)) == nil)               // first hole
        #expect(t.slots[1].frame == 70 && t.live == 5)
        #expect(t.take(side: .initiator, pduReference: 5, userdata: false)?.frame == 5)
        #expect(t.take(side: .initiator, pduReference: 4, userdata: false)?.frame == 40)
        var drained: [UInt16] = []
        t.drain { drained.append($0.pduReference) }
        #expect(drained.sorted() == [0, 2, 7] && t.live == 0)
    }

    @Test func truncatedPDUIsFlagged() {
        let h = Harness()
        var pdu = S7Wire.s7(rosctr: 1, ref: 1, params: [0x04, 0x01] + S7Wire.item(area: 0x84, db: 1, byte: 0, count: 1))
        pdu.removeLast(4)
        h.feed(S7Wire.dt(pdu))
        #expect(h.s7.first?.bool("truncated") == true)
        #expect(h.anomalies.contains { $0.kind.description == "s7_length_mismatch" })
    }
}

@Suite struct PIServiceLayoutTests {
    /// python-snap7 3.x sends block deletes with lengths that do not add up (tshark: malformed);
    /// the service name at the end still identifies the request.
    @Test func pythonSnap7DeleteIsStillADelete() {
        let params = S7Wire.hex("2800000000000008050034313030303032505f44454c45")
        let h = Harness()
        h.feed(S7Wire.dt(S7Wire.s7(rosctr: 1, ref: 12, params: params)))
        #expect(h.s7[0].str("pi_service") == "_DELE" && h.s7[0].bool("pi_nonstandard_layout") == true)
        #expect(h.operations.first?.access == .programDownload && h.operations.first?.subfunction == 0x5F44_454C)
    }
}
