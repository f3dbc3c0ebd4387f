"""Decoded DNP3 objects (IEEE 1815-2012 Annex A): one small typed class per object shape.

An object header's values are a list of :class:`Point`: the point index and the
fields its group/variation carries, as attributes.  Many groups share a shape
(every analog or counter with flags is a :class:`Flagged`), so the catalogue in
``objects.py`` maps each group/variation to one of these classes and a struct
layout, not to a handler of its own.  :meth:`Point.as_dict` gives the object as
``dnp3_points.jsonl`` writes it (``index`` first, then the fields in wire order);
it runs only when a row is written, so decoding costs one small object per point.
"""
from __future__ import annotations

from typing import Any, Union

from otsensor.dissectors.dnp3.tables import (
    ATTRIBUTE_TYPES,
    COMMAND_STATUS,
    FILE_STATUS,
    OPERATION_TYPES,
    TRIP_CLOSE_CODES,
    name_of,
)

Scalar = Union[int, float, str]


class Point:
    """One decoded object; ``index`` is its point index (or its position, for objects without one)."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def as_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def reported(self) -> Scalar | None:
        """The value (or, for a time object, the time) a request carrying this object writes; None if neither."""
        return None


class Value(Point):
    """A bare value: packed bits, values without flags, BCD, a file specification string."""

    __slots__ = ("value",)

    def __init__(self, index: int, value: Scalar) -> None:
        self.index = index
        self.value = value

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "value": self.value}

    def reported(self) -> Scalar | None:
        return self.value


class Flagged(Point):
    """A value with its flags octet (for binary and double-bit objects the state is in the flags)."""

    __slots__ = ("flags", "value")

    def __init__(self, index: int, flags: int, value: int | float) -> None:
        self.index = index
        self.flags = flags
        self.value = value

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "flags": self.flags, "value": self.value}

    def reported(self) -> Scalar | None:
        return self.value


class FlaggedTime(Flagged):
    """An event with its absolute time (ms since 1970 UTC, as DNP3 sends it)."""

    __slots__ = ("time",)

    def __init__(self, index: int, flags: int, value: int | float, time: int) -> None:
        self.index = index
        self.flags = flags
        self.value = value
        self.time = time

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "flags": self.flags, "value": self.value, "time": self.time}


class FlaggedRelativeTime(Flagged):
    """An event with a time relative to the preceding common time-of-occurrence (g51)."""

    __slots__ = ("rel_time",)

    def __init__(self, index: int, flags: int, value: int, rel_time: int) -> None:
        self.index = index
        self.flags = flags
        self.value = value
        self.rel_time = rel_time

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "flags": self.flags, "value": self.value, "rel_time": self.rel_time}


class CommandEvent(Point):
    """An analog output command event (g43): the command status, the value, optionally the time."""

    __slots__ = ("status", "value", "time")

    def __init__(self, index: int, status: int, value: int | float, time: int | None = None) -> None:
        self.index = index
        self.status = status
        self.value = value
        self.time = time

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "status": self.status, "value": self.value}
        if self.time is not None:
            out["time"] = self.time
        return out

    def reported(self) -> Scalar | None:
        return self.value


class OutputBlock(Point):
    """An analog output block (g41, A.20): the value to set and the echoed command status."""

    __slots__ = ("value", "status")

    def __init__(self, index: int, value: int | float, status: int) -> None:
        self.index = index
        self.value = value
        self.status = status

    @property
    def status_code(self) -> str:
        return name_of(COMMAND_STATUS, self.status & 0x7F)

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "value": self.value, "status": self.status, "status_code": self.status_code}

    def reported(self) -> Scalar | None:
        return self.value


class Crob(Point):
    """A control relay output block or pattern control block (g12v1/v2, A.8.1)."""

    __slots__ = ("control_code", "execute_count", "on_time", "off_time", "status")

    def __init__(self, index: int, control_code: int, execute_count: int, on_time: int, off_time: int,
                 status: int) -> None:
        self.index = index
        self.control_code = control_code
        self.execute_count = execute_count
        self.on_time = on_time
        self.off_time = off_time
        self.status = status & 0x7F

    @property
    def trip_control_code(self) -> str:
        return TRIP_CLOSE_CODES[self.control_code >> 6]

    @property
    def clear_bit(self) -> bool:
        return bool(self.control_code & 0x20)

    @property
    def queue_bit(self) -> bool:
        return bool(self.control_code & 0x10)

    @property
    def operation_type(self) -> str:
        return name_of(OPERATION_TYPES, self.control_code & 0x0F, 1)

    @property
    def status_code(self) -> str:
        return name_of(COMMAND_STATUS, self.status)

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "control_code": self.control_code, "trip_control_code": self.trip_control_code,
                "clear_bit": self.clear_bit, "queue_bit": self.queue_bit, "operation_type": self.operation_type,
                "execute_count": self.execute_count, "on_time": self.on_time, "off_time": self.off_time,
                "status": self.status, "status_code": self.status_code}


class AbsoluteTime(Point):
    """Time and date (g50, g51): the time, and for some variations an interval and its units."""

    __slots__ = ("time", "interval", "units")

    def __init__(self, index: int, time: int, interval: int | None = None, units: int | None = None) -> None:
        self.index = index
        self.time = time
        self.interval = interval
        self.units = units

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "time": self.time}
        if self.interval is not None:
            out["interval"] = self.interval
        if self.units is not None:
            out["units"] = self.units
        return out

    def reported(self) -> Scalar | None:
        return self.time


class TimeDelay(Point):
    """Time delay (g52): coarse in seconds (v1) or fine in milliseconds (v2)."""

    __slots__ = ("amount", "fine")

    def __init__(self, index: int, amount: int, fine: bool) -> None:
        self.index = index
        self.amount = amount
        self.fine = fine

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, ("milliseconds" if self.fine else "seconds"): self.amount}


class Storage(Point):
    """Storage object (g81): an event buffer's overflow state and the group/variation it holds."""

    __slots__ = ("overflow", "group", "variation")

    def __init__(self, index: int, overflow: int, group: int, variation: int) -> None:
        self.index = index
        self.overflow = overflow
        self.group = group
        self.variation = variation

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "overflow": self.overflow, "group": self.group, "variation": self.variation}


class SecurityStatistic(Point):
    """Security statistic (g121, g122): flags, association, count, optionally the time."""

    __slots__ = ("flags", "association", "value", "time")

    def __init__(self, index: int, flags: int, association: int, value: int, time: int | None = None) -> None:
        self.index = index
        self.flags = flags
        self.association = association
        self.value = value
        self.time = time

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "flags": self.flags, "association": self.association,
                               "value": self.value}
        if self.time is not None:
            out["time"] = self.time
        return out

    def reported(self) -> Scalar | None:
        return self.value


class Authentication(Point):
    """Secure authentication objects (g120): challenge or key sequence number, user, error."""

    __slots__ = ("sequence", "user", "error")

    def __init__(self, index: int, sequence: int | None, user: int, error: str | None = None) -> None:
        self.index = index
        self.sequence = sequence
        self.user = user
        self.error = error

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index}
        if self.sequence is not None:
            out["sequence"] = self.sequence
        out["user"] = self.user
        if self.error is not None:
            out["error"] = self.error
        return out


class Attribute(Point):
    """A device attribute (g0, A.1): its data type and value."""

    __slots__ = ("data_type", "value")

    def __init__(self, index: int, data_type: int, value: Scalar) -> None:
        self.index = index
        self.data_type = data_type
        self.value = value

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "data_type": name_of(ATTRIBUTE_TYPES, self.data_type, 2), "value": self.value}

    def reported(self) -> Scalar | None:
        return self.value


class FileCommand(Point):
    """File command (g70v3, A.24.3)."""

    __slots__ = ("file_name", "file_size", "mode", "max_block_size", "request_id")

    def __init__(self, index: int, file_name: str, file_size: int, mode: str, max_block_size: int,
                 request_id: int) -> None:
        self.index = index
        self.file_name = file_name
        self.file_size = file_size
        self.mode = mode
        self.max_block_size = max_block_size
        self.request_id = request_id

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "file_name": self.file_name, "file_size": self.file_size, "mode": self.mode,
                "max_block_size": self.max_block_size, "request_id": self.request_id}


class FileStatus(Point):
    """File command status (g70v4, A.24.4)."""

    __slots__ = ("file_handle", "file_size", "max_block_size", "request_id", "status")

    def __init__(self, index: int, file_handle: int, file_size: int, max_block_size: int, request_id: int,
                 status: int) -> None:
        self.index = index
        self.file_handle = file_handle
        self.file_size = file_size
        self.max_block_size = max_block_size
        self.request_id = request_id
        self.status = status

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "file_handle": self.file_handle, "file_size": self.file_size,
                "max_block_size": self.max_block_size, "request_id": self.request_id,
                "status_code": name_of(FILE_STATUS, self.status)}


class FileTransport(Point):
    """File transport (g70v5, A.24.5): a block of file data, of which only the length is kept."""

    __slots__ = ("file_handle", "block", "last", "data_length")

    def __init__(self, index: int, file_handle: int, block: int, last: bool, data_length: int) -> None:
        self.index = index
        self.file_handle = file_handle
        self.block = block
        self.last = last
        self.data_length = data_length

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "file_handle": self.file_handle, "block": self.block, "last": self.last,
                "data_length": self.data_length}


class FileTransportStatus(Point):
    """File transport status (g70v6, A.24.6)."""

    __slots__ = ("file_handle", "block", "status")

    def __init__(self, index: int, file_handle: int, block: int, status: int) -> None:
        self.index = index
        self.file_handle = file_handle
        self.block = block
        self.status = status

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "file_handle": self.file_handle, "block": self.block,
                "status_code": name_of(FILE_STATUS, self.status)}


class FileDescriptor(Point):
    """File descriptor (g70v7, A.24.7)."""

    __slots__ = ("file_name", "file_type", "file_size")

    def __init__(self, index: int, file_name: str, file_type: int, file_size: int) -> None:
        self.index = index
        self.file_name = file_name
        self.file_type = file_type
        self.file_size = file_size

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "file_name": self.file_name, "file_type": self.file_type,
                "file_size": self.file_size}


class Truncated(Point):
    """A variable-size object too short for its fixed fields."""

    __slots__ = ()

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "truncated": True}


class Opaque(Point):
    """An object the catalogue does not decode: its size and its first 64 octets."""

    __slots__ = ("size", "head")

    def __init__(self, index: int, size: int, head: bytes) -> None:
        self.index = index
        self.size = size
        self.head = head

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "size": self.size, "data": self.head.hex()}
