import Glibc
import Records
import Decode
import Engine
import Flows
import Wire

/// The end-of-run summary on stderr: what was read, found and written, and how fast.
func printSummary(_ s: EngineStatistics, wallSeconds: Double, extra: [String] = []) {
    var lines: [String] = []
    let pps = wallSeconds > 0 ? Double(s.packets) / wallSeconds : 0
    lines.append("packets: \(s.packets)  bytes: \(s.bytes)  time: \(formatted(wallSeconds, 3)) s  rate: \(formatted(pps / 1e6, 3)) Mpps")
    var flowLine = "flows: \(s.flowsCreated)"
    for (i, n) in s.flowsEnded.enumerated() where n > 0 { flowLine += "  \(FlowEndReason.allCases[i].name): \(n)" }
    lines.append(flowLine)
    if s.clockSteps > 0 {
        lines.append("clock steps (packet time back more than \(PacketTime.clockStepSeconds) s): \(s.clockSteps) (every live flow ended at each: clock_step)")
    }
    var pduLine = "pdus:"
    for p in AppProtocol.allCases { pduLine += "  \(p.name): \(s.pdus[Int(p.rawValue)])" }
    lines.append(pduLine)
    lines.append("operations: \(s.operations)  anomalies: \(s.anomalies)\(s.anomaliesNotLogged > 0 ? " (\(s.anomaliesNotLogged) not logged: per-kind log bound)" : "")  alerts: \(s.alerts)")
    var skipped = "not decoded: \(s.decodeFailureTotal)  non-ip: \(s.nonIPPackets)  truncated by snaplen: \(s.truncatedPackets)"
    for f in DecodeFailure.allCases where s.decodeFailures[Int(f.rawValue)] > 0 { skipped += "  \(f.name): \(s.decodeFailures[Int(f.rawValue)])" }
    lines.append(skipped)
    if s.ipFragments > 0 {
        lines.append("ip fragments: \(s.ipFragments)  datagrams reassembled: \(s.ipDatagramsReassembled)"
                     + (s.ipDatagramsCutByCapture > 0 ? "  incomplete when the capture ended: \(s.ipDatagramsCutByCapture)" : "")
                     + (s.ipFragmentsCapturedTwice > 0 ? "  copies of a completed datagram's fragments: \(s.ipFragmentsCapturedTwice)" : ""))
    }
    if s.badChecksums > 0 || s.checksumOffloadedSides > 0 {
        lines.append("wrong checksums (dropped, as their receivers drop them): \(s.badChecksums)"
                     + "  flow sides taken as offloaded (not verified): \(s.checksumOffloadedSides)")
    }
    if s.udpDatagramsCapturedTwice > 0 {
        lines.append("udp datagrams captured twice (mirrored twice; the copy not dissected): \(s.udpDatagramsCapturedTwice)")
    }
    lines.append("tcp gaps: \(s.streamGaps) (\(s.streamGapBytes) bytes)  reassembly overflows: \(s.carryOverflows)"
                 + (s.messagesCutByCapture > 0 ? "  messages cut by the capture: \(s.messagesCutByCapture) (\(s.messagesCutByCaptureBytes) bytes)" : ""))
    lines.append(contentsOf: extra)
    for l in lines { printError("zonewatch: \(l)") }
}

/// A number with `digits` decimals (no Foundation formatting on purpose: tiny and predictable).
func formatted(_ v: Double, _ digits: Int) -> String {
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let n = Int64((v * scale).rounded())
    let whole = n / Int64(scale), frac = abs(n % Int64(scale))
    var f = String(frac)
    while f.count < digits { f = "0" + f }
    return digits > 0 ? "\(whole).\(f)" : "\(whole)"
}
