"""The rotating file sink of `otsensor run`: time and size rotation, compression, the disk budget, the previous
run's logs, and what happens when the disk is full (real files, real writer and archive threads; the wall
clock is a value the test moves, so an hour passes at once)."""
from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from otsensor.sensor.sinks.archive import free_name, interval_start, stamp
from otsensor.sensor.sinks.outdir import LOG_FILE
from otsensor.sensor.sinks.rotating import Rotation, RotatingJsonlSink

HOUR = 3600.0
T10 = 1795687200.0     # 2026-11-26T10:00:00Z
LOGS = frozenset({"modbus", "conn", "alerts"})


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def rows(n: int, start: int = 0) -> list[dict]:
    return [{"ts": float(i), "i": i, "pad": "x" * 40} for i in range(start, start + n)]


def lines_of(path: Path) -> list[str]:
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return data.decode().splitlines()


def sink_in(tmp_path: Path, clock: Clock, **rotation) -> RotatingJsonlSink:
    return RotatingJsonlSink(str(tmp_path), Rotation(**rotation), LOGS, clock)


def all_lines(directory: Path, log: str) -> list[str]:
    """Every line of a log, oldest rotated file first, the plain file last."""
    rotated = sorted(p for p in directory.iterdir() if p.name.startswith(log + ".") and p.name != f"{log}.jsonl")
    plain = directory / f"{log}.jsonl"
    return [line for p in [*rotated, *([plain] if plain.exists() else [])] for line in lines_of(p)]


def test_stamps_name_the_interval_in_utc_as_precisely_as_it_needs():
    assert stamp(T10 + 1800, HOUR) == "2026-11-26T10" and interval_start(T10 + 1800, HOUR) == T10
    assert stamp(T10 + 900, 900) == "2026-11-26T10-15"
    assert stamp(interval_start(T10 + 7, 5), 5) == "2026-11-26T10-00-05"
    assert stamp(T10, 86400) == "2026-11-26T10"   # a day is whole hours (aligned on UTC midnight)
    assert interval_start(T10 + 5, 86400) == T10 - 10 * HOUR


def test_a_second_file_of_an_interval_gets_the_next_part_and_names_sort_in_time(tmp_path):
    (tmp_path / "modbus.2026-11-26T10.jsonl.gz").write_bytes(b"")
    (tmp_path / "modbus.2026-11-26T10_0001.jsonl").write_bytes(b"")
    name = free_name(str(tmp_path), "modbus", "2026-11-26T10")
    assert name == "modbus.2026-11-26T10_0002.jsonl"
    names = ["modbus.2026-11-26T10.jsonl.gz", "modbus.2026-11-26T10_0001.jsonl.gz", name + ".gz",
             "modbus.2026-11-26T11.jsonl.gz"]
    assert sorted(names) == names
    assert all(LOG_FILE.fullmatch(n)["log"] == "modbus" for n in names)   # the output directory owns them


def test_the_hour_boundary_rotates_every_log_and_compresses_it_losing_nothing(tmp_path):
    clock = Clock(T10 + 3000)
    sink = sink_in(tmp_path, clock)
    for row in rows(100):
        sink.write("modbus", row)
    sink.write("conn", {"uid": "C1"})
    sink.flush()
    sink.write_document("stats.json", b"{}\n")   # written once the rows before it are
    wait_until(lambda: (tmp_path / "stats.json").exists())
    assert len(lines_of(tmp_path / "modbus.jsonl")) == 100
    clock.now = T10 + HOUR + 1                   # 11:00:01
    for row in rows(10, 100):
        sink.write("modbus", row)
    sink.close()
    assert len(lines_of(tmp_path / "modbus.2026-11-26T10.jsonl.gz")) == 100
    assert lines_of(tmp_path / "conn.2026-11-26T10.jsonl.gz") == ['{"uid":"C1"}']
    assert len(lines_of(tmp_path / "modbus.jsonl")) == 10 and not (tmp_path / "conn.jsonl").exists()
    assert [int(line.split('"i":')[1].split(",")[0]) for line in all_lines(tmp_path, "modbus")] == list(range(110))
    assert not list(tmp_path.glob("*.tmp")) and not (tmp_path / "modbus.2026-11-26T10.jsonl").exists()
    stats = sink.statistics()
    assert (stats["rotated_files"], stats["compressed_files"], stats["records_dropped"]) == (2, 2, {})


def test_a_file_reaching_its_size_is_rotated_within_its_hour(tmp_path):
    sink = sink_in(tmp_path, Clock(T10 + 60), size=4096)
    for i in range(10):
        for row in rows(20, i * 20):
            sink.write("modbus", row)
        sink.flush()
    sink.close()
    parts = sorted(p.name for p in tmp_path.glob("modbus.2026-11-26T10*.jsonl.gz"))
    assert len(parts) >= 3 and parts[0] == "modbus.2026-11-26T10.jsonl.gz" and parts[1].endswith("_0001.jsonl.gz")
    assert len(all_lines(tmp_path, "modbus")) == 200
    assert all(p.stat().st_size < 4096 for p in tmp_path.glob("*.gz"))


def test_max_disk_deletes_the_oldest_rotated_files_and_counts_them(tmp_path):
    clock = Clock(T10)
    sink = sink_in(tmp_path, clock, interval=60.0, max_disk=12000)
    for minute in range(8):
        clock.now = T10 + 60 * minute
        for row in rows(50, minute * 50):
            sink.write("modbus", {**row, "noise": os.urandom(40).hex()})   # hardly compressible: ~3 kB a file
        sink.flush()
        wait_until(lambda: sink.statistics()["write_backlog_bytes"] == 0)
    clock.now = T10 + 60 * 8
    sink.close()
    stats = sink.statistics()
    kept = sorted(p.name for p in tmp_path.glob("modbus.*.jsonl.gz"))
    assert stats["deleted_files"] >= 1 and stats["deleted_bytes"] > 0
    assert stats["logs_bytes"] == sum(p.stat().st_size for p in tmp_path.glob("modbus*")) <= 12000
    assert kept[-1] == "modbus.2026-11-26T10-07.jsonl.gz" and "modbus.2026-11-26T10-00.jsonl.gz" not in kept
    survivors = [int(line.split('"i":')[1].split(",")[0]) for line in all_lines(tmp_path, "modbus")]
    assert survivors == list(range(400 - len(survivors), 400))     # what is left is the newest, whole


def test_the_previous_runs_logs_are_archived_not_deleted(tmp_path):
    (tmp_path / "modbus.jsonl").write_text('{"old":1}\n{"old":2}\n')
    os.utime(tmp_path / "modbus.jsonl", (T10 + 100, T10 + 100))
    (tmp_path / "modbus.2026-11-26T09.jsonl").write_text('{"older":1}\n')     # rotated, never compressed
    (tmp_path / "modbus.2026-11-26T08.jsonl.gz.tmp").write_bytes(b"half")      # a compression cut short
    (tmp_path / "notes.jsonl").write_text("not ours\n")
    sink = sink_in(tmp_path, Clock(T10 + 200))
    sink.write("modbus", {"new": 1})
    sink.close()
    assert lines_of(tmp_path / "modbus.2026-11-26T10.jsonl.gz") == ['{"old":1}', '{"old":2}']
    assert lines_of(tmp_path / "modbus.2026-11-26T09.jsonl.gz") == ['{"older":1}']
    assert lines_of(tmp_path / "modbus.jsonl") == ['{"new":1}']
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "modbus.2026-11-26T09.jsonl.gz", "modbus.2026-11-26T10.jsonl.gz", "modbus.jsonl", "notes.jsonl"]


def test_a_full_disk_loses_whole_batches_counted_and_keeps_whole_lines(tmp_path):
    """A 64 KiB tmpfs in a mount namespace of its own: writes fail with ENOSPC, for real."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("mounting a small file system needs root and unshare")
    disk = tmp_path / "disk"
    disk.mkdir()
    script = tmp_path / "fill.py"
    script.write_text(FILL)
    done = subprocess.run(["unshare", "-m", "sh", "-c", f"mount --make-rprivate / && mount -t tmpfs -o size=64k "
                           f"otsensor-full {disk} && {sys.executable} {script} {disk}"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    written, dropped, errors, complete = (int(x) for x in done.stdout.split())
    assert errors > 0 and dropped > 0 and written > 0 and written + dropped == 5000
    assert complete == written   # every line on the disk is whole, and each one counted as written is there


FILL = """
import json, os, sys, time
from otsensor.sensor.sinks.rotating import Rotation, RotatingJsonlSink
directory = sys.argv[1]
sink = RotatingJsonlSink(directory, Rotation(), frozenset({"modbus"}))
for i in range(5000):
    sink.write("modbus", {"i": i, "pad": "y" * 60})
    if i % 100 == 99:
        sink.flush()
sink.close()
stats = sink.statistics()
dropped = stats["records_dropped"].get("modbus", 0)
with open(os.path.join(directory, "modbus.jsonl"), "rb") as fh:
    data = fh.read()
lines = data.split(b"\\n")
assert lines[-1] == b"", "a partial line was left"
complete = sum(1 for line in lines[:-1] if json.loads(line))
print(5000 - dropped, dropped, stats["write_errors"], complete)
"""


def wait_until(ready, seconds: float = 30) -> None:
    import time
    deadline = time.monotonic() + seconds
    while not ready():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)
