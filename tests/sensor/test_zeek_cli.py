"""--zeek-logs on the command line: both commands, both formats, the [zeek] settings, and their errors."""
from __future__ import annotations

import json
import subprocess

from tests.cli import PCAPS, otsensor
from tests.sensor.netlab import sensor_command

REFERENCE = PCAPS.parent / "tests" / "zeek_reference"
MODBUS = REFERENCE / "icsnpp-modbus" / "traces" / "modbus_example.pcap"


def _rows(path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text().splitlines() if not line.startswith("#")]


def _fields(path) -> list[str]:
    return next(line for line in path.read_text().splitlines() if line.startswith("#fields")).split("\t")[1:]


def test_analyze_writes_zeek_json_logs_and_counts_them(tmp_path):
    proc = otsensor("analyze", MODBUS, "-o", tmp_path, "-q", "--zeek-logs=json")
    assert proc.returncode == 0, proc.stderr
    zeek = tmp_path / "zeek"
    conn = [json.loads(line) for line in (zeek / "conn.log").read_text().splitlines()]
    assert [(c["id.orig_p"], c["conn_state"], c["history"], c["service"]) for c in conn] == \
        [(47785, "SF", "ShADadFf", "modbus"), (37699, "OTH", "Dd", "modbus")]
    detailed = [json.loads(line) for line in (zeek / "modbus_detailed.log").read_text().splitlines()]
    assert detailed[0]["response_data"] == "0,0,0,0,0,0,0" and "request_values" not in detailed[0]
    summary = json.loads((tmp_path / "summary.json").read_text())
    written = sum(len(p.read_text().splitlines()) for p in zeek.glob("*.log"))
    assert summary["zeek_logs"]["rows"] == written
    assert (summary["zeek_logs"]["late_events"], summary["zeek_logs"]["script_errors"]) == (0, 0)


def test_the_zeek_release_decides_conn_log_columns(tmp_path):
    config = tmp_path / "sensor.toml"
    for version, has_ip_proto, local in (("7.0", False, "T"), ("7.1", True, "T"), ("5.2", False, "-")):
        config.write_text(f'[zeek]\nversion = "{version}"\n')
        out = tmp_path / version
        proc = otsensor("analyze", MODBUS, "-o", out, "-q", "--zeek-logs", "--config", config)
        assert proc.returncode == 0, proc.stderr
        fields = _fields(out / "zeek" / "conn.log")
        assert ("ip_proto" in fields) is has_ip_proto
        assert _rows(out / "zeek" / "conn.log")[0][fields.index("local_orig")] == local


def test_local_nets_and_logs_come_from_the_configuration(tmp_path):
    config = tmp_path / "sensor.toml"
    config.write_text('[zeek]\nlogs = "ascii"\nlocal_nets = ["3.15.227.0/24"]\nprivate_address_space_is_local = false\n')
    proc = otsensor("analyze", MODBUS, "-o", tmp_path / "out", "-q", "--config", config)
    assert proc.returncode == 0, proc.stderr
    conn = tmp_path / "out" / "zeek" / "conn.log"
    fields = _fields(conn)
    locality = [(r[fields.index("local_orig")], r[fields.index("local_resp")]) for r in _rows(conn)]
    assert locality == [("F", "F"), ("F", "T")]


def test_a_bad_zeek_setting_is_one_error_line(tmp_path):
    config = tmp_path / "sensor.toml"
    config.write_text('[zeek]\nversion = "seven"\n')
    proc = otsensor("analyze", MODBUS, "-o", tmp_path / "out", "-q", "--zeek-logs", "--config", config)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [(f"otsensor: error: {config}: [zeek] version: expected a Zeek release like "
                                         "7.0 (5.0 or later), not 'seven'")]
    assert not (tmp_path / "out").exists()


def test_a_run_without_zeek_logs_removes_the_previous_runs(tmp_path):
    assert otsensor("analyze", MODBUS, "-o", tmp_path, "-q", "--zeek-logs").returncode == 0
    assert (tmp_path / "zeek" / "modbus.log").exists()
    assert otsensor("analyze", MODBUS, "-o", tmp_path, "-q").returncode == 0
    assert not (tmp_path / "zeek").exists()


def test_run_writes_the_same_zeek_logs_as_analyze(tmp_path):
    done = subprocess.run(sensor_command("-r", "-", "-o", str(tmp_path / "run"), "-q", "--zeek-logs"),
                          input=MODBUS.read_bytes(), capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert otsensor("analyze", MODBUS, "-o", tmp_path / "analyze", "-q", "--zeek-logs").returncode == 0
    for log in sorted((tmp_path / "analyze" / "zeek").glob("*.log")):
        assert _rows(tmp_path / "run" / "zeek" / log.name) == _rows(log), log.name
