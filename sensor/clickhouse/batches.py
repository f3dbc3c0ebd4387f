"""The capture thread's side of a ClickHouse sink: rows gathered per table into batches, sealed by size and age.

Rows are kept as their JSON lines, the very text the JSONL sink writes: a run encodes each row once and
gives the text to both (``write_text``; sensor/sinks/shared.py), and the server parses the lines itself
(sensor/clickhouse/jsonrows.py).  A sealed batch gets a random 43-bit id, which it keeps through every retry
(sensor/clickhouse/sink.py says why), and is handed over by the subclass: queued for a delivery thread, or
piped to a delivery process.
"""
from __future__ import annotations

import random
import time
from typing import Any

import orjson

from otsensor.sensor.clickhouse.tables import DOCUMENT_LOGS
from otsensor.sensor.clickhouse.zeek_tables import table_name
from otsensor.sensor.config import ClickHouseConfig
from otsensor.sensor.sinks.jsonl import encode_text

CLOCK_MASK = 1023                   # a look at the clock for the flush interval every 1,024 rows
Batch = tuple[str, int, list[Any]]      # (table, id, rows: JSON lines, str on the capture side, bytes after a pipe)


def encode_batch(batch: Batch) -> bytes:
    """A header line (table, id, row count: enough to count a spool without reading the rows), then the rows'
    JSON lines (a JSON line holds no newline)."""
    table, batch_id, rows = batch
    body = "\n".join(rows).encode() if rows and rows[0].__class__ is str else b"\n".join(rows)
    return orjson.dumps({"table": table, "batch": batch_id, "rows": len(rows), "lines": True}) + b"\n" + body


def decode_header(payload: bytes) -> dict[str, Any]:
    return orjson.loads(payload[:payload.index(b"\n")])


def decode_batch(payload: bytes) -> Batch:
    """The batch, its rows as bytes lines; a spool written by an older sensor (rows as one JSON list) too."""
    head, _, body = payload.partition(b"\n")
    info = orjson.loads(head)
    if not info.get("lines"):
        return info["table"], info["batch"], [orjson.dumps(row, default=str) for row in orjson.loads(body)]
    return info["table"], info["batch"], body.split(b"\n") if info["rows"] else []


class Batcher:
    """``write`` (capture thread only) gathers rows of the logs in ``tables``; ``hand_over`` takes sealed batches."""

    wants_documents = True   # assets and graph edges are written to it at the end of a run

    def __init__(self, cfg: ClickHouseConfig, tables: Any, clock=time.monotonic) -> None:
        self.cfg = cfg
        self.clock = clock
        self.table_names = frozenset(tables)
        self.open: dict[str, list[str]] = {}
        self.sent: dict[str, int] = {}
        self.skipped: dict[str, int] = {}
        self.writes = 0
        self.batch_rows = cfg.batch_rows
        self.next_flush = clock() + cfg.flush_interval

    def hand_over(self, batch: Batch) -> None:
        raise NotImplementedError

    def write(self, log: str, row: dict[str, Any]) -> None:
        self.write_text(log, encode_text(row))

    def write_text(self, log: str, row: str) -> None:
        """A row already encoded as its JSON line (the JSONL sink's text, without the newline)."""
        rows = self.open.get(log)
        if rows is None:
            if log not in self.table_names:
                self.skipped[log] = self.skipped.get(log, 0) + 1
                return
            rows = self.open[log] = []
        rows.append(row)
        if len(rows) >= self.batch_rows:
            self.seal(log)
        self.writes += 1
        if not self.writes & CLOCK_MASK and self.clock() >= self.next_flush:
            self.poll()

    def poll(self) -> None:
        """Seal every batch once the flush interval has passed (a long-running sensor calls it every second)."""
        if self.clock() < self.next_flush:
            return
        self.next_flush = self.clock() + self.cfg.flush_interval
        self.seal_all()

    def flush(self) -> None:
        self.poll()

    def seal_all(self) -> None:
        for log in [log for log, rows in self.open.items() if rows]:
            self.seal(log)

    def seal(self, log: str) -> None:
        rows = self.open.pop(log)
        self.sent[log] = self.sent.get(log, 0) + len(rows)   # counted here: write() is the hot path
        self.hand_over((log, random.getrandbits(43), rows))

    def write_zeek(self, path: str, line: str) -> None:
        """A row of the Zeek log ``path`` as its line in Zeek's JSON form (sensor/clickhouse/zeek_tables.py)."""
        self.write_text(table_name(path), line)

    def write_documents(self, assets: list[dict[str, Any]], edges: list[dict[str, Any]]) -> None:
        """The run's inventory and graph, one row per asset and per edge."""
        for log, rows in zip(DOCUMENT_LOGS, (assets, edges)):
            for row in rows:
                self.write(log, row)

    def sent_counts(self) -> dict[str, int]:
        """Rows written to the sink per table: in sealed batches and in the open ones."""
        counts = dict(self.sent)
        for log, rows in self.open.items():
            counts[log] = counts.get(log, 0) + len(rows)
        return counts

    def skipped_problems(self) -> list[str]:
        return [f"{n} row(s) of log {log!r} not sent: no table for it (its records declare no columns)"
                for log, n in sorted(self.skipped.items())]
