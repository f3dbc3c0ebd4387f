"""Ordinary IT traffic around the OT flows: HTTPS-like and HTTP/1.1 keep-alive sessions with
multi-segment responses, DNS queries and answers over UDP, ICMP echo.

No OT dissector may take any of it for its protocol; it costs the sensor a flow
lookup and counters per packet, and gives tshark TLS, HTTP and DNS to dissect.
"""
from __future__ import annotations

import random
import struct

from .pcap import ACK, ICMP, TCP, UDP, Conn, conn, ip4, mac, segments
from .schedule import Exchange, Traffic

_DNS_HEADER = struct.Struct("!HHHHHH")
OUI_IT = (b"\x3c\x52\x82", b"\xf4\x8e\x38", b"\x00\x50\x56")  # HP, Dell, VMware
HOSTNAMES = ("intranet.corp.example", "mail.corp.example", "updates.vendor.example", "historian.plant.example",
             "time.corp.example", "wiki.corp.example", "cdn.assets.example", "login.corp.example",
             "files.corp.example", "proxy.corp.example", "ocsp.ca.example", "api.erp.example")
HTTP_PATHS = ("/", "/index.html", "/api/v1/status", "/reports/daily.csv", "/static/app.js", "/img/logo.png",
              "/trends?tag=FIC101&span=1h", "/alarms/active")
PING_PAYLOAD = bytes(range(8, 64))
TEXT = b"<html><body><h1>Plant report</h1>" + b"<p>Line 3 throughput nominal; no alarms.</p>" * 120
COST = {"https": 4.3, "http": 4.0, "dns": 2.0, "icmp": 2.0}    # expected packets per exchange


class ItTraffic(Traffic):
    """``clients`` office hosts (10.20.x.x) with three web sessions each, a DNS resolver, some pings."""

    kind = "it"

    def __init__(self, rng: random.Random, clients: int = 60, servers: int = 20) -> None:
        self.flows: list[Conn] = []
        self.blob = rng.randbytes(1 << 16)
        server_hosts = [((mac(OUI_IT[s % 3], 0x9000 + s), ip4(10, 20, 0, 10 + s))) for s in range(servers)]
        dns_server = (mac(OUI_IT[0], 0x9999), ip4(10, 20, 0, 2))
        for i in range(clients):
            cmac, cip = mac(OUI_IT[i % 3], 0x100 + i), ip4(10, 20, 10 + i // 250, 1 + i % 250)
            for k in range(3):  # a few long-lived web sessions per client
                smac, sip = server_hosts[(i * 3 + k) % servers]
                port = 443 if (i + k) % 4 else 80
                self.flows.append(conn("https" if port == 443 else "http", TCP,
                                       (cmac, cip, 40000 + rng.randrange(20000)), (smac, sip, port), rng))
            dns = conn("dns", UDP, (cmac, cip, 30000 + rng.randrange(30000)), (*dns_server, 53), rng)
            dns.state["tid"] = rng.randrange(65536)
            self.flows.append(dns)
            if i % 4 == 0:
                smac, sip = server_hosts[i % servers]
                ping = conn("icmp", ICMP, (cmac, cip, rng.randrange(65536)), (smac, sip, 0), rng)
                ping.state["seq"] = 0
                self.flows.append(ping)
        self.round_packets = sum(COST[c.kind] for c in self.flows)

    def exchange(self, c: Conn, rng: random.Random) -> Exchange:
        if c.kind == "https":
            return Exchange(self._https(c, rng))
        if c.kind == "http":
            return Exchange(self._http(c, rng))
        if c.kind == "dns":
            return Exchange(self._dns(c, rng))
        seq = c.state["seq"] = (c.state["seq"] + 1) & 0xFFFF
        return Exchange([(c, 0, seq, PING_PAYLOAD), (c, 1, seq, PING_PAYLOAD)])

    def _https(self, c: Conn, rng: random.Random) -> list:
        def record(n: int) -> bytes:
            start = rng.randrange(len(self.blob) - n)
            return b"\x17\x03\x03" + n.to_bytes(2, "big") + self.blob[start:start + n]
        out = segments(c, 0, record(rng.randint(90, 700)))
        out += segments(c, 1, record(rng.choice((120, 400, 1300, 2900, 4300, 5800))))
        out.append((c, 0, ACK, b""))
        return out

    @staticmethod
    def _http(c: Conn, rng: random.Random) -> list:
        host = HOSTNAMES[c.ends[0][3][3] % len(HOSTNAMES)]
        request = (f"GET {rng.choice(HTTP_PATHS)} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Mozilla/5.0\r\n"
                   f"Accept: */*\r\nConnection: keep-alive\r\n\r\n").encode()
        size = rng.choice((230, 900, 2600, 4100))
        response = (f"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {size}\r\n"
                    f"Cache-Control: max-age=60\r\n\r\n").encode() + TEXT[:size]
        return segments(c, 0, request) + segments(c, 1, response) + [(c, 0, ACK, b"")]

    @staticmethod
    def _dns(c: Conn, rng: random.Random) -> list:
        tid = c.state["tid"] = (c.state["tid"] + 1) & 0xFFFF
        name = rng.choice(HOSTNAMES)
        qname = b"".join(bytes((len(p),)) + p.encode() for p in name.split(".")) + b"\x00"
        question = qname + b"\x00\x01\x00\x01"
        query = _DNS_HEADER.pack(tid, 0x0100, 1, 0, 0, 0) + question
        answer = (_DNS_HEADER.pack(tid, 0x8180, 1, 1, 0, 0) + question + b"\xc0\x0c\x00\x01\x00\x01"
                  + (300).to_bytes(4, "big") + b"\x00\x04" + ip4(10, 20, 0, 10 + len(name) % 20))
        return [(c, 0, 0, query), (c, 1, 0, answer)]
