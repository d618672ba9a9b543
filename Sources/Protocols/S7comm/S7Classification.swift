import Wire
import Records

/// Access classes of S7comm and S7comm-plus operations (`../shared/reference/protocols.md` §2.3).
///
/// Block transfer is classified by the direction the logic moves, not by who sent the PDU:
/// in a download the PLC itself sends the Download block (0x1B) and Download ended (0x1C) Jobs
/// (§0.3), and they are still `program_download`.
enum S7Classification {
    /// The class of a Job's parameter function; `piService` is the service name for 0x28.
    @_transparent   // once per request on the quiet path, whose caller is too big for `@inline(__always)` to be honoured
    static func job(function f: UInt8, piService: ByteView) -> AccessClass {
        switch f {
        case 0x00: .diagnostic
        case 0x01: .lifecycle
        case 0x04: .read
        case 0x05: .write
        case 0x1A, 0x1B, 0x1C: .programDownload
        case 0x1D, 0x1E, 0x1F: .programUpload
        case 0x28: piServiceClass(piService)
        case 0x29: .lifecycle
        case 0xF0: .session
        default: .control   // unknown Jobs act on the PLC; never let them pass as harmless
        }
    }

    /// The class of a PI service by name.
    static func piServiceClass(_ name: ByteView) -> AccessClass {
        if name.equals("_INSE") || name.equals("_INS2") || name.equals("_DELE") { return .programDownload }
        if name.equals("P_PROGRAM") { return .lifecycle }
        if name.equals("_MODU") || name.equals("_GARB") { return .config }
        if name.equals("_N_LOGIN_") || name.equals("_N_LOGOUT") || name.equals("_N_NEWPWD") { return .auth }
        if name.hasPrefix("_N_F_") { return .file }   // Sinumerik NC file services
        if name.hasPrefix("_N_") { return .control }   // other NC services operate the machine
        return .control
    }

    /// The class of a userdata request (group and sub-function).
    static func userdata(group g: UInt8, subfunction s: UInt8) -> AccessClass {
        switch g {
        case 0x0: return .lifecycle                       // mode transition
        case 0x1:
            switch s {
            case 0x01, 0x02, 0x13: return .read              // block / variable status
            case 0x07, 0x08, 0x09: return .write             // force selection, modify variable, force
            case 0x0A, 0x0B, 0x0C: return .lifecycle         // breakpoint, exit HOLD, memory reset
            case 0x0D...0x12: return .config                 // job management
            case 0x16: return .diagnostic                    // flash LED
            default: return .diagnostic                      // stacks, time measurement
            }
        case 0x2: return s == 0x04 ? .session : .read        // unsubscribe; cyclic/change-driven reads
        case 0x3: return .diagnostic                         // block lists and block info
        case 0x4:
            switch s {
            case 0x01: return .diagnostic                    // read SZL
            case 0x07, 0x08, 0x0B: return .write             // ALARM_8 lock/unlock, ALARM ack
            case 0x13: return .read                          // ALARM query
            case 0x02: return .session                       // message service: (un)subscribe to events
            default: return .response                        // indications
            }
        case 0x5: return .auth                               // PLC password
        case 0x6: return .write                              // BSEND: data pushed into the partner
        case 0x7: return (s == 0x02 || s == 0x04) ? .time : .read
        case 0xF:
            switch s {
            case 0x01...0x04: return .programDownload        // NC program download
            case 0x06...0x08: return .programUpload
            default: return .file
            }
        default: return .control
        }
    }

    /// The class of an S7comm-plus request by function code (best effort: the function names are
    /// public, the semantics of the objects they address are not).
    static func plusFunction(_ f: UInt16) -> AccessClass {
        switch f {
        case 0x04BB: .diagnostic       // Explore
        case 0x04CA, 0x04D4: .session  // CreateObject / DeleteObject (session objects)
        case 0x04F2: .write            // SetVariable
        case 0x04FC: .read             // GetVariable
        case 0x0506, 0x051A: .config   // AddLink / RemoveLink
        case 0x0524: .diagnostic       // GetLink
        case 0x0542: .write            // SetMultiVariables
        case 0x054C: .read             // GetMultiVariables
        case 0x0556, 0x0560: .session  // Begin/EndSequence: transaction brackets (seen in uploads too)
        case 0x056B: .control          // Invoke
        case 0x057C: .write            // SetVarSubStreamed
        case 0x0586: .read             // GetVarSubStreamed
        case 0x0590: .read             // GetVariablesAddress
        case 0x059A: .session          // Abort
        default: .control
        }
    }
}
