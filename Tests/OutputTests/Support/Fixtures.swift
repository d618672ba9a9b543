import Foundation
import Wire
import Records
import Output

/// Values built to break naive encoders: quotes, backslashes, `]`, `|`, `=`, CR/LF, tabs, non-ASCII.
enum Hostile {
    static let message = "FC16 from \"site_ops\" \\ not allowed = write | ] end\nsecond line\ttabbed\r äöü 日本 🚨 \\n literal"
    static let ruleName = "Write \"outside\" | conduit \\ = ] \u{00e9}"
    static let ruleID = "ZW-TEST|1\\x"
    static let sourceZone = "zone \"A\" ] \\ = | [x]"
    static let destinationZone = "cell\t01 = \"b\" 日本"
    static let conduit = "area_to_cell_01 \\\\ ]]"
    static let function = "Write Multiple Registers = 16 \"FC16\""
}

/// Alerts used across the tests.
enum Sample {
    /// An alert carrying every field, with hostile text.
    static func hostile(frame: UInt64 = 42) -> Alert {
        var a = Alert(time: PacketTime(seconds: 1_704_067_200, microseconds: 123_456), frame: frame, severity: 8,
                      action: "modbus-write-outside-conduit", ruleID: Hostile.ruleID, ruleName: Hostile.ruleName,
                      category: .conduit, message: Hostile.message)
        a.source = Endpoint(ip: IPAddress("10.2.1.20")!, port: 49152)
        a.destination = Endpoint(ip: IPAddress("10.10.1.10")!, port: 502)
        a.transport = .tcp
        a.networkProtocol = "modbus"
        a.communityID = "1:LQU9qZlK+B5F3KDmev6m5PMibrg="
        a.techniques = [AttackTechnique(id: "T0855", name: "Unauthorized Command Message"),
                        AttackTechnique(id: "T0836", name: "Modify Parameter")]
        a.sourceZone = Hostile.sourceZone
        a.destinationZone = Hostile.destinationZone
        a.conduit = Hostile.conduit
        a.securityLevel = 3
        a.iec62443 = ["SR 5.2", "SR 3.1"]
        a.access = "write"
        a.function = Hostile.function
        a.unitID = 1
        a.count = 3
        a.firstSeen = PacketTime(seconds: 1_704_067_199, microseconds: 1)
        a.lastSeen = PacketTime(seconds: 1_704_067_200, microseconds: 123_456)
        return a
    }

    /// A small alert numbered `n` (frame n, message "alert #n"), IPv6 every seventh.
    static func numbered(_ n: Int, severity: Int = 5) -> Alert {
        var a = Alert(time: PacketTime(seconds: 1_704_067_200 + Int64(n / 1000), microseconds: Int32(n % 1000) * 1000),
                      frame: UInt64(n), severity: severity, action: "modbus-write", ruleID: "ZW-OP-001",
                      ruleName: "Modbus write", category: .icsOperation, message: "alert #\(n) = \"seq\" \\ ]")
        let v6 = n % 7 == 0
        a.source = Endpoint(ip: IPAddress(v6 ? "2001:db8::20" : "10.2.1.20")!, port: UInt16(40000 + n % 1000))
        a.destination = Endpoint(ip: IPAddress(v6 ? "2001:db8::10" : "10.10.1.10")!, port: 502)
        a.transport = .tcp
        a.networkProtocol = "modbus"
        a.sourceZone = "enterprise"
        a.destinationZone = "cell_01"
        a.unitID = n % 256
        a.function = "Write Single Register"
        a.techniques = [AttackTechnique(id: "T0855", name: "Unauthorized Command Message")]
        return a
    }
}

/// A private temporary folder, removed on deinit.
final class TempDir {
    let path: String
    init(_ tag: String) {
        path = NSTemporaryDirectory() + "zw-output-\(tag)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// Bytes of a string.
func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

/// Text of bytes.
func text(_ b: [UInt8]) -> String { String(decoding: b, as: UTF8.self) }

/// A loopback TCP port nobody listens on right now.
func freePort(udp: Bool = false) -> UInt16 {
    let fd = socket(AF_INET, udp ? Int32(SOCK_DGRAM.rawValue) : Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return UInt16(bigEndian: addr.sin_port)
}

/// A loopback port free for both TCP and UDP.
func freePortBoth() -> UInt16 {
    for _ in 0..<50 {
        let p = freePort()
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = p.bigEndian
        let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } } == 0
        close(fd)
        if ok { return p }
    }
    return freePort()
}

/// Polls `condition` every 20 ms until it holds or `seconds` pass.
@discardableResult
func waitUntil(seconds: Double, _ condition: () -> Bool) -> Bool {
    let end = Date().addingTimeInterval(seconds)
    while Date() < end {
        if condition() { return true }
        usleep(20_000)
    }
    return condition()
}

/// The syslog options the tests put in their URLs (`hostname=zw-test&procid=4242`).
let testSyslog = SyslogOptions(facility: 20, hostname: "zw-test", appName: "zonewatch", procID: "4242", enterpriseNumber: 32473)
