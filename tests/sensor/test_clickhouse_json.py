"""The sink's JSON inserts (sensor/clickhouse/jsonrows.py, http.py) on both kinds of server: every column type
and awkward values arrive as the JSONL holds them, and a batch a server refuses is counted and kept, once.

Debian's clickhouse-server 18.16 (the compatible schema, none of the JSON input settings) is the server the
sink talks to over HTTP; chDB (a current engine, the modern schema) reads the same bodies the sink builds."""
from __future__ import annotations

import dataclasses
import json

import orjson
import pytest
from otsensor.sensor.clickhouse.sink import ClickHouseSink
from otsensor.sensor.clickhouse.tables import all_tables
from otsensor.sensor.config import ClickHouseConfig

from tests.sensor.clickhouse_modern import create_modern_tables, engine, insert_rows
from tests.sensor.clickhouse_rows import _canonical, server_rows

pytest.importorskip("clickhouse_driver")

AWKWARD = 'quote " backslash \\ newline \n tab \t nul-ish \x01 unicode Ünïcødé ✓ 漢字 🛰'
HUGE = "x" * (1 << 20) + "end"


def modbus_rows() -> list[dict]:
    """Rows of a table with every kind of column: strings, time, addresses (v4, v6), ports, counts, vectors
    (null, empty, full), booleans, an interval, nested values (object, list, none), a key it has no column for."""
    base = {"ts": 1780000000.123456, "uid": "Cawkward", "id.orig_h": "10.0.0.1", "id.orig_p": 50000,
            "id.resp_h": "10.0.0.2", "id.resp_p": 502, "tid": 1, "unit": 255, "func": "READ_HOLDING_REGISTERS"}
    return [
        {**base, "matched": True, "rtt": 0.000339, "request_values": [0, 65535], "response_values": None,
         "exception_code": AWKWARD, "file_records": [{"file": 4, "record": 1, "text": AWKWARD}],
         "device_identification": {"VendorName": "Ünïcødé ✓", "nested": {"list": [1, 2.5, None, True]}},
         "not_a_column": {"skipped": 1}},
        {**base, "uid": "Chuge", "matched": False, "exception_code": HUGE, "events": [], "file_records": None},
        {**base, "uid": "Cv6", "id.orig_h": "fe80::1", "id.resp_h": "2001:db8::2", "tid": 2 ** 63, "unit": None},
    ]


def sink_config(server, sensor_id: str, **extra) -> ClickHouseConfig:
    return ClickHouseConfig(url=server.url, http_port=server.http_port, sensor_id=sensor_id, batch_rows=2,
                            backoff_initial=0.1, backoff_max=0.2, drain_timeout=10, **extra)


def run_sink(cfg: ClickHouseConfig, spool_dir, rows: dict[str, list[dict]]) -> dict:
    sink = ClickHouseSink(cfg, str(spool_dir))
    sink.start()
    for log, table_rows in rows.items():
        for row in table_rows:
            sink.write(log, row)
    sink.close()
    return sink.report()


def test_every_column_type_and_awkward_values_arrive_as_written_on_an_old_server(clickhouse, tmp_path):
    rows = modbus_rows()
    report = run_sink(sink_config(clickhouse, "json-old"), tmp_path, {"modbus": rows})
    assert report["tables"]["modbus"] == {"sent": 3, "delivered": 3, "spooled": 0, "dropped": 0, "rejected": 0}
    table = all_tables()["modbus"]
    assert server_rows(clickhouse, "modbus", "json-old") == {_canonical(row, table): 1 for row in rows}
    huge, = clickhouse.query("SELECT length(exception_code) FROM otsensor.modbus WHERE uid = 'Chuge'")
    assert huge == (len(HUGE),)


def test_a_batch_without_nested_values_is_edited_whole_and_each_row_keeps_its_own_row_id(clickhouse, tmp_path):
    """18.16 reads no null into an Array column: in a batch none of whose rows has a nested value, the null
    arrays are cut out of the whole body at once (inside a line and last in it; text that only looks like
    one, in a string, stays), and every row still gets its own ``_row``."""
    looks_like = 'x "request_values":null, "response_values":null}'
    base = {"ts": 1780000002.25, "id.orig_h": "10.0.0.1", "id.orig_p": 50000, "id.resp_h": "10.0.0.2",
            "id.resp_p": 502, "unit": 1, "func": "READ_HOLDING_REGISTERS", "file_records": None,
            "device_identification": None}
    rows = [{**base, "uid": f"Cwhole{n}", "tid": n, "request_values": None if n % 2 else [n, 7],
             "exception_code": looks_like if n == 3 else None, "response_values": [n] if n % 3 else None}
            for n in range(7)]
    cfg = dataclasses.replace(sink_config(clickhouse, "json-whole"), batch_rows=100)
    report = run_sink(cfg, tmp_path, {"modbus": rows})
    assert report["tables"]["modbus"] == {"sent": 7, "delivered": 7, "spooled": 0, "dropped": 0, "rejected": 0}
    table = all_tables()["modbus"]
    assert server_rows(clickhouse, "modbus", "json-whole") == {_canonical(row, table): 1 for row in rows}
    assert clickhouse.query("SELECT exception_code FROM otsensor.modbus WHERE uid = 'Cwhole3'") == [(looks_like,)]
    ids = [row_id for row_id, in clickhouse.query("SELECT _row FROM otsensor.modbus WHERE sensor_id = 'json-whole'")]
    assert len({row_id >> 20 for row_id in ids}) == 1 and sorted(row_id & 0xFFFFF for row_id in ids) == list(range(7))


def test_a_value_the_old_server_cannot_read_as_it_is_is_sent_reshaped(clickhouse, tmp_path):
    """A number in a String column: 18.16 refuses the line as it is; the batch goes again reshaped."""
    row = {"ts": 1780000001.5, "uid": "Cnumber", "id.orig_h": "10.0.0.1", "id.orig_p": 1, "id.resp_h": "10.0.0.2",
           "id.resp_p": 2, "proto": 6, "service": None}
    report = run_sink(sink_config(clickhouse, "json-reshape"), tmp_path, {"conn": [row]})
    assert report["tables"]["conn"]["delivered"] == 1 and report["rejected"] == 0
    assert clickhouse.query("SELECT proto FROM otsensor.conn WHERE sensor_id = 'json-reshape'") == [("6",)]


def test_a_batch_the_server_refuses_is_counted_and_kept_once_and_the_rest_is_delivered(clickhouse, tmp_path):
    good = modbus_rows()[0]
    bad = {**good, "uid": "Cbad", "request_values": "not a list"}
    rows = {"modbus": [good, bad, {**good, "uid": "Cafter"}]}      # batches of 2: [good, bad], [after]
    report = run_sink(sink_config(clickhouse, "json-bad"), tmp_path, rows)
    assert report["tables"]["modbus"] == {"sent": 3, "delivered": 1, "spooled": 0, "dropped": 0, "rejected": 2}
    assert any("refused by the server" in problem for problem in report["problems"])
    kept = [json.loads(line) for line in open(f"{report['spool_dir']}/rejected.jsonl", encoding="utf-8")]
    assert [entry["row"]["uid"] for entry in kept] == [good["uid"], "Cbad"]
    assert kept[1]["row"]["request_values"] == "not a list" and kept[0]["row"]["exception_code"] == AWKWARD
    stored = clickhouse.query("SELECT uid FROM otsensor.modbus WHERE sensor_id = 'json-bad'")
    assert stored == [("Cafter",)]


def test_every_column_type_arrives_as_written_on_a_current_engine(tmp_path):
    session = engine(tmp_path / "db")
    tables = all_tables()
    create_modern_tables(session, tables)
    rows = modbus_rows()
    insert_rows(session, tables["modbus"], rows, "json-new", 5, tmp_path, token="5")
    got = {row["uid"]: row for row in map(orjson.loads, session.query(
        "SELECT uid, toUnixTimestamp64Micro(ts) AS us, `id.orig_h`, `id.resp_h`, tid, unit, matched, rtt, "
        "request_values, response_values, events, exception_code, file_records, device_identification, _row "
        "FROM otsensor.modbus WHERE sensor_id = 'json-new'", "JSONEachRow").bytes().splitlines())}
    assert set(got) == {"Cawkward", "Chuge", "Cv6"}
    first, huge, v6 = got["Cawkward"], got["Chuge"], got["Cv6"]
    assert first["us"] == 1780000000123456 and first["id.orig_h"] == "::ffff:10.0.0.1"
    assert first["matched"] is True and first["rtt"] == 0.000339 and first["request_values"] == [0, 65535]
    assert first["response_values"] == [] and first["exception_code"] == AWKWARD
    assert json.loads(first["file_records"]) == rows[0]["file_records"]
    assert json.loads(first["device_identification"]) == rows[0]["device_identification"]
    assert huge["exception_code"] == HUGE and huge["file_records"] is None and huge["matched"] is False
    assert v6["id.orig_h"] == "fe80::1" and v6["id.resp_h"] == "2001:db8::2" and v6["unit"] is None
    assert int(v6["tid"]) == 2 ** 63
    assert sorted(int(row["_row"]) for row in got.values()) == [(5 << 20) + n for n in range(3)]
