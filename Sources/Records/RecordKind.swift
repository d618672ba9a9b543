/// The kinds of JSON-lines record ZoneWatch writes; in `replay --out DIR` each has its own file.
public enum RecordKind: Int, CaseIterable, Sendable {
    case flow, modbus, dnp3, s7comm, alert, anomaly, stats
    /// One line per application PDU (`zonewatch dissect`), not written to a log folder.
    case pdu

    /// The log file name in `--out DIR`.
    public var fileName: String {
        switch self {
        case .flow: "flows.jsonl"
        case .modbus: "modbus.jsonl"
        case .dnp3: "dnp3.jsonl"
        case .s7comm: "s7comm.jsonl"
        case .alert: "alerts.jsonl"
        case .anomaly: "anomalies.jsonl"
        case .stats: "stats.jsonl"
        case .pdu: "pdu.jsonl"
        }
    }
}
