"""The rotated logs of a live output directory: their names, their compression, and the disk budget.

A log's current interval is written to the plain ``<log>.jsonl``; when the interval ends (or the file
reaches its size limit) the file is renamed ``<log>.<stamp>.jsonl`` and compressed to
``<log>.<stamp>.jsonl.gz``.  ``<stamp>`` is the start of the interval in UTC: ``2026-11-26T10`` for hourly
intervals, ``2026-11-26T10-15`` when the interval is a whole number of minutes, ``2026-11-26T10-15-30``
otherwise.  A second file of the same interval (a size rotation, or a restart) gets ``_0001``, ``_0002``...
after the stamp, so plain name order is time order.  Compression runs in its own thread: a slow disk delays
the archive, never the capture.  Every name matches outdir.LOG_FILE, so the output directory owns them.
"""
from __future__ import annotations

import gzip
import os
import re
import shutil
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

ROTATED = re.compile(r"(?P<log>[a-z0-9_]+)\.(?P<stamp>\d{4}-\d\d-\d\dT\d\d(?:-\d\d){0,2})(?:_(?P<part>\d{4,}))?"
                     r"\.jsonl(?P<gz>\.gz)?")
COMPRESS_LEVEL = 6        # zlib's default: gzip's 9 costs several times the CPU for a few per cent
CHUNK = 1 << 20


def stamp(epoch: float, interval: float) -> str:
    """The name of the interval that starts at ``epoch`` (UTC), as precise as the interval needs."""
    fmt = "%Y-%m-%dT%H" if interval % 3600 == 0 else "%Y-%m-%dT%H-%M" if interval % 60 == 0 else "%Y-%m-%dT%H-%M-%S"
    return time.strftime(fmt, time.gmtime(epoch))


def interval_start(epoch: float, interval: float) -> float:
    """Intervals are aligned on the epoch, so hourly ones start on the clock hour (UTC)."""
    return epoch - epoch % interval


def free_name(directory: str, log: str, when: str) -> str:
    """The first ``<log>.<when>[_NNNN].jsonl`` of which neither the plain nor the compressed file exists."""
    taken = set(os.listdir(directory))
    part = 0
    while True:
        name = f"{log}.{when}" + (f"_{part:04d}" if part else "") + ".jsonl"
        if name not in taken and name + ".gz" not in taken:
            return name
        part += 1


@dataclass
class ArchiveStats:
    rotated_files: int = 0          # files closed and renamed
    compressed_files: int = 0
    compress_failures: int = 0      # left uncompressed (still complete, still owned)
    deleted_files: int = 0          # removed by the disk budget, oldest first
    deleted_bytes: int = 0
    logs_bytes: int = 0             # the logs' size in DIR at the last budget check
    over_budget: bool = False       # nothing rotated left to delete and still over max_disk
    last_error: str | None = None
    errors: list[str] = field(default_factory=list)


class Archive:
    """Compresses rotated files in a thread of its own and keeps the logs of ``directory`` within
    ``max_disk`` bytes by deleting the oldest rotated files."""

    def __init__(self, directory: str, max_disk: int | None) -> None:
        self.directory = directory
        self.max_disk = max_disk
        self.stats = ArchiveStats()
        self._todo: deque[str] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._work, name="otsensor-archive", daemon=True)
        self._thread.start()

    def compress(self, name: str) -> None:
        """Queue a rotated ``<log>.<stamp>.jsonl`` of the directory for compression."""
        with self._cond:
            self._todo.append(name)
            self._cond.notify()

    def check_budget(self) -> None:
        with self._cond:
            self._todo.append("")      # no file: only the budget
            self._cond.notify()

    def close(self) -> None:
        """Finish the queued compressions, then stop."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join()

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._todo and not self._stopping:
                    self._cond.wait()
                if not self._todo:
                    return
                name = self._todo.popleft()
            if name:
                self._compress(name)
            self._enforce_budget()

    def _compress(self, name: str) -> None:
        source = os.path.join(self.directory, name)
        target = source + ".gz"
        partial = target + ".tmp"
        try:
            with open(source, "rb") as raw, open(partial, "wb") as out:
                with gzip.GzipFile(name, "wb", COMPRESS_LEVEL, out, mtime=0) as packed:
                    shutil.copyfileobj(raw, packed, CHUNK)
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, target)   # whole or absent: a reader never sees half a .gz under its name
            os.unlink(source)
            self.stats.compressed_files += 1
        except OSError as exc:
            self._failed(f"cannot compress {name}: {exc.strerror or exc}; kept uncompressed")
            self.stats.compress_failures += 1
            _unlink_quietly(partial)

    def _enforce_budget(self) -> None:
        """Delete the oldest rotated files while the logs take more than ``max_disk``."""
        try:
            logs = _log_files(self.directory)
        except OSError as exc:
            self._failed(f"cannot list {self.directory}: {exc.strerror or exc}")
            return
        total = sum(size for _, _, size in logs)
        over = self.max_disk is not None and total > self.max_disk
        if over:
            with self._cond:
                pending = set(self._todo)
            for key, name, size in sorted(f for f in logs if f[0] is not None):
                if total <= self.max_disk:   # type: ignore[operator]
                    break
                if name in pending:
                    continue                 # not compressed yet: its turn comes once it is
                try:
                    os.unlink(os.path.join(self.directory, name))
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    self._failed(f"cannot delete {name}: {exc.strerror or exc}")
                    continue
                total -= size
                self.stats.deleted_files += 1
                self.stats.deleted_bytes += size
        self.stats.logs_bytes = total
        self.stats.over_budget = self.max_disk is not None and total > self.max_disk

    def _failed(self, message: str) -> None:
        self.stats.last_error = message
        if len(self.stats.errors) < 10:
            self.stats.errors.append(message)

    def statistics(self) -> dict[str, Any]:
        s = self.stats
        return {"rotated_files": s.rotated_files, "compressed_files": s.compressed_files,
                "compress_failures": s.compress_failures, "deleted_files": s.deleted_files,
                "deleted_bytes": s.deleted_bytes, "logs_bytes": s.logs_bytes, "max_disk": self.max_disk,
                "over_budget": s.over_budget, "last_error": s.last_error}


def _log_files(directory: str) -> list[tuple[Any, str, int]]:
    """Every log file of the directory as (age key or None for a current file, name, size); the age key of a
    rotated file sorts oldest first: (stamp, part)."""
    found = []
    with os.scandir(directory) as entries:
        for entry in entries:
            name = entry.name
            m = ROTATED.fullmatch(name)
            if m is None and not (name.endswith(".jsonl") and "." not in name[:-6]):
                continue
            try:
                size = entry.stat(follow_symlinks=False).st_size
            except OSError:
                continue
            key = (m["stamp"], int(m["part"] or 0), m["log"]) if m else None
            found.append((key, name, size))
    return found


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
