#if canImport(Glibc)
import Glibc
#endif
import Testing
import Wire
import Records
@testable import Engine

/// A dissector state as large as `Padding` makes it, remembering one number (for the pool's layout and growth).
private struct SizedState<Padding>: AppDissector {
    static var appProtocol: AppProtocol { .modbus }
    static func isWellKnownPort(_ port: UInt16) -> Bool { false }
    static var maximumPDUSize: Int { 1 }
    static func probe(_ bytes: ByteView, side: FlowSide, transport: Transport) -> ProbeVerdict { .reject }
    var mark = 0
    var padding: Padding? = nil
    init() {}
    mutating func consume(_ bytes: ByteView, side: FlowSide, sink: EventSink) -> Int { bytes.count }
    mutating func gap(side: FlowSide, length: Int, sink: EventSink) {}
    mutating func finish(sink: EventSink) {}
}

/// States begin on a cache-line boundary (or, for small ones, never straddle two lines), so that the lines a packet
/// reads at a state's start are as few as its fields need. (232 bytes was the Modbus state's size before it shrank to 128;
/// DNP3's is 32.)
@Test func dissectorStatesAreLineAligned() {
    typealias Words30 = (Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int)
    func check<D>(_: D.Type) {
        let stride = AlignedStates<D>.stride
        #expect(stride >= MemoryLayout<D>.stride)
        #expect(stride % 64 == 0 || 64 % stride == 0)
        let states = AlignedStates<D>(capacity: 8)
        defer { free(states.base) }
        for i in 0..<8 {
            let address = Int(bitPattern: UnsafeRawPointer(states.pointer(i)))
            #expect(address % min(64, stride) == 0)
            #expect(address % 64 + MemoryLayout<D>.size <= max(64, stride))
        }
    }
    check(SizedState<Words30>.self); check(SizedState<(Int, UInt8)>.self); check(SizedState<Never>.self); check(UInt8.self)
    #expect(AlignedStates<SizedState<Words30>>.stride == 256)
    #expect(AlignedStates<(Int, Int, UInt8)>.stride == 32)
}

/// A pool hands out states that hold what was put there, across growth, and fresh ones after release.
@Test func poolStatesSurviveGrowth() {
    let pool = DissectorPool<SizedState<(Int, Int, Int)>>()
    var slots: [Int32] = []
    for i in 0..<100 {
        let s = pool.allocate()
        // Contexts start unbuilt: no flow has serial 0 (the engine builds one when a delivery first needs it).
        #expect(pool.contexts[Int(s)].flowSerial == 0)
        pool.states[Int(s)].mark = 1000 + i
        slots.append(s)
    }
    for (i, s) in slots.enumerated() { #expect(pool.states[Int(s)].mark == 1000 + i) }
    pool.release(slots[7])
    let again = pool.allocate()
    #expect(again == slots[7])
    #expect(pool.states[Int(again)].mark == 0)
    #expect(pool.live == 100)
}

/// An observer's per-operation check reads a context's `flowSerial` and `flowSlot` alone (when an engine does not hand
/// them over): at the start of a 16-aligned context they share one cache line.
@Test func flowContextKeysLeadTheContext() {
    let serial = MemoryLayout<FlowContext>.offset(of: \FlowContext.flowSerial)!
    let slot = MemoryLayout<FlowContext>.offset(of: \FlowContext.flowSlot)!
    #expect(max(serial + 8, slot + 4) <= 16)
}

/// Something a dissector state may hold by reference.
private final class Token {}

/// A state holding a reference (for what `release` lets go).
private struct HoldingState: AppDissector {
    static var appProtocol: AppProtocol { .dnp3 }
    static func isWellKnownPort(_ port: UInt16) -> Bool { false }
    static var maximumPDUSize: Int { 1 }
    static func probe(_ bytes: ByteView, side: FlowSide, transport: Transport) -> ProbeVerdict { .reject }
    var mark = 0
    var token: Token?
    init() {}
    mutating func consume(_ bytes: ByteView, side: FlowSide, sink: EventSink) -> Int { bytes.count }
    mutating func gap(side: FlowSide, length: Int, sink: EventSink) {}
    mutating func finish(sink: EventSink) {}
}

/// A pool asked for fewer than 16 states holds 16 before it grows (its blocks were sized by the request, so the
/// states past it were written beyond them); released slots come back last released first and fresh, through
/// growth, and a released state lets go of what it held at once.
@Test func poolReusesReleasedSlotsFresh() {
    let pool = DissectorPool<HoldingState>(capacity: 2)
    weak var held: Token?
    var slots: [Int32] = []
    for i in 0..<40 {
        let s = pool.allocate()
        #expect(s == Int32(i))
        pool.states[Int(s)].mark = i + 1
        slots.append(s)
    }
    do {
        let token = Token()
        held = token
        pool.states[Int(slots[3])].token = token
    }
    #expect(held != nil)
    pool.release(slots[3]); pool.release(slots[30]); pool.release(slots[9])
    #expect(held == nil)
    #expect(pool.live == 37)
    #expect(pool.allocate() == slots[9])
    #expect(pool.allocate() == slots[30])
    let third = pool.allocate()
    #expect(third == slots[3])
    #expect(pool.states[Int(third)].mark == 0 && pool.states[Int(third)].token == nil)
    #expect(pool.allocate() == 40)   // the free list is empty: a new slot
    for (i, s) in slots.enumerated() where ![3, 9, 30].contains(i) { #expect(pool.states[Int(s)].mark == i + 1) }
}

/// `recordsEnabled` (the dissectors' one-load test) follows both record flags, however they are set; the scratch
/// block is aligned and the same on every call.
@Test func sinkRecordsFlagFollowsBothKinds() {
    let sink = EventSink()
    #expect(!sink.recordsEnabled)
    sink.pduRecordsEnabled = true
    #expect(sink.recordsEnabled)
    sink.transactionRecordsEnabled = true
    sink.pduRecordsEnabled = false
    #expect(sink.recordsEnabled)
    sink.transactionRecordsEnabled.toggle()
    #expect(!sink.recordsEnabled)
    #expect(Int(bitPattern: sink.scratch) % 16 == 0 && EventSink.scratchBytes >= 256)
}
