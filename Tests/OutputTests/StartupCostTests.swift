import Foundation
import Testing

/// zonewatch does not link Foundation: with ICU it cost every process start-up ~5 ms of page faults and symbol
/// lookups (a whole empty replay now costs a few), and the benchmarks time whole processes. This check keeps a
/// merge from bringing it back unnoticed.
@Suite struct StartupCostTests {
    /// The package's Sources folder, found from this file's path.
    static let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Sources")

    static func swiftFiles() throws -> [URL] {
        let walker = FileManager.default.enumerator(at: sources, includingPropertiesForKeys: nil)
        var files: [URL] = []
        while let url = walker?.nextObject() as? URL {
            if url.pathExtension == "swift" { files.append(url) }
        }
        return files
    }

    @Test func noSourceImportsFoundation() throws {
        let files = try Self.swiftFiles()
        #expect(files.count > 50, "found \(files.count) Swift files under \(Self.sources.path)")
        for file in files {
            let text = try String(contentsOf: file, encoding: .utf8)
            for line in text.split(separator: "\n") where line.hasPrefix("import Foundation") {
                Issue.record("\(file.path): \(line) (use Glibc, Synchronization and [UInt8]; see Output/Delivery/Threading.swift)")
            }
        }
    }
}
