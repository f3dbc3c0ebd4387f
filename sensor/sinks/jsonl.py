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
        return orjson.dumps(row, default=str) + b"\n"

    _encode: Callable[[dict[str, Any]], str] = _encode_orjson
except ImportError:  # pragma: no cover - orjson is a declared dependency; keep working without it
    _encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str).encode

    def encode_line(row: dict[str, Any]) -> bytes:
        return (_encode(row) + "\n").encode()


encode_text: Callable[[dict[str, Any]], str] = _encode   # one row as the text of its line, without the newline


class JsonlSink:
    """Writes each row as one line of ``<directory>/<log>.jsonl``; files are created on first use."""

    def __init__(self, directory: str, append: bool = False) -> None:
        self.directory = directory
        self.mode = "a" if append else "w"
        self.files: dict[str, IO[str]] = {}
        self.counts: dict[str, int] = {}
        os.makedirs(directory, exist_ok=True)

    def write(self, log: str, row: dict[str, Any]) -> None:
        self.write_text(log, _encode(row))

    def write_text(self, log: str, text: str) -> None:
        """A row already encoded as its JSON text (as :func:`encode_text` encodes it), without the newline."""
        fh = self.files.get(log)
        if fh is None:
            fh = open(os.path.join(self.directory, f"{log}.jsonl"), self.mode, encoding="utf-8", buffering=1 << 20)
            self.files[log] = fh
            self.counts[log] = 0
        fh.write(text)
        fh.write("\n")
        self.counts[log] += 1

    def flush(self) -> None:
        for fh in self.files.values():
            fh.flush()

    def close(self) -> None:
        for fh in self.files.values():
            fh.close()
        self.files.clear()
