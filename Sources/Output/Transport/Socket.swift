import Glibc

// POSIX socket plumbing for the syslog transports. Every socket is non-blocking: the output's thread
// never sleeps in a syscall longer than it chooses to, so it keeps draining its queue into the spool
// while a receiver is slow, unreachable or still connecting.

/// A transport failure, with the text an operator needs.
struct ConnectionError: Error, CustomStringConvertible {
    var description: String
    init(_ text: String) { description = text }
    static func errno(_ what: String, _ e: Int32 = Glibc.errno) -> ConnectionError {
        ConnectionError("\(what): \(errnoText(e))")
    }
}

/// One resolved socket address.
struct SocketAddress {
    var storage = sockaddr_storage()
    var length: socklen_t = 0
    var family: Int32 { Int32(storage.ss_family) }

    /// Resolves `host:port` to its first address (numeric addresses without DNS). Blocks for DNS names.
    static func resolve(host: String, port: UInt16, datagram: Bool) throws(ConnectionError) -> SocketAddress {
        try resolveAll(host: host, port: port, datagram: datagram)[0]
    }

    /// Every address of `host:port`, in the resolver's order (never empty).
    static func resolveAll(host: String, port: UInt16, datagram: Bool) throws(ConnectionError) -> [SocketAddress] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = datagram ? Int32(SOCK_DGRAM.rawValue) : Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_ADDRCONFIG
        var result: UnsafeMutablePointer<addrinfo>?
        var rc = getaddrinfo(host, String(port), &hints, &result)
        if rc != 0 {
            // Loopback-only machines have no "configured" family: retry without AI_ADDRCONFIG.
            hints.ai_flags = 0
            rc = getaddrinfo(host, String(port), &hints, &result)
        }
        guard rc == 0, result != nil else {
            throw ConnectionError("cannot resolve \(host): \(String(cString: gai_strerror(rc)))")
        }
        defer { freeaddrinfo(result) }
        var out: [SocketAddress] = []
        var p = result
        while let ai = p {
            var a = SocketAddress()
            a.length = ai.pointee.ai_addrlen
            withUnsafeMutableBytes(of: &a.storage) { dst in
                dst.copyMemory(from: UnsafeRawBufferPointer(start: ai.pointee.ai_addr, count: Int(ai.pointee.ai_addrlen)))
            }
            out.append(a)
            p = ai.pointee.ai_next
        }
        guard !out.isEmpty else { throw ConnectionError("cannot resolve \(host): no address") }
        return out
    }

    func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        withUnsafeBytes(of: storage) { raw in
            body(raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), length)
        }
    }
}

/// Socket helpers.
enum Sockets {
    /// A non-blocking TCP socket with a connect under way (or done, on loopback).
    static func startConnect(to address: SocketAddress) throws(ConnectionError) -> Int32 {
        let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .errno("socket") }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, socklen_t(MemoryLayout<Int32>.size))
        // A receiver that vanishes without a RST would otherwise hold data for ~15 minutes of retransmits.
        var userTimeout: UInt32 = 30_000
        setsockopt(fd, Int32(IPPROTO_TCP), 18 /* TCP_USER_TIMEOUT */, &userTimeout, socklen_t(MemoryLayout<UInt32>.size))
        let rc = address.withSockaddr { connect(fd, $0, $1) }
        if rc != 0 && errno != EINPROGRESS {
            let e = errno
            close(fd)
            throw .errno("connect", e)
        }
        return fd
    }

    /// Whether a non-blocking connect finished; throws if it failed.
    static func connectFinished(_ fd: Int32) throws(ConnectionError) -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        guard poll(&p, 1, 0) == 1 else { return false }
        var err: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
        if err != 0 { throw .errno("connect", err) }
        return true
    }

    /// Sends without blocking; 0 when the socket buffer is full.
    static func send(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws(ConnectionError) -> Int {
        while true {
            let n = Glibc.send(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
            if n >= 0 { return n }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return 0
            default: throw .errno("send")
            }
        }
    }

    /// Data bytes the peer's TCP acknowledged (Linux `tcp_info.tcpi_bytes_acked`, offset 120).
    static func bytesAcked(_ fd: Int32) -> UInt64? {
        withUnsafeTemporaryAllocation(byteCount: 256, alignment: 8) { info -> UInt64? in
            var len = socklen_t(info.count)
            guard getsockopt(fd, Int32(IPPROTO_TCP), TCP_INFO, info.baseAddress, &len) == 0, len >= 128 else { return nil }
            return UnsafeRawBufferPointer(info).loadUnaligned(fromByteOffset: 120, as: UInt64.self)
        }
    }

    /// Whether the socket has something to read (data, FIN, error) right now.
    static func readable(_ fd: Int32) -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN) | 0x2000 /* POLLRDHUP */, revents: 0)
        return poll(&p, 1, 0) == 1
    }

    /// Closes with a RST (no lingering): used when a connection is abandoned.
    static func abort(_ fd: Int32) {
        var l = linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
        close(fd)
    }
}
