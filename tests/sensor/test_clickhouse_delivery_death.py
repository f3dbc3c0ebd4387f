"""The ClickHouse sink's delivery process killed mid-run (sensor/clickhouse/process.py), against a real
clickhouse-server: the rows it had not confirmed, in its queue and in the pipe, are spooled by the run, every
table's rows are counted (sent == delivered + spooled + dropped), the summary says why, and the next run
delivers the spool, so the server holds exactly the first run's rows."""
from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli import REPO, otsensor
from tests.sensor.clickhouse_rows import mismatches
from tests.sensor.test_clickhouse_sink import config, feed, summary_sink, wait_for

DELIVERY = b"otsensor.sensor.clickhouse.process"


def delivery_process(parent: int) -> int:
    """The pid of the sensor's delivery process (a child of one of its threads)."""
    for task in os.listdir(f"/proc/{parent}/task"):
        for child in Path(f"/proc/{parent}/task/{task}/children").read_text().split():
            if DELIVERY in Path(f"/proc/{child}/cmdline").read_bytes():
                return int(child)
    raise AssertionError("no delivery process")


def stopped(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"


@pytest.mark.parametrize("piece_bytes", [2048, 0], ids=["streamed", "whole-batches"])
def test_delivery_process_killed_mid_run_loses_nothing_and_counts_every_row(clickhouse, tmp_path, piece_bytes):
    """With batches in pieces, the run spools each unconfirmed batch whole: its pieces piped, and not."""
    sensor = f"killed-{piece_bytes}"
    capture = tmp_path / "stream.pcap"
    subprocess.run([sys.executable, str(REPO / "bench" / "make_capture.py"), "--capture", "modbus", "--packets",
                    "30000", "--out", str(capture)], check=True, capture_output=True, timeout=120)
    data = capture.read_bytes()
    out = tmp_path / "out"
    cfg = config(tmp_path, clickhouse, sensor, batch_rows=200, name="killed", piece_bytes=piece_bytes)
    proc = subprocess.Popen([sys.executable, "-m", "otsensor.sensor.cli", "run", "-r", "-", "-o", str(out), "-q",
                             "--config", str(cfg)], cwd=REPO, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    stored = f"SELECT count() FROM otsensor.modbus WHERE sensor_id = '{sensor}'"
    try:
        feed(proc.stdin, data[:len(data) // 3])
        wait_for(lambda: clickhouse.query(stored)[0][0] > 0)
        child = delivery_process(proc.pid)
        # stopped, it reads nothing: the batches that follow fill the pipe and wait unconfirmed, then it dies
        os.kill(child, signal.SIGSTOP)
        wait_for(lambda: stopped(child))
        feed(proc.stdin, data[len(data) // 3:2 * len(data) // 3])
        os.kill(child, signal.SIGKILL)
        feed(proc.stdin, data[2 * len(data) // 3:])
        proc.stdin.close()
        assert proc.wait(120) == 0, proc.stderr.read()
        err = proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
    sink = summary_sink(out)
    for table, counts in sink["tables"].items():
        assert counts["sent"] == counts["delivered"] + counts["spooled"] + counts["dropped"], (table, counts)
    assert sink["dropped"] == 0 and sink["spooled"] > 0 and sink["accepted"] == sink["delivered"] + sink["spooled"]
    why = [p for p in sink["problems"] if "delivery process was killed by signal 9" in p]
    assert why and "were spooled by the run" in why[0], sink["problems"]
    assert "delivery process was killed by signal 9" in err
    assert mismatches(clickhouse, out, sensor) != {}          # the spooled rows are not on the server yet
    # the next run (an empty capture, the same sensor and spool) delivers them: the server holds the first run's
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    second = otsensor("analyze", empty, "-o", tmp_path / "out2", "-q", "--spool-dir", out / "spool",
                      "--config", config(tmp_path, clickhouse, sensor, drain_timeout=60, name="killed"))
    assert second.returncode == 0, second.stderr
    replayed = summary_sink(tmp_path / "out2")
    assert replayed["from_previous_run"] == sink["spooled"] and replayed["spooled"] == 0
    assert mismatches(clickhouse, out, sensor) == {}
