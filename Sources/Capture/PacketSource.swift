import CPcap
import Glibc
import Wire

/// The per-packet facts libpcap gives with each packet.
public struct PacketHeader: Sendable {
    /// Capture time.
    public var time: PacketTime
    /// Bytes captured (available in the buffer).
    public var capturedLength: Int
    /// Bytes on the wire.
    public var wireLength: Int
    /// A header.
    @inlinable public init(time: PacketTime, capturedLength: Int, wireLength: Int) {
        self.time = time; self.capturedLength = capturedLength; self.wireLength = wireLength
    }
}

/// Counters from `pcap_stats` for live captures.
public struct CaptureStatistics: Sendable {
    /// Packets received by the filter.
    public var received: UInt64
    /// Packets dropped because the buffer was full (kernel drops).
    public var droppedByKernel: UInt64
    /// Packets dropped by the interface or driver.
    public var droppedByInterface: UInt64
}

/// Options for a live capture (`pcap_create` + `pcap_set_*` + `pcap_activate`).
public struct LiveCaptureOptions: Sendable {
    /// Bytes kept per packet.
    public var snapLength: Int32 = 65_535
    /// Whether to put the interface in promiscuous mode.
    public var promiscuous = true
    /// Packet buffer timeout in milliseconds (TPACKET_V3 block retire timeout).
    public var timeoutMilliseconds: Int32 = 100
    /// Kernel ring size in bytes; large by default so bursts do not drop.
    public var bufferSize: Int32 = 64 << 20
    /// Immediate mode forces TPACKET_V2 and costs throughput; off by default.
    public var immediate = false
    /// An optional BPF filter.
    public var filter: String?
    /// Creates default options.
    public init() {}
}

/// What `PacketSource.dispatch` hands packets to (subclass it; a class, so that libpcap's user pointer can carry
/// it unretained).
open class PacketConsumer {
    /// Creates a consumer.
    public init() {}
    /// One packet: its header and a view of libpcap's buffer valid during the call only.
    open func consume(_ header: PacketHeader, _ bytes: ByteView) {}
    /// One packet with the one `lookahead` places after it when the file's read buffer already holds it
    /// (`PacketSource.upcoming`; nil otherwise), for prefetching. Called instead of `consume(_:_:)` when
    /// `lookahead` is above 0; the default forwards to it.
    open func consume(_ header: PacketHeader, _ bytes: ByteView, ahead: ByteView?) { consume(header, bytes) }
    /// How many packets ahead to look (0: no lookahead). Asked once per `dispatch` call.
    open var lookahead: Int { 0 }
    /// Whether `stopRequested` is asked after every packet (true) or only by the caller between `dispatch` calls
    /// (false: a replay stops within one batch anyway, and the question costs a call per packet). Asked once per
    /// `dispatch` call.
    open var stopsWithinBatch: Bool { true }
    /// Whether to stop after the current packet (asked after each one).
    open var stopRequested: Bool { false }
}

/// `dispatch`'s state, reached through libpcap's user pointer.
private struct DispatchContext {
    let consumer: Unmanaged<PacketConsumer>
    let handle: OpaquePointer
    let lookaheadDistance: Int
    let stopsWithinBatch: Bool
    /// The source's lookahead, stepped here for the call's duration (no access to the source per packet).
    var lookahead: RecordLookahead
    var count = 0
    init(consumer: PacketConsumer, handle: OpaquePointer, lookahead: RecordLookahead) {
        self.consumer = Unmanaged.passUnretained(consumer); self.handle = handle; self.lookahead = lookahead
        lookaheadDistance = consumer.lookahead; stopsWithinBatch = consumer.stopsWithinBatch
    }
}

/// A source of packets over libpcap: a capture file (pcap or pcapng, `-` for stdin) or a live interface.
///
/// The only type in ZoneWatch that touches libpcap. `next()` hands out a borrowed view of libpcap's
/// buffer, valid only until the following call (libpcap's contract): nothing is copied per packet.
public final class PacketSource {
    private let handle: OpaquePointer
    private var readBuffer: UnsafeMutableRawPointer?
    /// The capture's link type (`pcap_datalink`).
    public let linkType: LinkType
    /// Whether this is a live capture.
    public let isLive: Bool
    /// Lookahead over a pcap or pcapng file's read buffer (`upcoming`). Touched per packet by one thread: no dynamic
    /// exclusivity checks.
    @exclusivity(unchecked) private var lookahead = RecordLookahead()

    /// Whether `upcoming` can answer (a pcap or pcapng file or standard input; not a live capture).
    public var readsAhead: Bool { lookahead.layout != .none }

    /// The capture's snapshot length (`pcap_snapshot`): no packet is captured longer.
    public var snapshotLength: Int { Int(pcap_snapshot(handle)) }

    /// The lookahead over the file's read buffer, for a C handler (`dispatch(batch:handler:user:)`) to step in its
    /// own context during a call and hand back after it.
    public var recordLookahead: RecordLookahead {
        get { lookahead }
        set { lookahead = newValue }
    }

    private init(handle: OpaquePointer, buffer: UnsafeMutableRawPointer?, live: Bool) throws(CaptureError) {
        self.handle = handle; self.readBuffer = buffer; self.isLive = live
        let dlt = pcap_datalink(handle)
        guard let lt = LinkType(rawValue: dlt) else {
            let name = pcap_datalink_val_to_name(dlt).map { String(cString: $0) } ?? "unknown"
            pcap_close(handle); buffer?.deallocate()
            throw CaptureError(.unsupportedLinkType, "unsupported link type \(dlt) (\(name)); ZoneWatch decodes Ethernet, Linux SLL/SLL2, raw IP and BSD loopback")
        }
        linkType = lt
    }

    /// libpcap's error buffer as text (up to its terminating zero).
    private static func text(_ errbuf: [CChar]) -> String {
        String(decoding: errbuf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    deinit {
        pcap_close(handle)   // also closes the stream it read
        readBuffer?.deallocate()
    }

    /// Opens a pcap or pcapng file; `-` reads standard input. Offline files (standard input too) get a 64 KiB stdio
    /// buffer of our own (glibc ignores the size when `setvbuf` is given no buffer, and gives a pipe 4 KiB): 16 times
    /// fewer `read` calls than glibc's 4 KiB, while the buffer still stays in the L2 cache beside the flow table
    /// (1 MiB, the size of that cache, evicted it at every refill: ~2 % slower on 10,000 flows; 16 KiB: more calls
    /// and less lookahead, ~5 % slower).
    public static func openFile(_ path: String) throws(CaptureError) -> PacketSource {
        var errbuf = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE) + 1)
        // Standard input through a stream of our own on descriptor 0 (what libpcap's "-" reads), so that it gets the
        // buffer and the lookahead too; closed with the source, as a file's is.
        let standardInput = path == "-"
        guard let fp = standardInput ? fdopen(STDIN_FILENO, "rb") : fopen(path, "rb") else {
            throw CaptureError(.open, "\(path): cannot open: \(String(cString: strerror(errno)))")
        }
        let size = 64 << 10
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
        setvbuf(fp, buffer.assumingMemoryBound(to: CChar.self), _IOFBF, size)
        // One thread reads this stream (libpcap, and the lookahead peeking into its buffer): without this, every
        // fread takes and releases the stream's lock, two atomic operations, and libpcap freads twice a packet.
        _ = __fsetlocking(fp, Int32(FSETLOCKING_BYCALLER))
        // A file's first bytes, read beside stdio (pread moves no file position): classic pcap's magic, or pcapng's
        // section header block with its byte-order magic at byte 8, say how to read ahead; the old modified pcap
        // formats (other record headers) get no lookahead.
        var start = (UInt32(0), UInt32(0), UInt32(0))
        let startRead = !standardInput && pread(fileno(fp), &start, 12, 0) == 12
        guard let h = pcap_fopen_offline(fp, &errbuf) else {
            fclose(fp); buffer.deallocate()
            throw CaptureError(.open, "\(path): " + PacketSource.text(errbuf))
        }
        let source = try PacketSource(handle: h, buffer: buffer, live: false)
        source.lookahead.file = fp   // libpcap reads this stream; `upcoming` peeks into its buffer
        if startRead {
            switch (start.0, start.2) {
            case (0xA1B2_C3D4, _), (0xA1B2_3C4D, _): source.lookahead.layout = .classic
            case (0xD4C3_B2A1, _), (0x4D3C_B2A1, _): source.lookahead.layout = .classicSwapped
            case (0x0A0D_0D0A, 0x1A2B_3C4D): source.lookahead.layout = .pcapng
            case (0x0A0D_0D0A, 0x4D3C_2B1A): source.lookahead.layout = .pcapngSwapped
            default: break
            }
        } else if standardInput {
            // A stream cannot be read beside libpcap: the format as libpcap read its header (classic pcap 2.x,
            // pcapng 1.x). The old modified pcap formats also say 2.4; their longer record headers make the walk's
            // answers fail its bounds or name wrong bytes: hints only.
            let swapped = pcap_is_swapped(h) == 1
            switch pcap_major_version(h) {
            case 2: source.lookahead.layout = swapped ? .classicSwapped : .classic
            case 1: source.lookahead.layout = swapped ? .pcapngSwapped : .pcapng
            default: break
            }
        }
        return source
    }

    /// Opens a live capture on `interface`.
    public static func openLive(interface: String, options: LiveCaptureOptions = .init()) throws(CaptureError) -> PacketSource {
        var errbuf = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE) + 1)
        guard let h = pcap_create(interface, &errbuf) else { throw CaptureError(.open, "\(interface): " + PacketSource.text(errbuf)) }
        pcap_set_snaplen(h, options.snapLength)
        pcap_set_promisc(h, options.promiscuous ? 1 : 0)
        pcap_set_timeout(h, options.timeoutMilliseconds)
        pcap_set_buffer_size(h, options.bufferSize)
        if options.immediate { pcap_set_immediate_mode(h, 1) }
        let status = pcap_activate(h)
        if status < 0 {
            let message = String(cString: pcap_geterr(h))
            pcap_close(h)
            throw CaptureError(.activate, "\(interface): \(message.isEmpty ? String(cString: pcap_statustostr(status)) : message)")
        }
        let source = try PacketSource(handle: h, buffer: nil, live: true)
        if let f = options.filter { try source.setFilter(f) }
        return source
    }

    /// Compiles and installs a BPF filter.
    public func setFilter(_ expression: String) throws(CaptureError) {
        var program = bpf_program()
        guard pcap_compile(handle, &program, expression, 1, PCAP_NETMASK_UNKNOWN) == 0 else {
            throw CaptureError(.filter, "filter \"\(expression)\": " + String(cString: pcap_geterr(handle)))
        }
        defer { pcap_freecode(&program) }
        guard pcap_setfilter(handle, &program) == 0 else {
            throw CaptureError(.filter, "filter \"\(expression)\": " + String(cString: pcap_geterr(handle)))
        }
    }

    /// The outcome of one `next()` call.
    public enum Next {
        /// A packet: its header and a view of libpcap's buffer valid until the next call.
        case packet(PacketHeader, ByteView)
        /// A live capture's timeout expired with no packet.
        case timeout
        /// End of file, or `breakLoop()` was called.
        case end
    }

    /// Reads the next packet (`pcap_next_ex`). Throws when the file is truncated or the device fails.
    @inline(__always)
    public func next() throws(CaptureError) -> Next {
        var header: UnsafeMutablePointer<pcap_pkthdr>?
        var data: UnsafePointer<UInt8>?
        let status = pcap_next_ex(handle, &header, &data)
        switch status {
        case 1:
            let h = header.unsafelyUnwrapped.pointee
            let caplen = Int(h.caplen)
            let view = ByteView(UnsafeRawBufferPointer(start: data, count: caplen))
            return .packet(PacketHeader(time: PacketTime(seconds: Int64(h.ts.tv_sec), microseconds: Int32(h.ts.tv_usec)),
                                        capturedLength: caplen, wireLength: Int(h.len)), view)
        case 0: return .timeout
        case PCAP_ERROR_BREAK: return .end
        default:
            // libpcap reports a truncated offline file as an error here; EOF is PCAP_ERROR_BREAK (-2).
            throw CaptureError(.read, String(cString: pcap_geterr(handle)))
        }
    }

    /// Reads and passes over `count` packets (a reader that took them another way, `MappedFileReplay`, hands the
    /// rest of the file to libpcap). Throws as `next()` does; false when the input ended first.
    public func skip(_ count: UInt64) throws(CaptureError) -> Bool {
        var left = count
        while left > 0 {
            guard case .packet = try next() else { return false }
            left -= 1
        }
        return true
    }

    /// Reads packets with `pcap_dispatch` until the end of the input, an error, or `consumer.stopRequested`
    /// (asked after each packet unless `consumer.stopsWithinBatch` is false), handing each to `consumer` with a
    /// view of libpcap's buffer valid during the call only (and, with `consumer.lookahead`, the packet that many
    /// places ahead). Every `batch` packets it returns to let the caller do periodic work: the result is the number
    /// of packets read, 0 at the end (or when stopped before any packet). Throws when the file is truncated or
    /// the device fails, after handing on every packet before the failure. One C callback and one method call per
    /// packet, no `Next` value and no closure context to retain (the replay loop goes one step further with its own C
    /// handler: `dispatch(batch:handler:user:)`).
    public func dispatch(batch: Int32, to consumer: PacketConsumer) throws(CaptureError) -> Int {
        var context = DispatchContext(consumer: consumer, handle: handle, lookahead: lookahead)
        let status = withUnsafeMutablePointer(to: &context) { pointer in
            pcap_dispatch(handle, batch, { user, header, data in
                let context = UnsafeMutableRawPointer(user.unsafelyUnwrapped).assumingMemoryBound(to: DispatchContext.self)
                let h = header.unsafelyUnwrapped.pointee
                context.pointee.count &+= 1
                let packetHeader = PacketHeader(time: PacketTime(seconds: Int64(h.ts.tv_sec), microseconds: Int32(h.ts.tv_usec)),
                                                capturedLength: Int(h.caplen), wireLength: Int(h.len))
                let bytes = ByteView(UnsafeRawBufferPointer(start: data, count: Int(h.caplen)))
                let distance = context.pointee.lookaheadDistance
                let ahead = distance > 0 ? context.pointee.lookahead.packet(after: distance) : nil
                // Borrowed, not retained: the consumer outlives the dispatch call.
                let stop = context.pointee.consumer._withUnsafeGuaranteedRef { consumer in
                    if distance > 0 { consumer.consume(packetHeader, bytes, ahead: ahead) } else { consumer.consume(packetHeader, bytes) }
                    return context.pointee.stopsWithinBatch && consumer.stopRequested
                }
                if stop { pcap_breakloop(context.pointee.handle) }
            }, UnsafeMutableRawPointer(pointer).assumingMemoryBound(to: UInt8.self))
        }
        lookahead = context.lookahead
        // libpcap returns 0 when the file ends inside a batch (the packets before were handed on) and -2 after
        // `pcap_breakloop`; either way the count is ours.
        if status == PCAP_ERROR { throw CaptureError(.read, String(cString: pcap_geterr(handle))) }
        return context.count
    }

    /// libpcap's per-packet callback (`pcap_handler`): the user pointer, the record's header and its captured bytes.
    public typealias Handler = pcap_handler

    /// Reads packets with `pcap_dispatch` until `batch` have been read, the input ends or `pcap_breakloop`, handing
    /// each to `handler` with `user` (turn header and bytes into values with `packet(_:_:)`). For a consumer whose
    /// whole per-packet work can then be one C function with everything inlined, no method call in between (the
    /// replay loop's, see `EngineConsumer`). libpcap reports 0 when the file ends inside a batch: the handler counts
    /// the packets itself. Throws when the file is truncated or the device fails, after handing on every packet
    /// before the failure.
    public func dispatch(batch: Int32, handler: Handler, user: UnsafeMutableRawPointer) throws(CaptureError) {
        if pcap_dispatch(handle, batch, handler, user.assumingMemoryBound(to: UInt8.self)) == PCAP_ERROR {
            throw CaptureError(.read, String(cString: pcap_geterr(handle)))
        }
    }

    /// The header and a view of the captured bytes of the record libpcap hands a `Handler` (valid during the call).
    @inlinable @inline(__always)
    public static func packet(_ header: UnsafePointer<pcap_pkthdr>?, _ data: UnsafePointer<UInt8>?) -> (PacketHeader, ByteView) {
        let h = header.unsafelyUnwrapped.pointee
        // libpcap's microseconds are a 32-bit field of the file: in range unless the file is damaged.
        let us = Int32(truncatingIfNeeded: h.ts.tv_usec)
        let time = UInt32(bitPattern: us) < 1_000_000 ? PacketTime(seconds: Int64(h.ts.tv_sec), microsecondsInRange: us)
                                                      : PacketTime(seconds: Int64(h.ts.tv_sec), microseconds: us)
        return (PacketHeader(time: time, capturedLength: Int(h.caplen), wireLength: Int(h.len)),
                ByteView(UnsafeRawBufferPointer(start: data, count: Int(h.caplen))))
    }

    /// The captured bytes of the packet `distance` places after the current one (1: the next), when its record
    /// is already in the file's read buffer; nil otherwise (end of the buffer, live, the old modified formats).
    /// Nothing is copied or consumed: the packet still comes from `next()`. Only a hint source (flow prefetching), so the
    /// bytes are not validated beyond staying inside the buffer; the view is valid until the next `next()`.
    /// Called once per packet with the same distance, it steps one record on from the previous answer instead
    /// of walking `distance` record headers again. (glibc's FILE read pointers are part of its public ABI.)
    @inline(__always)
    public func upcoming(_ distance: Int) -> ByteView? { lookahead.packet(after: distance) }

    /// Asks a blocked `next()` to return `.end` (safe from another thread or a signal handler's helper thread).
    public func breakLoop() { pcap_breakloop(handle) }

    /// `pcap_stats` for a live capture; nil for files.
    public func statistics() -> CaptureStatistics? {
        guard isLive else { return nil }
        var s = pcap_stat()
        guard pcap_stats(handle, &s) == 0 else { return nil }
        return CaptureStatistics(received: UInt64(s.ps_recv), droppedByKernel: UInt64(s.ps_drop), droppedByInterface: UInt64(s.ps_ifdrop))
    }

    /// Non-blocking mode for a live capture (`pcap_setnonblock`): `next()` returns `.timeout` at once when no
    /// packet is ready, so one thread can serve several interfaces with `poll` on their `fileDescriptor`s.
    public func setNonBlocking(_ on: Bool) throws(CaptureError) {
        var errbuf = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE) + 1)
        guard pcap_setnonblock(handle, on ? 1 : 0, &errbuf) == 0 else { throw CaptureError(.activate, PacketSource.text(errbuf)) }
    }

    /// The file descriptor of a live capture (for PACKET_FANOUT); -1 for files.
    public var fileDescriptor: Int32 { pcap_fileno(handle) }

    /// Whether stdio takes a lock around each read of the capture stream (nil: no stream, a live capture).
    public var streamLocksEachRead: Bool? {
        guard let stream = pcap_file(handle) else { return nil }
        return __fsetlocking(stream, Int32(FSETLOCKING_QUERY)) != Int32(FSETLOCKING_BYCALLER)
    }
}
