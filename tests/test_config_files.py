"""Every section of every configuration file is checked: a typo is one error line naming the file, the
section and the key, with the name that was probably meant (issue 10 item 5: ``engineering_station = ...``
and a misspelt ``[detecton]`` table were silently ignored).

The sensor configuration (``--config``: [sinks], [[sinks.syslog]], [detection], [[detection.allow]],
[[detection.maintenance]]) and the zones file (``--zones``: [[zones]], [[conduits]]) are read through the
real command line; nothing is written when one is wrong.
"""
from __future__ import annotations

from dataclasses import fields

import pytest

from otsensor.baselines.policy import DETECTION, DetectionConfig
from otsensor.sensor.cli import main
from otsensor.sensor.config import SYSLOG, SinkConfig
from tests.cli import PCAPS

SINK = '[[sinks.syslog]]\nurl = "udp://127.0.0.1:9"\n'
ALLOW = '[[detection.allow]]\nrule = "plc_stop"\n'
MAINTENANCE = '[[detection.maintenance]]\nstart = "2026-11-26T08:00:00Z"\nend = "2026-11-26T12:00:00Z"\n'
ZONE = '[[zones]]\nname = "cell"\ncidrs = ["10.10.1.0/24"]\nlevel = 1\nkind = "ot"\n'
CORP = '[[zones]]\nname = "corp"\ncidrs = ["10.20.0.0/16"]\nlevel = 4\nkind = "it"\n'
CONDUIT = '[[conduits]]\nfrom = "corp"\nto = "cell"\n'

# (file body, the error after "FILE: ") for each section: an unknown key, a misspelt section, a wrong type,
# and values the section cannot use
SENSOR_CASES = [
    # the top level
    ('[detecton]\nscan_hosts = 5\n', "[detecton]: unknown section; did you mean [detection]?"),
    ('[sink]\nspool_dir = "/tmp"\n', "[sink]: unknown section; did you mean [sinks]?"),
    ('spool_dir = "/tmp"\n', "spool_dir: unknown key"),
    ('detection = 5\n', "[detection]: expected a table, written [detection]"),
    # [sinks]
    ('[sinks]\nspool_dri = "/tmp"\n', "[sinks] spool_dri: unknown key; did you mean spool_dir?"),
    ('[[sinks.syslgo]]\nurl = "udp://h:1"\n', "[[sinks.syslgo]]: unknown section; did you mean [[sinks.syslog]]?"),
    ('[sinks]\nspool_dir = 5\n', "[sinks] spool_dir: expected a string, not the number 5"),
    ('[sinks]\nsyslog = "udp://h:1"\n', "[[sinks.syslog]]: expected an array of tables, written [[sinks.syslog]]"),
    # [[sinks.syslog]]
    (SINK + 'fromat = "cef"\n', "[[sinks.syslog]] #1 fromat: unknown key; did you mean format?"),
    (SINK + SINK + 'min_severty = "high"\n', "[[sinks.syslog]] #2 min_severty: unknown key; did you mean min_severity?"),
    (SINK + 'records = "yes"\n', "[[sinks.syslog]] #1 records: expected true or false, not the string 'yes'"),
    (SINK + 'format = "cfe"\n',
     "[[sinks.syslog]] #1 format: expected one of cef, leef, json, rfc5424, not 'cfe'; did you mean cef?"),
    (SINK + 'spool_max_bytes = 0\n', "[[sinks.syslog]] #1 spool_max_bytes: expected at least 1, not 0"),
    (SINK + 'facility = "local9"\n', "[[sinks.syslog]] #1 facility: expected a name like local4 or a number 0-23"),
    ('[[sinks.syslog]]\nformat = "cef"\n', "[[sinks.syslog]] #1 url: required (udp://, tcp:// or tls://host:port)"),
    # [detection]
    ('[detection]\nengineering_station = ["10.0.0.1"]\n',
     "[detection] engineering_station: unknown key; did you mean engineering_stations?"),
    ('[detection]\nscan_hosts = "10"\n', "[detection] scan_hosts: expected a whole number, not the string '10'"),
    ('[detection]\nselect_before_operate = 1\n', "[detection] select_before_operate: expected true or false"),
    ('[detection]\nengineering_stations = "10.0.0.1"\n',
     "[detection] engineering_stations: expected a list of strings, not the string '10.0.0.1'"),
    ('[detection]\nengineering_stations = ["10.0.0.300"]\n',
     "[detection] engineering_stations: expected IP addresses, not '10.0.0.300'"),
    ('[detection]\naggregation_window_s = -1\n', "[detection] aggregation_window_s: expected more than 0"),
    # [[detection.allow]]
    (ALLOW + 'host = ["10.0.0.1"]\n', "[[detection.allow]] #1 host: unknown key; did you mean hosts?"),
    ('[[detection.alow]]\nrule = "plc_stop"\n',
     "[[detection.alow]]: unknown section; did you mean [[detection.allow]]?"),
    (ALLOW + 'hosts = "10.0.0.1"\n', "[[detection.allow]] #1 hosts: expected a list of strings"),
    ('[[detection.allow]]\nrule = "plc_stopp"\n', "[[detection.allow]] #1 rule: unknown rule 'plc_stopp'; "
                                                  "did you mean plc_stop?"),
    # [[detection.maintenance]]
    (MAINTENANCE + 'rule = ["plc_stop"]\n', "[[detection.maintenance]] #1 rule: expected a string"),
    (MAINTENANCE + 'rulles = ["plc_stop"]\n', "[[detection.maintenance]] #1 rulles: unknown key; did you mean rules?"),
    ('[[detection.maintenace]]\nstart = 0\nend = 1\n',
     "[[detection.maintenace]]: unknown section; did you mean [[detection.maintenance]]?"),
    ('[[detection.maintenance]]\nstart = "2026-11-26T08:00:00Z"\n', "[[detection.maintenance]] #1 end: required"),
    ('[[detection.maintenance]]\nstart = "tomorrow"\nend = 1\n',
     "[[detection.maintenance]] #1 start: expected an ISO 8601 time (e.g. 2026-11-26T08:00:00Z), not 'tomorrow'"),
    ('[detection]\npacket_loss_fraction = 2\n', "[detection] packet_loss_fraction: expected a value from 0 to 1"),
    # [capture] and [run]: every option of `otsensor run`
    ('[captrue]\nbpf = "tcp"\n', "[captrue]: unknown section; did you mean [capture]?"),
    ('[capture]\ninterface = ["eth1"]\n', "[capture] interface: unknown key; did you mean interfaces?"),
    ('[capture]\ninterfaces = "eth1"\n', "[capture] interfaces: expected a list of strings, not the string 'eth1'"),
    ('[capture]\nring_blocks = 0\n', "[capture] ring_blocks: expected at least 1, not 0"),
    ('[capture]\nring_block_size = "1Q"\n',
     "[capture] ring_block_size: expected a size such as 1048576 or \"20G\", not '1Q'"),
    ('[run]\nmax_disc = "20G"\n', "[run] max_disc: unknown key; did you mean max_disk?"),
    ('[run]\nrotate_interval = "1 hour"\n',
     "[run] rotate_interval: expected a duration such as 60 or \"1h\", not '1 hour'"),
    ('[run]\nstats_interval = 0\n', "[run] stats_interval: expected a duration such as 60 or \"1h\", not 0"),
    ('[run]\nmetrics = "0.0.0.0:9108"\n', "[run] metrics: expected a loopback HOST:PORT, not '0.0.0.0:9108'"),
]

ZONES_CASES = [
    # the top level
    (ZONE.replace("[[zones]]", "[[zone]]"), "[[zone]]: unknown section; did you mean [[zones]]?"),
    (ZONE + CORP + CONDUIT.replace("[[conduits]]", "[[conduit]]"),
     "[[conduit]]: unknown section; did you mean [[conduits]]?"),
    ('zones = "cell"\n', "[[zones]]: expected an array of tables, written [[zones]]"),
    # [[zones]]
    (ZONE + 'cidr = ["10.0.0.0/8"]\n', "[[zones]] #1 cidr: unknown key; did you mean cidrs?"),
    (ZONE + CORP + 'levle = 4\n', "[[zones]] #2 levle: unknown key; did you mean level?"),
    ('[[zones]]\nname = "a"\nlevel = "1"\n', "[[zones]] #1 level: expected a number, not the string '1'"),
    ('[[zones]]\nname = "a"\nlevel = 9\n', "[[zones]] #1 level: expected a value from 0 to 5, not 9"),
    ('[[zones]]\nname = "a"\nkind = "plant"\n', "[[zones]] #1 kind: expected one of ot, dmz, it, external, "
                                                 "not 'plant'"),
    ('[[zones]]\nname = "a"\ncidrs = ["10.0.0.300/8"]\n', "[[zones]] #1 cidrs: expected CIDRs, not '10.0.0.300/8'"),
    ('[[zones]]\ncidrs = ["10.0.0.0/8"]\n', "[[zones]] #1 name: required"),
    # [[conduits]]
    (ZONE + CORP + CONDUIT + 'protocol = ["modbus"]\n', "[[conduits]] #1 protocol: unknown key; "
                                                        "did you mean protocols?"),
    (ZONE + CORP + CONDUIT + 'ports = [502, "102"]\n', "[[conduits]] #1 ports: expected a list of whole numbers"),
    (ZONE + CORP + CONDUIT + 'ports = [70000]\n', "[[conduits]] #1 ports: expected a value from 0 to 65535"),
    (ZONE + CORP + '[[conduits]]\nfrom = "corpp"\nto = "cell"\n',
     "[[conduits]] #1 from: unknown zone 'corpp'; did you mean corp?"),
]


def run_with(tmp_path, option: str, body: str, capsys) -> tuple[int, str, str]:
    path = tmp_path / ("zones.toml" if option == "--zones" else "sensor.toml")
    path.write_text(body, encoding="utf-8")
    out = tmp_path / "out"
    code = main(["analyze", str(PCAPS / "modbus_hmi.pcap"), "-o", str(out), "-q", option, str(path)])
    assert not out.exists(), "nothing is written when the configuration is wrong"
    return code, capsys.readouterr().err, str(path)


@pytest.mark.parametrize("body, error", SENSOR_CASES)
def test_a_sensor_configuration_mistake_is_one_line_naming_file_section_and_key(tmp_path, capsys, body, error):
    code, err, path = run_with(tmp_path, "--config", body, capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"otsensor: error: {path}: {error}"), err


@pytest.mark.parametrize("body, error", ZONES_CASES)
def test_a_zones_file_mistake_is_one_line_naming_file_section_and_key(tmp_path, capsys, body, error):
    code, err, path = run_with(tmp_path, "--zones", body, capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"otsensor: error: {path}: {error}"), err


def test_a_complete_configuration_is_accepted(tmp_path, capsys):
    sensor = (f'[sinks]\nspool_dir = "{tmp_path}/spool"\n' + SINK + 'format = "leef"\nbom = false\n'
              'structured_data = {{ "site@32473" = {{ plant = "north" }} }}\n'.replace("{{", "{").replace("}}", "}")
              + '[detection]\nengineering_stations = ["10.0.0.1", "::1"]\nselect_before_operate = true\n'
              'scan_hosts = 5\naggregation_window_s = 60\n' + ALLOW + 'hosts = ["10.0.0.1"]\n' + MAINTENANCE
              + 'rules = ["plc_stop", "plc_start"]\n')
    zones = ZONE + CORP + CONDUIT + 'protocols = ["modbus", "tcp/443"]\nports = [502]\nhosts = ["10.20.1.60"]\n'
    (tmp_path / "sensor.toml").write_text(sensor, encoding="utf-8")
    (tmp_path / "zones.toml").write_text(zones, encoding="utf-8")
    code = main(["analyze", str(PCAPS / "modbus_hmi.pcap"), "-o", str(tmp_path / "out"), "-q",
                 "--config", str(tmp_path / "sensor.toml"), "--zones", str(tmp_path / "zones.toml")])
    assert code == 0, capsys.readouterr().err


def test_every_setting_of_the_dataclasses_is_declared():
    """The declarations are what the loaders accept: a new field needs its line there, or no file can set it."""
    assert set(SYSLOG.keys) == {f.name for f in fields(SinkConfig)}
    assert set(DETECTION.keys) | {"allowances"} == {f.name for f in fields(DetectionConfig)}
