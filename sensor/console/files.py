"""Reading an output directory that another process may be rewriting: documents and JSON-lines logs.

A live `otsensor run` directory replaces assets.json, graph.json, summary.json and stats.json atomically and
appends to each log, rotating it into compressed ``<log>.<...>.jsonl.gz`` files with the current hour plain.
The readers here never crash on what they find mid-write: a document that does not parse keeps its previous
version, a log line without its newline waits for the next poll, and a compressed file that is still being
written is skipped until it is whole.
"""
from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

Signature = tuple[int, int, int]   # inode, size, mtime in ns: changes whenever a file is replaced or grows


def signature(path: str) -> Signature | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


class JsonDocument:
    """One JSON document (assets.json, ...) re-read when its file changes; a bad read keeps the last good one."""

    def __init__(self, path: str, default: Any) -> None:
        self.path = path
        self.default = default
        self.value: Any = default
        self.sig: Signature | None = None
        self.error: str | None = None    # why the current file could not be read (half-written, not JSON)

    def get(self) -> Any:
        sig = signature(self.path)
        if sig is None:
            self.value, self.sig, self.error = self.default, None, None
        elif sig != self.sig:
            try:
                with open(self.path, "rb") as fh:
                    self.value = orjson.loads(fh.read())
                self.sig, self.error = sig, None
            except (OSError, orjson.JSONDecodeError) as exc:
                # keep the previous version; the next request retries (the writer replaces files atomically,
                # so this is a foreign or interrupted writer)
                self.error = f"{os.path.basename(self.path)}: {exc}"
        return self.value


@dataclass
class LogPoll:
    """What changed in a log since the last poll: ``reset`` means start over, ``lines`` are complete lines."""

    reset: bool
    lines: list[bytes] = field(default_factory=list)


def rotated_files(directory: str, log: str) -> list[str]:
    """The compressed rotations of ``log`` (``modbus.2026-11-26T10.jsonl.gz``), oldest first.

    The prefix ``log.`` keeps ``s7comm`` apart from ``s7comm_plus``; names carry the hour, so they sort in time
    (the modification time breaks ties for names that do not).
    """
    prefix = log + "."
    try:
        names = [n for n in os.listdir(directory)
                 if n.startswith(prefix) and n.endswith(".gz") and ".jsonl" in n]
    except OSError:
        return []
    paths = [os.path.join(directory, n) for n in names]
    return sorted(paths, key=lambda p: (os.path.basename(p), _mtime(p)))


def _mtime(path: str) -> int:
    sig = signature(path)
    return sig[2] if sig else 0


class LogFollower:
    """Follows one log across its rotated files and its plain current file, returning only new complete lines.

    Appending to the plain file gives the new lines; anything else (a rotation, a replaced or truncated file)
    gives ``reset`` and every line again, so a reader never counts a rotated line twice.  ``max_bytes``
    bounds what a reset reads: the newest bytes are kept, older rotations are skipped.
    """

    def __init__(self, directory: str, log: str, max_bytes: int = 1 << 30) -> None:
        self.directory = directory
        self.log = log
        self.plain = os.path.join(directory, log + ".jsonl")
        self.max_bytes = max_bytes
        self.rotated_sig: tuple = ()
        self.plain_ino: int | None = None
        self.offset = 0
        self.unreadable: list[str] = []   # compressed files skipped because they do not decompress (yet)

    def poll(self) -> LogPoll:
        rotated = rotated_files(self.directory, self.log)
        rotated_sig = tuple((p, signature(p)) for p in rotated)
        plain = signature(self.plain)
        if rotated_sig != self.rotated_sig or self.unreadable or self._plain_replaced(plain):
            return self._read_all(rotated, rotated_sig, plain)
        if plain is None or plain[1] == self.offset:
            return LogPoll(False)
        return LogPoll(False, self._read_plain(self.offset))

    def _plain_replaced(self, plain: Signature | None) -> bool:
        if plain is None:
            return self.plain_ino is not None
        return plain[0] != self.plain_ino or plain[1] < self.offset

    def _read_all(self, rotated: list[str], rotated_sig: tuple, plain: Signature | None) -> LogPoll:
        self.rotated_sig, self.unreadable = rotated_sig, []
        self.plain_ino, self.offset = (plain[0] if plain else None), 0
        budget = self.max_bytes
        start = 0
        if plain is not None and plain[1] > budget:
            start = plain[1] - budget          # only the newest part of an oversized plain file
        lines = self._read_plain(start, skip_partial=start > 0) if plain is not None else []
        budget -= self.offset - start
        older: list[list[bytes]] = []
        for path in reversed(rotated):
            if budget <= 0:
                break
            chunk = self._read_compressed(path)
            budget -= sum(len(line) + 1 for line in chunk)
            older.append(chunk)
        return LogPoll(True, [line for chunk in reversed(older) for line in chunk] + lines)

    def _read_plain(self, start: int, skip_partial: bool = False) -> list[bytes]:
        try:
            with open(self.plain, "rb") as fh:
                fh.seek(start)
                data = fh.read()
        except OSError:
            return []
        end = data.rfind(b"\n") + 1        # a line still being written waits for its newline
        body = data[:end]
        if skip_partial:
            body = body[body.find(b"\n") + 1:]
        self.offset = start + end
        return [line for line in body.split(b"\n") if line.strip()]

    def _read_compressed(self, path: str) -> list[bytes]:
        try:
            with gzip.open(path, "rb") as fh:
                data = fh.read()
        except (OSError, EOFError, zlib.error):
            self.unreadable.append(os.path.basename(path))   # retried at the next poll
            return []
        return [line for line in data.split(b"\n") if line.strip()]


def parse_lines(lines: list[bytes], keep: Callable[[bytes], bool] | None = None) -> tuple[list[dict], int]:
    """JSON objects from log lines, and how many lines were not JSON objects (counted, never fatal)."""
    rows, bad = [], 0
    for line in lines:
        if keep is not None and not keep(line):
            continue
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError:
            bad += 1
            continue
        if isinstance(row, dict):
            rows.append(row)
        else:
            bad += 1
    return rows, bad
