"""Recurrence and precise accept, on real application bytes replayed at chosen times.

An alert that fires again after a quiet period is a new occurrence (its own row, linked to the first);
accepting one occurrence folds in what that occurrence carried, not what the same edge did later.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.baselines.replay import PCAPS, analyze_capture, conversation, session, write

SCENARIOS = PCAPS / "scenarios"
PLC, STRANGER = "127.10.1.10", "127.20.1.77"
HOUR = 3600.0


def need(*paths: Path) -> None:
    missing = [p.name for p in paths if not p.exists()]
    if missing:
        pytest.skip(f"capture(s) not generated: {', '.join(missing)}")


def otsensor(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "otsensor.sensor.cli", *map(str, args)],
                          capture_output=True, text=True, check=False)


def test_a_stop_an_hour_later_is_a_second_occurrence_linked_to_the_first(tmp_path: Path) -> None:
    need(PCAPS / "s7_engineering.pcap")
    stops = conversation(PCAPS / "s7_engineering.pcap", 102)
    t0 = stops[0].ts
    pcap = write(tmp_path / "twice.pcap", session(stops, ("127.20.1.50", 40001), ("127.10.1.30", 102)),
                 session(stops, ("127.20.1.50", 40002), ("127.10.1.30", 102), t0=t0 + HOUR))
    alerts = [a for a in analyze_capture(pcap, tmp_path / "out")["alerts"] if a["rule"] == "plc_stop"]
    assert len(alerts) == 2, alerts
    first, second = sorted(alerts, key=lambda a: a["ts"])
    assert (first["occurrence"], first["first_id"]) == (1, None)
    assert (second["occurrence"], second["first_id"]) == (2, first["id"])
    assert second["ts"] >= t0 + HOUR - 1 and second["id"] != first["id"]
    assert first["count"] == second["count"] >= 1   # each occurrence counts its own firings


def test_quiet_period_is_configurable(tmp_path: Path) -> None:
    need(PCAPS / "s7_engineering.pcap")
    stops = conversation(PCAPS / "s7_engineering.pcap", 102)
    pcap = write(tmp_path / "close.pcap", session(stops, ("127.20.1.50", 40001), ("127.10.1.30", 102)),
                 session(stops, ("127.20.1.50", 40002), ("127.10.1.30", 102), t0=stops[0].ts + 120))
    config = tmp_path / "sensor.toml"
    for quiet, occurrences in ((300, 1), (60, 2)):
        config.write_text(f"[detection]\nrecurrence_quiet_s = {quiet}\n")
        out = tmp_path / f"out{quiet}"
        assert otsensor("analyze", pcap, "--config", config, "-o", out, "-q").returncode == 0
        rows = [json.loads(line) for line in (out / "alerts.jsonl").read_text().splitlines()]
        assert len([a for a in rows if a["rule"] == "plc_stop"]) == occurrences, (quiet, rows)


def test_a_recurrence_is_its_own_siem_message_naming_the_first() -> None:
    from otsensor.baselines.detect import Detector
    from otsensor.sensor.sinks.formats import FORMATS

    written: list[dict] = []
    detector = Detector(emit=written.append)
    for ts in (0.0, 30.0, 60.0, 60.0 + 301):
        detector.raise_alert("plc_stop", ts, "stop", "a>b:s7comm", src="10.0.0.1", dst="10.0.0.2")
    detector.finish(type("Sink", (), {"write": lambda self, log, row: written.append(row)})())
    assert [(r["count"], r["occurrence"]) for r in written] == [(3, 1), (1, 2)]
    line = FORMATS["cef"]("alerts", written[1])
    assert "cn1=2" in line and f"flexString1={written[0]['id']}" in line
    assert "cn1=" not in FORMATS["cef"]("alerts", written[0])
    assert json.loads(FORMATS["json"]("alerts", written[1]))["otsensor"]["first_id"] == written[0]["id"]


def test_accepting_an_occurrence_folds_only_what_it_carried(tmp_path: Path) -> None:
    learn, attack = SCENARIOS / "benign_learn.pcap", SCENARIOS / "attack_it_modbus_write.pcap"
    need(learn, attack)
    reads = conversation(attack, 502, client_host="127.20.1.60")     # the historian's FC 3 polls
    writes = conversation(attack, 502, client_host="127.20.1.50")    # the attacker's FC 16 and FC 5
    pcap = write(tmp_path / "later.pcap", session(reads, (STRANGER, 41000), (PLC, 502)),
                 session(writes, (STRANGER, 41001), (PLC, 502), t0=reads[-1].ts + 900))
    base, accepted = tmp_path / "base.json", tmp_path / "accepted.json"
    assert otsensor("baseline", "learn", learn, "-o", base).returncode == 0
    out = tmp_path / "out"
    assert otsensor("analyze", pcap, "--baseline", base, "-o", out, "-q").returncode == 0
    rows = [json.loads(line) for line in (out / "alerts.jsonl").read_text().splitlines()]
    edges = sorted((a for a in rows if a["rule"] == "new_edge"), key=lambda a: a["ts"])
    assert [a["occurrence"] for a in edges] == [1, 2], edges
    assert edges[0]["baseline_fold"]["functions"] == ["READ_HOLDING_REGISTERS"], edges[0]["baseline_fold"]
    proc = otsensor("baseline", "accept", base, out / "alerts.jsonl", "--id", edges[0]["id"], "-o", accepted)
    assert proc.returncode == 0, proc.stderr
    edge = json.loads(accepted.read_text())["edges"][f"{STRANGER} -> {PLC} modbus"]
    assert set(edge["functions"]) == {"READ_HOLDING_REGISTERS"}, edge
    again = tmp_path / "again"
    assert otsensor("analyze", pcap, "--baseline", accepted, "-o", again, "-q").returncode == 0
    rules = {(a["rule"], a.get("function")) for a in map(json.loads, (again / "alerts.jsonl").read_text().splitlines())}
    assert ("new_edge", None) not in rules and ("new_function", "WRITE_MULTIPLE_REGISTERS") in rules, rules
