"""`otsensor analyze` with syslog sinks: real alerts from a capture reach a real rsyslog; errors are one line."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sensor.alert_checks import alert_id_of
from tests.sensor.siem_parsers import parse_rfc5424

REPO = Path(__file__).resolve().parents[2]
CAPTURE = str(REPO / "pcaps" / "s7_engineering.pcap")


def alerts_written(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "alerts.jsonl").read_text().splitlines()]


def run(args: list[str]) -> tuple[int, str, str]:
    """The real command, in its own process (a sensor restart is a new process)."""
    proc = subprocess.run([sys.executable, "-m", "otsensor.sensor.cli", "analyze", CAPTURE, *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def write_config(path: Path, body: str) -> str:
    path.write_text(body, encoding="utf-8")
    return str(path)


def test_alerts_of_a_capture_reach_rsyslog_over_tcp_and_tls(receiver, certs, tmp_path) -> None:
    conf = write_config(tmp_path / "sensor.toml", f'''
[[sinks.syslog]]
url = "{receiver.url('tls')}"
format = "json"
ca_file = "{certs.ca}"
app_name = "cli-tls"
''')
    out = tmp_path / "out"
    code, stdout, err = run(["-o", str(out), "--config", conf, "--syslog", receiver.url("tcp"),
                             "--syslog-format", "cef", "--syslog-min-severity", "info"])
    assert code == 0, err
    alerts = alerts_written(out)
    assert alerts, "the capture should raise alerts (PLC stop/start, program download...)"
    summary = json.loads((out / "summary.json").read_text())
    by_url = {r["url"]: r for r in summary["sinks"]}
    for url in (receiver.url("tls"), receiver.url("tcp")):
        r = by_url[url]
        assert (r["accepted"], r["delivered"], r["spooled"], r["dropped"]) == (len(alerts), len(alerts), 0, 0), r
    assert "Sinks" in stdout
    tls = receiver.wait_for("tls", "cli-tls", len(alerts))
    assert [alert_id_of("json", parse_rfc5424(m["raw"])) for m in tls] == [a["id"] for a in alerts]
    tcp = receiver.wait_for("tcp", "otsensor", len(alerts))
    assert {alert_id_of("cef", parse_rfc5424(m["raw"])) for m in tcp} >= {a["id"] for a in alerts}


def test_min_severity_filters(receiver, tmp_path) -> None:
    out = tmp_path / "out"
    code, _, err = run(["-o", str(out), "-q", "--syslog", receiver.url("udp"), "--syslog-min-severity", "high"])
    assert code == 0, err
    alerts = alerts_written(out)
    wanted = [a for a in alerts if a["severity"] in ("high", "critical")]
    (report,) = json.loads((out / "summary.json").read_text())["sinks"]
    assert report["accepted"] == len(wanted) and report["filtered"] == len(alerts) - len(wanted)


def test_unreachable_receiver_spools_and_next_run_delivers(own_receiver, tmp_path) -> None:
    spool = tmp_path / "spool"
    conf = write_config(tmp_path / "sensor.toml", f'''
[sinks]
spool_dir = "{spool}"
[[sinks.syslog]]
url = "{own_receiver.url('tcp')}"
format = "leef"
app_name = "cli-restart"
drain_timeout = 0.3
backoff_initial = 0.05
''')
    own_receiver.stop()
    code, _, err = run(["-o", str(tmp_path / "a"), "-q", "--config", conf])
    alerts = alerts_written(tmp_path / "a")
    (first,) = json.loads((tmp_path / "a" / "summary.json").read_text())["sinks"]
    assert code == 0 and (first["delivered"], first["spooled"]) == (0, len(alerts)), first
    assert "not delivered, kept in" in err and first["name"] in err

    own_receiver.start()
    code, _, err = run(["-o", str(tmp_path / "b"), "-q", "--config", conf])
    (second,) = json.loads((tmp_path / "b" / "summary.json").read_text())["sinks"]
    assert code == 0 and second["from_previous_run"] == len(alerts), second
    assert (second["delivered"], second["spooled"]) == (2 * len(alerts), 0), second
    got = own_receiver.wait_for("tcp", "cli-restart", 2 * len(alerts))
    assert len(got) == 2 * len(alerts)


def test_spool_bound_drops_are_counted_and_recorded(tmp_path) -> None:
    conf = write_config(tmp_path / "sensor.toml", '''
[[sinks.syslog]]
url = "tcp://127.0.0.1:9"
name = "tiny"
spool_max_bytes = 1500
drain_timeout = 0.1
''')
    out = tmp_path / "out"
    code, _, err = run(["-o", str(out), "-q", "--config", conf])
    (report,) = json.loads((out / "summary.json").read_text())["sinks"]
    assert code == 0 and report["dropped"] > 0 and report["accepted"] + report["dropped"] == len(alerts_written(out))
    (row,) = [json.loads(line) for line in (out / "sink_drops.jsonl").read_text().splitlines()]
    assert row["sink"] == "tiny" and row["dropped"] == report["dropped"]
    assert "'tiny'" in err and "dropped" in err


def test_bad_url_is_one_error_line_and_exit_2(tmp_path) -> None:
    code, _, err = run(["-o", str(tmp_path / "out"), "--syslog", "https://siem:443"])
    assert code == 2 and err.count("\n") == 1 and "sink 'syslog-siem-443-cef'" in err and "udp://" in err


@pytest.mark.parametrize("name, keys, words", [
    ("arcsight", 'url = "tls://127.0.0.1:6514"\ncert_file = "{tmp}/nope.pem"', "nope.pem"),   # unreadable cert
    ("elastic", 'url = "{tls_url}"\nca_file = "{other_ca}"', "handshake"),                  # wrong CA
])
def test_sink_setup_errors_are_one_line_and_exit_2(receiver, certs, tmp_path, name, keys, words) -> None:
    body = keys.format(tmp=tmp_path, tls_url=receiver.url("tls"), other_ca=certs.other_ca)
    conf = write_config(tmp_path / "sensor.toml", f'[[sinks.syslog]]\nname = "{name}"\n{body}\n')
    code, _, err = run(["-o", str(tmp_path / "out"), "--config", conf])
    assert code == 2 and err.count("\n") == 1 and f"sink '{name}'" in err and words in err, err
