"""Detection on captures from the real stacks: always-on rules, baseline learning, diff and accept."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PCAPS = Path(__file__).resolve().parents[2] / "pcaps"


def otsensor(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "otsensor.sensor.cli", *args], capture_output=True, text=True)


def alerts_of(out: Path) -> list[dict]:
    path = out / "alerts.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def need(*names: str) -> list[str]:
    paths = [PCAPS / n for n in names]
    missing = [p.name for p in paths if not p.exists()]
    if missing:
        pytest.skip(f"capture(s) not generated: {', '.join(missing)}")
    return [str(p) for p in paths]


def techniques(alert: dict) -> set[str]:
    return {t["id"] for t in alert["techniques"]}


@pytest.mark.parametrize("capture,rule,tids", [
    ("s7_engineering.pcap", "plc_stop", {"T0858", "T0813"}),
    ("s7_engineering.pcap", "program_download", {"T0843"}),
    ("s7_engineering.pcap", "plc_start", {"T0858"}),
    ("dnp3_engineering.pcap", "device_restart", {"T0816"}),
    ("dnp3_engineering.pcap", "dnp3_disable_unsolicited", {"T0804"}),
    ("modbus_it.pcap", "modbus_listen_only", {"T0814"}),
    ("modbus_it.pcap", "device_restart", {"T0816"}),
    # the sweep's reader does nothing but read identities (modbus_it's IT host no longer counts: it restarts
    # the PLC and forces it listen-only, so it is an engineering station and its identity read is part of that)
    ("scenarios/attack_identity_sweep.pcap", "recon_identity_read", {"T0888"}),
])
def test_always_on_rules_without_a_baseline(tmp_path, capture, rule, tids):
    [path] = need(capture)
    proc = otsensor("analyze", path, "-o", str(tmp_path), "-q")
    assert proc.returncode == 0, proc.stderr
    fired = [a for a in alerts_of(tmp_path) if a["rule"] == rule]
    assert fired, f"{rule} not raised; got {sorted({a['rule'] for a in alerts_of(tmp_path)})}"
    assert tids <= techniques(fired[0])
    assert fired[0]["evidence"] and fired[0]["evidence"][0]["uid"] == fired[0]["uid"]


def test_alert_ids_are_stable_across_runs(tmp_path):
    [path] = need("s7_engineering.pcap")
    otsensor("analyze", path, "-o", str(tmp_path / "a"), "-q")
    otsensor("analyze", path, "-o", str(tmp_path / "b"), "-q")
    ids_a = [a["id"] for a in alerts_of(tmp_path / "a")]
    assert ids_a and ids_a == [a["id"] for a in alerts_of(tmp_path / "b")]


def test_learn_then_departures_then_accept_silences_them(tmp_path):
    hmi, it = need("modbus_hmi.pcap", "modbus_it.pcap")
    base = tmp_path / "base.json"
    proc = otsensor("baseline", "learn", hmi, "-o", str(base))
    assert proc.returncode == 0, proc.stderr
    baseline = json.loads(base.read_text())
    assert any(e["protocol"] == "modbus" for e in baseline["edges"].values())
    assert baseline["cadence"], "the HMI's periodic polls should be learned"

    out = tmp_path / "out"
    assert otsensor("analyze", it, "--baseline", str(base), "-o", str(out), "-q").returncode == 0
    rules = {a["rule"] for a in alerts_of(out)}
    assert {"new_edge", "new_writer", "new_asset"} <= rules, rules

    accepted = tmp_path / "accepted.json"
    proc = otsensor("baseline", "accept", str(base), str(out / "alerts.jsonl"), "--all", "-o", str(accepted))
    assert proc.returncode == 0, proc.stderr
    diff = otsensor("baseline", "diff", str(base), str(accepted))
    assert diff.returncode == 0 and "+ edges/127.20.1.50 -> 127.10.1.10 modbus" in diff.stdout

    again = tmp_path / "again"
    assert otsensor("analyze", it, "--baseline", str(accepted), "-o", str(again), "-q").returncode == 0
    assert alerts_of(again) == [], [a["rule"] for a in alerts_of(again)]


def test_a_capture_against_its_own_baseline_raises_no_departure(tmp_path):
    [hmi] = need("modbus_hmi.pcap")
    base = tmp_path / "base.json"
    otsensor("baseline", "learn", hmi, "-o", str(base))
    out = tmp_path / "out"
    otsensor("analyze", hmi, "--baseline", str(base), "-o", str(out), "-q")
    departures = [a for a in alerts_of(out) if a["category"] == "baseline"]
    assert departures == []


def test_baseline_is_stably_ordered(tmp_path):
    [hmi] = need("modbus_hmi.pcap")
    otsensor("baseline", "learn", hmi, "-o", str(tmp_path / "a.json"))
    otsensor("baseline", "learn", hmi, "-o", str(tmp_path / "b.json"))
    assert (tmp_path / "a.json").read_text() == (tmp_path / "b.json").read_text()
    assert otsensor("baseline", "diff", str(tmp_path / "a.json"), str(tmp_path / "b.json")).stdout.strip() == \
        "no differences"


def test_maintenance_window_allows_planned_work(tmp_path):
    [path] = need("s7_engineering.pcap")
    config = tmp_path / "sensor.toml"
    config.write_text('[[detection.maintenance]]\nstart = 0\nend = 9999999999\nrules = ["plc_stop"]\n')
    otsensor("analyze", path, "--config", str(config), "-o", str(tmp_path / "out"), "-q")
    rules = {a["rule"] for a in alerts_of(tmp_path / "out")}
    assert "plc_stop" not in rules and "program_download" in rules


@pytest.mark.parametrize("args,message", [
    (["--baseline", "/nonexistent/b.json"], "no such baseline file"),
    (["--zones", "/nonexistent/z.toml"], "no such zones file"),
])
def test_bad_detection_inputs_are_one_error_line(tmp_path, args, message):
    [path] = need("modbus_hmi.pcap")
    proc = otsensor("analyze", path, *args, "-o", str(tmp_path))
    assert proc.returncode == 2 and message in proc.stderr and proc.stderr.count("\n") == 1


def test_io_connections_are_on_the_graph_edge(tmp_path):
    [path] = need("enip_hmi.pcap")
    assert otsensor("analyze", path, "-o", str(tmp_path), "-q").returncode == 0
    graph = json.loads((tmp_path / "graph.json").read_text())
    [edge] = [e for e in graph["edges"] if e["protocol"] == "enip" and e["source"] == "127.10.1.20"]
    opens = [c for c in edge["connections"] if c["function"] in ("Forward Open", "Large Forward Open")]
    assert opens and all(c["o_t_rpi_us"] > 0 and c["transport_class"] == 3 for c in opens)


def test_open_alerts_are_bounded_and_closed_ones_written_at_once(monkeypatch):
    from otsensor.baselines import alert_book, detect
    monkeypatch.setattr(alert_book, "MAX_OPEN_ALERTS", 100)
    written = []
    detector = detect.Detector(emit=written.append)
    for i in range(1000):   # a thousand distinct sources: spoofed or a large plant
        detector.raise_alert("recon_identity_read", float(i), f"host {i}", f"10.0.{i // 256}.{i % 256}",
                             src=f"10.0.{i // 256}.{i % 256}", dst="10.9.9.9")
    assert len(detector.alerts.open) <= 101 and detector.alerts.closed == []
    finished = detector.finish(type("Sink", (), {"write": lambda self, log, row: written.append(row)})())
    assert len(written) == 1000 and len({row["id"] for row in written}) == 1000
    assert len(finished) <= 101


def test_inventory_is_bounded_and_counts_what_it_leaves_out():
    from otsensor.baselines.inventory import Inventory
    inv = Inventory(max_assets=10)
    for i in range(50):
        inv.asset(f"10.1.0.{i}", 1.0).served["modbus"] += 1
    assert len(inv.assets) == 10 and inv.to_json()["hosts_not_inventoried"] == 40


def test_read_half_of_fc23_reaches_the_graph(tmp_path):
    [path] = need("modbus_it.pcap")
    otsensor("analyze", path, "-o", str(tmp_path), "-q")
    fc23 = [json.loads(line) for line in (tmp_path / "modbus.jsonl").read_text().splitlines()
            if json.loads(line)["func_code"] == 23 and json.loads(line)["exception_code"] is None]
    assert fc23
    graph = json.loads((tmp_path / "graph.json").read_text())
    [edge] = [e for e in graph["edges"] if e["protocol"] == "modbus"]
    read = edge["ranges_read"]["holding_registers"]
    for rec in fc23:
        lo, hi = rec["read_address"], rec["read_address"] + rec["read_quantity"] - 1
        assert any(a <= lo and hi <= b for a, b in read), (lo, hi, read)
