"""Frames to a classic pcap file, fast: precompiled struct templates, checksums by arithmetic, batched writes.

A :class:`Conn` is one flow (TCP, UDP or ICMP) between two hosts; the
:class:`PcapWriter` turns (connection, direction, flags, payload) into an
Ethernet/IPv4 frame with exact lengths, TCP sequence and acknowledgement
numbers, and correct IPv4, TCP, UDP and ICMP checksums.

Checksums cost almost nothing here: the ones' complement sum of 16-bit words
is congruent to the number the bytes spell modulo 0xFFFF (2**16 = 1 mod
0xFFFF), so a payload's sum is ``int.from_bytes(payload) % 0xFFFF``, done in C,
and the header words are added as integers before the header is packed once.
"""
from __future__ import annotations

import random
import struct
from dataclasses import dataclass, field

PCAP_HEADER = struct.Struct("<IHHiIII")
RECORD = struct.Struct("<IIII")
ETH_IPV4 = "!6s6sH BBHHHBBH4s4s"
TCP_FRAME = struct.Struct(ETH_IPV4 + " HHIIBBHHH")    # 54 bytes: Ethernet + IPv4 + TCP without options
UDP_FRAME = struct.Struct(ETH_IPV4 + " HHHH")         # 42 bytes
ICMP_FRAME = struct.Struct(ETH_IPV4 + " BBHHH")       # 42 bytes: echo request/reply header

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
TCP, UDP, ICMP = 6, 17, 1
MSS = 1448
WINDOW = 64240
TTL = 64
BATCH = 20_000          # packets per write
START_S = 1_780_000_000


def ip4(a: int, b: int, c: int, d: int) -> bytes:
    return bytes((a, b, c, d))


def mac(oui: bytes, index: int) -> bytes:
    return oui + index.to_bytes(3, "big")


def word_sum(data: bytes) -> int:
    """Sum of the big-endian 16-bit words of ``data`` (zero-padded), modulo 0xFFFF: the checksum's input."""
    value = int.from_bytes(data, "big")
    return (value << 8 if len(data) & 1 else value) % 0xFFFF


def checksum(total: int) -> int:
    """RFC 1071 checksum of words whose plain sum is ``total``: the complement of their ones' complement sum."""
    return -total % 0xFFFF


@dataclass(slots=True)
class Conn:
    """One flow. ``ends[d]`` = (dst_mac, src_mac, src_ip, dst_ip, sport, dport) for direction ``d``
    (0: client to server); ``sums[d]`` the constant parts of the IPv4 and pseudo-header checksums."""

    kind: str
    proto: int
    ends: tuple
    seq: list = field(default_factory=lambda: [0, 0])
    ip_id: list = field(default_factory=lambda: [0, 0])
    sums: tuple = ()
    state: dict = field(default_factory=dict)
    sent: bool = False          # a packet of this flow was written (a flow without one has no conn row)


def conn(kind: str, proto: int, client: tuple[bytes, bytes, int], server: tuple[bytes, bytes, int],
         rng: random.Random) -> Conn:
    """A flow from ``client`` (mac, ip, port) to ``server``, with seeded initial sequence numbers and IP ids."""
    cmac, cip, cport = client
    smac, sip, sport = server
    c = Conn(kind, proto, ((smac, cmac, cip, sip, cport, sport), (cmac, smac, sip, cip, sport, cport)))
    c.seq = [rng.getrandbits(32), rng.getrandbits(32)]
    c.ip_id = [rng.getrandbits(16), rng.getrandbits(16)]
    c.sums = tuple(_constant_sums(src, dst, proto) for src, dst in ((cip, sip), (sip, cip)))
    return c


def _constant_sums(src: bytes, dst: bytes, proto: int) -> tuple[int, int]:
    addresses = word_sum(src) + word_sum(dst)
    dont_fragment = 0x4000 if proto == TCP else 0
    return 0x4500 + dont_fragment + (TTL << 8 | proto) + addresses, addresses + proto


class PcapWriter:
    """Frames to a pcap file in batches; the clock advances a little (with seeded jitter) per packet."""

    def __init__(self, fh, rng: random.Random, step_us: int, start_s: int = START_S) -> None:
        self.fh = fh
        self.parts: list[bytes] = []
        self.count = 0
        self.clock = start_s * 1_000_000
        self.jitter = [step_us // 2 + rng.randrange(step_us + 1) for _ in range(257)]
        fh.write(PCAP_HEADER.pack(0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))

    def frame(self, header: bytes, payload: bytes) -> None:
        self.clock += self.jitter[self.count % 257]
        sec, usec = divmod(self.clock, 1_000_000)
        size = len(header) + len(payload)
        self.parts.append(RECORD.pack(sec, usec, size, size))
        self.parts.append(header)
        if payload:
            self.parts.append(payload)
        self.count += 1
        if len(self.parts) >= 3 * BATCH:
            self.flush()

    def flush(self) -> None:
        self.fh.write(b"".join(self.parts))
        self.parts.clear()

    def send(self, c: Conn, d: int, flags: int, payload: bytes) -> None:
        """One packet of ``c`` in direction ``d``: TCP flags, or for ICMP the echo sequence number."""
        if c.proto == TCP:
            self.tcp(c, d, flags, payload)
        elif c.proto == UDP:
            self.udp(c, d, payload)
        else:
            self.icmp(c, d, flags, payload)

    def tcp(self, c: Conn, d: int, flags: int, payload: bytes = b"") -> None:
        dst_mac, src_mac, src_ip, dst_ip, sport, dport = c.ends[d]
        ip_sum, pseudo_sum = c.sums[d]
        seq = c.seq[d]
        ack = c.seq[1 - d] if flags & ACK else 0
        c.ip_id[d] = ip_id = (c.ip_id[d] + 1) & 0xFFFF
        n = len(payload)
        tcp_sum = (pseudo_sum + 20 + n + sport + dport + (seq >> 16) + (seq & 0xFFFF) + (ack >> 16) + (ack & 0xFFFF)
                   + (0x5000 | flags) + WINDOW + (word_sum(payload) if n else 0))
        self.frame(TCP_FRAME.pack(dst_mac, src_mac, 0x0800, 0x45, 0, 40 + n, ip_id, 0x4000, TTL, TCP,
                                  checksum(ip_sum + 40 + n + ip_id), src_ip, dst_ip, sport, dport, seq, ack, 0x50,
                                  flags, WINDOW, checksum(tcp_sum), 0), payload)
        c.seq[d] = (seq + n + (1 if flags & (SYN | FIN) else 0)) & 0xFFFFFFFF

    def udp(self, c: Conn, d: int, payload: bytes) -> None:
        dst_mac, src_mac, src_ip, dst_ip, sport, dport = c.ends[d]
        ip_sum, pseudo_sum = c.sums[d]
        c.ip_id[d] = ip_id = (c.ip_id[d] + 1) & 0xFFFF
        n = len(payload)
        udp_check = checksum(pseudo_sum + 2 * (8 + n) + sport + dport + word_sum(payload)) or 0xFFFF  # RFC 768
        self.frame(UDP_FRAME.pack(dst_mac, src_mac, 0x0800, 0x45, 0, 28 + n, ip_id, 0, TTL, UDP,
                                  checksum(ip_sum + 28 + n + ip_id), src_ip, dst_ip, sport, dport, 8 + n,
                                  udp_check), payload)

    def icmp(self, c: Conn, d: int, seq: int, payload: bytes) -> None:
        """Echo request (d=0) or reply; ``ends[d][4]`` is the echo identifier."""
        dst_mac, src_mac, src_ip, dst_ip, ident, _ = c.ends[d]
        ip_sum, _pseudo = c.sums[d]
        c.ip_id[d] = ip_id = (c.ip_id[d] + 1) & 0xFFFF
        kind = 8 if d == 0 else 0
        n = len(payload)
        self.frame(ICMP_FRAME.pack(dst_mac, src_mac, 0x0800, 0x45, 0, 28 + n, ip_id, 0, TTL, ICMP,
                                   checksum(ip_sum + 28 + n + ip_id), src_ip, dst_ip, kind, 0,
                                   checksum((kind << 8) + ident + seq + word_sum(payload)), ident, seq), payload)


def segments(c: Conn, d: int, data: bytes, mss: int = MSS) -> list[tuple[Conn, int, int, bytes]]:
    """``data`` as TCP segments of at most ``mss`` bytes; the last one pushes."""
    return [(c, d, PSH | ACK if i + mss >= len(data) else ACK, data[i:i + mss]) for i in range(0, len(data), mss)]
