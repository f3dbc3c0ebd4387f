"""Rows (the dicts every sink gets) to the columns of one INSERT, in the types the server's table has.

The sink no longer uses it (it sends JSON lines over HTTP: sensor/clickhouse/jsonrows.py); it stays for
bench/console_bench.py, which loads its plant over the native protocol.

The conversion is chosen per column from the type the server reports, not from its version, so a table
created by an older sensor or by hand still gets what it can hold.  Only the columns the batch's rows
actually carry are sent (most protocol columns are empty on most rows; the server fills the rest with
NULL): the cost of an insert follows the values, not the width of the table.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import orjson
from otsensor.sensor.clickhouse.tables import ROW_ID_COLUMN, SENSOR_COLUMN, Table

Convert = Callable[[list[Any]], list[Any]]
ROW_ID_BITS = 20                 # a batch holds at most 2**20 rows: _row = batch id << 20 | index
_MAPPED = b"\x00" * 10 + b"\xff\xff"


@lru_cache(maxsize=65536)
def ipv6_bytes(text: str) -> bytes | None:
    """An address as the 16 bytes of ClickHouse's IPv6 (IPv4 as ::ffff:a.b.c.d), None if it is not one."""
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    return _MAPPED + addr.packed if addr.version == 4 else addr.packed


def _inner(server_type: str) -> str:
    """``LowCardinality(Nullable(String))`` -> ``String``."""
    for wrapper in ("LowCardinality(", "Nullable("):
        if server_type.startswith(wrapper):
            server_type = server_type[len(wrapper):-1]
    return server_type


def _is_key(server_type: str) -> bool:
    return "Nullable(" not in server_type and not server_type.startswith("Array(")


def converter(kind: str, server_type: str) -> Convert | None:
    """How a column's values become what the driver writes for ``server_type`` (None: as they are)."""
    inner = _inner(server_type)
    key = _is_key(server_type)
    if server_type.startswith("Array("):
        return lambda values: [v if v is not None else [] for v in values]
    if inner.startswith("DateTime64"):   # the driver takes raw integers in the column's scale (6: microseconds)
        scale = 10 ** int(inner[11:].split(",")[0].rstrip(")") or 3)
        return lambda values: [round(v * scale) if v is not None else (0 if key else None) for v in values]
    if inner.startswith("DateTime"):
        return lambda values: [int(v) if v is not None else (0 if key else None) for v in values]
    if inner == "IPv6":
        zero = bytes(16)
        return lambda values: [(ipv6_bytes(v) if v is not None else None) or (zero if key else None)
                               for v in values]
    if inner == "String" and kind == "json":
        return lambda values: [orjson.dumps(v).decode() if v is not None else ("" if key else None)
                               for v in values]
    if inner == "String":
        return lambda values: [(v if v.__class__ is str else str(v)) if v is not None else ("" if key else None)
                               for v in values]
    if inner in ("UInt8", "Bool") and kind == "bool":
        return lambda values: [int(v) if v is not None else (0 if key else None) for v in values]
    if key:
        return lambda values: [v if v is not None else 0 for v in values]
    return None


class Inserter:
    """Builds the columns of a table's inserts, for the column types the server holds."""

    def __init__(self, table: Table, server_types: dict[str, str], sensor_id: str) -> None:
        self.table = table
        self.sensor_id = sensor_id
        kinds = {c.name: c.kind for c in table.all_columns}
        self.order = [c.name for c in table.all_columns if c.name in server_types]
        self.convert = {name: converter(kinds[name], server_types[name]) for name in self.order}
        self.required = [n for n in self.order if _is_key(server_types[n]) and n != SENSOR_COLUMN.name]
        self.has_row_id = ROW_ID_COLUMN in server_types
        self.unknown: set[str] = set()   # row keys the server's table has no column for

    def columns(self, rows: list[dict[str, Any]], batch_id: int) -> tuple[list[str], list[list[Any]]]:
        """Names and values of the batch's insert: the columns its rows carry, plus sensor_id and _row."""
        if self.table.derive is not None:
            rows = [{**row, **self.table.derive(row)} for row in rows]
        present = set(self.required)
        for row in rows:
            present.update(row)
        self.unknown |= present - set(self.convert)
        names = [n for n in self.order if n in present]
        data = []
        for name in names:
            values = [row.get(name) for row in rows]
            convert = self.convert[name]
            data.append(convert(values) if convert is not None else values)
        if SENSOR_COLUMN.name in self.convert:
            names.insert(0, SENSOR_COLUMN.name)
            data.insert(0, [self.sensor_id] * len(rows))
        if self.has_row_id:
            base = batch_id << ROW_ID_BITS
            names.append(ROW_ID_COLUMN)
            data.append(list(range(base, base + len(rows))))
        return names, data
