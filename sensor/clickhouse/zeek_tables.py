"""The Zeek-shaped logs of ``--zeek-logs`` as ClickHouse tables: DIR/zeek/<path>.log -> table ``zeek_<path>``.

Their columns are the logs' own, as the Zeek writer lays them out (sensor/zeek/sink.py: ``ts uid id.*``, the
message columns of per-message logs, then what the protocol's ZeekLog declares beside its script in
dissectors/<protocol>/zeek.py; conn.log's in sensor/zeek/conn.py), with Zeek's field names (``id.orig_h``)
and Zeek's types, which ddl.py maps like the records' (``enum`` as a name, ``set[..]`` as an array).  The
rows are the lines of Zeek's JSON form, the text ``--zeek-logs=json`` writes, so the server parses exactly
what the file holds; the ``zeek_`` prefix keeps them apart from our own ``conn``, ``modbus``, ... tables,
whose columns differ.

The tables are always part of the schema (``otsensor clickhouse schema`` and ``init``, and the sink's set-up),
whether or not a run writes Zeek logs: the schema does not depend on a run's options, and a fleet where
only some sensors write Zeek logs shares one schema.
"""
from __future__ import annotations

from otsensor.dissectors.base import Column
from otsensor.dissectors.registry import default_registry
from otsensor.dissectors.zeek import ZeekLog, ZeekScript
from otsensor.sensor.clickhouse.tables import Table, all_tables
from otsensor.sensor.zeek.conn import CONN_COLUMNS, IP_PROTO_COLUMN
from otsensor.sensor.zeek.sink import layout

PREFIX = "zeek_"


def table_name(path: str) -> str:
    """The table of the Zeek log ``path`` (``modbus_detailed`` -> ``zeek_modbus_detailed``)."""
    return PREFIX + path


def zeek_logs() -> dict[str, tuple[Column, ...]]:
    """Every Zeek log the sensor can write, path -> its columns in the writer's order."""
    default_registry()   # imports every protocol package, so every Zeek script exists
    logs: dict[str, tuple[Column, ...]] = {"conn": (*CONN_COLUMNS, IP_PROTO_COLUMN)}   # ip_proto: Zeek 7.1 on
    todo: list[type[ZeekScript]] = [ZeekScript]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        for log in cls.LOGS:
            logs.setdefault(log.path, _columns(log))
    return dict(sorted(logs.items()))


def _columns(log: ZeekLog) -> tuple[Column, ...]:
    names, kinds = layout(log)
    return tuple(Column(name, kind) for name, kind in zip(names, kinds))


def zeek_tables() -> dict[str, Table]:
    """The ``zeek_<path>`` tables, sorted by device then time as the protocol logs' (``id.resp_h, ts``)."""
    return {table_name(path): Table(table_name(path), cols) for path, cols in zeek_logs().items()}


def stored_tables() -> dict[str, Table]:
    """What the sink writes and the schema commands create: every log's table, then the Zeek logs'."""
    return {**all_tables(), **zeek_tables()}
