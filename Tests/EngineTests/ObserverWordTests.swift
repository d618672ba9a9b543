import Testing
import Wire
import Records
import Engine
import Flows

/// An observer whose forwarder notes, for each forward, the flow's serial and the observer word it was handed, then
/// writes a word of its own there (the flow's serial in the high half, how many forwards so far in the low).
private final class WordNoter: EngineObserver {
    var seen: [(serial: UInt64, word: UInt64)] = []
    var forwarder: WordForwarder?
    func flowStarted(_ flow: FlowContext, frame: UInt64, time: PacketTime) {}
    func flowIdentified(_ flow: FlowContext, appProtocol: AppProtocol?, frame: UInt64, time: PacketTime) {}
    func operation(_ op: Records.Operation, flow: FlowContext) {}
    func anomaly(_ a: Anomaly, flow: FlowContext?) {}
    func flowEnded(_ flow: FlowContext, reason: FlowEndReason) {}
    func tick(time: PacketTime) {}
    func finish() {}
    func operationForwarder() -> OperationForwarder? {
        let f = WordForwarder(self)
        forwarder = f
        return f
    }
}

private final class WordForwarder: OperationForwarder {
    unowned let noter: WordNoter
    init(_ noter: WordNoter) { self.noter = noter }
    override func forward(from sink: EventSink, flow: UnsafePointer<FlowContext>, flowSerial: UInt64, flowSlot: Int32,
                          observerWord: UnsafeMutablePointer<UInt64>) {
        noter.seen.append((flowSerial, observerWord.pointee))
        observerWord.pointee = flowSerial << 32 | UInt64(noter.seen.count)
        sink.drainOperations { _ in }
    }
}

/// The engine hands an observer's forwarder the flow's own word (`FlowState.observerWord`): zero for a new flow,
/// then whatever the forwarder last wrote there for that flow, never another flow's, until `clearObserverWords` zeroes
/// them all.
@Test func theForwarderKeepsAWordPerFlow() {
    let engine = Engine()
    let noter = WordNoter()
    engine.observer = noter
    let server: UInt32 = 0x0A00_0001
    let clients: [(address: UInt32, port: UInt16)] = [(0x0A00_0063, 50000), (0x0A00_0064, 50001), (0x0A00_0065, 50002)]
    var next: [UInt32] = [11, 11, 11]
    for c in clients {
        engine.feed(tcpFrame(src: c.address, sport: c.port, dst: server, dport: 502, seq: 10, flags: 0x02), at: 100)
        engine.feed(tcpFrame(src: server, sport: 502, dst: c.address, dport: c.port, seq: 500, ack: 11, flags: 0x12), at: 100)
    }
    // Requests, flows interleaved (0, 1, 2, 0, 1, 2, ...): each delivery forwards one operation.
    func request(_ i: Int, transaction: UInt8) {
        let pdu: [UInt8] = [0, transaction, 0, 0, 0, 6, 1, 3, 0, 0, 0, 1]   // Modbus read holding registers
        engine.feed(tcpFrame(src: clients[i].address, sport: clients[i].port, dst: server, dport: 502, seq: next[i], ack: 501,
                             flags: 0x18, payload: pdu), at: 100)
        next[i] &+= UInt32(pdu.count)
    }
    for round in 0..<3 { for i in clients.indices { request(i, transaction: UInt8(round)) } }
    #expect(noter.seen.count == 9)
    var lastWritten: [UInt64: UInt64] = [:]
    for (n, s) in noter.seen.enumerated() {
        #expect(s.serial != 0)
        #expect(s.word == lastWritten[s.serial, default: 0], "forward \(n) of flow \(s.serial)")
        lastWritten[s.serial] = s.serial << 32 | UInt64(n + 1)
    }
    #expect(Set(noter.seen.map(\.serial)).count == 3)

    // Cleared: each flow's next forward sees 0.
    noter.forwarder?.clearObserverWords()
    let before = noter.seen.count
    for i in clients.indices { request(i, transaction: 9) }
    #expect(noter.seen.count == before + 3)
    for s in noter.seen[before...] { #expect(s.word == 0) }
}
