"""A current ClickHouse engine for the modern schema: chDB (embedded ClickHouse, ``pip install --no-deps
chdb-core``; skipped cleanly without it).

chDB runs no server, so rows reach it as the sink would send them over HTTP: each table's batch as the
body of ``INSERT ... FORMAT JSONEachRow`` built by the sink's own code (sensor/clickhouse/jsonrows.py),
with the settings the engine has, inline in the query.
"""
from __future__ import annotations

import datetime
import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest
from otsensor.sensor.clickhouse.connection import Target
from otsensor.sensor.clickhouse.ddl import Flavour, column_type, create_statements, quote
from otsensor.sensor.clickhouse.jsonrows import JsonRows
from otsensor.sensor.clickhouse.tables import ROW_ID_COLUMN, SENSOR_COLUMN, Table
from otsensor.sensor.console.chstore import Reader
from otsensor.sensor.sinks.jsonl import encode_line

MODERN = Flavour(modern=True)


def engine(directory: Path) -> Any:
    chdb_session = pytest.importorskip("chdb.session", reason="chDB is not installed (pip install --no-deps chdb-core)")
    return chdb_session.Session(str(directory))


def create_modern_tables(session: Any, tables: dict[str, Table], database: str = "otsensor") -> None:
    for statement in create_statements(tables, database, MODERN):
        session.query(statement)


def modern_types(table: Table) -> dict[str, str]:
    """The column types the modern DDL gives the table (what a current server would report)."""
    types = {c.name: column_type(c, MODERN, key=c.name in table.order_by or c.name == SENSOR_COLUMN.name)
             for c in table.all_columns}
    types[ROW_ID_COLUMN] = "UInt64"
    return types


def insert_rows(session: Any, table: Table, rows: list[dict[str, Any]], sensor_id: str, batch_id: int,
                directory: Path, token: str | None = None) -> None:
    """Insert rows as the sink sends them (sensor/clickhouse/jsonrows.py: their JSONL lines, with the settings
    this engine has), with an optional insert_deduplication_token."""
    known = frozenset(session.query("SELECT name FROM system.settings WHERE name LIKE 'input_format_%'",
                                    "CSV").bytes().decode().replace('"', "").split())
    shaper = JsonRows(table, modern_types(table), sensor_id, known)
    settings = {**shaper.settings, **({"insert_deduplication_token": token} if token else {})}
    clause = ", ".join(f"{name} = {value!r}" for name, value in settings.items())
    body = shaper.body([encode_line(row)[:-1] for row in rows], batch_id)
    session.query(f"INSERT INTO otsensor.{quote(table.name)} SETTINGS {clause} FORMAT JSONEachRow\n"
                  + body.decode())


def _typed(value: Any, server_type: str) -> Any:
    """A JSONCompact value as clickhouse-driver returns it for ``server_type`` (times as UTC datetimes,
    addresses as IPv6Address, arrays element by element)."""
    inner = server_type
    for wrapper in ("LowCardinality(", "Nullable("):
        if inner.startswith(wrapper):
            inner = inner[len(wrapper):-1]
    if value is None:
        return None
    if inner.startswith("Array("):
        return [_typed(v, inner[6:-1]) for v in value]
    if inner.startswith("DateTime"):
        return datetime.datetime.fromisoformat(value).replace(tzinfo=datetime.timezone.utc)
    if inner == "IPv6":
        return ipaddress.IPv6Address(value)
    if inner.startswith(("UInt", "Int")) and isinstance(value, str):
        return int(value)
    return value


class ChdbReader(Reader):
    """The console's ClickHouse reader over a chDB session: the same SQL, its parameters bound by the driver's
    own escaping, the answers typed as the driver types a server's."""

    def __init__(self, session: Any, database: str = "otsensor") -> None:
        from clickhouse_driver.context import Context
        self.session = session
        self.context = Context()
        self.target = Target("chdb", 0, database, "default", "", False)

    def rows(self, sql: str, params: dict[str, Any] | None = None) -> tuple[list[str], list[tuple]]:
        from clickhouse_driver.util.escape import escape_params
        if params:
            sql = sql % escape_params(params, self.context)
        doc = json.loads(self.session.query(sql, "JSONCompact").bytes() or b'{"meta": [], "data": []}')
        meta = [(m["name"], m["type"]) for m in doc["meta"]]
        return [name for name, _ in meta], [tuple(_typed(v, t) for v, (_, t) in zip(row, meta)) for row in doc["data"]]

    def close(self) -> None:
        pass
