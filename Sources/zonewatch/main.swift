import Glibc

/// zonewatch: passive OT/ICS security monitor. Subcommands: replay, dissect, live, policy.
let usage = """
usage: zonewatch <command> [options]

commands:
  replay FILE...      replay captures for forensics (flows, protocol logs, alerts)
  dissect FILE        one JSON line per application PDU on standard output
  live -i IFACE       capture from an interface until SIGINT/SIGTERM
  policy check FILE   validate a zone/conduit policy
  policy learn FILE CAPTURE...
                      FILE with conduits learned from the captures (a baseline to review)

Run `zonewatch <command> --help` for a command's options.
"""

let arguments = CommandLine.arguments
guard arguments.count >= 2 else { printError(usage + ""); exit(2) }
let rest = arguments.dropFirst(2)
func runCommand() throws(UsageError) -> Int32 {
    let status: Int32
    switch arguments[1] {
    case "replay": status = try ReplayCommand.run(rest)
    case "dissect": status = try DissectCommand.run(rest)
    case "live": status = try LiveCommand.run(rest)
    case "policy": status = try PolicyCommand.run(rest)
    case "-h", "--help", "help": print(usage); status = 0
    default: throw UsageError(message: "unknown command \"\(arguments[1])\" (see zonewatch --help)")
    }
    return status
}
do { exit(try runCommand()) } catch {
    printError("zonewatch: \(error.message)")
    exit(2)
}
