"""`otsensor run` across a restart: the inventory, the graph, the open alerts and the learning carry on."""
from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from tests.sensor.netlab import REPO, jsonl_logs, sensor_command, wait_for, wait_for_stats
from tests.sensor.test_run_learn import FIRST, SECOND, merged, needs_wireshark_tools

FIRST_PACKETS = 1397    # benign_learn.pcap
FIRST_TS, SECOND_TS = 1795748699.837312, 1795748762.452337   # the first packets of the two parts


def stop_after(data: bytes, out: Path, packets: int, *args: str) -> str:
    """Run on ``data`` through a pipe kept open, then SIGTERM once every packet was analysed; its stderr."""
    sensor = subprocess.Popen(sensor_command("-r", "-", "-o", str(out), "-q", "--stats-interval", "0.2", *args),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    sensor.stdin.write(data)
    sensor.stdin.flush()
    wait_for_stats(out, lambda s: s.get("packets") == packets, 60, "the first part to be analysed")
    sensor.send_signal(signal.SIGTERM)
    _, err = sensor.communicate(timeout=60)
    assert sensor.returncode == 0, err
    return err.decode()


def run_on(data: bytes, out: Path, *args: str) -> str:
    done = subprocess.run(sensor_command("-r", "-", "-o", str(out), "-q", *args), input=data, capture_output=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stderr.decode()


def final_alerts(out: Path) -> list[dict]:
    """Each alert in its last written form (an alert open at a stop is written then, and again when it closes)."""
    latest = {}
    for line in jsonl_logs(out).get("alerts.jsonl", []):
        row = json.loads(line)
        latest[row["id"]] = row
    return sorted(latest.values(), key=lambda r: (r["ts"], r["rule"], r["identifier"]))


def documents(out: Path) -> tuple[dict, dict]:
    return json.loads((out / "assets.json").read_text()), json.loads((out / "graph.json").read_text())


@needs_wireshark_tools
def test_a_restart_carries_on_as_one_run_over_the_whole_capture(tmp_path):
    whole = tmp_path / "whole"
    run_on(merged(tmp_path, FIRST + SECOND), whole)
    out = tmp_path / "restarted"
    stop_after(FIRST[0].read_bytes(), out, FIRST_PACKETS)
    state = json.loads((out / "state" / "checkpoint.json").read_text())
    assert state["inventory"]["assets"] and state["graph"]["edges"] and state["open_alerts"]
    said = run_on(merged(tmp_path, SECOND), out)
    assert f"otsensor: carried on from {out / 'state' / 'checkpoint.json'}: " in said
    assert documents(out) == documents(whole)
    expected = final_alerts(whole)
    assert final_alerts(out) == expected
    # the program upload was open at the stop and goes on after the restart: one alert, not a new one
    carried = {a["id"]: a["count"] for a in state["open_alerts"]}
    assert any(a["id"] in carried and a["count"] > carried[a["id"]] for a in expected)


@needs_wireshark_tools
def test_learning_goes_on_after_a_restart_for_the_time_it_has_left(tmp_path):
    out = tmp_path / "restarted"
    said = stop_after(FIRST[0].read_bytes(), out, FIRST_PACKETS, "--learn", "90s")
    assert "still learning at the stop (60s of 90s learned)" in said and not (out / "baseline.json").exists()
    said = run_on(merged(tmp_path, SECOND), out, "--learn", "90s")
    assert "learned the baseline over" in said
    learned = json.loads((out / "baseline.json").read_text())["learned_from"]
    # the sensor learns while it runs: 60.098 s before the stop, then the 29.902 s left after the restart
    assert learned["first_ts"] == FIRST_TS
    assert SECOND_TS + 90 - 60.097817 - 1.5 < learned["last_ts"] < SECOND_TS + 90 - 60.097817
    later = (REPO / "pcaps" / "modbus_hmi.pcap").read_bytes()
    said = run_on(later, out, "--learn", "90s")   # learned: a third start detects with it at once
    assert f"otsensor: detecting with {out / 'baseline.json'}, learned before the restart" in said


def test_a_bad_or_foreign_checkpoint_is_one_warning_and_a_fresh_start(tmp_path):
    out = tmp_path / "run"
    data = FIRST[0].read_bytes()
    run_on(data, out)
    path = out / "state" / "checkpoint.json"
    good = json.loads(path.read_text())
    fresh = json.loads((out / "assets.json").read_text())
    for damage in (b"{not json", json.dumps({"format": "something else"}).encode(),
                   json.dumps(dict(good, inventory={"assets": [{"ip": "10.0.0.1"}], "dropped": 0})).encode(),
                   json.dumps(dict(good, open_alerts=[{"no": "rule"}])).encode()):
        path.write_bytes(damage)
        said = run_on(data, out)
        warnings = [line for line in said.splitlines() if "warning" in line]
        assert len(warnings) == 1 and warnings[0].startswith(f"otsensor: warning: {path}: ")
        assert warnings[0].endswith("; starting afresh")
        assert json.loads((out / "assets.json").read_text()) == fresh   # not doubled: nothing was restored


def test_a_killed_sensor_carries_on_from_its_last_periodic_checkpoint(tmp_path):
    """No stop at all (SIGKILL, a power cut): the checkpoint written with the documents is what is left."""
    out = tmp_path / "run"
    sensor = subprocess.Popen(sensor_command("-r", "-", "-o", str(out), "-q", "--stats-interval", "0.2",
                                             "--documents-interval", "0.2"),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    sensor.stdin.write(FIRST[0].read_bytes())
    sensor.stdin.flush()
    path = out / "state" / "checkpoint.json"

    def checkpointed() -> bool:
        try:
            return len(json.loads(path.read_text())["inventory"]["assets"]) == 7
        except (OSError, ValueError):
            return False
    wait_for(checkpointed, 60, "a checkpoint with every asset")
    sensor.kill()
    sensor.communicate(timeout=30)
    before = {a["ip"]: a["first_seen"] for a in json.loads(path.read_text())["inventory"]["assets"]}
    said = run_on(SECOND[0].read_bytes(), out)   # later traffic of the same hosts
    assert f"otsensor: carried on from {path}: 7 assets" in said
    after = {a["ip"]: a["first_seen"] for a in json.loads((out / "assets.json").read_text())["assets"]}
    assert {ip: after[ip] for ip in before} == pytest.approx(before, abs=1e-6)
