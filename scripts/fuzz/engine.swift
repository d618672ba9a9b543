// libFuzzer target for the engine behind the decoder: flows, TCP reassembly (holes, overlaps, retransmissions, SYNs,
// FINs, RSTs, bytes past a FIN, idle timeouts), protocol identification and the three dissectors as the engine feeds
// them, with the one-pass path and the general one. Built and run by scripts/fuzz/engine (swiftc
// -sanitize=fuzzer,address); a trap or a sanitizer report is a bug.
//
// Random frames rarely reach a stream, so the input is a script of segments of one conversation between two fixed
// endpoints, built into well-formed Ethernet/IPv4 frames:
//   octet 0       the server port (bits 0-1: 502, 20000, 102, 2404), UDP instead of TCP (bit 2), the one-pass
//                 path (bit 4), transaction records (bit 5), PDU records (bit 6), a second conversation on the
//                 same ports from another client (bit 7)
//   then records  ctl, sequence offset (2, little-endian, signed), acknowledgement offset (1, signed), length, bytes
//                 ctl bit 0: the sender (client, server); bits 1-5: FIN, SYN, RST, PSH, ACK; bits 6-7: time
//                 advanced by 0, 1, 130 (a closed flow's linger) or 700 s (an idle timeout) before the packet
// Offsets are taken from the highest sequence number each side has sent, so a script holds in-order data,
// retransmissions, overlaps and holes alike. Every record ends up in the engine's records, which are drained.

import Wire
import Records
import Flows
import Engine

private let serverPorts: [UInt16] = [502, 20000, 102, 2404]
private let timeSteps: [Int64] = [0, 1, 130, 700]

/// Ethernet + IPv4 + TCP or UDP from `source` to `destination` with `payload`, into `frame` (emptied first).
private func buildFrame(_ frame: inout [UInt8], udp: Bool, source: (UInt32, UInt16), destination: (UInt32, UInt16),
                        seq: UInt32, ack: UInt32, flags: UInt8, payload: UnsafeBufferPointer<UInt8>) {
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
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEngine(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard size >= 1 else { return 0 }
    let mode = data[0]
    var c = EngineConfiguration()
    c.flowLimits.maximumFlows = 4
    c.establishedTCPPath = mode & 0x10 != 0
    c.transactionRecords = mode & 0x20 != 0
    c.pduRecords = mode & 0x40 != 0
    let engine = Engine(configuration: c)
    let udp = mode & 0x04 != 0
    let server: (UInt32, UInt16) = (0x0A00_0002, serverPorts[Int(mode & 3)])
    let clients: [(UInt32, UInt16)] = [(0x0A00_0001, 40000), (0x0A00_0003, 40001)]
    // Each conversation's next sequence number per side (client, server) as the script has sent so far.
    var next: [[UInt32]] = [[1000, 5000], [7000, 9000]]
    var time: Int64 = 1_700_000_000
    var frame: [UInt8] = []
    frame.reserveCapacity(20 + 20 + 14 + 256)
    var i = 1
    var packets = 0
    while i + 5 <= size && packets < 512 {
        let ctl = data[i]
        let offset = Int16(bitPattern: UInt16(data[i + 1]) | UInt16(data[i + 2]) << 8)
        let ackOffset = Int8(bitPattern: data[i + 3])
        let length = min(Int(data[i + 4]), size - (i + 5))
        i += 5
        // The second conversation takes every other record when asked for.
        let conversation = mode & 0x80 != 0 ? packets & 1 : 0
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
                   seq: seq, ack: ack, flags: flags, payload: UnsafeBufferPointer(start: data + i, count: length))
        frame.withUnsafeBytes { raw in
            engine.process(ByteView(raw), linkType: 1, time: PacketTime(seconds: time, microseconds: Int32(packets)), wireLength: raw.count)
        }
        let end = seq &+ UInt32(length) &+ (flags & 0x03 != 0 ? 1 : 0)
        if Int32(bitPattern: end &- next[conversation][side]) > 0 { next[conversation][side] = end }
        i += length
        packets += 1
        if packets & 63 == 0 { engine.drainRecords { _, _ in } }
    }
    engine.finish()
    engine.drainRecords { _, _ in }
    return 0
}
