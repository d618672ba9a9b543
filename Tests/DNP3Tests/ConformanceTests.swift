import Foundation
import Testing

/// tshark agreement over every DNP3 capture we have: ../shared/pcaps/public/{dnp3,mixed} and Fixtures/dnp3.
/// Needs ../shared (absent on a bare clone) and a built binary in ZONEWATCH_BIN; skips, saying so, otherwise.
enum DNP3Conformance {
    /// The repository root, from this file's path (Tests/DNP3Tests/ConformanceTests.swift).
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let shared = root.deletingLastPathComponent().appendingPathComponent("shared")
    static let publicCaptures = shared.appendingPathComponent("pcaps/public")
    static let binary = ProcessInfo.processInfo.environment["ZONEWATCH_BIN"] ?? ""

    /// The raw per-frame agreement conformance.py must reach. It sits below the 99.5 % target because
    /// tshark itself is wrong on 54 frames (transport sequence wrap) and dissects 28 duplicated TCP
    /// segments; CONFORMANCE.md lists every difference and the second test checks them frame by frame.
    static let minimumRawAgreement = 99.4

    static var available: Bool {
        let fm = FileManager.default
        var problems: [String] = []
        if !fm.fileExists(atPath: publicCaptures.path) { problems.append("\(publicCaptures.path) is absent") }
        if binary.isEmpty { problems.append("ZONEWATCH_BIN is not set") }
        else if !fm.isExecutableFile(atPath: binary) { problems.append("ZONEWATCH_BIN=\(binary) is not executable") }
        if !problems.isEmpty {
            print("note: skipping DNP3 conformance against tshark: " + problems.joined(separator: "; "))
        }
        return problems.isEmpty
    }

    static var hasTshark: Bool {
        let found = FileManager.default.isExecutableFile(atPath: "/usr/bin/tshark")
        if !found { print("note: skipping the DNP3 field comparison: /usr/bin/tshark is absent") }
        return found
    }

    static var captures: [String] {
        func files(_ dir: URL, _ extensions: Set<String>) -> [String] {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
            return names.filter { extensions.contains(($0 as NSString).pathExtension) }.sorted().map { dir.appendingPathComponent($0).path }
        }
        let kinds: Set<String> = ["pcap", "pcapng"]
        return files(publicCaptures.appendingPathComponent("dnp3"), kinds)
            + files(publicCaptures.appendingPathComponent("mixed"), kinds)
            + files(root.appendingPathComponent("Fixtures/dnp3"), kinds)
    }

    /// Runs a program; returns exit status and standard output (standard error is echoed).
    static func run(_ arguments: [String], environment: [String: String] = [:]) throws -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = arguments
        p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out; p.standardError = err
        try p.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        if !stderr.isEmpty { print(String(decoding: stderr, as: UTF8.self)) }
        return (p.terminationStatus, String(decoding: stdout, as: UTF8.self))
    }
}

@Suite("DNP3 conformance with tshark", .serialized)
struct ConformanceTests {
    @Test("conformance.py: per-frame dnp3.al.func agreement", .enabled(if: DNP3Conformance.available), .timeLimit(.minutes(10)))
    func rawAgreement() throws {
        let script = DNP3Conformance.shared.appendingPathComponent("tools/conformance.py").path
        let (status, output) = try DNP3Conformance.run(
            ["python3", script, "dnp3", DNP3Conformance.binary] + DNP3Conformance.captures,
            environment: ["CONFORMANCE_MIN": String(DNP3Conformance.minimumRawAgreement)])
        let summary = output.split(separator: "\n").last.map(String.init) ?? ""
        print(summary)
        #expect(status == 0, "\(summary)")
        let percent = summary.split(separator: " ").first { $0.hasSuffix("%") }.flatMap { Double($0.dropLast()) } ?? 0
        #expect(percent >= DNP3Conformance.minimumRawAgreement, "\(summary)")
        let words = summary.split(separator: " ")
        let files = words.firstIndex(of: "files").flatMap { $0 > 0 ? Int(words[$0 - 1]) : nil } ?? 0
        #expect(files > 200, "too few captures compared: \(summary)")
    }

    @Test("addresses, object lists and CRC verdicts agree with tshark", .enabled(if: DNP3Conformance.available && DNP3Conformance.hasTshark),
          .timeLimit(.minutes(15)))
    func fields() throws {
        let script = DNP3Conformance.root.appendingPathComponent("scripts/fixtures/dnp3-fields-check").path
        let captures = DNP3Conformance.captures.filter { !$0.contains("/mixed/") }
        let (status, output) = try DNP3Conformance.run(["python3", script, "--min", "99.5", DNP3Conformance.binary] + captures)
        print(output)
        #expect(status == 0, "\(output)")
        #expect(output.split(separator: "\n").filter { $0.contains("agreement") }.count == 3)
    }

    @Test("every disagreement is a documented one", .enabled(if: DNP3Conformance.available), .timeLimit(.minutes(10)))
    func documentedDifferences() throws {
        let script = DNP3Conformance.root.appendingPathComponent("scripts/fixtures/dnp3-conformance").path
        let (status, output) = try DNP3Conformance.run(["python3", script, DNP3Conformance.binary] + DNP3Conformance.captures)
        print(output)
        #expect(status == 0, "\(output)")
        #expect(output.contains("0 unexplained"))
    }
}
