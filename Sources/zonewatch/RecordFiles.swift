import Glibc
import Records

/// Writes finished record lines to their destinations: a JSON-lines file per kind in a folder,
/// and/or standard output for chosen kinds. Lines arrive in large batches, so plain `write(2)` suffices.
final class RecordFiles {
    private var files: [RecordKind: Int32] = [:]
    private let stdoutKinds: Set<RecordKind>
    /// Whether a write failed (disk full, closed pipe): reported, exit status 1.
    private(set) var failed = false

    /// Opens `DIR/<kind>.jsonl` for each kind in `kinds` (creating DIR), and routes `stdoutKinds` to stdout.
    init(directory: String?, kinds: [RecordKind], stdoutKinds: Set<RecordKind>) throws(UsageError) {
        self.stdoutKinds = stdoutKinds
        guard let dir = directory else { return }
        if mkdir(dir, 0o755) != 0 && errno != EEXIST {
            throw UsageError(message: "\(dir): cannot create folder: \(String(cString: strerror(errno)))")
        }
        for kind in kinds {
            let path = dir + "/" + kind.fileName
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw UsageError(message: "\(path): cannot write: \(String(cString: strerror(errno)))") }
            files[kind] = fd
        }
    }

    /// Writes lines of `kind`.
    func write(_ kind: RecordKind, _ bytes: [UInt8]) {
        bytes.withUnsafeBytes { raw in
            if stdoutKinds.contains(kind) && !writeAll(1, raw) { failed = true }
            if let fd = files[kind], !writeAll(fd, raw) { failed = true }
        }
    }

    /// Flushes to disk and closes every file.
    func close() {
        for (_, fd) in files { fsync(fd); Glibc.close(fd) }
        files.removeAll()
    }
}
