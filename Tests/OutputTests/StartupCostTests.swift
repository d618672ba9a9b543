import Foundation
import Testing

/// zonewatch does not link Foundation: with ICU it cost every process start-up ~5 ms of page faults and symbol
/// lookups (a whole empty replay now costs a few), and the benchmarks time whole processes. These checks keep a
/// merge from bringing it, or another start-up library, back unnoticed.
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

    /// The zonewatch executable `swift test` built next to this test binary.
    static let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        .deletingLastPathComponent().appendingPathComponent("zonewatch").path

    /// OpenSSL is loaded on first use (Sources/COpenSSL) and libstdc++ is linked in (scripts/link):
    /// each shared library the executable names costs every start-up its loading (~1.1 ms for libssl and
    /// libcrypto, ~0.5 ms for libstdc++), and most runs use neither TLS nor Community IDs.
    @Test func executableNeedsNoOpenSSLNorLibstdcxx() throws {
        #expect(FileManager.default.isExecutableFile(atPath: Self.executable), "\(Self.executable)")
        let readelf = Process()
        readelf.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        readelf.arguments = ["readelf", "-d", Self.executable]
        let pipe = Pipe()
        readelf.standardOutput = pipe
        try readelf.run()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        readelf.waitUntilExit()
        let needed = text.split(separator: "\n").filter { $0.contains("(NEEDED)") }
        #expect(readelf.terminationStatus == 0 && needed.contains { $0.contains("libc.so") }, "\(text)")
        for line in needed where ["libssl", "libcrypto", "libstdc++"].contains(where: { line.contains($0) }) {
            Issue.record("zonewatch names \(line.split(separator: " ").last ?? line)")
        }
    }
}
