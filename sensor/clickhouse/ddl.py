"""Schema as code: the DDL of every table (sensor/clickhouse/tables.py) for a given server, and its migrations.

Two forms, chosen by the server's version:

- **modern** (22.3 and later): ``DateTime64(6, 'UTC')`` times, ``IPv6`` addresses (an IPv4 address is stored
  IPv4-mapped, and ``= '10.0.0.1'`` matches it), ``Bool``, ``LowCardinality`` names, per-column codecs, a
  ``TTL`` when a retention is set, and a plain ``MergeTree`` that remembers the dedup tokens of its last
  inserts (``non_replicated_deduplication_window``), so a retried batch is dropped by the server.
- **compatible** (older servers: Debian 12's clickhouse-server is 18.16): ``Float64`` epoch seconds for
  times, ``String`` addresses, ``UInt8`` booleans, no codecs or TTL, and a ``ReplacingMergeTree`` whose sort
  key ends with ``_row``: a retried batch's rows are merged away (read with ``FINAL`` for exact counts).

Both partition by day and sort by device, then time (``id.resp_h, ts`` for the protocol logs), which is what
the documented queries filter on.  With a cluster name, each table becomes a ``Replicated*MergeTree`` local
table ``<name>_local`` on every node plus a ``Distributed`` table ``<name>`` over it, sharded by the device
(a device's history stays on one shard).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from otsensor.dissectors.base import Column
from otsensor.sensor.clickhouse.tables import ROW_ID_COLUMN, SENSOR_COLUMN, Table

MODERN_FROM = (22, 3)          # the first LTS with every feature the modern form uses (dedup tokens: 22.2)
DEDUP_WINDOW = 1000            # inserts whose tokens a table remembers
# Names of few distinct values (protocol, function, state, zone, ...): stored once per part as a dictionary.
LOW_CARDINALITY = re.compile(r"(^|_)(sensor_id|proto|protocol|service|state|status|kind|type|name|func|function|"
                             r"command|direction|rule|severity|category|role|zone|mode|code|class|source|"
                             r"version|vendor|space|area)$")
_BASE = {"string": "String", "count": "UInt64", "int": "Int64", "double": "Float64", "interval": "Float64",
         "port": "UInt16", "json": "String", "enum": "String"}
_MODERN = {**_BASE, "bool": "Bool", "time": "DateTime64(6, 'UTC')", "addr": "IPv6"}
_COMPAT = {**_BASE, "bool": "UInt8", "time": "Float64", "addr": "String"}
_CODECS = {"time": "CODEC(Delta, ZSTD(1))", "count": "CODEC(T64, ZSTD(1))", "int": "CODEC(T64, ZSTD(1))",
           "port": "CODEC(T64, ZSTD(1))", "json": "CODEC(ZSTD(3))", "string": "CODEC(ZSTD(1))"}


def parse_version(text: str) -> tuple[int, ...]:
    """``'18.16.1'`` or ``'24.8.4.13'`` -> a tuple of numbers (leading digits of each part)."""
    parts = []
    for piece in text.strip().split("."):
        digits = re.match(r"\d+", piece)
        if not digits:
            break
        parts.append(int(digits.group()))
    return tuple(parts)


@dataclass(frozen=True)
class Flavour:
    """What the target server supports, and how the tables are laid out on it."""

    modern: bool = True
    cluster: str | None = None
    retention_days: int = 0          # 0: keep forever (a capture from years ago is not dropped on arrival)

    @classmethod
    def for_version(cls, version: tuple[int, ...], cluster: str | None = None,
                    retention_days: int = 0) -> Flavour:
        return cls(version >= MODERN_FROM, cluster, retention_days)


def quote(name: str) -> str:
    """A column or table name in backquotes (``id.orig_h`` has a dot)."""
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def column_type(column: Column, flavour: Flavour, key: bool = False) -> str:
    """The ClickHouse type of a declared column: sort-key columns are never Nullable."""
    types = _MODERN if flavour.modern else _COMPAT
    if column.kind.startswith(("vector[", "set[")):   # a Zeek set is a list too
        return f"Array({types[column.kind[column.kind.index('[') + 1:-1]]})"   # an absent list is an empty array
    base = types[column.kind]
    low = flavour.modern and (column.kind == "enum" or column.kind == "string"
                              and bool(LOW_CARDINALITY.search(column.name)))   # a Zeek enum is a name
    if key:
        return f"LowCardinality({base})" if low else base
    return f"LowCardinality(Nullable({base}))" if low else f"Nullable({base})"


def column_definition(column: Column, table: Table, flavour: Flavour) -> str:
    key = column.name in table.order_by or column.name == SENSOR_COLUMN.name
    text = f"{quote(column.name)} {column_type(column, flavour, key)}"
    codec = _CODECS.get(column.kind) if flavour.modern else None
    if codec and not (column.kind == "string" and LOW_CARDINALITY.search(column.name)):
        text += f" {codec}"
    return text


def _time_expr(table: Table, flavour: Flavour) -> str:
    return quote(table.time) if flavour.modern else f"toDateTime({quote(table.time)})"


def table_body(table: Table, flavour: Flavour) -> str:
    """The column list of a table, ``_row`` last."""
    cols = [column_definition(c, table, flavour) for c in table.all_columns]
    cols.append(f"{quote(ROW_ID_COLUMN)} UInt64")
    return "(\n    " + ",\n    ".join(cols) + "\n)"


def engine_clause(table: Table, database: str, flavour: Flavour, local_name: str) -> str:
    time = _time_expr(table, flavour)
    order = [quote(c) for c in table.order_by]
    engine = "MergeTree" if flavour.modern else "ReplacingMergeTree"
    args = ""
    if flavour.cluster:
        engine = "Replicated" + engine
        args = f"('/clickhouse/tables/{{shard}}/{database}/{local_name}', '{{replica}}')"
    if not flavour.modern:
        order.append(quote(ROW_ID_COLUMN))   # rows sent twice are merged away by their identity
    text = (f"ENGINE = {engine}{args}\nPARTITION BY toDate({time})\nORDER BY ({', '.join(order)})")
    if flavour.modern and flavour.retention_days:
        text += f"\nTTL toDateTime({quote(table.time)}) + INTERVAL {int(flavour.retention_days)} DAY"
    if flavour.modern and not flavour.cluster:
        text += f"\nSETTINGS non_replicated_deduplication_window = {DEDUP_WINDOW}"
    return text


def on_cluster(flavour: Flavour) -> str:
    return f" ON CLUSTER {quote(flavour.cluster)}" if flavour.cluster else ""


def create_statements(tables: dict[str, Table], database: str, flavour: Flavour) -> list[str]:
    """CREATE DATABASE and every CREATE TABLE, each IF NOT EXISTS (running them twice changes nothing)."""
    db = quote(database)
    out = [f"CREATE DATABASE IF NOT EXISTS {db}{on_cluster(flavour)}"]
    for table in tables.values():
        if flavour.cluster:
            local = f"{table.name}_local"
            out.append(f"CREATE TABLE IF NOT EXISTS {db}.{quote(local)}{on_cluster(flavour)}\n"
                       f"{table_body(table, flavour)}\n{engine_clause(table, database, flavour, local)}")
            out.append(f"CREATE TABLE IF NOT EXISTS {db}.{quote(table.name)}{on_cluster(flavour)}\n"
                       f"AS {db}.{quote(local)}\nENGINE = Distributed({quote(flavour.cluster)}, {db}, "
                       f"{quote(local)}, cityHash64({quote(table.device)}))")
        else:
            out.append(f"CREATE TABLE IF NOT EXISTS {db}.{quote(table.name)}\n{table_body(table, flavour)}\n"
                       f"{engine_clause(table, database, flavour, table.name)}")
    return out


def migration_statements(tables: dict[str, Table], database: str, flavour: Flavour,
                         existing: dict[str, dict[str, str]]) -> list[str]:
    """ALTER TABLE ... ADD COLUMN for every declared column an existing table lacks (a newer sensor added it).

    ``existing`` is table -> column -> type as the server has them (tables it lacks are created instead).
    Columns are added after the column that precedes them in the declaration; nothing is dropped or retyped.
    """
    db = quote(database)
    out = []
    for table in tables.values():
        names = [table.name] if not flavour.cluster else [f"{table.name}_local", table.name]
        for name in names:
            have = existing.get(name)
            if have is None:
                continue
            previous = None
            for column in (*table.all_columns, Column(ROW_ID_COLUMN, "count")):
                if column.name not in have:
                    typ = "UInt64" if column.name == ROW_ID_COLUMN else \
                        column_definition(column, table, flavour).split(" ", 1)[1]
                    after = f" AFTER {quote(previous)}" if previous else " FIRST" if flavour.modern else ""
                    out.append(f"ALTER TABLE {db}.{quote(name)}{on_cluster(flavour)} ADD COLUMN "
                               f"{quote(column.name)} {typ}{after}")
                previous = column.name
    return out
