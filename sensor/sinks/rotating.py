"""The file sink of `otsensor run`: JSON-lines logs rotated by time and size, written by a thread of their own.

The capture thread only encodes a row and appends it to a batch in memory; every second (or every
BATCH_BYTES) the batch goes to a writer thread through a queue bounded by ``write_buffer`` bytes.  When the
disk is slower than the traffic and the queue is full, the batch is dropped and its rows counted per log
(``records_dropped``): capture never waits for the disk.  A write that fails (disk full) is undone to the
last whole line and counted the same way.  Documents (stats.json, summary.json, ...) go through the same
queue, so stats.json never counts a line that is not on disk yet.

Rotation (names and compression: sensor/sinks/archive.py) happens on the writer thread at each interval
boundary of the wall clock (UTC, aligned: hourly on the hour) and when a file reaches ``rotate_size``.  The
previous run's logs are archived, not deleted, when the sink starts.  `otsensor analyze` keeps plain files
(sinks/jsonl.py): a capture file has no wall-clock hours.
"""
from __future__ import annotations

import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

from otsensor.sensor.sinks.archive import ROTATED, Archive, free_name, interval_start, stamp
from otsensor.sensor.sinks.jsonl import encode_line

BATCH_BYTES = 256 << 10    # a batch this large goes to the writer at once, not at the next flush
WAKE = 0.5                 # seconds the writer sleeps at most: how late an interval boundary may be seen
KEPT_WHEN_BEHIND = frozenset({"alerts"})


@dataclass(frozen=True)
class Rotation:
    interval: float = 3600.0          # seconds; intervals are aligned on the epoch (UTC)
    size: int = 1 << 30               # a file this large is rotated before its interval ends
    max_disk: int | None = None       # bytes the logs may take in the directory (oldest rotated files go)
    write_buffer: int = 64 << 20      # bytes waiting for the writer before new batches are dropped


class RotatingJsonlSink:
    """Writes ``<directory>/<log>.jsonl`` like JsonlSink, rotated and archived; see the module docstring."""

    def __init__(self, directory: str, rotation: Rotation, logs: frozenset[str],
                 clock: Callable[[], float] = time.time) -> None:
        self.directory = directory
        self.rotation = rotation
        self.clock = clock
        self.counts: dict[str, int] = {}          # rows accepted per log
        self.files: set[str] = set()              # logs that received a row (the Sink of analyze has a dict)
        self.queue_dropped: dict[str, int] = {}   # rows lost because the writer was behind (capture thread)
        self.write_dropped: dict[str, int] = {}   # rows lost to a failed write (writer thread)
        self.write_errors = 0
        self.last_error: str | None = None
        # per log, its lines appended to one buffer, and how many: orjson's bytes kept alive by the hundred
        # (a list of lines) cost several µs a row more to make (allocator), a copy into a buffer a fraction of one
        self._batch: dict[str, bytearray] = {}
        self._batch_rows: dict[str, int] = {}
        self._batch_bytes = 0
        self._queue: deque[tuple[str, Any]] = deque()
        self._queued_bytes = 0
        self._documents: dict[str, bytes] = {}
        self._cond = threading.Condition()
        self._stopping = False
        self._open: dict[str, tuple[Any, int]] = {}   # writer thread: log -> (file, size)
        self._start = interval_start(clock(), rotation.interval)
        os.makedirs(directory, exist_ok=True)
        self.archive = Archive(directory, rotation.max_disk)
        self._adopt_previous(logs)
        self._thread = threading.Thread(target=self._write_loop, name="otsensor-writer", daemon=True)
        self._thread.start()

    # -- the capture thread ----------------------------------------------------------------------------

    def write(self, log: str, row: dict[str, Any]) -> None:
        self.write_line(log, encode_line(row))

    def write_text(self, log: str, text: str) -> None:
        """A row already encoded as its JSON text (as ``encode_text`` encodes it), without the newline."""
        self.write_line(log, text.encode() + b"\n")

    def write_line(self, log: str, line: bytes) -> None:
        """A row already encoded as ``encode_line`` encodes it (UTF-8, newline included): the line another
        sink shares (sensor/sinks/shared.py), so that a row is encoded once for the files and ClickHouse."""
        batch = self._batch.get(log)
        if batch is None:
            batch = self._batch[log] = bytearray()
            self._batch_rows[log] = 0
            if log not in self.counts:
                self.counts[log] = 0
                self.files.add(log)
        batch += line
        self._batch_rows[log] += 1
        self.counts[log] += 1
        self._batch_bytes += len(line)
        if self._batch_bytes >= BATCH_BYTES:
            self.flush()

    def flush(self) -> None:
        """Hand the rows written so far to the writer (it never waits for the disk)."""
        if not self._batch:
            return
        batch = {log: (lines, self._batch_rows[log]) for log, lines in self._batch.items()}
        size = self._batch_bytes
        self._batch, self._batch_rows, self._batch_bytes = {}, {}, 0
        with self._cond:
            if self._queued_bytes + size > self.rotation.write_buffer:
                batch, size = self._drop_all_but_alerts(batch)
                if not batch:
                    return
            self._queue.append(("rows", batch))
            self._queued_bytes += size
            self._cond.notify()

    def _drop_all_but_alerts(self, batch: dict[str, tuple[bytearray, int]]) -> tuple[dict[str, tuple[bytearray, int]], int]:
        """The writer is behind: count the batch's rows as dropped, except alerts, which wait whatever the
        buffer (the detector aggregates them: they are few, and each one matters)."""
        for log, (_, rows) in batch.items():
            if log not in KEPT_WHEN_BEHIND:
                self.queue_dropped[log] = self.queue_dropped.get(log, 0) + rows
        kept = {log: lines for log, lines in batch.items() if log in KEPT_WHEN_BEHIND}
        return kept, sum(len(lines) for lines, _ in kept.values())

    def write_document(self, name: str, data: bytes) -> None:
        """Replace ``<directory>/<name>`` atomically once the rows written before it are on disk."""
        self.flush()
        with self._cond:
            self._documents[name] = data
            marker = ("document", name)
            if marker in self._queue:
                self._queue.remove(marker)   # written once, in its latest version, after everything before it
            self._queue.append(marker)
            self._cond.notify()

    def close(self) -> None:
        """Write everything queued, close the current files (they stay plain), finish the archive."""
        self.flush()
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join()
        self.archive.close()

    def statistics(self) -> dict[str, Any]:
        """The ``outputs`` part of stats.json."""
        dropped: dict[str, int] = {}
        for counts in (dict(self.queue_dropped), dict(self.write_dropped)):
            for log, n in counts.items():
                dropped[log] = dropped.get(log, 0) + n
        return {"records_dropped": dict(sorted(dropped.items())),
                "queue_dropped": sum(self.queue_dropped.values()), "write_errors": self.write_errors,
                "write_backlog_bytes": self._queued_bytes + self._batch_bytes, "last_write_error": self.last_error,
                **self.archive.statistics()}

    # -- the writer thread -----------------------------------------------------------------------------

    def _write_loop(self) -> None:
        while True:
            with self._cond:
                if not self._queue and not self._stopping:
                    self._cond.wait(min(WAKE, max(0.0, self._start + self.rotation.interval - self.clock())))
                item = self._queue.popleft() if self._queue else None
                stopping = self._stopping
            if self.clock() >= self._start + self.rotation.interval:
                self._rotate_all()
            if item is not None:
                self._handle(item)
            elif stopping:
                break
        for fh, _ in self._open.values():
            fh.close()
        self._open.clear()

    def _handle(self, item: tuple[str, Any]) -> None:
        kind, payload = item
        if kind == "document":
            with self._cond:
                data = self._documents.pop(payload, None)   # None: a later marker was already served
            if data is not None:
                self._replace(payload, data)
            return
        size = 0
        for log, (data, rows) in payload.items():
            size += len(data)
            self._append(log, data, rows)
        with self._cond:
            self._queued_bytes -= size

    def _append(self, log: str, data: bytes | bytearray, rows: int) -> None:
        fh, size = self._open.get(log) or (None, 0)
        try:
            if fh is None:
                fh = open(os.path.join(self.directory, f"{log}.jsonl"), "ab", buffering=0)
                size = os.fstat(fh.fileno()).st_size
            written = 0
            while written < len(data):
                written += fh.write(memoryview(data)[written:])
        except OSError as exc:
            self._write_failed(log, rows, f"cannot write {log}.jsonl: {exc.strerror or exc}", fh, size)
            return
        size += len(data)
        self._open[log] = (fh, size)
        if size >= self.rotation.size:
            self._rotate(log, stamp(self._start, self.rotation.interval))

    def _write_failed(self, log: str, rows: int, message: str, fh: Any, size: int) -> None:
        """Count the lost rows, and cut a partly written batch back to its last whole line."""
        self.write_dropped[log] = self.write_dropped.get(log, 0) + rows
        self.write_errors += 1
        self.last_error = message
        if fh is not None:
            try:
                os.ftruncate(fh.fileno(), size)
            except OSError:
                pass
            self._open[log] = (fh, size)

    def _replace(self, name: str, data: bytes) -> None:
        path = os.path.join(self.directory, name)
        try:
            with open(path + ".tmp", "wb") as fh:
                fh.write(data)
            os.replace(path + ".tmp", path)
        except OSError as exc:
            self.write_errors += 1
            self.last_error = f"cannot write {name}: {exc.strerror or exc}"

    def _rotate_all(self) -> None:
        when = stamp(self._start, self.rotation.interval)
        for log in list(self._open):
            self._rotate(log, when)
        self._start = interval_start(self.clock(), self.rotation.interval)
        self.archive.check_budget()

    def _rotate(self, log: str, when: str) -> None:
        """Close ``<log>.jsonl``, rename it to its rotated name and queue it for compression."""
        fh, _ = self._open.pop(log)
        fh.close()
        try:
            name = free_name(self.directory, log, when)
            os.rename(os.path.join(self.directory, f"{log}.jsonl"), os.path.join(self.directory, name))
        except OSError as exc:
            self.write_errors += 1
            self.last_error = f"cannot rotate {log}.jsonl: {exc.strerror or exc}"
            return
        self.archive.stats.rotated_files += 1
        self.archive.compress(name)

    # -- start -----------------------------------------------------------------------------------------

    def _adopt_previous(self, logs: frozenset[str]) -> None:
        """The previous run's current files join the archive (named by the interval of their last write);
        rotated files it left uncompressed are compressed now, half-written archives removed."""
        interval = self.rotation.interval
        for name in sorted(os.listdir(self.directory)):
            path = os.path.join(self.directory, name)
            log = name[:-len(".jsonl")]
            if name.endswith(".jsonl") and log in logs:
                when = stamp(interval_start(os.stat(path).st_mtime, interval), interval)
                if os.path.getsize(path) == 0:
                    os.unlink(path)
                    continue
                target = free_name(self.directory, log, when)
                os.rename(path, os.path.join(self.directory, target))
                self.archive.compress(target)
            elif name.endswith(".jsonl.gz.tmp") and ROTATED.fullmatch(name[:-4]):
                os.unlink(path)
            elif (m := ROTATED.fullmatch(name)) and not m["gz"] and m["log"] in logs:
                self.archive.compress(name)
