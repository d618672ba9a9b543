/// Windows, thresholds and bounds of the detector; every bound is counted when hit (`DetectionCounters`).
public struct DetectionConfig: Sendable {
    /// Identical alerts within this many seconds of packet time are folded into one summary.
    public var aggregationWindowSeconds = 60
    /// Window of the scan and sweep counters, seconds of packet time.
    public var scanWindowSeconds = 60
    /// Distinct Modbus unit ids / DNP3 addresses one source addresses on one host before ZW-ICS-013.
    public var unitScanThreshold = 8
    /// Distinct hosts one source opens ICS-port flows to before ZW-ICS-014.
    public var hostScanThreshold = 8
    /// Distinct devices (host and unit) one source sends identification requests to before ZW-ICS-012.
    public var identificationDeviceThreshold = 4
    /// Identification requests one source sends to one host before ZW-ICS-012.
    public var identificationRequestThreshold = 32
    /// Flows whose policy verdict is cached (cleared when full). The engine's default live-flow cap: with more
    /// live flows than this the cache is cleared and every verdict recomputed again and again (100,000 plant
    /// flows against the old 65,536 cost the mixed-plant replay with a policy about a fifth of its time).
    public var maximumTrackedFlows = 1 << 18
    /// Open aggregation windows (flushed early when full).
    public var maximumAggregationEntries = 1 << 16
    /// Unknown hosts remembered for "first sight" (forgotten when full, so a host may be reported again).
    public var maximumUnknownHosts = 1 << 16
    /// Keys of the scan and sweep counters (cleared when full).
    public var maximumScanKeys = 1 << 14
    /// Server ports whose flows count towards the ICS host scan (Modbus, DNP3, S7).
    public var icsPorts: [UInt16] = [502, 20000, 102]

    /// The defaults.
    public init() {}
}

/// What the detector has done, per worker; the engine sums them for stats.
public struct DetectionCounters: Sendable, Equatable {
    /// Alerts emitted for a first occurrence (summaries not included).
    public var raised: UInt64 = 0
    /// Summary alerts emitted at the close of an aggregation window.
    public var summaries: UInt64 = 0
    /// Repeats folded into summaries (each appears in some summary's `event.count`).
    public var aggregated: UInt64 = 0
    /// ICS-operation detections not raised because a conduit rule explicitly allows the operation.
    public var suppressedByConduit: UInt64 = 0
    /// Occurrences (first or repeated) per category, indexed like `AlertCategory.allCases`.
    public var perCategory: [UInt64] = Array(repeating: 0, count: 6)
    /// Times a bounded table was full: flow cache, unknown hosts, scan counters, aggregation windows.
    public var flowCacheResets: UInt64 = 0
    public var unknownHostResets: UInt64 = 0
    public var scanTableResets: UInt64 = 0
    public var aggregationOverflows: UInt64 = 0

    /// Creates zeroed counters.
    public init() {}
}
