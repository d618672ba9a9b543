import Testing
import Wire
import Flows
@testable import Engine

/// A packet processed from a `PacketDelayLine` has had the flow prefetch pipeline run for it with the packet that far
/// ahead, as a file's read-ahead gives it: the engine's next packet has its own flow's slot as candidate (five flows in
/// turn, so the packet `prefetchDistance` ahead is of another flow than the one processed with it). Processed as it
/// comes (no packet ahead to hint with), none has a candidate.
@Test(arguments: [false, true])
func heldPacketsGiveTheOldestItsFlowPrefetchHint(delayed: Bool) {
    let engine = Engine()
    let c: UInt32 = 0x0A00_0001, s: UInt32 = 0x0A00_0002
    let flows = 5
    for f in 0..<flows {
        let port = UInt16(40000 + f)
        engine.feed(tcpFrame(src: c, sport: port, dst: s, dport: 8080, seq: 1000, flags: 0x02), at: 1)
        engine.feed(tcpFrame(src: s, sport: 8080, dst: c, dport: port, seq: 5000, ack: 1001, flags: 0x12), at: 1)
        engine.feed(tcpFrame(src: c, sport: port, dst: s, dport: 8080, seq: 1001, ack: 5001, flags: 0x10), at: 1)
    }
    let line = PacketDelayLine(engine: engine, snapshotLength: 65_535)
    var sequences = [UInt32](repeating: 1001, count: flows)
    let data = 40
    for i in 0..<data {
        let f = i % flows
        let frame = tcpFrame(src: c, sport: UInt16(40000 + f), dst: s, dport: 8080, seq: sequences[f], ack: 5001, flags: 0x18,
                             payload: [UInt8](repeating: 0x41, count: 10))
        sequences[f] &+= 10
        ByteView.with(frame) { bytes in
            let time = PacketTime(seconds: 1, microseconds: 0)
            if delayed { line.push(bytes, linkType: 1, time: time, wireLength: frame.count) }
            else { engine.process(bytes, linkType: 1, time: time, wireLength: frame.count) }
        }
    }
    let handshakes = UInt64(3 * flows)
    #expect(engine.statistics.packets == handshakes + UInt64(data - (delayed ? Engine.prefetchDistance : 0)))
    // The next packet to be processed, and the flow it belongs to.
    let nextFlow = Int(engine.packetsProcessed &+ 1 &- handshakes &- 1) % flows
    let candidate = engine.flows.candidate(at: engine.packetsProcessed &+ 1)
    if delayed {
        #expect(candidate >= 0)
        if candidate >= 0 {
            let key = engine.flows.slots[Int(candidate)].key
            #expect([key.lowPort, key.highPort].contains(UInt16(40000 + nextFlow)), "candidate \(key.lowPort)-\(key.highPort)")
        }
    } else {
        #expect(candidate < 0)
    }
    line.drain()
    #expect(engine.statistics.packets == handshakes + UInt64(data))
}
