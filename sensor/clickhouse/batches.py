"""The capture thread's side of a ClickHouse sink: rows gathered per table into batches, sealed by size and age.

Rows are kept as their JSON lines, the very bytes the JSONL sink writes: a run encodes each row once and
gives the line to both (``write_line``; sensor/sinks/shared.py), and the server parses the lines itself
(sensor/clickhouse/jsonrows.py).  A sealed batch is its lines joined into one body (``Lines``: one join per
batch, nothing per row), gets a random 43-bit id, which it keeps through every retry (sensor/clickhouse/sink.py
says why), and is handed over by the subclass: queued for a delivery thread, or piped to a delivery process.
"""
from __future__ import annotations

import random
import time
from typing import Any, Iterator

import orjson

from otsensor.sensor.clickhouse.tables import DOCUMENT_LOGS
from otsensor.sensor.clickhouse.zeek_tables import table_name
from otsensor.sensor.config import ClickHouseConfig
from otsensor.sensor.sinks.jsonl import encode_line

CLOCK_MASK = 1023                   # a look at the clock for the flush interval every 1,024 rows


class Lines:
    """A batch's rows as one body: their JSON lines joined by newlines (no newline at the end; a bytearray on
    the capture side, where the lines were appended to it).  Kept whole from the capture thread through the
    pipe to the insert: only a row that must be reshaped is split out."""

    __slots__ = ("body", "count")

    def __init__(self, body: bytes | bytearray, count: int) -> None:
        self.body = body
        self.count = count

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[bytes]:
        return iter(bytes(self.body).split(b"\n") if self.count else ())


Batch = tuple[str, int, Any]      # (table, id, rows: Lines, or a list of JSON lines from an older spool)


def encode_batch(batch: Batch) -> bytes:
    """A header line (table, id, row count: enough to count a spool without reading the rows), then the rows'
    JSON lines (a JSON line holds no newline)."""
    table, batch_id, rows = batch
    body = rows.body if rows.__class__ is Lines else b"\n".join(rows)
    head = orjson.dumps({"table": table, "batch": batch_id, "rows": len(rows), "lines": True},
                        option=orjson.OPT_APPEND_NEWLINE)
    return b"".join((head, body))


def decode_header(payload: bytes) -> dict[str, Any]:
    return orjson.loads(payload[:payload.index(b"\n")])


def decode_batch(payload: bytes) -> Batch:
    """The batch, its rows as Lines; a spool written by an older sensor (rows as one JSON list) too."""
    head, _, body = payload.partition(b"\n")
    info = orjson.loads(head)
    if not info.get("lines"):
        return info["table"], info["batch"], [orjson.dumps(row, default=str) for row in orjson.loads(body)]
    return info["table"], info["batch"], Lines(body, info["rows"])


class Batcher:
    """``write`` (capture thread only) gathers rows of the logs in ``tables``; ``hand_over`` takes sealed batches."""

    wants_documents = True   # assets and graph edges are written to it at the end of a run

    def __init__(self, cfg: ClickHouseConfig, tables: Any, clock=time.monotonic) -> None:
        self.cfg = cfg
        self.clock = clock
        self.table_names = frozenset(tables)
        # per table, its rows' lines (newline included) appended to one buffer, and how many.  Not a list of the
        # lines: orjson's bytes kept alive by the thousand cost about 8 µs a row more to make (allocator).
        self.open: dict[str, bytearray] = {}
        self.open_rows: dict[str, int] = {}
        self.sent: dict[str, int] = {}
        self.skipped: dict[str, int] = {}
        self.writes = 0
        self.batch_rows = cfg.batch_rows
        self.next_flush = clock() + cfg.flush_interval

    def hand_over(self, batch: Batch) -> None:
        raise NotImplementedError

    def write(self, log: str, row: dict[str, Any]) -> None:
        self.write_line(log, encode_line(row))

    def write_text(self, log: str, row: str) -> None:
        """A row already encoded as its JSON text (the JSONL sink's, without the newline)."""
        self.write_line(log, row.encode() + b"\n")

    def write_line(self, log: str, row: bytes) -> None:
        """A row already encoded as its JSON line, as the JSONL sink writes it (UTF-8, newline included)."""
        body = self.open.get(log)
        if body is None:
            if log not in self.table_names:
                self.skipped[log] = self.skipped.get(log, 0) + 1
                return
            body = self.open[log] = bytearray()
            self.open_rows[log] = 0
        body += row
        rows = self.open_rows[log] = self.open_rows[log] + 1
        if rows >= self.batch_rows:
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
        for log in [log for log, rows in self.open_rows.items() if rows]:
            self.seal(log)

    def seal(self, log: str) -> None:
        body, rows = self.open.pop(log), self.open_rows.pop(log)
        del body[-1:]                                          # the last line's newline
        self.sent[log] = self.sent.get(log, 0) + rows          # counted here: write() is the hot path
        self.hand_over((log, random.getrandbits(43), Lines(body, rows)))

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
        for log, rows in self.open_rows.items():
            counts[log] = counts.get(log, 0) + rows
        return counts

    def skipped_problems(self) -> list[str]:
        return [f"{n} row(s) of log {log!r} not sent: no table for it (its records declare no columns)"
                for log, n in sorted(self.skipped.items())]
