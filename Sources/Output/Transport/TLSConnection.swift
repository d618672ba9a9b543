import Glibc
import COpenSSL

// Syslog over TLS (RFC 5425) through OpenSSL's libssl:
//   - TLS 1.2 or newer (RFC 5425 as updated by RFC 9662); OpenSSL's default cipher list.
//   - The server certificate must chain to the CA file (or the system store) and match the host:
//     an IP address is checked against the certificate's IP SANs, a name against its DNS names;
//     the name is also sent as SNI.
//   - Optional client certificate and key (mutual authentication).
//   - Closing sends close_notify before the TCP FIN (receivers log an error otherwise).
//   - Partial writes are enabled, so a full socket buffer returns what was taken and the output's
//     thread goes back to its queue.

/// One output's TLS settings, loaded once.
final class TLSContext: @unchecked Sendable {
    let ctx: OpaquePointer

    /// Builds the context: loads the CA file and the client certificate; throws with OpenSSL's reason.
    init(settings: OutputSpec.TLSSettings) throws(ConnectionError) {
        // libssl is loaded on first use (COpenSSL.h): a missing library is this output's error, not a crash.
        if let failure = zw_openssl_load_ssl() { throw ConnectionError("TLS: \(String(cString: failure))") }
        guard let c = SSL_CTX_new(TLS_client_method()) else { throw ConnectionError("TLS: \(TLSContext.lastError())") }
        ctx = c
        SSL_CTX_ctrl(ctx, SSL_CTRL_SET_MIN_PROTO_VERSION, Int(TLS1_2_VERSION), nil)
        SSL_CTX_ctrl(ctx, SSL_CTRL_MODE, Int(SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER), nil)
        if let ca = settings.caFile {
            guard SSL_CTX_load_verify_locations(ctx, ca, nil) == 1 else {
                throw ConnectionError("TLS: cannot load CA file \(ca): \(TLSContext.lastError())")
            }
        } else {
            SSL_CTX_set_default_verify_paths(ctx)
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nil)
        if let cert = settings.certificateFile, let key = settings.keyFile {
            guard SSL_CTX_use_certificate_chain_file(ctx, cert) == 1 else {
                throw ConnectionError("TLS: cannot load client certificate \(cert): \(TLSContext.lastError())")
            }
            guard SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) == 1, SSL_CTX_check_private_key(ctx) == 1 else {
                throw ConnectionError("TLS: cannot load client key \(key): \(TLSContext.lastError())")
            }
        }
    }

    deinit { SSL_CTX_free(ctx) }

    /// OpenSSL's error queue as text (and emptied).
    static func lastError() -> String {
        var parts: [String] = []
        while true {
            let e = ERR_get_error()
            if e == 0 { break }
            var buf = [UInt8](repeating: 0, count: 256)
            buf.withUnsafeMutableBufferPointer { p in
                p.withMemoryRebound(to: CChar.self) { ERR_error_string_n(e, $0.baseAddress, $0.count) }
            }
            parts.append(String(decoding: buf.prefix(while: { $0 != 0 }), as: UTF8.self))
        }
        return parts.isEmpty ? "unknown error" : parts.joined(separator: "; ")
    }
}

/// TLS over a non-blocking TCP socket.
final class TLSConnection: StreamConnection {
    private var fd: Int32
    private let ssl: OpaquePointer
    private let context: TLSContext
    private var tcpReady = false
    private var handshakeDone = false
    private var shutdownSent = false

    init(address: SocketAddress, context: TLSContext, serverName: String) throws(ConnectionError) {
        self.context = context
        fd = try Sockets.startConnect(to: address)
        guard let s = SSL_new(context.ctx) else {
            close(fd)
            throw ConnectionError("TLS: \(TLSContext.lastError())")
        }
        ssl = s
        SSL_set_fd(ssl, fd)
        let param = SSL_get0_param(ssl)
        if IPv4or6(serverName) {
            X509_VERIFY_PARAM_set1_ip_asc(param, serverName)
        } else {
            X509_VERIFY_PARAM_set1_host(param, serverName, 0)
            serverName.withCString { name in
                _ = SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, Int(TLSEXT_NAMETYPE_host_name), UnsafeMutableRawPointer(mutating: name))
            }
        }
    }

    deinit {
        SSL_free(ssl)
        if fd >= 0 { close(fd) }
    }

    func advance() throws(ConnectionError) -> Bool {
        if handshakeDone { return true }
        if !tcpReady {
            tcpReady = try Sockets.connectFinished(fd)
            if !tcpReady { return false }
        }
        ERR_clear_error()
        let rc = SSL_connect(ssl)
        if rc == 1 { handshakeDone = true; return true }
        let err = SSL_get_error(ssl, rc)
        if err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE { return false }
        let verify = SSL_get_verify_result(ssl)
        if verify != X509_V_OK {
            throw ConnectionError("TLS handshake: certificate not accepted: \(String(cString: X509_verify_cert_error_string(verify)))")
        }
        throw ConnectionError("TLS handshake failed: \(failureText(err))")
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws(ConnectionError) -> Int {
        guard !bytes.isEmpty else { return 0 }
        ERR_clear_error()
        let rc = SSL_write(ssl, bytes.baseAddress, Int32(min(bytes.count, Int(Int32.max))))
        if rc > 0 { return Int(rc) }
        let err = SSL_get_error(ssl, rc)
        if err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ { return 0 }
        throw ConnectionError("TLS write: \(failureText(err))")
    }

    var transportOffset: UInt64 { BIO_number_written(SSL_get_wbio(ssl)) }

    func ackedOffset() -> UInt64 { min(Sockets.bytesAcked(fd) ?? 0, transportOffset) }

    func checkAlive() throws(ConnectionError) {
        guard Sockets.readable(fd) else { return }
        // Session tickets and alerts arrive here; application data from a receiver is ignored.
        var scratch = [UInt8](repeating: 0, count: 1024)
        for _ in 0..<16 {
            ERR_clear_error()
            let rc = SSL_read(ssl, &scratch, Int32(scratch.count))
            if rc > 0 { continue }
            let err = SSL_get_error(ssl, rc)
            if err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE { return }
            if err == SSL_ERROR_ZERO_RETURN { throw ConnectionError("receiver closed the TLS session") }
            throw ConnectionError("TLS connection lost: \(failureText(err))")
        }
    }

    func closeGracefully() -> Bool {
        if !shutdownSent && handshakeDone {
            ERR_clear_error()
            let rc = SSL_shutdown(ssl)
            if rc < 0 {
                let err = SSL_get_error(ssl, rc)
                if err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ { return false }
            }
            shutdownSent = true
        }
        shutdown(fd, Int32(SHUT_WR))
        return true
    }

    func release(reset: Bool) {
        guard fd >= 0 else { return }
        if reset { Sockets.abort(fd) } else { close(fd) }
        fd = -1
    }

    private func failureText(_ err: Int32) -> String {
        if err == SSL_ERROR_SYSCALL {
            let e = errno
            let queued = TLSContext.lastError()
            return e != 0 ? "\(errnoText(e)) (\(queued))" : "connection closed (\(queued))"
        }
        return TLSContext.lastError()
    }
}

/// Whether `s` is a numeric IPv4 or IPv6 address.
func IPv4or6(_ s: String) -> Bool {
    var a4 = in_addr(), a6 = in6_addr()
    return inet_pton(AF_INET, s, &a4) == 1 || inet_pton(AF_INET6, s, &a6) == 1
}
