"""Test support for the S7 dissector: feed a capture's TCP port-102 streams into S7Dissector.

Independent of the sensor pipeline on purpose (so these tests pin the
dissector alone): dpkt reads pcap/pcapng, each TCP direction is put in
sequence order (retransmitted bytes dropped, holes reported with ``gap``).
"""
from __future__ import annotations

import functools
import subprocess
from pathlib import Path

import dpkt

from otsensor.dissectors.base import Direction, Record
from otsensor.dissectors.s7comm import S7Dissector
from tests.corpus import corpus_dir, pdus  # noqa: F401 - corpus_dir re-exported
from tests.corpus import manifest_files as corpus_files

REPO = Path(__file__).resolve().parents[2]
PCAPS = REPO / "pcaps"




def _reader(fh):
    try:
        return dpkt.pcap.Reader(fh)
    except ValueError:
        fh.seek(0)
        return dpkt.pcapng.Reader(fh)


def _ip_of(reader, buf: bytes):
    link = reader.datalink()
    if link == 1:
        frame = dpkt.ethernet.Ethernet(buf)
    elif link == 113:
        frame = dpkt.sll.SLL(buf)
    elif link in (0, 108):
        frame = dpkt.loopback.Loopback(buf)
    else:
        frame = dpkt.ip.IP(buf)
    ip = frame if isinstance(frame, dpkt.ip.IP) else frame.data
    return ip if isinstance(ip, dpkt.ip.IP) and isinstance(ip.data, dpkt.tcp.TCP) else None


@functools.cache
def run_capture(path: Path, port: int = 102) -> tuple[tuple[tuple, Record], ...]:
    """All records of the capture, each with its flow key (client ip, client port); cached per test session."""
    return tuple(_run_capture(path, port))


def _run_capture(path: Path, port: int) -> list[tuple[tuple, Record]]:
    flows: dict[tuple, dict] = {}
    out: list[tuple[tuple, Record]] = []
    with open(path, "rb") as fh:
        reader = _reader(fh)
        for ts, buf in reader:
            try:
                ip = _ip_of(reader, buf)
            except (dpkt.UnpackError, IndexError, ValueError):
                continue
            if ip is None:
                continue
            tcp = ip.data
            if port not in (tcp.sport, tcp.dport):
                continue
            client = (ip.src, tcp.sport) if tcp.dport == port else (ip.dst, tcp.dport)
            direction = Direction.ORIG if tcp.dport == port else Direction.RESP
            flow = flows.setdefault(client, {"dis": S7Dissector({}), "next": {}})
            for rec in _segment(flow, direction, tcp, float(ts)):
                out.append((client, rec))
    for client, flow in flows.items():
        out.extend((client, rec) for rec in flow["dis"].close(0.0))
    return out


def _segment(flow: dict, direction: Direction, tcp, ts: float) -> list[Record]:
    if tcp.flags & dpkt.tcp.TH_SYN:
        flow["next"][direction] = (tcp.seq + 1) & 0xFFFFFFFF
        return []
    payload, seq = bytes(tcp.data), tcp.seq
    if not payload:
        return []
    out: list[Record] = []
    expected = flow["next"].get(direction)
    if expected is not None:
        ahead = (seq - expected) & 0xFFFFFFFF
        if ahead >= 0x80000000:                       # old bytes: retransmission or overlap
            behind = (expected - seq) & 0xFFFFFFFF
            if behind >= len(payload):
                return []
            payload, seq = payload[behind:], expected
        elif ahead:
            out += flow["dis"].gap(direction, ahead, ts)
    flow["next"][direction] = (seq + len(payload)) & 0xFFFFFFFF
    out += flow["dis"].feed(payload, direction, ts)
    return out


def tshark_fields(path: Path, display_filter: str, fields: list[str]) -> list[list[str]]:
    cmd = ["tshark", "-n", "-r", str(path), "-Y", display_filter, "-T", "fields", "-E", "separator=\t",
           "-E", "occurrence=a", "-E", "aggregator=,"]
    for f in fields:
        cmd += ["-e", f]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    return [line.split("\t") for line in res.stdout.splitlines()]


def manifest_files(protocol_key: str) -> list[Path]:
    """Corpus files whose MANIFEST column 8 lists ``protocol_key`` (e.g. 's7comm=')."""
    return corpus_files(lambda row: protocol_key in pdus(row))


def capture_streams(path: Path, port: int = 102) -> list[list[tuple[Direction, bytes]]]:
    """Each TCP flow's payload chunks in capture order (no reassembly: for fuzzing, not for checking)."""
    flows: dict[tuple, list[tuple[Direction, bytes]]] = {}
    with open(path, "rb") as fh:
        reader = _reader(fh)
        for _ts, buf in reader:
            ip = _ip_of(reader, buf)
            if ip is None or port not in (ip.data.sport, ip.data.dport) or not ip.data.data:
                continue
            tcp = ip.data
            client = (ip.src, tcp.sport) if tcp.dport == port else (ip.dst, tcp.dport)
            direction = Direction.ORIG if tcp.dport == port else Direction.RESP
            flows.setdefault(client, []).append((direction, bytes(tcp.data)))
    return list(flows.values())
