"""One JSON encoding per row for every sink that takes encoded lines (``write_line``, ``write_text``).

The JSONL sink encodes each row with orjson; the ClickHouse sink ships the same line to its server, which
parses it.  Encoding once and giving the line to both saves the second encoding (about 1.7 µs a row,
bench/README.md).  The line is made as orjson's bytes: a sink that takes bytes (``write_line``: the JSONL
files, plain or rotating, and the ClickHouse sink's batches) takes them as they are, and the text is decoded
once only for a sink that takes text alone.  A sink that raises costs that sink the row only, as in the
pipeline's own fan-out.  (In ``otsensor analyze`` the ClickHouse sink takes no line from here: its delivery
process reads the JSONL files, sensor/clickhouse/follow.py.)
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from otsensor.sensor.sinks.jsonl import encode_line

Failed = Callable[[Any, str, Exception], None]


def _raise(sink: Any, log: str, exc: Exception) -> None:
    raise exc


class EncodeOnce:
    """Looks like one sink to the pipeline; writes each row's line to ``sinks`` (all have ``write_text``)."""

    def __init__(self, sinks: list[Any]) -> None:
        self.sinks = sinks
        self.name = "+".join(getattr(s, "name", type(s).__name__) for s in sinks)
        self.failed: Failed = _raise       # the pipeline's sink_failed, once the pipeline exists
        self.line_writers = [getattr(s, "write_line", None) for s in sinks]

    def write(self, log: str, row: dict[str, Any]) -> None:
        line = encode_line(row)            # UTF-8, newline included
        text = None
        for sink, write_line in zip(self.sinks, self.line_writers):
            try:
                if write_line is not None:
                    write_line(log, line)
                else:
                    if text is None:
                        text = line[:-1].decode()
                    sink.write_text(log, text)
            except Exception as exc:
                self.failed(sink, log, exc)

    def write_line(self, log: str, line: bytes) -> None:
        """A row already encoded as its line (a worker process's): decoded to text once, if a sink needs it."""
        text = None
        for sink, write_line in zip(self.sinks, self.line_writers):
            try:
                if write_line is not None:
                    write_line(log, line)
                else:
                    if text is None:
                        text = line[:-1].decode()
                    sink.write_text(log, text)
            except Exception as exc:
                self.failed(sink, log, exc)


def encode_once(sinks: list[Any]) -> tuple[list[Any], EncodeOnce | None]:
    """``sinks`` with those that take encoded lines gathered into one EncodeOnce (first in place of the
    first of them), when there are two or more; else ``sinks`` as they are and None."""
    takers = [s for s in sinks if callable(getattr(s, "write_text", None))]
    if len(takers) < 2:
        return sinks, None
    shared = EncodeOnce(takers)
    out: list[Any] = []
    for sink in sinks:
        if sink is takers[0]:
            out.append(shared)
        elif sink not in takers:
            out.append(sink)
    return out, shared
