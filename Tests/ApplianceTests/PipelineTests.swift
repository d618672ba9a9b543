import Foundation
import Testing
import Policy
import Synchronization
import Wire
import Records
import Decode
import Flows
import Engine
import Capture
import Detection
@testable import Appliance

/// The multi-worker pipeline: rings, dispatch, event merge, and the same records and alerts as one engine.
@Suite struct PipelineTests {
    // MARK: - Ring

    @Test func ringKeepsOrderAcrossWrapAndWaitsWhenFull() async throws {
        let ring = PacketRing(bytes: 1 << 20)
        let messages = 20_000
        // Sizes chosen so that messages straddle the end of the buffer many times.
        @Sendable func size(_ i: Int) -> Int { (i * 7919) % 1500 + 1 }
        let producer = WorkerThread(name: "test-producer") {
            var buffer = [UInt8](repeating: 0, count: 1600)
            for i in 0..<messages {
                for j in 0..<size(i) { buffer[j] = UInt8(truncatingIfNeeded: i &+ j) }
                let h = RingMessageHeader(kind: RingMessageKind.packet.rawValue, linkType: 1, key: UInt64(i + 1), frame: UInt64(i + 1),
                                          time: PacketTime(seconds: Int64(i), microseconds: 0), capturedLength: 0, wireLength: UInt32(size(i)))
                let ok = buffer.withUnsafeBytes { ring.push(h, payload: UnsafeRawBufferPointer(rebasing: $0[0..<size(i)]), block: true) }
                precondition(ok)
            }
        }
        var received = 0
        var bad = 0
        let deadline = Date().addingTimeInterval(60)
        while received < messages && Date() < deadline {
            guard let (h, payload) = ring.peek() else { ring.waitForMessage(); continue }
            let i = received
            if h.key != UInt64(i + 1) || payload.count != size(i) || Int(h.wireLength) != size(i) { bad += 1 }
            for j in stride(from: 0, to: payload.count, by: 97) where payload[j] != UInt8(truncatingIfNeeded: i &+ j) { bad += 1 }
            ring.release()
            received += 1
        }
        producer.join()
        #expect(received == messages)
        #expect(bad == 0)
        #expect(ring.isDrained)
    }

    @Test func aFullRingRefusesWithoutBlockingInLiveMode() {
        let ring = PacketRing(bytes: 1 << 20)
        let payload = [UInt8](repeating: 0xAB, count: 60_000)
        var accepted = 0
        for i in 0..<100 {
            let h = RingMessageHeader(kind: RingMessageKind.packet.rawValue, linkType: 1, key: UInt64(i), frame: UInt64(i),
                                      time: .zero, capturedLength: 0, wireLength: 60_000)
            if payload.withUnsafeBytes({ ring.push(h, payload: $0, block: false) }) { accepted += 1 }
        }
        // 1 MiB holds 17 messages of 60,040 bytes (+ header): the rest are refused, not queued.
        #expect(accepted == (1 << 20) / (60_000 + PacketRing.headerSize))
        var n = 0
        while ring.peek() != nil { ring.release(); n += 1 }
        #expect(n == accepted)
    }

    @Test(arguments: [1, 3, 8])
    func upcomingPacketNamesThePacketMessagesAhead(distance: Int) {
        // Single-threaded: push a batch (packets with some clock messages between them, sizes that wrap the
        // buffer), then consume it, asking at each packet for the one `distance` packets ahead.
        let ring = PacketRing(bytes: 1 << 20)
        var expected: [Int] = []   // per packet message, in order: its size
        var bad = 0, answered = 0, packetsSeen = 0
        for round in 0..<6 {
            var sizes: [Int] = []
            for i in 0..<120 {
                let n = (round * 131 + i * 7919) % 9000 + 1
                let kind: RingMessageKind = i % 11 == 5 ? .advance : .packet
                let bytes = [UInt8](repeating: UInt8(truncatingIfNeeded: n), count: kind == .packet ? n : 0)
                let h = RingMessageHeader(kind: kind.rawValue, linkType: 1, key: 0, frame: 0, time: .zero, capturedLength: 0, wireLength: UInt32(n))
                _ = bytes.withUnsafeBytes { ring.push(h, payload: $0, block: false) }
                if kind == .packet { sizes.append(n) }
            }
            expected = sizes
            var index = 0
            while let (h, _) = ring.peek() {
                if h.kind == RingMessageKind.packet.rawValue {
                    packetsSeen += 1
                    if let ahead = ring.upcomingPacket(distance) {
                        answered += 1
                        let want = index + distance < expected.count ? expected[index + distance] : -1
                        if ahead.count != want || ahead.first != UInt8(truncatingIfNeeded: want) { bad += 1 }
                    } else if index + distance < expected.count {
                        bad += 1   // published, so it must be found
                    }
                    index += 1
                }
                ring.release()
            }
        }
        #expect(bad == 0)
        #expect(answered == packetsSeen - 6 * distance)
    }

    // MARK: - Dispatch

    @Test func bothDirectionsOfAFlowGoToOneWorkerAndFlowsSpreadEvenly() throws {
        var perWorker = [Int](repeating: 0, count: 4)
        for i in 0..<4000 {
            let a = ipv4(10, 0, UInt8(i % 200), UInt8(i % 251)), b = ipv4(10, 1, 0, UInt8(i % 7))
            let sport = UInt16(40_000 + i), dport: UInt16 = 502
            let forward = tcpFrame(src: a, sport: sport, dst: b, dport: dport, seq: 1, flags: 0x02)
            let backward = tcpFrame(src: b, sport: dport, dst: a, dport: sport, seq: 9, ack: 2, flags: 0x12)
            for n in 2...4 {
                let w1 = forward.withUnsafeBytes { FlowDispatch.worker(for: ByteView($0), linkType: 1, workers: n, key: FlowDispatch.replayKey) }
                let w2 = backward.withUnsafeBytes { FlowDispatch.worker(for: ByteView($0), linkType: 1, workers: n, key: FlowDispatch.replayKey) }
                #expect(w1 == w2)
                #expect((0..<n).contains(w1))
                if n == 4 { perWorker[w1] += 1 }
            }
        }
        // 4000 flows over 4 workers: each within 15% of 1000.
        #expect(perWorker.allSatisfy { $0 > 850 && $0 < 1150 }, "\(perWorker)")
    }

    @Test func undecodablePacketsGoToWorkerZero() {
        let junk: [UInt8] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x08, 0x00, 0x45]
        #expect(junk.withUnsafeBytes { FlowDispatch.worker(for: ByteView($0), linkType: 1, workers: 3, key: FlowDispatch.replayKey) } == 0)
        let arp = [UInt8](repeating: 0xFF, count: 12) + [0x08, 0x06] + [UInt8](repeating: 0, count: 28)
        #expect(arp.withUnsafeBytes { FlowDispatch.worker(for: ByteView($0), linkType: 1, workers: 3, key: FlowDispatch.replayKey) } == 0)
    }

    /// Flows a sender chose so that one key sends them all to one worker spread over the workers under another key,
    /// and so do flows that the earlier unkeyed fold sent to one worker whatever they were (the same exclusive or of
    /// the addresses and of the ports: a spoofed flood to as many destinations as sources). A live capture's key is
    /// its own secret (`liveCapturesDispatchBySecretKeysAndReplaysByOne`), so a flood cannot fill one worker's ring.
    @Test func aSenderCannotSteerItsFlowsToOneWorker() {
        func worker(_ frame: [UInt8], _ key: FlowHashKey) -> Int {
            frame.withUnsafeBytes { FlowDispatch.worker(for: ByteView($0), linkType: 1, workers: 2, key: key) }
        }
        let known = FlowHashKey(value: 0x9E37_79B9_7F4A_7C15), secret = FlowHashKey(value: 0x6A09_E667_F3BC_C908)
        // 1,000 flows from one host to one PLC, their source ports chosen for worker 0 under `known`.
        let chosen = (UInt16(1024)...UInt16.max).lazy
            .map { tcpFrame(src: ipv4(10, 0, 0, 66), sport: $0, dst: ipv4(10, 1, 0, 2), dport: 502, seq: 1, flags: 0x02) }
            .filter { worker($0, known) == 0 }.prefix(1000)
        #expect(chosen.count == 1000)
        let chosenOnZero = chosen.filter { worker($0, secret) == 0 }.count
        #expect(chosenOnZero > 400 && chosenOnZero < 600, "\(chosenOnZero) of 1,000 chosen flows on worker 0")
        // 1,000 flows whose addresses' and ports' exclusive ors are all alike (source s, destination s ^ 0x00FF_0000).
        let folded = (0..<1000).map { i -> [UInt8] in
            let source = ipv4(10, 0, UInt8(i >> 8), UInt8(i & 0xFF))
            return tcpFrame(src: source, sport: 40_000, dst: source ^ 0x00FF_0000, dport: 502, seq: 1, flags: 0x02)
        }
        for key in [FlowDispatch.replayKey, secret] {
            let onZero = folded.filter { worker($0, key) == 0 }.count
            #expect(onZero > 400 && onZero < 600, "\(onZero) of 1,000 folded-alike flows on worker 0")
        }
    }

    /// A live capture (a pipeline that drops rather than waits) draws its dispatch key at random; every replay uses
    /// `FlowDispatch.replayKey`, so the same input is split alike every time.
    @Test func liveCapturesDispatchBySecretKeysAndReplaysByOne() {
        func pipeline(blocking: Bool) -> ParallelPipeline {
            var settings = ParallelPipeline.Settings(workers: 2)
            settings.blocking = blocking
            settings.ringBytes = 1 << 16
            return ParallelPipeline(settings: settings, makeEngine: { _ in Engine(configuration: engineConfiguration()) },
                                    observer: nil, alertSink: EventSink(), detector: nil, write: { _, _ in })
        }
        let replays = (pipeline(blocking: true), pipeline(blocking: true))
        #expect(replays.0.dispatchKey.value == FlowDispatch.replayKey.value && replays.1.dispatchKey.value == FlowDispatch.replayKey.value)
        let live = (pipeline(blocking: false), pipeline(blocking: false))
        #expect(live.0.dispatchKey.value != live.1.dispatchKey.value)
        #expect(live.0.dispatchKey.value != FlowDispatch.replayKey.value)
    }

    /// The dispatch's shortcut (`commonShapeHash`, which the owner pass's walk uses alone) picks the worker the decoder
    /// would: for frames of the common shape and for every field and length around its tests, untagged, tagged and
    /// cooked.
    @Test func theCommonShapeHashChoosesTheDecodersWorker() {
        let tcp = tcpFrame(src: ipv4(10, 0, 0, 1), sport: 40_000, dst: ipv4(10, 1, 0, 2), dport: 502, seq: 1, flags: 0x18,
                           payload: [UInt8](repeating: 7, count: 12))
        var udp = tcp
        udp[23] = 17
        udp[38] = 0; udp[39] = UInt8(tcp.count - 34)   // UDP length
        var icmp = tcp
        icmp[23] = 1
        var frames: [[UInt8]] = []
        for base in [tcp, udp, icmp] {
            for n in 0...base.count { frames.append(Array(base[..<n])) }
            for total in [0, 19, 20, 21, 27, 28, 29, 33, 39, 40, 41, 45, 51, 52, 60, base.count - 14, base.count - 13, 1500] {
                var f = base
                f[16] = UInt8(total >> 8); f[17] = UInt8(total & 0xFF)
                frames.append(f)
                frames.append(Array(f[..<min(f.count, 54)]))
            }
            for offset in 0..<16 {
                var f = base
                f[46] = UInt8(offset << 4)
                frames.append(f)
            }
            for udpLength in [0, 7, 8, 9, 500] {
                var f = base
                f[38] = UInt8(udpLength >> 8); f[39] = UInt8(udpLength & 0xFF)
                frames.append(f)
            }
            for (at, value) in [(12, 0x86), (13, 0x06), (14, 0x44), (14, 0x46), (14, 0x55), (20, 0x20), (20, 0x40), (20, 0x80), (21, 0x01), (23, 0), (23, 2), (23, 58)] {
                var f = base
                f[at] = UInt8(value)
                frames.append(f)
            }
        }
        // A UDP packet to an overlay tunnel's port (VXLAN, Geneve) is the flow of the frame it carries, which its
        // outer addresses and ports do not name (the two directions come from different tunnel endpoints): the
        // shortcuts must leave it to the decoder. Every prefix, and an overlay header that carries nothing.
        for (port, header) in [(4789, [0x08, 0, 0, 0, 0, 0, 1, 0]), (6081, [0, 0, 0x65, 0x58, 0, 0, 1, 0]),
                               (4789, [0x00, 0, 0, 0, 0, 0, 1, 0])] as [(UInt16, [UInt8])] {
            let udpLength = 8 + header.count + tcp.count, total = 20 + udpLength
            let outer: [UInt8] = [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00,
                                  0x45, 0, UInt8(total >> 8), UInt8(total & 0xFF), 0, 1, 0x40, 0, 64, 17, 0, 0,
                                  172, 31, 0, 10, 172, 31, 0, 20,
                                  0xC0, 0x01, UInt8(port >> 8), UInt8(port & 0xFF), UInt8(udpLength >> 8), UInt8(udpLength & 0xFF), 0, 0]
            let f = outer + header + tcp
            for n in 0...f.count { frames.append(Array(f[..<n])) }
        }
        // The same frames with one 802.1Q tag (priority bits set), and as Linux cooked captures' (SLL, SLL2): the
        // uncommon shapes' shortcut (`uncommonShapeHash`) must pick the decoder's worker too.
        var shaped: [(frame: [UInt8], linkType: Int32)] = frames.map { ($0, 1) }
        for f in frames where f.count >= 14 {
            shaped.append((Array(f[..<12]) + [0x81, 0x00, 0xA0, 0x05] + Array(f[12...]), 1))
            shaped.append(([0, 0, 0, 1, 0, 6] + Array(f[6..<12]) + [0, 0] + Array(f[12...]), PacketDecoder.linuxSLL))
            shaped.append((Array(f[12..<14]) + [0, 0, 0, 0, 0, 2, 0, 1, 0, 6] + Array(f[6..<12]) + [0, 0] + Array(f[14...]),
                           PacketDecoder.linuxSLL2))
        }
        var uncommon: [Int32: Int] = [:]
        for key in [FlowDispatch.replayKey, FlowHashKey(value: 0x0123_4567_89AB_CDEF)] {
            for (f, linkType) in shaped {
                let decoded = f.withUnsafeBytes { try? PacketDecoder.decode(ByteView($0), linkType: linkType) } ?? nil
                if linkType == 1, let h = f.withUnsafeBytes({ FlowDispatch.commonShapeHash(ByteView($0), key: key) }) {
                    #expect(decoded.map { FlowDispatch.flowHash($0, key: key) } == h, "\(f)")
                }
                if let h = f.withUnsafeBytes({ FlowDispatch.uncommonShapeHash(ByteView($0), linkType: linkType, key: key) }) {
                    #expect(decoded.map { FlowDispatch.flowHash($0, key: key) } == h, "link type \(linkType): \(f)")
                    uncommon[linkType, default: 0] += 1
                }
                // (An IPv4 fragment goes to every worker: `everyWorker`.)
                let fragment = f.withUnsafeBytes { PacketDecoder.ipFragment(ByteView($0), linkType: linkType) } != nil
                for n in [2, 3] {
                    let expected = decoded.map { FlowDispatch.index(FlowDispatch.flowHash($0, key: key), workers: n) }
                        ?? (fragment ? FlowDispatch.everyWorker : 0)
                    #expect(f.withUnsafeBytes { FlowDispatch.worker(for: ByteView($0), linkType: linkType, workers: n, key: key) } == expected,
                            "link type \(linkType): \(f)")
                }
            }
        }
        // The shortcut takes each uncommon shape (what it does not take goes through the decoder, right but slower).
        for linkType in [1, PacketDecoder.linuxSLL, PacketDecoder.linuxSLL2] {
            #expect(uncommon[linkType, default: 0] > 50, "link type \(linkType): the shortcut took \(uncommon[linkType, default: 0]) frames")
        }
    }

    // MARK: - Same output as one engine

    /// Every capture under Fixtures/ with the demo policy: records and alerts of 2 and 3 workers equal one
    /// engine's, up to line order (tiny event queues force the merge to wait on each other often).
    @Test(arguments: [2, 3])
    func fixturesGiveTheSameRecordsAsOneWorker(workers: Int) {
        for file in fixtureCaptures() {
            let one = runSingle([file], policy: demoPolicy).sorted
            let many = runParallel([file], policy: demoPolicy, workers: workers).sorted
            #expect(one == many, "\(file): one worker \(one), \(workers) workers \(many)")
        }
    }

    /// Workers reading each file themselves (no reader thread): the same records and alerts as one engine, up to
    /// line order, through memory maps and through libpcap alone (tiny event queues make the workers wait on the
    /// merge often; the damaged fixtures make mapped reading hand over to libpcap part-way).
    @Test(arguments: [2, 3])
    func workersReadingTheFileGiveTheSameRecordsAsOneWorker(workers: Int) {
        for file in fixtureCaptures() {
            let one = runSingle([file], policy: demoPolicy).sorted
            for mapped in [true, false] {
                let many = runParallel([file], policy: demoPolicy, workers: workers, feed: .workersRead(mapped: mapped)).sorted
                #expect(one == many, "\(file) mapped \(mapped): one worker \(one), \(workers) workers \(many)")
            }
        }
    }

    /// The zones and conduits of scripts/bench for the address plan of the generated captures (Fixtures/mixed).
    static let plantPolicy: CompiledPolicy = {
        let text = """
        version: 1
        zones:
          - {name: supervisory, security_level: 2, purdue_level: 2, networks: [10.10.0.0/16]}
          - {name: control, security_level: 3, purdue_level: 1, networks: [10.20.0.0/16]}
          - {name: it-services, security_level: 1, purdue_level: 4, networks: [10.0.0.0/24]}
        conduits:
          - name: scada-to-control
            from: supervisory
            to: control
            allow:
              - {protocol: modbus, access: [read, write]}
              - {protocol: dnp3, access: [read, time, session]}
              - {protocol: s7comm, access: [read, write, session]}
          - name: scada-to-it
            from: supervisory
            to: it-services
            allow:
              - {protocol: tcp, ports: [80]}
              - {protocol: udp, ports: [53, 123]}
        intra_zone: monitor
        default: deny
        unknown_hosts: alert
        """
        let (p, errors) = loadPolicy(text: text, file: "plant.yaml")
        precondition(errors.isEmpty, "\(errors)")
        return p!
    }()

    /// Modbus/TCP between the plant's supervisory and control zones: 12 flows, each a handshake then requests and
    /// responses, mostly reads and writes of one unit (quiet under `plantPolicy`), with unit changes (the unit-scan
    /// counter), diagnostics (denied by the conduit) and reads of device identification, over three minutes of
    /// packet time so that aggregation windows close between operations.
    func modbusPlantCapture() throws -> String {
        var packets: [[UInt8]] = []
        var seq: [UInt32] = Array(repeating: 1000, count: 12), ack: [UInt32] = Array(repeating: 9000, count: 12)
        func client(_ i: Int) -> UInt32 { ipv4(10, 10, 0, UInt8(5 + i % 3)) }
        func server(_ i: Int) -> UInt32 { ipv4(10, 20, 0, UInt8(7 + i)) }
        for i in 0..<12 {
            let sport = UInt16(40_000 + i)
            packets.append(tcpFrame(src: client(i), sport: sport, dst: server(i), dport: 502, seq: seq[i] - 1, flags: 0x02))
            packets.append(tcpFrame(src: server(i), sport: 502, dst: client(i), dport: sport, seq: ack[i] - 1, ack: seq[i], flags: 0x12))
            packets.append(tcpFrame(src: client(i), sport: sport, dst: server(i), dport: 502, seq: seq[i], ack: ack[i], flags: 0x10))
        }
        for n in 0..<600 {
            let i = n % 12, sport = UInt16(40_000 + i)
            let fc: UInt8 = n % 97 == 5 ? 8 : n % 89 == 3 ? 43 : n % 3 == 0 ? 6 : 3
            let unit: UInt8 = n % 53 == 7 ? UInt8(1 + n % 9) : 1
            let tid = [UInt8(n >> 8), UInt8(n & 0xFF)]
            let body: [UInt8] = fc == 43 ? [0x0E, 0x01, 0x00] : fc == 8 ? [0x00, 0x01, 0x00, 0x00] : [0x00, 0x10, 0x00, 0x02]
            let request = tid + [0, 0, 0, UInt8(2 + body.count), unit, fc] + body
            let answer: [UInt8] = fc == 3 ? [4, 0, 1, 0, 2] : fc == 43 ? [0x0E, 0x01, 0x01, 0x00, 0x00, 0x00] : body
            let response = tid + [0, 0, 0, UInt8(2 + answer.count), unit, fc] + answer
            packets.append(tcpFrame(src: client(i), sport: sport, dst: server(i), dport: 502, seq: seq[i], ack: ack[i], flags: 0x18, payload: request))
            seq[i] &+= UInt32(request.count)
            packets.append(tcpFrame(src: server(i), sport: 502, dst: client(i), dport: sport, seq: ack[i], ack: seq[i], flags: 0x18, payload: response))
            ack[i] &+= UInt32(response.count)
        }
        // 1,224 packets 150 ms apart: about three minutes.
        return try temporaryFile(pcapFile(packets, stepMicroseconds: 150_000), "modbus-plant.pcap")
    }

    /// Under a policy whose conduits allow most operations, most operations are left unsent by the workers (their
    /// verdicts from the merge: `QuietVerdict`) or taken by the merge by their quiet traits alone
    /// (`QuietOperationObserver`); without a policy, the workers leave unsent what the operation's own fields show
    /// quiet. Records and alerts stay those of one engine, whichever way the packets reach the workers, with event
    /// queues small enough that workers wait on the merge.
    @Test(arguments: [2, 3])
    func operationsPassedQuietlyGiveTheSameRecordsAsOneWorker(workers: Int) {
        var quiet = 0, unsent: [Bool: UInt64] = [:]
        for file in fixtureCaptures() + [try! modbusPlantCapture()] {
            for policy in [Self.plantPolicy, demoPolicy, nil] {
                let one = runSingle([file], policy: policy).sorted
                for feed in [PipelineFeed.reader, .workersRead(mapped: true)] {
                    let many = runParallel([file], policy: policy, workers: workers, feed: feed, finished: { quiet += $0.quietOperations },
                                           pipelineFinished: { unsent[policy != nil, default: 0] += $0.operationsLeftUnsent }).sorted
                    #expect(one == many, "\(file) \(feed): one worker \(one), \(workers) workers \(many)")
                }
            }
        }
        #expect(quiet > 20 && unsent[true, default: 0] > 300 && unsent[false, default: 0] > 300)
    }

    /// A generated plant of 120,000 packets read by the workers through the shared owner pass (some 118 stretches:
    /// its ring of stretches wraps many times), with the workers merging themselves, between two files fed by the
    /// reader (detection on its thread before, and again after): the event queues narrow from 8,192 to 64 as the
    /// workers' file starts, once the first file's events are merged, so they fill all the time and the merge duty
    /// changes hands. Records and alerts are one engine's.
    @Test(arguments: [2, 3])
    func sharedOwnerPassAndWorkersMergingGiveTheSameRecordsAsOneWorker(workers: Int) throws {
        let capture = try generatedCapture(profile: "mixed", packets: 120_000, flows: 4000)
        let files = [fixture("demo/plant.pcap"), capture, fixture("mixed/demo-mixed.pcap")]
        for policy in [Self.plantPolicy, demoPolicy] {
            let one = runSingle(files, policy: policy)
            let many = runParallel(files, policy: policy, workers: workers, eventCapacity: 8192, fileEventCapacity: 64,
                                   feed: .alternatingFromReader)
            #expect(one.sorted == many.sorted, "\(workers) workers differ from one")
            // The merge keeps packet order: alerts come in one engine's order, not only with its lines.
            #expect(one.lines[.alert] == many.lines[.alert], "alerts in another order than one engine's")
            #expect(one.count > 1000 && (one.lines[.alert]?.count ?? 0) > 1, "\(one.lines[.alert]?.count ?? 0) alerts")
        }
    }

    /// Files read by the workers and files fed by a reader, in one stream: frame numbers and the sweep clock carry
    /// over between the two ways.
    @Test func workersReadingAndReaderFeedingMixInOneStream() {
        let files = [fixture("demo/plant.pcap"), fixture("mixed/demo-mixed.pcap"), fixture("dnp3/dnp3_multifrag.pcap"),
                     fixture("demo/plant.pcap")]
        let one = runSingle(files, policy: demoPolicy).sorted
        #expect(runParallel(files, policy: demoPolicy, workers: 2, feed: .alternating).sorted == one)
        #expect(runParallel(files, policy: demoPolicy, workers: 2, feed: .workersRead(mapped: true)).sorted == one)
        #expect(one.count > 50)
    }

    /// Several files read as one stream: frame numbers continue across files with several workers too.
    @Test func filesInSequenceKeepGlobalFrameNumbers() {
        let files = [fixture("demo/plant.pcap"), fixture("mixed/demo-mixed.pcap"), fixture("dnp3/dnp3_multifrag.pcap")]
        let one = runSingle(files, policy: demoPolicy).sorted
        let two = runParallel(files, policy: demoPolicy, workers: 2).sorted
        #expect(one == two)
        #expect(one.count > 50)
    }

    /// The per-kind bound on anomaly log lines applies to the merged stream in packet order, as in one engine
    /// (per-worker bounds would log a different selection): every fixture in one run, at most 2 lines per kind.
    @Test func anomalyLogBoundAppliesInPacketOrder() {
        let files = fixtureCaptures()
        let one = runSingle(files, policy: demoPolicy, anomalyLimit: 2).sorted
        #expect((one.lines[.anomaly] ?? []).count >= 10)
        for n in [2, 3] {
            #expect(runParallel(files, policy: demoPolicy, workers: n, anomalyLimit: 2).sorted == one)
        }
    }

    /// Rules that count across flows and host pairs: one source opening Modbus flows to 12 hosts (an ICS host
    /// scan), hosts in no zone (reported once each), and repeats folded per host pair. Split by flow over
    /// separate detectors these would differ (each worker sees part of the scan, and reports every unknown host
    /// again); merged into one detector they equal one engine's alerts exactly.
    @Test(arguments: [2, 4])
    func crossFlowDetectionsEqualOneWorker(workers: Int) throws {
        var packets: [[UInt8]] = []
        let scanner = ipv4(10, 66, 0, 5)
        for round in 0..<3 {
            for h in 0..<12 {
                let target = ipv4(127, 0, 3, UInt8(100 + h))
                let sport = UInt16(30_000 + round * 100 + h)
                packets.append(tcpFrame(src: scanner, sport: sport, dst: target, dport: 502, seq: UInt32(1000 + h), flags: 0x02))
                packets.append(tcpFrame(src: target, sport: 502, dst: scanner, dport: sport, seq: 0, ack: UInt32(1001 + h), flags: 0x14))
            }
        }
        let path = try temporaryFile(pcapFile(packets), "scan-\(workers).pcap")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let one = runSingle([path], policy: demoPolicy).sorted
        let many = runParallel([path], policy: demoPolicy, workers: workers).sorted
        let alerts = one.lines[.alert] ?? []
        #expect(alerts.contains { $0.contains("ZW-ICS-014") }, "no host scan alert: \(alerts)")
        #expect(alerts.filter { $0.contains("ZW-ASSET-001") }.count == 1, "\(alerts.filter { $0.contains("ZW-ASSET-001") })")
        #expect(one == many)
    }

    /// Idle flows end at the same frame with several workers: the reader sends every worker the sweep a single
    /// engine would run at the first packet of each second, so flows that time out (here after 2 s) carry the
    /// same end, and the frames of their end-of-flow anomalies and alerts match.
    @Test func idleTimeoutsEndAtTheSameFrame() throws {
        var packets: [[UInt8]] = []
        for i in 0..<40 {
            let src = ipv4(127, 0, 2, 10), dst = ipv4(127, 0, 3, UInt8(10 + i % 5))
            packets.append(tcpFrame(src: src, sport: UInt16(50_000 + i), dst: dst, dport: 502, seq: 1, flags: 0x02))
        }
        let path = try temporaryFile(pcapFile(packets, stepMicroseconds: 700_000), "idle.pcap")
        defer { try? FileManager.default.removeItem(atPath: path) }
        func run(_ n: Int) -> RecordLines {
            var c = engineConfiguration()
            c.flowLimits.tcpIdleTimeout = 2
            if n == 1 {
                let engine = Engine(configuration: c)
                engine.observer = TestAlertObserver(policy: demoPolicy, sink: engine.sink)
                let source = try! PacketSource.openFile(path)
                while case .packet(let h, let b)? = try? source.next() { engine.process(b, linkType: 1, time: h.time, wireLength: h.wireLength) }
                engine.finish()
                var out = RecordLines(); engine.drainRecords { out.add($0, $1) }
                return out.sorted
            }
            let sink = EventSink()
            let observer = TestAlertObserver(policy: demoPolicy, sink: sink)
            let collected = Collector()
            var settings = ParallelPipeline.Settings(workers: n)
            settings.anomalyRecords = true
            var wc = c
            wc.anomalyRecords = false
            let p = ParallelPipeline(settings: settings, makeEngine: { _ in Engine(configuration: wc) }, observer: observer,
                                     alertSink: sink, detector: observer.detector, write: { collected.add($0, $1) })
            p.start()
            let source = try! PacketSource.openFile(path)
            while case .packet(let h, let b)? = try? source.next() { p.packet(b.raw, linkType: 1, time: h.time, wireLength: h.wireLength) }
            p.finish()
            return collected.lines.sorted
        }
        let one = run(1)
        #expect((one.lines[.flow] ?? []).filter { $0.contains("idle_timeout") }.count > 20)
        #expect(run(2) == one)
        #expect(run(3) == one)
    }

    /// A step back of packet time (two captures concatenated, the second two hours earlier): every feed, with 2 and
    /// 3 workers, ends the flows at the same frame and logs the step once, as one engine does. Readers sweep every
    /// worker at the step as at a new second, and only the first worker's engine reports it.
    @Test func aClockStepGivesOneEnginesRecords() throws {
        func packets(_ base: Int) -> [[UInt8]] {
            (0..<60).map { i in
                tcpFrame(src: ipv4(127, 0, 2, 10), sport: UInt16(base + i % 12), dst: ipv4(127, 0, 3, UInt8(10 + i % 12)), dport: 502,
                         seq: 1000 + UInt32(i / 12) * 12, ack: 9000, flags: 0x18, payload: [0, UInt8(i), 0, 0, 0, 6, 1, 3, 0, 0, 0, 1])
            }
        }
        // The first packet after the step goes to a worker other than the first with 2 and with 3 workers: there the
        // first engine meets the step only through the reader's sweep.
        func worker(_ frame: [UInt8], _ n: Int) -> Int {
            frame.withUnsafeBytes { FlowDispatch.worker(for: ByteView($0), linkType: 1, workers: n, key: FlowDispatch.replayKey) }
        }
        let later = try #require((51_000..<51_500).lazy.map(packets).first { worker($0[0], 2) != 0 && worker($0[0], 3) != 0 })
        let bytes = pcapFile(packets(50_000), start: 1_700_000_000) + pcapFile(later, start: 1_700_000_000 - 7_200).dropFirst(24)
        let path = try temporaryFile(bytes, "clock-step.pcap")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let one = runSingle([path], policy: demoPolicy).sorted
        #expect((one.lines[.flow] ?? []).filter { $0.contains(#""reason":"clock_step""#) }.count == 12)
        #expect((one.lines[.anomaly] ?? []).filter { $0.contains("time_went_back") }.count == 1)
        for feed in [PipelineFeed.reader, .workersRead(mapped: true), .workersRead(mapped: false)] {
            for n in [2, 3] {
                #expect(runParallel([path], policy: demoPolicy, workers: n, feed: feed).sorted == one, "\(feed), \(n) workers")
            }
        }
    }

    /// The flows the end of input ends reach the detection observer only if it wants them (`AlertPipeline` does not:
    /// its `flowEnded` only forgets the detector's state), and the records and alerts are the same either way and as
    /// one engine's. Without the observer's say, every worker sent each flow's end across and the merge replayed it.
    @Test(arguments: [PipelineFeed.reader, .workersRead(mapped: true)])
    func theEndOfInputsFlowEndsGoOnlyToAnObserverThatWantsThem(feed: PipelineFeed) {
        let one = runSingle([fixture("demo/plant.pcap")], policy: demoPolicy).sorted
        var ends: [Bool: [String: Int]] = [:]
        for wants in [true, false] {
            let lines = runParallel([fixture("demo/plant.pcap")], policy: demoPolicy, workers: 2, feed: feed,
                                    wantsFlowEndsAtEndOfInput: wants, finished: { ends[wants] = $0.flowEnds })
            #expect(lines.sorted == one, "wants: \(wants)")
        }
        // The plant's six flows all live to the end of input (closed or not).
        #expect(ends[true]?.values.reduce(0, +) == 6, "\(ends)")
        #expect(ends[false] == [:], "\(ends)")
    }

    @Test func countersAreSummedOverWorkers() {
        let sink = EventSink()
        let observer = TestAlertObserver(policy: demoPolicy, sink: sink)
        let p = ParallelPipeline(settings: .init(workers: 3), makeEngine: { _ in Engine(configuration: engineConfiguration()) },
                                 observer: observer, alertSink: sink, detector: observer.detector, write: { _, _ in })
        p.start()
        let source = try! PacketSource.openFile(fixture("demo/plant.pcap"))
        while case .packet(let h, let b)? = try? source.next() { p.packet(b.raw, linkType: 1, time: h.time, wireLength: h.wireLength) }
        p.finish()
        let s = p.statistics()
        #expect(s.packets == 114 && s.flowsCreated == 6 && s.operations == 25 && s.alerts == 10)
        #expect(p.framesRead == 114 && p.queueDrops == 0)
    }

    /// A policy handed over while packets flow is applied by the detection thread between two events.
    @Test func policyReplacementReachesTheDetector() throws {
        let sink = EventSink()
        let observer = TestAlertObserver(policy: nil, sink: sink)
        let collected = Collector()
        let p = ParallelPipeline(settings: .init(workers: 2), makeEngine: { _ in Engine(configuration: engineConfiguration()) },
                                 observer: observer, alertSink: sink, detector: observer.detector, write: { collected.add($0, $1) })
        p.start()
        p.replacePolicy(demoPolicy)
        let deadline = Date().addingTimeInterval(10)
        while !p.policyApplied && Date() < deadline { usleep(1000) }
        #expect(p.policyApplied)
        let source = try PacketSource.openFile(fixture("demo/plant.pcap"))
        while case .packet(let h, let b)? = try? source.next() { p.packet(b.raw, linkType: 1, time: h.time, wireLength: h.wireLength) }
        p.finish()
        #expect(collected.lines.sorted.lines[.alert] == runSingle([fixture("demo/plant.pcap")], policy: demoPolicy).sorted.lines[.alert])
    }

    /// A reload between two packets with workers gives the alerts of one engine whose policy is swapped between the same
    /// two packets, in order: the packets read before it keep the old policy (the workers may have passed over some of
    /// their operations by its verdicts), every one after gets the new one (the workers send every operation until
    /// the new verdicts come). From a policy that passes the plant's reads quietly to the demo policy, and back.
    @Test func reloadBetweenTwoPacketsGivesOneEnginesAlerts() throws {
        // (One test, not one per worker count: each would write the same temporary capture at once.)
        let all = try capturedPackets(modbusPlantCapture())
        for workers in [2, 3] {
        for (first, second) in [(Self.plantPolicy, demoPolicy), (demoPolicy, Self.plantPolicy)] {
            for at in [400, 801] {
                let one = oneEngine(all, policy: first, swappedFor: second, at: at)
                let sink = EventSink()
                let workersObserver = TestAlertObserver(policy: first, sink: sink)
                let collected = Collector()
                var settings = ParallelPipeline.Settings(workers: workers)
                settings.eventCapacity = 64
                let p = ParallelPipeline(settings: settings, makeEngine: { _ in Engine(configuration: engineConfiguration()) },
                                         observer: workersObserver, alertSink: sink, detector: workersObserver.detector,
                                         write: { collected.add($0, $1) })
                p.start()
                for (i, (t, wire, bytes)) in all.enumerated() {
                    if i == at {
                        p.replacePolicy(second)
                        let deadline = Date().addingTimeInterval(10)
                        while !p.policyApplied && Date() < deadline { usleep(200) }
                        #expect(p.policyApplied)
                    }
                    bytes.withUnsafeBytes { p.packet($0, linkType: 1, time: t, wireLength: wire) }
                }
                p.finish()
                let alerts = one.lines[.alert] ?? []
                #expect(alerts.count > 10)
                #expect(collected.lines.lines[.alert] ?? [] == alerts, "\(workers) workers, reload at packet \(at)")
            }
        }
        }
    }

    /// A reload requested while the merge is inside a step (here: held in the detector's first `flowStarted`) and no
    /// wait for it: the packets read after the request must still get the new policy, as with one engine whose
    /// policy is swapped between the same two packets (the step must see the request at its next pop).
    /// (One worker is not covered: `--workers 1` makes no pipeline, and a lone worker's run has no bound but its queue.)
    @Test(arguments: [2, 3])
    func reloadRequestedDuringAMergeStepStillSplitsAtTheRequest(workers: Int) throws {
        let all = try capturedPackets(modbusPlantCapture())
        let (first, second, at) = (Self.plantPolicy, demoPolicy, 400)
        let one = oneEngine(all, policy: first, swappedFor: second, at: at)

        let got = alertsWithTheMergeHeld(all, workers: workers, policy: first, reloads: [(at, second)])
        let alerts = one.lines[.alert] ?? []
        #expect(alerts.count > 10)
        #expect(got == alerts, "\(workers) workers")
    }

    /// Two reloads requested before the first applies (two SIGHUPs while the merge lags: LiveCommand does not wait
    /// for a swap): each applies after its own request's packet, in turn, as one engine would have them. (A single
    /// pending request, overwritten by the second, judged the packets between the two by the policy before both.)
    @Test(arguments: [2, 3])
    func twoReloadsBeforeTheFirstAppliesApplyInTurn(workers: Int) throws {
        let all = try capturedPackets(modbusPlantCapture())
        let (first, second, third, at, at2) = (Self.plantPolicy, demoPolicy, Self.plantPolicy, 400, 801)
        let expected = oneEngine(all, policy: first, swaps: [(at, second), (at2, third)]).lines[.alert] ?? []
        // Sensitive to both moments: the second swap alone, or the first alone, gives other alerts.
        #expect(expected != oneEngine(all, policy: first, swappedFor: third, at: at2).lines[.alert] ?? [])
        #expect(expected != oneEngine(all, policy: first, swappedFor: second, at: at).lines[.alert] ?? [])

        let got = alertsWithTheMergeHeld(all, workers: workers, policy: first, reloads: [(at, second), (at2, third)])
        #expect(got == expected, "\(workers) workers")
    }
}

extension PipelineTests {
    /// The alerts of a pipeline of `workers` over `packets` under `policy`, with each listed reload requested before its
    /// packet while the merge is held inside a step (in the detector's first `flowStarted`, from the first reload until
    /// every packet is read and queued): no request can apply before the last is made. The pipeline's reloads all
    /// applied at the end.
    func alertsWithTheMergeHeld(_ packets: [(PacketTime, Int, [UInt8])], workers: Int, policy: CompiledPolicy,
                                reloads: [(at: Int, policy: CompiledPolicy)]) -> [String] {
        let sink = EventSink()
        let gated = GatedObserver(TestAlertObserver(policy: policy, sink: sink))
        let collected = Collector()
        let p = ParallelPipeline(settings: .init(workers: workers), makeEngine: { _ in Engine(configuration: engineConfiguration()) },
                                 observer: gated, alertSink: sink, detector: gated.inner.detector, write: { collected.add($0, $1) })
        p.start()
        var next = 0
        for (i, r) in reloads.enumerated() {
            for (t, wire, bytes) in packets[next..<r.at] { bytes.withUnsafeBytes { p.packet($0, linkType: 1, time: t, wireLength: wire) } }
            next = r.at
            if i == 0 { p.flush(); gated.entered.wait() }   // the merge is inside a step, at the first flow's start
            p.replacePolicy(r.policy)                          // no wait for it (LiveCommand does not wait)
        }
        for (t, wire, bytes) in packets[next...] { bytes.withUnsafeBytes { p.packet($0, linkType: 1, time: t, wireLength: wire) } }
        p.flush()
        usleep(300_000)                      // the workers queue the later packets' events
        gated.release.signal()
        p.finish()
        #expect(p.policyApplied)
        return collected.lines.lines[.alert] ?? []
    }

    /// The records of one engine over `packets` under `policy`, swapped for `second` before packet `at`.
    func oneEngine(_ packets: [(PacketTime, Int, [UInt8])], policy: CompiledPolicy, swappedFor second: CompiledPolicy, at: Int) -> RecordLines {
        oneEngine(packets, policy: policy, swaps: [(at, second)])
    }

    /// The records of one engine over `packets` under `policy`, swapped for each listed policy before its packet.
    func oneEngine(_ packets: [(PacketTime, Int, [UInt8])], policy: CompiledPolicy,
                   swaps: [(at: Int, policy: CompiledPolicy)]) -> RecordLines {
        let engine = Engine(configuration: engineConfiguration())
        let observer = TestAlertObserver(policy: policy, sink: engine.sink)
        engine.observer = observer
        var one = RecordLines()
        for (i, (t, wire, bytes)) in packets.enumerated() {
            for s in swaps where s.at == i { observer.detector.replacePolicy(s.policy) }
            bytes.withUnsafeBytes { engine.process(ByteView($0), linkType: 1, time: t, wireLength: wire) }
        }
        engine.finish()
        engine.drainRecords { one.add($0, $1) }
        return one
    }
}

/// Forwards to `inner`, holding the merge in the first `flowStarted` until `release` is signalled.
final class GatedObserver: EngineObserver, QuietOperationObserver, @unchecked Sendable {
    let inner: TestAlertObserver
    let entered = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0)
    var held = false
    init(_ inner: TestAlertObserver) { self.inner = inner }
    func flowStarted(_ flow: FlowContext, frame: UInt64, time: PacketTime) {
        if !held { held = true; entered.signal(); release.wait() }
        inner.flowStarted(flow, frame: frame, time: time)
    }
    func flowIdentified(_ flow: FlowContext, appProtocol: AppProtocol?, frame: UInt64, time: PacketTime) {
        inner.flowIdentified(flow, appProtocol: appProtocol, frame: frame, time: time)
    }
    func operation(_ op: Records.Operation, flow: FlowContext) { inner.operation(op, flow: flow) }
    func anomaly(_ a: Anomaly, flow: FlowContext?) { inner.anomaly(a, flow: flow) }
    func flowEnded(_ flow: FlowContext, reason: FlowEndReason) { inner.flowEnded(flow, reason: reason) }
    func tick(time: PacketTime) { inner.tick(time: time) }
    func finish() { inner.finish() }
    func takeQuietly(_ traits: QuietTraits) -> Bool { inner.takeQuietly(traits) }
    func takeQuietly(run first: UnsafeRawPointer, stride: Int, count: Int) -> Int { inner.takeQuietly(run: first, stride: stride, count: count) }
    func takeQuietly(merging a: UnsafeRawPointer, count aCount: Int, with b: UnsafeRawPointer, count bCount: Int, stride: Int) -> (Int, Int) {
        inner.takeQuietly(merging: a, count: aCount, with: b, count: bCount, stride: stride)
    }
}
