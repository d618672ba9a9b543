import Glibc
import Capture
import Engine
import Records
import Appliance

/// `zonewatch replay FILE... [--out DIR | --flows -] ...`: forensics over capture files.
enum ReplayCommand {
    static let help = """
    usage: zonewatch replay FILE... [options]

    Replays pcap/pcapng captures (`-` reads standard input) through decoding, flows, TCP reassembly,
    the Modbus/DNP3/S7comm dissectors and (with --policy) the zone/conduit policy. Records carry packet
    time, so the same input always gives the same output. Several files are read as one stream, in order.

    options:
      --out DIR            write one JSON-lines log per record type into DIR: flows.jsonl, modbus.jsonl,
                           dnp3.jsonl, s7comm.jsonl, alerts.jsonl, anomalies.jsonl
      --flows -            write flow records to standard output
      --alerts -           write alerts to standard output (ECS JSON lines)
      --policy FILE        check traffic against a zone/conduit policy (YAML)
      --output URL         deliver alerts to a SIEM (repeatable): syslog+udp://host:514?format=cef,
                           syslog+tcp://host:601?format=leef, syslog+tls://host:6514?format=cef&ca=FILE,
                           file:///dir?format=ecs, - (stdout, ECS)
      --max-flows N        live flows at most (least recently seen evicted, counted); default 262144
      --tcp-timeout S      idle timeout of TCP flows in seconds of packet time; default 600
      --udp-timeout S      idle timeout of UDP and other flows; default 120
      --checksums MODE     verify IP, TCP and UDP checksums of the flows being dissected and drop a
                           packet with a wrong one, as its receiver does (so a forged copy cannot show
                           the monitor bytes the receiver never took): auto (default: a flow side whose
                           first packet is wrong is taken as captured on a host offloading checksums
                           and not verified), on (every wrong one dropped: SPAN ports, TAPs), off
      --ignore-vlans       key flows without their VLAN ID, so that a conversation whose two directions
                           the SPAN port delivers tagged differently (a trunk's and an access port's
                           copies) is one flow, not two halves; records then carry no VLAN
      --workers N          analyse on N threads (flows spread by a symmetric hash, one engine each,
                           detection merged back into packet order: the same records and alerts as
                           one worker, up to line order; each worker reads a capture file itself,
                           stdin is read by one thread for all); default 1
      --quiet              no summary on stderr

    exit status: 0 success, 1 runtime failure, 2 usage or input error (missing file, not a capture,
    unsupported link type, truncated file: the part before the damage is still processed and written).
    """

    static func run(_ args: ArraySlice<String>) throws(UsageError) -> Int32 {
        var a = CommandLineArguments(args)
        if a.flag("-h", "--help") { print(help); return 0 }
        var options = try RunOptions(parsing: &a, pduRecords: false)
        let files = try a.finish()
        guard !files.isEmpty else { throw UsageError(message: "replay needs at least one capture file (see --help)") }
        options.transactionRecords = options.outDirectory != nil
        return try execute(files: files, options: options)
    }

    /// Opens each file in turn and runs it through one engine; prints the summary.
    static func execute(files: [String], options: RunOptions, detection: Bool = true) throws(UsageError) -> Int32 {
        let session = try RunSession(options: options, detection: detection, offline: true)
        let pipeline = session.makePipeline(blocking: true)
        pipeline?.start()
        var status: Int32 = 0
        var opened = 0
        let start = monotonicSeconds()
        installStopHandlers()
        for file in files {
            let source: PacketSource
            do { source = try PacketSource.openFile(file) } catch {
                printError("zonewatch: \(error.message)")
                status = 2
                continue
            }
            opened += 1
            let big = file != "-" && fileSize(file) > 64 << 20
            let progress = big && isatty(2) != 0 && !options.quiet
            let failure = pipeline.map { runParallelPacketLoop(source, path: file, pipeline: $0, showProgress: progress) }
                ?? runPacketLoop(source, path: file, session: session, showProgress: progress)
            if let error = failure {
                printError("\(big ? "\n" : "")zonewatch: \(file): \(error.message) (records up to the damage were written)")
                status = 2
            }
        }
        session.finish(wallSeconds: monotonicSeconds() - start, quiet: options.quiet || opened == 0, parallel: pipeline)
        // Everything is written, flushed and shut down, and the process exits next: its tables (every flow's state
        // and dissector state, the workers' engines) are left to the kernel rather than released one object at a
        // time (~1.5 % of the instructions of a 2,500,000-packet replay with 100,000 flows).
        _ = Unmanaged.passRetained(session)
        if let pipeline { _ = Unmanaged.passRetained(pipeline) }
        if session.records.failed { printError("zonewatch: writing records failed (disk full or closed pipe)"); return 1 }
        return status
    }

    static func fileSize(_ path: String) -> Int {
        var st = stat()
        return stat(path, &st) == 0 ? Int(st.st_size) : 0
    }
}
