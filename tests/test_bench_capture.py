"""The benchmark's synthetic capture is valid input: tshark and otsensor see the same Modbus ADUs in it.

A correctness check of bench/make_capture.py (and of the sensor on its
output), not a timed test: a small capture with the benchmark's traffic mix
is built, analysed with ``sensor.analyze.analyze`` and decoded with tshark,
and every Modbus request and response must appear in both, identically.
"""
from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from otsensor.dissectors.modbus import tables
from otsensor.sensor.analyze import analyze

BENCH = Path(__file__).resolve().parents[1] / "bench"
POPULATION = {"masters": 4, "plcs": 12, "it_clients": 8, "it_servers": 3}
PACKETS = 2000


def load_make_capture():
    spec = importlib.util.spec_from_file_location("bench_make_capture", BENCH / "make_capture.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    make_capture = load_make_capture()
    path = tmp_path_factory.mktemp("bench") / "small.pcap"
    summary = make_capture.generate(path, PACKETS, seed=7, **POPULATION)
    outdir = path.parent / "out"
    result = analyze([str(path)], str(outdir), out=io.StringIO(), err=io.StringIO(), quiet=True)
    return make_capture, path, summary, outdir, result


def otsensor_adus(outdir: Path) -> Counter:
    """Each transaction row as its request and/or response ADU: (kind, client ip, client port, tid, unit, fc, exc)."""
    codes = {name: code for code, name in tables.EXCEPTION_NAMES.items()}
    adus: Counter = Counter()
    for line in (outdir / "modbus.jsonl").read_text().splitlines():
        row = json.loads(line)
        client = (row["id.orig_h"], row["id.orig_p"], row["tid"], row["unit"], row["func_code"])
        if row["pdu_type"] in ("REQ", "REQ+RESP"):
            adus[("REQ", *client, None)] += 1
        if row["pdu_type"] in ("RESP", "REQ+RESP"):
            exc = row["exception_code"]
            adus[("RESP", *client, None if exc is None else codes.get(exc, exc))] += 1
    return adus


def tshark_adus(path: Path) -> Counter:
    fields = ["ip.src", "tcp.srcport", "ip.dst", "tcp.dstport", "mbtcp.trans_id", "mbtcp.unit_id",
              "modbus.func_code", "modbus.exception_code"]
    cmd = ["tshark", "-r", str(path), "-Y", "mbtcp", "-T", "fields", "-E", "separator=\t"]
    for name in fields:
        cmd += ["-e", name]
    text = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout
    adus: Counter = Counter()
    for line in text.splitlines():
        src, sport, dst, dport, tid, unit, fc, exc = line.split("\t")
        assert "," not in tid, f"the generator puts one ADU per segment: {line!r}"
        if dport == "502":
            adus[("REQ", src, int(sport), int(tid), int(unit), int(fc), None)] += 1
        else:
            adus[("RESP", dst, int(dport), int(tid), int(unit), int(fc), int(exc) if exc else None)] += 1
    return adus


def test_same_seed_same_bytes(built, tmp_path):
    make_capture, path, _, _, _ = built
    again = tmp_path / "again.pcap"
    make_capture.generate(again, PACKETS, seed=7, **POPULATION)
    assert hashlib.sha256(again.read_bytes()).digest() == hashlib.sha256(path.read_bytes()).digest()


def test_capture_has_the_promised_mix(built):
    _, _, summary, _, _ = built
    assert PACKETS <= summary.packets < PACKETS + 10
    assert set(summary.kind_packets) == {"modbus", "https", "http", "dns", "icmp"}
    share = summary.kind_packets["modbus"] / summary.packets
    assert 0.3 < share < 0.7, summary.kind_packets
    assert summary.modbus_requests == summary.modbus_responses > 0


def test_otsensor_reads_every_flow_and_only_modbus_as_modbus(built):
    _, _, summary, outdir, result = built
    stats = result.stats
    assert result.exit_code == 0, result.errors
    assert stats["packets"] == summary.packets
    assert stats["undecoded_packets"] == 0
    conns = Counter(json.loads(line)["proto"] for line in (outdir / "conn.jsonl").read_text().splitlines())
    flows = summary.flows
    assert conns["tcp"] == flows["modbus"] + flows["http"] + flows["https"]
    assert conns["udp"] == flows["dns"]
    # An echo request and its reply are one conn row, as in Zeek.
    assert conns["icmp"] == flows["icmp"]
    assert stats["services"] == {"modbus": summary.flows["modbus"]}, "IT traffic must not be taken for an OT protocol"
    assert stats["stream_gaps"] == 0
    assert not stats["anomalies"], stats["anomalies"]


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_tshark_and_otsensor_see_the_same_modbus_adus(built):
    _, path, summary, outdir, _ = built
    ours, theirs = otsensor_adus(outdir), tshark_adus(path)
    only_ours, only_theirs = ours - theirs, theirs - ours
    assert not only_ours and not only_theirs, (
        f"ADUs only otsensor saw: {sorted(only_ours.items())[:20]}; only tshark saw: {sorted(only_theirs.items())[:20]}")
    requests = sum(n for key, n in theirs.items() if key[0] == "REQ")
    exceptions = sum(n for key, n in theirs.items() if key[0] == "RESP" and key[-1] is not None)
    assert requests == summary.modbus_requests
    assert exceptions == summary.modbus_exceptions
