"""The delivery process reading the run's JSONL files (``otsensor analyze``), in place of the capture process
handing it every row.

The JSONL files hold the very bytes the server takes (one JSON line a row, sensor/clickhouse/batches.py), and
``analyze`` always writes them.  Handed over by the capture process, each row cost it 1.4-2.7 µs (bench/README.md,
round seven): a second sink in the fan-out, the batching, the pipe.  Read back here, from the page cache on the
other core, a row costs the capture process nothing; the pipe then carries only what has no JSONL file (Zeek
rows, the inventory and graph at the end) and two control lines: where the files are, and their final sizes.

Each table's file is opened once it exists and read from the end of the last complete line (``pread``: a line
the run is still writing is read again, whole, next time), in pieces of ``piece_bytes`` cut at a newline.  A
piece goes to the sink as a capture-side piece did (``take_piece``): batches of at most ``batch_rows`` rows,
sealed by size or age, each with a random 43-bit id.  Each batch is announced (``on_batch``) with its first
byte in the file before its first piece, and with its end before its last: if this process dies, the run
spools from the file what it did not confirm, a batch under its own id (process.py).  While the sink's queue is
over ``max_memory_rows`` (the server is behind), the files wait: they are the buffer, and nothing is spooled
twice.
"""
from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from otsensor.sensor.clickhouse.batches import Lines, joined
from otsensor.sensor.config import ClickHouseConfig

POLL = 0.02              # seconds between looks at files that had nothing new
WHOLE_READ = 1 << 20     # bytes a read when batches go whole (piece_bytes 0)

Take = Callable[[str, int, Lines, int, bool], None]       # table, batch id, lines, first row's index, last?


class FollowedFile:
    """One table's file: where its next line starts, and its open batch."""

    __slots__ = ("table", "fd", "offset", "batch_id", "first", "handed", "opened_at", "parts")

    def __init__(self, table: str, fd: int) -> None:
        self.table = table
        self.fd = fd
        self.offset = 0
        self.batch_id: int | None = None
        self.first = 0                    # the open batch's first byte in the file
        self.handed = 0                   # rows of the open batch already handed over
        self.opened_at = 0.0
        self.parts: list[Lines] = []      # the open batch's lines, when batches go whole


class Follower:
    """Reads the JSONL files of ``tables`` in ``directory`` into ``take`` (see the module docstring)."""

    def __init__(self, directory: str, tables: frozenset[str], cfg: ClickHouseConfig, take: Take,
                 on_batch: Callable[[str, int, int, int | None], None], busy: Callable[[], bool],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.directory, self.tables, self.cfg = directory, tables, cfg
        self.take, self.on_batch, self.busy, self.clock = take, on_batch, busy, clock
        self.streamed = cfg.piece_bytes > 0     # else a batch goes whole (a proxy without chunked requests)
        self.read_size = cfg.piece_bytes or WHOLE_READ
        self.files: dict[str, FollowedFile] = {}
        self.ends: dict[str, int] | None = None   # each file's final size, once the run has written it all
        self.exact = False                        # the sizes are the run's own (else: what was there)
        self.ending = threading.Event()
        self.cpu = 0.0                            # this thread's CPU seconds (the sink's "read" part)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._loop, name="otsensor-follow", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def finish(self, ends: dict[str, int] | None) -> None:
        """Read each file to ``ends`` (the run's final sizes), or, with None (the run is gone), to its last complete
        line; seal every batch; return once done."""
        if not self.ending.is_set():
            self.exact = ends is not None           # before ``ends``: _read takes both from another thread
            self.ends = dict(ends) if ends is not None else None
            self.ending.set()
        self.thread.join()

    def close(self) -> None:
        for followed in self.files.values():
            os.close(followed.fd)
        self.files.clear()

    # -- the follower's thread -------------------------------------------------------------------------

    def _loop(self) -> None:
        try:
            self._follow()
        except BaseException as exc:   # a bug: the delivery process raises it at the end (process.py), unreported,
            self.error = exc           # so that the run spools from the files whatever was not confirmed

    def _follow(self) -> None:
        while not self.ending.is_set():
            started = time.thread_time()
            moved = not self.busy() and self.step()
            self.cpu += time.thread_time() - started
            if not moved:
                self.ending.wait(POLL)
        started = time.thread_time()
        self._discover()
        if self.ends is None:   # the run is gone: what its files hold now, to the last complete line
            self.ends = {table: os.fstat(f.fd).st_size for table, f in self.files.items()}
        while self.step():
            pass
        for followed in self.files.values():
            self._seal(followed)
        self.cpu += time.thread_time() - started

    def step(self) -> bool:
        """One look at every file: its new complete lines handed over, old batches sealed.  True if any moved."""
        if len(self.files) < len(self.tables):
            self._discover()
        moved = False
        for followed in self.files.values():
            moved = self._read(followed) or moved
        if self.ends is None:
            now = self.clock()
            for followed in self.files.values():
                if followed.batch_id is not None and now - followed.opened_at >= self.cfg.flush_interval:
                    self._seal(followed)
        return moved

    def _discover(self) -> None:
        try:
            present = tables_with_files(self.directory, self.tables)
        except OSError:
            return
        for table in present:
            if table not in self.files:
                try:
                    fd = os.open(os.path.join(self.directory, f"{table}.jsonl"), os.O_RDONLY)
                except OSError:
                    continue
                self.files[table] = FollowedFile(table, fd)

    def _read(self, followed: FollowedFile) -> bool:
        """The file's next piece of complete lines, if it has one, handed over."""
        ends = self.ends                      # once set, with ``exact`` set before it (finish)
        end = os.fstat(followed.fd).st_size if ends is None else ends.get(followed.table, followed.offset)
        final = ends is not None and self.exact
        available = end - followed.offset
        if available <= 0:
            return False
        size = min(available, self.read_size)
        while True:   # a line longer than a piece: read more until it ends
            chunk = os.pread(followed.fd, size, followed.offset)
            cut = chunk.rfind(b"\n")
            if cut >= 0 or size >= available or len(chunk) < size:
                break
            size = min(available, size * 2)
        if cut < 0:
            if not (final and len(chunk) == available):
                return False                  # a line still being written, or cut off by the run's death
            cut = len(chunk)                  # the run's final line had no newline: taken as it is
        self._hand(followed, chunk, cut)
        return True

    def _hand(self, followed: FollowedFile, chunk: bytes, cut: int) -> None:
        """``chunk``'s lines up to ``cut`` (a newline, or its end) to the open batch, at most its room."""
        if followed.batch_id is None:
            followed.batch_id = random.getrandbits(43)
            followed.first, followed.handed = followed.offset, 0
            followed.opened_at = self.clock()
            self.on_batch(followed.table, followed.batch_id, followed.first, None)
        body = chunk[:cut]
        newline = cut < len(chunk)
        count = body.count(b"\n") + 1
        room = self.cfg.batch_rows - followed.handed
        if count > room:                      # the batch fills within the piece: cut it at its last row
            cut = -1
            for _ in range(room):
                cut = body.index(b"\n", cut + 1)
            body, count, newline = body[:cut], room, True
        followed.offset += len(body) + newline
        self._give(followed, Lines(body, count), followed.handed + count >= self.cfg.batch_rows)

    def _give(self, followed: FollowedFile, lines: Lines, last: bool) -> None:
        start = followed.handed
        followed.handed += lines.count
        if last:   # its end announced before the batch can be delivered and confirmed
            self.on_batch(followed.table, followed.batch_id, followed.first, followed.offset)  # type: ignore[arg-type]
        if self.streamed:
            self.take(followed.table, followed.batch_id, lines, start, last)       # type: ignore[arg-type]
        else:
            followed.parts.append(lines)
            if last:
                self.take(followed.table, followed.batch_id, joined(followed.parts), 0, True)  # type: ignore[arg-type]
                followed.parts = []
        if last:
            followed.batch_id = None

    def _seal(self, followed: FollowedFile) -> None:
        """The open batch handed over as it is (its last piece empty, when it went in pieces)."""
        if followed.batch_id is None:
            return
        self._give(followed, Lines(b"", 0), True)


def tables_with_files(directory: str, tables: frozenset[str]) -> list[str]:
    """The tables of ``tables`` that have their ``<table>.jsonl`` in ``directory`` (OSError if it cannot be listed)."""
    return [name[:-6] for name in os.listdir(directory) if name.endswith(".jsonl") and name[:-6] in tables]


def file_ranges(batches: list[tuple[int, int | None, int]], size: int) -> list[tuple[int, int, int | None]]:
    """(first byte, end, batch id) of every part of a followed file of ``size`` bytes, from the batches announced
    in it, (first byte, end or None while open, id) each: a batch still open ends where the next begins, or at
    ``size``; the bytes no batch took yet (read by no one) have no id."""
    ranges: list[tuple[int, int, int | None]] = []
    covered = 0
    ordered = sorted(batches)
    for n, (begin, end, batch_id) in enumerate(ordered):
        if begin > covered:
            ranges.append((covered, begin, None))
        if end is None:
            end = ordered[n + 1][0] if n + 1 < len(ordered) else size
        ranges.append((begin, end, batch_id))
        covered = end
    if covered < size:
        ranges.append((covered, size, None))
    return ranges


def read_lines(path: str, begin: int, end: int, batch_rows: int) -> Any:
    """The lines of ``path`` between bytes ``begin`` and ``end``, as Lines of at most ``batch_rows`` rows each."""
    with open(path, "rb") as fh:
        fh.seek(begin)
        left = end - begin
        lines: list[bytes] = []
        while left > 0:
            line = fh.readline(left)
            if not line:
                break
            left -= len(line)
            lines.append(line.rstrip(b"\n"))
            if len(lines) == batch_rows:
                yield Lines(b"\n".join(lines), len(lines))
                lines = []
        if lines:
            yield Lines(b"\n".join(lines), len(lines))
