"""Build a large synthetic benchmark capture: Modbus/TCP masters polling PLCs amid ordinary IT traffic.

    python bench/make_capture.py --packets 1000000 --out bench/data/bench_1000000.pcap [--seed 1]

What the file holds (classic pcap, Ethernet link type, microsecond timestamps):

* Modbus/TCP: ``--masters`` HMIs/SCADA masters (10.10.1.x) polling ``--plcs``
  PLCs (10.10.2.x, port 502); every PLC is polled by one master, every other
  PLC by a second one too.  Each connection opens with a full TCP handshake,
  then repeats a scan list of 2-5 reads (FC 3/4/1/2, realistic quantities,
  some gateways with several unit ids) in order, one request and its response
  at a time, with an occasional setpoint write (FC 6/16) and a rare exception
  response; it closes with FIN at the end of the capture.
* IT traffic of about the same packet volume: HTTPS-like (TLS application
  data records) and HTTP/1.1 keep-alive TCP flows with multi-segment
  responses, DNS queries and answers over UDP, ICMP echo.

The set of flows does not depend on ``--packets``: a larger capture has the
same flows with more packets each, so the benchmark can check that the
sensor's memory does not grow with the packet count.  The output depends
only on the arguments (seeded).  Packets are built from precompiled struct
templates and written in large batches, so a million packets take a few
seconds and memory stays flat.  Checksums are left zero (tshark does not
verify them by default); lengths and TCP sequence numbers are exact.
"""
from __future__ import annotations

import argparse
import random
import struct
import sys
import time
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path

PCAP_HEADER = struct.Struct("<IHHiIII")
RECORD = struct.Struct("<IIII")
ETH_IPV4 = "!6s6sH BBHHHBBH4s4s"
TCP_FRAME = struct.Struct(ETH_IPV4 + " HHIIBBHHH")    # 54 bytes: Ethernet + IPv4 + TCP without options
UDP_FRAME = struct.Struct(ETH_IPV4 + " HHHH")         # 42 bytes
ICMP_FRAME = struct.Struct(ETH_IPV4 + " BBHHH")       # 42 bytes
MBAP = struct.Struct("!HHHBB")                          # tid, protocol id, length, unit, function code
_HH = struct.Struct("!HH")
_HHHB = struct.Struct("!HHHB")
_DNS_HEADER = struct.Struct("!HHHHHH")

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
TCP_PROTO, UDP_PROTO, ICMP_PROTO = 6, 17, 1
MSS = 1448
BATCH = 20_000          # packets per write

# Poll list shapes: (function code, weight, quantities) - register reads dominate real HMI polling.
READS = ((3, 50, (2, 4, 8, 10, 16, 20, 32, 50, 64, 100, 125)),
         (4, 20, (2, 4, 8, 10, 16, 24, 32)),
         (1, 15, (8, 16, 32, 64, 128, 256)),
         (2, 15, (8, 16, 24, 32, 64)))
WRITE_RATE = 0.03       # share of exchanges replaced by a setpoint write (half FC 6, half FC 16)
EXCEPTION_RATE = 0.004  # share of requests answered with an exception
EXCEPTIONS = (2, 2, 2, 3, 4, 6)

HOSTNAMES = ("intranet.corp.example", "mail.corp.example", "updates.vendor.example", "historian.plant.example",
             "time.corp.example", "wiki.corp.example", "cdn.assets.example", "login.corp.example",
             "files.corp.example", "proxy.corp.example", "ocsp.ca.example", "api.erp.example")
HTTP_PATHS = ("/", "/index.html", "/api/v1/status", "/reports/daily.csv", "/static/app.js", "/img/logo.png",
              "/trends?tag=FIC101&span=1h", "/alarms/active")


@dataclass(slots=True)
class Conn:
    """One flow's two directions: ends[d] = (dst_mac, src_mac, src_ip, dst_ip, sport, dport)."""

    kind: str
    ends: tuple
    seq: list = field(default_factory=lambda: [0, 0])
    ip_id: list = field(default_factory=lambda: [0, 0])
    state: dict = field(default_factory=dict)


@dataclass
class Summary:
    packets: int = 0
    flows: dict = field(default_factory=dict)
    kind_packets: dict = field(default_factory=dict)
    modbus_requests: int = 0
    modbus_responses: int = 0
    modbus_exceptions: int = 0
    modbus_writes: int = 0
    seconds: float = 0.0


class PcapWriter:
    """Frames to a pcap file in batches; the clock advances a little (with seeded jitter) per packet."""

    def __init__(self, fh, rng: random.Random, step_us: int, start_s: int = 1_780_000_000) -> None:
        self.fh = fh
        self.parts: list[bytes] = []
        self.count = 0
        self.clock = start_s * 1_000_000
        self.jitter = [step_us // 2 + rng.randrange(step_us + 1) for _ in range(257)]
        self.kind_packets: dict[str, int] = {}
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

    def tcp(self, c: Conn, d: int, flags: int, payload: bytes = b"") -> None:
        dst_mac, src_mac, src_ip, dst_ip, sport, dport = c.ends[d]
        seq, ack = c.seq[d], c.seq[1 - d]
        c.ip_id[d] = ip_id = (c.ip_id[d] + 1) & 0xFFFF
        n = len(payload)
        self.frame(TCP_FRAME.pack(dst_mac, src_mac, 0x0800, 0x45, 0, 40 + n, ip_id, 0x4000, 64, TCP_PROTO, 0,
                                  src_ip, dst_ip, sport, dport, seq, ack if flags & ACK else 0, 0x50, flags,
                                  64240, 0, 0), payload)
        c.seq[d] = (seq + n + (1 if flags & (SYN | FIN) else 0)) & 0xFFFFFFFF

    def udp(self, c: Conn, d: int, payload: bytes) -> None:
        dst_mac, src_mac, src_ip, dst_ip, sport, dport = c.ends[d]
        c.ip_id[d] = ip_id = (c.ip_id[d] + 1) & 0xFFFF
        n = len(payload)
        self.frame(UDP_FRAME.pack(dst_mac, src_mac, 0x0800, 0x45, 0, 28 + n, ip_id, 0, 64, UDP_PROTO, 0,
                                  src_ip, dst_ip, sport, dport, 8 + n, 0), payload)

    def icmp(self, c: Conn, d: int, seq: int, payload: bytes) -> None:
        """Echo request (d=0) or reply; the ICMP checksum is filled in, as tshark checks it by default."""
        dst_mac, src_mac, src_ip, dst_ip, ident, _ = c.ends[d]
        c.ip_id[d] = ip_id = (c.ip_id[d] + 1) & 0xFFFF
        kind = 8 if d == 0 else 0
        checksum = inet_checksum((kind << 8) + ident + seq + payload_sum(payload))
        self.frame(ICMP_FRAME.pack(dst_mac, src_mac, 0x0800, 0x45, 0, 28 + len(payload), ip_id, 0, 64, ICMP_PROTO,
                                   0, src_ip, dst_ip, kind, 0, checksum, ident, seq), payload)


def payload_sum(data: bytes) -> int:
    """Sum of the 16-bit big-endian words of ``data`` (RFC 1071), zero-padded to an even length."""
    if len(data) % 2:
        data += b"\x00"
    return sum(struct.unpack(f"!{len(data) // 2}H", data))


def inet_checksum(total: int) -> int:
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ip4(a: int, b: int, c: int, d: int) -> bytes:
    return bytes((a, b, c, d))


def mac(oui: bytes, index: int) -> bytes:
    return oui + index.to_bytes(3, "big")


def conn(kind: str, cmac: bytes, cip: bytes, cport: int, smac: bytes, sip: bytes, sport: int, rng: random.Random) -> Conn:
    c = Conn(kind, ((smac, cmac, cip, sip, cport, sport), (cmac, smac, sip, cip, sport, cport)))
    c.seq = [rng.getrandbits(32), rng.getrandbits(32)]
    c.ip_id = [rng.getrandbits(16), rng.getrandbits(16)]
    return c


# -- the population ------------------------------------------------------------------------------------------

OUI_PLC = (b"\x00\x80\xf4", b"\x00\x0e\x8c", b"\x00\x1d\x9c", b"\x28\x63\x36")  # Telemecanique, Siemens, Rockwell, Siemens
OUI_HMI = b"\x00\x1c\x23"      # Dell
OUI_IT = (b"\x3c\x52\x82", b"\xf4\x8e\x38", b"\x00\x50\x56")  # HP, Dell, VMware


def modbus_flows(masters: int, plcs: int, rng: random.Random) -> list[Conn]:
    flows = []
    for p in range(plcs):
        plc_mac, plc_ip = mac(OUI_PLC[p % len(OUI_PLC)], 0x1000 + p), ip4(10, 10, 2 + p // 250, 1 + p % 250)
        pollers = {p % masters} | ({(p * 7 + 3) % masters} if p % 2 else set())
        units = (1, 2, 3, 4) if p % 10 == 9 else (1,) if p % 3 else (255,)  # some gateways, some unit 255
        for m in sorted(pollers):
            c = conn("modbus", mac(OUI_HMI, 0x200 + m), ip4(10, 10, 1, 10 + m), 49152 + rng.randrange(16000),
                     plc_mac, plc_ip, 502, rng)
            c.state["tid"] = rng.randrange(65536)
            c.state["scan"] = scan_list(units, rng)
            c.state["next"] = 0
            flows.append(c)
    return flows


def scan_list(units: tuple, rng: random.Random) -> list[tuple[int, int, int, int]]:
    """A master's repeating poll cycle for one PLC: (function code, unit, address, quantity)."""
    items = []
    for _ in range(rng.randint(2, 5)):
        fc, _w, quantities = rng.choices(READS, weights=[r[1] for r in READS])[0]
        items.append((fc, rng.choice(units), rng.randrange(0, 4000, 10), rng.choice(quantities)))
    return items


def it_flows(clients: int, servers: int, rng: random.Random) -> list[Conn]:
    flows = []
    server_hosts = [(mac(OUI_IT[s % 3], 0x9000 + s), ip4(10, 20, 0, 10 + s)) for s in range(servers)]
    dns_server = (mac(OUI_IT[0], 0x9999), ip4(10, 20, 0, 2))
    for i in range(clients):
        cmac, cip = mac(OUI_IT[i % 3], 0x100 + i), ip4(10, 20, 10 + i // 250, 1 + i % 250)
        for k in range(3):  # a few long-lived web sessions per client
            smac, sip = server_hosts[(i * 3 + k) % servers]
            port = 443 if (i + k) % 4 else 80
            flows.append(conn("https" if port == 443 else "http", cmac, cip, 40000 + rng.randrange(20000),
                              smac, sip, port, rng))
        dns = conn("dns", cmac, cip, 30000 + rng.randrange(30000), dns_server[0], dns_server[1], 53, rng)
        dns.state["tid"] = rng.randrange(65536)
        flows.append(dns)
        if i % 4 == 0:
            smac, sip = server_hosts[i % servers]
            ping = conn("icmp", cmac, cip, rng.randrange(65536), smac, sip, 0, rng)
            ping.state["seq"] = 0
            flows.append(ping)
    return flows


# -- exchanges: each returns the packets of one request/response as (conn, direction, flags, payload) -------

def modbus_exchange(c: Conn, rng: random.Random) -> list:
    st = c.state
    tid = st["tid"] = (st["tid"] + 1) & 0xFFFF
    fc, unit, address, qty = st["scan"][st["next"]]
    st["next"] = (st["next"] + 1) % len(st["scan"])
    r = rng.random()
    if r < WRITE_RATE:
        if r < WRITE_RATE / 2:
            fc, qty = 6, 1
            body = _HH.pack(address, rng.randrange(65536))
            answer = body
        else:
            fc, qty = 16, rng.randint(2, 10)
            body = _HH.pack(address, qty) + bytes((2 * qty,)) + rng.randbytes(2 * qty)
            answer = _HH.pack(address, qty)
    else:
        body = _HH.pack(address, qty)
        if fc in (3, 4):
            answer = bytes((2 * qty,)) + rng.randbytes(2 * qty)
        else:
            nbytes = (qty + 7) // 8
            answer = bytes((nbytes,)) + rng.randbytes(nbytes)
    if r > 1 - EXCEPTION_RATE:
        rfc, answer = fc | 0x80, bytes((rng.choice(EXCEPTIONS),))
    else:
        rfc = fc
    request = MBAP.pack(tid, 0, 2 + len(body), unit, fc) + body
    response = MBAP.pack(tid, 0, 2 + len(answer), unit, rfc) + answer
    out = [(c, 0, PSH | ACK, request), (c, 1, PSH | ACK, response)]
    if tid & 1:  # the master's delayed ACK, on every other exchange
        out.append((c, 0, ACK, b""))
    return out


def segments(c: Conn, d: int, data: bytes) -> list:
    return [(c, d, PSH | ACK if i + MSS >= len(data) else ACK, data[i:i + MSS]) for i in range(0, len(data), MSS)]


def https_exchange(c: Conn, rng: random.Random, blob: bytes) -> list:
    def record(n: int) -> bytes:
        start = rng.randrange(len(blob) - n)
        return b"\x17\x03\x03" + n.to_bytes(2, "big") + blob[start:start + n]
    out = segments(c, 0, record(rng.randint(90, 700)))
    out += segments(c, 1, record(rng.choice((120, 400, 1300, 2900, 4300, 5800))))
    out.append((c, 0, ACK, b""))
    return out


def http_exchange(c: Conn, rng: random.Random, text: bytes) -> list:
    host = HOSTNAMES[c.ends[0][3][3] % len(HOSTNAMES)]
    request = (f"GET {rng.choice(HTTP_PATHS)} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Mozilla/5.0\r\n"
               f"Accept: */*\r\nConnection: keep-alive\r\n\r\n").encode()
    size = rng.choice((230, 900, 2600, 4100))
    body = text[:size]
    response = (f"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {size}\r\n"
                f"Cache-Control: max-age=60\r\n\r\n").encode() + body
    return segments(c, 0, request) + segments(c, 1, response) + [(c, 0, ACK, b"")]


def dns_exchange(c: Conn, rng: random.Random) -> list:
    tid = c.state["tid"] = (c.state["tid"] + 1) & 0xFFFF
    name = rng.choice(HOSTNAMES)
    qname = b"".join(bytes((len(p),)) + p.encode() for p in name.split(".")) + b"\x00"
    question = qname + b"\x00\x01\x00\x01"
    query = _DNS_HEADER.pack(tid, 0x0100, 1, 0, 0, 0) + question
    answer = (_DNS_HEADER.pack(tid, 0x8180, 1, 1, 0, 0) + question + b"\xc0\x0c\x00\x01\x00\x01"
              + (300).to_bytes(4, "big") + b"\x00\x04" + ip4(10, 20, 0, 10 + len(name) % 20))
    return [(c, 0, -1, query), (c, 1, -1, answer)]


PING_PAYLOAD = bytes(range(8, 64))


def icmp_exchange(c: Conn) -> list:
    seq = c.state["seq"] = (c.state["seq"] + 1) & 0xFFFF
    return [(c, 0, -2 - seq, PING_PAYLOAD), (c, 1, -2 - seq, PING_PAYLOAD)]


# -- the schedule --------------------------------------------------------------------------------------------

def emit(w: PcapWriter, plan, counts: dict, summary: Summary) -> None:
    for c, d, flags, payload in plan:
        if c.kind == "modbus" and payload:
            count_modbus(summary, d, payload)
        if flags >= 0:
            w.tcp(c, d, flags, payload)
        elif flags == -1:
            w.udp(c, d, payload)
        else:
            w.icmp(c, d, -2 - flags, payload)
        counts[c.kind] = counts.get(c.kind, 0) + 1


def count_modbus(summary: Summary, d: int, adu: bytes) -> None:
    if d == 0:
        summary.modbus_requests += 1
        summary.modbus_writes += adu[7] in (6, 16)
    else:
        summary.modbus_responses += 1
        summary.modbus_exceptions += adu[7] >> 7


def interleave(exchanges: list, group: int = 6):
    """Packets of ``group`` concurrent exchanges interleaved (request of each, then the answers...)."""
    for i in range(0, len(exchanges), group):
        for step in zip_longest(*exchanges[i:i + group]):
            for item in step:
                if item is not None:
                    yield item


def generate(out: str | Path, packets: int = 1_000_000, seed: int = 1, masters: int = 40, plcs: int = 200,
             it_clients: int = 60, it_servers: int = 20) -> Summary:
    """Write the capture to ``out``; returns what was written (packets per kind, Modbus ADUs)."""
    started = time.perf_counter()
    rng = random.Random(seed)
    mb = modbus_flows(masters, plcs, rng)
    it = it_flows(it_clients, it_servers, rng)
    tcp = [c for c in mb + it if c.kind in ("modbus", "http", "https")]
    summary = Summary()
    for c in mb + it:
        summary.flows[c.kind] = summary.flows.get(c.kind, 0) + 1
    blob = rng.randbytes(1 << 16)
    text = (b"<html><body><h1>Plant report</h1>" + b"<p>Line 3 throughput nominal; no alarms.</p>" * 120)
    # Expected packets per exchange, to give IT flows about the Modbus packet volume.
    mb_round = 2.5 * len(mb)
    it_cost = {"https": 5.0, "http": 5.0, "dns": 2.0, "icmp": 2.0}
    it_round = sum(it_cost[c.kind] for c in it)
    it_share = min(1.0, mb_round / it_round) if it_round else 0.0
    step_us = max(1, int(250_000 / (mb_round + it_round * it_share)))  # one poll cycle every ~250 ms
    teardown = 3 * len(tcp)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    with open(out, "wb") as fh:
        w = PcapWriter(fh, rng, step_us)
        handshakes = [[(c, 0, SYN, b""), (c, 1, SYN | ACK, b""), (c, 0, ACK, b"")] for c in tcp]
        rng.shuffle(handshakes)
        emit(w, interleave(handshakes), counts, summary)
        while w.count + teardown < packets:
            exchanges = [modbus_exchange(c, rng) for c in mb]
            for c in it:
                if rng.random() < it_share:
                    if c.kind == "https":
                        exchanges.append(https_exchange(c, rng, blob))
                    elif c.kind == "http":
                        exchanges.append(http_exchange(c, rng, text))
                    elif c.kind == "dns":
                        exchanges.append(dns_exchange(c, rng))
                    else:
                        exchanges.append(icmp_exchange(c))
            rng.shuffle(exchanges)
            for i in range(0, len(exchanges), 6):
                if w.count + teardown >= packets:
                    break
                emit(w, interleave(exchanges[i:i + 6]), counts, summary)
            else:
                continue
            break
        closes = [[(c, 0, FIN | ACK, b""), (c, 1, FIN | ACK, b""), (c, 0, ACK, b"")] for c in tcp]
        emit(w, interleave(closes), counts, summary)
        w.flush()
    summary.packets = w.count
    summary.kind_packets = counts
    summary.seconds = round(time.perf_counter() - started, 2)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=1_000_000, help="about this many packets (default 1000000)")
    parser.add_argument("--out", default=None, help="output pcap (default bench/data/bench_<packets>.pcap)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--masters", type=int, default=40)
    parser.add_argument("--plcs", type=int, default=200)
    parser.add_argument("--it-clients", type=int, default=60)
    parser.add_argument("--it-servers", type=int, default=20)
    args = parser.parse_args(argv)
    out = args.out or Path(__file__).resolve().parent / "data" / f"bench_{args.packets}.pcap"
    s = generate(out, args.packets, args.seed, args.masters, args.plcs, args.it_clients, args.it_servers)
    print(f"{out}: {s.packets} packets in {s.seconds}s; flows {s.flows}; packets {s.kind_packets}; "
          f"modbus requests {s.modbus_requests}, exceptions {s.modbus_exceptions}, writes {s.modbus_writes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
