#!/usr/bin/env python3
"""pcapgen: deterministic generator of realistic ICS request/response captures (classic pcap).

    pcapgen.py --profile modbus --packets 2000000 --flows 10000 --seed 1 -o modbus.pcap

Pure Python 3 standard library (`struct` only), so it needs nothing installed and writes a few hundred
thousand packets per second. The same arguments always give a byte-identical file.

What it writes
  - Classic pcap, little-endian, microsecond timestamps, LINKTYPE_ETHERNET (1), snaplen 65535.
  - Ethernet II / IPv4 (DF, valid header checksum) / TCP or UDP or ICMP, all with valid checksums.
    Frames shorter than 60 bytes are zero-padded to 60 as a SPAN port delivers them, so readers must trust
    the IPv4 total length, not the captured length. --vlan ID tags every frame with one 802.1Q tag (priority 0)
    after the padding, as a SPAN port copying a trunk delivers them; the packets are otherwise the same.
    --link sll / sll2 writes the same packets as a Linux cooked capture gives them (`tcpdump -i any`:
    LINKTYPE_LINUX_SLL 113, LINKTYPE_LINUX_SLL2 276; no Ethernet padding) instead of Ethernet frames.
    --mirror erspan / vxlan wraps every Ethernet frame (after padding and tagging) as a remote mirror delivers it to
    a sensor: ERSPAN type II over GRE (a switch's remote SPAN) or VXLAN to UDP 4789 (AWS VPC Traffic Mirroring), in
    Ethernet and IPv4 from 192.0.2.1 to the sensor at 192.0.2.2 (valid IPv4 checksum; UDP checksum 0, as VXLAN sends).
  - TCP sessions are complete: SYN (MSS/WS/SACK options), SYN-ACK, ACK, then data with correct seq/ack
    numbers, then FIN/ACK, FIN/ACK, ACK. A request's segment acknowledges everything the server sent.
  - Flows are interleaved: at every step a random live flow (or the next in turn, --interleave rr) sends
    its next packet, so a response usually arrives after other flows' packets, as in a plant.

Profiles (see PROFILES below for the flow mix of each)
  modbus   Modbus/TCP (port 502): FC3 read holding registers, FC6 write single register, FC16 write multiple
           registers, about 0.5 % exception responses; one MBAP transaction id sequence per flow.
  dnp3     DNP3 over TCP (port 20000): link frames with valid CRCs (CRC-16/DNP), transport + application
           layers; master class polls (integrity class 0123, event class 123), explicit g30v2 range reads;
           outstation responses with g30v1/g30v2 analog values and g32v1 analog change events.
  s7comm   S7comm (port 102) over TPKT/COTP: COTP CR/CC and Setup Communication at the start of each flow,
           then Read Var jobs (about 5 % Write Var) and their Ack_Data.
  mixed    a plant: the three ICS protocols plus plain traffic (HTTP-like TCP, DNS and NTP over UDP, ICMP echo).
  plain    plain traffic only (HTTP-like TCP, DNS, NTP, ICMP echo): the non-ICS demo capture.
  handshakes  (memory benchmark) every flow opens a Modbus/TCP connection (SYN, SYN-ACK, ACK) and stays open:
           all SYNs first, then all SYN-ACKs, then all ACKs, so every flow is live at the end; streamed, nothing
           kept per flow, so it scales to millions of concurrent flows. Needs --packets == 3 * --flows.
  hostile  ICS traffic mixed with abuse: garbage on ICS ports, malformed Modbus, DNP3 with bad CRCs, TCP
           gaps / out-of-order / retransmissions with different bytes / forged SYN-ACKs / urgent data,
           Modbus requests as IPv4 fragments (reordered, tiny, repeated, conflicting, lost),
           midstream flows reset by RST, a SYN flood (spoofed sources, 1 packet per flow), a SYN port scan,
           UDP garbage.

Speed (one core of a 2-vCPU EPYC guest, otherwise idle): modbus about 220-260k packets/s written, hostile and
plain about 150-175k, s7comm about 150k, dnp3 about 75-85k (CRC-16/DNP is computed in Python, memoised where
blocks repeat), mixed about 85k. So the 2M-packet Modbus bench capture takes about 10 s, once (scripts/bench
caches it).

--packets is exact: the file holds exactly that many packets. --flows is the number of flows (5-tuples);
packets are shared out evenly between flows, except kinds with a natural fixed size (a DNS lookup is
2 packets, a SYN-flood flow 1). --concurrency caps how many flows are live at once (default: all).
"""

from __future__ import annotations

import argparse
import random
import struct
import sys
import time
import zlib

# ----------------------------------------------------------------------------------------------------------------
# Wire formats. Checksums use the identity 2**16 == 1 (mod 0xFFFF): the ones'-complement sum of 16-bit words of
# an even-length byte string equals int.from_bytes(...) mod 0xFFFF (up to 0 vs 0xFFFF), so a checksum costs one
# C-level big-int conversion instead of a Python loop, and per-flow constant fields are summed once.

PCAP_GLOBAL = struct.Struct("<IHHiIII")      # magic, major, minor, thiszone, sigfigs, snaplen, linktype
PCAP_REC = struct.Struct("<IIII")            # ts_sec, ts_usec, caplen, len
IPV4_TCP = struct.Struct("!14sBBHHHBBH4s4sHHIIHHHH")   # Ethernet + 20-byte IPv4 header + 20-byte TCP header
IPV4_UDP = struct.Struct("!14sBBHHHBBH4s4sHHHH")       # Ethernet + 20-byte IPv4 header + 8-byte UDP header
IPV4_ICMP = struct.Struct("!14sBBHHHBBH4s4sBBHHH")     # Ethernet + 20-byte IPv4 header + 8-byte ICMP echo header

LINKTYPE_ETHERNET = 1
LINKTYPES = {"ethernet": LINKTYPE_ETHERNET, "sll": 113, "sll2": 276}


MIRROR_ETHERNET = bytes.fromhex("020000000002020000000001") + b"\x08\x00"
MIRROR_IPV4 = struct.Struct("!BBHHHBBH4s4s")
# The outer IPv4 header's words but the total length and the protocol: version/IHL, DF, TTL 64, 192.0.2.1, 192.0.2.2.
MIRROR_IPV4_SUM = 0x4500 + 0x4000 + 0x4000 + 0xC000 + 0x0201 + 0xC000 + 0x0202


def mirrored(frame: bytes, kind: str, sequence: int) -> bytes:
    """`frame` wrapped as a remote mirror sends it (--mirror): ERSPAN type II (GRE with sequence number `sequence`,
    session 7) or VXLAN (VNI 7, the UDP source port taken from the frame's addresses and ports, as a tunnel endpoint
    spreads flows)."""
    if kind == "erspan":
        tunnel = struct.pack("!HHIHHI", 0x1000, 0x88BE, sequence & 0xFFFFFFFF, 0x1000, 7, 0)
        proto = 47
    else:
        sport = 49152 | (zlib.crc32(frame[26:38]) & 0x3FFF)
        tunnel = struct.pack("!HHHH", sport, 4789, 16 + len(frame), 0) + b"\x08\x00\x00\x00\x00\x00\x07\x00"
        proto = 17
    total = 20 + len(tunnel) + len(frame)
    checksum = fold(MIRROR_IPV4_SUM + total + proto)
    return MIRROR_ETHERNET + MIRROR_IPV4.pack(0x45, 0, total, 0, 0x4000, 64, proto, checksum, b"\xc0\x00\x02\x01",
                                              b"\xc0\x00\x02\x02") + tunnel + frame


def cooked(frame: bytes, link: str) -> bytes:
    """An Ethernet frame as a Linux cooked capture holds it: SLL (packet type 0, ARPHRD_ETHER, the source address,
    the protocol) or SLL2 (protocol, reserved, interface index 1, ARPHRD_ETHER, packet type 0, the source address)."""
    if link == "sll":
        return b"\x00\x00\x00\x01\x00\x06" + frame[6:12] + b"\x00\x00" + frame[12:14] + frame[14:]
    return frame[12:14] + b"\x00\x00\x00\x00\x00\x01\x00\x01\x00\x06" + frame[6:12] + b"\x00\x00" + frame[14:]
FIN, SYN, RST, PSH, ACK, URG = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
C, S = 0, 1  # direction: client (initiator) -> server, server -> client

# SYN options: MSS 1460, NOP, window scale 7, NOP, NOP, SACK permitted (12 bytes, data offset 8).
SYN_OPTS = bytes.fromhex("020405b4010303070101" "0402")
SYNACK_OPTS = bytes.fromhex("020405b4010303080101" "0402")
EMPTY = b""


def fold(total: int) -> int:
    """IPv4/TCP/ICMP checksum field for a sum computed with the mod-0xFFFF identity: a sum that is a multiple
    of 0xFFFF is the ones'-complement value 0xFFFF (the data is never all zero), giving 0x0000 (RFC 1624)."""
    return 0xFFFE - (total - 1) % 0xFFFF


def fold_udp(total: int) -> int:
    """UDP checksum field: as fold(), but a computed 0x0000 is sent as 0xFFFF (0 means "no checksum")."""
    return 0xFFFF - total % 0xFFFF


def ipv4_fragment(eth: bytes, ttl: int, src: bytes, dst: bytes, ipid: int, offset: int, data: bytes, more: bool,
                  proto: int = 6) -> bytes:
    """The Ethernet frame of one IPv4 fragment: `data` at byte `offset` (a multiple of 8) of the datagram's payload,
    MF set when `more`, DF clear, a valid header checksum."""
    word = (0x2000 if more else 0) | offset >> 3
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(data), ipid, word, ttl, proto, 0, src, dst)
    return eth + header[:10] + struct.pack("!H", fold(int.from_bytes(header, "big"))) + header[12:] + data


def ip4(text: str) -> bytes:
    return bytes(int(x) for x in text.split("."))


def ip4n(n: int) -> bytes:
    return n.to_bytes(4, "big")


class Flow:
    """Addressing and TCP state of one flow. Direction 0 is client -> server, 1 is server -> client;
    `dirs[d]` holds what never changes for a direction, so the per-packet code does one lookup."""

    __slots__ = ("dirs", "seq", "ipid", "l4c", "proto", "kind")

    def __init__(self, rng: random.Random, cip: bytes, sip: bytes, cport: int, sport: int, proto: int, kind: str):
        cmac = b"\x02\x00" + cip
        smac = b"\x02\x01" + sip
        ci, si = int.from_bytes(cip, "big"), int.from_bytes(sip, "big")
        wins = (rng.choice((64240, 65535, 8192)), rng.choice((29200, 4096, 8192)))
        # (Ethernet header, TTL, source, destination, source port, destination port, TCP window,
        #  IPv4 checksum constant: version/IHL/TOS word + DF word + TTL/protocol word + both addresses)
        self.dirs = (
            (smac + cmac + b"\x08\x00", 128, cip, sip, cport, sport, wins[0],
             0x4500 + 0x4000 + (128 << 8 | proto) + ci + si),
            (cmac + smac + b"\x08\x00", 64, sip, cip, sport, cport, wins[1],
             0x4500 + 0x4000 + (64 << 8 | proto) + ci + si),
        )
        self.seq = [rng.getrandbits(32), rng.getrandbits(32)]
        self.ipid = [rng.getrandbits(16), rng.getrandbits(16)]
        # Pseudo-header addresses and protocol + both ports: the same in both directions.
        self.l4c = ci + si + proto + cport + sport
        self.proto = proto
        self.kind = kind


class Writer:
    """Appends pcap records to an in-memory list and flushes them in large writes."""

    def __init__(self, out, rng: random.Random, start_us: int, mean_gap_us: float, vlan: int = 0, link: str = "ethernet",
                 mirror: str = ""):
        self.out = out
        self.mirror = mirror
        self.tag = struct.pack(">HH", 0x8100, vlan) if vlan else b""
        self.link = "" if link == "ethernet" else link
        self.buf: list[bytes] = []
        self.rnd = rng.random
        self.t = start_us
        self.gap2 = max(0.0, 2.0 * mean_gap_us - 1.0)
        self.packets = 0
        self.bytes = 0
        out.write(PCAP_GLOBAL.pack(0xA1B2C3D4, 2, 4, 0, 0, 65535, LINKTYPES[link]))

    def _record(self, frame: bytes) -> None:
        t = self.t = self.t + 1 + int(self.rnd() * self.gap2)
        flen = len(frame)
        if self.link:
            frame = cooked(frame, self.link)
            flen = len(frame)
        elif flen < 60:
            frame += bytes(60 - flen)
            flen = 60
        if self.tag:
            frame = frame[:12] + self.tag + frame[12:]
            flen += 4
        if self.mirror:
            frame = mirrored(frame, self.mirror, self.packets)
            flen = len(frame)
        buf = self.buf
        buf.append(PCAP_REC.pack(t // 1_000_000, t % 1_000_000, flen, flen))
        buf.append(frame)
        self.packets += 1
        self.bytes += flen
        if len(buf) > 100000:
            self.flush()

    def flush(self) -> None:
        self.out.write(b"".join(self.buf))
        self.buf.clear()

    def tcp(self, fl: Flow, d: int, flags: int, payload: bytes = EMPTY, opts: bytes = EMPTY,
            write: bool = True, seq: int | None = None, advance: bool = True) -> None:
        """One TCP segment from side d. write=False advances the sequence space without writing (a lost
        segment: a gap for the monitor). seq= overrides the sequence number (retransmission, reordering);
        advance=False leaves the side's next sequence number alone."""
        sq = fl.seq
        s = sq[d] if seq is None else seq
        a = sq[1 - d] if flags & ACK else 0
        plen = len(payload)
        if advance:
            sq[d] = (s + plen + (1 if flags & (SYN | FIN) else 0)) & 0xFFFFFFFF
        if not write:
            return
        eth, ttl, src, dst, sport, dport, win, ipc = fl.dirs[d]
        hl = 20 + len(opts)
        tl = hl + plen
        iplen = 20 + tl
        ipid = fl.ipid[d]
        fl.ipid[d] = (ipid + 1) & 0xFFFF
        offfl = hl << 10 | flags
        pi = int.from_bytes(payload, "big") << 8 if plen & 1 else int.from_bytes(payload, "big")
        if opts:
            pi += int.from_bytes(opts, "big")  # even length at an even offset: its words add up independently
        frame = IPV4_TCP.pack(eth, 0x45, 0, iplen, ipid, 0x4000, ttl, 6, 0xFFFE - (ipc + iplen + ipid - 1) % 0xFFFF,
                              src, dst, sport, dport, s, a, offfl, win,
                              0xFFFE - (fl.l4c + tl + s + a + offfl + win + pi - 1) % 0xFFFF, 0)
        # Inline of _record: this is the generator's hot path.
        t = self.t = self.t + 1 + int(self.rnd() * self.gap2)
        flen = 14 + iplen
        if plen:
            frame += payload if not opts else opts + payload
        elif opts:
            frame += opts
        if self.link:
            frame = cooked(frame, self.link)
            flen = len(frame)
        elif flen < 60:
            frame += bytes(60 - flen)
            flen = 60
        if self.tag:
            frame = frame[:12] + self.tag + frame[12:]
            flen += 4
        if self.mirror:
            frame = mirrored(frame, self.mirror, self.packets)
            flen = len(frame)
        buf = self.buf
        buf.append(PCAP_REC.pack(t // 1_000_000, t % 1_000_000, flen, flen))
        buf.append(frame)
        self.packets += 1
        self.bytes += flen
        if len(buf) > 100000:
            self.flush()

    def tcp_fragments(self, fl: Flow, d: int, flags: int, payload: bytes, cuts: list[int]) -> list[bytes]:
        """One TCP segment from side d (advancing its sequence number) as the Ethernet frames of its IPv4 fragments,
        not written: the datagram (DF clear, one IP ID, valid TCP checksum) cut at `cuts`, offsets into the IP
        payload (TCP header and data), each a multiple of 8. Rare: the checksums are computed plainly."""
        eth, ttl, src, dst, sport, dport, win, _ = fl.dirs[d]
        s, a = fl.seq[d], fl.seq[1 - d]
        fl.seq[d] = (s + len(payload)) & 0xFFFFFFFF
        tl = 20 + len(payload)
        offfl = 5 << 12 | flags
        head = struct.pack("!HHIIHHHH", sport, dport, s, a, offfl, win, 0, 0)
        pi = int.from_bytes(payload, "big") << 8 if len(payload) & 1 else int.from_bytes(payload, "big")
        checksum = 0xFFFE - (fl.l4c + tl + s + a + offfl + win + pi - 1) % 0xFFFF   # as tcp() sums it
        segment = head[:16] + struct.pack("!H", checksum) + head[18:] + payload
        ipid = fl.ipid[d]
        fl.ipid[d] = (ipid + 1) & 0xFFFF
        frames = []
        bounds = [0] + cuts + [tl]
        for lo, hi in zip(bounds, bounds[1:]):
            frames.append(ipv4_fragment(eth, ttl, src, dst, ipid, lo, segment[lo:hi], more=hi < tl))
        return frames

    def frame(self, frame: bytes) -> None:
        """Writes one Ethernet frame as built (padding, tag, link and mirror applied as to every other)."""
        self._record(frame)

    def udp(self, fl: Flow, d: int, payload: bytes) -> None:
        eth, ttl, src, dst, sport, dport, _, ipc = fl.dirs[d]
        plen = len(payload)
        ul = 8 + plen
        iplen = 20 + ul
        ipid = fl.ipid[d]
        fl.ipid[d] = (ipid + 1) & 0xFFFF
        pi = int.from_bytes(payload, "big") << 8 if plen & 1 else int.from_bytes(payload, "big")
        self._record(IPV4_UDP.pack(eth, 0x45, 0, iplen, ipid, 0x4000, ttl, 17, fold(ipc + iplen + ipid),
                                   src, dst, sport, dport, ul, fold_udp(fl.l4c + 2 * ul + pi)) + payload)

    def icmp_echo(self, fl: Flow, d: int, ident: int, seq: int, payload: bytes) -> None:
        eth, ttl, src, dst, _, _, _, ipc = fl.dirs[d]
        typ = 8 if d == C else 0
        iplen = 28 + len(payload)
        ipid = fl.ipid[d]
        fl.ipid[d] = (ipid + 1) & 0xFFFF
        pi = int.from_bytes(payload, "big") << (8 * (len(payload) & 1))
        # ICMP echo is sent without DF here (as ping does by default): drop the DF word from the constant.
        self._record(IPV4_ICMP.pack(eth, 0x45, 0, iplen, ipid, 0, ttl, 1, fold(ipc - 0x4000 + iplen + ipid),
                                    src, dst, typ, 0, fold((typ << 8) + ident + seq + pi), ident, seq) + payload)


# ----------------------------------------------------------------------------------------------------------------
# Flow programs. Each is a generator that writes exactly `n` packets (one per resume, `yield True` after each)
# through the writer; the scheduler interleaves them.

class Ctx:
    """What flow programs share: the writer, the random source and a pool of random bytes for values."""

    def __init__(self, w: Writer, rng: random.Random):
        self.w = w
        self.rng = rng
        self.rnd = rng.random
        self.pool = rng.randbytes(1 << 16)

    def blob(self, n: int) -> bytes:
        o = int(self.rnd() * (65536 - n))
        return self.pool[o:o + n]


def tcp_session(ctx: Ctx, fl: Flow, n: int, body, close: bool = True):
    """Handshake, body(n - 6) data packets, FIN close. Short budgets keep what fits, in order."""
    w = ctx.w
    opening = ((C, SYN, SYN_OPTS), (S, SYN | ACK, SYNACK_OPTS), (C, ACK, EMPTY))
    if n < 8 or not close:
        for d, flags, opts in opening[:min(n, 3)]:
            w.tcp(fl, d, flags, EMPTY, opts)
            yield True
        if n > 3:
            yield from body(ctx, fl, n - 3)
        return
    for d, flags, opts in opening:
        w.tcp(fl, d, flags, EMPTY, opts)
        yield True
    yield from body(ctx, fl, n - 6)
    w.tcp(fl, C, FIN | ACK)
    yield True
    w.tcp(fl, S, FIN | ACK)
    yield True
    w.tcp(fl, C, ACK)
    yield True


def exchange(w: Writer, fl: Flow, req: bytes, resp: bytes):
    """A request and its response, one segment each (2 packets)."""
    w.tcp(fl, C, PSH | ACK, req)
    yield True
    w.tcp(fl, S, PSH | ACK, resp)
    yield True


def delayed_ack(w: Writer, fl: Flow, n: int):
    """The client's pure ACK of the last response when an odd budget leaves one packet (n is 0 or 1)."""
    if n:
        w.tcp(fl, C, ACK)
        yield True


def pairs(ctx: Ctx, fl: Flow, n: int, txn):
    """n packets of request/response exchanges from txn(ctx, fl) -> (request, response); an odd budget ends
    with the client's pure ACK of the last response (a delayed ACK)."""
    w = ctx.w
    while n >= 2:
        yield from exchange(w, fl, *txn(ctx, fl))
        n -= 2
    yield from delayed_ack(w, fl, n)


# ---- Modbus/TCP ----------------------------------------------------------------------------------------------
# MBAP: transaction id (2), protocol id (2) = 0, length (2) = bytes after it (unit id + PDU), unit id (1).

MB_ADDR_QTY = struct.Struct("!HHHBBHH")     # MBAP + FC + address + quantity/value (FC3 req, FC6 req/resp, FC16 resp)
MB_BYTECOUNT = struct.Struct("!HHHBBB")     # MBAP + FC + byte count (FC3 resp) / exception code
MB_FC16_REQ = struct.Struct("!HHHBBHHB")    # MBAP + FC + address + quantity + byte count


class ModbusState:
    __slots__ = ("tid", "unit", "base")


def modbus_txn(ctx: Ctx, fl: Flow, st: ModbusState):
    r = ctx.rnd()
    tid = st.tid = (st.tid + 1) & 0xFFFF
    unit = st.unit
    if r < 0.70:  # FC3 Read Holding Registers
        qty = 1 + int(ctx.rnd() * 16)
        addr = st.base + int(ctx.rnd() * 100)
        req = MB_ADDR_QTY.pack(tid, 0, 6, unit, 3, addr, qty)
        if ctx.rnd() < 0.005:
            return req, MB_BYTECOUNT.pack(tid, 0, 3, unit, 0x83, 2)  # illegal data address
        return req, MB_BYTECOUNT.pack(tid, 0, 3 + 2 * qty, unit, 3, 2 * qty) + ctx.blob(2 * qty)
    if r < 0.85:  # FC6 Write Single Register: the response echoes the request
        req = MB_ADDR_QTY.pack(tid, 0, 6, unit, 6, st.base + int(ctx.rnd() * 100), int(ctx.rnd() * 65536))
        return req, req
    qty = 1 + int(ctx.rnd() * 8)  # FC16 Write Multiple Registers
    addr = st.base + int(ctx.rnd() * 100)
    req = MB_FC16_REQ.pack(tid, 0, 7 + 2 * qty, unit, 16, addr, qty, 2 * qty) + ctx.blob(2 * qty)
    return req, MB_ADDR_QTY.pack(tid, 0, 6, unit, 16, addr, qty)


def modbus_state(ctx: Ctx) -> ModbusState:
    st = ModbusState()
    st.tid = ctx.rng.getrandbits(16)
    st.unit = 1 if ctx.rnd() < 0.8 else 1 + int(ctx.rnd() * 247)
    st.base = int(ctx.rnd() * 40) * 100
    return st


def modbus_flow(ctx: Ctx, fl: Flow, n: int):
    st = modbus_state(ctx)
    return tcp_session(ctx, fl, n, lambda c, f, k: pairs(c, f, k, lambda c2, f2: modbus_txn(c2, f2, st)))


# ---- DNP3 ----------------------------------------------------------------------------------------------------
# Link frame: 0x05 0x64, length (= 5 + user data bytes, CRCs excluded), control, destination (LE16),
# source (LE16), CRC (LE16) over those 8 bytes; then user data in blocks of 16 bytes, each followed by its CRC.
# CRC-16/DNP: polynomial 0x3D65, reflected (0xA6BC), initial 0, final value inverted.
# Transport header (1 byte): FIN 0x80, FIR 0x40, sequence 0..63. Application header: control (FIR 0x80,
# FIN 0x40, CON 0x20, UNS 0x10, sequence 0..15), function code; responses add IIN1, IIN2.

def _dnp_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA6BC if crc & 1 else crc >> 1
        table.append(crc)
    return table


DNP_TABLE = _dnp_table()


def dnp3_crc_raw(data: bytes) -> int:
    """CRC-16/DNP register before the final inversion (initial value 0)."""
    crc = 0
    t = DNP_TABLE
    for b in data:
        crc = (crc >> 8) ^ t[(crc ^ b) & 0xFF]
    return crc


def dnp3_crc(data: bytes) -> int:
    """CRC-16/DNP as sent (little-endian on the wire)."""
    return ~dnp3_crc_raw(data) & 0xFFFF


def _dnp_dist() -> list[list[int]]:
    """dist[k][b]: the register after byte b followed by k zero bytes. With initial value 0 the CRC is linear
    over GF(2), so a byte's contribution depends only on its value and its distance from the block's end."""
    t = DNP_TABLE
    dist = [t[:]]
    for _ in range(15):
        dist.append([(c >> 8) ^ t[c & 0xFF] for c in dist[-1]])
    return dist


DNP_DIST = _dnp_dist()
_dnp_memo: dict[bytes, bytes] = {}
_dnp_first_memo: dict[bytes, int] = {}


def dnp3_crc_bytes(block: bytes) -> bytes:
    """CRC of one block, little-endian as on the wire; memoised because link headers and unchanged analog
    values repeat from poll to poll."""
    c = _dnp_memo.get(block)
    if c is None:
        if len(_dnp_memo) > 300_000:
            _dnp_memo.clear()
        c = _dnp_memo[block] = dnp3_crc(block).to_bytes(2, "little")
    return c


def dnp3_crc_first(block: bytes) -> bytes:
    """CRC of the first user-data block, whose first two bytes (transport and application sequence numbers)
    change every time: memoise the CRC of the block with them zeroed and add their contributions."""
    n = len(block)
    if n < 2:
        return dnp3_crc_bytes(block)
    key = b"\x00\x00" + block[2:]
    base = _dnp_first_memo.get(key)
    if base is None:
        if len(_dnp_first_memo) > 300_000:
            _dnp_first_memo.clear()
        base = _dnp_first_memo[key] = dnp3_crc_raw(key)
    return (~(base ^ DNP_DIST[n - 1][block[0]] ^ DNP_DIST[n - 2][block[1]]) & 0xFFFF).to_bytes(2, "little")


DNP_HDR = struct.Struct("<BBBBHH")


_dnp_tail_memo: dict[bytes, bytes] = {}


def dnp3_blocks(user: bytes) -> bytes:
    """User data split in 16-byte blocks, each followed by its CRC."""
    return b"".join(user[i:i + 16] + dnp3_crc_bytes(user[i:i + 16]) for i in range(0, len(user), 16))


def dnp3_link(ctrl: int, dst: int, src: int, user: bytes, corrupt: bool = False) -> bytes:
    """A whole link frame. Only the first block holds the transport and application sequence numbers, so the
    blocks after it (unchanged analog values, mostly) are memoised as a whole."""
    head = DNP_HDR.pack(0x05, 0x64, 5 + len(user), ctrl, dst, src)
    first = user[:16]
    frame = head + dnp3_crc_bytes(head) + first + dnp3_crc_first(first)
    if len(user) > 16:
        tail = user[16:]
        framed = _dnp_tail_memo.get(tail)
        if framed is None:
            if len(_dnp_tail_memo) > 50_000:
                _dnp_tail_memo.clear()
            framed = _dnp_tail_memo[tail] = dnp3_blocks(tail)
        frame += framed
    if corrupt:  # flip the low byte of the last CRC
        frame = frame[:-2] + bytes((frame[-2] ^ 0x5A, frame[-1]))
    return frame


CLASS_0123 = bytes.fromhex("3c0206" "3c0306" "3c0406" "3c0106")  # g60v2..v4 (classes 1-3) + g60v1 (class 0), all
CLASS_123 = bytes.fromhex("3c0206" "3c0306" "3c0406")


class DNP3State:
    """Addresses, sequence numbers and the outstation's analog inputs, which drift a little between polls
    (as plant values do) rather than being random each time."""
    __slots__ = ("master", "outstation", "tseq_m", "tseq_o", "aseq", "points", "g30v1", "g30v2")


def dnp3_state(ctx: Ctx, index: int) -> DNP3State:
    st = DNP3State()
    st.master = 1 + int(ctx.rnd() * 3)
    st.outstation = 10 + index % 1000
    st.tseq_m = int(ctx.rnd() * 64)
    st.tseq_o = int(ctx.rnd() * 64)
    st.aseq = int(ctx.rnd() * 16)
    n = st.points = 4 + int(ctx.rnd() * 28)
    st.g30v1 = bytearray(b"".join(b"\x01" + ctx.blob(4) for _ in range(n)))   # flag ONLINE + int32, per point
    st.g30v2 = bytearray(b"".join(b"\x01" + ctx.blob(2) for _ in range(n)))   # flag ONLINE + int16, per point
    return st


def dnp3_txn(ctx: Ctx, fl: Flow, st: DNP3State, corrupt: float = 0.0):
    seq = st.aseq = (st.aseq + 1) & 15
    r = ctx.rnd()
    iin2 = 0
    if ctx.rnd() < 0.5:  # one analog input changed since the last poll
        p = int(ctx.rnd() * st.points)
        st.g30v1[5 * p + 1:5 * p + 5] = ctx.blob(4)
        st.g30v2[3 * p + 1:3 * p + 3] = ctx.blob(2)
    if r < 0.2:  # integrity poll -> static analog inputs g30v1 (flag + int32), qualifier 0x00 (8-bit start/stop)
        obj = CLASS_0123
        body = bytes((30, 1, 0x00, 0, st.points - 1)) + st.g30v1
        iin1 = 0x00
    elif r < 0.8:  # event poll -> null response or analog change events g32v1, qualifier 0x28 (16-bit count+index)
        obj = CLASS_123
        k = int(ctx.rnd() * 4)
        if k:
            body = bytes((32, 1, 0x28)) + k.to_bytes(2, "little") + b"".join(
                int(ctx.rnd() * st.points).to_bytes(2, "little") + b"\x01" + ctx.blob(4) for _ in range(k))
        else:
            body = EMPTY
        iin1 = 0x02 if ctx.rnd() < 0.3 else 0x00
    else:  # explicit range read of g30v2 (flag + int16), qualifier 0x01 (16-bit start/stop)
        start = int(ctx.rnd() * st.points)
        stop = min(st.points - 1, start + int(ctx.rnd() * 10))
        rng16 = start.to_bytes(2, "little") + stop.to_bytes(2, "little")
        obj = bytes((30, 2, 0x01)) + rng16
        body = bytes((30, 2, 0x01)) + rng16 + st.g30v2[3 * start:3 * stop + 3]
        iin1 = 0x00
    tm = st.tseq_m = (st.tseq_m + 1) & 63
    to = st.tseq_o = (st.tseq_o + 1) & 63
    req_user = bytes((0xC0 | tm, 0xC0 | seq, 0x01)) + obj
    resp_user = bytes((0xC0 | to, 0xC0 | seq, 0x81, iin1, iin2)) + body
    bad = corrupt and ctx.rnd() < corrupt
    # Control: master DIR|PRM|unconfirmed user data = 0xC4; outstation PRM|unconfirmed user data = 0x44.
    return (dnp3_link(0xC4, st.outstation, st.master, req_user, corrupt=bad),
            dnp3_link(0x44, st.master, st.outstation, resp_user))


def dnp3_flow(ctx: Ctx, fl: Flow, n: int, index: int = 0, corrupt: float = 0.0):
    st = dnp3_state(ctx, index)
    return tcp_session(ctx, fl, n, lambda c, f, k: pairs(c, f, k, lambda c2, f2: dnp3_txn(c2, f2, st, corrupt)))


# ---- S7comm --------------------------------------------------------------------------------------------------
# TPKT (RFC 1006): version 3, reserved, length (2, whole TPKT). COTP (ISO 8073): length indicator, PDU type
# (0xE0 CR, 0xD0 CC, 0xF0 DT); DT adds a TPDU number byte with EOT 0x80. S7 header: protocol id 0x32, ROSCTR
# (1 Job, 3 Ack_Data), reserved (2), PDU reference (2), parameter length (2), data length (2); Ack_Data adds
# error class and error code. Read Var item (12 bytes): 0x12, length 0x0A, syntax id 0x10 (S7ANY), transport
# size, count (2), DB number (2), area, bit address (3).

COTP_DT = b"\x02\xf0\x80"
S7_ITEM = struct.Struct("!BBBBHHB")        # 0x12 0x0A 0x10 tsize count db area (+3-byte address)
S7_TPKT_DT = struct.Struct("!BBH3s")      # TPKT version, reserved, length; COTP DT header
S7_JOB_HDR = struct.Struct("!BBHHHH")      # 0x32, ROSCTR 1, reserved, PDU ref, param length, data length
S7_ACK_HDR = struct.Struct("!BBHHHHBB")    # 0x32, ROSCTR 3, reserved, PDU ref, param len, data len, error class/code

AREAS = (0x84, 0x84, 0x84, 0x83, 0x81, 0x82)  # DB-heavy, as HMIs read data blocks mostly


class S7State:
    """An HMI polls a fixed scan list: each entry is one Read Var job's parameters and the layout of its reply."""
    __slots__ = ("ref", "scans")


def s7_job(ref: int, params: bytes, data: bytes = EMPTY) -> bytes:
    ln = 4 + 3 + 10 + len(params) + len(data)
    return S7_TPKT_DT.pack(3, 0, ln, COTP_DT) + S7_JOB_HDR.pack(0x32, 1, 0, ref, len(params), len(data)) + params + data


def s7_ack(ref: int, params: bytes, data: bytes = EMPTY) -> bytes:
    ln = 4 + 3 + 12 + len(params) + len(data)
    return S7_TPKT_DT.pack(3, 0, ln, COTP_DT) + S7_ACK_HDR.pack(0x32, 3, 0, ref, len(params), len(data), 0, 0) + \
        params + data


def s7_scan_entry(ctx: Ctx, dbs: tuple) -> tuple:
    """(items, parameter bytes of the Read Var job, per-item reply headers with their padding)."""
    items = []
    for _ in range(1 + int(ctx.rnd() * 4)):
        area = AREAS[int(ctx.rnd() * len(AREAS))]
        db = dbs[int(ctx.rnd() * len(dbs))] if area == 0x84 else 0
        count = 1 + int(ctx.rnd() * 16)
        items.append((area, db, count, int(ctx.rnd() * 200) * 2))
    spec = b"".join(S7_ITEM.pack(0x12, 0x0A, 0x10, 0x02, count, db, area) + (addr * 8).to_bytes(3, "big")
                    for area, db, count, addr in items)
    # Read Var reply data item: return code 0xFF, transport size 0x04 (length in bits), bit length, data,
    # padded to an even length except after the last item.
    layout = tuple((b"\xff\x04" + (count * 8).to_bytes(2, "big"), count,
                    b"\x00" if count & 1 and i < len(items) - 1 else EMPTY) for i, (_, _, count, _) in enumerate(items))
    return items, bytes((0x04, len(items))) + spec, layout


def s7_txn(ctx: Ctx, fl: Flow, st: S7State):
    ref = st.ref = (st.ref + 1) & 0xFFFF
    items, params, layout = st.scans[int(ctx.rnd() * len(st.scans))]
    blob = ctx.blob
    if ctx.rnd() < 0.05:  # Write Var of the same items: data items are reserved 0x00, transport size 0x04, bits
        data = b"".join(b"\x00" + hdr[1:] + blob(count) + pad for hdr, count, pad in layout)
        req = s7_job(ref, b"\x05" + params[1:], data)
        return req, s7_ack(ref, bytes((0x05, len(items))), b"\xff" * len(items))
    data = b"".join(hdr + blob(count) + pad for hdr, count, pad in layout)
    return s7_job(ref, params), s7_ack(ref, params[:2], data)


def s7_body(ctx: Ctx, fl: Flow, n: int, st: S7State):
    w = ctx.w
    src_ref = 1 + int(ctx.rnd() * 0xFFFE)
    dst_ref = 1 + int(ctx.rnd() * 0xFFFE)
    rack_slot = 0x02 if ctx.rnd() < 0.7 else 0x01
    # COTP CR: LI 17, CR, dst ref 0, src ref, class 0; TPDU size 1024 (0xC0), calling TSAP 0x0100 (PG),
    # called TSAP 0x01xx (rack/slot).
    cr = b"\x03\x00\x00\x16\x11\xe0\x00\x00" + src_ref.to_bytes(2, "big") + b"\x00" + \
        b"\xc0\x01\x0a\xc1\x02\x01\x00\xc2\x02\x01" + bytes((rack_slot,))
    cc = b"\x03\x00\x00\x16\x11\xd0" + src_ref.to_bytes(2, "big") + dst_ref.to_bytes(2, "big") + b"\x00" + \
        b"\xc0\x01\x0a\xc1\x02\x01\x00\xc2\x02\x01" + bytes((rack_slot,))
    # Setup Communication: function 0xF0, reserved, max AmQ calling 1, max AmQ called 1, PDU length 480 / 240.
    ref = st.ref = (st.ref + 1) & 0xFFFF
    setup = s7_job(ref, bytes.fromhex("f0000001000101e0"))
    setup_ack = s7_ack(ref, bytes.fromhex("f0000001000100f0"))
    prologue = ((C, cr), (S, cc), (C, setup), (S, setup_ack))
    for d, payload in prologue[:n]:
        w.tcp(fl, d, PSH | ACK, payload)
        yield True
    if n > 4:
        yield from pairs(ctx, fl, n - 4, lambda c2, f2: s7_txn(c2, f2, st))


def s7_flow(ctx: Ctx, fl: Flow, n: int):
    st = S7State()
    st.ref = int(ctx.rnd() * 0xFFFF)
    dbs = tuple(1 + int(ctx.rnd() * 200) for _ in range(3))
    st.scans = tuple(s7_scan_entry(ctx, dbs) for _ in range(1 + int(ctx.rnd() * 4)))
    return tcp_session(ctx, fl, n, lambda c, f, k: s7_body(c, f, k, st))


# ---- Plain traffic: HTTP-like TCP, DNS, NTP, ICMP echo ---------------------------------------------------------

HTTP_PATHS = (b"/", b"/index.html", b"/api/v1/status", b"/trend?tag=FIC101", b"/alarms", b"/favicon.ico")


def http_txn(ctx: Ctx, fl: Flow):
    path = HTTP_PATHS[int(ctx.rnd() * len(HTTP_PATHS))]
    req = b"GET " + path + b" HTTP/1.1\r\nHost: historian.plant.local\r\nUser-Agent: Mozilla/5.0\r\n" \
        b"Accept: */*\r\nConnection: keep-alive\r\n\r\n"
    body = ctx.blob(200 + int(ctx.rnd() * 1000)).hex().encode()[:200 + int(ctx.rnd() * 1000)]
    resp = b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/plain\r\nContent-Length: " + \
        str(len(body)).encode() + b"\r\n\r\n" + body
    return req, resp


def http_flow(ctx: Ctx, fl: Flow, n: int):
    return tcp_session(ctx, fl, n, lambda c, f, k: pairs(c, f, k, http_txn))


DNS_NAMES = ("historian.plant.local", "hmi-01.plant.local", "ntp.plant.local", "update.vendor.example",
             "eng-ws-3.plant.local", "time.windows.com", "wpad.plant.local")


def dns_name(name: str) -> bytes:
    return b"".join(bytes((len(p),)) + p.encode() for p in name.split(".")) + b"\x00"


def dns_flow(ctx: Ctx, fl: Flow, n: int):
    w = ctx.w
    for i in range(n):
        if i % 2 == 0:
            qid = ctx.rng.getrandbits(16)
            q = dns_name(DNS_NAMES[int(ctx.rnd() * len(DNS_NAMES))]) + b"\x00\x01\x00\x01"
            w.udp(fl, C, struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + q)
        else:
            ans = b"\xc0\x0c\x00\x01\x00\x01" + struct.pack("!IH", 300, 4) + bytes((10, 0, 1, 1 + int(ctx.rnd() * 200)))
            w.udp(fl, S, struct.pack("!HHHHHH", qid, 0x8180, 1, 1, 0, 0) + q + ans)
        yield True


def ntp_flow(ctx: Ctx, fl: Flow, n: int):
    w = ctx.w
    for i in range(n):
        # NTPv4: LI/VN/mode (client 0x23, server 0x24), stratum, poll, precision, then 44 bytes of times.
        head = b"\x23\x00\x06\xe9" if i % 2 == 0 else b"\x24\x02\x06\xe9"
        w.udp(fl, C if i % 2 == 0 else S, head + ctx.blob(44))
        yield True


def icmp_flow(ctx: Ctx, fl: Flow, n: int):
    w = ctx.w
    ident = ctx.rng.getrandbits(16)
    payload = bytes(range(0x61, 0x61 + 23)) + bytes(range(0x61, 0x61 + 9))  # Windows ping pattern, 32 bytes
    for i in range(n):
        w.icmp_echo(fl, i & 1, ident, 1 + i // 2, payload)
        yield True


# ---- Hostile -------------------------------------------------------------------------------------------------

def garbage_flow(ctx: Ctx, fl: Flow, n: int):
    """Random bytes both ways on an ICS port: the dissector must reject or resynchronise, never trap."""
    def txn(c: Ctx, f: Flow):
        return c.blob(1 + int(c.rnd() * 300)), c.blob(1 + int(c.rnd() * 300))
    return tcp_session(ctx, fl, n, lambda c, f, k: pairs(c, f, k, txn))


def modbus_malformed_flow(ctx: Ctx, fl: Flow, n: int):
    """Modbus with protocol id != 0, impossible lengths, unknown function codes, among valid transactions."""
    st = modbus_state(ctx)

    def txn(c: Ctx, f: Flow):
        req, resp = modbus_txn(c, f, st)
        r = c.rnd()
        if r < 0.1:
            req = req[:2] + b"\x00\x07" + req[4:]           # protocol id 7
        elif r < 0.2:
            req = req[:4] + b"\x00\x01" + req[6:]           # length 1: unit id only, no function code
        elif r < 0.3:
            req = req[:4] + b"\x01\x2c" + req[6:]           # length 300 > 254: beyond the largest ADU
        elif r < 0.4:
            req = req[:7] + bytes((0x5B,)) + req[8:]        # function code 91 (reserved)
        elif r < 0.5:
            resp = resp[:7] + bytes((resp[7] | 0x80, 0x04))  # exception 4 (server device failure), truncated ADU
        return req, resp
    return tcp_session(ctx, fl, n, lambda c, f, k: pairs(c, f, k, txn))


def modbus_lossy_flow(ctx: Ctx, fl: Flow, n: int):
    """Modbus where the monitor misses segments (gaps), sees reordering and retransmissions with new bytes, SYN-ACKs
    forged in the client's name from ahead of its stream (endpoints drop them) and requests with urgent data."""
    st = modbus_state(ctx)

    def body(c: Ctx, f: Flow, k: int):
        w = c.w
        while k >= 2:
            req, resp = modbus_txn(c, f, st)
            r = c.rnd()
            if r < 0.05:    # request lost before the tap: gap on the client side
                w.tcp(f, C, PSH | ACK, req, write=False)
                w.tcp(f, S, PSH | ACK, resp)
                yield True
                k -= 1
                continue
            if r < 0.10 and k >= 3:   # request split in two segments that arrive in reverse order
                s0 = f.seq[C]
                cut = 1 + int(c.rnd() * (len(req) - 1))
                w.tcp(f, C, PSH | ACK, req[cut:], seq=(s0 + cut) & 0xFFFFFFFF, advance=False)
                yield True
                w.tcp(f, C, ACK, req[:cut], seq=s0, advance=False)
                f.seq[C] = (s0 + len(req)) & 0xFFFFFFFF
                yield True
                w.tcp(f, S, PSH | ACK, resp)
                yield True
                k -= 3
                continue
            if r < 0.15 and k >= 3:   # retransmission of the request with different bytes (overlap)
                s0 = f.seq[C]
                w.tcp(f, C, PSH | ACK, req)
                yield True
                w.tcp(f, C, PSH | ACK, req[:-2] + bytes((req[-2] ^ 0xFF, req[-1] ^ 0xFF)), seq=s0, advance=False)
                yield True
                w.tcp(f, S, PSH | ACK, resp)
                yield True
                k -= 3
                continue
            if r < 0.17 and k >= 3:   # a SYN-ACK forged in the client's name, from ahead of its stream
                ahead = 1000 + int(c.rnd() * 60000)
                w.tcp(f, C, SYN | ACK, seq=(f.seq[C] + ahead) & 0xFFFFFFFF, advance=False)
                yield True
                w.tcp(f, C, PSH | ACK, req)
                yield True
                w.tcp(f, S, PSH | ACK, resp)
                yield True
                k -= 3
                continue
            if r < 0.19:   # the request with urgent data (no ICS protocol uses URG)
                w.tcp(f, C, PSH | ACK | URG, req)
                yield True
                w.tcp(f, S, PSH | ACK, resp)
                yield True
                k -= 2
                continue
            yield from exchange(w, f, req, resp)
            k -= 2
        yield from delayed_ack(w, f, k)
    return tcp_session(ctx, fl, n, body)


def modbus_fragmented_flow(ctx: Ctx, fl: Flow, n: int):
    """Modbus whose requests often come as IPv4 fragments (a small-MTU path, or a sender hiding them from a monitor
    that does not reassemble): in order, in reverse, with the TCP header split over the first two (a tiny first
    fragment), the last one lost (the request sent again whole), one fragment twice, or one sent again with other
    bytes before the last (endpoints drop the datagram and the client sends the request again whole; the last
    fragment starts a datagram that never completes)."""
    st = modbus_state(ctx)
    # (case, upper bound of its share of requests, packets it writes besides the fragments and the response)
    cases = (("whole", 0.40, 0), ("in-order", 0.55, 0), ("reverse", 0.65, 0), ("tiny-first", 0.75, 0),
             ("last-lost", 0.82, 0), ("twice", 0.92, 1), ("conflict", 1.0, 2))

    def body(c: Ctx, f: Flow, k: int):
        w = c.w
        while k >= 2:
            req, resp = modbus_txn(c, f, st)
            r = c.rnd()
            case, extra = next((name, e) for name, bound, e in cases if r < bound)
            size = 20 + len(req)
            cuts = sorted(c.rng.sample(range(8, size, 8), min(1 + int(c.rnd() * 3), (size - 1) // 8)))
            if case == "tiny-first" and cuts[0] != 8:
                cuts.insert(0, 8)
            if case == "whole" or len(cuts) + 2 + extra > k:
                yield from exchange(w, f, req, resp)
                k -= 2
                continue
            s0 = f.seq[C]
            pieces = w.tcp_fragments(f, C, PSH | ACK, req, cuts)
            j = int(c.rnd() * (len(pieces) - 1))   # a fragment before the last
            if case == "reverse":
                frames = pieces[::-1]
            elif case == "last-lost":
                frames = pieces[:-1]
            elif case == "twice":
                frames = pieces[:j + 1] + [pieces[j]] + pieces[j + 1:]
            elif case == "conflict":
                frames = pieces[:-1] + [pieces[j][:-1] + bytes((pieces[j][-1] ^ 0x5A,)), pieces[-1]]
            else:
                frames = pieces
            for frame in frames:
                w.frame(frame)
                yield True
            k -= len(frames)
            if case in ("last-lost", "conflict"):
                w.tcp(f, C, PSH | ACK, req, seq=s0, advance=False)
                yield True
                k -= 1
            w.tcp(f, S, PSH | ACK, resp)
            yield True
            k -= 1
        yield from delayed_ack(w, f, k)
    return tcp_session(ctx, fl, n, body)


def midstream_rst_flow(ctx: Ctx, fl: Flow, n: int):
    """A Modbus flow already running when capture started (no handshake), aborted by the server's RST."""
    st = modbus_state(ctx)
    yield from pairs(ctx, fl, n - 1, lambda c, f: modbus_txn(c, f, st))
    if n >= 1:
        ctx.w.tcp(fl, S, RST | ACK)
        yield True


def syn_flood_flow(ctx: Ctx, fl: Flow, n: int):
    """One spoofed SYN (the flood's flows are one packet each; nobody answers)."""
    for _ in range(n):
        ctx.w.tcp(fl, C, SYN, EMPTY, SYN_OPTS)
        yield True


def syn_scan_flow(ctx: Ctx, fl: Flow, n: int):
    """SYN to a closed port answered by RST/ACK."""
    for i in range(n):
        if i % 2 == 0:
            ctx.w.tcp(fl, C, SYN, EMPTY, SYN_OPTS)
        else:
            ctx.w.tcp(fl, S, RST | ACK)
        yield True


def udp_garbage_flow(ctx: Ctx, fl: Flow, n: int):
    for i in range(n):
        ctx.w.udp(fl, i & 1, ctx.blob(1 + int(ctx.rnd() * 200)))
        yield True


# ----------------------------------------------------------------------------------------------------------------
# Profiles: kind -> (weight, server port, transport, fixed packets per flow or None for an even share, program)

def _k(weight, port, proto, fixed, program):
    return (weight, port, proto, fixed, program)


KINDS = {
    "modbus": _k(1, 502, 6, None, modbus_flow),
    "dnp3": _k(1, 20000, 6, None, lambda c, f, n, i: dnp3_flow(c, f, n, i)),
    "s7comm": _k(1, 102, 6, None, s7_flow),
    "http": _k(1, 80, 6, None, http_flow),
    "dns": _k(1, 53, 17, 2, dns_flow),
    "ntp": _k(1, 123, 17, 2, ntp_flow),
    "icmp": _k(1, 0, 1, None, icmp_flow),
    "garbage-502": _k(1, 502, 6, None, garbage_flow),
    "garbage-20000": _k(1, 20000, 6, None, garbage_flow),
    "garbage-102": _k(1, 102, 6, None, garbage_flow),
    "modbus-malformed": _k(1, 502, 6, None, modbus_malformed_flow),
    "modbus-lossy": _k(1, 502, 6, None, modbus_lossy_flow),
    "modbus-fragmented": _k(1, 502, 6, None, modbus_fragmented_flow),
    "dnp3-badcrc": _k(1, 20000, 6, None, lambda c, f, n, i: dnp3_flow(c, f, n, i, corrupt=0.2)),
    "midstream-rst": _k(1, 502, 6, None, midstream_rst_flow),
    "syn-flood": _k(1, 502, 6, 1, syn_flood_flow),
    "syn-scan": _k(1, 0, 6, 2, syn_scan_flow),
    "udp-garbage": _k(1, 20000, 17, None, udp_garbage_flow),
}
TAKES_INDEX = {"dnp3", "dnp3-badcrc"}

PROFILES = {
    "modbus": {"modbus": 1},
    "dnp3": {"dnp3": 1},
    "s7comm": {"s7comm": 1},
    "mixed": {"modbus": 35, "dnp3": 20, "s7comm": 20, "http": 8, "dns": 10, "ntp": 5, "icmp": 2},
    "plain": {"http": 4, "dns": 4, "ntp": 2, "icmp": 1},
    "hostile": {"modbus": 15, "dnp3": 5, "s7comm": 5, "garbage-502": 4, "garbage-20000": 3, "garbage-102": 3,
                "modbus-malformed": 5, "modbus-lossy": 8, "modbus-fragmented": 3, "dnp3-badcrc": 3, "midstream-rst": 4,
                "syn-flood": 35, "syn-scan": 6, "udp-garbage": 4},
}


def allocate_kinds(profile: dict, flows: int, rng: random.Random) -> list[str]:
    """Largest-remainder split of `flows` by weight (every kind gets at least one flow when there are enough
    flows), shuffled deterministically."""
    total = sum(profile.values())
    quotas = {k: flows * w / total for k, w in profile.items()}
    counts = {k: int(q) for k, q in quotas.items()}
    if flows >= len(profile):
        for k in counts:
            if counts[k] == 0:
                counts[k] = 1
    rest = flows - sum(counts.values())
    for k in sorted(quotas, key=lambda k: (counts[k] - quotas[k], k))[:max(0, rest)]:
        counts[k] += 1
    while sum(counts.values()) > flows:  # the at-least-one rule overshot: take from the largest
        big = max(counts, key=lambda k: (counts[k], k))
        counts[big] -= 1
    kinds = [k for k in profile for _ in range(counts[k])]
    rng.shuffle(kinds)
    return kinds


def budgets(kinds: list[str], packets: int) -> list[int]:
    """Packets per flow: every flow gets one, kinds with a natural size (a DNS lookup: 2) get up to it, and
    the rest is shared evenly by the other flows (by all flows when every kind has a natural size)."""
    out = [1] * len(kinds)
    left = packets - len(kinds)
    for i, k in enumerate(kinds):
        fixed = KINDS[k][3]
        if fixed is not None and left > 0:
            extra = min(fixed - 1, left)
            out[i] += extra
            left -= extra
    shared = [i for i, k in enumerate(kinds) if KINDS[k][3] is None] or list(range(len(kinds)))
    base, extra = divmod(left, len(shared))
    for j, i in enumerate(shared):
        out[i] += base + (1 if j < extra else 0)
    return out


# Addressing: clients (HMIs, SCADA masters, engineering stations) in 10.10.0.0/16, ICS servers (PLCs, RTUs) in
# 10.20.0.0/16, plain-traffic servers in 10.0.0.0/24, attackers' spoofed sources in 172.16.0.0/12.
CLIENT_BASE = int.from_bytes(ip4("10.10.0.10"), "big")
SERVER_BASE = int.from_bytes(ip4("10.20.0.10"), "big")
SPOOF_BASE = int.from_bytes(ip4("172.16.0.1"), "big")
PLAIN_SERVERS = {80: ip4("10.0.0.80"), 53: ip4("10.0.0.53"), 123: ip4("10.0.0.123")}
PORTS_PER_CLIENT = 16000


def make_flow(ctx: Ctx, i: int, kind: str, nclients: int, nservers: int) -> Flow:
    _, port, proto, _, _ = KINDS[kind]
    rng = ctx.rng
    if kind in ("syn-flood",):
        cip, cport = ip4n(SPOOF_BASE + i), 1024 + int(ctx.rnd() * 64000)
    else:
        c = i % nclients + nclients * (i // (nclients * PORTS_PER_CLIENT))
        # Ephemeral port: unique per client (k runs over 0..PORTS_PER_CLIENT-1), staggered between clients.
        k = (i // nclients) % PORTS_PER_CLIENT
        cip, cport = ip4n(CLIENT_BASE + c), 49152 + (k + 131 * c) % PORTS_PER_CLIENT
    if port in PLAIN_SERVERS:
        sip = PLAIN_SERVERS[port]
    else:
        sip = ip4n(SERVER_BASE + int(ctx.rnd() * nservers))
    if kind == "syn-scan":
        port = 1 + int(ctx.rnd() * 1023)
        if port in (102, 502):
            port += 1
    if proto == 1:
        cport = port = 0
    return Flow(rng, cip, sip, cport, port, proto, kind)


class _FlowRng:
    """Per-flow deterministic stand-in for random.Random in Flow(): the handshakes profile rebuilds each flow in
    every phase instead of keeping a million Flow objects, so a flow's random fields must depend on (seed, i)."""

    __slots__ = ("x",)

    def __init__(self, seed: int, i: int):
        self.x = (i * 0x9E3779B97F4A7C15 + seed * 0xD1B54A32D192ED03) & 0xFFFFFFFFFFFFFFFF

    def getrandbits(self, k: int) -> int:
        self.x = (self.x * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
        return (self.x >> 17) & ((1 << k) - 1)

    def choice(self, seq):
        return seq[self.getrandbits(16) % len(seq)]


def generate_handshakes(packets: int, flows: int, seed: int, out_path: str, rate: float, start: int,
                        vlan: int = 0, link: str = "ethernet", mirror: str = "") -> "Writer":
    """All SYNs, then all SYN-ACKs, then all ACKs (see the handshakes profile): 3 packets per flow, streamed."""
    if packets != 3 * flows:
        raise SystemExit("pcapgen: the handshakes profile needs --packets == 3 * --flows")
    rng = random.Random(seed)
    nclients = max(64, -(-flows // PORTS_PER_CLIENT))
    nservers = max(1, min(60000, flows // 25))
    with open(out_path, "wb", buffering=1 << 20) as out:
        w = Writer(out, rng, start * 1_000_000, 1e6 / rate, vlan, link, mirror)

        def flow(i: int) -> Flow:
            c = i % nclients + nclients * (i // (nclients * PORTS_PER_CLIENT))
            k = (i // nclients) % PORTS_PER_CLIENT
            cip, cport = ip4n(CLIENT_BASE + c), 49152 + (k + 131 * c) % PORTS_PER_CLIENT
            return Flow(_FlowRng(seed, i), cip, ip4n(SERVER_BASE + i % nservers), cport, 502, 6, "modbus")

        for i in range(flows):
            w.tcp(flow(i), C, SYN, EMPTY, SYN_OPTS)
        for i in range(flows):
            fl = flow(i)
            w.tcp(fl, C, SYN, write=False)
            fl.ipid[C] = (fl.ipid[C] + 1) & 0xFFFF
            w.tcp(fl, S, SYN | ACK, EMPTY, SYNACK_OPTS)
        for i in range(flows):
            fl = flow(i)
            w.tcp(fl, C, SYN, write=False)
            w.tcp(fl, S, SYN | ACK, write=False)
            fl.ipid[C] = (fl.ipid[C] + 1) & 0xFFFF
            w.tcp(fl, C, ACK)
        w.flush()
    return w


def generate(profile: str, packets: int, flows: int, seed: int, out_path: str, concurrency: int | None,
             interleave: str, rate: float, start: int, quiet: bool, vlan: int = 0, link: str = "ethernet",
             mirror: str = "") -> None:
    if profile == "handshakes":
        t0 = time.perf_counter()
        w = generate_handshakes(packets, flows, seed, out_path, rate, start, vlan, link, mirror)
        dt = time.perf_counter() - t0
        if not quiet:
            print(f"pcapgen: {out_path}: profile handshakes, {w.packets} packets, {flows} flows, {w.bytes} bytes, "
                  f"{dt:.1f} s ({w.packets / max(dt, 1e-9):,.0f} packets/s)", file=sys.stderr)
        return
    rng = random.Random(seed)
    kinds = allocate_kinds(PROFILES[profile], flows, rng)
    sizes = budgets(kinds, packets)
    nclients = max(64, -(-flows // PORTS_PER_CLIENT))
    nservers = max(1, min(60000, flows // 25))
    conc = flows if not concurrency else min(concurrency, flows)
    t0 = time.perf_counter()
    with open(out_path, "wb", buffering=1 << 20) as out:
        w = Writer(out, rng, start * 1_000_000, 1e6 / rate, vlan, link, mirror)
        ctx = Ctx(w, rng)

        def start_flow(i: int):
            kind = kinds[i]
            fl = make_flow(ctx, i, kind, nclients, nservers)
            program = KINDS[kind][4]
            return program(ctx, fl, sizes[i], i) if kind in TAKES_INDEX else program(ctx, fl, sizes[i])

        nxt = 0
        active = []
        while nxt < flows and len(active) < conc:
            active.append(start_flow(nxt))
            nxt += 1
        rnd = rng.random
        turn = 0
        while active:
            if interleave == "rr":
                turn = turn + 1 if turn + 1 < len(active) else 0
                i = turn
            else:
                i = int(rnd() * len(active))
            if not next(active[i], False):
                if nxt < flows:
                    active[i] = start_flow(nxt)
                    nxt += 1
                else:
                    active[i] = active[-1]
                    active.pop()
        w.flush()
    dt = time.perf_counter() - t0
    if w.packets != packets:
        raise SystemExit(f"pcapgen: internal error: wrote {w.packets} packets, asked for {packets}")
    if not quiet:
        print(f"pcapgen: {out_path}: profile {profile}, {w.packets} packets, {flows} flows, {w.bytes} bytes, "
              f"{dt:.1f} s ({w.packets / max(dt, 1e-9):,.0f} packets/s)", file=sys.stderr)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--profile", required=True, choices=sorted(PROFILES) + ["handshakes"])
    p.add_argument("--packets", type=int, required=True, help="exact number of packets to write")
    p.add_argument("--flows", type=int, required=True, help="number of flows (5-tuples)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--concurrency", type=int, default=0, help="most flows live at once (default: all)")
    p.add_argument("--interleave", choices=("random", "rr"), default="random")
    p.add_argument("--rate", type=float, default=50000.0, help="mean packets per second of capture time")
    p.add_argument("--start", type=int, default=1704067200, help="first timestamp, Unix seconds (2024-01-01)")
    p.add_argument("--vlan", type=int, default=0, help="tag every frame with this 802.1Q VLAN ID (1-4094; default: untagged)")
    p.add_argument("--link", choices=sorted(LINKTYPES), default="ethernet",
                   help="link layer: Ethernet frames, or a Linux cooked capture's (sll, sll2)")
    p.add_argument("--mirror", choices=["erspan", "vxlan"],
                   help="wrap every frame as a remote mirror delivers it: ERSPAN type II over GRE, or VXLAN (UDP 4789)")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("-o", "--output", required=True)
    a = p.parse_args(argv)
    if a.packets < 1 or a.flows < 1 or a.flows > a.packets:
        p.error("need 1 <= --flows <= --packets")
    if not 0 <= a.vlan <= 4094:
        p.error("--vlan: a VLAN ID from 1 to 4094 (0: untagged)")
    if a.vlan and a.link != "ethernet":
        p.error("--vlan tags Ethernet frames (not with --link sll or sll2)")
    if a.mirror and a.link != "ethernet":
        p.error("--mirror wraps Ethernet frames (not with --link sll or sll2)")
    generate(a.profile, a.packets, a.flows, a.seed, a.output, a.concurrency, a.interleave, a.rate, a.start, a.quiet, a.vlan,
             a.link, a.mirror or "")


if __name__ == "__main__":
    main()
