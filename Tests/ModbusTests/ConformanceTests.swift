// Per-frame agreement with tshark: ../shared/tools/conformance.py runs `zonewatch dissect` over every
// public Modbus capture and over Fixtures/modbus and compares (transaction id, unit id, function code,
// exception code) per frame with the tshark CSVs. The justified differences are listed in
// Sources/Protocols/Modbus/CONFORMANCE.md. Needs ../shared and a built binary (ZONEWATCH_BIN, exported by
// scripts/test after its release build); it builds nothing itself and skips visibly without them.
import Foundation
import Testing

let sharedDirectory = repositoryRoot.deletingLastPathComponent().appendingPathComponent("shared")
let publicCaptures = sharedDirectory.appendingPathComponent("pcaps/public")
let zonewatchBinary = ProcessInfo.processInfo.environment["ZONEWATCH_BIN"] ?? ""

let conformanceSkipReason: String? = {
    if !FileManager.default.fileExists(atPath: publicCaptures.path) {
        return "Modbus conformance skipped: \(publicCaptures.path) is absent"
    }
    if zonewatchBinary.isEmpty || !FileManager.default.isExecutableFile(atPath: zonewatchBinary) {
        return "Modbus conformance skipped: no zonewatch binary (set ZONEWATCH_BIN; scripts/test does)"
    }
    return nil
}()

@Suite("tshark conformance")
struct ConformanceTests {
    @Test("zonewatch dissect agrees with tshark on ≥ 99.5% of Modbus frames, public corpus and fixtures",
          .enabled(if: conformanceSkipReason == nil, Comment(rawValue: conformanceSkipReason ?? "")),
          .timeLimit(.minutes(10)))
    func agreement() throws {
        let fm = FileManager.default
        func pcaps(_ dir: URL) -> [String] {
            ((try? fm.contentsOfDirectory(atPath: dir.path)) ?? [])
                .filter { $0.hasSuffix(".pcap") || $0.hasSuffix(".pcapng") }.sorted()
                .map { dir.appendingPathComponent($0).path }
        }
        let captures = pcaps(publicCaptures.appendingPathComponent("modbus")) + pcaps(publicCaptures.appendingPathComponent("mixed"))
            + pcaps(repositoryRoot.appendingPathComponent("Fixtures/modbus"))
        try #require(captures.count > 30)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", sharedDirectory.appendingPathComponent("tools/conformance.py").path, "modbus", zonewatchBinary] + captures
        var environment = ProcessInfo.processInfo.environment
        environment["CONFORMANCE_MIN"] = "99.5"
        process.environment = environment
        let out = Pipe(), err = Pipe()
        process.standardOutput = out; process.standardError = err
        try process.run()
        let summary = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let details = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        print(summary, details, separator: "\n")
        #expect(summary.contains("modbus agreement"))
        #expect(!summary.contains("non-zero exits"), "zonewatch exited with an error on some capture: \(details)")
        #expect(process.terminationStatus == 0, "below 99.5% agreement or a crash: \(summary)\(details)")
    }
}
