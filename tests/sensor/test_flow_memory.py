"""The flow table is bounded by memory as well as by count: a SYN flood from spoofed sources cannot take the box.

The budget (``--flow-memory``) is split: half for the flows' own state, accounted per flow when it is
created and when a dissector attaches; half for out-of-order TCP bytes, accounted per held segment.
The accounting is checked against what tracemalloc sees, so it cannot drift below the real cost.
"""
from __future__ import annotations

import gc
import json
import struct
import subprocess
import sys
import tracemalloc
from collections.abc import Callable

import pytest

from otsensor.sensor.analyze import analyze
from otsensor.sensor.pipeline import Limits, Pipeline

ETH_IPV4_TCP = struct.Struct("!6s6sH BBHHHBBH4s4s HHIIBBHHH")   # Ethernet, IPv4 and TCP without options
ETH_IPV4_UDP = struct.Struct("!6s6sH BBHHHBBH4s4s HHHH")
SYN, ACK, PSH = 0x02, 0x10, 0x08
SERVER = bytes([10, 9, 9, 9])


def spoofed(i: int) -> bytes:
    return struct.pack("!I", 0xAC100000 + i)   # 172.16.0.0/12: one source per packet


def tcp_frame(src: bytes, dst: bytes, sport: int, dport: int, flags: int, seq: int, payload: bytes = b"") -> bytes:
    return ETH_IPV4_TCP.pack(b"\x02" * 6, b"\x04" * 6, 0x0800, 0x45, 0, 40 + len(payload), 1, 0, 64, 6, 0, src, dst,
                             sport, dport, seq, 0, 0x50, flags, 65535, 0, 0) + payload


def udp_frame(src: bytes, dst: bytes, sport: int, dport: int, payload: bytes) -> bytes:
    return ETH_IPV4_UDP.pack(b"\x02" * 6, b"\x04" * 6, 0x0800, 0x45, 0, 28 + len(payload), 1, 0, 64, 17, 0, src, dst,
                             sport, dport, 8 + len(payload), 0) + payload


def flood_pcap(frames: list[bytes]) -> bytes:
    """A classic pcap of ``frames`` a microsecond apart: a flood, too fast for any flow to time out."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    out += [struct.pack("<IIII", 1_700_000_000, i, len(f), len(f)) + f for i, f in enumerate(frames)]
    return b"".join(out)


def syn_flood(n: int) -> list[bytes]:
    """SYNs from ``n`` spoofed sources, half to Modbus (a dissector attaches), half to closed ports."""
    return [tcp_frame(spoofed(i), SERVER, 1024 + i % 60000, 502 if i % 2 else 10000 + i % 50000, SYN, i)
            for i in range(n)]


def test_a_syn_flood_under_a_small_budget_is_evicted_counted_and_finishes(tmp_path):
    n, budget = 6000, 4 << 20
    capture = tmp_path / "flood.pcap"
    capture.write_bytes(flood_pcap(syn_flood(n)))
    result = analyze([str(capture)], str(tmp_path / "out"), quiet=True, limits=Limits(flow_memory=budget))
    assert result.exit_code == 0 and result.errors == []
    stats = json.loads((tmp_path / "out" / "summary.json").read_text())
    mem = stats["flow_memory"]
    assert mem["budget"] == budget and mem["state_limit"] + mem["out_of_order_limit"] == budget
    assert mem["state_limit"] // 2 < mem["state_peak"] <= mem["state_limit"]   # filled, never passed
    assert stats["flows_evicted_reasons"]["flow_memory"] > n // 2
    assert stats["flows_evicted"] == sum(stats["flows_evicted_reasons"].values())
    assert stats["packets"] == n and stats["flows"] == n
    conns = (tmp_path / "out" / "conn.jsonl").read_text().splitlines()
    assert len(conns) == n   # evicted flows are still written


def test_the_default_budget_holds_the_same_flood_without_evicting(tmp_path):
    capture = tmp_path / "flood.pcap"
    capture.write_bytes(flood_pcap(syn_flood(3000)))
    result = analyze([str(capture)], str(tmp_path / "out"), quiet=True)
    assert result.stats["flows_evicted"] == 0
    assert result.stats["flow_memory"]["budget"] == Limits().flow_memory == 512 << 20


def allocated_by(action: Callable[[], None]) -> int:
    """Bytes that ``action()`` leaves allocated, as tracemalloc sees them."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        action()
        gc.collect()
        return sum(stat.size_diff for stat in tracemalloc.take_snapshot().compare_to(before, "filename"))
    finally:
        tracemalloc.stop()


def traffic(kind: str, n: int) -> list[bytes]:
    """``n`` flows of one kind, as the frames that open them."""
    if kind == "udp, no dissector":
        return [udp_frame(spoofed(i), SERVER, 1024 + i, 9999, b"hello") for i in range(n)]
    if kind == "held out-of-order bytes":   # Modbus flows, each holding 4 segments behind a hole
        return [f for i in range(n) for f in
                [tcp_frame(spoofed(i), SERVER, 1024 + i, 502, SYN, 0)] +
                [tcp_frame(spoofed(i), SERVER, 1024 + i, 502, PSH | ACK, 100 + k * 300, b"x" * (k * 200 + 1))
                 for k in range(4)]]
    port = {"tcp, no dissector": 10000, "modbus": 502, "s7comm": 102, "dnp3": 20000, "enip": 44818}[kind]
    return [tcp_frame(spoofed(i), SERVER, 1024 + i, port, SYN, 0) for i in range(n)]


@pytest.mark.parametrize("kind", ["tcp, no dissector", "udp, no dissector", "modbus", "s7comm", "dnp3", "enip",
                                  "held out-of-order bytes"])
def test_what_the_budget_accounts_covers_what_flows_really_cost(kind):
    n = 2000
    frames = traffic(kind, n)
    pipeline = Pipeline([], [], limits=Limits(max_flows=10 * n))

    def open_flows() -> None:
        for i, frame in enumerate(frames):
            pipeline.packet(1000.0 + i * 1e-6, 1, frame)

    real = allocated_by(open_flows)
    accounted = pipeline.table.memory + pipeline.stream_budget.used
    assert pipeline.table.count == n
    assert real <= accounted <= 3 * real, (kind, real / n, accounted / n)


def test_tiny_out_of_order_segments_are_accounted_with_what_holding_them_costs():
    """Two-byte segments behind a hole: their bookkeeping, not their bytes, is what fills memory."""
    from otsensor.sensor.flows.reassembly import Budget, StreamReassembler
    budget = Budget(limit=1 << 40)
    streams = [StreamReassembler(max_bytes=1 << 20, max_segments=1000, budget=budget) for _ in range(300)]
    for stream in streams:
        stream.syn(0)

    def hold_segments() -> None:
        for stream in streams:
            for k in range(100):
                stream.push(10 + 5 * k, b"%02d" % k)   # byte 1 never arrives: every segment is held

    real = allocated_by(hold_segments)
    assert sum(s.pending_bytes for s in streams) == 300 * 100 * 2
    assert real <= budget.used <= 3 * real


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "otsensor.sensor.cli", *args], capture_output=True, text=True, check=False)


def test_the_option_has_its_default_in_the_help_and_rejects_a_budget_too_small_to_hold_a_flow(tmp_path):
    helptext = cli("analyze", "--help").stdout
    assert "--flow-memory" in helptext and "536870912" in helptext
    proc = cli("analyze", "x.pcap", "-o", str(tmp_path), "--flow-memory", "4096")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "--flow-memory" in proc.stderr


def test_the_option_reaches_the_flow_table(tmp_path):
    capture = tmp_path / "flood.pcap"
    capture.write_bytes(flood_pcap(syn_flood(2000)))
    proc = cli("analyze", str(capture), "-o", str(tmp_path / "out"), "-q", "--flow-memory", str(2 << 20))
    assert proc.returncode == 0, proc.stderr
    stats = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert stats["flow_memory"]["budget"] == 2 << 20 and stats["flows_evicted_reasons"]["flow_memory"] > 0
