"""Test support for the DNP3 tests: a small pcap -> dissector driver and tshark runner.

The driver is deliberately simple (in-order TCP by sequence number, retransmissions
trimmed, holes reported with ``gap``); it lets the DNP3 tests run without the sensor
pipeline.  dpkt is fine here: only ``dissectors/`` must stay free of it.
"""
from __future__ import annotations

import socket
import subprocess
from collections import defaultdict
from pathlib import Path

import dpkt

from otsensor.dissectors.base import Direction
from otsensor.dissectors.dnp3 import Dnp3Dissector, probe
from tests.corpus import corpus_dir, manifest_files, pdus  # noqa: F401 - corpus_dir re-exported for the tests

REPO = Path(__file__).resolve().parents[2]
PCAPS = REPO / "pcaps"


def corpus_dnp3_files() -> list[Path]:
    """Corpus files whose MANIFEST lists DNP3 PDUs or whose path names DNP3."""
    return manifest_files(lambda row: "dnp3" in pdus(row) or "dnp" in row["file"].lower())


def _packets(path: Path, frames: list):
    with open(path, "rb") as fh:
        head = fh.read(4)
        fh.seek(0)
        reader = dpkt.pcapng.Reader(fh) if head == b"\x0a\x0d\x0d\x0a" else dpkt.pcap.Reader(fh)
        linktype = reader.datalink()
        for number, (ts, buf) in enumerate(reader, 1):
            frames.append(number)
            ip = _ip_of(linktype, buf)
            if ip is not None:
                yield float(ts), ip


def _ip_of(linktype: int, buf: bytes):
    try:
        if linktype == dpkt.pcap.DLT_EN10MB:
            eth = dpkt.ethernet.Ethernet(buf)
            ip = eth.data
        elif linktype == dpkt.pcap.DLT_LINUX_SLL:
            ip = dpkt.sll.SLL(buf).data
        elif linktype in (dpkt.pcap.DLT_RAW, 12, 14):
            ip = dpkt.ip.IP(buf) if buf[0] >> 4 == 4 else dpkt.ip6.IP6(buf)
        elif linktype in (dpkt.pcap.DLT_NULL, dpkt.pcap.DLT_LOOP):
            ip = dpkt.loopback.Loopback(buf).data
        else:
            return None
    except (dpkt.dpkt.UnpackError, IndexError, ValueError):
        return None
    return ip if isinstance(ip, (dpkt.ip.IP, dpkt.ip6.IP6)) else None


def _addr(ip, raw: bytes) -> str:
    family = socket.AF_INET if isinstance(ip, dpkt.ip.IP) else socket.AF_INET6
    return socket.inet_ntop(family, raw)


class _TcpFlow:
    def __init__(self, orig: tuple) -> None:
        self.orig = orig
        self.next_seq: dict[Direction, int | None] = {Direction.ORIG: None, Direction.RESP: None}


def run_pcap(path: Path, factory=Dnp3Dissector, frames: list | None = None) -> list:
    """Every record the DNP3 dissector emits for ``path`` (one dissector per TCP/UDP flow).

    ``factory(shared)`` builds the dissector; when ``frames`` is a list, it receives the
    1-based pcap frame number current while each dissector call runs (``frames[-1]``).
    """
    records: list = []
    tcp: dict[tuple, tuple[_TcpFlow, Dnp3Dissector]] = {}
    udp: dict[tuple, tuple[tuple, Dnp3Dissector]] = {}
    last_ts = 0.0
    frames = frames if frames is not None else []
    for ts, ip in _packets(path, frames):
        last_ts = ts
        l4 = ip.data
        src, dst = _addr(ip, ip.src), _addr(ip, ip.dst)
        if isinstance(l4, dpkt.tcp.TCP):
            _tcp(tcp, records, ts, (src, l4.sport), (dst, l4.dport), l4, factory)
        elif isinstance(l4, dpkt.udp.UDP) and l4.data:
            key = frozenset(((src, l4.sport), (dst, l4.dport)))
            if key not in udp:
                if not probe(bytes(l4.data), Direction.ORIG) and 20000 not in (l4.sport, l4.dport):
                    continue
                udp[key] = ((src, l4.sport), factory({}))
            orig, diss = udp[key]
            records += diss.feed(bytes(l4.data), Direction.ORIG if (src, l4.sport) == orig else Direction.RESP, ts)
    for _flow, diss in list(tcp.values()) + [(None, d) for _o, d in udp.values()]:
        if diss is not None:
            records += diss.close(last_ts)
    return records


def _tcp(flows: dict, records: list, ts: float, a: tuple, b: tuple, seg, factory) -> None:
    key = frozenset((a, b))
    entry = flows.get(key)
    payload = bytes(seg.data)
    syn_only = seg.flags & dpkt.tcp.TH_SYN and not seg.flags & dpkt.tcp.TH_ACK
    if entry is not None and syn_only:               # port reuse: a new connection on the same tuple
        if entry[1] is not None:
            records.extend(entry[1].close(ts))
        entry = None
    if entry is None:
        orig = a if syn_only or not payload else (a if b[1] == 20000 or b[1] < a[1] else b)
        entry = flows[key] = (_TcpFlow(orig), None)
    flow, diss = entry
    direction = Direction.ORIG if a == flow.orig else Direction.RESP
    seq = seg.seq + (1 if seg.flags & dpkt.tcp.TH_SYN else 0)
    if flow.next_seq[direction] is None:
        flow.next_seq[direction] = seq
    if not payload:
        return
    if diss is None:
        if not (probe(payload, direction) or 20000 in (a[1], b[1])):
            flows[key] = (flow, None)
            return
        diss = factory({})
        flows[key] = (flow, diss)
    expected = flow.next_seq[direction]
    delta = (seq - expected) & 0xFFFFFFFF
    if delta >= 0x80000000:                      # retransmission of (part of) bytes already delivered
        overlap = (expected - seq) & 0xFFFFFFFF
        payload = payload[overlap:]
        seq = expected
        if not payload:
            return
    elif delta:
        records.extend(diss.gap(direction, delta, ts))
    flow.next_seq[direction] = (seq + len(payload)) & 0xFFFFFFFF
    if not diss.rejected:
        records.extend(diss.feed(payload, direction, ts))


TSHARK_FIELDS = (
    "frame.number", "dnp3.ctl.prifunc", "dnp3.src", "dnp3.dst", "dnp.hdr.CRC.status",
    "dnp.data_chunk.CRC.status", "dnp3.al.func", "dnp3.al.iin", "dnp3.al.seq", "dnp3.al.obj",
    "dnp3.al.objq.prefix", "dnp3.al.objq.range", "dnp3.al.range.start", "dnp3.al.range.stop",
    "dnp3.al.range.quantity", "dnp3.al.fragment", "_ws.malformed", "tcp.analysis.retransmission",
    "dnp3.ctl.op", "dnp3.ctl.trip", "dnp3.al.count", "dnp3.al.on_time", "dnp3.al.off_time",
    "dnp3.al.ctrlstatus", "dnp3.al.cnt", "dnp3.al.ana.int", "dnp3.al.anaout.int",
)


def tshark_rows(path: Path) -> list[dict[str, list[str]]]:
    """One dict per frame tshark decodes as DNP3 (multi-valued fields as lists), one tshark call."""
    return tshark_collect(tshark_start(path))


def tshark_start(path: Path) -> subprocess.Popen:
    """Start tshark on ``path`` (so the caller can work while it runs); see :func:`tshark_collect`."""
    cmd = ["tshark", "-n", "-r", str(path), "--enable-heuristic", "dnp3_tcp", "--enable-heuristic", "dnp3_udp",
           "-Y", "dnp3", "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=|"]
    for f in TSHARK_FIELDS:
        cmd += ["-e", f]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def tshark_collect(proc: subprocess.Popen) -> list[dict[str, list[str]]]:
    stdout, _ = proc.communicate(timeout=300)
    rows = []
    for line in stdout.splitlines():
        cols = line.split("\t")
        cols += [""] * (len(TSHARK_FIELDS) - len(cols))
        rows.append({name: [v for v in col.split("|") if v != ""] for name, col in zip(TSHARK_FIELDS, cols)})
    return rows


def by_log(records: list) -> dict[str, list]:
    out: dict[str, list] = defaultdict(list)
    for r in records:
        out[r.LOG].append(r)
    return out
