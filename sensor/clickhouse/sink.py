"""The ClickHouse sink: every log into a table of its name, batched, from a thread of its own, nothing lost.

The capture thread only appends each row's JSON line to its table's open batch.  A batch is sealed when it
holds ``batch_rows`` rows or is ``flush_interval`` seconds old, given a random 43-bit id, and queued for the
delivery thread, which inserts it as ``INSERT ... FORMAT JSONEachRow`` over HTTP (compressed blocks; the
server parses the lines: sensor/clickhouse/http.py, jsonrows.py) and counts it delivered once the server has
confirmed the insert.  The set-up (the server's version, schema and settings) goes over HTTP too.

When the server is away, slow or refuses for a while, batches go to the sink's disk spool
(sensor/sinks/spool.py, the syslog sink's: CRC-checked, bounded, counted) and are replayed, oldest first,
once it is back, by this run or by the next one using the same spool directory.  Capture never waits on the
network: at worst a sealed batch is written to the local spool (when more than ``max_memory_rows`` rows are
queued in memory).  What a run could not deliver within ``drain_timeout`` at its end stays spooled.

A batch keeps its id through every retry, so a re-sent batch is not stored twice: on modern servers the
insert carries the id as its ``insert_deduplication_token``; on old ones every row carries
``_row = id << 20 | index`` at the end of a ReplacingMergeTree's sort key (sensor/clickhouse/ddl.py).
Several sinks (several processes) may write the same tables: ids are random, and each instance needs a
spool directory of its own (``instance``).
"""
from __future__ import annotations

import os
import re
import socket
import ssl
import threading
import time
from collections import deque
from typing import Any, Callable

import http.client

import orjson
from otsensor.sensor.clickhouse import connection
from otsensor.sensor.clickhouse.batches import Batch, Batcher, Lines, decode_batch, decode_header, encode_batch
from otsensor.sensor.clickhouse.ddl import MODERN_FROM, quote
from otsensor.sensor.clickhouse.http import HttpInserter, HttpServerError
from otsensor.sensor.clickhouse.jsonrows import JsonRows
from otsensor.sensor.clickhouse.stream import InsertStream
from otsensor.sensor.clickhouse.tables import Table
from otsensor.sensor.clickhouse.zeek_tables import stored_tables
from otsensor.sensor.config import ClickHouseConfig
from otsensor.sensor.sinks.spool import Spool, SpoolError

# Server errors that say the data itself is wrong: re-sending would fail again, so the batch is set aside.
BAD_DATA = frozenset({6, 25, 26, 27, 38, 41, 53, 69, 70, 72, 117, 131, 349})
MAX_STREAMS = 64          # batches streamed at once (one per table at most); more wait for their last piece


class SinkSetupError(Exception):
    """The sink cannot start as configured (one line naming it)."""


def default_name(target: connection.Target, instance: str | None, name: str | None = None) -> str:
    """Names the spool directory: ``name``, else the server and database; ``instance`` tells apart the
    sinks of several processes writing the same tables (each needs a spool of its own)."""
    base = name or f"clickhouse-{target.host}-{target.port}-{target.database}"
    return re.sub(r"[^A-Za-z0-9.-]+", "-", base + (f"-{instance}" if instance else "")).strip("-")


class ClickHouseSink(Batcher):
    """See the module docstring.  ``write`` is called by the capture thread only."""

    def __init__(self, cfg: ClickHouseConfig, spool_dir: str, instance: str | None = None,
                 clock=time.monotonic) -> None:
        try:
            self.target = connection.resolve(cfg)
        except connection.ClickHouseError as exc:
            raise SinkSetupError(f"clickhouse sink: {exc}") from None
        self.tables: dict[str, Table] = stored_tables()
        super().__init__(cfg, self.tables, clock)
        self.name = default_name(self.target, instance, cfg.name)
        self.sensor_id = cfg.sensor_id or socket.gethostname()
        self.spool_path = os.path.join(spool_dir, self.name)
        try:
            self.spool = Spool(self.spool_path, max_bytes=cfg.spool_max_bytes)
        except SpoolError as exc:
            raise SinkSetupError(f"clickhouse sink {self.name!r}: {exc}") from None
        self.spool_lock = threading.Lock()   # the spool, and every count of a batch's outcome (_settled)
        # told each batch id once its rows are counted delivered, spooled, dropped or rejected, with the lock
        # held (so that calls come in the order of the counts): the delivery process confirms them (process.py)
        self.on_settled: Callable[[int], None] | None = None
        self.sent_pos = self.spool.ack_pos
        self.sealed_rows = 0
        # handed over: sealed batches waiting for the delivery thread (the reading thread and streams hand over)
        self.queue: deque[Batch] = deque()
        self.hand_lock = threading.Lock()
        # the delivery process's batches being inserted as their pieces come (take_piece, stream.py)
        self.streams: dict[int, InsertStream] = {}
        self.wake = threading.Event()
        # delivery thread's state
        self.taken_rows = 0
        self.delivered: dict[str, int] = {}
        self.spooled: dict[str, int] = {}
        self.dropped: dict[str, int] = {}
        self.rejected: dict[str, int] = {}
        self.from_previous_run = self._count_spooled()
        self.conn: HttpInserter | None = None
        self.shapers: dict[str, JsonRows] = {}
        self.reshaped: set[str] = set()     # tables whose lines a server refused as they were (jsonrows.py)
        self.version: tuple[int, ...] = ()
        self.modern = False
        self.next_attempt = 0.0
        self.backoff = cfg.backoff_initial
        self.last_error: str | None = None
        self.statements: list[str] = []
        # CPU seconds of the delivery thread per part (bench/clickhouse_bench.py prints them); "read" is the
        # delivery process's reading thread (process.py)
        self.cpu_parts = {"read": 0.0, "prepare": 0.0, "compress": 0.0, "send": 0.0}
        self.closing = False
        self.deadline = float("inf")
        self.thread = threading.Thread(target=self._deliver_loop, name=f"otsensor-{self.name}", daemon=True)
        self.closed = False

    # -- set-up ----------------------------------------------------------------------------------------

    def start(self) -> None:
        """Connect once now: a wrong password, database or TLS setting stops the run before it starts; an
        unreachable server does not (rows wait in the spool)."""
        try:
            self._connect()
        except connection.ClickHouseError as exc:
            raise SinkSetupError(f"clickhouse sink ({self.target.display}): {exc}") from None
        except Exception as exc:  # noqa: BLE001 - the driver's errors vary; classified here
            if not self._retryable(exc) or _is_auth(exc):
                raise SinkSetupError(f"clickhouse sink ({self.target.display}): {_one_line(exc)}") from None
            self._failed(exc)
        self.thread.start()

    def _connect(self) -> None:
        """Set-up (version, schema, settings) and then the inserts, all over HTTP (sensor/clickhouse/http.py)."""
        inserter = HttpInserter(self.cfg, self.target)
        try:
            version, types, ran = connection.ensure_schema(inserter, self.cfg, self.target, self.tables,
                                                           self.cfg.create_tables)
            known = connection.input_settings(inserter)
        except (OSError, http.client.HTTPException) as exc:
            inserter.close()
            if isinstance(exc, ssl.SSLError):   # a TLS setting (the CA, the name): configuration, not the network
                raise connection.ClickHouseError(f"HTTPS port {inserter.port}: {_one_line(exc)}") from None
            if self._native_port_answers():   # the server is there: its HTTP port is not where configured
                raise connection.ClickHouseError(f"HTTP port {inserter.port}: {_one_line(exc)} (set http_port)") from None
            raise
        self.statements += ran
        self.conn, self.version = inserter, version
        self.modern = version >= MODERN_FROM   # its tables remember dedup tokens (ddl.py)
        self.shapers = {name: JsonRows(table, types[name], self.sensor_id, known)
                        for name, table in self.tables.items() if name in types}
        self.backoff = self.cfg.backoff_initial

    def _native_port_answers(self) -> bool:
        try:
            socket.create_connection((self.target.host, self.target.port), self.cfg.connect_timeout).close()
        except OSError:
            return False
        return True

    # -- sealed batches (capture thread) --------------------------------------------------------------

    def hand_over(self, batch: Batch) -> None:
        """A whole batch: to its stream, if it has one (``take_piece``), else to the delivery thread."""
        stream = self.streams.get(batch[1])
        if stream is not None and stream.batch is None:
            stream.finish(batch)
            return
        rows = batch[2]
        with self.hand_lock:
            spill = self.sealed_rows - self.taken_rows + len(rows) > self.cfg.max_memory_rows
            if not spill:
                self.sealed_rows += len(rows)
                self.queue.append(batch)
        if spill:
            self._spill(batch)                # the server is behind: keep memory bounded, on disk
        self.wake.set()

    # -- batches in pieces (the delivery process's reading thread) -------------------------------------

    def take_piece(self, table: str, batch_id: int, rows: Lines, start: int, last: bool) -> None:
        """A piece of a batch from the capture process: streamed to the server as it comes when it can be
        (stream.py), and kept until the batch is whole (``hand_over_piece``), which goes to its stream or, a
        batch that came whole or has no stream, to the delivery thread (``hand_over``)."""
        stream = self.streams.get(batch_id)
        if stream is None and not start and not last:
            stream = self._open_stream(table, batch_id)
        if stream is not None:
            stream.add(rows, start)
        self.hand_over_piece(table, batch_id, rows, start, last)

    def _open_stream(self, table: str, batch_id: int) -> InsertStream | None:
        """A stream for a batch, when the server is connected, takes this table's lines as they are, and merges
        a re-sent row with its first copy (old servers' tables; stream.py says why not with dedup tokens)."""
        shaper = self.shapers.get(table)
        if (self.conn is None or self.modern or shaper is None or table in self.reshaped or self.closing
                or len(self.streams) >= MAX_STREAMS):
            return None
        stream = InsertStream(self, self.conn, shaper, self._insert_query(table), batch_id,
                              self._insert_settings(shaper, batch_id))
        self.streams[batch_id] = stream
        return stream

    def stream_done(self, stream: InsertStream) -> None:
        """A stream's batch is stored (its thread).  Whoever takes the stream out of ``streams`` settles its
        batch, once: here, or the end of the run for a stream that did not end in time (``_end_streams``)."""
        if self.streams.pop(stream.batch_id, None) is None:
            return
        self._stream_cpu(stream)
        self._count(self.delivered, stream.batch, from_spool=False)      # type: ignore[arg-type]

    def stream_failed(self, stream: InsertStream, exc: BaseException) -> None:
        """A stream failed (its thread): its batch goes the delivery thread's way, which retries, reshapes,
        rejects or spools it."""
        if self.streams.pop(stream.batch_id, None) is None:
            return
        self._stream_cpu(stream)
        self.last_error = _one_line(exc)
        self.hand_over(stream.batch)                                     # type: ignore[arg-type]

    def _stream_cpu(self, stream: InsertStream) -> None:
        with self.spool_lock:
            for part, seconds in stream.cpu.items():
                self.cpu_parts[part] += seconds

    def _end_streams(self) -> None:
        """At the end: a batch whose last piece never came (the capture process died) is taken as it is; then
        every stream is waited for, within the drain time."""
        self.hand_over_unfinished()
        deadline = self.clock() + self.cfg.drain_timeout + self.cfg.send_timeout
        for stream in list(self.streams.values()):
            stream.thread.join(max(0.0, deadline - self.clock()))
        for stream in list(self.streams.values()):   # not ended in time: cut off, and its batch spooled here
            stream.abort()
            if self.streams.pop(stream.batch_id, None) is not None:
                self._spill(stream.batch)                                # type: ignore[arg-type]

    # -- the spool (either thread, under the lock) -----------------------------------------------------

    def _spill(self, batch: Batch) -> None:
        payload = encode_batch(batch)
        with self.spool_lock:   # the counts too: both threads spill
            self._settled(self.spooled if self.spool.append(payload) else self.dropped, batch)

    def _settled(self, counts: dict[str, int], batch: Batch) -> None:
        """``batch``'s rows counted in ``counts`` (the spool lock held)."""
        counts[batch[0]] = counts.get(batch[0], 0) + len(batch[2])
        if self.on_settled is not None:
            self.on_settled(batch[1])

    def counts(self) -> dict[str, dict[str, int]]:
        """Rows per outcome and table, as they are now (call with the spool lock held for a consistent copy)."""
        return {"delivered": dict(self.delivered), "spooled": dict(self.spooled), "dropped": dict(self.dropped),
                "rejected": dict(self.rejected)}

    def _count_spooled(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for _, payload in self.spool.read_from(self.spool.ack_pos):
            head = decode_header(payload)
            counts[head["table"]] = counts.get(head["table"], 0) + head["rows"]
        self.spooled = dict(counts)
        return counts

    # -- delivery (delivery thread) --------------------------------------------------------------------

    def _deliver_loop(self) -> None:
        while True:
            self.wake.wait(timeout=min(1.0, self.cfg.flush_interval))
            self.wake.clear()
            done = self._deliver_what_is_due()
            if self.closing and (done or self.clock() >= self.deadline):
                break
        self._spill_queue()

    def _deliver_what_is_due(self) -> bool:
        """One round: (re)connect when due, then the spool oldest first, then the queue. True if all is sent."""
        if self.conn is None and not self._reconnect():
            self._spill_queue()
            return not self.spool.pending and not self.queue
        if not self._send_spooled():
            return False
        while self.queue:
            batch = self.queue.popleft()
            self.taken_rows += len(batch[2])
            if not self._insert(batch):
                self._spill(batch)
                self._spill_queue()
                return False
        return not self.spool.pending

    def _spill_queue(self) -> None:
        while self.queue:
            batch = self.queue.popleft()
            self.taken_rows += len(batch[2])
            self._spill(batch)

    def _send_spooled(self) -> bool:
        while True:
            with self.spool_lock:
                record = next(iter(self.spool.read_from(self.sent_pos)), None)
            if record is None:
                return True
            pos, payload = record
            batch = decode_batch(payload)
            if not self._insert(batch, from_spool=True):
                return False
            with self.spool_lock:
                self.spool.ack(pos, 1)
            self.sent_pos = pos

    def _insert(self, batch: Batch, from_spool: bool = False) -> bool:
        """Insert one batch and count it delivered; False when it must wait (it is kept).  A batch the server
        refuses as bad data is tried once more reshaped (jsonrows.py), then set aside (written to
        ``rejected.jsonl`` in the spool directory) and counted rejected, not delivered, and True is returned.
        A batch ``from_spool`` is counted spooled no more in the same step."""
        table, batch_id, rows = batch
        shaper = self.shapers.get(table)
        if shaper is None or self.conn is None:
            self.last_error = f"table {self.target.database}.{table} does not exist (otsensor clickhouse init)"
            return False
        settings = self._insert_settings(shaper, batch_id)
        reshape = table in self.reshaped
        started = time.thread_time()
        body = shaper.body(rows, batch_id, reshape)
        prepared = time.thread_time()
        compressed = self.conn.compress_cpu
        try:
            self.conn.insert(self._insert_query(table), body, settings)
        except Exception as exc:  # noqa: BLE001 - network, server and data errors; classified below
            self._count_cpu(started, prepared, compressed)
            if self._retryable(exc):
                self._failed(exc)
                return False
            if not reshape and not shaper.reshape:
                self.reshaped.add(table)
                return self._insert(batch, from_spool)
            self._reject(batch, exc, from_spool)
            return True
        self._count_cpu(started, prepared, compressed)
        self._count(self.delivered, batch, from_spool)
        return True

    def _insert_query(self, table: str) -> str:
        return f"INSERT INTO {quote(self.target.database)}.{quote(table)} FORMAT JSONEachRow"

    def _insert_settings(self, shaper: JsonRows, batch_id: int) -> dict[str, Any]:
        settings = dict(shaper.settings)
        if self.modern:
            settings["insert_deduplication_token"] = f"{batch_id:x}"
        if self.cfg.cluster:   # a Distributed table answers once every shard has the rows, not on queueing them
            settings["insert_distributed_sync"] = 1
        return settings

    def _count_cpu(self, started: float, prepared: float, compressed_before: float) -> None:
        compressed = (self.conn.compress_cpu if self.conn is not None else compressed_before) - compressed_before
        parts = self.cpu_parts
        parts["prepare"] += prepared - started
        parts["compress"] += compressed
        parts["send"] += time.thread_time() - prepared - compressed

    def _reconnect(self) -> bool:
        if self.clock() < self.next_attempt and not self.closing:
            return False
        if self.clock() < self.next_attempt:
            time.sleep(max(0.0, min(self.next_attempt, self.deadline) - self.clock()))
        try:
            self._connect()
        except Exception as exc:  # noqa: BLE001
            self._failed(exc)
            return False
        return True

    def _failed(self, exc: BaseException) -> None:
        self.last_error = _one_line(exc)
        if self.conn is not None:
            self.conn.close()
        self.conn = None
        self.sent_pos = self.spool.ack_pos     # what was not confirmed is sent again, with the same batch ids
        self.next_attempt = self.clock() + self.backoff
        self.backoff = min(self.backoff * 2, self.cfg.backoff_max)

    def _reject(self, batch: Batch, exc: BaseException, from_spool: bool) -> None:
        table, batch_id, rows = batch
        self.last_error = f"{table}: batch {batch_id:x} refused: {_one_line(exc)}"
        self._count(self.rejected, batch, from_spool)
        try:
            with open(os.path.join(self.spool_path, "rejected.jsonl"), "ab") as fh:
                fh.write(b"".join(orjson.dumps({"table": table, "batch": batch_id, "row": _parsed(row)}) + b"\n"
                                  for row in rows))
        except OSError as exc2:
            self.last_error += f"; cannot keep it: {exc2.strerror or exc2}"

    def _count(self, counts: dict[str, int], batch: Batch, from_spool: bool) -> None:
        with self.spool_lock:   # one step: a copy of the counts never holds a batch twice
            if from_spool:
                self.spooled[batch[0]] = self.spooled.get(batch[0], 0) - len(batch[2])
            self._settled(counts, batch)

    @staticmethod
    def _retryable(exc: BaseException) -> bool:
        if isinstance(exc, (OSError, EOFError, http.client.HTTPException)):
            return True
        if isinstance(exc, HttpServerError):      # what the sink's requests raise: no need of the driver
            return exc.code not in BAD_DATA
        errors = connection.driver().errors
        if isinstance(exc, (OSError, EOFError, http.client.HTTPException, errors.NetworkError,
                            errors.SocketTimeoutError, errors.UnexpectedPacketFromServerError)):
            return True
        return isinstance(exc, (errors.ServerException, HttpServerError)) and exc.code not in BAD_DATA

    # -- the end ---------------------------------------------------------------------------------------

    def close(self) -> None:
        """Deliver what is pending within ``drain_timeout``; the rest stays spooled for the next run."""
        if self.closed:
            return
        self.seal_all()
        self._end_streams()
        self.deadline = self.clock() + self.cfg.drain_timeout
        self.closing = True
        self.wake.set()
        if self.thread.is_alive():
            self.thread.join(self.cfg.drain_timeout + self.cfg.send_timeout + self.cfg.connect_timeout)
        self._spill_queue()
        with self.spool_lock:
            self.spool.close()
        if self.conn is not None:
            self.conn.close()
        self.closed = True

    def report(self) -> dict[str, Any]:
        """Rows per table: sent to the sink, delivered, left spooled, dropped (spool full), rejected."""
        sent = self.sent_counts()
        names = sorted(set(sent) | set(self.delivered) | {t for counts in (self.spooled, self.dropped, self.rejected)
                                                           for t, n in counts.items() if n})
        tables = {t: {"sent": sent.get(t, 0), "delivered": self.delivered.get(t, 0),
                      "spooled": self.spooled.get(t, 0), "dropped": self.dropped.get(t, 0),
                      "rejected": self.rejected.get(t, 0)} for t in names}
        problems = self.skipped_problems()
        if any(self.rejected.values()):
            problems.append(f"{sum(self.rejected.values())} row(s) refused by the server, kept in "
                            f"{os.path.join(self.spool_path, 'rejected.jsonl')} ({self.last_error})")
        return {"name": self.name, "url": self.target.display, "sensor_id": self.sensor_id,
                "server_version": ".".join(map(str, self.version)) or None,
                "accepted": sum(sent.values()), "delivered": sum(self.delivered.values()),
                "spooled": sum(self.spooled.values()), "dropped": sum(self.dropped.values()),
                "rejected": sum(self.rejected.values()), "filtered": sum(self.skipped.values()),
                "from_previous_run": sum(self.from_previous_run.values()), "tables": tables,
                "spool_dir": self.spool_path, "last_error": self.last_error, "spool_error": self.spool.error,
                "problems": problems, "delivery_cpu_parts": {k: round(v, 3) for k, v in self.cpu_parts.items()}}


def _parsed(row: bytes) -> Any:
    """A refused row as it is kept: its JSON, or its text when it is not JSON."""
    try:
        return orjson.loads(row)
    except orjson.JSONDecodeError:
        return row.decode("utf-8", "replace")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def _is_auth(exc: BaseException) -> bool:
    """Wrong user or password (516, 192, 193, 194), unknown database after set-up (81): configuration."""
    return getattr(exc, "code", None) in (81, 192, 193, 194, 516)
