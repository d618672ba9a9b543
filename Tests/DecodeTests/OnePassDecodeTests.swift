import Testing
import Wire
@testable import Decode

/// `PacketDecoder.decode` takes its one-pass path (`decodeCommonEthernet`) for the common shape and the general path
/// (`decodeAnyLink`) otherwise: where the one-pass path answers, it must give exactly the general path's view, for TCP,
/// UDP and ICMP, whole, cut at every length, and with every byte of the headers changed in turn.
@Suite struct OnePassDecodeTests {
    static func fields(_ v: PacketView) -> [String] {
        ["\(v.vlan)", "\(v.vlanTags)", "\(v.ipVersion)", "\(v.source)", "\(v.destination)", "\(v.ipProtocol)", "\(v.transport)",
         "\(v.sourcePort)", "\(v.destinationPort)", "\(v.tcpFlags)", "\(v.sequence)", "\(v.acknowledgement)", "\(v.payloadOffset)",
         "\(v.payloadLength)", "\(v.wirePayloadLength)", "\(v.hasIPOptions)"]
    }

    /// The one-pass view of `bytes` (nil: not its shape) and the general path's (nil: not IP, or an error).
    static func both(_ bytes: [UInt8]) -> (onePass: PacketView?, general: PacketView?) {
        var onePass: PacketView?, general: PacketView?
        ByteView.with(bytes) { v in
            onePass = PacketDecoder.decodeCommonEthernet(v)
            general = try? PacketDecoder.decodeAnyLink(v, linkType: PacketDecoder.ethernet)
        }
        return (onePass, general)
    }

    static let icmpEcho: [UInt8] = [8, 0, 0x12, 0x34, 0, 1, 0, 1] + [UInt8](repeating: 0x61, count: 32)
    static let packets: [[UInt8]] = [
        PacketBytes.tcpPacket(payload: [0, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0, 10]),
        PacketBytes.ethernet(type: 0x0800) + PacketBytes.ipv4(proto: 17, payloadLength: 8 + 4) + PacketBytes.udp(payloadLength: 4) + [1, 2, 3, 4],
        PacketBytes.ethernet(type: 0x0800) + PacketBytes.ipv4(source: [10, 0, 0, 9], destination: [10, 0, 0, 3], proto: 1,
                                                              payloadLength: icmpEcho.count) + icmpEcho,
    ]

    @Test(arguments: 0..<3)
    func theOnePathGivesTheGeneralPathsView(_ which: Int) throws {
        let whole = Self.packets[which]
        var variants: [[UInt8]] = (0...whole.count).map { Array(whole.prefix($0)) }
        for i in 12..<min(whole.count, 54) {
            for value: UInt8 in [0, 1, 0x45, 0x46, 0x20, 0x3F, 0xFF] {
                var b = whole; b[i] = value; variants.append(b)
            }
        }
        var taken = 0
        for bytes in variants {
            let (onePass, general) = Self.both(bytes)
            guard let onePass else { continue }
            taken += 1
            let g = try #require(general, "the one-pass path took a packet the general path rejects: \(bytes)")
            #expect(Self.fields(onePass) == Self.fields(g), "\(bytes)")
        }
        #expect(taken > 100, "the one-pass path took \(taken) variants")   // it runs, for ICMP too
    }
}
