import Glibc

/// A byte stream to a syslog receiver (plain TCP or TLS), driven without blocking by the output's
/// thread: `advance` until ready, `write` what the socket takes, and compare `transportOffset` of
/// written data with `ackedOffset` to learn what the receiver's TCP acknowledged.
protocol StreamConnection: AnyObject {
    /// Moves a connect or handshake on; true once data can be written. Throws when it failed.
    func advance() throws(ConnectionError) -> Bool
    /// Writes a prefix of `bytes` without blocking; returns its length (0: try later).
    func write(_ bytes: UnsafeRawBufferPointer) throws(ConnectionError) -> Int
    /// Bytes handed to TCP so far (TLS: ciphertext, handshake included) — the stream position that
    /// `ackedOffset` is compared with.
    var transportOffset: UInt64 { get }
    /// Stream position the peer's TCP acknowledged.
    func ackedOffset() -> UInt64
    /// Throws when the peer closed or reset the connection (checked without blocking).
    func checkAlive() throws(ConnectionError)
    /// Starts a clean close: TLS close_notify, then TCP FIN. Returns false while it must be called again.
    func closeGracefully() -> Bool
    /// Releases the socket; with `reset`, with a RST.
    func release(reset: Bool)
}

/// Plain TCP (RFC 6587).
final class TCPConnection: StreamConnection {
    private var fd: Int32
    private var ready = false
    private var written: UInt64 = 0

    init(address: SocketAddress) throws(ConnectionError) {
        fd = try Sockets.startConnect(to: address)
    }

    deinit { if fd >= 0 { close(fd) } }

    func advance() throws(ConnectionError) -> Bool {
        if !ready { ready = try Sockets.connectFinished(fd) }
        return ready
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws(ConnectionError) -> Int {
        let n = try Sockets.send(fd, bytes)
        written &+= UInt64(n)
        return n
    }

    var transportOffset: UInt64 { written }

    func ackedOffset() -> UInt64 { min(Sockets.bytesAcked(fd) ?? 0, written) }

    func checkAlive() throws(ConnectionError) {
        guard Sockets.readable(fd) else { return }
        var scratch = [UInt8](repeating: 0, count: 512)
        let n = recv(fd, &scratch, scratch.count, Int32(MSG_DONTWAIT))
        if n == 0 { throw ConnectionError("receiver closed the connection") }
        if n < 0 {
            if errno == EAGAIN || errno == EINTR { return }
            throw .errno("connection lost")
        }
        // A syslog receiver sends nothing; bytes it does send are read and ignored.
    }

    func closeGracefully() -> Bool {
        shutdown(fd, Int32(SHUT_WR))
        return true
    }

    func release(reset: Bool) {
        guard fd >= 0 else { return }
        if reset { Sockets.abort(fd) } else { close(fd) }
        fd = -1
    }
}
