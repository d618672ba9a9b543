import Glibc
import Capture
import Engine

/// `zonewatch live -i IFACE`: capture from an interface until SIGINT/SIGTERM, then flush and summarise.
enum LiveCommand {
    static let help = """
    usage: zonewatch live -i IFACE [options]

    Captures from a network interface (SPAN/TAP port) until SIGINT or SIGTERM, then ends every flow,
    writes what is left and prints the summary (with libpcap's kernel and interface drop counts).

    options:
      -i, --interface IFACE   interface to capture from (required)
      --filter BPF            capture filter
      --snaplen N             bytes kept per packet; default 65535
      --buffer-size BYTES     kernel ring size; default 67108864
      --no-promisc            do not put the interface in promiscuous mode
      and every replay option (--out, --flows, --alerts, --policy, --output, --max-flows, timeouts)
    """

    static func run(_ args: ArraySlice<String>) throws(UsageError) -> Int32 {
        var a = CommandLineArguments(args)
        if a.flag("-h", "--help") { print(help); return 0 }
        guard let interface = try a.value("-i", "--interface") else { throw UsageError(message: "live needs -i IFACE (see --help)") }
        var capture = LiveCaptureOptions()
        capture.filter = try a.value("--filter")
        if let n = try a.integer("--snaplen") { capture.snapLength = Int32(clamping: n) }
        if let n = try a.integer("--buffer-size") { capture.bufferSize = Int32(clamping: n) }
        capture.promiscuous = !a.flag("--no-promisc")
        let options = try RunOptions(parsing: &a, pduRecords: false)
        _ = try a.finish()
        let source: PacketSource
        do { source = try PacketSource.openLive(interface: interface, options: capture) } catch {
            printError("zonewatch: \(error.message)")
            return error.kind == .filter ? 2 : 1
        }
        let session = try RunSession(options: options)
        installStopHandlers()
        let start = monotonicSeconds()
        var status: Int32 = 0
        if let error = runPacketLoop(source, session: session, showProgress: false) {
            printError("zonewatch: \(interface): \(error.message)")
            status = 1
        }
        if let s = source.statistics() {
            printError("zonewatch: capture: received \(s.received)  dropped by kernel: \(s.droppedByKernel)  dropped by interface: \(s.droppedByInterface)")
        }
        session.finish(wallSeconds: monotonicSeconds() - start, quiet: options.quiet)
        return status
    }
}
