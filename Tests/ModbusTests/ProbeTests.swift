// Strict identification: Modbus is recognised by content on any port, and bytes that are not Modbus are
// rejected even on port 502 (the engine then reports not_modbus_on_modbus_port).
import Testing
import Records
import Wire
@testable import Modbus

struct ProbeCase: Sendable, CustomTestStringConvertible {
    let name: String
    let bytes: [UInt8]
    let verdict: String
    var testDescription: String { name }
}

func verdictName(_ v: ProbeVerdict) -> String {
    switch v { case .accept: "accept"; case .reject: "reject"; case .needMoreData: "needMoreData" }
}

let probeCases: [ProbeCase] = [
    ProbeCase(name: "one request", bytes: adu(1, "03 0000 000A"), verdict: "accept"),
    ProbeCase(name: "a response first (midstream pickup)", bytes: adu(1, "03 04 0001 0002"), verdict: "accept"),
    ProbeCase(name: "pipelined requests", bytes: requestStream.flatMap { $0 }, verdict: "accept"),
    ProbeCase(name: "a whole request and part of the next", bytes: requestStream[0] + requestStream[1].prefix(9), verdict: "accept"),
    ProbeCase(name: "scanner FC 0, exactly one ADU", bytes: adu(0, "00 0000 0000"), verdict: "accept"),
    ProbeCase(name: "MEI request padded with a zero, exactly one ADU", bytes: adu(1, unit: 10, "2B 0E 03 01 00"), verdict: "accept"),
    ProbeCase(name: "exception padded with a zero, exactly one ADU", bytes: adu(1, unit: 10, "81 06 00"), verdict: "accept"),
    ProbeCase(name: "UMAS frame", bytes: adu(2, unit: 0xFF, "5A 00 02"), verdict: "accept"),
    ProbeCase(name: "user-defined code", bytes: adu(2, "41 0102"), verdict: "accept"),
    ProbeCase(name: "three bytes", bytes: hex("00 01 00"), verdict: "needMoreData"),
    ProbeCase(name: "header only", bytes: hex("0001 0000 0006 01"), verdict: "needMoreData"),
    ProbeCase(name: "partial ADU", bytes: Array(adu(1, "10 0001 0002 04 000A 0102").prefix(10)), verdict: "needMoreData"),
    ProbeCase(name: "protocol id 1", bytes: adu(1, "03 0000 000A", protocolID: 1), verdict: "reject"),
    ProbeCase(name: "length 0", bytes: hex("0001 0000 0000 01 03 0000"), verdict: "reject"),
    ProbeCase(name: "length 1", bytes: hex("0001 0000 0001 01"), verdict: "reject"),
    ProbeCase(name: "length beyond 254 for a public code", bytes: hex("0001 0000 0100 01 03") + Array(repeating: 0, count: 254), verdict: "reject"),
    ProbeCase(name: "unassigned code followed by more bytes", bytes: adu(0, "00 0000 0000") + hex("DEADBEEF"), verdict: "reject"),
    ProbeCase(name: "byte count contradicting the PDU, then more bytes", bytes: adu(1, "10 0001 0002 09 000A 0102") + requestStream[0], verdict: "reject"),
    ProbeCase(name: "second ADU with a bad protocol id", bytes: requestStream[0] + adu(2, "03 0000 0001", protocolID: 7), verdict: "reject"),
    ProbeCase(name: "TLS ClientHello", bytes: hex("16 0301 00F1 01 0000ED 0303") + Array(repeating: 0x41, count: 40), verdict: "reject"),
    ProbeCase(name: "HTTP request", bytes: Array("GET / HTTP/1.1\r\nHost: plc\r\n\r\n".utf8), verdict: "reject"),
    ProbeCase(name: "DCE/RPC bind on 502 (zeek_modbus-and-non-modbus-p502.pcap)",
              bytes: hex("05000b03100000004800000001000000b810b8100000000001000000000001000883afe11f5dc91191a408002b14a0fa"), verdict: "reject"),
    ProbeCase(name: "ONC RPC call on 502 (same capture)",
              bytes: hex("800000287e86ab4a0000000000000002000186a30000000300000000000000000000000000000000"), verdict: "reject"),
    ProbeCase(name: "DNP3 link header", bytes: hex("0564 05C0 0100 0300 B5E9"), verdict: "reject"),
    ProbeCase(name: "TPKT/COTP connect", bytes: hex("0300 0016 11E0 0000 0001 00C1 0201 00C2 0201 02C0 010A"), verdict: "reject"),
    ProbeCase(name: "six zero bytes (zeek_fuzz-72.pcap's first segment)", bytes: hex("000000000000"), verdict: "reject"),
]

@Suite("Protocol identification")
struct ProbeTests {
    @Test("the probe decides by content", arguments: probeCases)
    func verdict(_ c: ProbeCase) {
        let v = ByteView.with(c.bytes) { ModbusDissector.probe($0, side: .initiator, transport: .tcp) }
        #expect(verdictName(v) == c.verdict)
    }

    @Test("random bytes are never taken for Modbus")
    func randomBytes() {
        var rng = SplitMix(seed: 7)
        var accepted = 0
        for i in 0..<200_000 {
            let n = 8 + i % 120
            let bytes = (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            if case .accept = ByteView.with(bytes, { ModbusDissector.probe($0, side: .initiator, transport: .tcp) }) { accepted += 1 }
        }
        #expect(accepted == 0)
    }

    @Test("random bytes behind a zero protocol id are rarely taken for Modbus")
    func randomBehindZeroProtocolID() {
        // Even with the 1-in-65536 protocol-id hurdle removed, the length field and the layout check
        // leave well under one accept in a thousand.
        var rng = SplitMix(seed: 11)
        var accepted = 0
        let trials = 100_000
        for i in 0..<trials {
            let n = 8 + i % 120
            var bytes = (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            bytes[2] = 0; bytes[3] = 0
            if case .accept = ByteView.with(bytes, { ModbusDissector.probe($0, side: .initiator, transport: .tcp) }) { accepted += 1 }
        }
        #expect(accepted < trials / 1000)
    }

    @Test("port 502 is Modbus's registered port and nothing else is")
    func wellKnownPort() {
        #expect(ModbusDissector.isWellKnownPort(502))
        #expect(!ModbusDissector.isWellKnownPort(5020))
        #expect(!ModbusDissector.isWellKnownPort(802))
    }
}
