"""Rockwell Logix data-table services (1756-PM020): Read/Write Tag, their fragmented variants,
Read Modify Write Tag; typed values decoded through the CIP elementary type table.
"""
from __future__ import annotations

import math
import struct
from typing import Any

from otsensor.dissectors.enip import tables as T
from otsensor.dissectors.enip.cip import Message, hex_capped

MAX_VALUES = 256     # values kept per record; the rest is counted in values_truncated
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")


def _type_at(data: bytes, pos: int) -> tuple[int, int | None, int]:
    """Data type code, structure handle (for 0xA0), and the bytes the type field takes."""
    code = _U16.unpack_from(data, pos)[0]
    if code == T.STRUCT_TYPE:
        return code, _U16.unpack_from(data, pos + 2)[0], 4
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


def decode_values(code: int, payload: bytes) -> dict[str, Any]:
    """Typed values of ``payload`` (elementary types), capped at MAX_VALUES; else capped hex."""
    entry = T.DATA_TYPES.get(code)
    if entry is None:
        return hex_capped(payload)
    _name, fmt, size = entry
    count = len(payload) // size
    shown = min(count, MAX_VALUES)
    values = struct.unpack_from(f"<{shown}{fmt}", payload, 0) if shown else ()
    out: dict[str, Any] = {"values": [_json_value(v) for v in values]}
    if count > shown:
        out["values_truncated"] = count - shown
    return out


def _read_tag(msg: Message, _depth: int) -> None:
    msg.info["elements"] = _U16.unpack_from(msg.data, 0)[0]


def _read_frag(msg: Message, _depth: int) -> None:
    msg.info["elements"] = _U16.unpack_from(msg.data, 0)[0]
    msg.info["offset"] = _U32.unpack_from(msg.data, 2)[0]


def _write(msg: Message, fragmented: bool) -> None:
    code, handle, n = _type_at(msg.data, 0)
    elements = _U16.unpack_from(msg.data, n)[0]
    pos = n + 2
    msg.info.update({"data_type": _type_name(code, handle), "elements": elements})
    if fragmented:
        msg.info["offset"] = _U32.unpack_from(msg.data, pos)[0]
        pos += 4
    msg.info.update(decode_values(code, msg.data[pos:]))


def _write_tag(msg: Message, _depth: int) -> None:
    _write(msg, fragmented=False)


def _write_frag(msg: Message, _depth: int) -> None:
    _write(msg, fragmented=True)


def _read_modify_write(msg: Message, _depth: int) -> None:
    """Mask size, OR mask (bits to set), AND mask (bits to keep)."""
    size = _U16.unpack_from(msg.data, 0)[0]
    or_mask, and_mask = msg.data[2:2 + size], msg.data[2 + size:2 + 2 * size]
    if len(and_mask) < size:
        raise ValueError(f"masks of {size} bytes beyond the data")
    msg.info.update({"or_mask": or_mask.hex(), "and_mask": and_mask.hex()})


def _read_reply(msg: Message, _depth: int, _request: Message | None) -> None:
    if not msg.data:
        return
    code, handle, n = _type_at(msg.data, 0)
    msg.info["data_type"] = _type_name(code, handle)
    msg.info.update(decode_values(code, msg.data[n:]))


REQUEST_DECODERS = {
    T.READ_TAG: _read_tag, T.READ_FRAG: _read_frag, T.WRITE_TAG: _write_tag, T.WRITE_FRAG: _write_frag,
    T.READ_MODIFY_WRITE: _read_modify_write,
}
RESPONSE_DECODERS = {T.READ_TAG: _read_reply, T.READ_FRAG: _read_reply}
