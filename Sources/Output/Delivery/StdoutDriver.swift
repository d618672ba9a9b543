import Glibc
import Records

/// Standard output, one record per line, written once per batch (for piping into another tool).
final class StdoutDriver: OutputDriver {
    private var buffer: [UInt8] = []
    private var bufferedRecords = 0
    private var sent: UInt64 = 0, droppedErrors: UInt64 = 0
    private var lastError: String?
    private let fd: Int32

    init(fd: Int32 = 1) { self.fd = fd; buffer.reserveCapacity(300 << 10) }

    func route(_ message: [UInt8], kind: RecordKind) {
        buffer.append(contentsOf: message); buffer.append(0x0A)
        bufferedRecords += 1
        if buffer.count >= 256 << 10 { pump() }
    }

    func pump() {
        guard !buffer.isEmpty else { return }
        if Spool.writeAll(fd, buffer) { sent += UInt64(bufferedRecords) } else {
            droppedErrors += UInt64(bufferedRecords)
            lastError = "write to standard output: \(errnoText(errno))"
        }
        buffer.removeAll(keepingCapacity: true)
        bufferedRecords = 0
    }

    func idleWait() -> Double { 0.5 }

    func finish(deadline: Double) { pump() }

    func fill(_ r: inout OutputReport) {
        r.sent = sent; r.droppedErrors = droppedErrors; r.lastError = lastError
    }
}
