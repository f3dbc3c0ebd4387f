"""What a ClickHouse table holds, and what the JSONL files and documents of the same run say it should hold,
both as comparable row sets (the tests' one notion of "the same rows")."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from otsensor.sensor.clickhouse.tables import ROW_ID_COLUMN, SENSOR_COLUMN, Table
from otsensor.sensor.clickhouse.zeek_tables import PREFIX, stored_tables

HIDDEN = {SENSOR_COLUMN.name, ROW_ID_COLUMN}


def _canonical(row: dict[str, Any], table: Table) -> str:
    """A row as text: empty values left out (NULL, an empty list), booleans as 0/1 (old servers have UInt8),
    nested values as parsed JSON."""
    kinds = {c.name: c.kind for c in table.columns}
    out = {}
    for key, value in row.items():
        if key not in kinds:
            continue
        if kinds[key] == "json" and isinstance(value, str):
            value = json.loads(value)
        if value is None or value == [] or value == ():
            continue
        if kinds[key] == "addr" and isinstance(value, str) and value.startswith("::ffff:"):
            value = value[7:]
        out[key] = _plain(value)
    return json.dumps(out, sort_keys=True, default=str)


def _plain(value: Any) -> Any:
    """Booleans as 0/1, floats to the microsecond, whole floats as integers (a vector[double] of whole numbers
    reads back as 0.0).  Old servers (18.16) read a JSON number with a fast method that is, for about one
    number in 200, one unit in the last place off (2**-52 of it: 2.4e-7 at an epoch time); the records' times
    and durations are whole microseconds, which that never changes."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        value = round(value, 6)
        return int(value) if value.is_integer() else value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def server_rows(server, table: str, sensor_id: str, final: bool = True) -> Counter:
    """The rows a sensor wrote to a table, FINAL by default (a ReplacingMergeTree's retried rows merged)."""
    conn = server.client()
    try:
        rows, types = conn.execute(f"SELECT * FROM otsensor.`{table}` {'FINAL' if final else ''} "
                                   "WHERE sensor_id = %(s)s", {"s": sensor_id}, with_column_types=True)
    finally:
        conn.disconnect()
    names = [n for n, _ in types]
    spec = stored_tables()[table]
    return Counter(_canonical({n: v for n, v in zip(names, row) if n not in HIDDEN}, spec) for row in rows)


def expected_rows(out: Path, table: str) -> Counter:
    """What the run wrote for the table, as comparable rows."""
    spec = stored_tables()[table]
    return Counter(_canonical(row, spec) for row in run_rows(out, table))


def run_rows(out: Path, table: str) -> list[dict[str, Any]]:
    """What a run wrote for a table: its JSONL log, the rows of assets.json and graph.json, or for a zeek_
    table the lines of its Zeek log in the JSON form (DIR/zeek/<path>.log of --zeek-logs=json)."""
    if table.startswith(PREFIX):
        path = out / "zeek" / f"{table[len(PREFIX):]}.log"
        rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    elif table == "assets":
        rows = json.loads((out / "assets.json").read_text())["assets"]
    elif table == "graph_edges":
        rows = [{**{k: v for k, v in e.items() if k not in ("source", "target", "key")},
                 "client": e["source"], "server": e["target"]}
                for e in json.loads((out / "graph.json").read_text())["edges"]]
    else:
        path = out / f"{table}.jsonl"
        rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return rows


def mismatches(server, out: Path, sensor_id: str, final: bool = True) -> dict[str, str]:
    """Tables whose rows differ from the run's files: table -> what differs (empty when all agree)."""
    problems = {}
    for table in stored_tables():
        want, got = expected_rows(out, table), server_rows(server, table, sensor_id, final)
        if want != got:
            missing, extra = want - got, got - want
            problems[table] = (f"{sum(want.values())} expected, {sum(got.values())} stored; missing "
                               f"{list(missing)[:1]} extra {list(extra)[:1]}")
    return problems
