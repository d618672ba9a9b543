// The committed captures from a real stack (Fixtures/modbus, made by scripts/fixtures/modbus with
// pymodbus), replayed straight into the dissector: pairing, values, device identification objects,
// vendor codes, unit ids, pipelining. A tiny pcap reader suffices: the captures are loopback IPv4/TCP
// with no loss or reordering, so each flow's payloads are already the in-order stream.
import Foundation
import Testing
import Records
import Wire
@testable import Modbus

/// The repository root, found from this file's path.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// Replays `Fixtures/modbus/<name>` (server on `serverPort`) and returns one finished harness per TCP flow.
func replayFixture(_ name: String, serverPort: UInt16 = 502) throws -> [Harness] {
    let data = try Data(contentsOf: repositoryRoot.appendingPathComponent("Fixtures/modbus/\(name)"))
    let bytes = [UInt8](data)
    func u16(_ o: Int) -> Int { Int(bytes[o]) << 8 | Int(bytes[o + 1]) }
    func u32le(_ o: Int) -> Int { Int(bytes[o]) | Int(bytes[o + 1]) << 8 | Int(bytes[o + 2]) << 16 | Int(bytes[o + 3]) << 24 }
    #expect(u32le(0) == 0xA1B2_C3D4, "little-endian microsecond pcap")
    var flows: [Int: Harness] = [:], order: [Int] = []
    var o = 24
    while o + 16 <= bytes.count {
        let captured = u32le(o + 8)
        let packet = o + 16
        o = packet + captured
        // Ethernet (tcpdump -i lo writes EN10MB) → IPv4 → TCP.
        guard captured > 34, u16(packet + 12) == 0x0800, bytes[packet + 23] == 6 else { continue }
        let ip = packet + 14, ihl = Int(bytes[ip] & 0x0F) * 4, total = u16(ip + 2)
        let tcp = ip + ihl, dataOffset = Int(bytes[tcp + 12] >> 4) * 4
        let src = u16(tcp), dst = u16(tcp + 2)
        let payload = Array(bytes[(tcp + dataOffset)..<(ip + total)])
        let client = src == Int(serverPort) ? dst : src
        if flows[client] == nil {
            flows[client] = Harness(serverPort: serverPort, clientPort: UInt16(client)); order.append(client)
        }
        if !payload.isEmpty { flows[client]!.send(payload, from: src == Int(serverPort) ? .responder : .initiator) }
    }
    for c in order { flows[c]!.finish() }
    return order.map { flows[$0]! }.filter { !$0.pdus.isEmpty }
}

let fixturesPresent = FileManager.default.fileExists(atPath: repositoryRoot.appendingPathComponent("Fixtures/modbus").path)

@Suite("pymodbus fixtures", .enabled(if: fixturesPresent, "Fixtures/modbus is missing"))
struct FixtureTests {
    @Test("every function pymodbus implements is decoded and paired, with values")
    func allFunctions() throws {
        let flows = try replayFixture("pymodbus_all_functions.pcap")
        #expect(flows.count == 1)
        let h = try #require(flows.first)
        let codes = Set(h.pdus.compactMap { $0["function_code"] as? Int })
        #expect(codes == [1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 15, 16, 17, 20, 21, 22, 23, 24, 43])
        // Every request is answered (force listen-only last, with pymodbus' short echo).
        #expect(h.transactions.count == h.pdus.count / 2)
        #expect(h.transactions.allSatisfy { $0["matched"] as? Bool == true })
        #expect(h.anomalies.isEmpty, "\(h.anomalyKinds)")
        let byFunction = Dictionary(h.transactions.map { ($0["function"] as! String, $0) }, uniquingKeysWith: { a, _ in a })
        let holding = try #require(byFunction["read_holding_registers"]?["response"] as? [String: Any])
        #expect(holding["values"] as? [Int] == (0..<10).map { $0 * 257 + 1 })
        let coils = try #require(byFunction["write_multiple_coils"]?["request"] as? [String: Any])
        #expect(coils["values"] as? [Int] == [1, 0, 1, 1, 0, 0, 1, 1, 1])
        let fifo = try #require(byFunction["read_fifo_queue"]?["response"] as? [String: Any])
        #expect(fifo["fifo_count"] as? Int == 4)
        let rw = try #require(byFunction["read_write_multiple_registers"])
        #expect((rw["request"] as? [String: Any])?["values"] as? [Int] == [255, 255, 255])
        #expect(((rw["response"] as? [String: Any])?["values"] as? [Int])?.count == 6)
        // Diagnostics: every sub-function pymodbus sends, restart and listen-only as lifecycle.
        let subs = h.transactions.filter { $0["function_code"] as? Int == 8 }.compactMap { $0["subfunction"] as? Int }
        #expect(Set(subs) == [0, 1, 2, 3, 4, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21])
        let listenOnly = try #require(h.transactions.first { $0["subfunction"] as? Int == 4 })
        #expect(listenOnly["access"] as? String == "lifecycle")
    }

    @Test("MEI 14 device identification objects come out as named strings for each read code")
    func deviceIdentification() throws {
        let h = try #require(try replayFixture("pymodbus_all_functions.pcap").first)
        let mei = h.transactions.filter { $0["function_code"] as? Int == 43 }
        #expect(mei.count == 4)
        let codes = mei.compactMap { ($0["request"] as? [String: Any])?["read_device_id_code"] as? Int }
        #expect(codes == [1, 2, 3, 4])
        let basic = try #require(mei[0]["response"] as? [String: Any])
        #expect(basic["conformity_level"] as? Int == 0x83)
        #expect(basic["more_follows"] as? Bool == false)
        let objects = try #require(basic["objects"] as? [[String: Any]])
        #expect(objects.map { $0["name"] as? String } == ["vendor_name", "product_code", "major_minor_revision"])
        #expect(objects.map { $0["value"] as? String } == ["ZoneWatch fixtures", "ZW-PYMODBUS", "3.16.1"])
        let regular = try #require((mei[1]["response"] as? [String: Any])?["objects"] as? [[String: Any]])
        #expect(regular.count == 7)
        #expect(regular.last?["name"] as? String == "user_application_name")
        #expect(regular.last?["value"] as? String == "scripts/fixtures/modbus")
        let specific = try #require((mei[3]["response"] as? [String: Any])?["objects"] as? [[String: Any]])
        #expect(specific.map { $0["id"] as? Int } == [2])
    }

    @Test("exception responses are paired with their requests and named")
    func exceptions() throws {
        let flows = try replayFixture("pymodbus_exceptions.pcap")
        let all = flows.flatMap { $0.transactions }
        let exceptions = all.compactMap { ($0["response"] as? [String: Any])?["exception"] as? String }
        #expect(exceptions.contains("illegal_data_address"))
        #expect(exceptions.contains("server_device_failure"))   // pymodbus 3.16 answers an unknown unit with 0x04
        #expect(exceptions.contains("illegal_function"))
        let kinds = flows.flatMap { $0.anomalyKinds }
        // FC 9 and MEI 13 are legal requests pymodbus does not implement; quantity 0 and 2001 coils,
        // and coil value 0x1234, are ours to flag. pymodbus answers the undecodable ones with an
        // exception for function code 0 (which pairs with nothing) and echoes 0xFF00 for 0x1234.
        #expect(kinds.filter { $0 == "illegal_quantity" }.count == 2)
        #expect(kinds.contains("bad_coil_value"))
        #expect(kinds.contains("response_mismatch"))
    }

    @Test("requests to several unit ids pair per unit; the broadcast is unanswered by design")
    func unitIDs() throws {
        let h = try #require(try replayFixture("pymodbus_unit_ids.pcap").first)
        let units = Set(h.operations.map { $0.unitID })
        #expect(units == [0, 1, 2, 17, 247])
        let broadcast = try #require(h.transactions.first { $0["broadcast"] as? Bool == true })
        #expect(broadcast["matched"] as? Bool == false)
        #expect(broadcast["reason"] as? String == "no_response")
        #expect(h.transactions.filter { $0["matched"] as? Bool == true }.count == 10)
    }

    @Test("coalesced, back-to-back and dribbled requests are all framed")
    func pipelined() throws {
        let flows = try replayFixture("pymodbus_pipelined.pcap")
        #expect(flows.count == 3)
        #expect(flows[0].pdus.filter { $0["pdu_type"] as? String == "request" }.count == 5)
        #expect(flows[0].pduRecords.prefix(5).allSatisfy { $0["frame"] as? Int == flows[0].pduRecords[0]["frame"] as? Int })
        #expect(flows[1].pdus.filter { $0["pdu_type"] as? String == "request" }.count == 5)
        // pymodbus answers only the first of several outstanding requests.
        #expect(flows[0].transactions.filter { $0["reason"] as? String == "no_response" }.count == 4)
        let dribbled = try #require(flows[2].transactions.first)
        #expect(dribbled["matched"] as? Bool == true)
        #expect((dribbled["request"] as? [String: Any])?["values"] as? [Int] == [0xDEAD, 0xBEEF])
        #expect(flows.allSatisfy { $0.anomalies.isEmpty })
    }

    @Test("user-defined and UMAS-framed vendor codes are named, classified and paired")
    func vendor() throws {
        let h = try #require(try replayFixture("pymodbus_user_defined_and_umas.pcap").first)
        #expect(h.transactions.count == 8)
        #expect(h.transactions.allSatisfy { $0["matched"] as? Bool == true })
        #expect(h.transactions[0]["function"] as? String == "user_defined")
        let umas = h.transactions.dropFirst().compactMap { $0["subfunction_name"] as? String }
        #expect(umas == ["init_comm", "read_id", "take_plc_reservation", "read_variables", "stop_plc", "start_plc", "release_plc_reservation"])
        #expect(h.operations.map { $0.access.name.description } ==
                ["control", "session", "diagnostic", "auth", "read", "lifecycle", "lifecycle", "session"])
        #expect(h.anomalies.isEmpty)
    }

    @Test("Modbus on port 5020 is decoded like Modbus on 502")
    func otherPort() throws {
        let data = try [UInt8](Data(contentsOf: repositoryRoot.appendingPathComponent("Fixtures/modbus/pymodbus_port5020.pcap")))
        #expect(data.count > 24)
        let h = try #require(try replayFixture("pymodbus_port5020.pcap", serverPort: 5020).first)
        #expect(h.transactions.count == 10)
        #expect(h.transactions.allSatisfy { $0["matched"] as? Bool == true })
    }
}
