"""`otsensor run` without a live interface: a pcap stream on stdin, its clock, signals and its errors."""
from __future__ import annotations

import gzip
import json
import signal
import subprocess
import time

import pytest

from tests.sensor.netlab import REPO, analyze_offline, assert_same_outputs, sensor_command, wait_for

PCAPS = REPO / "pcaps"
STATS_KEYS = {"version", "state", "pid", "started", "updated", "uptime_s", "capture", "packets", "bytes",
              "undecoded_packets", "flows", "flows_active", "flows_timed_out", "flows_evicted", "records", "alerts",
              "errors", "outputs", "sinks", "stats_interval_s"}


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(sensor_command(*args), input=stdin, capture_output=True, timeout=120)


@pytest.mark.parametrize("name", ["modbus_it.pcap", "s7_engineering.pcap",
                                  "scenarios/attack_dnp3_restart_operate.pcap"])
def test_a_capture_on_stdin_gives_what_analyze_gives(tmp_path, name):
    data = (PCAPS / name).read_bytes()
    sent = gzip.compress(data) if "dnp3" in name else data
    done = run("-r", "-", "-o", str(tmp_path / "run"), "-q", stdin=sent)
    assert done.returncode == 0, done.stderr
    analyze_offline(PCAPS / name, tmp_path / "analyze")
    assert_same_outputs(tmp_path / "run", tmp_path / "analyze")
    stats = json.loads((tmp_path / "run" / "stats.json").read_text())
    assert set(stats) == STATS_KEYS and stats["state"] == "stopped" and stats["version"] == 1
    assert stats["capture"]["kernel_dropped"] is None and stats["capture"]["bytes_read"] == len(sent)
    lines = {p.stem: len(p.read_text().splitlines()) for p in (tmp_path / "run").glob("*.jsonl")}
    assert stats["records"] == {log: n for log, n in lines.items() if n}
    assert stats["alerts"] == lines["alerts"] > 0


def test_a_quiet_pipe_still_closes_idle_flows_and_stops_on_sigterm(tmp_path):
    """Packets stop but the pipe stays open: the wall clock sweeps the idle flow; SIGTERM ends the run at once."""
    out = tmp_path / "run"
    sensor = subprocess.Popen(sensor_command("-r", "-", "-o", str(out), "-q", "--stats-interval", "0.5",
                                             "--tcp-timeout", "1"),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=False)
    data = (PCAPS / "modbus_hmi.pcap").read_bytes()
    sensor.stdin.write(data[:-200])          # the connection's last packets never come
    sensor.stdin.flush()

    def swept() -> bool:
        path = out / "stats.json"
        stats = json.loads(path.read_text()) if path.exists() else {}
        return stats.get("flows") == 1 and stats.get("flows_active") == 0

    wait_for(swept, 30, "the idle flow to be swept")
    assert len((out / "conn.jsonl").read_text().splitlines()) == 1    # written (and flushed) while running
    started = time.monotonic()
    sensor.send_signal(signal.SIGTERM)
    _, err = sensor.communicate(timeout=30)
    assert sensor.returncode == 0, err
    assert time.monotonic() - started < 10
    assert b"otsensor: stats: uptime_s=" in err and b"kernel_" not in err   # no kernel counters for a stream
    stats = json.loads((out / "stats.json").read_text())
    assert stats["state"] == "stopped" and stats["flows_timed_out"] == 1


def test_a_stream_that_is_not_a_capture_is_one_error_and_outputs_are_written(tmp_path):
    done = run("-r", "-", "-o", str(tmp_path / "run"), stdin=b"this is not a capture")
    assert done.returncode == 2
    errors = [line for line in done.stderr.decode().splitlines() if line.startswith("otsensor: error:")]
    assert errors == ["otsensor: error: <stdin>: not a pcap or pcapng capture (starts with 74686973) "
                      "(after 0 packets; those were analysed)"]
    for name in ("summary.json", "stats.json", "assets.json", "alerts.jsonl"):
        assert (tmp_path / "run" / name).exists(), name


@pytest.mark.parametrize("args, message", [
    (["-i", "lo", "--bpf", "tcp prt 502"], "otsensor: error: --bpf 'tcp prt 502': can't parse filter expression"),
    (["-r", "-", "--bpf", "tcp"], "otsensor: error: --bpf applies to -i capture only"),
    (["-i", "otsnope0", "--ring-block-size", "5000"], "otsensor: error: ring block size must be a power of two"),
    (["-i", "otsnope0"], "otsensor: error: otsnope0: no such network interface"),
    (["-r", "/nonexistent/capture.pcap"], "otsensor: error: /nonexistent/capture.pcap: cannot open"),
    (["-i", "lo", "-r", "-"], "otsensor: error: argument -r/--read: not allowed with argument -i/--interface"),
])
def test_a_bad_option_is_one_error_line_and_exit_2(tmp_path, args, message):
    done = run(*args, "-o", str(tmp_path / "run"))
    lines = done.stderr.decode().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith(message), lines
    assert not (tmp_path / "run").exists()   # nothing written before the capture opened
