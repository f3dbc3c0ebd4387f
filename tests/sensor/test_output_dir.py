"""The output directory holds one run's results: replaced whole at the end, never mixed, never foreign files lost.

Issue 10 item 3: an S7 run, then a Modbus-only run into the same ``-o``, left the S7 logs and the old
anomalies beside the new summary.
"""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from otsensor.sensor.analyze import analyze
from otsensor.sensor.pipeline import Pipeline
from otsensor.sensor.sinks.outdir import MARKER, STAGING, OutputDir, OutputError
from tests.cli import PCAPS, REPO, otsensor

S7 = PCAPS / "s7_engineering.pcap"
MODBUS = PCAPS / "modbus_hmi.pcap"


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file below ``directory`` (relative name -> bytes), hidden ones included."""
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def visible(directory: Path) -> dict[str, bytes]:
    """What a reader of the results sees: everything but the running run's staging directory."""
    return {k: v for k, v in snapshot(directory).items() if not k.startswith(STAGING + "/")}


def results(directory: Path) -> dict[str, bytes]:
    """What a reader compares between runs: every file but the marker, with the run's timing taken out."""
    files = snapshot(directory)
    files.pop(MARKER, None)
    summary = json.loads(files.pop("summary.json"))
    summary.pop("elapsed_s")
    files["summary.json"] = json.dumps(summary, sort_keys=True).encode()
    return files


def run_ok(*args: str | Path) -> subprocess.CompletedProcess:
    proc = otsensor("analyze", *args, "-q")
    assert proc.returncode == 0, proc.stderr
    return proc


def test_a_modbus_run_after_an_s7_run_leaves_only_modbus_results(tmp_path):
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    run_ok(S7, "-o", out)
    assert (out / "s7comm.jsonl").exists() and (out / "anomalies.jsonl").exists()
    run_ok(MODBUS, "-o", out)
    run_ok(MODBUS, "-o", fresh)
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["records"]) == {"modbus"}
    assert results(out) == results(fresh)       # nothing of the S7 run is left: no s7comm, cotp, anomalies
    assert not (out / STAGING).exists()
    marker = json.loads((out / MARKER).read_text())
    assert (marker["state"], marker["run"], marker["files"]) == ("complete", 2, sorted(results(fresh)))


def test_a_directory_with_foreign_files_is_refused_untouched_and_force_writes_beside_them(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("plant walk-down, do not lose\n")
    (out / "conn.jsonl").write_text("someone else's log\n")
    before = snapshot(out)
    proc = otsensor("analyze", MODBUS, "-o", out, "-q")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"otsensor: error: {out}: ") and "notes.txt" in proc.stderr
    assert "--force" in proc.stderr
    assert snapshot(out) == before and sorted(os.listdir(out)) == ["conn.jsonl", "notes.txt"]

    run_ok(MODBUS, "-o", out, "--force")
    assert (out / "notes.txt").read_text() == "plant walk-down, do not lose\n"
    assert json.loads((out / "conn.jsonl").read_text().splitlines()[0])["uid"].startswith("C")
    assert json.loads((out / "summary.json").read_text())["records"]["modbus"] > 0

    again = otsensor("analyze", MODBUS, "-o", out, "-q")      # notes.txt is still not ours: ask again
    assert again.returncode == 2 and "notes.txt" in again.stderr


def test_a_previous_otsensor_directory_is_ours_even_with_its_spool(tmp_path):
    out = tmp_path / "out"
    run_ok(MODBUS, "-o", out)
    (out / "spool" / "some-sink").mkdir(parents=True)
    run_ok(S7, "-o", out)
    assert (out / "spool" / "some-sink").is_dir() and not (out / "modbus.jsonl").exists()


@pytest.mark.parametrize("make_target, words", [
    (lambda tmp: tmp / "a-file", "not a directory"),
    (lambda tmp: tmp / "a-file" / "out", "cannot create"),
    (lambda tmp: Path("/proc/otsensor-no-such-dir"), "cannot create"),
])
def test_a_bad_output_directory_is_one_error_line_and_exit_2(tmp_path, make_target, words):
    (tmp_path / "a-file").write_text("x")
    target = make_target(tmp_path)
    proc = otsensor("analyze", MODBUS, "-o", target)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"otsensor: error: {target}: ") and words in proc.stderr, proc.stderr
    assert (tmp_path / "a-file").read_text() == "x"


def test_two_runs_cannot_write_one_directory_at_once(tmp_path):
    with OutputDir.claim(str(tmp_path / "out")):
        with pytest.raises(OutputError, match="another otsensor run is writing"):
            OutputDir.claim(str(tmp_path / "out"))
    with OutputDir.claim(str(tmp_path / "out")) as again:   # released: the next run may claim it
        again.commit([])


def interrupt_after(monkeypatch, packets: int, out: Path, seen: list) -> None:
    """Simulate Ctrl-C while the capture is being read, noting what the output directory held then."""
    real = Pipeline.packet

    def packet(self, ts, linktype, frame):
        if self.stats.packets == packets:
            seen.append(visible(out))
            raise KeyboardInterrupt
        real(self, ts, linktype, frame)

    monkeypatch.setattr(Pipeline, "packet", packet)


def test_ctrl_c_mid_capture_gives_a_complete_marked_result_and_readers_saw_the_old_one(tmp_path, monkeypatch):
    out = tmp_path / "out"
    run_ok(S7, "-o", out)
    previous = snapshot(out)
    seen: list = []
    interrupt_after(monkeypatch, 200, out, seen)
    result = analyze([str(MODBUS)], str(out), quiet=True)
    assert seen == [previous]           # mid-run, a reader still saw the previous run, whole
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["packets"] == 200
    assert any("interrupted" in w for w in summary["warnings"]) and result.exit_code == 0
    assert set(summary["records"]) <= {"modbus", "anomalies"} and not (out / "s7comm.jsonl").exists()
    assert not (out / STAGING).exists()


CRASH = """
import os, sys
from otsensor.sensor.analyze import analyze
from otsensor.sensor.pipeline import Pipeline
real = Pipeline.packet
def packet(self, *args):
    if self.stats.packets == 150:
        os._exit(9)          # the process dies here: no finally, no clean-up (power cut, OOM killer, kill -9)
    real(self, *args)
Pipeline.packet = packet
analyze([sys.argv[1]], sys.argv[2], quiet=True)
"""


def test_a_run_killed_midway_leaves_the_previous_results_and_the_next_run_cleans_up(tmp_path):
    out = tmp_path / "out"
    run_ok(S7, "-o", out)
    previous = snapshot(out)
    crash = subprocess.run([sys.executable, "-c", CRASH, str(MODBUS), str(out)], cwd=REPO, capture_output=True,
                           text=True, timeout=120, check=False)
    assert crash.returncode == 9, crash.stderr
    after = snapshot(out)
    partial = {name for name in after if name.startswith(STAGING + "/")}
    assert partial, "the killed run's partial files are kept apart, in the staging directory"
    assert {k: v for k, v in after.items() if k not in partial} == previous
    run_ok(MODBUS, "-o", out)
    assert not (out / STAGING).exists() and not (out / "s7comm.jsonl").exists()
    assert set(json.loads((out / "summary.json").read_text())["records"]) == {"modbus"}


def test_a_capture_cut_midway_gives_a_coherent_directory(tmp_path):
    cut = tmp_path / "cut.pcap"
    data = MODBUS.read_bytes()
    cut.write_bytes(data[:len(data) // 2 + 7])
    out = tmp_path / "out"
    run_ok(S7, "-o", out)
    proc = run_ok(cut, "-o", out)
    assert "warning" in proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["records"]) <= {"modbus", "anomalies"} and set(summary["anomalies"]) <= {
        "modbus.unanswered_request"} and summary["warnings"] and not (out / "cotp.jsonl").exists()


def test_the_spool_in_the_output_directory_survives_the_next_run(own_receiver, tmp_path):
    out = tmp_path / "out"
    conf = tmp_path / "sensor.toml"
    conf.write_text(f'[[sinks.syslog]]\nurl = "{own_receiver.url("tcp")}"\napp_name = "outdir-spool"\n'
                    'drain_timeout = 0.3\nbackoff_initial = 0.05\n', encoding="utf-8")
    own_receiver.stop()
    run_ok(S7, "-o", out, "--config", conf)
    (first,) = json.loads((out / "summary.json").read_text())["sinks"]
    assert first["spooled"] > 0 and first["spool_dir"].startswith(str(out / "spool")), first

    own_receiver.start()
    run_ok(MODBUS, "-o", out, "--config", conf)
    (second,) = json.loads((out / "summary.json").read_text())["sinks"]
    assert second["from_previous_run"] == first["spooled"] and second["spooled"] == 0, second
    assert second["delivered"] == first["spooled"] + second["accepted"], second
    assert len(own_receiver.wait_for("tcp", "outdir-spool", second["delivered"])) == second["delivered"]


def live_run(out: Path, capture: Path, *args: str) -> subprocess.CompletedProcess:
    """`otsensor run` reading a capture as a stream on its standard input (no interface needed)."""
    return subprocess.run([sys.executable, "-m", "otsensor.sensor.cli", "run", "-r", "-", "-o", str(out), "-q",
                           *args], input=capture.read_bytes(), cwd=REPO, capture_output=True, timeout=120)


def test_a_live_run_replaces_the_previous_documents_archives_its_logs_and_keeps_the_spool(tmp_path):
    """An appliance restarting must not lose what it wrote: the previous run's logs join the rotated archive
    (compressed, line for line), its documents are replaced, the spool stays."""
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    run_ok(S7, "-o", out)
    previous = {p.name: p.read_bytes() for p in out.glob("*.jsonl")}
    (out / "spool" / "some-sink").mkdir(parents=True)
    done = live_run(out, MODBUS)
    assert done.returncode == 0, done.stderr
    assert not (out / "s7comm.jsonl").exists() and not (out / "cotp.jsonl").exists()
    archived = {p.name.split(".")[0] + ".jsonl": gzip.decompress(p.read_bytes()) for p in out.glob("*.jsonl.gz")}
    assert archived == previous
    assert (out / "spool" / "some-sink").is_dir() and (out / "stats.json").exists()
    assert live_run(fresh, MODBUS).returncode == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([*(p.name for p in fresh.iterdir()), "spool",
                                                            *(p.name for p in out.glob("*.jsonl.gz"))])
    marker = json.loads((out / MARKER).read_text())
    assert (marker["state"], marker["run"]) == ("complete", 2) and "stats.json" in marker["files"]


def test_a_live_run_refuses_a_directory_with_foreign_files(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    done = live_run(out, MODBUS)
    assert done.returncode == 2 and b"notes.txt" in done.stderr and done.stderr.count(b"\n") == 1, done.stderr
    assert sorted(os.listdir(out)) == ["notes.txt"]
    assert live_run(out, MODBUS, "--force").returncode == 0 and (out / "notes.txt").read_text() == "mine"
