"""The console's parts on their own: following a changing directory, the alert index, the map layout, CSV.

Real files on disk (a directory the test rewrites as a live sensor would), real alerts from the scenario
captures where the content matters.
"""
from __future__ import annotations

import csv
import gzip
import io
import json
import os

import orjson
import pytest

from otsensor.baselines.alerts import Alert
from otsensor.baselines.rules.catalog import RULES
from otsensor.sensor.console.alert_index import AlertIndex, AlertQuery
from otsensor.sensor.console.files import JsonDocument, LogFollower
from otsensor.sensor.console.inventory import to_csv
from otsensor.sensor.console.layout import LEVEL_ORDER, Placement, crossing, estimate, layout
from otsensor.sensor.console.written import dnp3_points, modbus_points


def alert_line(i: int, rule: str = "plc_stop", src: str = "10.0.0.1", dst: str = "10.0.0.2",
               protocol: str = "s7comm") -> bytes:
    r = RULES[rule]
    a = Alert(rule=r.name, title=r.title, severity=r.severity, category=r.category, techniques=r.techniques,
              first_seen=1000.0 + i, last_seen=1000.0 + i, message=f"alert {i}", identifier=f"id{i}", src=src,
              dst=dst, protocol=protocol)
    return orjson.dumps(a.to_dict())


# -- following a directory ---------------------------------------------------------------------------------

def test_follower_returns_only_new_complete_lines(tmp_path):
    log = tmp_path / "alerts.jsonl"
    log.write_bytes(b'{"a": 1}\n{"a": 2}\n{"a": 3')          # the third line is still being written
    f = LogFollower(str(tmp_path), "alerts")
    first = f.poll()
    assert first.reset and first.lines == [b'{"a": 1}', b'{"a": 2}']
    assert f.poll().lines == []
    with open(log, "ab") as fh:
        fh.write(b'}\n{"a": 4}\n')
    second = f.poll()
    assert not second.reset and second.lines == [b'{"a": 3}', b'{"a": 4}']


def test_follower_starts_over_on_rotation_without_counting_a_line_twice(tmp_path):
    log = tmp_path / "alerts.jsonl"
    log.write_bytes(b'{"a": 1}\n{"a": 2}\n')
    f = LogFollower(str(tmp_path), "alerts")
    assert len(f.poll().lines) == 2
    # the sensor rotates: the hour's lines go into a compressed file, the plain file starts empty
    with gzip.open(tmp_path / "alerts.2026-11-26T10.jsonl.gz", "wb") as gz:
        gz.write(log.read_bytes())
    os.replace(tmp_path / "alerts.jsonl", tmp_path / "old")
    (tmp_path / "alerts.jsonl").write_bytes(b'{"a": 3}\n')
    poll = f.poll()
    assert poll.reset and poll.lines == [b'{"a": 1}', b'{"a": 2}', b'{"a": 3}']
    # another log's rotations are not this log's (s7comm is not s7comm_plus)
    with gzip.open(tmp_path / "alerts_extra.2026-11-26T10.jsonl.gz", "wb") as gz:
        gz.write(b'{"other": 1}\n')
    assert f.poll().lines == []


def test_follower_skips_a_compressed_file_until_it_is_whole(tmp_path):
    whole = gzip.compress(b'{"a": 1}\n{"a": 2}\n')
    (tmp_path / "alerts.2026-11-26T09.jsonl.gz").write_bytes(whole[:len(whole) // 2])
    f = LogFollower(str(tmp_path), "alerts")
    assert f.poll().lines == [] and f.unreadable == ["alerts.2026-11-26T09.jsonl.gz"]
    (tmp_path / "alerts.2026-11-26T09.jsonl.gz").write_bytes(whole)
    poll = f.poll()
    assert poll.reset and poll.lines == [b'{"a": 1}', b'{"a": 2}'] and f.unreadable == []


def test_follower_reads_a_truncated_or_replaced_plain_file_afresh(tmp_path):
    log = tmp_path / "conn.jsonl"
    log.write_bytes(b'{"a": 1}\n{"a": 2}\n')
    f = LogFollower(str(tmp_path), "conn")
    f.poll()
    log.write_bytes(b'{"b": 1}\n')          # shorter: a new file
    poll = f.poll()
    assert poll.reset and poll.lines == [b'{"b": 1}']


def test_follower_bounds_what_it_reads(tmp_path):
    (tmp_path / "modbus.jsonl").write_bytes(b"".join(b'{"n": %d}\n' % i for i in range(1000)))
    poll = LogFollower(str(tmp_path), "modbus", max_bytes=100).poll()
    assert 5 <= len(poll.lines) <= 11 and poll.lines[-1] == b'{"n": 999}'
    assert all(json.loads(line) for line in poll.lines)      # no line cut in half


def test_document_keeps_its_last_good_version_over_a_half_written_file(tmp_path):
    path = tmp_path / "assets.json"
    path.write_text('{"assets": [{"ip": "10.0.0.1"}]}')
    doc = JsonDocument(str(path), None)
    assert doc.get() == {"assets": [{"ip": "10.0.0.1"}]}
    path.write_text('{"assets": [{"ip": "10.0.0.1"}, {"ip": "10.0')
    assert doc.get() == {"assets": [{"ip": "10.0.0.1"}]} and "assets.json" in doc.error
    path.write_text('{"assets": []}')
    assert doc.get() == {"assets": []} and doc.error is None
    path.unlink()
    assert doc.get() is None


# -- the alert index -----------------------------------------------------------------------------------

def test_alert_index_pages_filters_and_sorts():
    index = AlertIndex()
    index.add_lines([alert_line(i, rule="plc_stop" if i % 3 else "new_asset", src=f"10.0.0.{i % 5}")
                     for i in range(250)])
    index.add_lines([b"not json", b'{"no": "rule"}'])
    assert index.bad_lines == 2
    seen = []
    for offset in range(0, 250, 100):
        page = index.query(AlertQuery(offset=offset, limit=100))
        assert page["total"] == 250
        seen += [a["id"] for a in page["alerts"]]
    assert len(set(seen)) == 250
    assert [a["ts"] for a in index.query(AlertQuery(limit=3))["alerts"]] == [1249.0, 1248.0, 1247.0]
    stops = index.query(AlertQuery(rule="plc_stop", limit=500))
    assert stops["total"] == sum(1 for i in range(250) if i % 3)
    assert {a["rule"] for a in stops["alerts"]} == {"plc_stop"}
    critical = index.query(AlertQuery(severity="critical", limit=500))
    assert critical["total"] == stops["total"]                    # plc_stop is critical, new_asset medium
    host = index.query(AlertQuery(host="10.0.0.3", limit=500))
    assert host["total"] == 50 and all("10.0.0.3" in (a["src"], a["dst"]) for a in host["alerts"])
    assert index.query(AlertQuery(technique="T0858", limit=1))["total"] == stops["total"]
    text = index.query(AlertQuery(text="alert 17", limit=50))
    assert sorted(a["message"] for a in text["alerts"]) == ["alert 17"] + [f"alert 17{d}" for d in range(10)]
    by_severity = index.query(AlertQuery(sort="severity", limit=1))["alerts"][0]
    assert by_severity["severity"] == "critical"


def test_alert_index_names_techniques_and_tactics_from_the_shipped_tables():
    index = AlertIndex()
    index.add_lines([alert_line(1)])
    techniques = index.query(AlertQuery())["alerts"][0]["techniques"]
    t0858 = next(t for t in techniques if t["id"] == "T0858")
    assert t0858["name"] == "Change Operating Mode"
    assert set(t0858["tactics"]) == {"Execution", "Evasion"}
    assert t0858["url"] == "https://attack.mitre.org/techniques/T0858"
    facets = index.facets()
    assert facets["rule"] == {"plc_stop": 1}
    assert {t["name"] for t in facets["tactic"]} >= {"Execution", "Evasion"}


def test_alerts_arriving_later_are_placed_in_every_sorted_order():
    index = AlertIndex()
    index.add_lines([alert_line(i) for i in range(0, 100, 2)])
    for sort in ("ts", "severity", "count"):          # build the cached orders
        index.query(AlertQuery(sort=sort))
    index.add_lines([alert_line(i, rule="new_asset") for i in range(1, 100, 2)])
    assert [a["ts"] for a in index.query(AlertQuery(limit=500))["alerts"]] == [1000.0 + i for i in range(99, -1, -1)]
    by_severity = index.query(AlertQuery(sort="severity", descending=False, limit=500))["alerts"]
    assert [a["rule"] for a in by_severity[:50]] == ["new_asset"] * 50
    assert [a["ts"] for a in by_severity[:3]] == [1001.0, 1003.0, 1005.0]


def test_a_redelivered_alert_replaces_its_earlier_line():
    index = AlertIndex()
    line = alert_line(1)
    later = json.loads(line)
    later["count"] = 7
    index.add_lines([line, alert_line(2), orjson.dumps(later)])
    page = index.query(AlertQuery())
    assert page["total"] == 2
    assert next(a for a in page["alerts"] if a["id"] == later["id"])["count"] == 7
    assert index.facets()["rule"] == {"plc_stop": 2}


# -- the map layout ------------------------------------------------------------------------------------

def test_layout_puts_levels_in_bands_from_top_to_bottom_and_is_deterministic():
    nodes = [{"id": f"10.0.{lv}.{i}", "role": "plc_rtu"} for lv in range(4) for i in range(1, 30)]
    placements = {n["id"]: Placement(f"zone{n['id'].split('.')[2]}", [1.0, 2.0, 3.5, 5.0][int(n["id"].split(".")[2])],
                                     "ot", "zones") for n in nodes}
    edges = [{"source": "10.0.3.1", "target": "10.0.0.1", "protocol": "modbus", "bytes": 10, "functions": {"X": 1}}]
    first = layout(nodes, edges, placements, {}, {})
    assert first == layout(list(reversed(nodes)), edges, placements, {}, {})
    levels = [b["level"] for b in first["bands"]]
    assert levels == [lv for lv in LEVEL_ORDER if lv in (1.0, 2.0, 3.5, 5.0)]
    band_of = {b["level"]: b for b in first["bands"]}
    for n in first["nodes"]:
        band = band_of[n["level"]]
        assert band["y"] <= n["y"] <= band["y"] + band["height"]
    assert first["edges"][0]["functions"] == {"X": 1}


def test_crossing_is_it_into_a_control_zone():
    it, ot1, dmz = Placement("corp", 4.0, "it", "zones"), Placement("cell", 1.0, "ot", "zones"), \
        Placement("dmz", 3.5, "dmz", "zones")
    assert crossing(it, ot1) and not crossing(ot1, it) and not crossing(it, dmz)
    assert crossing(estimate("it_host"), estimate("plc_rtu"))
    assert estimate("unknown").level is None


# -- inventory CSV and written values ------------------------------------------------------------------

def test_csv_export_defuses_spreadsheet_formulas():
    row = {"ip": "10.0.0.1", "macs": [{"mac": "00:11:22:33:44:55", "vendor": "=HYPERLINK(\"x\")"}],
           "role": "plc_rtu", "role_evidence": ["+serves modbus"],
           "vendor": {"value": "@evil", "key": "vendor", "source": "modbus"}, "model": None, "firmware": None,
           "serial": None, "identity": [], "protocols_served": {}, "protocols_used": {}, "peers": [],
           "zone": "cell", "level": 1.0, "level_source": "zones", "first_seen": 1.0, "last_seen": 2.0, "alerts": 0}
    parsed = list(csv.DictReader(io.StringIO(to_csv([row]))))
    assert parsed[0]["mac_vendors"] == "'=HYPERLINK(\"x\")"
    assert parsed[0]["vendor"] == "'@evil" and parsed[0]["role_evidence"] == "'+serves modbus"


@pytest.mark.parametrize("row, points", [
    ({"func": "WRITE_MULTIPLE_REGISTERS", "address": 1, "request_values": [4000, 4001]},
     [("holding_registers 1", 4000.0), ("holding_registers 2", 4001.0)]),
    ({"func": "WRITE_SINGLE_COIL", "address": 7, "request_values": [1]}, [("coils 7", 1.0)]),
    ({"func": "READ_HOLDING_REGISTERS", "address": 1, "request_values": None}, []),
    ({"func": "WRITE_SINGLE_REGISTER", "address": 1, "request_values": [5], "exception_code": "ILLEGAL"}, []),
    ({"func": "MASK_WRITE_REGISTER", "address": 1, "request_values": [5]}, []),
])
def test_modbus_written_values(row, points):
    assert list(modbus_points(row)) == points


def test_dnp3_operates_are_points_and_selects_are_not():
    assert list(dnp3_points({"function_code": "SELECT", "index_number": 0, "operation_type": "Latch On"})) == []
    assert list(dnp3_points({"function_code": "OPERATE", "index_number": 2, "trip_control_code": "Nul",
                             "operation_type": "Latch Off"})) == [("binary output 2", 0.0)]
    assert list(dnp3_points({"function_code": "DIRECT_OPERATE", "index_number": 3, "value": -7})) == \
        [("analog output 3", -7.0)]


def test_every_page_has_its_script_in_the_package():
    from otsensor.sensor.console.pages import TITLES
    from otsensor.sensor.console.server import static_files
    files = static_files()
    assert {"common.js", "console.css"} <= set(files)
    assert {f"{page}.js" for page in TITLES} <= set(files)
