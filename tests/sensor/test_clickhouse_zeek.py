"""The Zeek-shaped logs of ``--zeek-logs`` in ClickHouse (sensor/clickhouse/zeek_tables.py): each
DIR/zeek/<path>.log lands in the table ``zeek_<path>`` row for row, on Debian's clickhouse-server 18.16 (the
compatible schema) through the running sink; the modern DDL of every zeek_ table holds a row of the Zeek JSON
writer's own lines on chDB (a current engine).

Rows are compared parsed (tests/sensor/clickhouse_rows.py): empty values left out (Zeek leaves unset fields
out, the server gives NULL or an empty array), booleans as 0/1 (18.16 stores UInt8), floats to the
microsecond (18.16's fast float reader is, for about one number in 200, one unit in the last place off)."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from otsensor.sensor.clickhouse.jsonrows import JsonRows
from otsensor.sensor.clickhouse.zeek_tables import PREFIX, table_name, zeek_tables
from otsensor.sensor.zeek.format import json_line

from tests.cli import REPO, otsensor
from tests.sensor.clickhouse_modern import create_modern_tables, engine, modern_types
from tests.sensor.clickhouse_rows import expected_rows, mismatches, server_rows
from tests.sensor.test_clickhouse_sink import EVERY_PROTOCOL, config, summary_sink

pytest.importorskip("clickhouse_driver")

ZEEK_SECTION = (REPO / "README.md").read_text(encoding="utf-8").split("## Using otsensor with Zeek", 1)[1]
README_QUERY, = re.findall(r"```sql\n(.*?)```", ZEEK_SECTION.split("\n## ", 1)[0], re.DOTALL)
# the logs the captures of the four protocols give (each test asserts they have rows)
LOGS_SEEN = ("conn", "modbus", "modbus_detailed", "s7comm", "cotp", "dnp3", "dnp3_objects", "enip", "cip")


def zeek_lines(out: Path) -> dict[str, int]:
    return {path.stem: len(path.read_text().splitlines()) for path in (out / "zeek").glob("*.log")}


def test_every_zeek_log_lands_in_its_zeek_table_row_for_row(clickhouse, tmp_path):
    out = tmp_path / "out"
    proc = otsensor("analyze", *EVERY_PROTOCOL, "--zeek-logs=json", "-o", out, "-q",
                    "--config", config(tmp_path, clickhouse, "zeek-json"))
    assert proc.returncode == 0, proc.stderr
    assert mismatches(clickhouse, out, "zeek-json") == {}      # every table: the zeek_ ones and our own
    lines = zeek_lines(out)
    assert set(LOGS_SEEN) <= set(lines)
    tables = summary_sink(out)["tables"]
    for path, n in lines.items():
        assert tables[table_name(path)] == {"sent": n, "delivered": n, "spooled": 0, "dropped": 0,
                                            "rejected": 0}, path
    # our own tables keep their names and rows beside the Zeek ones
    assert tables["conn"]["delivered"] > 0 and tables["modbus"]["delivered"] > 0
    detail = clickhouse.query("SELECT count(), countIf(matched = 1), sum(length(response_values)) "
                              "FROM otsensor.zeek_modbus_detailed FINAL WHERE sensor_id = 'zeek-json'")
    rows = [json.loads(line) for line in (out / "zeek" / "modbus_detailed.log").read_text().splitlines()]
    assert detail == [(len(rows), sum(1 for r in rows if r.get("matched")),
                       sum(len(r.get("response_values", [])) for r in rows))]
    assert readme_query_answer(clickhouse, rows) == expected_writes(rows)


def readme_query_answer(server, rows: list[dict]) -> list[tuple]:
    """The README's query over zeek_modbus_detailed, for the PLC the capture writes to most."""
    plc = Counter(r["id.resp_h"] for r in rows if r["func"].startswith("WRITE")).most_common(1)[0][0]
    sql = README_QUERY.replace("'10.20.1.10'", f"'{plc}'").replace(
        "WHERE ", "WHERE sensor_id = 'zeek-json' AND ", 1).replace("FROM ", "FROM otsensor.", 1)
    return [(client, func, writes, last.timestamp()) for client, func, writes, last in server.query(sql)]


def expected_writes(rows: list[dict]) -> list[tuple]:
    """What the README's query answers, from the log file itself."""
    plc = Counter(r["id.resp_h"] for r in rows if r["func"].startswith("WRITE")).most_common(1)[0][0]
    groups: dict[tuple, list[float]] = {}
    for r in rows:
        if r["id.resp_h"] == plc and r["func"].startswith("WRITE"):
            groups.setdefault((r["id.orig_h"], r["func"]), []).append(r["ts"])
    answer = [(client, func, len(ts), float(int(max(ts)))) for (client, func), ts in groups.items()]
    return sorted(answer, key=lambda a: (-a[2], a[0], a[1]))


def test_the_ascii_form_on_disk_sends_the_json_form_to_the_tables(clickhouse, tmp_path):
    """With --zeek-logs (TSV files) the tables hold what --zeek-logs=json would have written."""
    ascii_out, json_out = tmp_path / "ascii", tmp_path / "json"
    proc = otsensor("analyze", *EVERY_PROTOCOL, "--zeek-logs", "-o", ascii_out, "-q",
                    "--config", config(tmp_path, clickhouse, "zeek-ascii"))
    assert proc.returncode == 0, proc.stderr
    assert (ascii_out / "zeek" / "conn.log").read_text().startswith("#separator")
    proc = otsensor("analyze", *EVERY_PROTOCOL, "--zeek-logs=json", "-o", json_out, "-q")
    assert proc.returncode == 0, proc.stderr
    for table in zeek_tables():
        want = expected_rows(json_out, table)
        assert server_rows(clickhouse, table, "zeek-ascii") == want, table
        assert sum(want.values()) > 0 or table[len(PREFIX):] not in LOGS_SEEN


def test_a_live_run_sends_its_zeek_logs_too(clickhouse, tmp_path):
    """``otsensor run`` (here from a stream on stdin): the Zeek rows released at the end reach the tables."""
    out = tmp_path / "out"
    with open(EVERY_PROTOCOL[0], "rb") as stream:
        proc = subprocess.run([sys.executable, "-m", "otsensor.sensor.cli", "run", "-r", "-", "-o", str(out), "-q",
                               "--zeek-logs=json", "--config", str(config(tmp_path, clickhouse, "zeek-live"))],
                              cwd=REPO, stdin=stream, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert {"conn", "modbus", "modbus_detailed"} <= set(zeek_lines(out))
    assert mismatches(clickhouse, out, "zeek-live") == {}


def test_without_zeek_logs_the_zeek_tables_get_nothing(clickhouse, tmp_path):
    out = tmp_path / "out"
    proc = otsensor("analyze", EVERY_PROTOCOL[0], "-o", out, "-q", "--config", config(tmp_path, clickhouse, "no-zeek"))
    assert proc.returncode == 0, proc.stderr
    assert not any(t.startswith(PREFIX) for t in summary_sink(out)["tables"])
    assert clickhouse.query("SELECT count() FROM otsensor.zeek_conn WHERE sensor_id = 'no-zeek'") == [(0,)]


# -- the modern form, on chDB -----------------------------------------------------------------------------

SAMPLES: dict[str, Any] = {"time": 1780000000.123456, "interval": 0.25, "double": 1.5, "count": 2 ** 63 + 1,
                           "int": -3, "port": 502, "addr": "10.0.0.1", "bool": True, "string": 'a "quoted" ✓',
                           "enum": "tcp"}


def sample(kind: str) -> Any:
    """A value of a Zeek type, lists of two for containers."""
    if "[" in kind:
        return [sample(kind[kind.index("[") + 1:-1])] * 2
    return SAMPLES[kind]


def test_the_modern_ddl_of_every_zeek_table_holds_a_zeek_json_line(tmp_path):
    session = engine(tmp_path / "db")
    tables = zeek_tables()
    create_modern_tables(session, tables)
    known = frozenset(session.query("SELECT name FROM system.settings WHERE name LIKE 'input_format_%'",
                                    "CSV").bytes().decode().replace('"', "").split())
    for name, table in tables.items():
        kinds = [c.kind for c in table.columns]
        line = json_line([c.name for c in table.columns], [sample(k) for k in kinds], kinds)
        shaper = JsonRows(table, modern_types(table), "zeek-new", known)
        clause = ", ".join(f"{key} = {value!r}" for key, value in shaper.settings.items())
        session.query(f"INSERT INTO otsensor.`{name}` SETTINGS {clause} FORMAT JSONEachRow\n"
                      + shaper.body([line.encode()], 9).decode())
        got = orjson.loads(session.query(f"SELECT * FROM otsensor.`{name}`", "JSONEachRow").bytes())
        assert got["sensor_id"] == "zeek-new" and int(got["_row"]) == 9 << 20
        for column in table.columns:
            assert read_back(got[column.name], column.kind) == sample(column.kind), (name, column.name)


def read_back(value: Any, kind: str) -> Any:
    """A value as chDB's JSONEachRow gives it, as the Zeek type's sample: times as epoch seconds, IPv4 out of
    its IPv6 mapping, 64-bit numbers from their quoted text."""
    if "[" in kind:
        return [read_back(v, kind[kind.index("[") + 1:-1]) for v in value]
    if kind == "time":
        from datetime import datetime, timezone
        stamp = datetime.fromisoformat(value).replace(tzinfo=timezone.utc).timestamp()
        return round(stamp, 6)
    if kind == "addr":
        return value.removeprefix("::ffff:")
    if kind in ("count", "int"):
        return int(value)
    return value


def test_the_schema_commands_print_the_zeek_tables_in_both_forms_and_on_a_cluster():
    old = otsensor("clickhouse", "schema", "--server-version", "18.16").stdout
    assert "CREATE TABLE IF NOT EXISTS `otsensor`.`zeek_modbus_detailed`\n(\n    `sensor_id` String,\n" \
           "    `ts` Float64,\n    `uid` Nullable(String),\n    `id.orig_h` Nullable(String)," in old
    assert "`response_values` Array(UInt64)" in old and "`matched` Nullable(UInt8)" in old
    new = otsensor("clickhouse", "schema").stdout
    assert "`ts` DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),\n    `uid` Nullable(String) CODEC(ZSTD(1)),\n" \
           "    `id.orig_h` Nullable(IPv6)," in new
    assert "`proto` LowCardinality(Nullable(String))" in new.split("`zeek_conn`", 1)[1]   # an enum
    assert "`tunnel_parents` Array(String)" in new and "`matched` Nullable(Bool)" in new
    cluster = otsensor("clickhouse", "schema", "--cluster", "fleet").stdout
    assert "ENGINE = Distributed(`fleet`, `otsensor`, `zeek_conn_local`, cityHash64(`id.resp_h`))" in cluster
    for schema in (old, new):
        assert all(f"`otsensor`.`{name}`\n" in schema for name in zeek_tables())
        assert "`otsensor`.`conn`\n" in schema and "`otsensor`.`modbus`\n" in schema
