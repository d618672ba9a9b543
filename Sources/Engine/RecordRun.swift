import CPrefetch

/// A stretch of a classic pcap file held in memory whose records `Engine.processRecords` takes in one loop: the
/// record to process next, and the offset of the one the walk checks next (`Engine.prefetchDistance` records on: its
/// packet is each packet's prefetch hint). Every record at or before `limit` lies wholly within the file whatever its
/// header says (the caller sees to that), so only the header's own fields are checked.
public struct RecordRun {
    /// The next record to process (its 16-byte header; checked when it was walked).
    public var next: UnsafeRawPointer
    /// File offset of the next record to walk (check and take as a hint).
    public var walkOffset: Int
    /// The file's first byte.
    public let base: UnsafeRawPointer
    /// The last offset at which a record may be walked in this run.
    public let limit: Int
    /// The file's snapshot length, and the bound of a record's time fraction (10^6 or 10^9).
    public let snapshot: Int
    public let fractionLimit: UInt32

    /// A run from `next`, walking on at `walkOffset`, up to `limit`.
    public init(next: UnsafeRawPointer, walkOffset: Int, base: UnsafeRawPointer, limit: Int, snapshot: Int, fractionLimit: UInt32) {
        self.next = next; self.walkOffset = walkOffset; self.base = base; self.limit = limit
        self.snapshot = snapshot; self.fractionLimit = fractionLimit
    }

    /// The header of the record at `offset` when libpcap would hand it on unchanged (some bytes captured, no more than
    /// the snapshot length, a fraction below its bound, seconds below 2^31), with the file read ahead of it; nil for
    /// one libpcap must handle. For an offset at which the record lies within the file whatever its header says.
    @inline(__always)
    public static func checkedRecord(at offset: Int, base: UnsafeRawPointer, snapshot: Int, fractionLimit: UInt32) -> UnsafeRawPointer? {
        let p = base + offset
        let caplen = Int(p.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
        guard UInt(bitPattern: caplen &- 1) < UInt(snapshot), p.loadUnaligned(fromByteOffset: 4, as: UInt32.self) < fractionLimit,
              p.loadUnaligned(as: UInt32.self) < 0x8000_0000 else { return nil }
        zw_prefetch_read(p + RecordRun.readAhead)
        zw_prefetch_read(p + RecordRun.readAhead + 64)
        return p
    }

    /// How far ahead of the record walked the file is read into cache.
    public static let readAhead = 6 << 10

    /// The time fraction of the record at `header` in microseconds (libpcap scales nanoseconds down).
    @inline(__always)
    public static func microseconds(_ header: UnsafeRawPointer, nanoseconds: Bool) -> UInt32 {
        let f = header.loadUnaligned(fromByteOffset: 4, as: UInt32.self)
        return nanoseconds ? f / 1000 : f
    }
}

extension Engine {
    /// Up to `count` records of `run`, each with the packet walked `prefetchDistance` records on as its hint (unless
    /// `hints` is false: `ZONEWATCH_NO_PREFETCH`) as the walk steps one record a packet; returns how many, fewer when
    /// the walk reaches `limit` or a record libpcap must handle (then not walked). `processRecord` for each, with the
    /// packet step inlined into the loop: as a call per record it cost ~27 instructions a packet (its frame, and the
    /// loop's values saved and reloaded around it), 3.1 % of the 100,000-flow plant's.
    public func processRecords(_ run: inout RecordRun, count: Int, nanoseconds: Bool, hints: Bool, linkType: Int32) -> Int {
        // Written out for each unit of the time fraction and with or without hints (generic specialisations, so that
        // each is its own loop): testing the two per record cost ~8 instructions.
        switch (nanoseconds, hints) {
        case (false, true): return recordLoop(&run, count: count, linkType: linkType, MicrosecondsHinted.self)
        case (true, true): return recordLoop(&run, count: count, linkType: linkType, NanosecondsHinted.self)
        case (false, false): return recordLoop(&run, count: count, linkType: linkType, MicrosecondsUnhinted.self)
        case (true, false): return recordLoop(&run, count: count, linkType: linkType, NanosecondsUnhinted.self)
        }
    }

    private func recordLoop<Mode: RecordLoopMode>(_ run: inout RecordRun, count: Int, linkType: Int32, _: Mode.Type) -> Int {
        var r = run
        var taken = 0
        while taken < count && r.walkOffset <= r.limit,
              let a = RecordRun.checkedRecord(at: r.walkOffset, base: r.base, snapshot: r.snapshot, fractionLimit: r.fractionLimit) {
            r.walkOffset &+= 16 &+ Int(a.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
            let h = r.next
            r.next = h + (16 &+ Int(h.loadUnaligned(fromByteOffset: 8, as: UInt32.self)))
            taken &+= 1
            recordStep(h, microseconds: RecordRun.microseconds(h, nanoseconds: Mode.nanoseconds), ahead: Mode.hints ? a : nil,
                       linkType: linkType, frame: 0)
        }
        run = r
        return taken
    }
}

/// The two settings `Engine.processRecords` writes its loop out for, as types (a generic loop is specialised for each).
private protocol RecordLoopMode { static var nanoseconds: Bool { get }; static var hints: Bool { get } }
private enum MicrosecondsHinted: RecordLoopMode { static var nanoseconds: Bool { false }; static var hints: Bool { true } }
private enum NanosecondsHinted: RecordLoopMode { static var nanoseconds: Bool { true }; static var hints: Bool { true } }
private enum MicrosecondsUnhinted: RecordLoopMode { static var nanoseconds: Bool { false }; static var hints: Bool { false } }
private enum NanosecondsUnhinted: RecordLoopMode { static var nanoseconds: Bool { true }; static var hints: Bool { false } }
