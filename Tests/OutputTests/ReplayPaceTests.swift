import Foundation
import Testing
import Synchronization
import Records
import Output

/// A loopback TCP receiver that takes at most `bytesPerRead` bytes a read with a pause after each (or reads nothing),
/// counting the line-feed-framed messages it got.
private final class PacedReceiver: @unchecked Sendable {
    let port: UInt16
    private let listener: Int32
    private let messages = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)
    private let done = Atomic<Bool>(false)

    init(bytesPerRead: Int, pauseMicroseconds: UInt32, reads: Bool = true) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        // A small receive buffer (set before listen: the accepted socket inherits it), so the pace shows at once.
        var small: Int32 = 16 << 10
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        port = UInt16(bigEndian: addr.sin_port)
        listen(fd, 4)
        listener = fd
        Thread { [self] in
            let fd = accept(listener, nil, nil)
            var buffer = [UInt8](repeating: 0, count: bytesPerRead)
            // Bounded: the test stops it, and 60 s at most.
            let end = Date().addingTimeInterval(60)
            while fd >= 0 && !stopping.load(ordering: .acquiring) && Date() < end {
                guard reads else { usleep(10_000); continue }
                let n = read(fd, &buffer, bytesPerRead)
                if n <= 0 { break }
                messages.add(buffer[..<n].reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) }, ordering: .releasing)
                usleep(pauseMicroseconds)
            }
            if fd >= 0 { close(fd) }
            done.store(true, ordering: .releasing)
        }.start()
    }

    var received: Int { messages.load(ordering: .acquiring) }

    func stop() {
        stopping.store(true, ordering: .releasing)
        shutdown(listener, Int32(SHUT_RDWR)); close(listener)
        _ = waitUntil(seconds: 5) { done.load(ordering: .acquiring) }
    }
}

/// A replay's outputs (`waitingWhenFull`) go at a connected receiver's pace: a slow SIEM gets every alert by the end
/// of the run, none left in the spool for the next run (a forensic replay's alerts belong in the SIEM it ran
/// against), the end's flush going on past its deadline while the receiver takes bytes. One that takes nothing is given up on after the stall bound and spooled, as a live capture's is, so a
/// replay never hangs on it. (Until the thirty-first session a replay spooled whatever a slow receiver had not taken
/// yet and left the rest in the spool after its 10 s flush.)
@Suite struct ReplayPaceTests {
    static let alerts = 20_000

    @Test func aReplaysOutputWaitsForASlowReceiver() throws {
        let tmp = TempDir("pace")
        // ~4 MB/s: 20,000 alerts (~12 MB of CEF) take seconds, far past the socket buffers and the driver's 512 KiB.
        let receiver = PacedReceiver(bytesPerRead: 16 << 10, pauseMicroseconds: 4_000)
        defer { receiver.stop() }
        let outputs = try OutputSet(specs: [try OutputSpec.parse(
            "syslog+tcp://127.0.0.1:\(receiver.port)?format=cef&framing=lf&spool=\(tmp.path)/spool")], waitingWhenFull: true)
        for n in 1...Self.alerts { outputs.deliver(Sample.numbered(n)) }
        // The queue holds them all at once: they are delivered after the (1 s) deadline, while the receiver takes them.
        let r = outputs.shutdown(deadline: 1)[0]
        #expect(r.finished && r.spooled == 0 && r.inSpool == 0 && r.dropped == 0, "\(r.summary)")
        #expect(r.sent == UInt64(Self.alerts), "\(r.summary)")
        #expect(waitUntil(seconds: 10) { receiver.received == Self.alerts }, "received \(receiver.received)")
    }

    @Test func aReplayGivesUpOnAReceiverThatTakesNothing() throws {
        let tmp = TempDir("stall")
        let receiver = PacedReceiver(bytesPerRead: 1, pauseMicroseconds: 0, reads: false)
        defer { receiver.stop() }
        let outputs = try OutputSet(specs: [try OutputSpec.parse(
            "syslog+tcp://127.0.0.1:\(receiver.port)?format=cef&framing=lf&spool=\(tmp.path)/spool")],
            waitingWhenFull: true, receiverStallSeconds: 0.5)
        let start = Date()
        for n in 1...Self.alerts { outputs.deliver(Sample.numbered(n)) }
        // Given up on once (0.5 s), then spooled: not one wait per message.
        #expect(Date().timeIntervalSince(start) < 20)
        let r = outputs.shutdown(deadline: 0.5)[0]
        #expect(r.spooled > 0 && r.inSpool > 0, "\(r.summary)")
        #expect(r.lastError?.contains("took nothing") == true || r.summary.contains("took nothing"), "\(r.summary)")
        #expect(r.accepted + r.recovered == r.sent + r.inSpool + r.dropped - r.droppedQueueFull + r.pending, "\(r.summary)")
    }
}
