import Records

/// Maps one operation to the ICS-operation rule it triggers, if any (`../shared/reference/protocols.md` §2–3).
///
/// Only the protocol-neutral `Operation` is read: protocol, function code, sub-function, access class,
/// broadcast flag and, for S7 PI services whose function code is shared, the function's name.
public enum OperationRules {
    /// The rule `op` raises by itself (sweeps and scans are counted separately), or nil.
    @inlinable @inline(__always) public static func rule(for op: Operation) -> RuleID? {
        mayRaise(op) ? matchingRule(op) : nil
    }

    /// False when `rule(for:)` is certainly nil: a response, or an operation whose access class, broadcast flag and
    /// function code are none that `matchingRule` looks at. Detection asks for every request and nearly all are plain
    /// reads and writes, so the answer comes from a few bit tests instead of the protocol switch.
    @inlinable @inline(__always) public static func mayRaise(_ op: Operation) -> Bool {
        mayRaise(appProtocol: op.appProtocol, access: op.access, functionCode: op.functionCode, broadcast: op.broadcast)
    }

    /// `mayRaise` from the four fields it reads: a caller holding an operation in place passes them in registers
    /// (the operation itself is passed by address, which made the caller copy it, 96 bytes, to the stack first).
    /// Transparent: `@inline(__always)` left it a call (about 25 instructions per operation) in detection's quiet path.
    @_transparent
    public static func mayRaise(appProtocol: AppProtocol, access: AccessClass, functionCode: UInt16, broadcast: Bool) -> Bool {
        if access == .response { return false }
        // Access classes that raise a rule whatever the function code: lifecycle, program download and upload, and
        // (S7) auth. A literal: a static constant is read through a lazy global's once-check and accessor.
        let accessClassesWithRules: UInt16 = 1 << 3 | 1 << 4 | 1 << 7 | 1 << 9
        if (1 as UInt16) << UInt16(access.rawValue) & accessClassesWithRules != 0 || broadcast || functionCode >= 128 {
            return true
        }
        // Function codes below 128 that `matchingRule` names, per protocol, as two 64-bit masks (S7 userdata codes are
        // group << 8 | sub-function, so they are at least 0x100 and took the branch above).
        let low: UInt64, high: UInt64
        switch appProtocol {
        case .modbus: low = 1 << 8; high = 1 << (90 - 64) | 1 << (125 - 64)
        case .dnp3: low = 1 << 0x0D | 1 << 0x0E | 1 << 0x10 | 1 << 0x11 | 1 << 0x12 | 1 << 0x15; high = 0
        case .s7comm: low = 1 << 0x28 | 1 << 0x29; high = 0
        case .s7commPlus: low = 0; high = 0
        }
        let fc = UInt64(functionCode)
        return (fc < 64 ? low >> fc : high >> (fc &- 64)) & 1 != 0
    }

    /// `rule(for:)` for an operation `mayRaise` let through.
    @inlinable static func matchingRule(_ op: Operation) -> RuleID? {
        if op.access == .response { return nil }
        if op.broadcast && (op.access == .write || op.access == .control) { return .icsBroadcastWrite }
        let fc = op.functionCode, sub = op.subfunction
        switch op.appProtocol {
        case .modbus:
            switch fc {
            case 8 where sub == 0x0001: return .icsRestart
            case 8 where sub == 0x0004: return .icsListenOnly
            case 125: return .icsFirmware
            case 90:   // Schneider UMAS: the sub-function decides; "upload" in UMAS is PC→PLC (a download).
                switch sub {
                case 0x41: return .icsStop
                case 0x40: return .icsModeChange
                default: break
                }
            default: break
            }
        case .dnp3:
            switch fc {
            case 0x0D, 0x0E: return .icsRestart          // COLD_RESTART, WARM_RESTART
            case 0x12: return .icsStop                     // STOP_APPLICATION
            case 0x10, 0x11: return .icsModeChange         // INITIALIZE_APPLICATION, START_APPLICATION
            case 0x15: return .icsDisableUnsolicited       // DISABLE_UNSOLICITED
            default: break
            }
        case .s7comm:
            switch fc {
            case 0x29: return .icsStop                     // PLC Stop
            case 0x28 where op.subfunction == piServiceDelete || nameContains(op.function, "_DELE"): return .icsBlockDelete
            default: break
            }
            // Userdata: function code is group << 8 | sub-function (the group's high nibble may carry the type).
            if fc >= 0x100 && (fc >> 8) & 0x0F == 0x5 && fc & 0xFF == 0x01 { return .icsPassword }
            if op.access == .auth { return .icsPassword }
        case .s7commPlus:
            break
        }
        switch op.access {
        case .lifecycle: return .icsModeChange
        case .programDownload: return .icsProgramDownload
        case .programUpload: return .icsProgramUpload
        default: return nil
        }
    }

    /// An S7 PI service is identified in `Operation.subfunction` by the first four bytes of its name,
    /// big-endian (`_DELE` → "_DEL" = 0x5F44454C): allocation-free for the dissector, readable here.
    public static let piServiceDelete: Int32 = 0x5F44_454C

    /// Whether `op` asks a device who or what it is (counted by the identification-sweep rule).
    @inlinable public static func isIdentification(_ op: Operation) -> Bool {
        isIdentification(access: op.access)
    }

    /// `isIdentification` from the operation's access class (the one field it reads).
    @inlinable @inline(__always) public static func isIdentification(access: AccessClass) -> Bool {
        access == .diagnostic
    }

    /// Whether the static name contains `needle` (ASCII), without allocating.
    @inlinable public static func nameContains(_ name: StaticString, _ needle: StaticString) -> Bool {
        guard name.hasPointerRepresentation, needle.hasPointerRepresentation else { return false }
        let n = name.utf8CodeUnitCount, m = needle.utf8CodeUnitCount
        if m == 0 { return true }
        if m > n { return false }
        let a = name.utf8Start, b = needle.utf8Start
        var i = 0
        while i + m <= n {
            var j = 0
            while j < m && a[i + j] == b[j] { j += 1 }
            if j == m { return true }
            i += 1
        }
        return false
    }
}
