import Foundation
import Testing

/// Per-frame agreement of `zonewatch dissect` with tshark on the public S7comm captures and our fixtures,
/// through `../shared/tools/conformance.py` (rosctr, function code of Job/Ack_Data, userdata group).
///
/// Needs the public corpus next to the repository and `ZONEWATCH_BIN` pointing to a built `zonewatch`;
/// otherwise the tests are skipped with a note saying why.
@Suite struct ConformanceTests {
    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let shared = repositoryRoot.deletingLastPathComponent().appendingPathComponent("shared")
    static let corpus = shared.appendingPathComponent("pcaps/public")
    static let binary = ProcessInfo.processInfo.environment["ZONEWATCH_BIN"] ?? ""

    static var available: Bool {
        let fm = FileManager.default
        let ok = fm.fileExists(atPath: corpus.path) && fm.isExecutableFile(atPath: binary)
            && fm.fileExists(atPath: shared.appendingPathComponent("tools/conformance.py").path)
        if !ok {
            print("note: S7comm conformance skipped: needs \(corpus.path) and ZONEWATCH_BIN set to a built zonewatch (now \"\(binary)\")")
        }
        return ok
    }

    static func captures(_ folder: URL) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        return names.filter { $0.hasSuffix(".pcap") || $0.hasSuffix(".pcapng") }.sorted().map { folder.appendingPathComponent($0).path }
    }

    static func run(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = arguments
        let out = Pipe(), err = Pipe()
        p.standardOutput = out; p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    /// The threshold (percent) from `CONFORMANCE_MIN`, 99.5 by default, as conformance.py reads it.
    static var threshold: Double { Double(ProcessInfo.processInfo.environment["CONFORMANCE_MIN"] ?? "") ?? 99.5 }

    /// Captures whose TCP streams have holes (INDEX.md status `tcp-gaps`).
    static var gapCaptures: Set<String> {
        let index = (try? String(contentsOf: corpus.appendingPathComponent("INDEX.md"), encoding: .utf8)) ?? ""
        var names = Set<String>()
        for line in index.split(separator: "\n") {
            let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            if cells.count > 2 && cells[1] == "tcp-gaps" { names.insert(URL(fileURLWithPath: cells[0]).lastPathComponent) }
        }
        return names
    }

    /// Runs conformance.py over `caps`; returns the agreement percentage and the summary line.
    static func agreement(_ caps: [String]) throws -> (Double, String) {
        let r = try run(["python3", shared.appendingPathComponent("tools/conformance.py").path, "s7comm", binary] + caps)
        print(r.stderr, r.stdout)
        let summary = r.stdout.split(separator: "\n").last.map(String.init) ?? ""
        // "s7comm agreement P% over N frames in F files[, K non-zero exits]"
        let percent = summary.split(separator: " ").dropFirst(2).first.flatMap { Double($0.dropLast()) } ?? 0
        #expect(!summary.contains("non-zero exits"), "\(summary)")
        return (percent, summary)
    }

    static var allCaptures: [String] {
        captures(corpus.appendingPathComponent("s7comm")) + captures(corpus.appendingPathComponent("mixed"))
            + captures(repositoryRoot.appendingPathComponent("Fixtures/s7comm"))
    }

    /// Captures without TCP holes: every frame must agree (≥ `CONFORMANCE_MIN`, 99.5 % by default).
    @Test(.enabled(if: available))
    func s7commAgreesWithTshark() throws {
        let gaps = Self.gapCaptures
        #expect(!gaps.isEmpty)
        let caps = Self.allCaptures.filter { !gaps.contains(URL(fileURLWithPath: $0).lastPathComponent) }
        #expect(caps.count > 25)
        let (percent, summary) = try Self.agreement(caps)
        #expect(percent >= Self.threshold, "\(summary)")
    }

    /// All captures, holes included: PDUs held behind a hole that is given up are reported on the frame that
    /// carried them, as tshark does, so the whole set is held to the same threshold (CONFORMANCE.md §1).
    @Test(.enabled(if: available))
    func s7commAgreesWithTsharkIncludingCapturesWithHoles() throws {
        let (percent, summary) = try Self.agreement(Self.allCaptures)
        #expect(percent >= Self.threshold, "\(summary)")
    }

    /// Every frame whose COTP payload starts with 0x72 (tshark's `s7p_head_hex` column) gets an
    /// `s7comm_plus` record on that frame, and none of them is taken for S7comm.
    @Test(.enabled(if: available))
    func everyS7commPlusFrameIsIdentified() throws {
        let caps = Self.captures(Self.corpus.appendingPathComponent("s7comm-plus")) + Self.captures(Self.corpus.appendingPathComponent("mixed"))
        var checked = 0
        for cap in caps {
            let csv = cap + ".tshark.csv"
            guard let text = try? String(contentsOfFile: csv, encoding: .utf8) else { continue }
            let rows = text.split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
            guard let header = rows.first, let hexColumn = header.firstIndex(of: "s7p_head_hex"),
                  let frameColumn = header.firstIndex(of: "frame.number") else { continue }
            let expected = Set(rows.dropFirst().compactMap { row -> Int? in
                row.count > hexColumn && !row[hexColumn].isEmpty ? Int(row[frameColumn]) : nil
            })
            guard !expected.isEmpty else { continue }
            let r = try Self.run([Self.binary, "dissect", cap])
            #expect(r.status == 0, "\(cap): exit \(r.status)")
            var plusFrames = Set<Int>(), s7Frames = Set<Int>()
            for line in r.stdout.split(separator: "\n") {
                guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                      let frame = obj["frame"] as? Int else { continue }
                if let p = obj["s7comm_plus"] as? [String: Any] {
                    plusFrames.insert(frame)
                    if let v = p["version"] as? Int, (1...3).contains(v), p["fragment"] == nil {
                        #expect(p["opcode"] != nil && p["function"] != nil || p["opcode"] as? Int == 0x33, "\(cap) frame \(frame)")
                    }
                }
                if (obj["s7comm"] as? [String: Any])?["rosctr"] != nil { s7Frames.insert(frame) }
            }
            let missing = expected.subtracting(plusFrames)
            #expect(missing.isEmpty, "\(URL(fileURLWithPath: cap).lastPathComponent): \(missing.count) S7comm-plus frames not identified, first \(missing.sorted().prefix(5))")
            #expect(expected.intersection(s7Frames).isEmpty, "\(cap): S7comm-plus frames taken for S7comm")
            checked += expected.count
        }
        print("S7comm-plus frames identified: \(checked)")
        #expect(checked > 5000)
    }
}
