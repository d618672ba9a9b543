/// Builds a valid policy text with `zones` zones (one /24 and one asset each) and about `rules` allow rules
/// spread over conduits of four rules: the load-time and per-packet scaling case of `scripts/bench`.
///
/// Zone i owns 10.(i/256 % 256).(i % 256).0/24 under 10.0.0.0/8 (then 11.x.y.0/24 past 65,536 zones);
/// its asset `a<i>` is .10. Conduit c goes from zone c % zones to zone (c % zones + 1 + c / zones) % zones.
public func makeSyntheticPolicy(zones: Int, rules: Int) -> String {
    let zoneCount = max(2, zones)
    func net(_ i: Int) -> String { "\(10 + i / 65_536).\(i / 256 % 256).\(i % 256)" }
    var out = "version: 1\nname: synthetic-\(zoneCount)-zones\nzones:\n"
    out.reserveCapacity(zoneCount * 120 + rules * 80)
    for i in 0..<zoneCount {
        out += "  - {name: z\(i), security_level: \(i % 5), networks: [\(net(i)).0/24]}\n"
    }
    out += "assets:\n"
    for i in 0..<zoneCount { out += "  - {name: a\(i), address: \(net(i)).10, zone: z\(i)}\n" }
    out += "conduits:\n"
    let conduitCount = max(1, (rules + 3) / 4)
    var written = 0
    for c in 0..<conduitCount {
        let from = c % zoneCount
        let to = (from + 1 + (c / zoneCount) % (zoneCount - 1)) % zoneCount
        out += "  - name: c\(c)\n    from: z\(from)\n    to: z\(to)\n    initiators: [a\(from), \(net(from)).0/28]\n    allow:\n"
        let kinds = [
            "      - {protocol: modbus, access: [read, write], unit_ids: [\"1-\(1 + c % 200)\"], addresses: [\"0-\(100 + c % 1000)\"]}\n",
            "      - {protocol: dnp3, access: [read, control, time, session], dnp3_addresses: [\"\(c % 1000)\"]}\n",
            "      - {protocol: s7comm, access: [read, diagnostic, session], s7_areas: [DB, M], db_numbers: [\"1-\(1 + c % 50)\"]}\n",
            "      - {protocol: tcp, ports: [\(1024 + c % 50000)]}\n",
        ]
        for k in 0..<4 where written < max(rules, 1) { out += kinds[k]; written += 1 }
        if c % 10 == 0 { out += "    notify: [program_download, lifecycle]\n" }
    }
    out += "intra_zone: monitor\ndefault: deny\nunknown_hosts: alert\n"
    return out
}
