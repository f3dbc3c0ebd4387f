"""DNP3 application layer (IEEE 1815-2012 clause 4): fragment header, IIN and object headers.

:func:`parse_fragment` never raises on bad bytes: what cannot be decoded becomes an
``(anomaly name, reason, detail)`` entry in :attr:`Fragment.problems` and parsing stops
at the first header whose size cannot be known (as it must: DNP3 has no per-header length).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from otsensor.dissectors.dnp3.objects import ObjectSpec, decode_attribute, object_spec
from otsensor.dissectors.dnp3.tables import (
    ATTRIBUTE_TYPES,
    FUNCTIONS,
    HEADER_ONLY_FUNCTIONS,
    PREFIX_WIDTH,
    RANGE_ALL,
    RANGE_COUNT,
    RANGE_START_STOP,
    RESPONSE_FUNCTIONS,
    name_of,
)

MAX_HEADERS = 256                 # object headers kept per fragment
MAX_POINTS = 4096                 # object values decoded per fragment (the rest is walked, not decoded)
MAX_POINTS_PER_HEADER = 256       # values kept per header for the records

_UINT = {1: struct.Struct("<B"), 2: struct.Struct("<H"), 4: struct.Struct("<I")}
_PAIR = {1: struct.Struct("<BB"), 2: struct.Struct("<HH"), 4: struct.Struct("<II")}


class _Stop(Exception):
    """Internal: the rest of the fragment cannot be framed (never leaves this module)."""


@dataclass(slots=True)
class ObjectHeader:
    group: int
    variation: int
    qualifier: int
    name: str
    start: int | None = None
    stop: int | None = None
    count: int = 0
    points: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    points_truncated: bool = False

    @property
    def prefix_code(self) -> int:
        return (self.qualifier >> 4) & 0x07

    @property
    def range_code(self) -> int:
        return self.qualifier & 0x0F


@dataclass(slots=True)
class Fragment:
    control: int
    function: int
    iin: int | None
    headers: list[ObjectHeader] = field(default_factory=list)
    problems: list[tuple[str, str, dict]] = field(default_factory=list)

    @property
    def fir(self) -> bool:
        return bool(self.control & 0x80)

    @property
    def fin(self) -> bool:
        return bool(self.control & 0x40)

    @property
    def con(self) -> bool:
        return bool(self.control & 0x20)

    @property
    def uns(self) -> bool:
        return bool(self.control & 0x10)

    @property
    def seq(self) -> int:
        return self.control & 0x0F

    @property
    def function_name(self) -> str:
        return name_of(FUNCTIONS, self.function)

    @property
    def is_response(self) -> bool:
        return self.function in RESPONSE_FUNCTIONS


def parse_fragment(data: bytes) -> Fragment | None:
    """Parse one reassembled fragment; None when shorter than a request header."""
    if len(data) < 2:
        return None
    frag = Fragment(data[0], data[1], None)
    pos = 2
    if frag.function in RESPONSE_FUNCTIONS:
        if len(data) < 4:
            frag.problems.append(("dnp3.truncated_fragment", "response without its IIN octets", {"size": len(data)}))
            return frag
        frag.iin = (data[2] << 8) | data[3]      # IIN1 high, IIN2 low (Zeek's iin)
        pos = 4
    if frag.function not in FUNCTIONS:
        frag.problems.append(("dnp3.unknown_function", "function code not in IEEE 1815", {"function": frag.function}))
        return frag
    _Walker(frag, data, pos).run()
    return frag


class _Walker:
    """Walks the object headers of one fragment, decoding values up to the caps."""

    def __init__(self, frag: Fragment, data: bytes, pos: int) -> None:
        self.frag, self.data, self.pos = frag, data, pos
        self.header_only = frag.function in HEADER_ONLY_FUNCTIONS
        self.decoded = 0
        self.capped = False

    def problem(self, name: str, reason: str, **detail: Any) -> None:
        self.frag.problems.append((name, reason, {"offset": self.pos, **detail}))

    def run(self) -> None:
        try:
            while self.pos < len(self.data):
                if len(self.frag.headers) >= MAX_HEADERS:
                    self.problem("dnp3.too_many_objects", f"more than {MAX_HEADERS} object headers in one fragment")
                    return
                self.header()
        except _Stop:
            return
        except (struct.error, IndexError, ValueError, OverflowError) as exc:  # defensive: framing already checked
            self.problem("dnp3.truncated_object", f"object data ended early ({type(exc).__name__})")

    def take(self, n: int, what: str) -> int:
        start = self.pos
        if start + n > len(self.data):
            self.problem("dnp3.truncated_object", f"{what} runs past the end of the fragment", need=n,
                         have=len(self.data) - start)
            raise _Stop
        self.pos = start + n
        return start

    def header(self) -> None:
        at = self.take(3, "object header")
        group, variation, qualifier = self.data[at], self.data[at + 1], self.data[at + 2]
        spec = object_spec(group, variation)
        hdr = ObjectHeader(group, variation, qualifier, spec.name if spec else f"unknown-g{group}v{variation}")
        prefix, rng = hdr.prefix_code, hdr.range_code
        if prefix == 7 or not (rng in RANGE_START_STOP or rng == RANGE_ALL or rng in RANGE_COUNT):
            self.problem("dnp3.bad_qualifier", "reserved prefix or range code", qualifier=qualifier)
            self.frag.headers.append(hdr)
            raise _Stop
        self.read_range(hdr, rng)
        self.frag.headers.append(hdr)
        if rng == RANGE_ALL or hdr.count == 0:
            return
        if self.header_only and prefix < 4:
            # READ-like requests carry no object data, but index prefixes still occupy the
            # wire (4.2.2.7.3.2: a READ of indexed points lists the indices).
            self.take(hdr.count * PREFIX_WIDTH[prefix], "index prefixes")
            return
        if spec is None:
            self.problem("dnp3.unknown_object", "unknown group/variation carries data of unknown size",
                         group=group, variation=variation)
            raise _Stop
        self.objects(hdr, spec, prefix)

    def read_range(self, hdr: ObjectHeader, rng: int) -> None:
        if rng in RANGE_START_STOP:
            width = RANGE_START_STOP[rng]
            hdr.start, hdr.stop = _PAIR[width].unpack_from(self.data, self.take(2 * width, "range"))
            if hdr.stop < hdr.start:
                # Impossible range, but its size on the wire is known: report it, take it as
                # empty and go on with the next header (as Wireshark does).
                self.problem("dnp3.bad_range", "range stop below start", start=hdr.start, stop=hdr.stop)
                return
            hdr.count = hdr.stop - hdr.start + 1
        elif rng in RANGE_COUNT:
            width = RANGE_COUNT[rng]
            hdr.count = _UINT[width].unpack_from(self.data, self.take(width, "count"))[0]

    def objects(self, hdr: ObjectHeader, spec: ObjectSpec, prefix: int) -> None:
        if spec.kind == "none":
            return
        if prefix == 0 and spec.kind == "bits":
            self.packed(hdr, spec)
            return
        width = PREFIX_WIDTH[prefix]
        if prefix == 0 and spec.kind == "fixed" and hdr.count * spec.size > len(self.data) - self.pos:
            self.problem("dnp3.truncated_object", "objects run past the end of the fragment", count=hdr.count)
            raise _Stop
        if hdr.count * max(width, 1) > len(self.data) - self.pos:
            self.problem("dnp3.bad_range", "object count impossible for the remaining data", count=hdr.count)
            raise _Stop
        base = hdr.start if hdr.start is not None else 0
        for i in range(hdr.count):
            if prefix in (1, 2, 3):
                index = _UINT[width].unpack_from(self.data, self.take(width, "index prefix"))[0]
                size = None
            elif prefix in (4, 5, 6):
                index = base + i
                size = _UINT[width].unpack_from(self.data, self.take(width, "size prefix"))[0]
            else:
                index, size = base + i, None
            self.one(hdr, spec, index, size)

    def one(self, hdr: ObjectHeader, spec: ObjectSpec, index: int, size: int | None) -> None:
        if spec.kind == "attr" and size is None:
            at = self.take(2, "attribute type and length")
            dtype, length = self.data[at], self.data[at + 1]
            raw = self.data[self.take(length, "attribute value"):self.pos]
            self.keep(hdr, index, lambda: {"data_type": name_of(ATTRIBUTE_TYPES, dtype, 2),
                                           "value": decode_attribute(dtype, raw)})
            return
        if size is None:
            if spec.kind == "fixed" or spec.kind == "octets":
                size = spec.size
            elif spec.kind == "bits":
                size = 1                         # index-prefixed packed objects take one octet each
            else:
                self.problem("dnp3.unknown_object", "variable-size object without a size prefix",
                             group=hdr.group, variation=hdr.variation)
                raise _Stop
        raw = self.data[self.take(size, "object"):self.pos]
        self.keep(hdr, index, lambda: _decode(spec, raw))

    def packed(self, hdr: ObjectHeader, spec: ObjectSpec) -> None:
        nbytes = (hdr.count * spec.bits + 7) // 8
        raw = self.data[self.take(nbytes, "packed objects"):self.pos]
        base = hdr.start if hdr.start is not None else 0
        mask = (1 << spec.bits) - 1
        for i in range(min(hdr.count, MAX_POINTS_PER_HEADER)):
            bit = i * spec.bits
            self.keep(hdr, base + i, lambda bit=bit: {"value": (raw[bit >> 3] >> (bit & 7)) & mask})
        if hdr.count > MAX_POINTS_PER_HEADER:
            hdr.points_truncated = True

    def keep(self, hdr: ObjectHeader, index: int, decode) -> None:
        if len(hdr.points) >= MAX_POINTS_PER_HEADER:
            hdr.points_truncated = True
            return
        if self.decoded >= MAX_POINTS:
            if not self.capped:
                self.capped = True
                self.problem("dnp3.too_many_objects", f"more than {MAX_POINTS} values in one fragment; rest not decoded")
            hdr.points_truncated = True
            return
        self.decoded += 1
        hdr.points.append((index, decode()))


def _decode(spec: ObjectSpec, raw: bytes) -> dict[str, Any]:
    if spec.kind == "fixed" and spec.decode is not None and len(raw) >= spec.size:
        return spec.decode(raw)
    if spec.decode is not None:
        return spec.decode(raw)
    if spec.kind == "bits":
        return {"value": raw[0]}
    return {"size": len(raw), "data": raw[:64].hex()}
