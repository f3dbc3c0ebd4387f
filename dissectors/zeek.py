"""Zeek's logs from our records: the events Zeek's analyzers would raise, and scripts that log them as Zeek does.

Our JSONL logs keep one line per request/response pair.  Zeek and the
ICSNPP packages log from per-message events, through script handlers that
keep state (a pending request waiting for its response, the function code
of the last request, ...), one row per message in some logs and one per
exchange in others.  To give exactly their rows:

* a record says which messages it holds, as :class:`ZeekEvent` s
  (:meth:`Record.zeek_events`): a pair record gives its request's event
  with the request's time and its response's event with the response's;
* each protocol has a :class:`ZeekScript` (``dissectors/<protocol>/zeek.py``)
  that handles those events as the Zeek and ICSNPP scripts do and returns
  the :class:`ZeekRow` s they would write;
* a protocol whose Zeek analyzer parses each chunk of the TCP stream on
  its own, so that what Zeek logs depends on how the stream was segmented
  (ICSNPP's S7comm), names a script in its dissector's
  ``ZEEK_STREAM_SCRIPT``: that script gets the chunks the dissector is
  given as events too, :data:`STREAM_DATA` (the bytes) and
  :data:`STREAM_GAP` (the number of bytes lost);
* the Zeek writer (``sensor/zeek``) feeds every event to its script in
  capture-time order, tells the scripts when Zeek would remove a connection,
  adds the connection columns and formats the rows.  It knows no protocol.

A :class:`ZeekLog` is one Zeek log (its ``path``) with the columns that
follow ``ts uid id.*`` in Zeek's type names.  ``per_message`` logs also
carry ICSNPP's ``is_orig source_h source_p destination_h destination_p``
columns, filled by the writer from the row's direction.  A log may name the
conn.log service a connection with rows in it shows.
"""
from __future__ import annotations

import hashlib
from typing import Any, Final

from otsensor.dissectors.base import Column, Direction, columns

ZEEK_KINDS: Final = frozenset({"string", "count", "int", "double", "bool", "time", "interval", "addr", "port", "enum",
                               "vector[count]", "vector[string]", "vector[int]", "set[string]", "set[count]"})
# ICSNPP's columns naming each message's sender and receiver (per-message logs)
MESSAGE_COLUMNS: Final = ("is_orig", "source_h", "source_p", "destination_h", "destination_p")
STREAM_DATA: Final = "stream_data"   # ZeekEvent kinds of a stream script's chunks
STREAM_GAP: Final = "stream_gap"
LINK_ID_CHARS: Final = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"   # ICSNPP's alphabet


class ZeekLog:
    """One Zeek log: its path and the columns after ``ts uid id.*`` (and the message columns, if any)."""

    __slots__ = ("columns", "first_service", "path", "per_message", "service")

    def __init__(self, path: str, spec: str, per_message: bool = False, service: str | None = None,
                 first_service: bool = False) -> None:
        self.path = path
        self.per_message = per_message
        self.service = service    # the conn.log service a row of this log shows ("{transport}" filled in)
        self.first_service = first_service   # ... only when the connection has none yet
        self.columns: tuple[Column, ...] = columns(spec, ZEEK_KINDS)

    def __repr__(self) -> str:
        return f"ZeekLog({self.path!r})"


class ZeekRow:
    """One row of a Zeek log, before the writer adds the connection's columns (those of ``conn`` when given:
    a row a script writes for another connection than the event's)."""

    __slots__ = ("conn", "direction", "log", "ts", "values")

    def __init__(self, log: ZeekLog, ts: float, values: dict[str, Any], direction: Direction | None = None,
                 conn: ZeekConn | None = None) -> None:
        self.log = log
        self.ts = ts
        self.direction = direction
        self.values = values
        self.conn = conn

    def __repr__(self) -> str:
        return f"ZeekRow({self.log.path!r}, ts={self.ts!r}, {self.direction!r}, {self.values!r})"


class ZeekEvent:
    """One message as Zeek's analyzer reports it: its time, its direction and what the script needs of it."""

    __slots__ = ("data", "direction", "kind", "ts")

    def __init__(self, ts: float, direction: Direction, kind: str, data: Any) -> None:
        self.ts = ts
        self.direction = direction
        self.kind = kind
        self.data = data

    def __repr__(self) -> str:
        return f"ZeekEvent({self.ts!r}, {self.direction!r}, {self.kind!r})"


class ZeekConn:
    """The connection an event came on (Zeek's ``c``): its uid, its transport ("tcp" or "udp"), whether
    Zeek's originator is ours (``same``; Zeek decides its roles its own way), and for the writer the
    connection it stands for."""

    __slots__ = ("owner", "same", "transport", "uid")

    def __init__(self, uid: str, transport: str, owner: Any = None) -> None:
        self.uid = uid
        self.transport = transport
        self.owner = owner
        self.same = True

    def is_orig(self, direction: Direction) -> bool:
        """Whether a message sent in ``direction`` (ours) comes from Zeek's originator."""
        return (direction == Direction.ORIG) == self.same


class ZeekScript:
    """The Zeek and ICSNPP script handlers of one protocol, for one run (their tables live here).

    ``event`` handles one message and returns the rows written; ``removed``
    runs when Zeek removes a connection (connection_state_remove and the
    removal hooks) and returns the rows written then.
    """

    LOGS: tuple[ZeekLog, ...] = ()

    def event(self, conn: ZeekConn, event: ZeekEvent) -> list[ZeekRow]:
        raise NotImplementedError

    def removed(self, conn: ZeekConn, ts: float) -> list[ZeekRow]:
        return []


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
