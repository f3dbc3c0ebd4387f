"""The capture thread's side of a ClickHouse sink: rows gathered per table into batches, sealed by size and age.

Rows are kept as their JSON lines, the very bytes the JSONL sink writes: a run encodes each row once and
gives the line to both (``write_line``; sensor/sinks/shared.py; in ``analyze`` the delivery process reads the
lines from the files instead, sensor/clickhouse/follow.py), and the server parses the lines itself
(sensor/clickhouse/jsonrows.py).  A batch gets a random 43-bit id, which it keeps through every retry
(sensor/clickhouse/sink.py says why), and is sealed when it holds ``batch_rows`` rows or is ``flush_interval``
seconds old.

A batch may leave in pieces (``piece_bytes``): the delivery process's sink (process.py) takes each piece of
its lines as soon as it holds that many bytes, so the delivery process prepares and streams a batch to the
server while capture is still filling it (sensor/clickhouse/stream.py), and at the end of a run only the last
pieces are left to send.  Small pieces also keep the capture thread's buffers small (a batch of 50,000 rows is
megabytes, grown by copies).  The delivery thread's sink takes whole batches (``piece_bytes`` unbounded).
"""
from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any, Final, Iterator

import orjson
from mypy_extensions import mypyc_attr

from otsensor.sensor.clickhouse.tables import DOCUMENT_LOGS
from otsensor.sensor.clickhouse.zeek_tables import table_name
from otsensor.sensor.config import ClickHouseConfig
from otsensor.sensor.sinks.jsonl import encode_line

CLOCK_MASK: Final = 1023            # a look at the clock for the flush interval every 1,024 rows
UNBOUNDED: Final = 1 << 60          # piece_bytes of a sink that takes whole batches
CROSSING: Final = 4096              # a piece's buffer holds piece_bytes and the line that crosses it, mostly
LARGEST_FIRST: Final = 1 << 20      # a buffer's first size at most (whole batches: it doubles from there)


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
    """A whole batch, as the spool keeps it: the same form as a piece (a header line with the table, id and
    row count, enough to count a spool without reading the rows; then the rows' JSON lines)."""
    table, batch_id, rows = batch
    if rows.__class__ is not Lines:
        rows = Lines(b"\n".join(rows), len(rows))
    return b"".join((piece_head(table, batch_id, rows.count, 0, True), rows.body))


def piece_head(table: str, batch_id: int, rows: int, start: int, last: bool) -> bytes:
    """A piece's header line, newline included: which batch, which of its rows (``start``: the first one's index
    in the batch) and whether more of it follow.  The delivery process's pipe carries it apart from the lines,
    which go as they are (process.py): joined, every line would be copied once more."""
    return orjson.dumps({"table": table, "batch": batch_id, "rows": rows, "lines": True, "start": start,
                         "more": not last}, option=orjson.OPT_APPEND_NEWLINE)


def piece_from(head: bytes, body: bytes | bytearray) -> tuple[str, int, Lines, int, bool]:
    """(table, batch id, its lines, the first one's index in the batch, last?) of a piece's header line and its
    lines (the body as it is: not copied)."""
    return piece_of(orjson.loads(head), body)


def piece_of(info: dict[str, Any], body: bytes | bytearray) -> tuple[str, int, Lines, int, bool]:
    """piece_from's, of the header line already parsed."""
    return info["table"], info["batch"], Lines(body, info["rows"]), info.get("start", 0), not info.get("more")


def joined(pieces: list[Lines]) -> Lines:
    """A batch's pieces as one (the empty ones left out: a batch sealed by age may end with an empty piece)."""
    full = [p for p in pieces if p.count]
    if len(full) == 1:
        return full[0]
    return Lines(b"\n".join([bytes(p.body) for p in full]), sum(p.count for p in full))


def decode_header(payload: bytes) -> dict[str, Any]:
    return orjson.loads(payload[:payload.index(b"\n")])


def decode_batch(payload: bytes) -> Batch:
    """The batch, its rows as Lines; a spool written by an older sensor (rows as one JSON list) too."""
    head, _, body = payload.partition(b"\n")
    info = orjson.loads(head)
    if not info.get("lines"):
        return info["table"], info["batch"], [orjson.dumps(row, default=str) for row in orjson.loads(body)]
    return info["table"], info["batch"], Lines(body, info["rows"])


class OpenBatch:
    """A table's open batch: its id, its rows already handed over in pieces, and its current piece's lines
    (newline included) in the first ``fill`` bytes of a buffer made at its full size.

    Not a bytearray grown line by line: it grows by an eighth at a time, and its reallocations copied each
    piece about eight times over (perf over the 1M-packet mix: memmove was most of what the batching added to the
    capture process; this buffer halves its samples, and the slice each line is copied through costs some of it
    back: -2% CPU on the mix, +3% on Modbus, both inside the noise, bench/README.md round six).  Not a list of
    the lines joined at the cut either: orjson's bytes kept alive by the thousand cost the allocator more (+7%
    of the mix's capture CPU)."""

    def __init__(self, batch_id: int, body: bytearray) -> None:
        self.batch_id = batch_id
        self.handed = 0
        self.rows = 0
        self.fill = 0
        self.body = body

    def add(self, line: bytes) -> int:
        """``line`` appended to the current piece; the bytes it now holds."""
        fill = self.fill
        end = fill + len(line)
        body = self.body
        if end > len(body):             # doubled: at most one more copy of the piece so far
            body += bytes(max(len(body), len(line)))
        body[fill:end] = line
        self.fill = end
        self.rows += 1
        return end

    def take_piece(self, fresh: bytearray) -> Lines:
        """The current piece's lines, without the last one's newline; ``fresh`` (the next piece's buffer) in its
        place.  Cutting off the unused room (and the newline) shrinks the buffer where it is: no copy."""
        body = self.body
        del body[max(self.fill - 1, 0):]
        piece = Lines(body, self.rows)
        self.handed += self.rows
        self.rows = self.fill = 0
        self.body = fresh
        return piece


@mypyc_attr(allow_interpreted_subclasses=True)   # the delivery thread's and the delivery process's sinks
class Batcher:
    """``write`` (capture thread only) gathers rows of the logs in ``tables``; ``hand_over_piece`` takes each
    piece, ``hand_over`` each whole batch (the module docstring).

    Compiled (setup.py HOT_PATH): ``write_line`` runs for every row a run writes."""

    wants_documents = True   # assets and graph edges are written to it at the end of a run

    def __init__(self, cfg: ClickHouseConfig, tables: Any, clock: Callable[[], float] = time.monotonic,
                 piece_bytes: int = UNBOUNDED) -> None:
        self.cfg = cfg
        self.clock = clock
        self.table_names = frozenset(tables)
        self.open: dict[str, OpenBatch] = {}     # per table with an open batch
        self.sent: dict[str, int] = {}
        self.skipped: dict[str, int] = {}
        self.writes = 0
        self.batch_rows = cfg.batch_rows
        self.piece_bytes = piece_bytes
        self.buffer_size = min(piece_bytes + CROSSING, LARGEST_FIRST)
        self.next_flush = clock() + cfg.flush_interval
        # hand_over_piece's own: each batch's table and pieces until its last
        self.pieces: dict[int, tuple[str, list[Lines]]] = {}

    def hand_over(self, batch: Batch) -> None:
        raise NotImplementedError

    def fresh_buffer(self) -> bytearray:
        """A buffer for a table's next piece, ``buffer_size`` long (the run's sink reuses those of pieces the
        delivery process has confirmed: process.py)."""
        return bytearray(self.buffer_size)

    def hand_over_piece(self, table: str, batch_id: int, rows: Lines, start: int, last: bool) -> None:
        """One piece of a batch (``start``: its first row's index in the batch); this one joins the pieces and
        hands the whole batch over.  The delivery process's sink pipes each piece instead."""
        if last and not start:
            self.hand_over((table, batch_id, rows))
            return
        pieces = self.pieces.setdefault(batch_id, (table, []))[1]
        pieces.append(rows)
        if last:
            del self.pieces[batch_id]
            self.hand_over((table, batch_id, joined(pieces)))

    def hand_over_unfinished(self) -> None:
        """Every batch whose last piece never came, whole with the pieces that came (the sender died)."""
        for batch_id, (table, pieces) in list(self.pieces.items()):
            del self.pieces[batch_id]
            self.hand_over((table, batch_id, joined(pieces)))

    def write(self, log: str, row: dict[str, Any]) -> None:
        self.write_line(log, encode_line(row))

    def write_text(self, log: str, row: str) -> None:
        """A row already encoded as its JSON text (the JSONL sink's, without the newline)."""
        self.write_line(log, row.encode() + b"\n")

    def write_line(self, log: str, row: bytes) -> None:
        """A row already encoded as its JSON line, as the JSONL sink writes it (UTF-8, newline included)."""
        batch = self.open.get(log)
        if batch is None:
            if log not in self.table_names:
                self.skipped[log] = self.skipped.get(log, 0) + 1
                return
            batch = self.open[log] = OpenBatch(random.getrandbits(43), self.fresh_buffer())
        if batch.add(row) >= self.piece_bytes or batch.rows + batch.handed >= self.batch_rows:
            self._cut(log, batch)
        self.writes += 1
        if not self.writes & CLOCK_MASK and self.clock() >= self.next_flush:
            self.poll()

    def _cut(self, log: str, batch: OpenBatch) -> None:
        """The current piece handed over: the batch's last if it is full, else the batch takes more."""
        rows, start = batch.rows, batch.handed
        if rows + start >= self.batch_rows:
            self.seal(log)
            return
        self.sent[log] = self.sent.get(log, 0) + rows          # counted here: write() is the hot path
        self.hand_over_piece(log, batch.batch_id, batch.take_piece(self.fresh_buffer()), start, False)

    def poll(self) -> None:
        """Seal every batch once the flush interval has passed (a long-running sensor calls it every second)."""
        if self.clock() < self.next_flush:
            return
        self.next_flush = self.clock() + self.cfg.flush_interval
        self.seal_all()

    def flush(self) -> None:
        self.poll()

    def seal_all(self) -> None:
        for log in [log for log, batch in self.open.items() if batch.rows or batch.handed]:
            self.seal(log)

    def seal(self, log: str) -> None:
        """The batch's last piece handed over (empty if its rows all left in earlier pieces); the next row of
        ``log`` opens a new batch."""
        batch = self.open.pop(log)
        rows, start = batch.rows, batch.handed
        self.sent[log] = self.sent.get(log, 0) + rows
        self.hand_over_piece(log, batch.batch_id, batch.take_piece(bytearray()), start, True)

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
        for log, batch in self.open.items():
            counts[log] = counts.get(log, 0) + batch.rows
        return counts

    def skipped_problems(self) -> list[str]:
        return [f"{n} row(s) of log {log!r} not sent: no table for it (its records declare no columns)"
                for log, n in sorted(self.skipped.items())]
