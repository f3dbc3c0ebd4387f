"""Nested values as their JSON text for servers that cannot read them into a String column themselves (18.16):
the delivery process rewrites them as byte edits of a batch's body (sensor/clickhouse/jsonrows.py,
``fixed_body``), without parsing the rows.  The bytes must be those of parsing each row and encoding it again
(``parsed``, which the tables with derived columns still use), and both kinds of server must store each
nested value's JSON text."""
from __future__ import annotations

import dataclasses
import json

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from otsensor.sensor.clickhouse.ddl import Flavour, column_type
from otsensor.sensor.clickhouse.batches import Lines
from otsensor.sensor.clickhouse.jsonrows import JsonRows, value_end
from otsensor.sensor.clickhouse.tables import ROW_ID_COLUMN, SENSOR_COLUMN, Table, all_tables
from otsensor.sensor.sinks.jsonl import encode_line

from tests.sensor.clickhouse_modern import create_modern_tables, engine
from tests.sensor.test_clickhouse_json import AWKWARD, run_sink, sink_config

OLD_SERVER_SETTINGS = frozenset({"input_format_skip_unknown_fields"})   # what 18.16 has of WANTED_SETTINGS
TABLES = all_tables()


def old_server_shaper(table: Table, flavour: Flavour = Flavour(modern=False)) -> JsonRows:
    types = {c.name: column_type(c, flavour, key=c.name in table.order_by) for c in table.all_columns}
    types[ROW_ID_COLUMN] = "UInt64"
    return JsonRows(table, types, "nested", OLD_SERVER_SETTINGS)


def body(rows: list[dict]) -> bytes:
    return b"".join(encode_line(row) for row in rows)[:-1]


def parsed_body(shaper: JsonRows, text: bytes) -> bytes:
    """What each line becomes parsed and encoded again (``fixed``): the bytes the edits must make."""
    return b"\n".join(shaper.parsed(line) for line in text.split(b"\n"))


def deep(levels: int) -> dict:
    value: dict = {"leaf": AWKWARD}
    for n in range(levels):
        value = {f"level{n}": [value, n]}
    return value


S7_BASE = {"ts": 1780000003.5, "uid": "Cs7", "id.orig_h": "10.0.0.1", "id.orig_p": 50001, "id.resp_h": "10.0.0.3",
           "id.resp_p": 102, "rosctr": "JOB", "function": "READ_VAR"}
# every shape a nested value takes: a list of objects (S7 items), an object holding the same key name, a
# scalar, a string, a value deeper than the byte pattern reaches (the batch is parsed), none, empty ones
S7_ROWS = [
    {**S7_BASE, "uid": "Citems", "items": [{"area": "DB", "db": 1, "start": 0, "count": 4, "text": AWKWARD},
                                           {"area": "M", "values": [1, 2.5, None, True, "x]}\"{"]}],
     "block_counts": None, "items_truncated": False},
    {**S7_BASE, "uid": "Csame-key", "items": {"items": [1, {"items": None}], "detail": "items\":[1]"},
     "block_counts": {"note": AWKWARD}},
    {**S7_BASE, "uid": "Cscalar", "items": 42, "block_counts": "a \"quoted\" \\ string"},
    {**S7_BASE, "uid": "Cempty", "items": [], "block_counts": {}},
    {**S7_BASE, "uid": "Cnone", "items": None, "block_counts": None},
    {**S7_BASE, "uid": "Cfloat", "items": [1e-300, -0.0, 1.7976931348623157e308, 2 ** 64 - 1, -2 ** 63]},
]
DEEP_ROW = {**S7_BASE, "uid": "Cdeep", "items": [deep(10)], "block_counts": deep(2)}
# as the sensor's rows are: no backslash and no bracket in a string, so the whole batch is edited at once
PLAIN_ROWS = [
    {**S7_BASE, "uid": "Cplain", "items": [{"area": "DB", "db": 1, "values": [1.5, -2, None]}, {"area": "M"}],
     "block_counts": {"OB": 3, "FB": {"nested": [[1, [2, [3]]], {}]}}},
    {**S7_BASE, "uid": "Cplain-same-key", "items": {"items": [{"items": []}], "block_counts": {"x": 1}}},
    {**S7_BASE, "uid": "Cplain-empty", "items": [], "block_counts": {}},
    {**S7_BASE, "uid": "Cplain-none", "items": None, "block_counts": None},
]
PLAIN_DEEP_ROW = {**S7_BASE, "uid": "Cplain-deep", "items": [{"l1": [{"l2": [[[[[[1]]]]]]}]}]}
SCALAR_ROW = {**S7_BASE, "uid": "Cplain-scalar", "items": 7, "block_counts": "text"}

JSON_SCALARS = (st.none() | st.booleans() | st.integers(-2 ** 63, 2 ** 64 - 1)
                | st.floats(allow_nan=False, allow_infinity=False) | st.text())
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=30)


@pytest.mark.parametrize("rows, whole", [
    (PLAIN_ROWS, True), ([*PLAIN_ROWS, PLAIN_DEEP_ROW], True), ([*PLAIN_ROWS, SCALAR_ROW], False),
    (S7_ROWS, False), ([*S7_ROWS, DEEP_ROW], False)],
    ids=["whole body", "deep: whole body too", "one scalar", "awkward strings: line by line", "and one deep"])
def test_the_byte_edits_give_the_bytes_of_parsing_and_encoding_again(rows, whole):
    shaper = old_server_shaper(TABLES["s7comm"])
    text = body(rows)
    assert (shaper.with_nested_text(text) is not None) is whole
    assert shaper.fixed_body(text) == parsed_body(shaper, text)
    edited = [orjson.loads(line) for line in shaper.fixed_body(text).split(b"\n")]
    assert [row.get("items") for row in edited] == [
        None if row["items"] is None else orjson.dumps(row["items"]).decode() for row in rows]


PLAIN_TEXT = st.text(st.characters(blacklist_characters='[]{}"\\', blacklist_categories=("Cs",)), max_size=6)
PLAIN_VALUES = st.recursive(st.none() | st.integers(-2 ** 63, 2 ** 63 - 1) | PLAIN_TEXT, lambda inner: st.lists(inner, max_size=4)
                            | st.dictionaries(PLAIN_TEXT, inner, max_size=4), max_leaves=40)


@settings(max_examples=300, deadline=None)
@given(st.lists(PLAIN_VALUES, max_size=4) | st.dictionaries(PLAIN_TEXT, PLAIN_VALUES, max_size=4), PLAIN_VALUES)
def test_a_nested_value_ends_at_its_own_closing_bracket_however_deep(value, after):
    """value_end finds the end of a list or object however deep (strings without brackets, as plain_strings
    requires), with more values and brackets after it on the line."""
    head = b'{"ts":1,"items":'
    line = head + orjson.dumps(value) + b',"next":' + orjson.dumps([after, {"x": after}]) + b"}"
    assert value_end(line, len(head)) == len(head) + len(orjson.dumps(value))
    assert value_end(line, 1) == -1                       # no list or object starts there
    assert value_end(line[:len(head) + len(orjson.dumps(value)) - 1], len(head)) == -1   # cut short: no end


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(JSON_VALUES, JSON_VALUES, st.none() | st.lists(st.integers(0, 65535), max_size=3)),
                min_size=1, max_size=5))
def test_any_nested_values_are_edited_as_parsing_would(values):
    """Modbus rows: two nested columns and arrays that may be null (18.16 reads no null into an Array)."""
    base = {"ts": 1780000004.0, "id.orig_h": "10.0.0.1", "id.orig_p": 1, "id.resp_h": "10.0.0.2", "id.resp_p": 502}
    rows = [{**base, "uid": f"C{n}", "file_records": records, "request_values": registers,
             "device_identification": identification, "response_values": None}
            for n, (records, identification, registers) in enumerate(values)]
    shaper = old_server_shaper(TABLES["modbus"])
    text = body(rows)
    assert shaper.fixed_body(text) == parsed_body(shaper, text)
    # the insert's body: null arrays cut after sensor_id and _row were put in front
    assert shaper.body(Lines(text, len(rows)), 5) == shaper.prefixed(parsed_body(shaper, text), 5)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.none() | st.lists(st.integers(0, 65535), max_size=3)), min_size=1,
                max_size=5))
def test_a_null_array_first_in_its_line_is_cut_too(values):
    """The sensor's rows start with ts; a line that starts with a null array loses it all the same."""
    rows = [{"request_values": registers, "ts": 1.0, "uid": f"C{n}"} if first else
            {"ts": 1.0, "uid": f"C{n}", "request_values": registers} for n, (first, registers) in enumerate(values)]
    shaper = old_server_shaper(TABLES["modbus"])
    text = body(rows)
    assert shaper.fixed_body(text) == parsed_body(shaper, text)
    assert shaper.body(Lines(text, len(rows)), 5) == shaper.prefixed(parsed_body(shaper, text), 5)


def test_an_old_server_stores_each_nested_value_as_its_json_text(clickhouse, tmp_path):
    rows = [*PLAIN_ROWS, *S7_ROWS, DEEP_ROW]
    report = run_sink(dataclasses.replace(sink_config(clickhouse, "nested-old"), batch_rows=len(PLAIN_ROWS)), tmp_path, {"s7comm": rows})
    assert report["tables"]["s7comm"]["delivered"] == len(rows) and report["rejected"] == 0
    stored = dict(((uid, (items, block_counts)) for uid, items, block_counts in clickhouse.query(
        "SELECT uid, items, block_counts FROM otsensor.s7comm WHERE sensor_id = 'nested-old'")))
    assert stored == {row["uid"]: tuple(None if row.get(key) is None else orjson.dumps(row[key]).decode()
                                        for key in ("items", "block_counts")) for row in rows}


def test_a_current_engine_reads_the_edited_body_into_its_string_columns(tmp_path):
    """What the edits make is plain JSON strings, which a current server reads too (chDB, modern schema)."""
    session = engine(tmp_path / "db")
    table = TABLES["s7comm"]
    create_modern_tables(session, {"s7comm": table})
    shaper = old_server_shaper(table, Flavour(modern=True))
    groups = [PLAIN_ROWS, S7_ROWS, [DEEP_ROW]]        # the whole body edited, line by line, parsed
    rows = [row for group in groups for row in group]
    text = b"\n".join(shaper.body([encode_line(row)[:-1] for row in group], n) for n, group in enumerate(groups))
    session.query("INSERT INTO otsensor.s7comm SETTINGS input_format_skip_unknown_fields = 1 FORMAT JSONEachRow\n"
                  + text.decode())
    got = {row["uid"]: (row["items"], row["block_counts"]) for row in map(json.loads, session.query(
        f"SELECT uid, items, block_counts FROM otsensor.s7comm WHERE {SENSOR_COLUMN.name} = 'nested'",
        "JSONEachRow").bytes().splitlines())}
    assert got == {row["uid"]: tuple(None if row.get(key) is None else orjson.dumps(row[key]).decode()
                                     for key in ("items", "block_counts")) for row in rows}
