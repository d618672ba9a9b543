import Testing
import Foundation

/// One crafted capture of Fixtures/edge with what the engine must report (Fixtures/edge/expected.json).
struct EdgeCase: CustomTestStringConvertible, Sendable {
    let file: String
    let facts: [String: JSONValue]
    var testDescription: String { file }
}

/// A JSON value small enough for test facts.
enum JSONValue: Sendable {
    case int(Int), bool(Bool), text(String), ints([Int]), null
    init(_ any: Any) {
        switch any {
        case let b as Bool where type(of: any) == type(of: NSNumber(value: true)): self = .bool(b)
        case let n as Int: self = .int(n)
        case let s as String: self = .text(s)
        case let a as [Int]: self = .ints(a)
        default: self = .null
        }
    }
    var int: Int? { if case .int(let n) = self { n } else { nil } }
    var ints: [Int]? { if case .ints(let a) = self { a } else { nil } }
    var isTrue: Bool { switch self { case .bool(let b): b; case .int(let n): n != 0; default: false } }
}

let edgeFolder = repositoryRoot.appendingPathComponent("Fixtures/edge")

func edgeCases() -> [EdgeCase] {
    guard let data = try? Data(contentsOf: edgeFolder.appendingPathComponent("expected.json")),
          let object = try? JSONSerialization.jsonObject(with: data) as? [String: [String: Any]] else { return [] }
    return object.keys.sorted().map { name in EdgeCase(file: name, facts: object[name]!.mapValues(JSONValue.init)) }
}

/// The number after `label` in the replay summary ("packets: 13").
func summaryNumber(_ label: String, in text: String) -> Int? {
    guard let r = text.range(of: label + ": ") else { return nil }
    return Int(text[r.upperBound...].prefix { $0.isNumber })
}

private let binaryPresent: Bool = {
    if zonewatchBinary == nil { print("note: ZONEWATCH_BIN is not set: Fixtures/edge tests are skipped (run scripts/test)") }
    return zonewatchBinary != nil
}()

@Test(.enabled(if: binaryPresent), arguments: edgeCases())
func edgeFixture(_ c: EdgeCase) throws {
    let path = edgeFolder.appendingPathComponent(c.file).path
    let (status, flowsOut, summary) = try run(zonewatchBinary!, ["replay", path, "--flows", "-"])
    if c.facts["open_error"]?.isTrue == true || c.facts["unsupported_linktype"]?.isTrue == true {
        #expect(status == 2, "opening \(c.file) must fail with exit 2")
        #expect(summary.contains("zonewatch: "))
        return
    }
    #expect(status == (c.facts["read_error"]?.isTrue == true ? 2 : 0), "\(summary)")
    if let n = c.facts["packets"]?.int { #expect(summaryNumber("packets", in: summary) == n, "\(summary)") }
    let flows = flowsOut.split(separator: "\n")
    if let n = c.facts["tcp_flows"]?.int { #expect(flows.filter { $0.contains(#""transport":"tcp""#) }.count == n) }
    if let n = c.facts["udp_flows"]?.int { #expect(flows.filter { $0.contains(#""transport":"udp""#) }.count == n) }
    if let n = c.facts["gaps"]?.int { #expect(summaryNumber("tcp gaps", in: summary) == n, "\(summary)") }
    if let n = c.facts["truncated_headers"]?.int {
        #expect((summaryNumber("truncated_ipv4_header", in: summary) ?? 0) + (summaryNumber("truncated_tcp_header", in: summary) ?? 0) == n, "\(summary)")
    }
    if let n = c.facts["fragments"]?.int { #expect(summaryNumber("ip fragments", in: summary) == n, "\(summary)") }
    if let n = c.facts["datagrams_reassembled"]?.int { #expect(summaryNumber("datagrams reassembled", in: summary) == n, "\(summary)") }

    // Modbus PDUs and the frames that completed them.
    let (_, pdus, _) = try run(zonewatchBinary!, ["dissect", path])
    var requests: [Int] = [], responses: [Int] = []
    for line in pdus.split(separator: "\n") {
        guard let o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
              let m = o["modbus"] as? [String: Any], let frame = o["frame"] as? Int else { continue }
        if m["pdu_type"] as? String == "request" { requests.append(frame) } else { responses.append(frame) }
    }
    if let n = c.facts["modbus_requests"]?.int { #expect(requests.count == n, "requests at \(requests)") }
    if let n = c.facts["modbus_responses"]?.int { #expect(responses.count == n, "responses at \(responses)") }
    if let frames = c.facts["request_frames"]?.ints {
        let alternative = c.facts["request_frames_if_gap_declared_at_frame_8"]?.ints
        #expect(requests == frames || requests == alternative, "requests at \(requests)")
    }
    if let frames = c.facts["response_frames"]?.ints { #expect(responses == frames, "responses at \(responses)") }
}
