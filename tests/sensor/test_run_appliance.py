"""`otsensor run` as a continuous appliance, without a live interface (a capture streamed into its stdin):
every option in the configuration file, logs rotated across a clock boundary with nothing lost, documents
rewritten while it runs, the health check, the Prometheus endpoint, SIGHUP, and the systemd unit."""
from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from otsensor.sensor.cli import build_parser
from otsensor.sensor.healthcheck import verdict
from otsensor.sensor.run_config import SETTINGS
from tests.sensor.netlab import REPO, analyze_offline, frames_in, sensor_command, wait_for, wait_for_stats

PCAPS = REPO / "pcaps"
UNIT = REPO / "sensor" / "appliance" / "otsensor.service"


def run_parser() -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["run"]


def test_every_option_of_run_has_a_key_in_the_configuration_file():
    sinks = {"syslog", "syslog_format", "syslog_min_severity", "syslog_records", "spool_dir"}   # [sinks]
    zeek = {"zeek_logs"}                                                                         # [zeek] logs
    clickhouse = {"clickhouse"}                                                                  # [clickhouse] url
    options = ({a.dest for a in run_parser()._actions if a.option_strings} - {"help", "config"} - sinks - zeek
               - clickhouse)
    assert options == {s.dest for s in SETTINGS}


def start(out: Path, *args: str) -> subprocess.Popen:
    """`otsensor run -r - ARGS` with a pipe on its stdin that the test feeds."""
    return subprocess.Popen(sensor_command("-r", "-", "-o", str(out), "-q", *args), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)


def finish(proc: subprocess.Popen, sig: int | None = signal.SIGTERM) -> str:
    if sig is not None:
        proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)   # closes stdin: the end of the stream
    assert proc.returncode == 0, err.decode()
    return err.decode()


def test_the_file_sets_what_the_command_line_leaves_out_and_the_command_line_wins(tmp_path):
    out = tmp_path / "out"
    config = tmp_path / "sensor.toml"
    config.write_text(f'[capture]\nread = "{PCAPS / "modbus_hmi.pcap"}"\n'
                      f'[run]\noutput = "{out}"\nstats_interval = "2m"\nquiet = true\nrotate_size = "64K"\n')
    done = subprocess.run(sensor_command("--config", str(config)), capture_output=True, text=True, timeout=120,
                          cwd=REPO, check=False)
    assert done.returncode == 0 and done.stdout == "", done.stderr          # quiet, from the file
    stats = json.loads((out / "stats.json").read_text())
    assert stats["stats_interval_s"] == 120 and stats["capture"]["stream"].endswith("modbus_hmi.pcap")
    done = subprocess.run(sensor_command("--config", str(config), "--stats-interval", "7", "-o", str(tmp_path / "b"),
                                         "-r", str(PCAPS / "s7_hmi.pcap")),
                          capture_output=True, text=True, timeout=120, cwd=REPO, check=False)
    assert done.returncode == 0, done.stderr
    stats = json.loads((tmp_path / "b" / "stats.json").read_text())
    assert stats["stats_interval_s"] == 7 and stats["capture"]["stream"].endswith("s7_hmi.pcap")
    assert (tmp_path / "b" / "s7comm.jsonl").exists() and not (tmp_path / "b" / "modbus.jsonl").exists()


def test_a_run_needs_a_source_and_an_output_from_somewhere(tmp_path):
    done = subprocess.run(sensor_command("-o", str(tmp_path / "x")), capture_output=True, text=True, timeout=60,
                          cwd=REPO, check=False)
    assert done.returncode == 2 and done.stderr == ("otsensor: error: nothing to capture: give -i IFACE, -r FILE or "
                                                    "[capture] interfaces in --config\n")


def all_lines(directory: Path, log: str) -> list[str]:
    parts = sorted(directory.glob(f"{log}.*.jsonl.gz"))
    plain = directory / f"{log}.jsonl"
    text = b"".join([gzip.decompress(p.read_bytes()) for p in parts] + ([plain.read_bytes()] if plain.exists() else []))
    return text.decode().splitlines()


def test_logs_rotate_on_the_clock_while_running_and_lose_nothing(tmp_path):
    """A 1 s rotation interval: the stream is fed in pieces over several seconds; the rotated files and the
    current one hold exactly the lines `otsensor analyze` writes, in order; documents are live."""
    pcap = (PCAPS / "scenarios" / "benign_learn.pcap").read_bytes()
    out = tmp_path / "live"
    proc = start(out, "--rotate-interval", "1", "--documents-interval", "0.5", "--stats-interval", "0.5")
    step = len(pcap) // 6 + 1
    for i in range(0, len(pcap), step):
        proc.stdin.write(pcap[i:i + step])
        proc.stdin.flush()
        time.sleep(1.2)
    wait_for(lambda: (out / "assets.json").exists() and json.loads((out / "assets.json").read_text())["assets"],
             30, "assets.json written while running")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["packets"] > 0 and summary["capture"]["stream"] == "<stdin>"
    finish(proc, None)
    analyze_offline(PCAPS / "scenarios" / "benign_learn.pcap", tmp_path / "offline")
    rotated = sorted(p.name for p in out.glob("*.jsonl.gz"))
    assert len({name.split(".")[1] for name in rotated}) >= 2, rotated     # at least two intervals were closed
    for log in ("conn", "modbus", "s7comm"):
        assert all_lines(out, log) == (tmp_path / "offline" / f"{log}.jsonl").read_text().splitlines(), log
    stats = json.loads((out / "stats.json").read_text())
    assert stats["outputs"]["rotated_files"] == len(rotated) == stats["outputs"]["compressed_files"]
    assert stats["outputs"]["records_dropped"] == {} and stats["outputs"]["write_errors"] == 0
    marker = json.loads((out / ".otsensor-output").read_text())
    assert set(rotated) <= set(marker["files"])


def test_a_restart_archives_the_previous_runs_logs(tmp_path):
    out = tmp_path / "live"
    for name in ("modbus_hmi.pcap", "modbus_it.pcap"):
        done = subprocess.run(sensor_command("-r", str(PCAPS / name), "-o", str(out), "-q"), capture_output=True,
                              timeout=120, cwd=REPO, check=False)
        assert done.returncode == 0, done.stderr
    analyze_offline(PCAPS / "modbus_hmi.pcap", tmp_path / "first")
    analyze_offline(PCAPS / "modbus_it.pcap", tmp_path / "second")
    assert all_lines(out, "modbus") == ((tmp_path / "first" / "modbus.jsonl").read_text().splitlines()
                                        + (tmp_path / "second" / "modbus.jsonl").read_text().splitlines())
    assert json.loads((out / "summary.json").read_text())["files"] == [str(PCAPS / "modbus_it.pcap")]


def test_the_health_check_follows_stats_json(tmp_path):
    out = tmp_path / "live"
    assert "missing" in verdict(str(out))
    proc = start(out, "--stats-interval", "0.5")
    proc.stdin.write((PCAPS / "modbus_hmi.pcap").read_bytes())
    proc.stdin.flush()
    wait_for_stats(out, lambda s: s["state"] == "running", 30, "the sensor to run")
    done = subprocess.run([sys.executable, "-m", "otsensor.sensor.cli", "health", str(out)], capture_output=True,
                          text=True, timeout=60, cwd=REPO, check=False)
    assert done.returncode == 0, done.stderr
    proc.send_signal(signal.SIGSTOP)   # a sensor that hangs stops rewriting stats.json
    try:
        wait_for(lambda: verdict(str(out)) is not None, 30, "stats.json to go stale")
        assert "stuck" in verdict(str(out))
    finally:
        proc.send_signal(signal.SIGCONT)
    wait_for(lambda: verdict(str(out)) is None, 30, "the sensor to be healthy again")
    finish(proc)
    done = subprocess.run([sys.executable, "-m", "otsensor.sensor.cli", "health", str(out)], capture_output=True,
                          text=True, timeout=60, cwd=REPO, check=False)
    assert done.returncode == 1 and "'stopped'" in done.stderr


def test_the_prometheus_endpoint_serves_the_stats_on_loopback(tmp_path):
    pytest.importorskip("prometheus_client")
    port = 20000 + os.getpid() % 20000
    out = tmp_path / "live"
    proc = start(out, "--stats-interval", "0.5", "--metrics", f"127.0.0.1:{port}")
    proc.stdin.write((PCAPS / "modbus_hmi.pcap").read_bytes())
    proc.stdin.flush()
    stats = wait_for_stats(out, lambda s: s["packets"] > 0 and s["records"].get("modbus"), 30, "records")
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    assert f'otsensor_records_total{{log="modbus"}} {float(stats["records"]["modbus"])}' in text
    assert "otsensor_packets_total" in text and "otsensor_write_backlog_bytes" in text
    finish(proc)


def test_metrics_refuse_an_address_that_is_not_loopback(tmp_path):
    done = subprocess.run(sensor_command("-r", "-", "-o", str(tmp_path / "o"), "--metrics", "0.0.0.0:9108"),
                          capture_output=True, text=True, timeout=60, cwd=REPO, check=False)
    assert done.returncode == 2 and "loopback HOST:PORT" in done.stderr and done.stderr.count("\n") == 1


def test_sighup_reloads_zones_and_a_bad_file_keeps_the_previous_ones(tmp_path):
    """Flows that span the reload are kept (one conn row each, as without a reload); conn rows of flows that
    end after it carry the new zones; a broken zones file is refused in one line and changes nothing."""
    zones = tmp_path / "zones.toml"
    zones.write_text('[[zones]]\nname = "before"\ncidrs = ["0.0.0.0/0"]\nlevel = 1\nkind = "ot"\n')
    out = tmp_path / "live"
    proc = start(out, "--zones", str(zones), "--stats-interval", "0.5", "--tcp-timeout", "3600")
    pcap = (PCAPS / "modbus_it.pcap").read_bytes()
    proc.stdin.write(pcap[:len(pcap) // 2])
    proc.stdin.flush()
    wait_for_stats(out, lambda s: s["packets"] > 0, 30, "the first half")
    zones.write_text("[[zones]]\nname = \n")          # broken: refused, the previous zones stay
    proc.send_signal(signal.SIGHUP)
    wait_for(lambda: b"reload refused" in _peek_stderr(proc), 30, "the refusal")
    zones.write_text('[[zones]]\nname = "after"\ncidrs = ["0.0.0.0/0"]\nlevel = 2\nkind = "ot"\n')
    proc.send_signal(signal.SIGHUP)
    wait_for(lambda: b"reloaded" in _peek_stderr(proc), 30, "the reload")
    proc.stdin.write(pcap[len(pcap) // 2:])
    err = _peek_stderr(proc).decode() + finish(proc, None)
    analyze_offline(PCAPS / "modbus_it.pcap", tmp_path / "offline")
    conn = [json.loads(line) for line in all_lines(out, "conn")]
    offline = (tmp_path / "offline" / "conn.jsonl").read_text().splitlines()
    assert len(conn) == len(offline) > 0                                   # no flow lost or split by the reload
    assert {(row["orig_zone"], row["orig_level"]) for row in conn} == {("after", 2)}   # finished after the reload
    refused = [line for line in err.splitlines() if "reload refused" in line]
    assert len(refused) == 1 and str(zones) in refused[0]


def test_sighup_adds_a_sink_from_the_edited_configuration(own_receiver, tmp_path):
    """A sink configured while the sensor runs receives the alerts raised after the reload; a configuration
    with a typo is refused and changes nothing."""
    config = tmp_path / "sensor.toml"
    config.write_text("[detection]\nscan_hosts = 10\n")
    out = tmp_path / "live"
    proc = start(out, "--config", str(config), "--stats-interval", "0.5")
    wait_for(lambda: (out / "stats.json").exists(), 30, "the sensor to start")
    config.write_text("[detection]\nscan_hostz = 10\n")
    proc.send_signal(signal.SIGHUP)
    wait_for(lambda: b"reload refused" in _peek_stderr(proc), 30, "the refusal")
    config.write_text(f'[[sinks.syslog]]\nurl = "{own_receiver.url("tcp")}"\napp_name = "reload-sink"\n')
    proc.send_signal(signal.SIGHUP)
    wait_for(lambda: b"sinks replaced" in _peek_stderr(proc), 30, "the reload")
    proc.stdin.write((PCAPS / "scenarios" / "attack_s7_stop_download.pcap").read_bytes())
    err = _peek_stderr(proc).decode() + finish(proc, None)
    assert "scan_hostz: unknown key; did you mean scan_hosts?" in err
    summary = json.loads((out / "summary.json").read_text())
    (sink,) = summary["sinks"]
    alerts = len(all_lines(out, "alerts"))
    assert sink["accepted"] == sink["delivered"] == alerts > 0, sink
    assert len(own_receiver.wait_for("tcp", "reload-sink", alerts)) == alerts


_stderr: dict[int, bytes] = {}


def _peek_stderr(proc: subprocess.Popen) -> bytes:
    """What the sensor wrote to stderr so far (read without blocking)."""
    os.set_blocking(proc.stderr.fileno(), False)
    chunk = proc.stderr.read() or b""
    _stderr[proc.pid] = _stderr.get(proc.pid, b"") + chunk
    return _stderr[proc.pid]


@pytest.fixture
def ext4(tmp_path):
    """A small ext4 file system in a file, loop-mounted at tmp_path/disk (fsfreeze needs a real file system);
    always thawed and unmounted afterwards."""
    tools = [shutil.which(t) for t in ("mkfs.ext4", "fsfreeze", "mount", "umount")]
    if os.geteuid() != 0 or None in tools:
        pytest.skip("a loop-mounted, freezable file system needs root, mkfs.ext4 and fsfreeze")
    image, mnt = tmp_path / "disk.img", tmp_path / "disk"
    mnt.mkdir()
    with open(image, "wb") as fh:
        fh.truncate(64 << 20)
    for cmd in (["mkfs.ext4", "-q", "-F", str(image)], ["mount", "-o", "loop", str(image), str(mnt)]):
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode:
            pytest.skip(f"{' '.join(cmd[:2])}: {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["fsfreeze", "-u", str(mnt)], capture_output=True, timeout=60, check=False)
        if subprocess.run(["umount", str(mnt)], capture_output=True, timeout=60, check=False).returncode:
            # still busy (a sensor's writer thread that has not exited yet): detach it now, the kernel
            # releases it when the last file closes, so no mount outlives the test
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=60, check=False)


def test_a_frozen_disk_never_stalls_capture_and_what_it_cost_is_counted_and_alerted(ext4):
    """fsfreeze blocks every write to the file system in the kernel: the writer thread hangs, the capture goes
    on (the stats line on stderr counts every packet), the rows past --write-buffer are dropped and counted,
    and once the disk is back everything else is written and a sensor_packet_loss alert says what was lost."""
    out = ext4 / "live"
    proc = start(out, "--stats-interval", "0.3", "--write-buffer", "16K")
    wait_for(lambda: (out / "stats.json").exists(), 30, "the sensor to start")
    pcap = PCAPS / "scenarios" / "benign_learn.pcap"
    frames = frames_in(pcap)
    subprocess.run(["fsfreeze", "-f", str(ext4)], check=True, timeout=60)
    try:
        proc.stdin.write(pcap.read_bytes())
        proc.stdin.flush()
        wait_for(lambda: re.search(rb"packets=%d .*records_dropped=[1-9]" % frames, _peek_stderr(proc)), 60,
                 "every packet processed, with rows dropped, while the disk is frozen")
        assert proc.poll() is None
    finally:
        subprocess.run(["fsfreeze", "-u", str(ext4)], check=True, timeout=60)
    finish(proc)
    stats = json.loads((out / "stats.json").read_text())
    dropped = stats["outputs"]["records_dropped"]
    assert stats["packets"] == frames and sum(dropped.values()) == stats["outputs"]["queue_dropped"] > 0
    for log, n in stats["records"].items():   # what was not dropped is on disk
        assert len(all_lines(out, log)) == n - dropped.get(log, 0), log
    assert "alerts" not in dropped    # alerts wait for the disk, whatever the buffer
    alerts = [json.loads(line) for line in all_lines(out, "alerts")]
    loss = [a for a in alerts if a["rule"] == "sensor_packet_loss"]
    assert [a["identifier"] for a in loss] == ["sensor:outputs"] and loss[0]["techniques"][0]["id"] == "T0814"


def test_the_systemd_unit_verifies_and_confines_the_sensor(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    text = UNIT.read_text()
    for line in ("AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN", "NoNewPrivileges=yes", "ProtectSystem=strict",
                 "ReadWritePaths=/var/lib/otsensor", "User=otsensor", "ExecReload=/bin/kill -HUP $MAINPID"):
        assert line in text.splitlines(), line
    # verify checks that ExecStart exists: point it at this checkout's otsensor
    exe = shutil.which("otsensor") or str(Path(sys.executable).with_name("otsensor"))
    unit = tmp_path / "otsensor.service"
    unit.write_text(text.replace("/usr/local/bin/otsensor", exe))
    done = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and done.stderr.strip() == "" and done.stdout.strip() == "", done.stderr
