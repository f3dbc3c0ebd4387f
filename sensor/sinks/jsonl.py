"""One JSON-lines file per log in an output directory (Zeek's JSON log layout: `<log>.jsonl`)."""
from __future__ import annotations

import json
import os
from typing import IO, Any, Callable

try:  # orjson encodes a record about ten times faster than the standard library (measured in bench/)
    import orjson

    def _encode_orjson(row: dict[str, Any]) -> str:
        return orjson.dumps(row, default=str).decode()

    def encode_line(row: dict[str, Any]) -> bytes:
        """One row as the UTF-8 bytes of its line, newline included (the same bytes JsonlSink writes)."""
        return orjson.dumps(row, default=str, option=orjson.OPT_APPEND_NEWLINE)

    _encode: Callable[[dict[str, Any]], str] = _encode_orjson
except ImportError:  # pragma: no cover - orjson is a declared dependency; keep working without it
    _encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str).encode

    def encode_line(row: dict[str, Any]) -> bytes:
        return (_encode(row) + "\n").encode()


encode_text: Callable[[dict[str, Any]], str] = _encode   # one row as the text of its line, without the newline


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
