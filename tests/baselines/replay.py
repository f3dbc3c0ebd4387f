"""Real application bytes under other addresses: the baselines tests' way to build a plant.

The committed captures hold what real stacks (pymodbus, snap7, dnp3py, cpppo) said.  A test
that needs the same conversation between other hosts (IPv6, public space, a DNP3 outstation
that opens the connection, one host in two roles) takes the payloads of a captured TCP
connection, in order and with their timestamps, and sends them again as a fresh TCP session
between the addresses it names, with a handshake, sequence numbers that follow and a close.
"""
from __future__ import annotations

import io
import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scapy.all import IP, TCP, Ether, IPv6, Raw, rdpcap, wrpcap  # type: ignore

PCAPS = Path(__file__).resolve().parents[2] / "pcaps"


@dataclass(frozen=True)
class Segment:
    ts: float
    from_client: bool      # sent by the side that opened the captured connection
    payload: bytes


def conversation(pcap: Path, server_port: int, client_host: str | None = None) -> list[Segment]:
    """The payload-carrying segments of the first TCP connection to ``server_port`` in a capture
    (of ``client_host``'s connections only, when given: a capture of a plant holds several)."""
    segments, client = [], None
    for frame in rdpcap(str(pcap)):
        if TCP not in frame or not (frame[TCP].dport == server_port or frame[TCP].sport == server_port):
            continue
        layer = IP if IP in frame else IPv6
        if client_host is not None and client_host not in (frame[layer].src, frame[layer].dst):
            continue
        endpoint = (frame[layer].src, frame[TCP].sport)
        if client is None and frame[TCP].dport == server_port:
            client = endpoint
        if client is not None and bytes(frame[TCP].payload):
            segments.append(Segment(float(frame.time), endpoint == client, bytes(frame[TCP].payload)))
    return segments


def session(segments: list[Segment], client: tuple[str, int], server: tuple[str, int], *,
            client_sends: bool = True, t0: float | None = None) -> list[Any]:
    """Frames of a TCP session that ``client`` opens to ``server`` and closes.

    ``client_sends`` False hands the captured client's bytes to the new server: the other
    side of the conversation opens the connection (a DNP3 outstation dialling its master).
    ``t0`` moves the conversation in time (its first payload at ``t0``).
    """
    shift = 0.0 if t0 is None or not segments else t0 - segments[0].ts
    start = (segments[0].ts if segments else 0.0) + shift - 0.003
    seq = {True: 1000, False: 50000}
    frames = [_frame(client, server, True, "S", seq, start),
              _frame(client, server, False, "SA", seq, start + 0.001),
              _frame(client, server, True, "A", seq, start + 0.002)]
    last = start + 0.002
    for seg in segments:
        by_client = seg.from_client == client_sends
        last = seg.ts + shift
        frames.append(_frame(client, server, by_client, "PA", seq, last, seg.payload))
    frames += [_frame(client, server, True, "FA", seq, last + 0.001),
               _frame(client, server, False, "FA", seq, last + 0.002),
               _frame(client, server, True, "A", seq, last + 0.003)]
    return frames


def _frame(client: tuple[str, int], server: tuple[str, int], by_client: bool, flags: str,
           seq: dict[bool, int], ts: float, payload: bytes = b"") -> Any:
    (src, sport), (dst, dport) = (client, server) if by_client else (server, client)
    ip = IPv6(src=src, dst=dst) if ":" in src else IP(src=src, dst=dst)
    segment = TCP(sport=sport, dport=dport, flags=flags, seq=seq[by_client],
                  ack=seq[not by_client] if flags != "S" else 0)
    frame = Ether(src=_mac(src), dst=_mac(dst)) / ip / segment
    if payload:
        frame = frame / Raw(payload)
    seq[by_client] += len(payload) + (1 if flags in ("S", "SA") or "F" in flags else 0)
    frame.time = ts
    return frame


def _mac(ip: str) -> str:
    """A locally administered MAC per address, so the inventory sees one interface per host."""
    digest = zlib.crc32(ip.encode()) << 8
    return "02:" + ":".join(f"{(digest >> s) & 0xFF:02x}" for s in (32, 24, 16, 8, 0))


def write(path: Path, *frame_lists: list[Any]) -> Path:
    """Frames of several sessions, in time order, as one pcap."""
    frames = sorted((f for frames in frame_lists for f in frames), key=lambda f: float(f.time))
    wrpcap(str(path), frames)
    return path


def analyze_capture(pcap: Path, out: Path, **kw: Any) -> dict[str, Any]:
    """``sensor.analyze.analyze`` in-process: assets by address, alerts, and the run's result."""
    from otsensor.sensor.analyze import analyze

    result = analyze([str(pcap)], str(out), quiet=True, out=io.StringIO(), err=io.StringIO(), progress=False, **kw)
    assets = {a["ip"]: a for a in json.loads((out / "assets.json").read_text())["assets"]}
    alerts = [json.loads(line) for line in (out / "alerts.jsonl").read_text().splitlines() if line.strip()]
    return {"assets": assets, "alerts": alerts, "result": result}


def learn_baseline(*pcaps: Path) -> dict[str, Any]:
    """The baseline ``otsensor baseline learn`` would write for ``pcaps`` (no zones), in-process, as JSON."""
    from otsensor.baselines.learn import to_baseline
    from otsensor.baselines.zones import Zones
    from otsensor.sensor.baseline_cli import observe

    inventory, _graph, observer, _ = observe([str(p) for p in pcaps], Zones())
    return json.loads(json.dumps(to_baseline(observer, inventory, [str(p) for p in pcaps], None)))
