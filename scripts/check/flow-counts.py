#!/usr/bin/env python3
"""Compares zonewatch's TCP/UDP flow counts per capture with tshark's conversation tables.

usage: flow-counts.py ZONEWATCH_BIN CAPTURE...
Prints one line per capture whose counts differ and a summary line "flow counts: A/N files agree".
Exit 1 when a replay crashes (signal) and 0 otherwise: count differences are reported, not fatal,
because some are by design (documented in the README: fragments, port reuse within the close linger).
"""
import json, subprocess, sys
from concurrent.futures import ThreadPoolExecutor

def tshark_counts(cap):
    out = subprocess.run(['tshark', '-n', '-r', cap, '-qz', 'conv,tcp', '-z', 'conv,udp'],
                         capture_output=True, text=True, timeout=300).stdout
    counts, section = {'tcp': 0, 'udp': 0}, None
    for line in out.splitlines():
        if line.startswith('TCP Conversations'): section = 'tcp'
        elif line.startswith('UDP Conversations'): section = 'udp'
        elif section and '<->' in line: counts[section] += 1
    return counts

def zonewatch_counts(binary, cap):
    p = subprocess.run([binary, 'replay', cap, '--flows', '-', '--quiet', '--tcp-timeout', '1000000000', '--udp-timeout', '1000000000'], capture_output=True, timeout=300)
    counts = {'tcp': 0, 'udp': 0}
    for line in p.stdout.splitlines():
        t = json.loads(line)['network']['transport']
        if t in counts: counts[t] += 1
    return counts, p.returncode

def check(args):
    binary, cap = args
    return cap, tshark_counts(cap), *zonewatch_counts(binary, cap)

def main():
    binary, caps = sys.argv[1], sys.argv[2:]
    agree, crashes = 0, []
    with ThreadPoolExecutor(2) as pool:
        for cap, t, z, rc in pool.map(check, [(binary, c) for c in caps]):
            if rc < 0 or rc == 1: crashes.append('%s (exit %d)' % (cap, rc))
            if t == z: agree += 1
            else: print('%s: tshark %s zonewatch %s' % (cap, t, z))
    print('flow counts: %d/%d files agree%s' % (agree, len(caps), ('; crashes: ' + ', '.join(crashes)) if crashes else ''))
    return 1 if crashes else 0

if __name__ == '__main__':
    sys.exit(main())
