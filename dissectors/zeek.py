"""Zeek log declarations and rows: what a record says in the logs Zeek and the ICSNPP packages write.

Our JSONL logs keep one line per request/response pair; Zeek and ICSNPP
write several of their logs one row per message (``is_orig``,
``source_h/p``, ``destination_h/p``), some when the response arrives with
the request's time, and some with fields ours name differently.  A record
therefore describes its Zeek rows itself (:meth:`Record.zeek_rows`), from
what it already holds, and the Zeek writer (``sensor/zeek``) stays generic:
it adds the connection's ``ts``/``uid``/``id`` columns, orders the rows as
Zeek would have written them and formats them.

A :class:`ZeekLog` is one Zeek log (its ``path``) with the columns that
follow ``ts uid id.*`` in Zeek's type names.  ``per_message`` logs also
carry ICSNPP's ``is_orig source_h source_p destination_h destination_p``
columns, filled by the writer from the row's direction.  A log may name the
service conn.log shows for a connection with rows in it.

A :class:`ZeekRow` carries its log, ``ts`` (the ``ts`` column), ``at``
(when Zeek would have written it: the packet that completed it; rows are
written in that order), the direction of the message it describes (None
when the log has no direction) and its values by column name (a missing or
None value is Zeek's unset ``-``).  ``at`` may be :data:`AT_REMOVAL` for a
row Zeek writes when the connection is removed.
"""
from __future__ import annotations

import hashlib
from typing import Any, Final

from otsensor.dissectors.base import Column, Direction, columns

ZEEK_KINDS: Final = frozenset({"string", "count", "int", "double", "bool", "time", "interval", "addr", "port", "enum",
                               "vector[count]", "vector[string]", "vector[int]", "set[string]", "set[count]"})
# ICSNPP's columns naming each message's sender and receiver (per-message logs)
MESSAGE_COLUMNS: Final = ("is_orig", "source_h", "source_p", "destination_h", "destination_p")
AT_REMOVAL: Final = -1.0        # written when Zeek removes the connection (its connection_state_remove)
AT_ANY_REMOVAL: Final = -2.0    # written when Zeek removes any connection (an ICSNPP quirk, see modbus/zeek.py)
LINK_ID_CHARS: Final = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"   # ICSNPP's alphabet


class ZeekLog:
    """One Zeek log: its path and the columns after ``ts uid id.*`` (and the message columns, if any)."""

    __slots__ = ("path", "columns", "per_message", "service")

    def __init__(self, path: str, spec: str, per_message: bool = False, service: str | None = None) -> None:
        self.path = path
        self.per_message = per_message
        self.service = service    # the conn.log service a row of this log shows ("{transport}" filled in)
        self.columns: tuple[Column, ...] = columns(spec, ZEEK_KINDS)

    def __repr__(self) -> str:
        return f"ZeekLog({self.path!r})"


class ZeekRow:
    """One row of a Zeek log, before the writer adds the connection's columns."""

    __slots__ = ("log", "ts", "at", "direction", "values")

    def __init__(self, log: ZeekLog, ts: float, values: dict[str, Any], direction: Direction | None = None,
                 at: float | None = None) -> None:
        self.log = log
        self.ts = ts
        self.at = ts if at is None else at
        self.direction = direction
        self.values = values

    def __repr__(self) -> str:
        return f"ZeekRow({self.log.path!r}, ts={self.ts!r}, at={self.at!r}, {self.direction!r}, {self.values!r})"


def link_id(*parts: Any) -> str:
    """A 16-character id tying rows of two ICSNPP logs together (their ``*_link_id`` columns).

    ICSNPP draws these at random; ours are derived from what identifies the
    exchange, so the same capture always gives the same ids.
    """
    n = int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=12).digest(), "big")
    out = []
    for _ in range(16):
        n, r = divmod(n, 62)
        out.append(LINK_ID_CHARS[r])
    return "".join(out)
