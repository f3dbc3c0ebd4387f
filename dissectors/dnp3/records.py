"""DNP3 records: what the dissector emits, with ICSNPP / Zeek field names.

* :class:`Dnp3Transaction` -> ``dnp3.jsonl``: a request and its response (Zeek dnp3.log
  ``fc_request, fc_reply, iin``) plus link addresses and a summary of the request objects;
* :class:`Dnp3Control` -> ``dnp3_control.jsonl``: one CROB / pattern / analog output block
  (ICSNPP dnp3_control);
* :class:`Dnp3Object` -> ``dnp3_objects.jsonl``: one object header (ICSNPP dnp3_objects);
* :class:`Dnp3Points` -> ``dnp3_points.jsonl``: decoded values of one object header (bounded);
* :class:`Dnp3Station` -> ``dnp3_stations.jsonl``: a DNP3 link address seen in a role, once per flow.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Final

from otsensor.dissectors.base import NO_TAGS, VALUE_ITEM, Category, Column, Direction, Op, Record, Tag, columns
from otsensor.dissectors.dnp3 import zeek
from otsensor.dissectors.dnp3.points import Attribute, Point, Scalar
from otsensor.dissectors.dnp3.tables import (
    ATTRIBUTE_IDENTITY_KEYS,
    BROADCAST_ADDRESSES,
    CONTROL_FUNCTIONS,
    FC_DELETE_FILE,
    FC_GET_FILE_INFO,
    FC_OPEN_FILE,
    FC_READ,
    FC_WRITE,
    FILE_FUNCTIONS,
    IIN_ERROR_MASK,
    iin_names,
)

if TYPE_CHECKING:
    from otsensor.dissectors.dnp3.app import Fragment

MAX_VALUES = 256
LINK_SRC: Final = "link_src"      # Op.detail key of a request's link-layer source address
RESPONSES: Final = ("RESPONSE", "UNSOLICITED_RESPONSE")


class HeaderSummary:
    """What the analyzers need of one request object header: its range, the values it writes, and for
    output commands (CROBs, analog output blocks) each point's index with its control code or value."""

    __slots__ = ("group", "variation", "qualifier", "start", "count", "values", "items")

    def __init__(self, group: int, variation: int, qualifier: int, start: int | None, count: int,
                 values: tuple[Scalar | None, ...] = (), items: tuple[tuple[int, Scalar], ...] = ()) -> None:
        self.group = group
        self.variation = variation
        self.qualifier = qualifier
        self.start = start
        self.count = count
        self.values = values
        self.items = items

    def label(self) -> str:
        return f"g{self.group}v{self.variation}"


class Dnp3Transaction(Record):
    """A request with its response, or either alone (``matched`` false).

    A request waits in the dissector as a transaction without a reply; the reply
    completes the same object (:meth:`reply`) before it is emitted.
    """

    __slots__ = ("fc_request", "fc_reply", "iin", "link_src", "link_dst", "seq", "matched", "request_code",
                 "request_headers", "control_status_ok", "file_mode", "request_fragment", "reply_fragment",
                 "request_direction")
    LOG: ClassVar[str] = "dnp3"
    ZEEK_SCRIPT: ClassVar[Any] = zeek.Dnp3Script
    COLUMNS: ClassVar[tuple[Column, ...]] = columns(
        "fc_request:string fc_reply:string iin:count iin_flags:vector[string] link_src:count link_dst:count "
        "seq:count matched:bool objects:vector[string] objects_truncated:bool")

    def __init__(self, ts: float, link_src: int, link_dst: int, seq: int, request_code: int | None = None,
                 fc_request: str | None = None, request_headers: tuple[HeaderSummary, ...] = (),
                 file_mode: str | None = None, request_fragment: Fragment | None = None,
                 request_direction: Direction | None = None) -> None:
        super().__init__(ts)
        self.link_src = link_src            # of the request (master), or of an unsolicited response
        self.link_dst = link_dst
        self.seq = seq
        self.request_code = request_code
        self.fc_request = fc_request
        self.request_headers = request_headers
        self.file_mode = file_mode          # g70v3 open mode, for file functions
        self.fc_reply: str | None = None
        self.iin: int | None = None
        self.matched = False
        self.control_status_ok: bool | None = None   # all echoed control statuses were Success
        # the fragments as parsed, for Zeek's per-message events (zeek.py), with the side each came from
        self.request_fragment = request_fragment
        self.request_direction = request_direction
        self.reply_fragment: tuple[float, Direction, Fragment] | None = None

    def reply(self, fc_reply: str, iin: int | None, control_status_ok: bool | None,
              matched: bool, fragment: tuple[float, Direction, Fragment] | None = None) -> Dnp3Transaction:
        self.reply_fragment = fragment
        self.fc_reply = fc_reply
        self.iin = iin
        self.control_status_ok = control_status_ok
        self.matched = matched
        return self

    def fill_row(self, row: dict[str, Any]) -> None:
        iin = self.iin
        heads = self.request_headers
        row["fc_request"] = self.fc_request
        row["fc_reply"] = self.fc_reply
        row["iin"] = iin
        row["iin_flags"] = iin_names(iin) if iin is not None else None
        row["link_src"] = self.link_src
        row["link_dst"] = self.link_dst
        row["seq"] = self.seq
        row["matched"] = self.matched
        row["objects"] = [h.label() for h in heads[:MAX_VALUES]]
        if len(heads) > MAX_VALUES:
            row["objects_truncated"] = True

    def zeek_events(self) -> tuple[Any, ...]:
        """The request fragment at its time, the reply's at its own."""
        events = []
        if self.request_fragment is not None and self.request_direction is not None:
            events.append(zeek.fragment_event(self.ts, self.request_direction, self.request_fragment))
        if self.reply_fragment is not None:
            events.append(zeek.fragment_event(*self.reply_fragment))
        return tuple(events)

    def op(self) -> Op | None:
        code, fc = self.request_code, self.fc_request
        if code is None or fc is None:
            return Op("dnp3", self.fc_reply or "RESPONSE", Category.OTHER, ok=self._ok(), unit=self.link_src)
        headers = self.request_headers
        category, tags = _classify(code, headers, self.file_mode)
        if self.link_dst in BROADCAST_ADDRESSES:
            tags = tags | {Tag.BROADCAST}
        first = _first_data_header(headers)
        # the master's link address: which station sent the request (baselines.dnp3_stations learns it)
        link = ((LINK_SRC, self.link_src),)
        if first is None:
            return Op("dnp3", fc, category, ok=self._ok(), tags=tags, unit=self.link_dst, detail=link)
        values = tuple(v for h in headers for v in h.values)[:MAX_VALUES] if first.values else None
        return Op("dnp3", fc, category, f"g{first.group}", first.start, first.count, values, self._ok(), tags,
                  self.link_dst, link)

    def extra_ops(self) -> tuple[Op, ...]:
        """Each output point a control request commands, one Op apiece (``VALUE_ITEM``): the item is the
        point (group and index), its width the object variation, its value the CROB's control code or the
        analog output's value, so every object of a select / operate / direct operate counts."""
        code = self.request_code
        if code is None or code not in CONTROL_FUNCTIONS or self.fc_request is None:
            return ()
        ok = self._ok()
        ops: list[Op] = []
        for h in self.request_headers:
            detail = (("width", h.label()), (VALUE_ITEM, True))
            for index, value in h.items[:MAX_VALUES - len(ops)]:
                ops.append(Op("dnp3", self.fc_request, Category.WRITE, f"g{h.group}", index, 1, (value,), ok,
                              NO_TAGS, self.link_dst, detail))
        return tuple(ops)

    def _ok(self) -> bool | None:
        if self.fc_reply is None:
            return None
        if self.iin is not None and self.iin & IIN_ERROR_MASK:
            return False
        return self.control_status_ok if self.control_status_ok is not None else True


def _first_data_header(headers: tuple[HeaderSummary, ...]) -> HeaderSummary | None:
    for h in headers:
        if h.group not in (60, 50, 51, 52):
            return h
    return headers[0] if headers else None


def _tags(*tags: str) -> frozenset[str]:
    return frozenset(tags)


# Requests whose meaning does not depend on their objects, by function code.
_BY_FUNCTION: dict[int, tuple[str, frozenset[str]]] = {
    **{code: (Category.WRITE, _tags(name.lower())) for code, name in CONTROL_FUNCTIONS.items()},
    **{code: (Category.CONTROL, NO_TAGS) for code in range(0x07, 0x0D)},          # the freeze functions
    0x0D: (Category.CONTROL, _tags(Tag.RESTART)), 0x0E: (Category.CONTROL, _tags(Tag.RESTART)),
    0x0F: (Category.CONTROL, NO_TAGS), 0x10: (Category.CONTROL, _tags(Tag.MODE_CHANGE)),
    0x11: (Category.CONTROL, _tags(Tag.PLC_START)), 0x12: (Category.CONTROL, _tags(Tag.PLC_STOP)),
    0x13: (Category.CONTROL, _tags(Tag.CONFIG_CHANGE)), 0x14: (Category.CONTROL, NO_TAGS),
    0x15: (Category.CONTROL, _tags(Tag.DISABLE_UNSOLICITED)), 0x16: (Category.WRITE, _tags(Tag.CONFIG_CHANGE)),
    0x17: (Category.DIAGNOSTIC, NO_TAGS), 0x18: (Category.DIAGNOSTIC, NO_TAGS),
    0x1F: (Category.PROGRAM, _tags(Tag.CONFIG_CHANGE)),
    0x00: (Category.SESSION, NO_TAGS), 0x20: (Category.SESSION, NO_TAGS), 0x21: (Category.SESSION, NO_TAGS),
}
_OTHER: Final = (Category.OTHER, NO_TAGS)


def _classify(code: int, headers: tuple[HeaderSummary, ...], file_mode: str | None) -> tuple[str, frozenset[str]]:
    """Category and tags of a request, from its function and its object headers."""
    if code == FC_READ or code == FC_WRITE:
        groups = {h.group for h in headers}
        if code == FC_READ:
            if 0 in groups:
                return Category.RECON, _tags(Tag.IDENTITY_READ)
            return (Category.READ, _tags(Tag.FILE_TRANSFER)) if 70 in groups else (Category.READ, NO_TAGS)
        if 70 in groups:
            return Category.PROGRAM, _tags(Tag.FILE_TRANSFER)
        return (Category.WRITE, _tags(Tag.CLOCK_SET)) if 50 in groups else (Category.WRITE, NO_TAGS)
    if code in FILE_FUNCTIONS:
        if code == FC_DELETE_FILE:
            return Category.PROGRAM, _tags(Tag.FILE_TRANSFER, Tag.PROGRAM_DELETE)
        if code == FC_OPEN_FILE and file_mode in ("WRITE", "APPEND"):
            return Category.PROGRAM, _tags(Tag.FILE_TRANSFER, Tag.PROGRAM_DOWNLOAD)
        if code == FC_GET_FILE_INFO or (code == FC_OPEN_FILE and file_mode == "READ"):
            return Category.READ, _tags(Tag.FILE_TRANSFER)
        return Category.OTHER, _tags(Tag.FILE_TRANSFER)
    return _BY_FUNCTION.get(code, _OTHER)


class Dnp3Control(Record):
    """One control block of a request or of its echo: a CROB, a pattern control block or an analog output."""

    __slots__ = ("block_type", "function_code", "index_number", "trip_control_code", "operation_type", "clear_bit",
                 "queue_bit", "execute_count", "on_time", "off_time", "status_code", "value", "link_src", "link_dst")
    LOG: ClassVar[str] = "dnp3_control"
    COLUMNS: ClassVar[tuple[Column, ...]] = columns(
        "block_type:string function_code:string index_number:count trip_control_code:string "
        "operation_type:string clear_bit:bool queue_bit:bool execute_count:count on_time:count off_time:count "
        "status_code:string value:double link_src:count link_dst:count")

    def __init__(self, ts: float, block_type: str, function_code: str, index_number: int,
                 trip_control_code: str | None = None, operation_type: str | None = None,
                 clear_bit: bool | None = None, queue_bit: bool | None = None, execute_count: int | None = None,
                 on_time: int | None = None, off_time: int | None = None, status_code: str | None = None,
                 value: int | float | None = None, link_src: int | None = None,
                 link_dst: int | None = None) -> None:
        super().__init__(ts)
        self.block_type = block_type
        self.function_code = function_code
        self.index_number = index_number
        self.trip_control_code = trip_control_code
        self.operation_type = operation_type
        self.clear_bit = clear_bit
        self.queue_bit = queue_bit
        self.execute_count = execute_count
        self.on_time = on_time
        self.off_time = off_time
        self.status_code = status_code
        self.value = value
        self.link_src = link_src
        self.link_dst = link_dst

    def fill_row(self, row: dict[str, Any]) -> None:
        row["block_type"] = self.block_type
        row["function_code"] = self.function_code
        row["index_number"] = self.index_number
        row["trip_control_code"] = self.trip_control_code
        row["operation_type"] = self.operation_type
        row["clear_bit"] = self.clear_bit
        row["queue_bit"] = self.queue_bit
        row["execute_count"] = self.execute_count
        row["on_time"] = self.on_time
        row["off_time"] = self.off_time
        row["status_code"] = self.status_code
        row["value"] = self.value
        row["link_src"] = self.link_src
        row["link_dst"] = self.link_dst


class Dnp3Object(Record):
    """One object header of a fragment (ICSNPP dnp3_objects)."""

    __slots__ = ("function_code", "object_type", "group", "variation", "qualifier", "object_count", "range_low",
                 "range_high")
    LOG: ClassVar[str] = "dnp3_objects"
    COLUMNS: ClassVar[tuple[Column, ...]] = columns(
        "function_code:string object_type:string group:count variation:count qualifier:string object_count:count "
        "range_low:count range_high:count")

    def __init__(self, ts: float, function_code: str, object_type: str, group: int, variation: int,
                 qualifier: int, object_count: int | None, range_low: int | None, range_high: int | None) -> None:
        super().__init__(ts)
        self.function_code = function_code
        self.object_type = object_type
        self.group = group
        self.variation = variation
        self.qualifier = qualifier
        self.object_count = object_count
        self.range_low = range_low
        self.range_high = range_high

    def fill_row(self, row: dict[str, Any]) -> None:
        row["function_code"] = self.function_code
        row["object_type"] = self.object_type
        row["group"] = self.group
        row["variation"] = self.variation
        row["qualifier"] = f"0x{self.qualifier:02x}"
        row["object_count"] = self.object_count
        row["range_low"] = self.range_low
        row["range_high"] = self.range_high


class Dnp3Points(Record):
    """Values of one object header: per point its index and decoded fields (``value``,
    ``flags``, ``time`` in ms since 1970 UTC as DNP3 sends it, ...), at most 256 points."""

    __slots__ = ("function_code", "object_type", "group", "variation", "points", "points_truncated", "direction")
    LOG: ClassVar[str] = "dnp3_points"
    COLUMNS: ClassVar[tuple[Column, ...]] = columns(
        "function_code:string object_type:string group:count variation:count points:json points_truncated:bool")

    def __init__(self, ts: float, function_code: str, object_type: str, group: int, variation: int,
                 points: list[Point], points_truncated: bool, direction: Direction) -> None:
        super().__init__(ts)
        self.function_code = function_code
        self.object_type = object_type
        self.group = group
        self.variation = variation
        self.points = points
        self.points_truncated = points_truncated
        self.direction = direction

    def fill_row(self, row: dict[str, Any]) -> None:
        points = self.points
        row["function_code"] = self.function_code
        row["object_type"] = self.object_type
        row["group"] = self.group
        row["variation"] = self.variation
        row["points"] = [p.as_dict() for p in (points if len(points) <= MAX_VALUES else points[:MAX_VALUES])]
        row["points_truncated"] = self.points_truncated or len(points) > MAX_VALUES

    def identity(self) -> tuple[Direction, dict[str, Any]] | None:
        """Device attributes (g0) in a response describe the outstation that sent them."""
        if self.group != 0 or self.function_code not in RESPONSES:
            return None
        key = ATTRIBUTE_IDENTITY_KEYS.get(self.variation)
        if key is None or not self.points:
            return None
        first = self.points[0]
        value = first.value if isinstance(first, Attribute) else None
        return None if value is None or value == "" else (self.direction, {key: value})


class Dnp3Station(Record):
    """A link address seen sending in a role (master or outstation), once per flow and side."""

    __slots__ = ("role", "link_address", "direction")
    LOG: ClassVar[str] = "dnp3_stations"
    COLUMNS: ClassVar[tuple[Column, ...]] = columns("role:string link_address:count side:string")

    def __init__(self, ts: float, role: str, link_address: int, direction: Direction) -> None:
        super().__init__(ts)
        self.role = role                    # "master" or "outstation"
        self.link_address = link_address
        self.direction = direction          # the side of the connection that sent frames from this address

    def fill_row(self, row: dict[str, Any]) -> None:
        row["role"] = self.role
        row["link_address"] = self.link_address
        row["side"] = "orig" if self.direction == Direction.ORIG else "resp"

    def identity(self) -> tuple[Direction, dict[str, Any]] | None:
        return self.direction, {"link_address": self.link_address, "dnp3_role": self.role}
