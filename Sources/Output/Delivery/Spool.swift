import Glibc

// On-disk spool of one output: an ordered log of encoded messages, written when the receiver is
// down or slow and replayed, oldest first, when it is back.
//
// Folder layout
//   <seq>.seg      segment files, 20-digit zero-padded sequence numbers, read in ascending order
//   state          text, one line "seq start" per segment whose first `start` bytes were delivered
//   lock           flock(2)ed while an output owns the folder
// Segment file    *( LEN(4, little-endian) MESSAGE(LEN) ); a new segment starts past 4 MiB
//
// Two cursors: `read` (what the sender has taken) and `commit` (what the receiver acknowledged; the
// start of the head segment). `rewind` moves read back to commit after a lost connection, so that
// unacknowledged messages are sent again; fully committed segments are deleted.
// Messages that were in flight straight from memory when a connection died are older than anything
// in the spool: `prepend` puts them in a new segment before the head.
// The bound `limit` counts live bytes (headers included) and refuses `append` beyond it; `prepend`
// may exceed it by the in-flight window, because those messages were accepted earlier.

/// An output's disk spool (see the layout above). Used by one thread only.
final class Spool {
    struct Segment {
        var seq: Int64
        /// Offset of the first uncommitted byte.
        var start: Int
        /// Logical end, including bytes still in the write buffer (tail segment only).
        var end: Int
    }

    /// Folder.
    let directory: String
    /// Bound on live bytes.
    let limit: Int
    /// Size at which a new tail segment is started.
    let segmentSize: Int

    private(set) var segments: [Segment] = []
    /// Uncommitted bytes (headers included).
    private(set) var liveBytes = 0
    /// Uncommitted messages.
    private(set) var liveRecords = 0
    /// Messages not yet taken by `read`.
    private(set) var unreadRecords = 0
    /// Messages found at open time.
    private(set) var recoveredRecords = 0
    /// Bytes skipped as unreadable at open time (torn final write of a crashed run).
    private(set) var corruptBytes = 0

    private var tailFD: Int32 = -1
    private var tailSeq: Int64 = -1
    private var writeBuffer: [UInt8] = []
    private var writeBufferStart = 0        // file offset of writeBuffer[0]
    private var readIndex = 0               // index into segments
    private var readOffset = 0
    private var readBuffer: [UInt8] = []
    private var lockFD: Int32 = -1
    private var stateDirty = false
    private var unsynced = false            // appended since the last fsync

    private static let baseSeq: Int64 = 1_000_000_000

    /// Opens (creating) the spool in `directory`, loads what an earlier run left, and locks it.
    init(directory: String, limit: Int, segmentSize: Int = 4 << 20) throws(SpoolError) {
        self.directory = directory; self.limit = limit; self.segmentSize = segmentSize
        try Spool.makeDirectories(directory)
        lockFD = open(directory + "/lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard lockFD >= 0 else { throw .io("open \(directory)/lock", errno) }
        guard flock(lockFD, LOCK_EX | LOCK_NB) == 0 else {
            Glibc.close(lockFD); lockFD = -1
            throw .locked(directory)
        }
        try load()
    }

    deinit { close() }

    /// Flushes, closes the files and releases the folder's lock (after `persist`).
    func close() {
        _ = flushWrites()
        if tailFD >= 0 { Glibc.close(tailFD); tailFD = -1 }
        if lockFD >= 0 { Glibc.close(lockFD); lockFD = -1 }
    }

    /// Whether `read` has messages to give.
    var hasUnread: Bool { unreadRecords > 0 }

    // MARK: - Writing

    /// Appends one message; false (nothing written) when the spool is full.
    func append(_ message: some Collection<UInt8>) -> Bool {
        let size = 4 + message.count
        guard liveBytes + size <= limit else { return false }
        if segments.isEmpty || segments[segments.count - 1].end >= segmentSize || segments[segments.count - 1].seq != tailSeq {
            guard startTail(seq: (segments.last?.seq ?? Spool.baseSeq - 1) + 1) else { return false }
        }
        appendRecord(message)
        segments[segments.count - 1].end += size
        liveBytes += size; liveRecords += 1; unreadRecords += 1
        unsynced = true
        if writeBuffer.count >= 256 << 10 { _ = flushWrites() }
        return true
    }

    /// Puts `count` messages (given by `message(i)`, oldest first) before everything in the spool.
    /// Call right after `rewind`. Returns false on an I/O error (the messages are then lost).
    func prepend(count: Int, message: (Int) -> ArraySlice<UInt8>) -> Bool {
        guard count > 0 else { return true }
        if segments.isEmpty {
            for i in 0..<count { _ = appendUnbounded(message(i)) }
            return true
        }
        let seq = segments[0].seq - 1
        let path = segmentPath(seq)
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return false }
        defer { Glibc.close(fd) }
        var buffer: [UInt8] = []
        var bytes = 0
        for i in 0..<count {
            let m = message(i)
            Spool.appendHeader(m.count, to: &buffer); buffer.append(contentsOf: m)
            bytes += 4 + m.count
        }
        guard Spool.writeAll(fd, buffer) else { unlink(path); return false }
        fsync(fd)
        segments.insert(Segment(seq: seq, start: 0, end: bytes), at: 0)
        liveBytes += bytes; liveRecords += count; unreadRecords += count
        readIndex = 0; readOffset = 0
        stateDirty = true
        return true
    }

    /// Writes buffered appends to the tail file. Returns false on an I/O error.
    @discardableResult
    func flushWrites() -> Bool {
        guard !writeBuffer.isEmpty, tailFD >= 0 else { return true }
        let ok = Spool.writeAll(tailFD, writeBuffer)
        writeBufferStart += writeBuffer.count
        writeBuffer.removeAll(keepingCapacity: true)
        return ok
    }

    /// Flushes, fsyncs the tail and records the commit cursor in `state` (shutdown, idle moments).
    func persist() {
        flushWrites()
        if unsynced && tailFD >= 0 { fsync(tailFD) }
        unsynced = false
        guard stateDirty else { return }
        var text = ""
        for s in segments where s.start > 0 { text += "\(s.seq) \(s.start)\n" }
        let tmp = directory + "/state.tmp"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return }
        let ok = Spool.writeAll(fd, Array(text.utf8))
        fsync(fd); Glibc.close(fd)
        if ok && rename(tmp, directory + "/state") == 0 { stateDirty = false }
    }

    // MARK: - Reading

    /// Calls `body` with up to `maxBytes` of messages from the read cursor, oldest first, and moves
    /// the cursor past them. Returns how many messages it gave.
    func read(maxBytes: Int, _ body: (ArraySlice<UInt8>) -> Void) -> Int {
        var given = 0, bytes = 0
        while bytes < maxBytes, unreadRecords > 0, readIndex < segments.count {
            let seg = segments[readIndex]
            if readOffset < seg.start { readOffset = seg.start }
            if readOffset >= seg.end {
                guard readIndex + 1 < segments.count else { break }
                readIndex += 1; readOffset = segments[readIndex].start
                continue
            }
            if seg.seq == tailSeq && !writeBuffer.isEmpty { flushWrites() }
            let want = min(seg.end - readOffset, max(256 << 10, maxBytes - bytes))
            guard fill(seq: seg.seq, offset: readOffset, count: want) else { break }
            var p = 0
            while p + 4 <= readBuffer.count, bytes < maxBytes {
                let len = Spool.readHeader(readBuffer, at: p)
                if p + 4 + len > readBuffer.count {
                    if p == 0 {       // one message longer than the chunk: read exactly it
                        guard fill(seq: seg.seq, offset: readOffset, count: 4 + len), readBuffer.count == 4 + len else { return given }
                        continue
                    }
                    break
                }
                body(readBuffer[(p + 4)..<(p + 4 + len)])
                p += 4 + len; bytes += 4 + len; given += 1; unreadRecords -= 1
            }
            readOffset += p
            if p == 0 { break }
        }
        return given
    }

    /// Marks the oldest uncommitted message (of `size` bytes) delivered.
    func commit(size: Int) {
        guard !segments.isEmpty else { return }
        segments[0].start += 4 + size
        liveBytes -= 4 + size; liveRecords -= 1
        stateDirty = true
        while let head = segments.first, head.start >= head.end {
            if segments.count == 1 {
                if liveRecords == 0 { reset() }
                return
            }
            unlink(segmentPath(head.seq))
            segments.removeFirst()
            if readIndex > 0 { readIndex -= 1 } else { readOffset = segments[0].start }
        }
    }

    /// Moves the read cursor back to the commit cursor (after a lost connection).
    func rewind() {
        readIndex = 0
        readOffset = segments.first?.start ?? 0
        unreadRecords = liveRecords
    }

    // MARK: - Internals

    private func appendUnbounded(_ message: ArraySlice<UInt8>) -> Bool {
        let size = 4 + message.count
        if segments.isEmpty || segments[segments.count - 1].end >= segmentSize || segments[segments.count - 1].seq != tailSeq {
            guard startTail(seq: (segments.last?.seq ?? Spool.baseSeq - 1) + 1) else { return false }
        }
        appendRecord(message)
        segments[segments.count - 1].end += size
        liveBytes += size; liveRecords += 1; unreadRecords += 1
        unsynced = true
        return true
    }

    private func appendRecord(_ message: some Collection<UInt8>) {
        Spool.appendHeader(message.count, to: &writeBuffer)
        writeBuffer.append(contentsOf: message)
    }

    /// Everything delivered: delete the files and start afresh.
    private func reset() {
        _ = flushWrites()
        if tailFD >= 0 { Glibc.close(tailFD); tailFD = -1 }
        for s in segments { unlink(segmentPath(s.seq)) }
        segments.removeAll()
        tailSeq = -1
        writeBuffer.removeAll(keepingCapacity: true); writeBufferStart = 0
        readIndex = 0; readOffset = 0
        liveBytes = 0; liveRecords = 0; unreadRecords = 0
        unlink(directory + "/state")
        stateDirty = false
    }

    private func startTail(seq: Int64) -> Bool {
        _ = flushWrites()
        if tailFD >= 0 { fsync(tailFD); Glibc.close(tailFD); tailFD = -1 }
        let fd = open(segmentPath(seq), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return false }
        let existing = Int(lseek(fd, 0, SEEK_END))
        tailFD = fd; tailSeq = seq; writeBufferStart = existing
        if segments.last?.seq != seq { segments.append(Segment(seq: seq, start: existing, end: existing)) }
        return true
    }

    private func fill(seq: Int64, offset: Int, count: Int) -> Bool {
        readBuffer.removeAll(keepingCapacity: true)
        let fd = open(segmentPath(seq), O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { Glibc.close(fd) }
        readBuffer = [UInt8](unsafeUninitializedCapacity: count) { buf, initialized in
            var got = 0
            while got < count {
                let n = pread(fd, buf.baseAddress! + got, count - got, off_t(offset + got))
                if n <= 0 { if n < 0 && errno == EINTR { continue }; break }
                got += n
            }
            initialized = got
        }
        return !readBuffer.isEmpty
    }

    private func segmentPath(_ seq: Int64) -> String {
        let digits = String(seq)
        return directory + "/" + String(repeating: "0", count: max(0, 20 - digits.count)) + digits + ".seg"
    }

    private func load() throws(SpoolError) {
        guard let dir = opendir(directory) else { throw .io("opendir \(directory)", errno) }
        var seqs: [Int64] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name.hasSuffix(".seg"), let seq = Int64(name.dropLast(4)) { seqs.append(seq) }
        }
        closedir(dir)
        seqs.sort()
        var starts: [Int64: Int] = [:]
        if let bytes = Spool.readFile(directory + "/state"), let text = String(validating: bytes, as: UTF8.self) {
            for line in text.split(separator: "\n") {
                let parts = line.split(separator: " ")
                if parts.count == 2, let seq = Int64(parts[0]), let start = Int(parts[1]) { starts[seq] = start }
            }
        }
        for seq in seqs {
            let path = segmentPath(seq)
            var st = stat()
            guard stat(path, &st) == 0 else { continue }
            let size = Int(st.st_size)
            let start = min(starts[seq] ?? 0, size)
            // Walk the headers to count messages and find the last whole one.
            var offset = start, count = 0
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw .io("open \(path)", errno) }
            var header = [UInt8](repeating: 0, count: 4)
            while offset + 4 <= size {
                guard pread(fd, &header, 4, off_t(offset)) == 4 else { break }
                let len = Spool.readHeader(header, at: 0)
                guard offset + 4 + len <= size else { break }
                offset += 4 + len; count += 1
            }
            Glibc.close(fd)
            corruptBytes += size - offset
            if offset < size { truncate(path, off_t(offset)) }
            if count == 0 { unlink(path); continue }
            segments.append(Segment(seq: seq, start: start, end: offset))
            liveBytes += offset - start; liveRecords += count
        }
        unreadRecords = liveRecords
        recoveredRecords = liveRecords
        readIndex = 0; readOffset = segments.first?.start ?? 0
        if segments.isEmpty { unlink(directory + "/state") }
    }

    private static func appendHeader(_ len: Int, to out: inout [UInt8]) {
        let v = UInt32(len)
        out.append(UInt8(truncatingIfNeeded: v)); out.append(UInt8(truncatingIfNeeded: v >> 8))
        out.append(UInt8(truncatingIfNeeded: v >> 16)); out.append(UInt8(truncatingIfNeeded: v >> 24))
    }

    private static func readHeader(_ b: [UInt8], at p: Int) -> Int {
        Int(UInt32(b[p]) | UInt32(b[p + 1]) << 8 | UInt32(b[p + 2]) << 16 | UInt32(b[p + 3]) << 24)
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let n = write(fd, raw.baseAddress! + done, raw.count - done)
                if n < 0 { if errno == EINTR { continue }; return false }
                done += n
            }
            return true
        }
    }

    /// The whole content of the file at `path`; nil when it cannot be opened or read.
    static func readFile(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { Glibc.close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 { if errno == EINTR { continue }; return nil }
            if n == 0 { return bytes }
            bytes.append(contentsOf: chunk[..<n])
        }
    }

    static func makeDirectories(_ path: String) throws(SpoolError) {
        var current = ""
        for part in path.split(separator: "/", omittingEmptySubsequences: true) {
            current += "/" + part
            if mkdir(current, 0o755) != 0 && errno != EEXIST { throw .io("mkdir \(current)", errno) }
        }
    }
}

/// Why a spool could not be opened.
enum SpoolError: Error, CustomStringConvertible {
    case io(String, Int32)
    case locked(String)

    var description: String {
        switch self {
        case .io(let what, let e): "spool: \(what): \(errnoText(e))"
        case .locked(let dir): "spool \(dir) is in use by another process (give each output its own spool=)"
        }
    }
}
