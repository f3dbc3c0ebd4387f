"""The dissector contract shared by every protocol.

A dissector is sans-I/O (in the sense of h11): stream bytes and a direction go
in, typed records come out.  It never opens a socket or a file, never reads a
clock, never logs, and never lets an exception escape ``feed``: bad bytes turn
into :class:`Anomaly` records and the stream goes on.

Every record is a frozen, slotted dataclass deriving from :class:`Record`.  It
names the log it belongs to (``LOG``), turns itself into the flat dict a sink
writes (``to_dict``), and may describe itself to the analyzers through
:meth:`Record.op` (what operation it is, on which address space) and
:meth:`Record.identity` (facts that identify a device).  Analyzers rely on
those two methods only, so that inventory, graph and detection stay protocol
agnostic.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, ClassVar


class Direction(IntEnum):
    """Which side sent the bytes: the connection's originator (client) or its responder (server)."""

    ORIG = 0
    RESP = 1


class Category:
    """Closed set of operation categories the analyzers reason about."""

    READ = "read"
    WRITE = "write"
    CONTROL = "control"        # run-state changes: stop, start, restart, mode
    PROGRAM = "program"        # logic/firmware transfer: download, upload, delete
    RECON = "recon"            # identity / inventory queries
    DIAGNOSTIC = "diagnostic"
    SESSION = "session"        # connection setup, keep-alive, session handling
    OTHER = "other"


class Tag:
    """Security-relevant facts a dissector can state about an operation.

    These are observations of what the bytes say, not alerts: the analyzers
    decide what (if anything) to raise.
    """

    PLC_STOP = "plc_stop"
    PLC_START = "plc_start"
    MODE_CHANGE = "mode_change"
    RESTART = "restart"
    PROGRAM_DOWNLOAD = "program_download"
    PROGRAM_UPLOAD = "program_upload"
    PROGRAM_DELETE = "program_delete"
    FIRMWARE = "firmware"
    LISTEN_ONLY = "listen_only"
    DISABLE_UNSOLICITED = "disable_unsolicited"
    SELECT = "select"
    OPERATE = "operate"
    DIRECT_OPERATE = "direct_operate"
    BROADCAST = "broadcast"
    IDENTITY_READ = "identity_read"
    FILE_TRANSFER = "file_transfer"
    CLOCK_SET = "clock_set"
    FORCE = "force"
    CONFIG_CHANGE = "config_change"


@dataclass(frozen=True, slots=True)
class Op:
    """A protocol-neutral summary of one operation, for analyzers.

    ``space`` names the address space the operation touches (a Modbus table,
    an S7 area or DB, a DNP3 object group, a CIP class or tag); ``start`` and
    ``count`` give the range inside it; ``values`` the values written, when
    known.  ``ok`` is False when the server answered with an error.
    ``detail`` carries the few protocol facts an edge of the graph shows as
    they are (an I/O connection's RPIs and transport class), as key/value pairs.
    """

    protocol: str
    function: str
    category: str
    space: str | None = None
    start: int | None = None
    count: int | None = None
    values: tuple | None = None
    ok: bool | None = None
    tags: frozenset[str] = frozenset()
    unit: int | None = None           # Modbus unit, DNP3 destination, S7 rack/slot, ...
    detail: tuple[tuple[str, Any], ...] | None = None


class Record:
    """Base of every record a dissector emits (subclasses are frozen slotted dataclasses)."""

    __slots__ = ()
    LOG: ClassVar[str] = "records"

    ts: float

    def to_dict(self) -> dict[str, Any]:
        """The record's own fields as a flat dict; the pipeline adds ts, uid and id.*."""
        raise NotImplementedError

    def op(self) -> Op | None:
        """What operation this record describes, or None for records that are not operations."""
        return None

    def extra_ops(self) -> tuple[Op, ...]:
        """Operations the record implies besides ``op()`` (a Modbus FC 23 reads as well as writes)."""
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


@dataclass(frozen=True, slots=True)
class Anomaly(Record):
    """A decode anomaly: the bytes broke the protocol's rules.

    ``name`` is stable and public (``modbus.invalid_protocol_id``), from the
    protocol's closed set; ``reason`` explains this occurrence to a human.
    """

    LOG: ClassVar[str] = "anomalies"

    ts: float
    protocol: str
    name: str
    reason: str
    direction: Direction | None = None
    detail: dict[str, Any] | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "protocol": self.protocol,
            "name": self.name,
            "reason": self.reason,
            "direction": None if self.direction is None else ("orig" if self.direction == Direction.ORIG else "resp"),
        }
        if self.detail:
            out["detail"] = self.detail
        return out


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

    def __init__(self) -> None:
        self.confirmed = False
        self.rejected = False

    def feed(self, data: bytes, direction: Direction, ts: float) -> list[Record]:
        raise NotImplementedError

    def gap(self, direction: Direction, nbytes: int, ts: float) -> list[Record]:
        return []

    def close(self, ts: float) -> list[Record]:
        return []


def hexstr(data: bytes, limit: int = 64) -> str:
    """Hex of at most ``limit`` bytes, for anomaly details (bounded so hostile input cannot bloat logs)."""
    return data[:limit].hex() + ("..." if len(data) > limit else "")
