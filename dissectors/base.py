"""The dissector contract shared by every protocol.

A dissector is sans-I/O (in the sense of h11): stream bytes and a direction go
in, typed records come out.  It never opens a socket or a file, never reads a
clock, never logs, and never lets an exception escape ``feed``: bad bytes turn
into :class:`Anomaly` records and the stream goes on.

Every record derives from :class:`Record`: a plain class with typed attributes
(no dicts of loose fields), the log it belongs to (``LOG``) and the columns of
that log (``COLUMNS``, name and Zeek-style type, in row order).  Its one way to
become a row is :meth:`Record.fill_row`, which writes its columns into the row
the pipeline started (``ts``, ``uid``, ``id.*``); the Zeek and ClickHouse
outputs read the same declarations.  A record may describe itself to the
analyzers through :meth:`Record.op` (what operation it is, on which address
space) and :meth:`Record.identity` (facts that identify a device); analyzers
rely on those only, so inventory, graph and detection stay protocol agnostic.

The classes here are written for mypyc: explicit ``__init__`` and ``__slots__``
rather than dataclasses, ``Final`` class constants, no dynamic attributes.
"""
from __future__ import annotations

import struct
from enum import IntEnum
from typing import Any, Callable, ClassVar, Final, NamedTuple

from mypy_extensions import mypyc_attr


class Direction(IntEnum):
    """Which side sent the bytes: the connection's originator (client) or its responder (server)."""

    ORIG = 0
    RESP = 1


class Category:
    """Closed set of operation categories the analyzers reason about."""

    READ: Final = "read"
    WRITE: Final = "write"
    CONTROL: Final = "control"        # run-state changes: stop, start, restart, mode
    PROGRAM: Final = "program"        # logic/firmware transfer: download, upload, delete
    RECON: Final = "recon"            # identity / inventory queries
    DIAGNOSTIC: Final = "diagnostic"
    SESSION: Final = "session"        # connection setup, keep-alive, session handling
    OTHER: Final = "other"


class Tag:
    """Security-relevant facts a dissector can state about an operation.

    These are observations of what the bytes say, not alerts: the analyzers
    decide what (if anything) to raise.
    """

    PLC_STOP: Final = "plc_stop"
    PLC_START: Final = "plc_start"
    MODE_CHANGE: Final = "mode_change"
    RESTART: Final = "restart"
    PROGRAM_DOWNLOAD: Final = "program_download"
    PROGRAM_UPLOAD: Final = "program_upload"
    PROGRAM_DELETE: Final = "program_delete"
    FIRMWARE: Final = "firmware"
    LISTEN_ONLY: Final = "listen_only"
    DISABLE_UNSOLICITED: Final = "disable_unsolicited"
    SELECT: Final = "select"
    OPERATE: Final = "operate"
    DIRECT_OPERATE: Final = "direct_operate"
    BROADCAST: Final = "broadcast"
    IDENTITY_READ: Final = "identity_read"
    FILE_TRANSFER: Final = "file_transfer"
    CLOCK_SET: Final = "clock_set"
    FORCE: Final = "force"
    CONFIG_CHANGE: Final = "config_change"


NO_TAGS: Final[frozenset[str]] = frozenset()


# ``Op.detail`` key of the operations that name one written item each (its own address, width and value):
# a record whose extra_ops() carry such items has its values learned and checked item by item from them,
# not from op(), which still summarises the whole request (a DNP3 control request, a Logix write).
VALUE_ITEM: Final = "value_item"


class Op:
    """A protocol-neutral summary of one operation, for analyzers (immutable by convention).

    ``space`` names the address space the operation touches (a Modbus table,
    an S7 area or DB, a DNP3 object group, a CIP class or tag); ``start`` and
    ``count`` give the range inside it; ``values`` the values written, when
    known.  ``ok`` is False when the server answered with an error.
    ``detail`` carries the few protocol facts an edge of the graph shows as
    they are (an I/O connection's RPIs and transport class), as key/value pairs.
    """

    __slots__ = ("protocol", "function", "category", "space", "start", "count", "values", "ok", "tags", "unit",
                 "detail")

    def __init__(self, protocol: str, function: str, category: str, space: str | None = None,
                 start: int | None = None, count: int | None = None, values: tuple[Any, ...] | None = None,
                 ok: bool | None = None, tags: frozenset[str] = NO_TAGS, unit: int | None = None,
                 detail: tuple[tuple[str, Any], ...] | None = None) -> None:
        self.protocol = protocol
        self.function = function
        self.category = category
        self.space = space
        self.start = start
        self.count = count
        self.values = values
        self.ok = ok
        self.tags = tags
        self.unit = unit
        self.detail = detail

    def key(self) -> tuple[Any, ...]:
        """Everything but the values: what makes two operations the same kind of operation."""
        return (self.protocol, self.function, self.category, self.space, self.start, self.count, self.ok,
                self.tags, self.unit, self.detail)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Op) and self.key() == other.key() and self.values == other.values

    def __hash__(self) -> int:
        return hash(self.key())

    def __repr__(self) -> str:
        return (f"Op({self.protocol!r}, {self.function!r}, {self.category!r}, space={self.space!r}, "
                f"start={self.start!r}, count={self.count!r}, values={self.values!r}, ok={self.ok!r}, "
                f"tags={sorted(self.tags)!r}, unit={self.unit!r}, detail={self.detail!r})")


class Column(NamedTuple):
    """One column of a log: its name and its type in Zeek's vocabulary.

    Types: ``string``, ``count`` (unsigned), ``int``, ``double``, ``bool``,
    ``time``, ``interval``, ``addr``, ``port``, ``vector[string]``,
    ``vector[count]``, ``vector[int]``, ``vector[double]``, and ``json`` for a
    nested value (a list of objects or an object) that has no flat Zeek form.
    """

    name: str
    kind: str


KINDS: Final = frozenset({"string", "count", "int", "double", "bool", "time", "interval", "addr", "port",
                          "vector[string]", "vector[count]", "vector[int]", "vector[double]", "json"})


def columns(spec: str, kinds: frozenset[str] = KINDS) -> tuple[Column, ...]:
    """Columns from a compact declaration: ``"tid:count unit:count func:string"`` (whitespace separated)."""
    out = []
    for item in spec.split():
        name, _, kind = item.partition(":")
        if kind not in kinds:
            raise ValueError(f"column {name!r}: unknown type {kind!r}")
        out.append(Column(name, kind))
    return tuple(out)


def round6(ts: float) -> float:
    """``round(ts, 6)``, the microseconds every row shows of a time, with the same result for every float.

    ``round`` with digits is decimal rounding through a string, about half a microsecond, and every row
    needs it.  A capture's times are whole microseconds or close to them, so ``ts * 1e6`` lies well away
    from a rounding tie: then the nearest integer, divided by 1e6, is the double ``round`` gives (one
    correctly rounded division of exact operands).  Below 2**51 the product is the exact one within 1/8,
    so a fraction under 3/8 or over 5/8 says which integer is nearest; nearer a tie, or out of that
    range, ``round`` itself decides.
    """
    scaled = ts * 1e6
    if 1.0 <= scaled < 2251799813685248.0:   # 2**51
        frac = scaled % 1.0
        if frac < 0.375:
            return (scaled - frac) / 1e6
        if frac > 0.625:
            return (scaled - frac + 1.0) / 1e6
    return round(ts, 6)


# The columns the pipeline writes at the start of every protocol log row, before the record's own.
ROW_PREFIX: Final = columns("ts:time uid:string id.orig_h:addr id.orig_p:port id.resp_h:addr id.resp_p:port")


@mypyc_attr(allow_interpreted_subclasses=True)
class Record:
    """Base of every record a dissector emits."""

    __slots__ = ("ts",)
    LOG: ClassVar[str] = "records"
    COLUMNS: ClassVar[tuple[Column, ...]] = ()
    ZEEK_SCRIPT: ClassVar[Any] = None   # the ZeekScript class that logs this record's Zeek events

    def __init__(self, ts: float) -> None:
        self.ts = ts

    def fill_row(self, row: dict[str, Any]) -> None:
        """Write the record's own columns into ``row`` (a column whose value is unknown is left out)."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """The record's own columns as a dict, without the pipeline's ts/uid/id prefix."""
        row: dict[str, Any] = {}
        self.fill_row(row)
        return row

    def op(self) -> Op | None:
        """What operation this record describes, or None for records that are not operations."""
        return None

    def extra_ops(self) -> tuple[Op, ...]:
        """Operations the record implies besides ``op()`` (a Modbus FC 23 reads as well as writes)."""
        return ()

    def zeek_events(self) -> tuple[Any, ...]:
        """The messages this record holds, as Zeek's analyzer would report them (``dissectors/zeek.py``
        ZeekEvent s, handled by the record class's ``ZEEK_SCRIPT``); none by default."""
        return ()

    def identity(self) -> tuple[Direction, dict[str, Any]] | None:
        """Facts identifying a device, and which side of the connection they describe.

        Use the shared keys where they fit, so the inventory can compare
        devices across protocols: ``vendor``, ``vendor_id``, ``product_name``,
        ``product_code``, ``model``, ``device_type``, ``revision`` (firmware or
        software version), ``hardware_revision``, ``serial_number``,
        ``order_number``, ``module_name``, ``station_name``, ``plant_id``,
        ``rack``, ``slot``, ``link_address`` (DNP3); protocol-specific facts
        may add other keys.
        """
        return None


@mypyc_attr(allow_interpreted_subclasses=True)
class Anomaly(Record):
    """A decode anomaly: the bytes broke the protocol's rules.

    ``name`` is stable and public (``modbus.invalid_protocol_id``), from the
    protocol's closed set; ``reason`` explains this occurrence to a human.
    """

    __slots__ = ("protocol", "name", "reason", "direction", "detail")
    LOG: ClassVar[str] = "anomalies"
    COLUMNS: ClassVar[tuple[Column, ...]] = columns("protocol:string name:string reason:string direction:string "
                                                    "detail:json")

    def __init__(self, ts: float, protocol: str, name: str, reason: str, direction: Direction | None = None,
                 detail: dict[str, Any] | None = None) -> None:
        self.ts = ts
        self.protocol = protocol
        self.name = name
        self.reason = reason
        self.direction = direction
        self.detail = detail

    def fill_row(self, row: dict[str, Any]) -> None:
        row["protocol"] = self.protocol
        row["name"] = self.name
        row["reason"] = self.reason
        row["direction"] = None if self.direction is None else ("orig" if self.direction == Direction.ORIG
                                                                else "resp")
        if self.detail:
            row["detail"] = self.detail

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Anomaly) and self.ts == other.ts and self.protocol == other.protocol
                and self.name == other.name and self.reason == other.reason and self.direction == other.direction)

    def __hash__(self) -> int:
        return hash((self.ts, self.name, self.reason))

    def __repr__(self) -> str:
        return f"Anomaly({self.ts!r}, {self.protocol!r}, {self.name!r}, {self.reason!r}, {self.direction!r})"


class DissectorFault(Anomaly):
    """A dissector's own safety net caught an exception: a bug, not traffic.

    Written to anomalies.jsonl as ``<protocol>.dissector_error`` so the flow's
    context is kept, and counted by the pipeline in ``dissector_errors`` with a
    sample in ``error_samples``, exactly like an exception the pipeline itself
    contained.  A dissector uses it where it must survive a bug to keep
    decoding the rest of the stream.
    """

    __slots__ = ()

    def __init__(self, ts: float, protocol: str, where: str, exc: BaseException,
                 direction: Direction | None = None) -> None:
        super().__init__(ts, protocol, f"{protocol}.dissector_error",
                         f"{where}: {type(exc).__name__}: {exc}"[:300], direction)


@mypyc_attr(allow_interpreted_subclasses=True)
class Dissector:
    """Base class of a stream dissector.

    ``feed`` receives in-order stream bytes (TCP) or whole datagrams (UDP);
    ``gap`` says ``nbytes`` of a direction were lost; ``close`` says the
    stream ended.  All three return a list of records.  ``confirmed`` becomes
    True once a PDU has parsed (a flow counts as the protocol only then);
    ``rejected`` becomes True when the dissector is sure the flow does not
    carry its protocol, and the pipeline then detaches it.
    """

    name: ClassVar[str] = "unknown"
    # the ZeekScript class given this protocol's stream chunks, for a protocol whose Zeek analyzer parses
    # each delivered chunk itself (dissectors/zeek.py); None: Zeek's logs come from the records alone
    ZEEK_STREAM_SCRIPT: ClassVar[Any] = None

    def __init__(self) -> None:
        self.confirmed = False
        self.rejected = False

    def feed(self, data: bytes, direction: Direction, ts: float) -> list[Record]:
        raise NotImplementedError

    def gap(self, direction: Direction, nbytes: int, ts: float) -> list[Record]:
        return []

    def close(self, ts: float) -> list[Record]:
        return []


# An array's unpacking: ``unpack_from(buffer, offset=0)`` giving its elements as a tuple.
ArrayUnpack = Callable[..., tuple[Any, ...]]
MAX_ARRAY: Final = 256     # the elements a protocol's values are capped at (S7 items, Logix tags: MAX_VALUES)
_BIG_ENDIAN: Final[dict[str, list[ArrayUnpack | None]]] = {}
_LITTLE_ENDIAN: Final[dict[str, list[ArrayUnpack | None]]] = {}


def array_unpacker(big_endian: bool, fmt: str, count: int) -> ArrayUnpack:
    """The ``unpack_from`` of ``count`` elements of the struct format character ``fmt``, compiled on first
    use and kept for each byte order, format and count up to MAX_ARRAY: a poll reads the same few shapes
    over and over, and building a format string and a Struct (or looking its method up) per message cost
    more than the unpacking.  The formats come from the callers' tables, so the cache stays small."""
    cache = _BIG_ENDIAN if big_endian else _LITTLE_ENDIAN
    made = cache.get(fmt)
    if made is None:
        made = cache[fmt] = [None] * (MAX_ARRAY + 1)
    unpack = made[count] if count <= MAX_ARRAY else None
    if unpack is None:
        unpack = struct.Struct(f"{'>' if big_endian else '<'}{count}{fmt}").unpack_from
        if count <= MAX_ARRAY:
            made[count] = unpack
    return unpack


def hexstr(data: bytes, limit: int = 64) -> str:
    """Hex of at most ``limit`` bytes, for anomaly details (bounded so hostile input cannot bloat logs)."""
    return data[:limit].hex() + ("..." if len(data) > limit else "")
