import Glibc
import Policy

/// `zonewatch policy check FILE`: validate a policy and print every error with line and column.
enum PolicyCommand {
    static let help = """
    usage: zonewatch policy check FILE
           zonewatch policy learn FILE CAPTURE...

    check: validates a zone/conduit policy (YAML). Prints every error as FILE:LINE:COLUMN: message and exits 2
    when there is any; exits 0 and prints a one-line summary when the policy is valid.

    learn: drafts conduits from traffic. Reads the captures (pcap or pcapng, as one stream) and prints FILE
    with its conduits replaced by learned ones: one per initiating host and pair of FILE's zones, allowing
    exactly the protocols, access classes, function codes, unit ids or DNP3 addresses, S7 areas and DB numbers,
    data addresses and ports seen (program download and upload, lifecycle, file and auth with notify: still
    reported). FILE's own conduits take no part. Traffic inside a zone is not learned; hosts in no zone are
    listed in a comment. `-` reads standard input: `tcpdump -i eth1 -w - | zonewatch policy learn FILE -` learns
    from a SPAN port until tcpdump is stopped. Review the result, then `policy check` it.
    """

    static func run(_ args: ArraySlice<String>) throws(UsageError) -> Int32 {
        var a = CommandLineArguments(args)
        if a.flag("-h", "--help") { print(help); return 0 }
        let rest = try a.finish()
        // Hidden, for scripts/bench: `zonewatch policy synth ZONES RULES` prints a synthetic policy (YAML).
        if rest.count == 3, rest[0] == "synth" {
            guard let zones = Int(rest[1]), let rules = Int(rest[2]), zones >= 2, rules >= 1 else {
                throw UsageError(message: "usage: zonewatch policy synth ZONES RULES (ZONES >= 2, RULES >= 1)")
            }
            print(makeSyntheticPolicy(zones: zones, rules: rules), terminator: "")
            return 0
        }
        if rest.first == "learn" {
            guard rest.count >= 3 else { throw UsageError(message: "usage: zonewatch policy learn FILE CAPTURE...") }
            let (policy, errors) = checkPolicyFile(path: rest[1])
            for e in errors { printError(e.description) }
            guard let p = policy, errors.isEmpty else { return 2 }
            let learned = PolicyLearning.learn(policyPath: rest[1], policy: p, captures: Array(rest.dropFirst(2)))
            print(learned.text, terminator: "")
            guard let error = learned.error else { return 0 }
            printError("zonewatch: \(error)" + (learned.text.isEmpty ? "" : " (learned from what came before)"))
            return 2
        }
        guard rest.count == 2, rest[0] == "check" else {
            throw UsageError(message: "usage: zonewatch policy check FILE | zonewatch policy learn FILE CAPTURE...")
        }
        let (policy, errors) = checkPolicyFile(path: rest[1])
        for e in errors { printError(e.description) }
        guard let p = policy, errors.isEmpty else { return 2 }
        print("\(rest[1]): valid policy: \(p.zones.count) zones")
        return 0
    }
}
