import Foundation
import Records

/// A folder of record files, one per kind (`alerts.jsonl`, `flows.jsonl`, ...; alerts in CEF or LEEF
/// go to `alerts.cef` / `alerts.leef`), each rotated by size or age:
/// `alerts.jsonl` → `alerts.jsonl.1` → ... → `alerts.jsonl.<keep>`, the oldest deleted.
/// Files are fsynced when rotated and at shutdown.
final class FileDriver: OutputDriver {
    private let directory: String
    private let format: OutputFormat
    private let rotateBytes: Int
    private let rotateSeconds: Int
    private let keep: Int
    private var files: [RotatingFile?]
    private var sent: UInt64 = 0, droppedErrors: UInt64 = 0
    private var lastError: String?

    init(spec: OutputSpec, directory: String) throws {
        self.directory = directory
        format = spec.format
        rotateBytes = spec.rotateBytes; rotateSeconds = spec.rotateSeconds; keep = spec.keepFiles
        files = Array(repeating: nil, count: RecordKind.allCases.count)
        do { try Spool.makeDirectories(directory) } catch { throw OutputSetupError("file output: \(error)") }
    }

    func route(_ message: [UInt8], kind: RecordKind) {
        let i = kind.rawValue
        if files[i] == nil {
            var name = kind.fileName
            if kind == .alert && format != .ecs { name = format == .cef ? "alerts.cef" : "alerts.leef" }
            files[i] = RotatingFile(path: directory + "/" + name, rotateBytes: rotateBytes,
                                    rotateSeconds: rotateSeconds, keep: keep)
        }
        files[i]!.append(message)
        if files[i]!.buffered >= 256 << 10 { flush(i) }
    }

    func pump() {
        let now = monotonicSeconds()
        for i in files.indices where files[i] != nil {
            flush(i)
            files[i]!.rotateIfDue(now: now)
        }
    }

    private func flush(_ i: Int) {
        let (written, lost, error) = files[i]!.flush()
        sent += UInt64(written); droppedErrors += UInt64(lost)
        if let error { lastError = error }
    }

    func idleWait() -> Double { rotateSeconds > 0 ? 1 : 0.5 }

    func finish(deadline: Double) {
        for i in files.indices where files[i] != nil {
            flush(i)
            files[i]!.close()
        }
    }

    func fill(_ r: inout OutputReport) {
        r.sent = sent; r.droppedErrors = droppedErrors; r.lastError = lastError
    }
}

/// One record file with its rotation.
final class RotatingFile {
    let path: String
    private let rotateBytes: Int
    private let rotateSeconds: Int
    private let keep: Int
    private var fd: Int32 = -1
    private var size = 0
    private var openedAt = 0.0
    private var buffer: [UInt8] = []
    private var bufferedRecords = 0

    var buffered: Int { buffer.count }

    init(path: String, rotateBytes: Int, rotateSeconds: Int, keep: Int) {
        self.path = path; self.rotateBytes = rotateBytes; self.rotateSeconds = rotateSeconds; self.keep = keep
        buffer.reserveCapacity(300 << 10)
    }

    deinit { if fd >= 0 { Glibc.close(fd) } }

    func append(_ line: [UInt8]) {
        buffer.append(contentsOf: line); buffer.append(0x0A)
        bufferedRecords += 1
    }

    /// Writes the buffer (rotating first if it would pass the size bound); returns
    /// (records written, records lost, error text).
    func flush() -> (Int, Int, String?) {
        guard !buffer.isEmpty else { return (0, 0, nil) }
        let records = bufferedRecords
        defer { buffer.removeAll(keepingCapacity: true); bufferedRecords = 0 }
        if fd < 0 { openFile() }
        if size > 0 && size + buffer.count > rotateBytes { rotate() }
        if fd < 0 { openFile() }
        guard fd >= 0 else { return (0, records, "open \(path): \(errnoText(errno))") }
        guard Spool.writeAll(fd, buffer) else { return (0, records, "write \(path): \(errnoText(errno))") }
        size += buffer.count
        return (records, 0, nil)
    }

    /// Rotates when the file is older than the interval.
    func rotateIfDue(now: Double) {
        if rotateSeconds > 0 && fd >= 0 && size > 0 && now - openedAt >= Double(rotateSeconds) { rotate() }
    }

    /// Flushes to disk and closes.
    func close() {
        if fd >= 0 { fsync(fd); Glibc.close(fd); fd = -1 }
    }

    private func openFile() {
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return }
        size = Int(lseek(fd, 0, SEEK_END))
        openedAt = monotonicSeconds()
    }

    /// fsync, close, shift `path.N` → `path.N+1` (dropping the oldest), `path` → `path.1`.
    private func rotate() {
        close()
        if keep == 0 {
            unlink(path)
        } else {
            unlink("\(path).\(keep)")
            var i = keep - 1
            while i >= 1 { rename("\(path).\(i)", "\(path).\(i + 1)"); i -= 1 }
            rename(path, "\(path).1")
        }
        // Make the renames durable too.
        let dir = String(path[..<(path.lastIndex(of: "/") ?? path.endIndex)])
        let dfd = open(dir.isEmpty ? "/" : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 { fsync(dfd); Glibc.close(dfd) }
        size = 0
        openFile()
    }
}
