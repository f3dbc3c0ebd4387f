"""One JSON-lines file per log in an output directory (Zeek's JSON log layout: `<log>.jsonl`)."""
from __future__ import annotations

import json
import os
from typing import IO, Any

try:  # orjson encodes a record about ten times faster than the standard library (measured in bench/)
    import orjson
    HAVE_ORJSON = True
except ImportError:  # pragma: no cover - orjson is a declared dependency; keep working without it
    HAVE_ORJSON = False

# One definition of each function with the choice inside: compiled (setup.py HOT_PATH), a module cannot define a
# function twice. The workers of --workers N encode every row with encode_line, the aggregator writes them.
_STDLIB = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str)


def encode_line(row: dict[str, Any]) -> bytes:
    """One row as the UTF-8 bytes of its line, newline included (the same bytes JsonlSink writes)."""
    if HAVE_ORJSON:
        return orjson.dumps(row, default=str, option=orjson.OPT_APPEND_NEWLINE)
    return (_STDLIB.encode(row) + "\n").encode()   # pragma: no cover


def encode_text(row: dict[str, Any]) -> str:
    """One row as the text of its line, without the newline."""
    if HAVE_ORJSON:
        return orjson.dumps(row, default=str).decode()
    return _STDLIB.encode(row)   # pragma: no cover


class JsonlSink:
    """Writes each row as one line of ``<directory>/<log>.jsonl``; files are created on first use.

    The files are written as bytes: orjson's UTF-8 output goes to the file as it is, with no text layer
    decoding it to a str and encoding it back."""

    def __init__(self, directory: str, append: bool = False) -> None:
        self.directory = directory
        self.mode = "ab" if append else "wb"
        self.files: dict[str, IO[bytes]] = {}
        self.counts: dict[str, int] = {}
        os.makedirs(directory, exist_ok=True)

    def write(self, log: str, row: dict[str, Any]) -> None:
        # write_line's body, not a call to it: this runs for every row of a run
        fh = self.files.get(log)
        if fh is None:
            fh = self._open(log)
        fh.write(encode_line(row))
        self.counts[log] += 1

    def write_text(self, log: str, text: str) -> None:
        """A row already encoded as its JSON text (as :func:`encode_text` encodes it), without the newline."""
        self.write_line(log, text.encode() + b"\n")

    def write_line(self, log: str, line: bytes) -> None:
        """A row already encoded as :func:`encode_line` encodes it (UTF-8, newline included)."""
        fh = self.files.get(log)
        if fh is None:
            fh = self._open(log)
        fh.write(line)
        self.counts[log] += 1

    def _open(self, log: str) -> IO[bytes]:
        fh = self.files[log] = open(os.path.join(self.directory, f"{log}.jsonl"), self.mode, buffering=1 << 20)
        self.counts[log] = 0
        return fh

    def flush(self) -> None:
        for fh in self.files.values():
            fh.flush()

    def close(self) -> None:
        for fh in self.files.values():
            fh.close()
        self.files.clear()
