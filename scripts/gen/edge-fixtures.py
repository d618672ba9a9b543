#!/usr/bin/env python3
"""Regenerates Fixtures/edge/: tiny hand-crafted captures for the foundation's decode, flow and reassembly tests,
plus Fixtures/edge/README.md (what each file holds and what the engine should report) and
Fixtures/edge/expected.json (the same, machine-readable, for parameterised tests).

    scripts/gen/edge-fixtures.py [OUTPUT_DIR]

Standard library only (`struct`), deterministic: running it twice gives byte-identical files. Every TCP case
carries Modbus/TCP (port 502, FC3 Read Holding Registers requests and their responses) so the dissector sees
the bytes reassembly delivered. Frame numbers below are 1-based, as tshark's frame.number.
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "Fixtures" / "edge"

T0 = 1704067200  # 2024-01-01T00:00:00Z
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
C, S = 0, 1

LINKTYPE = {"null": 0, "ethernet": 1, "raw": 101, "sll": 113, "user0": 147, "ipv4": 228, "ipv6": 229, "sll2": 276}


# ---- checksums and headers ----------------------------------------------------------------------------------

def csum(data: bytes) -> int:
    if len(data) & 1:
        data += b"\x00"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def v4(text: str) -> bytes:
    return bytes(int(x) for x in text.split("."))


def v6(text: str) -> bytes:
    import ipaddress
    return ipaddress.IPv6Address(text).packed


def ipv4_packet(src: bytes, dst: bytes, proto: int, l4: bytes, ident: int, options: bytes = b"",
                flags_frag: int = 0x4000, ttl: int = 64, total_len: int | None = None) -> bytes:
    ihl = 5 + len(options) // 4
    tl = total_len if total_len is not None else 4 * ihl + len(l4)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, tl, ident, flags_frag, ttl, proto, 0, src, dst) + options
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return hdr + l4


def ipv6_packet(src: bytes, dst: bytes, proto: int, l4: bytes, ext: list[tuple[int, bytes]] = ()) -> bytes:
    """ext: [(header type, header bytes with a placeholder next-header byte)], in order."""
    chain = b""
    types = [t for t, _ in ext] + [proto]
    for i, (_, body) in enumerate(ext):
        chain += bytes((types[i + 1],)) + body[1:]
    payload = chain + l4
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), types[0], 64, src, dst) + payload


def l4_checksum(src: bytes, dst: bytes, proto: int, seg: bytes) -> int:
    if len(src) == 4:
        pseudo = src + dst + struct.pack("!BBH", 0, proto, len(seg))
    else:
        pseudo = src + dst + struct.pack("!IxxxB", len(seg), proto)
    return csum(pseudo + seg)


def tcp_segment(src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int, flags: int,
                payload: bytes, win: int = 8192) -> bytes:
    seg = struct.pack("!HHIIHHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 12 | flags, win, 0, 0) + payload
    c = l4_checksum(src, dst, 6, seg)
    return seg[:16] + struct.pack("!H", c) + seg[18:]


def udp_datagram(src: bytes, dst: bytes, sport: int, dport: int, payload: bytes) -> bytes:
    seg = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    c = l4_checksum(src, dst, 17, seg) or 0xFFFF
    return seg[:6] + struct.pack("!H", c) + seg[8:]


# ---- link layers --------------------------------------------------------------------------------------------

MAC = (bytes.fromhex("020000000010"), bytes.fromhex("020000000020"))  # client, server


def ethertype_of(l3: bytes) -> int:
    return 0x86DD if l3[0] >> 4 == 6 else 0x0800


def eth(d: int, l3: bytes, tags: list[tuple[int, int]] = ()) -> bytes:
    """tags: [(TPID, VLAN id)] outermost first."""
    head = MAC[1 - d] + MAC[d]
    for tpid, vid in tags:
        head += struct.pack("!HH", tpid, vid & 0x0FFF)
    return head + struct.pack("!H", ethertype_of(l3)) + l3


def sll(d: int, l3: bytes) -> bytes:
    # packet type (0 to us, 4 outgoing), ARPHRD_ETHER, address length 6, address (8 bytes), protocol
    return struct.pack("!HHH8sH", 4 if d == C else 0, 1, 6, MAC[d] + b"\x00\x00", ethertype_of(l3)) + l3


def sll2(d: int, l3: bytes) -> bytes:
    # protocol, reserved, interface index, ARPHRD_ETHER, packet type, address length, address (8 bytes)
    return struct.pack("!HHIHBB8s", ethertype_of(l3), 0, 2, 1, 4 if d == C else 0, 6, MAC[d] + b"\x00\x00") + l3


def null(l3: bytes, af6: int = 30) -> bytes:
    # BSD loopback: address family in the capturing host's byte order (little-endian here); AF_INET 2,
    # AF_INET6 30 on Darwin (24 on NetBSD/OpenBSD, 28 on FreeBSD).
    return struct.pack("<I", af6 if l3[0] >> 4 == 6 else 2) + l3


# ---- a TCP conversation -------------------------------------------------------------------------------------

class Conv:
    """Builds the IP packets of one TCP conversation with correct sequence and acknowledgement numbers."""

    def __init__(self, ipv6: bool = False, cport: int = 50200, sport: int = 502,
                 client: str | None = None, server: str | None = None,
                 ip_options: tuple[bytes, bytes] = (b"", b""), ext6: list = ()):
        if ipv6:
            self.addr = (v6(client or "2001:db8::10"), v6(server or "2001:db8::20"))
        else:
            self.addr = (v4(client or "192.168.1.10"), v4(server or "192.168.1.20"))
        self.port = (cport, sport)
        self.seq = [1000, 50000]
        self.ident = [0x100, 0x900]
        self.ip_options = ip_options
        self.ext6 = ext6
        self.ipv6 = ipv6

    def ip(self, d: int, proto: int, l4: bytes) -> bytes:
        if self.ipv6:
            return ipv6_packet(self.addr[d], self.addr[1 - d], proto, l4, self.ext6)
        self.ident[d] += 1
        return ipv4_packet(self.addr[d], self.addr[1 - d], proto, l4, self.ident[d], self.ip_options[d])

    def seg(self, d: int, flags: int, payload: bytes = b"", seq: int | None = None, advance: bool = True,
            ack: int | None = None) -> bytes:
        s = self.seq[d] if seq is None else seq
        a = (self.seq[1 - d] if ack is None else ack) if flags & ACK else 0
        if advance:
            self.seq[d] = s + len(payload) + (1 if flags & (SYN | FIN) else 0)
        return self.ip(d, 6, tcp_segment(self.addr[d], self.addr[1 - d], self.port[d], self.port[1 - d],
                                         s, a, flags, payload))

    def lose(self, d: int, payload: bytes) -> None:
        """The segment was sent but the tap never saw it."""
        self.seq[d] += len(payload)

    def handshake(self) -> list[tuple[int, bytes]]:
        return [(C, self.seg(C, SYN)), (S, self.seg(S, SYN | ACK)), (C, self.seg(C, ACK))]

    def close(self) -> list[tuple[int, bytes]]:
        return [(C, self.seg(C, FIN | ACK)), (S, self.seg(S, FIN | ACK)), (C, self.seg(C, ACK))]

    def data(self, d: int, payload: bytes, **kw) -> tuple[int, bytes]:
        return (d, self.seg(d, PSH | ACK, payload, **kw))


# ---- Modbus/TCP ADUs ----------------------------------------------------------------------------------------

def mb_req(tid: int, addr: int = 0, qty: int = 2, unit: int = 1) -> bytes:
    """FC3 request: MBAP (tid, protocol 0, length 6, unit) + FC 3 + start address + quantity (12 bytes)."""
    return struct.pack("!HHHBBHH", tid, 0, 6, unit, 3, addr, qty)


def mb_resp(tid: int, qty: int = 2, unit: int = 1, base: int = 0x1000) -> bytes:
    """FC3 response: MBAP + FC 3 + byte count + registers (9 + 2 * qty bytes)."""
    regs = b"".join(struct.pack("!H", base + tid * 16 + i) for i in range(qty))
    return struct.pack("!HHHBBB", tid, 0, 3 + 2 * qty, unit, 3, 2 * qty) + regs


def modbus_session(conv: Conv, tids=(1,)) -> list[tuple[int, bytes]]:
    pkts = conv.handshake()
    for t in tids:
        pkts.append(conv.data(C, mb_req(t)))
        pkts.append(conv.data(S, mb_resp(t)))
    return pkts + conv.close()


# ---- pcap / pcapng writers ----------------------------------------------------------------------------------

def pcap_bytes(linktype: int, frames: list, snaplen: int = 65535, nsec: bool = False, big_endian: bool = False) -> bytes:
    """frames: bytes, or (bytes captured, original length)."""
    e = ">" if big_endian else "<"
    magic = 0xA1B23C4D if nsec else 0xA1B2C3D4
    out = [struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    for i, f in enumerate(frames):
        data, orig = (f, len(f)) if isinstance(f, bytes) else f
        frac = i * 1000 + 7  # 1 ms apart, plus 7 µs (or ns) so the fraction is never 0
        out.append(struct.pack(e + "IIII", T0, frac * 1000 + 123 if nsec else frac, len(data), orig) + data)
    return b"".join(out)


def pcapng_bytes(linktype: int, frames: list[bytes]) -> bytes:
    def block(btype: int, body: bytes) -> bytes:
        body += b"\x00" * (-len(body) % 4)
        n = 12 + len(body)
        return struct.pack("<II", btype, n) + body + struct.pack("<I", n)
    # Section Header Block (byte-order magic, version 1.0, section length unknown), Interface Description
    # Block (link type, snaplen; default resolution µs), Enhanced Packet Blocks.
    out = [block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)),
           block(0x00000001, struct.pack("<HHI", linktype, 0, 65535))]
    for i, f in enumerate(frames):
        ts = T0 * 1_000_000 + i * 1000 + 7
        out.append(block(0x00000006, struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(f), len(f)) + f))
    return b"".join(out)


# ---- the fixtures -------------------------------------------------------------------------------------------

FIXTURES: list[dict] = []


def fixture(name: str, linktype: str, contains: str, expect: str, frames=None, data: bytes | None = None,
            **facts) -> None:
    """Registers one file. facts are the machine-readable expectations (see README)."""
    if data is None:
        assert facts["packets"] == len(frames), (name, facts["packets"], len(frames))
        data = pcap_bytes(LINKTYPE[linktype], frames, snaplen=facts.pop("snaplen", 65535))
    else:
        facts.pop("snaplen", None)
    (OUT / name).write_bytes(data)
    FIXTURES.append(dict(file=name, linktype=LINKTYPE.get(linktype, linktype), contains=contains, expect=expect,
                         size=len(data), **facts))


def modbus_facts(req: int, resp: int, tcp_flows: int = 1, udp_flows: int = 0, **more) -> dict:
    return dict(tcp_flows=tcp_flows, udp_flows=udp_flows, modbus_requests=req, modbus_responses=resp, **more)


def build() -> None:
    OUT.mkdir(parents=True, exist_ok=True)

    # 1. Baseline: Ethernet II / IPv4 / TCP, two transactions.
    pk = modbus_session(Conv(), (1, 2))
    fixture("ethernet-modbus.pcap", "ethernet",
            "Ethernet II, IPv4, one Modbus/TCP session: handshake, 2 FC3 request/response pairs, FIN close",
            "10 packets, 1 TCP flow (192.168.1.10:50200 -> 192.168.1.20:502, closed by FIN), 2 requests "
            "(frames 4, 6) and 2 responses (frames 5, 7), all paired; no anomaly. The baseline the other files "
            "are compared with.",
            [eth(d, p) for d, p in pk], packets=10, **modbus_facts(2, 2, request_frames=[4, 6], response_frames=[5, 7]))
    baseline = [eth(d, p) for d, p in modbus_session(Conv(), (1,))]

    # 2. VLANs.
    pk = modbus_session(Conv(), (1,))
    fixture("vlan-8021q.pcap", "ethernet", "The session of ethernet-modbus.pcap (1 transaction) inside an 802.1Q tag, VLAN 100",
            "8 packets, 1 TCP flow with VLAN id 100, 1 request (frame 4) and 1 response (frame 5).",
            [eth(d, p, [(0x8100, 100)]) for d, p in pk], packets=8, vlan=[100], **modbus_facts(1, 1))
    fixture("vlan-qinq.pcap", "ethernet",
            "QinQ: outer 802.1ad S-tag (TPID 0x88A8) VLAN 200, inner 802.1Q C-tag VLAN 100, then the session",
            "8 packets, 1 TCP flow; both tags skipped (VLAN ids 200 outer / 100 inner; which one keys the flow "
            "is the engine's documented choice); 1 request, 1 response.",
            [eth(d, p, [(0x88A8, 200), (0x8100, 100)]) for d, p in pk], packets=8, vlan=[200, 100],
            **modbus_facts(1, 1))
    a = modbus_session(Conv(), (1,))
    b = modbus_session(Conv(), (7,))
    frames = []
    for (da, pa), (db, pb) in zip(a, b):
        frames.append(eth(da, pa, [(0x8100, 100)]))
        frames.append(eth(db, pb, [(0x8100, 101)]))
    fixture("vlan-same-tuple.pcap", "ethernet",
            "Two sessions with the SAME IPs and ports, one on VLAN 100 and one on VLAN 101, packets interleaved",
            "16 packets, 2 TCP flows (the VLAN id is part of the flow key), each with 1 request and 1 response "
            "(transaction ids 1 on VLAN 100, 7 on VLAN 101). Without the VLAN in the key the streams would "
            "collide and show duplicate/retransmitted data.",
            frames, packets=16, vlan=[100, 101], **modbus_facts(2, 2, tcp_flows=2))

    # 3. Linux cooked captures.
    fixture("sll.pcap", "sll", "Linux cooked capture v1 (LINKTYPE_LINUX_SLL 113, 16-byte header), the 1-transaction session",
            "8 packets, 1 TCP flow, 1 request, 1 response.", [sll(d, p) for d, p in pk], packets=8, **modbus_facts(1, 1))
    fixture("sll2.pcap", "sll2", "Linux cooked capture v2 (LINKTYPE_LINUX_SLL2 276, 20-byte header), the same session",
            "8 packets, 1 TCP flow, 1 request, 1 response.", [sll2(d, p) for d, p in pk], packets=8, **modbus_facts(1, 1))

    # 4. Raw IP and BSD loopback.
    p6 = modbus_session(Conv(ipv6=True), (1,))
    fixture("raw-ip-101.pcap", "raw",
            "LINKTYPE_RAW (101; libpcap reports DLT_RAW 12): an IPv4 session then an IPv6 session, no link header",
            "16 packets, 2 TCP flows (one IPv4, one IPv6 2001:db8::10 -> 2001:db8::20), the IP version taken "
            "from the first nibble; 2 requests, 2 responses.",
            [p for _, p in pk] + [p for _, p in p6], packets=16, **modbus_facts(2, 2, tcp_flows=2))
    fixture("raw-ipv4-228.pcap", "ipv4", "LINKTYPE_IPV4 (228): the IPv4 session, no link header",
            "8 packets, 1 TCP flow, 1 request, 1 response.", [p for _, p in pk], packets=8, **modbus_facts(1, 1))
    fixture("raw-ipv6-229.pcap", "ipv6", "LINKTYPE_IPV6 (229): the session over IPv6, no link header",
            "8 packets, 1 TCP flow [2001:db8::10]:50200 -> [2001:db8::20]:502, 1 request, 1 response.",
            [p for _, p in p6], packets=8, **modbus_facts(1, 1))
    dns6 = Conv(ipv6=True, cport=53000, sport=53)
    q = struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + b"\x03plc\x05plant\x05local\x00\x00\x1c\x00\x01"
    r = struct.pack("!HHHHHH", 0x1234, 0x8180, 1, 0, 0, 0) + b"\x03plc\x05plant\x05local\x00\x00\x1c\x00\x01"
    udp6 = [dns6.ip(C, 17, udp_datagram(dns6.addr[0], dns6.addr[1], 53000, 53, q)),
            dns6.ip(S, 17, udp_datagram(dns6.addr[1], dns6.addr[0], 53, 53000, r))]
    fixture("null-loopback.pcap", "null",
            "BSD loopback (LINKTYPE_NULL 0, 4-byte address family in little-endian host order): the IPv4 session "
            "(AF_INET 2), then an IPv6 DNS query/response over UDP (AF_INET6 30, as on macOS)",
            "10 packets, 1 TCP flow + 1 UDP flow (IPv6, port 53), 1 request, 1 response. AF_INET6 is 24, 28 or "
            "30 depending on the BSD: all three mean IPv6.",
            [null(p) for _, p in pk] + [null(p) for p in udp6], packets=10, **modbus_facts(1, 1, udp_flows=1))

    # 5. IPv6 extension headers and fragments, IPv4 options, IPv4 fragments.
    hbh = bytes((0, 0)) + bytes.fromhex("05020000") + bytes.fromhex("0100")          # Router Alert + PadN(0): 8 bytes
    dst_opts = bytes((0, 1)) + bytes.fromhex("010c") + bytes(12)                      # PadN(12): 16 bytes (len 1)
    px = modbus_session(Conv(ipv6=True, ext6=[(0, hbh), (60, dst_opts)]), (1,))
    fixture("ipv6-exthdr.pcap", "ethernet",
            "Ethernet, IPv6 with a Hop-by-Hop header (8 bytes, Router Alert) and a Destination Options header "
            "(16 bytes: header length 1 = 8-octet units after the first 8) before TCP, on every packet",
            "8 packets, 1 TCP flow over IPv6 (next-header chain 0 -> 60 -> 6 followed), 1 request, 1 response. "
            "A decoder that does not walk the chain sees no TCP at all.",
            [eth(d, p) for d, p in px], packets=8, **modbus_facts(1, 1))
    p6 = modbus_session(Conv(ipv6=True), (1,))
    request = p6[3][1]                                                                # IPv6 header + TCP + FC3 request

    def fragment6(start: int, end: int, more: bool) -> bytes:
        body = struct.pack("!BBHI", 6, 0, start | int(more), 0xC0FFEE) + request[40 + start:40 + end]
        return request[:4] + struct.pack("!H", len(body)) + bytes((44,)) + request[7:40] + body
    pieces6 = [fragment6(0, 8, True), fragment6(8, 24, True), fragment6(24, len(request) - 40, False)]
    fixture("ipv6-fragments.pcap", "ethernet",
            "Ethernet, IPv6: a Modbus session whose request segment (TCP header and FC3 request, 32 bytes) is cut into 3 "
            "fragments (fragment header, offsets 0, 8, 24, identification 0xC0FFEE) that arrive last, first, middle",
            "10 packets, 1 TCP flow over IPv6; the 3 fragments are reassembled into the request, completed at frame 6 "
            "(the middle fragment), paired with the response at frame 7.",
            [eth(d, p) for d, p in p6[:3]] + [eth(C, pieces6[2]), eth(C, pieces6[0]), eth(C, pieces6[1])]
            + [eth(d, p) for d, p in p6[4:]],
            packets=10, fragments=3, datagrams_reassembled=1, request_frames=[6], response_frames=[7], **modbus_facts(1, 1))
    router_alert = bytes.fromhex("94040000")                                          # 4 bytes: IHL 6
    record_route = bytes.fromhex("070b04") + bytes(8) + b"\x00"                       # RR with 2 slots + EOL: IHL 8
    po = modbus_session(Conv(ip_options=(router_alert, record_route)), (1,))
    fixture("ipv4-options.pcap", "ethernet",
            "IPv4 with options: client packets carry Router Alert (IHL 6), server packets Record Route (IHL 8)",
            "8 packets, 1 TCP flow, 1 request, 1 response: the TCP header is found at IHL*4, not at 20.",
            [eth(d, p) for d, p in po], packets=8, **modbus_facts(1, 1))
    src, dst = v4("192.168.1.10"), v4("192.168.1.30")
    syslog = b"<134>1 2024-01-01T00:00:00Z hmi-01 scada - - - " + b"tag FIC101 value 42.0; " * 60  # 1427 bytes
    dgram = udp_datagram(src, dst, 40514, 514, syslog)
    frags = []
    for off in range(0, len(dgram), 552):                                             # 3 fragments: 552, 552, rest
        more = 0x2000 if off + 552 < len(dgram) else 0
        frags.append(eth(C, ipv4_packet(src, dst, 17, dgram[off:off + 552], 0x4242, flags_frag=more | off // 8)))
    dgram2 = udp_datagram(src, dst, 40515, 514, syslog[:900])
    frag2 = [eth(C, ipv4_packet(src, dst, 17, dgram2[off:off + 552], 0x4243,
                                flags_frag=(0x2000 if off == 0 else 0) | off // 8)) for off in (0, 552)]
    whole = eth(C, ipv4_packet(src, dst, 17, udp_datagram(src, dst, 40516, 514, b"<134>1 - hmi-01 scada - - - ok"), 0x4244,
                               flags_frag=0x4000))
    fixture("ipv4-fragments.pcap", "ethernet",
            f"IPv4 fragments: a {len(dgram)}-byte UDP syslog datagram in 3 fragments (offsets 0, 552, 1104) in order; a "
            "second datagram in 2 fragments that arrive last fragment first; one unfragmented datagram",
            "6 packets; 5 fragments reassembled into 2 datagrams (the first completes at frame 3, the second at frame 5, "
            "with its first fragment; non-first fragments must not be parsed as UDP): 3 UDP flows, "
            "192.168.1.10:40514, :40515 and :40516 -> 192.168.1.30:514, each of one packet, as tshark shows them. No Modbus.",
            [*frags, frag2[1], frag2[0], whole], packets=6, fragments=5, datagrams_reassembled=2, tcp_flows=0, udp_flows=3,
            modbus_requests=0, modbus_responses=0)

    # 6. TCP reassembly cases.
    cv = Conv()
    req, resp = mb_req(1), mb_resp(1)
    pk = cv.handshake() + [cv.data(C, req[:5]), cv.data(C, req[5:]), cv.data(S, resp[:9]), cv.data(S, resp[9:])] + cv.close()
    fixture("tcp-split-pdu.pcap", "ethernet",
            "A Modbus request split across two segments inside the MBAP header (5 + 7 bytes, frames 4-5) and its "
            "response split inside the PDU (9 + 4 bytes, frames 6-7)",
            "10 packets, 1 TCP flow, 1 request completed by frame 5, 1 response completed by frame 7, paired; "
            "no anomaly.",
            [eth(d, p) for d, p in pk], packets=10, **modbus_facts(1, 1, request_frames=[5], response_frames=[7]))

    cv = Conv()
    pk = cv.handshake() + [cv.data(C, mb_req(1) + mb_req(2, addr=10)), cv.data(S, mb_resp(1) + mb_resp(2)),
                           cv.data(C, mb_req(3)), cv.data(S, mb_resp(3))] + cv.close()
    fixture("tcp-coalesced.pcap", "ethernet",
            "Two Modbus requests (tid 1, 2) in one segment (frame 4), both responses in one segment (frame 5), "
            "then a normal transaction (tid 3)",
            "10 packets, 1 TCP flow, 3 requests (frames 4, 4, 6), 3 responses (frames 5, 5, 7), all paired; "
            "no anomaly.",
            [eth(d, p) for d, p in pk], packets=10,
            **modbus_facts(3, 3, request_frames=[4, 4, 6], response_frames=[5, 5, 7]))

    cv = Conv()
    r1, r2 = mb_req(1), mb_req(2, addr=10)
    hs = cv.handshake()
    s0 = cv.seq[C]
    late = cv.data(C, r2, seq=s0 + len(r1), advance=False)
    early = cv.data(C, r1, seq=s0, advance=False)
    cv.seq[C] = s0 + len(r1) + len(r2)
    pk = hs + [late, early, cv.data(S, mb_resp(1)), cv.data(S, mb_resp(2))] + cv.close()
    fixture("tcp-out-of-order.pcap", "ethernet",
            "Two pipelined requests whose segments arrive out of order: tid 2 (frame 4) before tid 1 (frame 5); "
            "responses in order",
            "10 packets, 1 TCP flow; frame 4 is held in the out-of-order buffer, frame 5 fills the "
            "hole and both requests are delivered in stream order (tid 1 then 2) at frame 5; 2 responses "
            "(frames 6, 7), all paired; no gap; 1 out-of-order segment counted.",
            [eth(d, p) for d, p in pk], packets=10,
            **modbus_facts(2, 2, request_frames=[5, 5], response_frames=[6, 7], out_of_order=1))

    cv = Conv()
    hs = cv.handshake()
    q1, q2, q3 = mb_req(1), mb_req(2, addr=16), mb_req(3, addr=32)
    s1 = cv.seq[C]
    f4 = cv.data(C, q1)
    f5 = cv.data(C, q1, seq=s1, advance=False)                      # exact duplicate
    f6 = cv.data(S, mb_resp(1))
    s2 = cv.seq[C]
    f7 = cv.data(C, q2)
    f8 = cv.data(S, mb_resp(2))
    f9 = cv.data(C, q2[6:] + q3, seq=s2 + 6, advance=False)         # last 6 bytes of tid 2 again + all of tid 3
    cv.seq[C] = s2 + len(q2) + len(q3)
    f10 = cv.data(S, mb_resp(3))
    pk = hs + [f4, f5, f6, f7, f8, f9, f10] + cv.close()
    fixture("tcp-retransmission.pcap", "ethernet",
            "Retransmissions with the same bytes: request tid 1 sent twice (frames 4, 5, identical); later a "
            "segment (frame 9) that repeats the last 6 bytes of request tid 2 and carries request tid 3",
            "13 packets, 1 TCP flow, 3 requests (frames 4, 7, 9) and 3 responses (frames 6, 8, 10), all paired; "
            "the duplicate (frame 5) is dropped and the 6 repeated bytes of frame 9 are trimmed (counted as "
            "retransmitted bytes, not an anomaly); tid 1 is NOT decoded twice.",
            [eth(d, p) for d, p in pk], packets=13,
            **modbus_facts(3, 3, request_frames=[4, 7, 9], response_frames=[6, 8, 10], retransmissions=2))

    cv = Conv()
    hs = cv.handshake()
    s1 = cv.seq[C]
    orig = mb_req(1, addr=0x0010)
    forged = mb_req(1, addr=0x0FF0)
    pk = hs + [cv.data(C, orig), cv.data(C, forged, seq=s1, advance=False), cv.data(S, mb_resp(1)),
               cv.data(C, mb_req(2)), cv.data(S, mb_resp(2))] + cv.close()
    fixture("tcp-overlap-conflict.pcap", "ethernet",
            "A retransmission with DIFFERENT bytes: request tid 1 for address 0x0010 (frame 4), then the same "
            "sequence range again asking for address 0x0FF0 (frame 5), as an evasion attempt would",
            "11 packets, 1 TCP flow; the first copy wins (request tid 1 reads address 16, frame 4), frame 5 is "
            "dropped and reported as an overlap with different data (an anomaly, never silent); 2 requests, "
            "2 responses, all paired.",
            [eth(d, p) for d, p in pk], packets=11,
            **modbus_facts(2, 2, request_frames=[4, 7], response_frames=[6, 8], overlap_conflicts=1,
                           first_request_address=16))

    cv = Conv()
    hs = cv.handshake()
    t = [cv.data(C, mb_req(1)), cv.data(S, mb_resp(1))]
    cv.lose(C, mb_req(2, addr=20))                                  # never captured
    t += [cv.data(S, mb_resp(2)), cv.data(C, mb_req(3, addr=30)), cv.data(S, mb_resp(3)),
          cv.data(C, mb_req(4, addr=40)), cv.data(S, mb_resp(4))]
    pk = hs + t + cv.close()
    fixture("tcp-gap.pcap", "ethernet",
            "A client segment (request tid 2, 12 bytes) that never arrives: the server's response to it (frame 6) "
            "acknowledges bytes the monitor never saw; requests tid 3 and 4 follow",
            "13 packets, 1 TCP flow; one gap of 12 bytes client->server, reported as a gap event and counted, "
            "never silent. Frame 6 acknowledges the unseen bytes, so the gap can be declared there and frame 7 "
            "is then in order; an engine that waits until an ACK covers the held frame 7 (frame 8) completes "
            "tid 3 at frame 8, also acceptable; it must declare the gap by the FIN at the latest. The dissector resynchronises: requests tid 1, 3, 4 (frames 4, 7, 9), responses "
            "tid 1-4 (frames 5, 6, 8, 10); the response tid 2 has no request (unmatched).",
            [eth(d, p) for d, p in pk], packets=13,
            **modbus_facts(3, 4, request_frames=[4, 7, 9], response_frames=[5, 6, 8, 10], gaps=1, gap_bytes=12,
                           request_frames_if_gap_declared_at_frame_8=[4, 8, 9]))

    cv = Conv()
    hs = cv.handshake()
    big = mb_resp(2, qty=20)                                        # 49 bytes, sent as 30 + 19
    t = [cv.data(C, mb_req(1)), cv.data(S, mb_resp(1)), cv.data(C, mb_req(2, qty=20))]
    cv.lose(S, big[:30])
    t += [cv.data(S, big[30:]), cv.data(C, mb_req(3)), cv.data(S, mb_resp(3))]
    pk = hs + t + cv.close()
    fixture("tcp-gap-midpdu.pcap", "ethernet",
            "A gap inside a PDU: the response to tid 2 (49 bytes) is sent in two segments and the first (30 "
            "bytes, with the MBAP header) is lost; its 19-byte tail arrives (frame 7); then tid 3",
            "12 packets, 1 TCP flow; one gap of 30 bytes server->client (frame 7 starts beyond the hole, frame "
            "8 acknowledges it all); the 19-byte tail is not a PDU and is "
            "skipped while resynchronising (no bogus PDU from register bytes); requests tid 1-3, responses tid 1 "
            "and 3 (frames 5, 9); request tid 2 ends unanswered.",
            [eth(d, p) for d, p in pk], packets=12,
            **modbus_facts(3, 2, request_frames=[4, 6, 8], response_frames=[5, 9], gaps=1, gap_bytes=30))

    # 7. Truncation by snaplen.
    cv = Conv()
    pk = cv.handshake() + [cv.data(C, mb_req(1)), cv.data(S, mb_resp(1, qty=10))] + cv.close()
    frames = []
    for d, p in pk:
        f = eth(d, p)
        frames.append((f[:64], len(f)) if len(f) > 64 else f)
    other = Conv(cport=50300)
    o1 = eth(C, other.seg(C, SYN))
    o2 = eth(C, other.seg(C, ACK, mb_req(9)))
    frames += [(o1[:24], len(o1)), (o2[:40], len(o2))]
    fixture("snaplen-truncated.pcap", "ethernet",
            "Captured with snaplen 64: the Modbus request (66-byte frame) and response (83 bytes) are cut to 64 "
            "bytes (caplen < len); then two packets of another flow cut inside the IPv4 header (caplen 24) and "
            "inside the TCP header (caplen 40)",
            "10 packets; 1 complete TCP flow (8 packets; handshake and close are whole); the request misses 2 "
            "bytes and the response 19, so no whole Modbus PDU is seen: the missing bytes are reported (gap or "
            "truncation counter), never read; 2 packets counted as truncated by reason (IPv4 header, TCP header) "
            "and skipped. No crash, no out-of-bounds read.",
            frames, packets=10, snaplen=64, tcp_flows=1, udp_flows=0, modbus_requests=0, modbus_responses=0,
            truncated_headers=2, truncated_payloads=2)

    # 8. Files that are broken, unusual or empty.
    full = pcap_bytes(1, baseline)
    fixture("truncated-file.pcap", "ethernet",
            "The 8-packet baseline session cut in the middle of the last record's data (a capture whose writer died)",
            "7 packets are read and processed, then libpcap's error \"truncated dump file; tried to read N "
            "captured bytes, only got M\" is reported as one clear line on stderr, and the exit status says the "
            "input was bad (2); no crash. Flows seen so far are still flushed.",
            data=full[:-20], packets=7, read_error=True, tcp_flows=1, modbus_requests=1, modbus_responses=1)
    fixture("truncated-record-header.pcap", "ethernet",
            "The baseline cut in the middle of the 5th record header (8 of 16 bytes)",
            "4 packets read, then libpcap's \"truncated dump file; tried to read 16 header bytes, only got 8\": "
            "clear error, exit 2, no crash.",
            data=full[:24 + sum(16 + len(f) for f in baseline[:4]) + 8], packets=4, read_error=True, tcp_flows=1,
            modbus_requests=1, modbus_responses=0)
    fixture("truncated-header.pcap", "ethernet", "Only the first 10 bytes of a pcap file header",
            "Opening fails with libpcap's message (\"truncated dump file; tried to read 24 file header bytes, "
            "only got 6\": libpcap reads the 4-byte magic first): one clear line, exit 2, no packets.",
            data=full[:10], packets=0, open_error=True)
    fixture("unknown-linktype.pcap", "user0",
            "A valid pcap with link type 147 (LINKTYPE_USER0, private use) and 3 packets of arbitrary bytes",
            "Rejected with a clear \"unsupported link type 147\" message and exit 2 (or, if the engine chooses to "
            "read on, 3 packets all counted as undecodable); never decoded as Ethernet.",
            [b"\x01\x02\x03\x04" * 8, b"\xff" * 20, bytes(range(64))], packets=3, unsupported_linktype=True)
    (OUT / "garbage.pcap").write_bytes(b"This is not a capture file. It only ends in .pcap.\n" * 4 + bytes(range(256)))
    FIXTURES.append(dict(file="garbage.pcap", linktype=None,
                         contains="Text and bytes 0..255 that are not pcap or pcapng (no magic number)",
                         expect="Opening fails with libpcap's \"unknown file format\": one clear line, exit 2.",
                         size=(OUT / "garbage.pcap").stat().st_size, packets=0, open_error=True))
    fixture("empty.pcap", "ethernet", "A valid pcap file header and no packets",
            "0 packets, 0 flows, exit 0; the summary still prints.", [], packets=0, tcp_flows=0, udp_flows=0,
            modbus_requests=0, modbus_responses=0)
    fixture("modbus.pcapng", "ethernet",
            "The 8-packet baseline session written as pcapng (SHB, IDB, EPBs; microsecond resolution)",
            "Same as the baseline: 8 packets, 1 TCP flow, 1 request, 1 response (libpcap reads pcapng through "
            "pcap_open_offline).", data=pcapng_bytes(1, baseline), packets=8, **modbus_facts(1, 1))
    fixture("modbus-nsec-bigendian.pcap", "ethernet",
            "The baseline session as a big-endian pcap with nanosecond timestamps (magic 0xA1B23C4D)",
            "Same as the baseline: 8 packets, 1 TCP flow, 1 request, 1 response; libpcap swaps the byte order; "
            "times have sub-microsecond digits (…007123 ns) that a µs-precision reader truncates.",
            data=pcap_bytes(1, baseline, nsec=True, big_endian=True), packets=8, **modbus_facts(1, 1))


# Where tshark 4.0.17 (the conformance oracle) legitimately differs from what the engine should report.
TSHARK_NOTES = {
    "tcp-split-pdu.pcap": "tshark shows only the response: its Modbus/TCP dissector rejects a first segment "
                          "shorter than 8 bytes, so it never reassembles a request split inside the MBAP header "
                          "(it does when the split is at byte 8 or later).",
    "tcp-out-of-order.pcap": "tshark agrees only with `-o tcp.reassemble_out_of_order:TRUE` (off by default in "
                             "4.0: it then decodes frame 4 alone and skips frame 5).",
    "tcp-retransmission.pcap": "tshark agrees only with `-o tcp.reassemble_out_of_order:TRUE` (by default it calls "
                               "frame 9 a retransmission and loses request tid 3).",
    "vlan-same-tuple.pcap": "`tshark -qz conv,tcp` shows ONE conversation (its key has no VLAN) and mixes the two "
                            "streams; the engine keys flows by VLAN too and must show 2.",
    "snaplen-truncated.pcap": "tshark decodes the cut Modbus PDUs partially (fields up to the cut).",
}


def write_readme() -> None:
    rows = []
    for f in FIXTURES:
        lt = f["linktype"]
        rows.append(f"| `{f['file']}` | {'—' if lt is None else lt} | {f['size']} | {f['contains']} | {f['expect']} |")
    text = f"""# Edge-case captures for the foundation tests

Made by `scripts/gen/edge-fixtures.py` (standard-library Python, deterministic: rerun it and `git diff` shows
nothing). Do not edit the files by hand: change the script and rerun it. `expected.json` holds the same
expectations in machine-readable form (packets, flows, Modbus requests/responses and the frames that complete
them, gaps, fragments, errors) for parameterised tests.

Common to the TCP cases: client 192.168.1.10:50200 (IPv6: 2001:db8::10), server 192.168.1.20:502 (2001:db8::20),
client ISN 1000, server ISN 50000, no TCP options, Modbus/TCP FC3 Read Holding Registers: requests are
`tid 0000 0006 01 03 addr qty` (12 bytes), responses `tid 0000 len 01 03 count registers`. Frame numbers are
1-based (tshark's `frame.number`); "request frame" is the packet that completed the PDU. Timestamps start at
2024-01-01T00:00:00.000007Z, 1 ms apart. IP, TCP and UDP checksums are valid everywhere.

| File | Link type | Bytes | What it contains | What the engine should report |
|---|---|---:|---|---|
""" + "\n".join(rows) + """

Checked with tshark 4.0.17 (`tshark -r FILE -qz conv,tcp` / `conv,udp`, `-Y mbtcp -T fields -e frame.number
-e mbtcp.trans_id -e modbus.reference_num`) and `capinfos`: packet counts, conversations and the frames that
complete each Modbus PDU agree with the table, except where tshark itself differs:

""" + "\n".join(f"- `{k}`: {v}" for k, v in TSHARK_NOTES.items()) + "\n"
    (OUT / "README.md").write_text(text)
    for f in FIXTURES:
        if f["file"] in TSHARK_NOTES:
            f["tshark_differs"] = TSHARK_NOTES[f["file"]]
    (OUT / "expected.json").write_text(json.dumps({f["file"]: {k: v for k, v in f.items() if k not in ("file", "contains", "size")}
                                                   for f in FIXTURES}, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    build()
    write_readme()
    print(f"edge-fixtures: wrote {len(FIXTURES)} captures, README.md and expected.json to {OUT}", file=sys.stderr)
