"""Rockwell Logix data-table services (1756-PM020): Read/Write Tag, their fragmented variants,
Read Modify Write Tag; typed values decoded through the CIP elementary type table.
"""
from __future__ import annotations

import math
import struct
from typing import Any, ClassVar, Final

from otsensor.dissectors.base import array_unpacker
from otsensor.dissectors.enip import tables as T
from otsensor.dissectors.enip.message import MAX_VALUES, Data, Decoder, Detail, Message, TypedValues, need

_U16: Final = struct.Struct("<H")
_U32: Final = struct.Struct("<I")
_FLOATS: Final = frozenset("fd")


class ReadTag(Detail):
    """Read Tag (and Read Tag Fragmented, with its byte offset) request."""

    __slots__ = ("elements", "offset")
    COLUMNS: ClassVar[str] = "elements:count offset:count"

    def __init__(self, elements: int, offset: int | None = None) -> None:
        self.elements = elements
        self.offset = offset

    def fill_row(self, row: dict[str, Any]) -> None:
        row["elements"] = self.elements
        if self.offset is not None:
            row["offset"] = self.offset


class WriteTag(Detail):
    """Write Tag (and Write Tag Fragmented) request: the type, element count and the values written."""

    __slots__ = ("data_type", "elements", "offset", "payload")
    COLUMNS: ClassVar[str] = "data_type:string elements:count offset:count"

    def __init__(self, data_type: str, elements: int, offset: int | None, payload: TypedValues | Data) -> None:
        self.data_type = data_type
        self.elements = elements
        self.offset = offset
        self.payload = payload

    def fill_row(self, row: dict[str, Any]) -> None:
        row["data_type"] = self.data_type
        row["elements"] = self.elements
        if self.offset is not None:
            row["offset"] = self.offset
        self.payload.fill_row(row)


class ReadReply(Detail):
    """Read Tag (Fragmented) reply: the type and the values read."""

    __slots__ = ("data_type", "payload")
    COLUMNS: ClassVar[str] = "data_type:string"

    def __init__(self, data_type: str, payload: TypedValues | Data) -> None:
        self.data_type = data_type
        self.payload = payload

    def fill_row(self, row: dict[str, Any]) -> None:
        row["data_type"] = self.data_type
        self.payload.fill_row(row)


class ReadModifyWrite(Detail):
    """Read Modify Write Tag: OR mask (bits to set), AND mask (bits to keep), as hex."""

    __slots__ = ("or_mask", "and_mask")
    COLUMNS: ClassVar[str] = "or_mask:string and_mask:string"

    def __init__(self, or_mask: str, and_mask: str) -> None:
        self.or_mask = or_mask
        self.and_mask = and_mask

    def fill_row(self, row: dict[str, Any]) -> None:
        row["or_mask"] = self.or_mask
        row["and_mask"] = self.and_mask


DETAILS: Final[tuple[type[Detail], ...]] = (ReadTag, WriteTag, ReadReply, ReadModifyWrite)


def _type_at(data: bytes, pos: int) -> tuple[int, int | None, int]:
    """Data type code, structure handle (for 0xA0), and the bytes the type field takes."""
    need(data, pos + 2, "data type")
    code = data[pos] | data[pos + 1] << 8
    if code == T.STRUCT_TYPE:
        need(data, pos + 4, "structure handle")
        return code, data[pos + 2] | data[pos + 3] << 8, 4
    return code, None, 2


def _type_name(code: int, handle: int | None) -> str:
    if handle is not None:
        return f"STRUCT 0x{handle:04x}"
    entry = T.DATA_TYPES.get(code)
    return entry[0] if entry else f"unknown-0x{code:04x}"


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def decode_values(code: int, payload: bytes) -> TypedValues | Data:
    """Typed values of ``payload`` (elementary types), capped at MAX_VALUES; else capped hex."""
    entry = T.DATA_TYPES.get(code)
    if entry is None:
        return Data(payload)
    _name, fmt, size = entry
    count = len(payload) // size
    shown = min(count, MAX_VALUES)
    if not shown:
        return TypedValues([], count)
    values = list(array_unpacker(False, fmt, shown)(payload, 0))
    if fmt in _FLOATS:
        # a non-finite float is kept as its text; the sum is finite (x - x == 0) only when every value is
        # (or it overflowed: then each is looked at): one native test per reply, not one call per value
        total: float = sum(values)
        if total - total != 0.0:
            values = [_json_value(v) for v in values]
    return TypedValues(values, count - shown)


def _read_tag(msg: Message, _depth: int, _request: Message | None) -> None:
    data = msg.data
    need(data, 2, "read tag")
    msg.detail = ReadTag(data[0] | data[1] << 8)


def _read_frag(msg: Message, _depth: int, _request: Message | None) -> None:
    need(msg.data, 6, "read tag fragmented")
    msg.detail = ReadTag(_U16.unpack_from(msg.data, 0)[0], _U32.unpack_from(msg.data, 2)[0])


def _write(msg: Message, fragmented: bool) -> None:
    data = msg.data
    code, handle, n = _type_at(data, 0)
    need(data, n + (6 if fragmented else 2), "write tag fragmented" if fragmented else "write tag")
    elements = _U16.unpack_from(data, n)[0]
    pos = n + 2
    offset = None
    if fragmented:
        offset = _U32.unpack_from(data, pos)[0]
        pos += 4
    msg.detail = WriteTag(_type_name(code, handle), elements, offset, decode_values(code, data[pos:]))


def _write_tag(msg: Message, _depth: int, _request: Message | None) -> None:
    _write(msg, fragmented=False)


def _write_frag(msg: Message, _depth: int, _request: Message | None) -> None:
    _write(msg, fragmented=True)


def _read_modify_write(msg: Message, _depth: int, _request: Message | None) -> None:
    need(msg.data, 2, "read modify write tag")
    size = _U16.unpack_from(msg.data, 0)[0]
    need(msg.data, 2 + 2 * size, f"read modify write tag with {size}-byte masks")
    msg.detail = ReadModifyWrite(msg.data[2:2 + size].hex(), msg.data[2 + size:2 + 2 * size].hex())


def _read_reply(msg: Message, _depth: int, _request: Message | None) -> None:
    if not msg.data:
        return
    code, handle, n = _type_at(msg.data, 0)
    msg.detail = ReadReply(_type_name(code, handle), decode_values(code, msg.data[n:]))


REQUEST_DECODERS: Final[dict[int, Decoder]] = {
    T.READ_TAG: _read_tag, T.READ_FRAG: _read_frag, T.WRITE_TAG: _write_tag, T.WRITE_FRAG: _write_frag,
    T.READ_MODIFY_WRITE: _read_modify_write,
}
RESPONSE_DECODERS: Final[dict[int, Decoder]] = {T.READ_TAG: _read_reply, T.READ_FRAG: _read_reply}
