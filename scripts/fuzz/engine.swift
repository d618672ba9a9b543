// libFuzzer target for the engine behind the decoder: flows, TCP reassembly (holes, overlaps, retransmissions, SYNs,
// FINs, RSTs, bytes past a FIN, idle timeouts), protocol identification and the three dissectors as the engine feeds
// them, on the one-pass path and on the general one. Built and run by scripts/fuzz/engine (swiftc
// -sanitize=fuzzer,address); a trap, a sanitizer report or the two paths disagreeing is a bug.
//
// Random frames rarely reach a stream, so the input is a script of segments of one or two conversations between
// fixed endpoints, built into well-formed Ethernet/IPv4 frames:
//   octet 0       the server port (bits 0-1: 502, 20000, 102, 2404), UDP instead of TCP (bit 2), the frames'
//                 shape (bits 3-4: plain Ethernet, 802.1Q-tagged, inside VXLAN, Linux cooked), transaction
//                 records (bit 5), PDU records (bit 6), a second conversation on the same ports from another
//                 client (bit 7)
//   then records  ctl, sequence offset (2, little-endian, signed), acknowledgement offset (1, signed), length, bytes
//                 ctl bit 0: the sender (client, server); bits 1-5: FIN, SYN, RST, PSH, ACK; bits 6-7: time
//                 advanced by 0, 1, 130 (a closed flow's linger) or 700 s (an idle timeout) before the packet;
//                 length bits 0-6: the payload's length; bit 7: a wrong checksum (the transport's for an even
//                 length, the IPv4 header's for an odd one; every other frame's checksums are right, so the
//                 engine's checksum verification drops it where the side is verified)
// Offsets are taken from the highest sequence number each side has sent, so a script holds in-order data,
// retransmissions, overlaps and holes alike. Each script runs through two engines, one taking established TCP
// packets on its one-pass path and one on the general path only: their records (flows, transactions, PDUs,
// anomalies) and counters must be byte for byte the same, or the target stops (a disagreement is a wrong record with
// no error anywhere).

import Wire
import Records
import Flows
import Decode
import Engine

private let serverPorts: [UInt16] = [502, 20000, 102, 2404]
private let timeSteps: [Int64] = [0, 1, 130, 700]

/// Ethernet + IPv4 + TCP or UDP from `source` to `destination` with `payload`, into `frame` (emptied first).
private func buildFrame(_ frame: inout [UInt8], udp: Bool, source: (UInt32, UInt16), destination: (UInt32, UInt16),
                        seq: UInt32, ack: UInt32, flags: UInt8, payload: UnsafeBufferPointer<UInt8>, wrongChecksum: Bool) {
    frame.removeAll(keepingCapacity: true)
    let transportLength = udp ? 8 : 20
    let total = 20 + transportLength + payload.count
    frame += [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x08, 0x00]
    frame += [0x45, 0, UInt8(total >> 8), UInt8(total & 0xFF), 0, 0, 0x40, 0, 64, udp ? 17 : 6, 0, 0]
    for v in [source.0, destination.0] { frame += [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
    frame += [UInt8(source.1 >> 8), UInt8(source.1 & 0xFF), UInt8(destination.1 >> 8), UInt8(destination.1 & 0xFF)]
    if udp {
        let length = 8 + payload.count
        frame += [UInt8(length >> 8), UInt8(length & 0xFF), 0, 0]
    } else {
        for v in [seq, ack] { frame += [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
        frame += [0x50, flags, 0xFF, 0xFF, 0, 0, 0, 0]
    }
    frame += payload
    // The checksums (RFC 1071), one of them then made wrong when asked.
    frame.withUnsafeMutableBytes { raw in
        let p = raw.baseAddress!
        func store(_ at: Int, _ value: UInt16) { p.storeBytes(of: value, toByteOffset: at, as: UInt16.self) }
        store(24, ~InternetChecksum.fold(InternetChecksum.sum(p + 14, count: 20)))
        let field = udp ? 40 : 50
        let pseudo = InternetChecksum.sum(p + 26, count: 8) &+ UInt64(UInt16(udp ? 17 : 6).bigEndian)
            &+ UInt64(UInt16(raw.count - 34).bigEndian)
        var sum = ~InternetChecksum.fold(InternetChecksum.sum(p + 34, count: raw.count - 34, initial: pseudo))
        if udp && sum == 0 { sum = 0xFFFF }   // UDP sends a computed 0 as all ones
        store(field, sum)
        if wrongChecksum { raw[payload.count & 1 == 0 ? field : 24] ^= 0x01 }
    }
}

/// The link type and frame of `frame` (plain Ethernet) in `shape`: as it is, 802.1Q-tagged (VLAN 7), inside VXLAN
/// (VNI 7, outer Ethernet/IPv4/UDP to 4789), or as a Linux cooked capture (SLL) of its IP packet. The one-pass path
/// has its own readings of each.
private func shaped(_ frame: [UInt8], _ shape: UInt8) -> (Int32, [UInt8]) {
    switch shape {
    case 1: return (1, Array(frame[0..<12]) + [0x81, 0x00, 0x00, 0x07] + frame[12...])
    case 2:
        let inner = 8 + 8 + frame.count, total = 20 + inner
        var outer: [UInt8] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00]
        outer += [0x45, 0, UInt8(total >> 8), UInt8(total & 0xFF), 0, 1, 0x40, 0, 64, 17, 0, 0, 192, 168, 99, 1, 192, 168, 99, 2]
        outer += [0xC0, 0x01, 0x12, 0xB5, UInt8(inner >> 8), UInt8(inner & 0xFF), 0, 0]
        outer += [0x08, 0, 0, 0, 0, 0, 7, 0]
        return (1, outer + frame)
    case 3: return (113, [0, 0, 0, 1, 0, 6, 0, 1, 2, 3, 4, 5, 0, 0, 0x08, 0x00] + frame[14...])
    default: return (1, frame)
    }
}

/// The frames and times an input's script makes.
private func frames(_ data: UnsafePointer<UInt8>, _ size: Int, mode: UInt8) -> [(Int32, [UInt8], PacketTime)] {
    let udp = mode & 0x04 != 0
    let server: (UInt32, UInt16) = (0x0A00_0002, serverPorts[Int(mode & 3)])
    let clients: [(UInt32, UInt16)] = [(0x0A00_0001, 40000), (0x0A00_0003, 40001)]
    // Each conversation's next sequence number per side (client, server) as the script has sent so far.
    var next: [[UInt32]] = [[1000, 5000], [7000, 9000]]
    var time: Int64 = 1_700_000_000
    var out: [(Int32, [UInt8], PacketTime)] = []
    var frame: [UInt8] = []
    var i = 1
    while i + 5 <= size && out.count < 512 {
        let ctl = data[i]
        let offset = Int16(bitPattern: UInt16(data[i + 1]) | UInt16(data[i + 2]) << 8)
        let ackOffset = Int8(bitPattern: data[i + 3])
        let length = min(Int(data[i + 4] & 0x7F), size - (i + 5))
        let wrongChecksum = data[i + 4] & 0x80 != 0
        i += 5
        // The second conversation takes every other record when asked for.
        let conversation = mode & 0x80 != 0 ? out.count & 1 : 0
        let side = Int(ctl & 1)
        let bits = ctl >> 1 & 0x1F
        var flags: UInt8 = 0
        if bits & 0x01 != 0 { flags |= 0x01 }   // FIN
        if bits & 0x02 != 0 { flags |= 0x02 }   // SYN
        if bits & 0x04 != 0 { flags |= 0x04 }   // RST
        if bits & 0x08 != 0 { flags |= 0x08 }   // PSH
        if bits & 0x10 != 0 { flags |= 0x10 }   // ACK
        time += timeSteps[Int(ctl >> 6)]
        let seq = next[conversation][side] &+ UInt32(bitPattern: Int32(offset))
        let ack = next[conversation][1 - side] &+ UInt32(bitPattern: Int32(ackOffset))
        let client = clients[conversation]
        buildFrame(&frame, udp: udp, source: side == 0 ? client : server, destination: side == 0 ? server : client,
                   seq: seq, ack: ack, flags: flags, payload: UnsafeBufferPointer(start: data + i, count: length),
                   wrongChecksum: wrongChecksum)
        let (linkType, bytes) = shaped(frame, mode >> 3 & 3)
        out.append((linkType, bytes, PacketTime(seconds: time, microseconds: Int32(out.count))))
        let end = seq &+ UInt32(length) &+ (flags & 0x03 != 0 ? 1 : 0)
        if Int32(bitPattern: end &- next[conversation][side]) > 0 { next[conversation][side] = end }
        i += length
    }
    return out
}

/// Every record line one engine writes for `frames`, by kind, with its summary counters.
private func run(_ frames: [(Int32, [UInt8], PacketTime)], mode: UInt8, onePass: Bool) -> [[UInt8]] {
    var c = EngineConfiguration()
    c.flowLimits.maximumFlows = 4
    c.establishedTCPPath = onePass
    c.transactionRecords = mode & 0x20 != 0
    c.pduRecords = mode & 0x40 != 0
    let engine = Engine(configuration: c)
    var lines = [[UInt8]](repeating: [], count: RecordKind.allCases.count + 1)
    for (n, (linkType, frame, time)) in frames.enumerated() {
        frame.withUnsafeBytes { raw in engine.process(ByteView(raw), linkType: linkType, time: time, wireLength: raw.count) }
        if n & 63 == 63 { engine.drainRecords { kind, bytes in lines[kind.rawValue] += bytes } }
    }
    engine.finish()
    engine.drainRecords { kind, bytes in lines[kind.rawValue] += bytes }
    let s = engine.statistics
    lines[RecordKind.allCases.count] = Array("\(s.packets) \(s.flowsCreated) \(s.pdus) \(s.operations) \(s.anomalies) \(s.streamGaps) \(s.streamGapBytes) \(s.badChecksums)".utf8)
    return lines
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEngine(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard size >= 1 else { return 0 }
    let mode = data[0]
    let script = frames(data, size, mode: mode)
    // The one-pass path must do exactly what the general path does for the packets it takes: the same records, in
    // the same order, and the same counters.
    let general = run(script, mode: mode, onePass: false)
    let onePass = run(script, mode: mode, onePass: true)
    for k in general.indices where general[k] != onePass[k] {
        let kind = k < RecordKind.allCases.count ? "\(RecordKind.allCases[k])" : "counters"
        fatalError("the one-pass path and the general path disagree on \(kind):\n\(String(decoding: general[k], as: UTF8.self))\n--- one-pass:\n\(String(decoding: onePass[k], as: UTF8.self))")
    }
    return 0
}
