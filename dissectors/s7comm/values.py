"""Decoding of Read/Write Var item data by transport size, and S7 BCD timestamps."""
from __future__ import annotations

import math
import struct
from typing import Any, Final

from otsensor.dissectors.base import array_unpacker

MAX_VALUES: Final = 256

# request transport size -> struct format of one element (big-endian, S7 byte order)
_ELEMENT_FORMATS: Final = {
    0x02: "B",   # BYTE
    0x04: "H",   # WORD
    0x05: "h",   # INT
    0x06: "I",   # DWORD
    0x07: "i",   # DINT
    0x08: "f",   # REAL
    0x1C: "H",   # COUNTER (BCD in the CPU; reported raw)
    0x1D: "H",   # TIMER (S5TIME word; reported raw)
    0x0C: "H",   # S5TIME
    0x0B: "i",   # TIME (ms)
    0x0A: "I",   # TOD (ms since midnight)
    0x09: "H",   # DATE (days since 1990-01-01)
}
# data transport size -> element format, when the request is not known
_DATA_FORMATS: Final = {0x04: "B", 0x05: "h", 0x06: "i", 0x07: "f", 0x09: "B"}
_SIZES: Final = {fmt: struct.calcsize(fmt) for fmt in set(_ELEMENT_FORMATS.values()) | set(_DATA_FORMATS.values())}


def decode_values(data: bytes, request_tsize: int | None, data_tsize: int) -> tuple[list[Any], bool]:
    """Values of one item, capped at MAX_VALUES; returns (values, truncated)."""
    asked = -1 if request_tsize is None else request_tsize      # (a plain int: compared natively when compiled)
    if asked == 0x01 or data_tsize == 0x03:                      # BIT
        return [b & 1 == 1 for b in data[:MAX_VALUES]], len(data) > MAX_VALUES
    if asked == 0x03:                                            # CHAR
        return [data[:MAX_VALUES].decode("latin-1")], len(data) > MAX_VALUES
    fmt = _ELEMENT_FORMATS.get(asked) or _DATA_FORMATS.get(data_tsize, "B")
    count = len(data) // _SIZES[fmt]
    n = min(count, MAX_VALUES)
    if fmt == "B":
        return list(data[:n]), count > MAX_VALUES
    # all elements in one unpack, not one call per element
    values: list[Any] = list(array_unpacker(True, fmt, n)(data))
    if fmt == "f":
        values = [_finite(v) for v in values]      # JSON has no NaN/inf
    return values, count > MAX_VALUES


def _finite(value: float) -> float | None:
    """The value, or None for NaN and the infinities (typed, and with isinf and isnan, which mypyc has
    as primitives: the compiled build tests a C double instead of looking ``math.isfinite`` up and calling
    it per element)."""
    return None if math.isinf(value) or math.isnan(value) else value


def _bcd(byte: int) -> int:
    return (byte >> 4) * 10 + (byte & 0x0F)


def s7_timestamp(raw: bytes) -> str | None:
    """ISO text of the 10-byte S7 clock value (reserved, year hi/lo, month, day, h, m, s, ms+weekday; BCD)."""
    if len(raw) < 10:
        return None
    # byte 1 (century) is not filled consistently by stacks; like Wireshark, use byte 2 only
    year, month, day, hour, minute, second = (_bcd(b) for b in raw[2:8])
    msec = _bcd(raw[8]) * 10 + (raw[9] >> 4)
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 61):
        return None
    full_year = 1900 + year if year >= 90 else 2000 + year
    return f"{full_year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}.{msec:03d}"
