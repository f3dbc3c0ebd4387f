"""conn.jsonl against Zeek's own golden conn.log for the Modbus traces in the corpus (when present)."""
from __future__ import annotations

import json

import pytest
from otsensor.sensor.analyze import analyze

from tests.corpus import corpus_dir

BTEST = corpus_dir() / "zeek" / "testing" / "btest"
CASES = {
    "modbus-and-non-modbus-p502.pcap":
        "scripts.base.protocols.modbus.modbus_and_non_modbus_on_port_502/conn.log",
}
COMPARED = ("conn_state", "history", "orig_bytes", "resp_bytes", "orig_pkts", "resp_pkts", "orig_ip_bytes",
            "resp_ip_bytes", "missed_bytes")


def zeek_log(path) -> list[dict]:
    fields, rows = [], []
    for line in path.read_text().splitlines():
        if line.startswith("#fields"):
            fields = line.split("\t")[1:]
        elif line and not line.startswith("#"):
            rows.append(dict(zip(fields, line.split("\t"))))
    return rows


def key(row: dict) -> tuple:
    return (row["id.orig_h"], int(row["id.orig_p"]), row["id.resp_h"], int(row["id.resp_p"]), row["conn_state"])


@pytest.mark.parametrize("trace,baseline", sorted(CASES.items()))
def test_conn_log_matches_zeek(tmp_path, trace, baseline):
    pcap, golden = BTEST / "Traces" / "modbus" / trace, BTEST / "Baseline" / baseline
    if not pcap.exists() or not golden.exists():
        pytest.skip(f"Zeek trace or baseline not in the corpus at {corpus_dir()}")
    analyze([str(pcap)], str(tmp_path), quiet=True)
    ours = {key(r): r for r in map(json.loads, (tmp_path / "conn.jsonl").read_text().splitlines())}
    problems = []
    for z in zeek_log(golden):
        mine = ours.get(key(z))
        if mine is None:
            problems.append(f"no connection {key(z)}")
            continue
        for field in COMPARED:
            want = z[field] if field in ("history", "conn_state") else int(z[field])
            if mine[field] != want:
                problems.append(f"{key(z)} {field}: zeek {want!r}, otsensor {mine[field]!r}")
        if (z["service"] == "modbus") != (mine["service"] == "modbus"):
            problems.append(f"{key(z)} service: zeek {z['service']}, otsensor {mine['service']}")
    assert not problems, "\n".join(problems)
