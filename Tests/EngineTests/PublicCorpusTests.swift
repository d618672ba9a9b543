import Testing
import Foundation

/// The repository root, found from this file's path (Tests/EngineTests/…).
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
/// ../shared beside the repository (present in CI, absent in a user's clone).
let sharedFolder = repositoryRoot.deletingLastPathComponent().appendingPathComponent("shared")
/// The built zonewatch binary (scripts/test exports ZONEWATCH_BIN).
let zonewatchBinary: String? = ProcessInfo.processInfo.environment["ZONEWATCH_BIN"].flatMap {
    FileManager.default.isExecutableFile(atPath: $0) ? $0 : nil
}
let corpusAvailable: Bool = {
    let ok = FileManager.default.fileExists(atPath: sharedFolder.appendingPathComponent("pcaps/public").path)
    if !ok { print("note: ../shared/pcaps/public is absent: public-corpus tests are skipped") }
    if zonewatchBinary == nil { print("note: ZONEWATCH_BIN is not set to a built binary: end-to-end tests are skipped (run scripts/test)") }
    return ok && zonewatchBinary != nil
}()

/// Every public capture, sorted.
func publicCaptures() -> [String] {
    let root = sharedFolder.appendingPathComponent("pcaps/public")
    let e = FileManager.default.enumerator(atPath: root.path)
    var out: [String] = []
    while let p = e?.nextObject() as? String {
        if p.hasSuffix(".pcap") || p.hasSuffix(".pcapng") || p.hasSuffix(".cap") { out.append(root.appendingPathComponent(p).path) }
    }
    return out.sorted()
}

/// Runs a command; returns (exit status, stdout, stderr).
func run(_ executable: String, _ arguments: [String]) throws -> (Int32, String, String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    let out = Pipe(), err = Pipe()
    p.standardOutput = out; p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}

/// `zonewatch replay` over every public capture: no crash, and per file the TCP and UDP flow counts equal
/// tshark's conversation tables (`-qz conv,tcp -z conv,udp`). Idle timeouts are set beyond the captures'
/// spans for this comparison because tshark never times a conversation out (README, "Flows").
@Test(.enabled(if: corpusAvailable), .timeLimit(.minutes(10)))
func flowCountsMatchTsharkOnThePublicCorpus() throws {
    let captures = publicCaptures()
    #expect(captures.count > 250)
    let script = repositoryRoot.appendingPathComponent("scripts/check/flow-counts.py").path
    let (status, out, _) = try run("/usr/bin/env", ["python3", script, zonewatchBinary!] + captures)
    #expect(status == 0, "a replay crashed: \(out.suffix(500))")
    #expect(out.contains("flow counts: \(captures.count)/\(captures.count) files agree"), "\(out.suffix(2000))")
}
