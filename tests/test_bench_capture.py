"""The benchmark's synthetic captures are valid input, and otsensor logs exactly what they hold.

A correctness check of bench/synth (and of the sensor on its output), not a
timed test.  For each capture a small seeded version is built; tshark, the
reference, must decode exactly the PDUs the generator wrote (same multiset of
PDU keys) with every checksum verified and nothing flagged; ``otsensor
analyze`` must write the number of records per log that the generator's PDUs
call for (bench/synth/expect.py), with no anomaly and no contained error; and the
dissectors' own differential harnesses must find no field where otsensor and
tshark disagree.
"""
from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from otsensor.dissectors.modbus import tables
from otsensor.sensor.analyze import analyze

from bench import synth
from bench.synth.expect import expected_anomalies, expected_records
from tests.bench_reference import problems, tshark_pdus
from tests.dissectors.dnp3_diff import compare_file as dnp3_compare
from tests.dissectors.enip_support import compare as enip_compare
from tests.dissectors.test_s7comm_tshark import compare as s7_compare

PACKETS = 3000
SEED = 7
PROTOCOLS = ("modbus", "s7", "dnp3", "enip", "mixed", "one")
OT_SERVICES = {"modbus": "modbus", "s7comm": "s7comm", "dnp3": "dnp3", "enip": "enip", "enip_io": "cip_io"}
needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")


class Built:
    """One small capture, its generator summary, and otsensor's run over it (each built once per module)."""

    def __init__(self, root: Path, name: str) -> None:
        self.path = root / f"{name}.pcap"
        self.summary = synth.build(name, self.path, PACKETS, SEED, small=True)
        self.outdir = root / f"{name}-out"
        self.result = analyze([str(self.path)], str(self.outdir), out=io.StringIO(), err=io.StringIO(), quiet=True)

    def rows(self, log: str) -> list[dict]:
        path = self.outdir / f"{log}.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    cache: dict[str, Built] = {}

    def get(name: str) -> Built:
        if name not in cache:
            cache[name] = Built(root, name)
        return cache[name]
    return get


@pytest.mark.parametrize("name", PROTOCOLS)
def test_same_seed_same_bytes(built, tmp_path, name):
    again = tmp_path / "again.pcap"
    synth.build(name, again, PACKETS, SEED, small=True)
    assert hashlib.sha256(again.read_bytes()).digest() == hashlib.sha256(built(name).path.read_bytes()).digest()


@pytest.mark.parametrize("name", ("modbus", "s7", "dnp3", "enip"))
def test_flows_do_not_depend_on_the_packet_count(tmp_path, name):
    """The memory check compares runs over the same flows at different lengths."""
    shorter = synth.build(name, tmp_path / "a.pcap", PACKETS, SEED, small=True)
    longer = synth.build(name, tmp_path / "b.pcap", 4 * PACKETS, SEED, small=True)
    ot = {kind: n for kind, n in longer.flows.items() if kind in OT_SERVICES}
    assert {kind: n for kind, n in shorter.flows.items() if kind in OT_SERVICES} == ot
    assert longer.packets > 3.9 * shorter.packets


def test_the_captures_hold_the_promised_mix(built):
    modbus = built("modbus").summary
    assert PACKETS <= modbus.packets < PACKETS + 20
    assert 0.02 < 1 - modbus.kind_packets["modbus"] / modbus.packets < 0.10, modbus.kind_packets
    assert {fc for kind, side, fc, _exc in modbus.pdus if side == "req"} >= {1, 2, 3, 4, 5, 6, 15, 16, 23}
    assert any(exc for _kind, side, _fc, exc in modbus.pdus if side == "resp")
    mixed = built("mixed").summary
    it = sum(n for kind, n in mixed.kind_packets.items() if kind not in OT_SERVICES)
    assert 0.25 < it / mixed.packets < 0.35, mixed.kind_packets
    assert {"modbus", "s7comm", "dnp3", "enip", "enip_io"} <= set(mixed.kind_packets)
    assert built("one").summary.packets == 1


def test_s7_holds_what_the_benchmark_promises(built):
    pdus = built("s7").summary.pdus
    s7 = [key for key in pdus if key[0] == "s7comm"]
    jobs = {(function, count) for _kind, _d, rosctr, function, count in s7 if rosctr == 1}
    assert {count for function, count in jobs if function == 0x04} >= {1, 2, 5, 8}     # multi-item Read Var
    assert {count for function, count in jobs if function == 0x05} >= {1, 2, 3, 4}     # and Write Var
    userdata = {(group, sub) for _kind, _d, rosctr, group, sub in s7 if rosctr == 7}
    assert userdata == {(4, 1), (7, 1)}                                                # SZL reads, clock


def test_dnp3_holds_what_the_benchmark_promises(built):
    pdus = built("dnp3").summary.pdus
    objects = {(g, v) for key in pdus for g, v, _q, _n in key[4]}
    assert objects >= {(1, 2), (30, 1), (30, 5), (20, 1), (2, 2), (32, 3), (32, 7), (12, 1), (41, 1), (41, 2)}
    functions = {key[2] for key in pdus}
    assert functions >= {0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x14, 0x81, 0x82}
    assert any(not key[3] & 0x40 for key in pdus if key[1] == 1), "a multi-fragment response"


@needs_tshark
@pytest.mark.parametrize("name", PROTOCOLS)
def test_tshark_decodes_exactly_the_pdus_written(built, name):
    capture = built(name)
    assert problems(capture.path) == []
    theirs, ours = tshark_pdus(capture.path), capture.summary.pdus
    assert theirs == ours, (f"only written: {sorted((ours - theirs).items())[:10]}; "
                            f"only decoded: {sorted((theirs - ours).items())[:10]}")


def _s7_harness(path: Path) -> tuple[int, list]:
    return s7_compare(path)


def _dnp3_harness(path: Path) -> tuple[int, list]:
    compared, _fragments, disagreements = dnp3_compare(path)
    return compared, disagreements


def _enip_harness(path: Path) -> tuple[int, list]:
    counts, disagreements = enip_compare(path)
    return counts["cip_services"], disagreements


@needs_tshark
@pytest.mark.parametrize("name,harness", (("s7", _s7_harness), ("dnp3", _dnp3_harness), ("enip", _enip_harness)))
def test_field_by_field_otsensor_agrees_with_tshark(built, name, harness):
    """The dissectors' own differential harnesses (item addresses and values, object headers and
    points, CIP paths and statuses, frame by frame) find no disagreement on the benchmark traffic."""
    compared, disagreements = harness(built(name).path)
    assert compared > 1000 and disagreements == []


@needs_tshark
def test_tshark_reassembles_pdus_split_across_segments(built):
    """S7 answers cut in two TCP segments and DNP3 fragments over several link frames and segments."""
    for name in ("s7", "dnp3"):
        path = built(name).path
        out = subprocess.run(["tshark", "-n", "-r", str(path), "-Y", "tcp.segments", "-T", "fields",
                              "-e", "frame.number"], capture_output=True, text=True, check=True).stdout
        assert out.split(), f"{name}: no PDU spans TCP segments"


@pytest.mark.parametrize("name", PROTOCOLS)
def test_otsensor_logs_exactly_what_the_capture_holds(built, name):
    capture = built(name)
    stats = capture.result.stats
    assert capture.result.exit_code == 0, capture.result.errors
    assert stats["packets"] == capture.summary.packets
    assert stats["undecoded_packets"] == 0 and stats["stream_gaps"] == 0
    assert stats["dissector_errors"] == 0 and stats["analyzer_errors"] == 0, stats["error_samples"]
    assert stats["anomalies"] == expected_anomalies(capture.summary)
    records = dict(stats["records"], conn=len(capture.rows("conn")))
    assert records == expected_records(capture.summary)
    services = Counter()
    for kind, n in capture.summary.flows.items():
        if kind in OT_SERVICES:
            services[OT_SERVICES[kind]] += n
    assert stats["services"] == dict(services), "IT traffic must not be taken for an OT protocol"


@pytest.mark.parametrize("name", ("modbus", "s7", "enip"))
def test_otsensor_pairs_every_request_with_its_answer(built, name):
    capture = built(name)
    log, unpaired = {"modbus": ("modbus", lambda r: r["pdu_type"] != "REQ+RESP"),
                     "s7": ("s7comm", lambda r: not r["matched"]),
                     "enip": ("cip", lambda r: not r["matched"])}[name]
    rows = capture.rows(log)
    assert rows and not [r for r in rows if unpaired(r)]


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


@needs_tshark
def test_tshark_and_otsensor_see_the_same_modbus_adus(built):
    capture = built("modbus")
    ours, theirs = otsensor_adus(capture.outdir), tshark_adus(capture.path)
    only_ours, only_theirs = ours - theirs, theirs - ours
    assert not only_ours and not only_theirs, (
        f"ADUs only otsensor saw: {sorted(only_ours.items())[:20]}; only tshark saw: {sorted(only_theirs.items())[:20]}")
