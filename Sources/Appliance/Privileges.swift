import Glibc
import CAppliance

/// Least privilege for the appliance: capture handles are opened while the process may still capture
/// (root, or a user with CAP_NET_RAW from systemd's `AmbientCapabilities`), then the process becomes the
/// configured user and group, loses every capability (effective, permitted, inheritable, ambient and the
/// bounding set) and sets `no_new_privs`, before the first packet is read.
///
/// Order matters: the bounding set can only be shrunk while CAP_SETPCAP is held (so before `setuid`), and
/// `setgroups`/`setgid` must precede `setuid`. Call it before starting any thread: capability sets and the
/// bounding set are per thread and only inherited by threads created afterwards.
public enum Privileges {
    /// The identity to become.
    public struct Target: Equatable, Sendable {
        /// User id.
        public var uid: uid_t
        /// Primary (and only) group id.
        public var gid: gid_t
        /// The user's name, for messages.
        public var userName: String
        /// Creates a target.
        public init(uid: uid_t, gid: gid_t, userName: String) { self.uid = uid; self.gid = gid; self.userName = userName }
    }

    /// What `drop` did, for the start-up log line.
    public struct Outcome: Sendable, Equatable {
        /// Real, effective and saved user id after the drop.
        public var uid: uid_t
        /// Real, effective and saved group id after the drop.
        public var gid: gid_t
        /// Effective capabilities left (0 after a successful drop).
        public var effectiveCapabilities: UInt64
        /// Permitted capabilities left (0 after a successful drop).
        public var permittedCapabilities: UInt64
    }

    /// A failure with a one-line reason.
    public struct Failure: Error, CustomStringConvertible, Sendable {
        /// The reason.
        public var description: String
        init(_ d: String) { description = d }
    }

    /// Resolves `user` (name or number) and `group` (name or number; default the user's primary group).
    public static func resolve(user: String, group: String?) throws(Failure) -> Target {
        var uid: uid_t
        var primary: gid_t
        var name = user
        if let pw = getpwnam(user) {
            uid = pw.pointee.pw_uid; primary = pw.pointee.pw_gid
        } else if let n = UInt32(user), let pw = getpwuid(n) {
            uid = n; primary = pw.pointee.pw_gid; name = String(cString: pw.pointee.pw_name)
        } else if let n = UInt32(user) {
            uid = n; primary = n
        } else {
            throw Failure("user \"\(user)\" does not exist")
        }
        if let group {
            if let gr = getgrnam(group) { primary = gr.pointee.gr_gid }
            else if let n = UInt32(group) { primary = n }
            else { throw Failure("group \"\(group)\" does not exist") }
        }
        return Target(uid: uid, gid: primary, userName: name)
    }

    /// Becomes `target` (when given and different from the current identity) and drops every capability.
    /// With no target, only capabilities are dropped (a process started as an unprivileged user with
    /// ambient CAP_NET_RAW). Throws when any step fails or when root privileges are still held afterwards
    /// and `allowRoot` is false.
    @discardableResult
    public static func drop(to target: Target?, allowRoot: Bool) throws(Failure) -> Outcome {
        // Ambient capabilities would survive an execve; the bounding set caps what any future exec could gain.
        _ = zw_prctl(PR_CAP_AMBIENT, UInt(PR_CAP_AMBIENT_CLEAR_ALL), 0, 0, 0)
        if capabilityHeld(CAP_SETPCAP) {
            var cap: Int32 = 0
            // Walk up to the first number the kernel does not know (its CAP_LAST_CAP), bounded at 64.
            while cap < 64 {
                if zw_prctl(PR_CAPBSET_READ, UInt(cap), 0, 0, 0) < 0 { break }
                if zw_prctl(PR_CAPBSET_DROP, UInt(cap), 0, 0, 0) != 0 {
                    throw Failure("cannot drop capability \(cap) from the bounding set: \(String(cString: strerror(errno)))")
                }
                cap += 1
            }
        }
        if let t = target, getuid() != t.uid || geteuid() != t.uid || getgid() != t.gid || getegid() != t.gid {
            // Keep no capabilities across setuid (the default, but make sure).
            _ = zw_prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0)
            if zw_setgroups1(t.gid) != 0 { throw Failure("setgroups(\(t.gid)): \(String(cString: strerror(errno)))") }
            if zw_setresgid(t.gid) != 0 { throw Failure("setresgid(\(t.gid)): \(String(cString: strerror(errno)))") }
            if zw_setresuid(t.uid) != 0 { throw Failure("setresuid(\(t.uid)): \(String(cString: strerror(errno)))") }
        }
        if zw_clear_capabilities() != 0 { throw Failure("capset: \(String(cString: strerror(errno)))") }
        if zw_prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 { throw Failure("PR_SET_NO_NEW_PRIVS: \(String(cString: strerror(errno)))") }

        var effective: UInt64 = 0, permitted: UInt64 = 0
        var e: UInt64 = 0, p: UInt64 = 0
        if zw_get_capabilities(&e, &p) == 0 { effective = e; permitted = p }
        let outcome = Outcome(uid: geteuid(), gid: getegid(), effectiveCapabilities: effective, permittedCapabilities: permitted)
        if effective != 0 || permitted != 0 { throw Failure("capabilities are still held after the drop (effective \(hex(effective)), permitted \(hex(permitted)))") }
        if let t = target {
            // A successful drop cannot be undone: prove it (setuid(0) must fail for a non-root target).
            if t.uid != 0 && setuid(0) == 0 { throw Failure("setuid(0) succeeded after dropping to \(t.userName)") }
            if getuid() != t.uid || geteuid() != t.uid || getgid() != t.gid || getegid() != t.gid {
                throw Failure("identity is uid \(geteuid()) gid \(getegid()) after the drop, expected \(t.uid)/\(t.gid)")
            }
        }
        if (getuid() == 0 || geteuid() == 0) && !allowRoot {
            throw Failure("still running as root: set --user (config `user:`) or pass --allow-root")
        }
        return outcome
    }

    /// Whether the calling thread holds `cap` in its effective set.
    public static func capabilityHeld(_ cap: Int32) -> Bool {
        var e: UInt64 = 0, p: UInt64 = 0
        guard zw_get_capabilities(&e, &p) == 0, cap >= 0, cap < 64 else { return false }
        return e & (1 << UInt64(cap)) != 0
    }

    static func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }
}
