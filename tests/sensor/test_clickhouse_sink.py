"""The ClickHouse sink against a real clickhouse-server (Debian's 18.16, on loopback, unprivileged):
what `otsensor analyze` and `otsensor run` store is exactly what they write to their files, with four
sensors at once, across a server crash, and across runs when the server was away."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli import PCAPS, REPO, error_lines, otsensor
from tests.sensor.clickhouse_rows import mismatches
from tests.sensor.clickhouse_server import PASSWORD
from tests.sensor.ports import free_port

CAPTURES = [PCAPS / "modbus_hmi.pcap", PCAPS / "enip_hmi.pcap", PCAPS / "scenarios" / "attack_it_modbus_write.pcap"]
ZONES = PCAPS / "scenarios" / "zones.toml"
EVERY_PROTOCOL = [*CAPTURES, PCAPS / "s7_engineering.pcap", PCAPS / "dnp3_engineering.pcap"]


def config(tmp_path: Path, server, sensor_id: str, **extra) -> Path:
    path = tmp_path / f"{sensor_id}.toml"
    lines = [f'url = "{extra.pop("url", server.url)}"', f'sensor_id = "{sensor_id}"', "flush_interval = 0.2",
             "backoff_initial = 0.1", "backoff_max = 0.5", f"http_port = {extra.pop('http_port', server.http_port)}"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in extra.items()]
    path.write_text("[clickhouse]\n" + "\n".join(lines) + "\n")
    return path


def summary_sink(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())["sinks"][0]


def test_analyze_stores_every_log_as_its_jsonl(clickhouse, tmp_path):
    out = tmp_path / "out"
    proc = otsensor("analyze", *EVERY_PROTOCOL, "--zones", ZONES, "-o", out, "-q",
                    "--config", config(tmp_path, clickhouse, "analyze-1"))
    assert proc.returncode == 0, proc.stderr
    assert mismatches(clickhouse, out, "analyze-1") == {}
    sink = summary_sink(out)
    for log in ("modbus", "s7comm", "s7comm_upload_download", "dnp3", "cip", "conn", "assets", "graph_edges"):
        assert sink["tables"][log]["delivered"] == sink["tables"][log]["sent"] > 0, log
    assert sink["filtered"] == 0
    assert sink["tables"]["modbus"]["delivered"] == sink["tables"]["modbus"]["sent"] > 0
    assert sink["spooled"] == sink["dropped"] == sink["rejected"] == 0
    assert sink["server_version"].startswith("18.16")
    # the search columns of alerts: technique ids and the zone pair, for queries old servers can run
    techniques = clickhouse.query("SELECT DISTINCT t FROM otsensor.alerts ARRAY JOIN technique_ids AS t "
                                  "WHERE sensor_id = 'analyze-1'")
    assert ("T0886",) in techniques
    zones = clickhouse.query("SELECT DISTINCT orig_zone, resp_zone FROM otsensor.alerts "
                             "WHERE sensor_id = 'analyze-1' AND rule = 'it_ot_boundary_crossing'")
    assert zones == [("corporate", "cell")]


def test_analyze_with_worker_processes_stores_every_log_as_its_jsonl(clickhouse, tmp_path):
    """With --workers the aggregator writes the files, and the delivery process reads them as with one process."""
    out = tmp_path / "out"
    proc = otsensor("analyze", *EVERY_PROTOCOL, "--workers", "2", "-o", out, "-q",
                    "--config", config(tmp_path, clickhouse, "workers-2"))
    assert proc.returncode == 0, proc.stderr
    assert mismatches(clickhouse, out, "workers-2") == {}
    sink = summary_sink(out)
    assert sink["delivered"] == sink["accepted"] > 0 and sink["spooled"] == sink["dropped"] == 0


def test_four_sensors_write_one_server_at_once(clickhouse, tmp_path):
    procs = []
    for n in range(4):
        out = tmp_path / f"out{n}"
        args = [sys.executable, "-m", "otsensor.sensor.cli", "analyze", *map(str, CAPTURES[n % 2:]), "-o", str(out),
                "-q", "--config", str(config(tmp_path, clickhouse, f"fleet-{n}", batch_rows=50))]
        procs.append((out, subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                            text=True)))
    for out, proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    for n, (out, _) in enumerate(procs):
        assert mismatches(clickhouse, out, f"fleet-{n}") == {}, n


def feed(stdin, data: bytes, chunk: int = 1 << 16) -> None:
    for start in range(0, len(data), chunk):
        stdin.write(data[start:start + chunk])
        stdin.flush()


@pytest.mark.parametrize("piece_bytes", [4096, 0], ids=["streamed", "whole-batches"])
def test_server_killed_and_restarted_mid_run_loses_and_doubles_nothing(clickhouse, tmp_path, piece_bytes):
    capture = tmp_path / "stream.pcap"
    subprocess.run([sys.executable, str(REPO / "bench" / "make_capture.py"), "--capture", "modbus", "--packets", "30000",
                    "--out",
                    str(capture)], check=True, capture_output=True, timeout=120)
    data = capture.read_bytes()
    out = tmp_path / "out"
    sensor = f"crash-{piece_bytes}"
    cfg = config(tmp_path, clickhouse, sensor, batch_rows=500, piece_bytes=piece_bytes)
    proc = subprocess.Popen([sys.executable, "-m", "otsensor.sensor.cli", "run", "-r", "-", "-o", str(out), "-q",
                             "--config", str(cfg)], cwd=REPO, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    stored = f"SELECT count() FROM otsensor.modbus WHERE sensor_id = '{sensor}'"
    try:
        feed(proc.stdin, data[:len(data) // 3])
        wait_for(lambda: clickhouse.query(stored)[0][0] > 0)
        clickhouse.kill()
        feed(proc.stdin, data[len(data) // 3:2 * len(data) // 3])
        time.sleep(1.0)          # batches meet a dead server: spooled
        clickhouse.start()
        feed(proc.stdin, data[2 * len(data) // 3:])
        proc.stdin.close()
        assert proc.wait(120) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    sink = summary_sink(out)
    assert sink["spooled"] == sink["dropped"] == 0 and sink["delivered"] == sink["accepted"]
    assert mismatches(clickhouse, out, sensor) == {}
    clickhouse.query("OPTIMIZE TABLE otsensor.modbus FINAL")
    assert mismatches(clickhouse, out, sensor, final=False) == {}


def test_run_reports_live_counts_and_a_sighup_with_a_new_clickhouse_section_replaces_the_sink(clickhouse, tmp_path):
    """stats.json shows rows delivered while the sensor runs; an edited [clickhouse] section takes effect on
    SIGHUP; across the replacement nothing is lost or doubled."""
    data = (PCAPS / "scenarios" / "benign_learn.pcap").read_bytes()
    out, cfg = tmp_path / "out", config(tmp_path, clickhouse, "reload-1")
    err_path = tmp_path / "stderr"
    with open(err_path, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "otsensor.sensor.cli", "run", "-r", "-", "-o", str(out), "-q",
                                 "--stats-interval", "0.5", "--config", str(cfg)], cwd=REPO, stdin=subprocess.PIPE,
                                stderr=err)
    try:
        feed(proc.stdin, data[:len(data) // 2])
        wait_for(lambda: live_delivered(out) > 0)
        config(tmp_path, clickhouse, "reload-1", batch_rows=7)          # the same file, one setting changed
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: b"sinks replaced" in err_path.read_bytes())
        feed(proc.stdin, data[len(data) // 2:])
        proc.stdin.close()
        assert proc.wait(120) == 0, err_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    summary = json.loads((out / "summary.json").read_text())
    before, after = summary["sinks_replaced"][0], summary["sinks"][0]
    assert before["delivered"] == before["accepted"] > 0 and after["delivered"] == after["accepted"] > 0
    assert mismatches(clickhouse, out, "reload-1") == {}


def live_delivered(out: Path) -> int:
    try:
        stats = json.loads((out / "stats.json").read_text())
    except (OSError, ValueError):
        return 0
    return sum(sink["delivered"] for sink in stats.get("sinks", ()))


def wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_rows_wait_in_the_spool_while_the_server_is_away_and_the_next_run_sends_them(clickhouse, tmp_path):
    out = tmp_path / "out"
    away = config(tmp_path, clickhouse, "away-1", url="clickhouse://127.0.0.1:9/otsensor", http_port=9,
                  drain_timeout=0.5, name="plant")   # the discard port: nothing listens
    first = otsensor("analyze", CAPTURES[0], "-o", out, "-q", "--config", away)
    assert first.returncode == 0, first.stderr
    spooled = summary_sink(out)
    assert spooled["delivered"] == 0 and spooled["spooled"] == spooled["accepted"] > 0
    assert any("not delivered, kept in" in line for line in error_lines(first))
    # the same spool (the sink's name names it), the server back
    second_out = tmp_path / "out2"
    second = otsensor("analyze", CAPTURES[0], "-o", second_out, "-q", "--spool-dir", out / "spool",
                      "--config", config(tmp_path, clickhouse, "away-1", drain_timeout=30, name="plant"))
    assert second.returncode == 0, second.stderr
    report = summary_sink(second_out)
    assert report["from_previous_run"] == spooled["spooled"]
    assert report["spooled"] == 0
    counts = clickhouse.query("SELECT count() FROM otsensor.modbus FINAL WHERE sensor_id = 'away-1'")[0][0]
    assert counts == 2 * spooled["tables"]["modbus"]["sent"]


def test_a_password_from_a_file_and_a_wrong_one_as_one_error_line(clickhouse, tmp_path):
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")
    url = clickhouse.url.replace("clickhouse://", "clickhouse://sensor@")
    good = config(tmp_path, clickhouse, "auth-1", url=url, password_file=str(secret))
    proc = otsensor("analyze", CAPTURES[0], "-o", tmp_path / "ok", "-q", "--config", good)
    assert proc.returncode == 0, proc.stderr
    secret.write_text("wrong\n")
    proc = otsensor("analyze", CAPTURES[0], "-o", tmp_path / "bad", "-q", "--config", good)
    assert proc.returncode == 2
    lines = error_lines(proc)
    assert len(lines) == 1 and lines[0].startswith("otsensor: error: clickhouse sink (clickhouse://sensor@"), lines
    assert PASSWORD not in proc.stderr


def test_the_sink_speaks_https_and_checks_the_servers_certificate(clickhouse_tls, certs, tmp_path):
    """clickhouses://: the set-up and the rows over HTTPS, the certificate checked against ``ca_file``; a CA
    that did not sign it is one error line at start, not a server away."""
    url = f"clickhouses://127.0.0.1:{clickhouse_tls.port}/otsensor"
    good = config(tmp_path, clickhouse_tls, "tls-1", url=url, http_port=clickhouse_tls.https_port, ca_file=certs.ca)
    proc = otsensor("analyze", CAPTURES[0], "-o", tmp_path / "out", "-q", "--config", good)
    assert proc.returncode == 0, proc.stderr
    assert mismatches(clickhouse_tls, tmp_path / "out", "tls-1") == {}
    sink = summary_sink(tmp_path / "out")
    assert sink["delivered"] == sink["accepted"] > 0
    wrong = config(tmp_path, clickhouse_tls, "tls-2", url=url, http_port=clickhouse_tls.https_port,
                   ca_file=certs.other_ca)
    proc = otsensor("analyze", CAPTURES[0], "-o", tmp_path / "out2", "-q", "--config", wrong)
    assert proc.returncode == 2
    lines = error_lines(proc)
    assert len(lines) == 1 and "certificate verify failed" in lines[0].lower(), lines


def test_a_wrong_http_port_is_one_error_line(clickhouse, tmp_path):
    """The native port answers, the rows' port does not: a configuration error, not a server away."""
    path = config(tmp_path, clickhouse, "port-1")
    closed = free_port()   # nothing listens there
    path.write_text(path.read_text().replace(f"http_port = {clickhouse.http_port}", f"http_port = {closed}"))
    proc = otsensor("analyze", CAPTURES[0], "-o", tmp_path / "out", "-q", "--config", path)
    assert proc.returncode == 2
    lines = error_lines(proc)
    assert len(lines) == 1 and f"HTTP port {closed}" in lines[0] and "http_port" in lines[0], lines


@pytest.mark.parametrize("url, why", [
    ("http://127.0.0.1:8123/otsensor", "unsupported URL"),
    ("clickhouse://127.0.0.1:9000/", "bad URL"),
    ("clickhouse://127.0.0.1:x/otsensor", "bad port"),
])
def test_a_bad_url_is_one_error_line(tmp_path, url, why):
    proc = otsensor("analyze", CAPTURES[0], "-o", tmp_path / "out", "-q", "--clickhouse", url)
    assert proc.returncode == 2
    lines = error_lines(proc)
    assert len(lines) == 1 and why in lines[0], lines


def test_a_mistake_in_the_clickhouse_section_names_it(tmp_path):
    path = tmp_path / "sensor.toml"
    path.write_text('[clickhouse]\nurl = "clickhouse://127.0.0.1/otsensor"\nbatch_row = 10\n')
    proc = otsensor("analyze", CAPTURES[0], "-o", tmp_path / "out", "--config", path)
    assert proc.returncode == 2
    assert error_lines(proc) == [(f"otsensor: error: {path}: [clickhouse] batch_row: unknown key; "
                                  "did you mean batch_rows?")]


def test_without_the_driver_the_error_says_how_to_install_it(tmp_path):
    code = ("import sys; sys.modules['clickhouse_driver'] = None; from otsensor.sensor.cli import main; "
            f"sys.exit(main(['analyze', {str(CAPTURES[0])!r}, '-o', {str(tmp_path / 'out')!r}, '-q', "
            "'--clickhouse', 'clickhouse://127.0.0.1:9/otsensor']))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [("otsensor: error: clickhouse sink (clickhouse://default@127.0.0.1:9/otsensor): "
                                         "the ClickHouse output needs clickhouse-driver: "
                                         "pip install 'otsensor[clickhouse]'")]

