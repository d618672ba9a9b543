import Glibc
import Records

/// Syslog over UDP (RFC 5426): one message per datagram, cut to `max_size` on a UTF-8 boundary.
///
/// UDP has no acknowledgement, so there is nothing to spool or replay: `sent` counts datagrams the
/// kernel took, and errors it reports (an ICMP port unreachable from an earlier datagram surfaces as
/// ECONNREFUSED on a later send) count as dropped.
final class DatagramDriver: OutputDriver {
    private let host: String
    private let port: UInt16
    private let maxDatagram: Int
    private var fd: Int32 = -1
    private var nextResolve = 0.0

    private var sent: UInt64 = 0, droppedErrors: UInt64 = 0, truncated: UInt64 = 0
    private var lastError: String?

    init(spec: OutputSpec, host: String, port: UInt16) {
        self.host = host; self.port = port; maxDatagram = spec.maxDatagram
    }

    deinit { if fd >= 0 { close(fd) } }

    func route(_ message: [UInt8], kind: RecordKind) {
        guard openSocket() else { droppedErrors += 1; return }
        var length = message.count
        if length > maxDatagram {
            length = maxDatagram
            while length > 0 && message[length] & 0xC0 == 0x80 { length -= 1 }   // don't split a character
            truncated += 1
        }
        for attempt in 0..<3 {
            let n = message.withUnsafeBytes { send(fd, $0.baseAddress, length, Int32(MSG_NOSIGNAL)) }
            if n >= 0 { sent += 1; return }
            let e = errno
            if e == EINTR || (e == ECONNREFUSED && attempt < 2) {
                continue      // ECONNREFUSED reports an earlier datagram; this one was not sent yet
            }
            if (e == EAGAIN || e == ENOBUFS) && attempt < 2 {
                var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                _ = poll(&p, 1, 50)
                continue
            }
            lastError = "send to \(host):\(port): \(errnoText(e))"
            break
        }
        droppedErrors += 1
    }

    private func openSocket() -> Bool {
        if fd >= 0 { return true }
        let now = monotonicSeconds()
        guard now >= nextResolve else { return false }
        do throws(ConnectionError) {
            let address = try SocketAddress.resolve(host: host, port: port, datagram: true)
            let s = socket(address.family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard s >= 0 else { throw .errno("socket") }
            var buffer: Int32 = 4 << 20
            setsockopt(s, SOL_SOCKET, SO_SNDBUF, &buffer, socklen_t(MemoryLayout<Int32>.size))
            guard address.withSockaddr({ connect(s, $0, $1) }) == 0 else {
                let e = errno; close(s); throw .errno("connect", e)
            }
            fd = s
            return true
        } catch {
            lastError = error.description
            nextResolve = now + 1     // don't resolve a failing name for every message
            return false
        }
    }

    func pump() {}

    func idleWait() -> Double { 0.5 }

    func finish(deadline: Double) {
        if fd >= 0 { close(fd); fd = -1 }
    }

    func fill(_ r: inout OutputReport) {
        r.sent = sent; r.droppedErrors = droppedErrors; r.truncated = truncated; r.lastError = lastError
    }
}
