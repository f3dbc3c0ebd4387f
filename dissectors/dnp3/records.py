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

from dataclasses import dataclass
from typing import Any, ClassVar

from otsensor.dissectors.base import Category, Direction, Op, Record, Tag
from otsensor.dissectors.dnp3.tables import (
    ATTRIBUTE_IDENTITY_KEYS,
    BROADCAST_ADDRESSES,
    CONTROL_FUNCTIONS,
    FILE_FUNCTIONS,
    FUNCTIONS,
    IIN_ERROR_MASK,
    iin_names,
)

MAX_VALUES = 256


@dataclass(frozen=True, slots=True)
class HeaderSummary:
    """What the analyzers need of one request object header."""

    group: int
    variation: int
    qualifier: int
    start: int | None
    count: int
    values: tuple = ()

    def label(self) -> str:
        return f"g{self.group}v{self.variation}"


@dataclass(frozen=True, slots=True)
class Dnp3Transaction(Record):
    LOG: ClassVar[str] = "dnp3"

    ts: float
    fc_request: str | None
    fc_reply: str | None
    iin: int | None
    link_src: int                   # link source of the request (master), or of an unsolicited response
    link_dst: int
    seq: int
    matched: bool
    request_headers: tuple[HeaderSummary, ...] = ()
    control_status_ok: bool | None = None   # all echoed control statuses were Success
    file_mode: str | None = None            # g70v3 open mode, for file functions

    def to_dict(self) -> dict[str, Any]:
        heads = self.request_headers[:MAX_VALUES]
        out: dict[str, Any] = {
            "fc_request": self.fc_request, "fc_reply": self.fc_reply, "iin": self.iin,
            "iin_flags": iin_names(self.iin) if self.iin is not None else None,
            "link_src": self.link_src, "link_dst": self.link_dst, "seq": self.seq, "matched": self.matched,
            "objects": [h.label() for h in heads],
        }
        if len(self.request_headers) > MAX_VALUES:
            out["objects_truncated"] = True
        return out

    def op(self) -> Op | None:
        fc = self.fc_request
        if fc is None:
            return Op("dnp3", self.fc_reply or "RESPONSE", Category.OTHER, ok=self._ok(), unit=self.link_src)
        category, tags = _classify(fc, self.request_headers, self.file_mode)
        if self.link_dst in BROADCAST_ADDRESSES:
            tags = tags | {Tag.BROADCAST}
        first = _first_data_header(self.request_headers)
        values: tuple | None = None
        if first is not None and first.values:
            values = tuple(v for h in self.request_headers for v in h.values)[:MAX_VALUES]
        return Op(
            protocol="dnp3", function=fc, category=category,
            space=first.label().split("v")[0] if first else None,
            start=first.start if first else None, count=first.count if first else None,
            values=values, ok=self._ok(), tags=frozenset(tags), unit=self.link_dst,
        )

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


_SIMPLE = {
    "COLD_RESTART": (Category.CONTROL, {Tag.RESTART}), "WARM_RESTART": (Category.CONTROL, {Tag.RESTART}),
    "STOP_APPL": (Category.CONTROL, {Tag.PLC_STOP}), "START_APPL": (Category.CONTROL, {Tag.PLC_START}),
    "INITIALIZE_APPL": (Category.CONTROL, {Tag.MODE_CHANGE}), "INITIALIZE_DATA": (Category.CONTROL, set()),
    "DISABLE_UNSOLICITED": (Category.CONTROL, {Tag.DISABLE_UNSOLICITED}), "ENABLE_UNSOLICITED": (Category.CONTROL, set()),
    "SAVE_CONFIG": (Category.CONTROL, {Tag.CONFIG_CHANGE}), "ACTIVATE_CONFIG": (Category.PROGRAM, {Tag.CONFIG_CHANGE}),
    "ASSIGN_CLASS": (Category.WRITE, {Tag.CONFIG_CHANGE}), "DELAY_MEASURE": (Category.DIAGNOSTIC, set()),
    "RECORD_CURRENT_TIME": (Category.DIAGNOSTIC, set()), "CONFIRM": (Category.SESSION, set()),
    "AUTHENTICATE_REQ": (Category.SESSION, set()), "AUTHENTICATE_ERR": (Category.SESSION, set()),
}


def _classify(fc: str, headers: tuple[HeaderSummary, ...], file_mode: str | None) -> tuple[str, set[str]]:
    """Category and tags of a request, from its function and its object headers."""
    groups = {h.group for h in headers}
    if fc in CONTROL_FUNCTIONS.values() or fc == "DIRECT_OPERATE_NR":
        return Category.WRITE, {CONTROL_FUNCTIONS.get(_code(fc), fc).lower()}
    if fc == "READ":
        if 0 in groups:
            return Category.RECON, {Tag.IDENTITY_READ}
        if 70 in groups:
            return Category.READ, {Tag.FILE_TRANSFER}
        return Category.READ, set()
    if fc == "WRITE":
        tags = set()
        if 50 in groups:
            tags.add(Tag.CLOCK_SET)
        if 70 in groups:
            return Category.PROGRAM, {Tag.FILE_TRANSFER}
        return Category.WRITE, tags
    if _code(fc) in FILE_FUNCTIONS:
        if fc == "DELETE_FILE":
            return Category.PROGRAM, {Tag.FILE_TRANSFER, Tag.PROGRAM_DELETE}
        if fc == "OPEN_FILE" and file_mode in ("WRITE", "APPEND"):
            return Category.PROGRAM, {Tag.FILE_TRANSFER, Tag.PROGRAM_DOWNLOAD}
        if fc == "GET_FILE_INFO" or (fc == "OPEN_FILE" and file_mode == "READ"):
            return Category.READ, {Tag.FILE_TRANSFER}
        return Category.OTHER, {Tag.FILE_TRANSFER}
    if "FREEZE" in fc:
        return Category.CONTROL, set()
    category, tags = _SIMPLE.get(fc, (Category.OTHER, set()))
    return category, set(tags)


_CODES = {name: code for code, name in FUNCTIONS.items()}


def _code(name: str) -> int:
    return _CODES.get(name, -1)


@dataclass(frozen=True, slots=True)
class Dnp3Control(Record):
    LOG: ClassVar[str] = "dnp3_control"

    ts: float
    block_type: str
    function_code: str
    index_number: int
    trip_control_code: str | None = None
    operation_type: str | None = None
    clear_bit: bool | None = None
    queue_bit: bool | None = None
    execute_count: int | None = None
    on_time: int | None = None
    off_time: int | None = None
    status_code: str | None = None
    value: float | int | None = None
    link_src: int | None = None
    link_dst: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "block_type": self.block_type, "function_code": self.function_code, "index_number": self.index_number,
            "trip_control_code": self.trip_control_code, "operation_type": self.operation_type,
            "clear_bit": self.clear_bit, "queue_bit": self.queue_bit, "execute_count": self.execute_count,
            "on_time": self.on_time, "off_time": self.off_time, "status_code": self.status_code,
            "value": self.value, "link_src": self.link_src, "link_dst": self.link_dst,
        }


@dataclass(frozen=True, slots=True)
class Dnp3Object(Record):
    LOG: ClassVar[str] = "dnp3_objects"

    ts: float
    function_code: str
    object_type: str
    group: int
    variation: int
    qualifier: int
    object_count: int | None
    range_low: int | None
    range_high: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "function_code": self.function_code, "object_type": self.object_type, "group": self.group,
            "variation": self.variation, "qualifier": f"0x{self.qualifier:02x}", "object_count": self.object_count,
            "range_low": self.range_low, "range_high": self.range_high,
        }


@dataclass(frozen=True, slots=True)
class Dnp3Points(Record):
    """Values of one object header: per point its index and decoded fields (``value``,
    ``flags``, ``time`` in ms since 1970 UTC as DNP3 sends it, ...), at most 256 points."""

    LOG: ClassVar[str] = "dnp3_points"

    ts: float
    function_code: str
    object_type: str
    group: int
    variation: int
    points: tuple[tuple[int, dict], ...]
    points_truncated: bool
    direction: Direction

    def to_dict(self) -> dict[str, Any]:
        return {
            "function_code": self.function_code, "object_type": self.object_type, "group": self.group,
            "variation": self.variation,
            "points": [{"index": index, **fields} for index, fields in self.points[:MAX_VALUES]],
            "points_truncated": self.points_truncated or len(self.points) > MAX_VALUES,
        }

    def identity(self) -> tuple[Direction, dict[str, Any]] | None:
        """Device attributes (g0) in a response describe the outstation that sent them."""
        if self.group != 0 or self.function_code not in ("RESPONSE", "UNSOLICITED_RESPONSE"):
            return None
        key = ATTRIBUTE_IDENTITY_KEYS.get(self.variation)
        if key is None or not self.points:
            return None
        value = self.points[0][1].get("value")
        return (self.direction, {key: value}) if value not in (None, "") else None


@dataclass(frozen=True, slots=True)
class Dnp3Station(Record):
    LOG: ClassVar[str] = "dnp3_stations"

    ts: float
    role: str                       # "master" or "outstation"
    link_address: int
    direction: Direction            # the side of the connection that sent frames from this address

    def to_dict(self) -> dict[str, Any]:
        return {"role": self.role, "link_address": self.link_address,
                "side": "orig" if self.direction == Direction.ORIG else "resp"}

    def identity(self) -> tuple[Direction, dict[str, Any]] | None:
        return self.direction, {"link_address": self.link_address, "dnp3_role": self.role}
