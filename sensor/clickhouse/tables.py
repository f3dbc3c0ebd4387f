"""The ClickHouse tables: one per log, each from the columns its writer declares (one source of truth).

A protocol log's columns are its record class's ``COLUMNS`` after the pipeline's ``ROW_PREFIX``
(dissectors/base.py); ``conn``, ``alerts``, ``assets`` and ``graph_edges`` declare theirs beside the code
that writes them (sensor/flows/table.py, baselines/alerts.py, inventory.py, graph.py).  Every table adds
``sensor_id`` (which sensor wrote the row) and ``_row`` (the row's stable identity: the same on every
re-send, so a retried batch is recognised), and a few tables add search columns derived from nested values
(an alert's technique ids and zones) so the documented queries need no JSON functions, which old servers lack.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from otsensor.baselines.alerts import ALERT_COLUMNS
from otsensor.baselines.graph import EDGE_COLUMNS
from otsensor.baselines.inventory import ASSET_COLUMNS
from otsensor.dissectors.base import ROW_PREFIX, Column, Record, columns
from otsensor.dissectors.registry import default_registry
from otsensor.sensor.flows.table import CONN_COLUMNS

SENSOR_COLUMN = Column("sensor_id", "string")
ROW_ID_COLUMN = "_row"
DOCUMENT_LOGS = ("assets", "graph_edges")   # written once at the end of a run, from assets.json and graph.json


@dataclass(frozen=True)
class Table:
    """One log's table: its columns (Zeek vocabulary), which column dates a row (partitions, retention) and
    which lead the sort order (the device a query names first, then time)."""

    name: str
    columns: tuple[Column, ...]
    time: str = "ts"
    device: str = "id.resp_h"
    derived: tuple[Column, ...] = ()                                    # search columns ...
    derive: Callable[[dict[str, Any]], dict[str, Any]] | None = None   # ... and how a row gives them

    @property
    def all_columns(self) -> tuple[Column, ...]:
        """What the table holds: sensor_id, the log's columns, then the derived ones."""
        return (SENSOR_COLUMN, *self.columns, *self.derived)

    @property
    def order_by(self) -> tuple[str, ...]:
        return (self.device, self.time)


def _alert_search(row: dict[str, Any]) -> dict[str, Any]:
    zones = row.get("zones") or {}
    return {"technique_ids": [t.get("id") for t in row.get("techniques") or () if isinstance(t, dict)],
            "orig_zone": zones.get("orig_zone"), "resp_zone": zones.get("resp_zone")}


ALERT_SEARCH = columns("technique_ids:vector[string] orig_zone:string resp_zone:string")


def record_logs() -> dict[str, tuple[Column, ...]]:
    """log -> ROW_PREFIX + columns, for every record class that declares its columns."""
    default_registry()   # imports every protocol package, so every record class exists
    logs: dict[str, tuple[Column, ...]] = {}
    todo: list[type[Record]] = [Record]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.COLUMNS and cls.LOG not in logs:
            logs[cls.LOG] = ROW_PREFIX + cls.COLUMNS
    return logs


def all_tables() -> dict[str, Table]:
    """Every table, by log name, in a stable order: the protocol logs, then the pipeline's own."""
    tables = {log: Table(log, cols) for log, cols in sorted(record_logs().items())}
    tables["conn"] = Table("conn", CONN_COLUMNS)
    tables["alerts"] = Table("alerts", ALERT_COLUMNS, derived=ALERT_SEARCH, derive=_alert_search)
    tables["assets"] = Table("assets", ASSET_COLUMNS, time="last_seen", device="ip")
    tables["graph_edges"] = Table("graph_edges", EDGE_COLUMNS, time="last_seen", device="server")
    return tables
