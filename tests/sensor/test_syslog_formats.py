"""Payload formats and the syslog message layout, read back with parsers written from the specifications."""
from __future__ import annotations

import json

import pytest

from otsensor.baselines.alerts import SEVERITIES
from otsensor.sensor.config import ConfigError, SinkConfig, load_config
from otsensor.sensor.sinks import formats
from otsensor.sensor.sinks.syslog import SinkError, SyslogSink, escape_sd_value, parse_url
from tests.sensor.alert_checks import CHECKS, check_cef, check_plain
from tests.sensor.alert_samples import TRICKY, make_alert, tricky_alerts
from tests.sensor.siem_parsers import parse_cef, parse_leef, parse_rfc5424


@pytest.mark.parametrize("fmt", sorted(CHECKS))
@pytest.mark.parametrize("index", range(len(TRICKY)))
def test_format_round_trip(fmt: str, index: int) -> None:
    row = tricky_alerts()[index].to_dict()
    CHECKS[fmt](formats.FORMATS[fmt]("alerts", row, "1.0"), row)


@pytest.mark.parametrize("value, escaped", [
    ("a|b", "a|b"), ("a=b", "a\\=b"), ("a\\b", "a\\\\b"), ("a\nb", "a\\nb"), ("a\rb", "a\\rb"),
    ("a\r\nb", "a\\r\\nb"), ("é", "é"),
])
def test_cef_extension_escaping_table(value: str, escaped: str) -> None:
    assert formats.cef_value_escape(value) == escaped


@pytest.mark.parametrize("value, escaped", [("a|b", "a\\|b"), ("a\\b", "a\\\\b"), ("a=b", "a=b"), ("a\nb", "a b")])
def test_cef_header_escaping_table(value: str, escaped: str) -> None:
    assert formats.cef_header_escape(value) == escaped


def test_protocol_record_formats_carry_the_connection() -> None:
    row = {"ts": 1_764_000_000.5, "uid": "Cabc", "id.orig_h": "10.0.0.1", "id.orig_p": 5020,
           "id.resp_h": "10.0.0.2", "id.resp_p": 502, "func": "write_single_register", "note": "a=b|c"}
    cef = parse_cef(formats.cef("modbus", row))
    assert cef["signature"] == "modbus" and cef["severity"] == "1" and cef["ext"]["src"] == "10.0.0.1"
    assert json.loads(cef["ext"]["msg"]) == {"uid": "Cabc", "func": "write_single_register", "note": "a=b|c"}
    leef = parse_leef(formats.leef("modbus", row))
    assert leef["attrs"]["dstPort"] == "502" and json.loads(leef["attrs"]["details"])["note"] == "a=b|c"
    doc = json.loads(formats.ecs_json("modbus", row))
    assert doc["event"]["kind"] == "event" and doc["otsensor"]["modbus"]["func"] == "write_single_register"
    assert doc["destination"] == {"ip": "10.0.0.2", "port": 502}


def sink(tmp_path, **kw) -> SyslogSink:
    return SyslogSink(SinkConfig(url=kw.pop("url", "udp://127.0.0.1:9"), **kw), str(tmp_path))


@pytest.mark.parametrize("severity, syslog_severity", [("critical", 2), ("high", 3), ("medium", 4), ("low", 5),
                                                      ("info", 6)])
def test_rfc5424_header_and_severity(tmp_path, severity: str, syslog_severity: int) -> None:
    s = sink(tmp_path, format="cef", facility="local4", hostname="sensor-1", app_name="ot sensor")
    row = make_alert(1, severity=severity).to_dict()
    msg = parse_rfc5424(s.message("alerts", row).decode("utf-8"))
    assert msg["pri"] == 20 * 8 + syslog_severity
    assert (msg["hostname"], msg["app"], msg["msgid"]) == ("sensor-1", "ot_sensor", "alerts")
    assert not msg["bom"] and msg["sd"] == {}
    check_cef(msg["msg"], row)


@pytest.mark.parametrize("fmt, bom, expected", [
    ("cef", None, False), ("leef", None, False), ("json", None, False), ("rfc5424", None, True),
    ("cef", True, True), ("rfc5424", False, False),
])
def test_the_bom_marks_only_the_plain_text_format_unless_configured(tmp_path, fmt, bom, expected) -> None:
    """Receivers match CEF and LEEF on ^CEF: / ^LEEF:, and JSON parsers reject a leading BOM."""
    kw = {} if bom is None else {"bom": bom}
    raw = sink(tmp_path, format=fmt, **kw).message("alerts", make_alert(1).to_dict())
    msg = parse_rfc5424(raw.decode("utf-8"))
    assert msg["bom"] is expected
    assert msg["msg"].startswith({"cef": "CEF:0|", "leef": "LEEF:2.0|", "json": "{", "rfc5424": "PLC"}[fmt])


def test_rfc5424_format_puts_fields_in_structured_data(tmp_path) -> None:
    sd = {"site@32473": {"plant": 'north "A" ]\\ é'}}
    s = sink(tmp_path, format="rfc5424", structured_data=sd)
    for alert in tricky_alerts():
        row = alert.to_dict()
        msg = parse_rfc5424(s.message("alerts", row).decode("utf-8"))
        assert msg["sd"]["site@32473"] == {"plant": 'north "A" ]\\ é'}
        check_plain(msg, row)


def test_sd_escaping_rfc5424_6_3_3() -> None:
    assert escape_sd_value('a"b\\c]d') == 'a\\"b\\\\c\\]d'


def test_rfc3164_header(tmp_path) -> None:
    s = sink(tmp_path, format="cef", header="rfc3164", hostname="h1", facility=4)
    data = s.message("alerts", make_alert(2, message="two\nlines", severity="critical").to_dict())
    text = data.decode("utf-8")
    assert text.startswith("<34>") and " h1 otsensor[" in text and "\n" not in text
    assert text[4:7] in ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def test_udp_truncation_is_counted_and_keeps_utf8_valid(tmp_path) -> None:
    s = sink(tmp_path, format="json", max_message_size=300)
    data = s.message("alerts", make_alert(1, message="é" * 500).to_dict())
    assert len(data) <= 300 and s.counts["truncated"] == 1
    data.decode("utf-8")


def test_severity_filter_and_records_flag(tmp_path) -> None:
    s = sink(tmp_path, min_severity="high", records=False)
    assert [sev for sev in SEVERITIES if s.accepts("alerts", {"severity": sev})] == ["high", "critical"]
    assert not s.accepts("modbus", {})
    assert sink(tmp_path, url="udp://127.0.0.1:10", records=True).accepts("modbus", {})


@pytest.mark.parametrize("url", ["http://127.0.0.1:514", "tcp://", "tcp://127.0.0.1:99999", "127.0.0.1:514",
                                 "tls://host.invalid.:6514", "udp://127.0.0.1:514/path"])
def test_bad_url_is_one_clear_error_naming_the_sink(tmp_path, url: str) -> None:
    with pytest.raises(SinkError) as err:
        SyslogSink(SinkConfig(url=url, name="siem-a"), str(tmp_path))
    assert "sink 'siem-a'" in str(err.value) and "\n" not in str(err.value)


def test_parse_url_defaults() -> None:
    assert parse_url("tls://[::1]") == ("tls", "::1", 6514)
    assert parse_url("UDP://example:1514") == ("udp", "example", 1514)


def test_unreadable_certificate_names_the_sink(tmp_path) -> None:
    with pytest.raises(SinkError) as err:
        SyslogSink(SinkConfig(url="tls://127.0.0.1:6514", name="qradar", ca_file=str(tmp_path / "missing.pem")),
                   str(tmp_path))
    assert "sink 'qradar'" in str(err.value) and "missing.pem" in str(err.value)


def test_config_file(tmp_path) -> None:
    path = tmp_path / "sensor.toml"
    path.write_text('[detection]\nscan_hosts = 5\n[sinks]\nspool_dir = "/tmp/sp"\n'
                    '[[sinks.syslog]]\nurl = "tcp://127.0.0.1:1514"\nformat = "leef"\nmin_severity = "medium"\n'
                    'records = true\nstructured_data = { "site@32473" = { plant = "n" } }\n'
                    '[[sinks.syslog]]\nurl = "udp://127.0.0.1:514"\n', encoding="utf-8")
    cfg = load_config(str(path))
    assert cfg.spool_dir == "/tmp/sp" and len(cfg.sinks) == 2
    assert (cfg.sinks[0].format, cfg.sinks[0].min_severity, cfg.sinks[0].records) == ("leef", "medium", True)
    assert cfg.sinks[1].format == "cef"


@pytest.mark.parametrize("body, words", [
    ('[[sinks.syslog]]\nformat = "cef"\n', "url: required"),
    ('[[sinks.syslog]]\nurl = "udp://h:1"\nformat = "xml"\n', "format: expected one of"),
    ('[[sinks.syslog]]\nurl = "udp://h:1"\nmin_severity = "urgent"\n', "min_severity"),
    ('[[sinks.syslog]]\nurl = "udp://h:1"\nrecords = "yes"\n', "records: expected true or false"),
    ('[[sinks.syslog]]\nurl = "udp://h:1"\ncolour = 1\n', "colour: unknown key"),
    ('[[sinks.syslog]]\nurl = "udp://h:1"\nfacility = "local9"\n', "facility"),
    ('[[sinks.syslog]]\nurl = "udp://h:1"\nstructured_data = { "no id" = { a = "b" } }\n', "SD-ID"),
    ("[[sinks.syslog]\n", "not valid TOML"),
])
def test_config_errors_say_where(tmp_path, body: str, words: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(str(path))
    assert words in str(err.value) and str(path) in str(err.value)
