"""`otsensor run --learn`: the baseline learned from the first part of a capture stream, then detection with it."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sensor.netlab import REPO, sensor_command

SCENARIOS = REPO / "pcaps" / "scenarios"
# consecutive recordings (their clocks follow each other): 60 s of normal traffic, then more, then an attack
FIRST = [SCENARIOS / "benign_learn.pcap"]
SECOND = [SCENARIOS / "benign_second.pcap", SCENARIOS / "attack_modbus_fc16_new_values.pcap"]
LEARN_S = 61          # benign_learn lasts 60.1 s; the next capture starts 2.5 s after it ends

needs_wireshark_tools = pytest.mark.skipif(not shutil.which("mergecap") or not shutil.which("editcap"),
                                           reason="mergecap/editcap (Wireshark) not installed")


def otsensor(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "otsensor.sensor.cli", *args], input=stdin, capture_output=True,
                          timeout=120)


def merged(tmp_path: Path, parts: list[Path]) -> bytes:
    out = tmp_path / "stream.pcap"
    subprocess.run(["mergecap", "-F", "pcap", "-w", str(out), *map(str, parts)], check=True)
    return out.read_bytes()


def alerts(outdir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (outdir / "alerts.jsonl").read_text().splitlines()]
    for row in rows:
        del row["id"]
    return sorted(rows, key=lambda r: (r["ts"], r["rule"], r["identifier"]))


def without_sources(baseline: dict) -> dict:
    baseline["learned_from"].pop("files")
    return baseline


@needs_wireshark_tools
def test_learns_then_detects_as_analyze_does_with_the_baseline_learned_offline(tmp_path):
    stream = merged(tmp_path, FIRST + SECOND)
    done = subprocess.run(sensor_command("-r", "-", "--learn", f"{LEARN_S}s", "-o", str(tmp_path / "run"), "-q"),
                          input=stream, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    said = [line for line in done.stderr.decode().splitlines() if "learned the baseline" in line]
    assert len(said) == 1 and f"{tmp_path / 'run' / 'baseline.json'}; detecting with it" in said[0]

    offline = tmp_path / "offline.json"
    assert otsensor("baseline", "learn", *map(str, FIRST), "-o", str(offline)).returncode == 0
    learned = json.loads((tmp_path / "run" / "baseline.json").read_text())
    assert without_sources(learned) == without_sources(json.loads(offline.read_text()))

    done = otsensor("analyze", "--baseline", str(offline), *map(str, SECOND), "-o", str(tmp_path / "analyze"), "-q")
    assert done.returncode == 0, done.stderr
    switched = learned["learned_from"]["first_ts"] + LEARN_S
    after = [a for a in alerts(tmp_path / "run") if a["ts"] >= switched]
    expected = alerts(tmp_path / "analyze")
    assert expected
    assert after == expected


@needs_wireshark_tools
def test_a_daily_snapshot_is_written_at_capture_midnight_and_diffs_with_the_final_baseline(tmp_path):
    shifted = tmp_path / "midnight.pcap"
    # benign_learn starts at 03:04:59.837 UTC on 2026-11-27: moved to start 20 s before the next midnight
    subprocess.run(["editcap", "-t", str(20 * 3600 + 54 * 60 + 40.163), str(FIRST[0]), str(shifted)], check=True)
    out = tmp_path / "run"
    done = subprocess.run(sensor_command("-r", "-", "--learn", "50s", "-o", str(out), "-q"),
                          input=shifted.read_bytes(), capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    day = json.loads((out / "baseline-20261127.json").read_text())
    final = json.loads((out / "baseline.json").read_text())
    assert day["learned_from"]["last_ts"] < 1795824000.0 <= final["learned_from"]["last_ts"]
    assert 15 < day["learned_from"]["duration_s"] < 20 and 49 < final["learned_from"]["duration_s"] < 50
    diff = otsensor("baseline", "diff", str(out / "baseline-20261127.json"), str(out / "baseline.json"))
    assert diff.returncode == 0 and diff.stdout.strip() and diff.stdout != b"no differences\n"

    again = subprocess.run(sensor_command("-r", "-", "-o", str(out), "-q"),
                           input=(REPO / "pcaps" / "modbus_hmi.pcap").read_bytes(), capture_output=True, timeout=120)
    assert again.returncode == 0, again.stderr      # what was learned is otsensor's, and a restart keeps it
    assert json.loads((out / "baseline.json").read_text()) == final
    assert (out / "baseline-20261127.json").exists()


def test_a_stream_shorter_than_the_period_learns_nothing_and_says_so(tmp_path):
    out = tmp_path / "run"
    done = subprocess.run(sensor_command("-r", "-", "--learn", "1h", "-o", str(out), "-q"),
                          input=FIRST[0].read_bytes(), capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert b"otsensor: warning: still learning at the stop (60s of 3600s learned)" in done.stderr
    assert not (out / "baseline.json").exists()


def test_the_period_can_come_from_the_config_file_and_excludes_a_given_baseline(tmp_path):
    config = tmp_path / "sensor.toml"
    config.write_text('[detection]\nlearn = "30s"\n')
    out = tmp_path / "run"
    done = subprocess.run(sensor_command("-r", "-", "--config", str(config), "-o", str(out), "-q"),
                          input=FIRST[0].read_bytes(), capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert 29 < json.loads((out / "baseline.json").read_text())["learned_from"]["duration_s"] < 30

    done = subprocess.run(sensor_command("-r", "-", "--learn", "1h", "--baseline", str(out / "baseline.json"),
                                         "-o", str(tmp_path / "other"), "-q"), capture_output=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.decode().splitlines() == [
        "otsensor: error: --learn and --baseline: a run either learns its baseline or is given one"]
    config.write_text('[detection]\nlearn = "soon"\n')
    done = subprocess.run(sensor_command("-r", "-", "--config", str(config), "-o", str(tmp_path / "third"), "-q"),
                          capture_output=True, timeout=60)
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1 and b"learn" in done.stderr
