import Wire
import Records

// DNP3 over TCP or UDP port 20000 (IEEE 1815-2012 Annex E): a byte stream (or datagrams) of link
// frames. Per frame: link header → CRC-checked user data → transport segment → reassembled
// application fragment → objects. Each layer lives in its own file; this one wires them to the
// engine's contract and the sink.
//
//   stream   05 64 LEN CTL DST DST SRC SRC CRC CRC | data(≤16) CRC CRC | data(≤16) CRC CRC | ...
//   resync   anything that is not 05 64 is skipped (and reported) up to the next 05 64

/// Per-flow session tables, allocated when the flow first needs them: a SELECT or OPERATE, or pairing for
/// transaction records. A flow that only polls never allocates them, so its frames touch no per-flow heap
/// object (with 100,000 flows, reaching one cost a cache miss per frame).
///
/// Only the flow's own dissector (one thread, one call at a time) touches it, so its stored properties
/// skip the dynamic exclusivity checks a class property otherwise pays on every access (a
/// `swift_beginAccess` call per frame).
final class DNP3FlowState {
    /// Pairing and select-before-operate tables.
    @exclusivity(unchecked) var session = DNP3Session()
}

/// Per-flow DNP3 state: the engine's entry point into this protocol.
public struct DNP3Dissector: AppDissector {
    /// DNP3.
    public static var appProtocol: AppProtocol { .dnp3 }
    /// TCP and UDP port 20000 (IEEE 1815-2012 Annex E).
    public static func isWellKnownPort(_ port: UInt16) -> Bool { port == 20000 }
    /// The largest link frame: LENGTH 255 with its 17 CRCs, 292 octets.
    public static var maximumPDUSize: Int { DNP3LinkHeader.maximumFrameSize }
    /// The flow context is read at the first delivery (TCP or UDP: `datagram`), and otherwise only for records.
    public static var readsFlowContextAfterFirstDelivery: Bool { false }

    /// Accepts bytes that start with 0x05 0x64 and a header whose CRC checks out.
    public static func probe(_ bytes: ByteView, side: FlowSide, transport: Transport) -> ProbeVerdict {
        if bytes.count >= 1 && bytes.u8(0) != 0x05 { return .reject }
        if bytes.count >= 2 && bytes.u8(1) != 0x64 { return .reject }
        guard bytes.count >= DNP3LinkHeader.headerSize else { return .needMoreData }
        // The frame loop's header read (one word, one CRC step): `DNP3CRC.check` took about 150 instructions a flow.
        return DNP3Dissector.linkHeader(bytes, at: 0, multiplying: DNP3CRC.carrylessMultiply)?.headerCRCOK == true ? .accept : .reject
    }

    /// Session tables (see `sessionState`); nil until the flow needs them.
    var state: DNP3FlowState?
    /// Fragment reassembly, created when the flow first sends a multi-segment fragment. Held here rather than in
    /// `state` so that the usual single-segment fragment is recognised without reaching a heap object.
    var reassembler: DNP3Reassembler?
    /// Whether the flow is UDP (each datagram holds whole frames), from the flow context at the first delivery; nil
    /// before it.
    var datagram: Bool?
    /// `DNP3CRC.carrylessMultiply`, read once per flow like the tables below (it fits in the padding after `datagram`).
    let multiplying = DNP3CRC.carrylessMultiply
    /// The destination address of the flow's previous request from the initiator's side (-1: none yet), for
    /// `Operation.unitRepeated`: without a policy, detection passes over a request to the same address as the one before
    /// it without looking it up. (In the padding after `multiplying`: the state stays 32 bytes.)
    var lastInitiatorDestination: Int32 = -1
    /// `DNP3CRC.slices`, read once per flow: every read of that lazy global is a `swift_once` call. The size codes
    /// follow it in the same block (`sizeCodes`): one pointer for both keeps the state at 32 bytes.
    let crcTable = DNP3CRC.slices
    /// `DNP3ObjectCatalog.sizeCodes`, found from `crcTable` (no `swift_once` call per frame).
    @inline(__always) var sizeCodes: UnsafePointer<UInt8> {
        UnsafeRawPointer(crcTable).advanced(by: DNP3CRC.sizeCodesOffset).assumingMemoryBound(to: UInt8.self)
    }

    /// A fresh flow; its buffers are allocated when it first needs them.
    public init() {}

    /// The flow's session tables, created on first use.
    mutating func sessionState() -> DNP3FlowState {
        if let s = state { return s }
        let s = DNP3FlowState()
        state = s
        return s
    }

    // MARK: - Link layer: framing and resynchronisation

    /// Parses every whole link frame in `bytes`, resynchronising on 05 64; leaves a partial frame unconsumed.
    @inlinable
    public mutating func consume(_ bytes: ByteView, side: FlowSide, sink: EventSink) -> Int {
        // Inlinable: the engine's call lands in `consumeFrames` directly (this wrapper was a call of its own per packet).
        // A frame's user data is copied out of its CRC blocks (≤ 250 octets, and up to eight octets written past
        // them) into the sink's scratch block: it is read before the frame's handling returns (a multi-segment
        // fragment is copied into the reassembler). Stack memory here gave the engine's delivery frame 256 bytes more
        // and a stack-protector check.
        let scratch = sink.scratch
        let handled = consumeFrames(bytes, side: side, sink: sink, scratch: scratch)
        return handled >= 0 ? handled : consumeFrameRun(bytes, side: side, sink: sink, scratch: scratch)
    }

    /// `consume` with its scratch buffer for the usual delivery, exactly one whole frame whose header checks out with
    /// records off, which `quietFrame` handles: the bytes used; -1, with nothing done, for any other delivery
    /// (`consumeFrameRun` then takes it from the start). What the loop in `consumeFrameRun` does with such a delivery,
    /// without the values a loop keeps (spilled and reloaded on every call). Every other case is left to the caller so
    /// that no exit from here needs the delivery's values in place for a call: reloading them before each of the
    /// quiet path's checks that may fail cost about 35 instructions a frame.
    @usableFromInline
    mutating func consumeFrames(_ bytes: ByteView, side: FlowSide, sink: EventSink, scratch: UnsafeMutableRawPointer) -> Int {
        if self.datagram == nil { self.datagram = sink.flow.transport == .udp }   // the flow context is there only now
        let n = bytes.count
        if !sink.recordsEnabled,
           let header = DNP3Dissector.linkHeader(bytes, at: 0, crcTable: crcTable, multiplying: multiplying),
           header.headerCRCOK && header.length >= 5 && header.frameSize == n,
           quietFrame(bytes, at: 0, header, side: side, sink: sink, scratch: scratch, crcTable: crcTable, multiplying: multiplying) {
            return n
        }
        return -1
    }

    /// `consume` for any delivery: every whole frame, resynchronising on 05 64. (`quietFrame` does nothing when it
    /// answers false, so a frame `consumeFrames` tried is taken here as if it had not.)
    @inline(never) @usableFromInline
    mutating func consumeFrameRun(_ bytes: ByteView, side: FlowSide, sink: EventSink, scratch: UnsafeMutableRawPointer) -> Int {
        let datagram = self.datagram ?? false
        let quiet = !sink.recordsEnabled
        let crcTable = self.crcTable, multiplying = self.multiplying
        let n = bytes.count
        var off = 0
        while off < n {
            if bytes.u8(off) != 0x05 || (off + 1 < n && bytes.u8(off + 1) != 0x64) {
                let next = DNP3Dissector.nextStart(bytes, from: off + 1)
                sink.emit(Anomaly(layer: "dnp3", kind: "garbage_skipped", offset: off, value: Int64(next - off)), sender: side)
                off = next
                continue
            }
            guard let header = DNP3Dissector.linkHeader(bytes, at: off, crcTable: crcTable, multiplying: multiplying) else {
                if datagram { truncated(at: off, count: n - off, side: side, sink: sink); off = n }
                break
            }
            if !header.headerCRCOK {
                // The length cannot be trusted on its own: accept it only if the data blocks it
                // implies all check out; otherwise report the frame and resynchronise after 05 64.
                if header.length >= 5 && header.userDataLength > 0 && header.functionCarriesUserData {
                    if !bytes.has(header.frameSize, at: off) && !datagram { break }
                    if header.userDataCRCsOK(bytes, frameAt: off) {
                        sink.emit(Anomaly(layer: "dnp3", kind: "bad_header_crc", offset: off, value: Int64(header.source)), sender: side)
                        processFrame(bytes, at: off, header, side: side, sink: sink, scratch: scratch)
                        off += header.frameSize
                        continue
                    }
                }
                sink.emit(Anomaly(layer: "dnp3", kind: "bad_header_crc", offset: off, value: Int64(header.source)), sender: side)
                linkRecord(header, crcOK: false, badCRC: "header", side: side, sink: sink)
                off += 2
                continue
            }
            if header.length < 5 {
                sink.emit(Anomaly(layer: "dnp3", kind: "bad_link_length", offset: off, value: Int64(header.length)), sender: side)
                linkRecord(header, crcOK: true, badCRC: nil, side: side, sink: sink)
                off += DNP3LinkHeader.headerSize
                continue
            }
            guard bytes.has(header.frameSize, at: off) else {
                if datagram { truncated(at: off, count: n - off, side: side, sink: sink); off = n }
                break
            }
            if !quiet || !quietFrame(bytes, at: off, header, side: side, sink: sink, scratch: scratch, crcTable: crcTable,
                                              multiplying: multiplying) {
                processFrame(bytes, at: off, header, side: side, sink: sink, scratch: scratch)
            }
            off += header.frameSize
        }
        return off
    }

    /// `DNP3LinkHeader.parse` for the frame loop: the header is one little-endian word plus its CRC, so
    /// the fields come from one load and the CRC is a single eight-octet step (no per-field bounds
    /// checks or calls), or with `multiplying` two carry-less multiplications (`DNP3CRC.register64`).
    @inline(__always) static func linkHeader(_ bytes: ByteView, at offset: Int, crcTable: UnsafePointer<UInt16> = DNP3CRC.slices,
                                             multiplying: Bool = false) -> DNP3LinkHeader? {
        guard bytes.has(DNP3LinkHeader.headerSize, at: offset), let base = bytes.raw.baseAddress else { return nil }
        let p = base + offset
        let word = UInt64(littleEndian: p.loadUnaligned(as: UInt64.self))
        guard word & 0xFFFF == 0x6405 else { return nil }   // 05 64
        let stored = UInt16(littleEndian: p.loadUnaligned(fromByteOffset: 8, as: UInt16.self))
        return DNP3LinkHeader(length: UInt8(truncatingIfNeeded: word >> 16), control: UInt8(truncatingIfNeeded: word >> 24),
                              destination: UInt16(truncatingIfNeeded: word >> 32), source: UInt16(truncatingIfNeeded: word >> 48),
                              headerCRCOK: ~(multiplying ? DNP3CRC.register64(word) : DNP3CRC.step8(0, word, crcTable)) == stored)
    }

    /// The offset of the next 0x05 0x64 at or after `from`; a lone 0x05 in the last octet is kept.
    static func nextStart(_ bytes: ByteView, from: Int) -> Int {
        let n = bytes.count
        var i = from
        while i + 1 < n {
            if bytes.u8(i) == 0x05 && bytes.u8(i + 1) == 0x64 { return i }
            i += 1
        }
        return i < n && bytes.u8(i) == 0x05 ? i : n
    }

    func truncated(at off: Int, count: Int, side: FlowSide, sink: EventSink) {
        sink.emit(Anomaly(layer: "dnp3", kind: "truncated_frame", offset: off, value: Int64(count)), sender: side)
    }

    /// Whether a fragment is in reassembly (`finish` reports it).
    public var holdsUnfinishedMessage: Bool { (reassembler?.inProgress ?? 0) > 0 }

    /// Fragments in reassembly, and active requests as transaction records, are what `finish` reports (the session
    /// tables, on the heap, read only when records are written).
    public func finishesQuietly(transactionRecords: Bool) -> Bool {
        guard !holdsUnfinishedMessage else { return false }
        guard transactionRecords, let st = state else { return true }
        return !st.session.requests.contains { $0.active }
    }

    /// Drops the fragments in progress from `side` and its armed SELECT: their bytes are gone.
    public mutating func gap(side: FlowSide, length: Int, sink: EventSink) {
        if let r = reassembler, r.drop(side: side) > 0 {
            sink.emit(Anomaly(layer: "dnp3", kind: "fragment_lost_in_gap", offset: 0, value: Int64(length)), sender: side)
        }
        state?.session.selects[Int(side.rawValue)].active = false
    }

    /// Reports each fragment still in reassembly (`EventSink.unfinishedAtEnd`: the flow ended before its last segment), writes the
    /// requests still waiting for a response as `unanswered` and frees the flow's buffers.
    public mutating func finish(sink: EventSink) {
        reassembler?.forEachInProgress { side, bytes in sink.unfinishedAtEnd(layer: "dnp3", bytes: bytes, sender: side) }
        reassembler = nil
        guard let st = state else { return }
        if sink.transactionRecordsEnabled {
            for i in 0..<st.session.requests.count where st.session.requests[i].active {
                DNP3Records.writeTransaction(sink, request: st.session.requests[i], requestSide: i < 16 ? .initiator : .responder,
                                             response: nil, responseAddresses: nil, fragments: 0, status: "unanswered")
            }
        }
        state = nil
    }

    // MARK: - Transport layer

    mutating func processFrame(_ bytes: ByteView, at off: Int, _ header: DNP3LinkHeader, side: FlowSide,
                               sink: EventSink, scratch: UnsafeMutableRawPointer) {
        guard header.functionCarriesUserData && header.userDataLength > 0 else {
            if header.userDataLength > 0 {
                sink.emit(Anomaly(layer: "dnp3", kind: "unexpected_user_data", offset: off, value: Int64(header.function)), sender: side)
            }
            linkRecord(header, crcOK: header.headerCRCOK, badCRC: header.headerCRCOK ? nil : "header", side: side, sink: sink)
            return
        }
        let user = header.extractUserData(bytes, frameAt: off, into: scratch)
        guard user.crcOK else {
            sink.emit(Anomaly(layer: "dnp3", kind: "bad_data_crc", offset: off, value: Int64(user.badBlock)), sender: side)
            linkRecord(header, crcOK: false, badCRC: "data", side: side, sink: sink)
            return
        }
        let data = ByteView(UnsafeRawBufferPointer(start: scratch, count: user.count))
        let th = DNP3TransportHeader(data.u8(0))
        let payload = data.suffix(from: 1)
        var result: DNP3TransportResult
        if th.fir && th.fin && reassembler == nil {
            result = DNP3TransportResult(fragment: payload, segments: 1)
        } else {
            let r: DNP3Reassembler
            if let existing = reassembler { r = existing } else { r = DNP3Reassembler(); reassembler = r }
            result = r.add(th, payload: payload, side: side, source: header.source, destination: header.destination)
        }
        if let kind = result.anomaly {
            sink.emit(Anomaly(layer: "dnp3", kind: kind, offset: off, value: result.anomalyValue), sender: side)
        }
        if let fragment = result.fragment {
            processFragment(fragment, link: header, transport: th, segments: result.segments, side: side, sink: sink)
        }
    }

    /// `processFrame` for the usual frame when no record is written: user data whose CRCs check out, one transport
    /// segment holding a whole fragment (FIR and FIN, nothing in reassembly), and a fragment `quietFragment` handles.
    /// False, with nothing done, for any other frame (`processFrame` then handles it from the start). The layers'
    /// intermediate results (transport result, application header, object summary), built and checked one by one
    /// there, cost about 400 instructions per frame.
    @_transparent
    mutating func quietFrame(_ bytes: ByteView, at off: Int, _ header: DNP3LinkHeader, side: FlowSide,
                             sink: EventSink, scratch: UnsafeMutableRawPointer, crcTable: UnsafePointer<UInt16>,
                             multiplying: Bool) -> Bool {
        guard header.functionCarriesUserData && header.userDataLength > 0 && reassembler == nil,
              let base = bytes.raw.baseAddress else { return false }
        // The caller checked that the whole frame is there (`extractUserData`'s precondition).
        // Only `crcOK` and `count` are read here (a bad block sends the frame to `processFrame`, which copies it again).
        let crcOK = multiplying ? header.copyUserDataMultiplying(frame: base + off, into: scratch)
                                : header.copyUserData(frame: base + off, into: scratch, crcTable).crcOK
        guard crcOK && scratch.load(as: UInt8.self) & 0xC0 == 0xC0 else { return false }   // transport FIN and FIR
        // With every CRC good, all the user data was copied.
        return quietFragment(scratch + 1, count: header.userDataLength - 1, link: header, side: side, sink: sink,
                             sizeCodes: sizeCodes)
    }

    /// Emits the operation a request fragment stands for (both fragment paths do), from `side`. Its `unitRepeated`
    /// says whether the initiator's previous request went to the same destination address (the unit the detector's
    /// unit-scan counter last saw for the flow), noted here for the next; a request from the responder's side says no
    /// and is not noted: the counter looks at the initiator's only.
    @inline(__always)
    mutating func emitRequest(_ function: DNP3FunctionCode, access: AccessClass, objects: DNP3ObjectSummary,
                              link: DNP3LinkHeader, side: FlowSide, sink: EventSink) {
        var op = Operation(appProtocol: .dnp3, access: access, functionCode: UInt16(function.rawValue), function: function.commonName)
        op.unitID = Int32(link.destination)
        op.sourceAddress = Int32(link.source)
        op.broadcast = link.destination >= 0xFFFD
        op.address = objects.firstIndex
        op.quantity = objects.quantity
        if side == .initiator {
            op.unitRepeated = lastInitiatorDestination == op.unitID
            lastInitiatorDestination = op.unitID
        }
        sink.emit(op, sender: side)
    }

    /// `processFragment` with records off for a fragment that raises no anomaly of its own there: a known function
    /// sent in the right direction, its header whole, and object headers `DNP3ObjectSummary.commonHeaders` walks
    /// without finding anything unknown. False, with nothing done, otherwise.
    @_transparent
    mutating func quietFragment(_ fragment: UnsafeRawPointer, count: Int, link: DNP3LinkHeader, side: FlowSide, sink: EventSink,
                                sizeCodes: UnsafePointer<UInt8>) -> Bool {
        guard count >= 2 else { return false }
        let function = DNP3FunctionCode(rawValue: fragment.load(fromByteOffset: 1, as: UInt8.self))
        let isResponse = function.isResponse
        guard function.isKnown && isResponse != link.fromMaster && (!isResponse || count >= 4) else { return false }
        let view = ByteView(UnsafeRawBufferPointer(start: fragment, count: count))
        if isResponse {
            // A response raises no operation: only whether its objects are all of the usual kinds matters.
            guard DNP3ObjectSummary.commonHeaders(view, from: 4, function: function, sizeCodes: sizeCodes, summarising: false) != nil
            else { return false }
            sink.countPDU(.dnp3)
            return true
        }
        guard let objects = DNP3ObjectSummary.commonHeaders(view, from: 2, function: function, sizeCodes: sizeCodes),
              objects.unknownGroups == 0 else { return false }
        sink.countPDU(.dnp3)
        emitRequest(function, access: DNP3Classifier.access(function, objects: objects), objects: objects, link: link, side: side, sink: sink)
        if function == .select || function == .operate {
            let ah = DNP3ApplicationHeader(control: fragment.load(as: UInt8.self), function: function)
            checkSelectBeforeOperate(view, ah, link: link, side: side, sink: sink)
        }
        return true
    }

    func linkRecord(_ header: DNP3LinkHeader, crcOK: Bool, badCRC: StaticString?, side: FlowSide, sink: EventSink) {
        sink.countPDU(.dnp3)
        guard sink.pduRecordsEnabled else { return }
        sink.beginRecord(.pdu, protocolName: "dnp3", objectKey: "dnp3", sender: side)
        DNP3Records.writeLink(header, crcOK: crcOK, badCRC: badCRC, to: &sink.json)
        sink.endRecord()
    }

    // MARK: - Application layer

    mutating func processFragment(_ fragment: ByteView, link: DNP3LinkHeader, transport: DNP3TransportHeader,
                                  segments: Int, side: FlowSide, sink: EventSink) {
        sink.countPDU(.dnp3)
        let ah: DNP3ApplicationHeader
        do throws(DNP3ApplicationError) {
            ah = try DNP3ApplicationHeader.parse(fragment)
        } catch {
            sink.emit(Anomaly(layer: "dnp3", kind: "truncated_application_header", offset: 0, value: Int64(fragment.count)), sender: side)
            if sink.pduRecordsEnabled {
                sink.beginRecord(.pdu, protocolName: "dnp3", objectKey: "dnp3", sender: side)
                DNP3Records.writeLink(link, crcOK: link.headerCRCOK, badCRC: link.headerCRCOK ? nil : "header", to: &sink.json)
                if fragment.count >= 2 { sink.json.field("function_code", Int(fragment.u8(1))) }
                sink.endRecord()
            }
            return
        }
        let function = ah.function
        if !function.isKnown {
            sink.emit(Anomaly(layer: "dnp3", kind: "unknown_function_code", offset: 1, value: Int64(function.rawValue)), sender: side)
        }
        if function.isResponse == link.fromMaster {
            sink.emit(Anomaly(layer: "dnp3", kind: "direction_mismatch", offset: 1, value: Int64(function.rawValue)), sender: side)
        }
        let objects = DNP3ObjectSummary(fragment: fragment, header: ah)
        if let e = objects.error {
            sink.emit(Anomaly(layer: "dnp3", kind: e.kind, offset: e.offset, value: e.value), sender: side)
        }
        if objects.unknownGroups > 0 {
            sink.emit(Anomaly(layer: "dnp3", kind: "unknown_object_group", offset: ah.length, value: Int64(objects.unknownGroups)), sender: side)
        }
        let access = DNP3Classifier.access(function, objects: objects)

        if !function.isResponse {
            emitRequest(function, access: access, objects: objects, link: link, side: side, sink: sink)
            checkSelectBeforeOperate(fragment, ah, link: link, side: side, sink: sink)
        }

        if sink.pduRecordsEnabled {
            sink.beginRecord(.pdu, protocolName: "dnp3", objectKey: "dnp3", sender: side)
            DNP3Records.writeLink(link, crcOK: link.headerCRCOK, badCRC: link.headerCRCOK ? nil : "header", to: &sink.json)
            DNP3Records.writeApplication(fragment, header: ah, transport: transport, segments: segments, access: access, to: &sink.json)
            sink.endRecord()
        }
        if sink.transactionRecordsEnabled {
            pair(ah, access: access, link: link, side: side, sink: sink, state: sessionState())
        }
    }
}
