import Glibc

/// Writes all of `bytes` to a file descriptor, retrying short writes and EINTR.
@discardableResult
func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Bool {
    var offset = 0
    while offset < bytes.count {
        let n = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
        if n < 0 { if errno == EINTR { continue }; return false }
        offset += n
    }
    return true
}

/// Prints a line to standard error.
func printError(_ line: String) {
    var text = line + "\n"
    text.withUTF8 { _ = writeAll(2, UnsafeRawBufferPointer($0)) }
}

/// Writes text to standard error without a newline (progress lines).
func printErrorRaw(_ text: String) {
    var t = text
    t.withUTF8 { _ = writeAll(2, UnsafeRawBufferPointer($0)) }
}
