"""The benchmark's captures: which traffics each mixes, in what shares, and how tshark's light mode reads it."""
from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .dnp3 import Dnp3Traffic
from .enip import EnipTraffic
from .it import ItTraffic
from .modbus import ModbusTraffic
from .pcap import ACK, PSH, PcapWriter
from .s7 import S7Traffic
from .schedule import Summary, Traffic, write_capture

Mix = list[tuple[Traffic, float]]


@dataclass(frozen=True)
class CaptureSpec:
    name: str
    title: str
    mix: Callable[[random.Random, bool], Mix]   # (rng, small population for tests) -> traffics and packet shares
    display_filter: str                          # tshark's lighter mode: -Y FILTER -T fields -e FIELD
    field: str


def _modbus(rng: random.Random, small: bool) -> Mix:
    if small:
        return [(ModbusTraffic(rng, masters=4, plcs=12), 0.95), (ItTraffic(rng, clients=4, servers=3), 0.05)]
    return [(ModbusTraffic(rng), 0.95), (ItTraffic(rng, clients=20, servers=10), 0.05)]


def _s7(rng: random.Random, small: bool) -> Mix:
    return [(S7Traffic(rng, clients=3, plcs=6) if small else S7Traffic(rng), 1.0)]


def _dnp3(rng: random.Random, small: bool) -> Mix:
    return [(Dnp3Traffic(rng, masters=2, outstations=8) if small else Dnp3Traffic(rng), 1.0)]


def _enip(rng: random.Random, small: bool) -> Mix:
    return [(EnipTraffic(rng, hmis=2, plcs=4, adapters_per_plc=1) if small else EnipTraffic(rng), 1.0)]


def _mixed(rng: random.Random, small: bool) -> Mix:
    ot = [_modbus(rng, small)[0][0], _s7(rng, small)[0][0], _dnp3(rng, small)[0][0], _enip(rng, small)[0][0]]
    it = ItTraffic(rng, clients=8, servers=4) if small else ItTraffic(rng)
    return [(t, 0.175) for t in ot] + [(it, 0.30)]


CAPTURES: dict[str, CaptureSpec] = {spec.name: spec for spec in (
    CaptureSpec("modbus", "Modbus/TCP SCADA testbed (5% IT)", _modbus, "modbus", "modbus.func_code"),
    CaptureSpec("s7", "S7comm process traffic", _s7, "s7comm", "s7comm.param.func"),
    CaptureSpec("dnp3", "DNP3 over TCP 20000", _dnp3, "dnp3", "dnp3.al.func"),
    CaptureSpec("enip", "EtherNet/IP + CIP, implicit I/O", _enip, "enip", "enip.command"),
    CaptureSpec("mixed", "all four + 30% IT", _mixed, "modbus || s7comm || dnp3 || enip", "frame.number"),
    CaptureSpec("one", "one Modbus request (the fixed cost of a run)", _modbus, "modbus", "modbus.func_code"),
)}


def build(name: str, out: str | Path, packets: int = 1_000_000, seed: int = 1, small: bool = False) -> Summary:
    """Write capture ``name`` with about ``packets`` packets (the one-packet capture ignores the count)."""
    rng = random.Random(seed)
    if name == "one":
        return one_packet(out, rng)
    return write_capture(out, CAPTURES[name].mix(rng, small), packets, rng)


def one_packet(out: str | Path, rng: random.Random) -> Summary:
    """A capture of a single packet, a Modbus request on a connection already open: what a run costs
    before the first packet (imports, start-up, writing the outputs)."""
    traffic = ModbusTraffic(rng, masters=1, plcs=1)
    c = traffic.flows[0]
    exchange = traffic.exchange(c, rng)
    _c, d, flags, payload = exchange.packets[0]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as fh:
        writer = PcapWriter(fh, rng, 1000)
        writer.tcp(c, d, flags or PSH | ACK, payload)
        writer.flush()
    return Summary(packets=1, flows=Counter({c.kind: 1}), kind_packets=Counter({c.kind: 1}),
                   pdus=Counter([exchange.pdus[0]]))
