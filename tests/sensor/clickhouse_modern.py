"""A current ClickHouse engine for the modern schema: chDB (embedded ClickHouse, ``pip install --no-deps
chdb-core``; skipped cleanly without it).

chDB runs no server, so rows reach it the way the sink would send them: the sink's own column conversion
(sensor/clickhouse/columns.py) and clickhouse-driver's own column writers serialise each table's batch as
a Native block, which the engine reads with ``INSERT ... SELECT ... FROM file(..., Native)``.
"""
from __future__ import annotations

import datetime
import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest
from otsensor.sensor.clickhouse.connection import Target
from otsensor.sensor.clickhouse.columns import Inserter
from otsensor.sensor.clickhouse.ddl import Flavour, column_type, create_statements, quote
from otsensor.sensor.clickhouse.tables import ROW_ID_COLUMN, SENSOR_COLUMN, Table
from otsensor.sensor.console.chstore import Reader

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


def native_block(names: list[str], types: dict[str, str], data: list[list[Any]]) -> bytes:
    """One Native-format block, written by clickhouse-driver's column writers (protocol revision 0: no block
    info, which is exactly the Native file format)."""
    from clickhouse_driver.bufferedwriter import BufferedSocketWriter
    from clickhouse_driver.columns.service import write_column
    from clickhouse_driver.context import Context
    from clickhouse_driver.varint import write_varint
    from clickhouse_driver.writer import write_binary_str

    class Collect:
        def __init__(self) -> None:
            self.chunks: list[bytes] = []

        def sendall(self, chunk: bytes) -> None:
            self.chunks.append(bytes(chunk))

    class ServerInfo:
        used_revision = 0
        timezone = "UTC"

    context = Context()
    context.settings = {}
    context.client_settings = {"strings_as_bytes": False, "strings_encoding": "utf-8", "use_numpy": False,
                               "input_format_null_as_default": False, "namedtuple_as_json": False}
    context.server_info = ServerInfo()
    out = Collect()
    buf = BufferedSocketWriter(out, 1 << 20)
    write_varint(len(names), buf)
    write_varint(len(data[0]) if data else 0, buf)
    for name, values in zip(names, data):
        write_binary_str(name, buf)
        write_binary_str(types[name], buf)
        write_column(context, name, types[name], values, buf, types_check=False)
    buf.flush()
    return b"".join(out.chunks)


def insert_rows(session: Any, table: Table, rows: list[dict[str, Any]], sensor_id: str, batch_id: int,
                directory: Path, token: str | None = None) -> None:
    """Insert rows as the sink converts them, with an optional insert_deduplication_token."""
    types = modern_types(table)
    names, data = Inserter(table, types, sensor_id).columns(rows, batch_id)
    path = directory / f"{table.name}-{batch_id:x}.native"
    path.write_bytes(native_block(names, types, data))
    columns = ", ".join(map(quote, names))
    settings = f" SETTINGS insert_deduplication_token = '{token}'" if token else ""
    session.query(f"INSERT INTO otsensor.{quote(table.name)} ({columns}){settings} "
                  f"SELECT {columns} FROM file('{path}', Native)")


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
