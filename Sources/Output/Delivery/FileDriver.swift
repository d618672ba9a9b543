import Glibc
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
    }

    func pump() {
        let now = monotonicSeconds()
        for case let f? in files {
            f.flush()
            f.rotateIfDue(now: now)
        }
    }

    func idleWait() -> Double { rotateSeconds > 0 ? 1 : 0.5 }

    func finish(deadline: Double) {
        for case let f? in files { f.flush(); f.close() }
    }

    func fill(_ r: inout OutputReport) {
        var sent: UInt64 = 0, lost: UInt64 = 0
        var error: String?
        for case let f? in files {
            sent += f.recordsWritten; lost += f.recordsLost
            if let e = f.lastError { error = e }
        }
        r.sent = sent; r.droppedErrors = lost; r.lastError = error
    }
}

/// One record file with its rotation.
final class RotatingFile {
    let path: String
    private let rotateBytes: Int
    private let rotateSeconds: Int
    private let keep: Int
    private var fd: Int32 = -1
    private var size = 0                  // bytes in the file (written) plus the buffer
    private var firstWrite = 0.0          // when the current file got its first record
    private var buffer: [UInt8] = []
    private var bufferedRecords = 0
    private(set) var recordsWritten: UInt64 = 0
    private(set) var recordsLost: UInt64 = 0
    private(set) var lastError: String?

    init(path: String, rotateBytes: Int, rotateSeconds: Int, keep: Int) {
        self.path = path; self.rotateBytes = rotateBytes; self.rotateSeconds = rotateSeconds; self.keep = keep
        buffer.reserveCapacity(300 << 10)
        // Continue an existing file: its size counts towards rotation.
        var st = stat()
        if stat(path, &st) == 0 && st.st_size > 0 { size = Int(st.st_size); firstWrite = monotonicSeconds() }
    }

    deinit { if fd >= 0 { Glibc.close(fd) } }

    /// Adds one line; rotates first when it would take the file past the size bound.
    func append(_ line: [UInt8]) {
        if size > 0 && size + line.count + 1 > rotateBytes {
            flush()
            rotate()
        }
        if size == 0 { firstWrite = monotonicSeconds() }
        buffer.append(contentsOf: line); buffer.append(0x0A)
        size += line.count + 1
        bufferedRecords += 1
        if buffer.count >= 256 << 10 { flush() }
    }

    /// Writes the buffer to the file.
    func flush() {
        guard !buffer.isEmpty else { return }
        defer { buffer.removeAll(keepingCapacity: true); bufferedRecords = 0 }
        if fd < 0 { fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644) }
        if fd >= 0 && Spool.writeAll(fd, buffer) {
            recordsWritten += UInt64(bufferedRecords)
        } else {
            recordsLost += UInt64(bufferedRecords)
            lastError = "write \(path): \(errnoText(errno))"
            size -= buffer.count
        }
    }

    /// Rotates when the file's first record is older than the interval.
    func rotateIfDue(now: Double) {
        if rotateSeconds > 0 && size > 0 && now - firstWrite >= Double(rotateSeconds) { flush(); rotate() }
    }

    /// Flushes to disk and closes.
    func close() {
        if fd >= 0 { fsync(fd); Glibc.close(fd); fd = -1 }
    }

    /// fsync, close, shift `path.N` → `path.N+1` (dropping the oldest), `path` → `path.1`. The next
    /// record opens a new file.
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
    }
}
