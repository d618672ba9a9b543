import Glibc
import Records

/// `zonewatch dissect FILE`: one JSON line per application PDU on stdout, for forensics and conformance.
enum DissectCommand {
    static let help = """
    usage: zonewatch dissect FILE [options]

    Prints one JSON line per application PDU (Modbus ADU, DNP3 application fragment or link frame,
    S7comm PDU or COTP connection PDU) to standard output:
      {"@timestamp": ..., "frame": N, "source": {...}, "destination": {...},
       "network": {"transport": "tcp", "protocol": "modbus", "community_id": "1:..."}, "modbus": {...}}
    `frame` is the 1-based number of the packet that completed the PDU (tshark's frame.number).

    options:
      --anomalies          also print anomaly records (one per line, "anomaly" object)
      --max-flows N        live flows at most; default 262144
      --checksums MODE     auto (default), on or off: as replay's
      --ignore-vlans       key flows without their VLAN ID, as replay's
    """

    static func run(_ args: ArraySlice<String>) throws(UsageError) -> Int32 {
        var a = CommandLineArguments(args)
        if a.flag("-h", "--help") { print(help); return 0 }
        let anomalies = a.flag("--anomalies")
        var options = try RunOptions(parsing: &a, pduRecords: true)
        let files = try a.finish()
        guard files.count == 1 else { throw UsageError(message: "dissect takes exactly one capture file (see --help)") }
        options.stdoutKinds = anomalies ? [.pdu, .anomaly] : [.pdu]
        options.flowRecords = false
        options.quiet = true
        return try ReplayCommand.execute(files: files, options: options, detection: false)
    }
}
