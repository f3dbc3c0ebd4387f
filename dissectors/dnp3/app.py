"""DNP3 application layer (IEEE 1815-2012 clause 4): fragment header, IIN and object headers.

:func:`parse_fragment` never raises on bad bytes: every read is length-checked first, and
what cannot be decoded becomes an ``(anomaly name, reason, detail)`` entry in
:attr:`Fragment.problems`; parsing stops at the first header whose size cannot be known
(as it must: DNP3 has no per-header length).
"""
from __future__ import annotations

import struct
from typing import Any

from otsensor.dissectors.dnp3.objects import ATTR, BITS, FIXED, NONE, OCTETS, ObjectSpec, decode_attribute, \
    object_spec
from otsensor.dissectors.dnp3.points import Attribute, Opaque, Point, Value
from otsensor.dissectors.dnp3.tables import (
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

Problem = tuple[str, str, dict[str, Any]]


class _Stop(Exception):
    """Internal: the rest of the fragment cannot be framed (never leaves this module)."""


class ObjectHeader:
    """One object header (4.2.2.7) and the values decoded from its objects (at most 256)."""

    __slots__ = ("group", "variation", "qualifier", "name", "start", "stop", "count", "points", "points_truncated")

    def __init__(self, group: int, variation: int, qualifier: int, name: str) -> None:
        self.group = group
        self.variation = variation
        self.qualifier = qualifier
        self.name = name
        self.start: int | None = None
        self.stop: int | None = None
        self.count = 0
        self.points: list[Point] = []
        self.points_truncated = False

    @property
    def prefix_code(self) -> int:
        return (self.qualifier >> 4) & 0x07

    @property
    def range_code(self) -> int:
        return self.qualifier & 0x0F


class Fragment:
    """One reassembled application fragment: control octet, function, IIN (responses) and headers."""

    __slots__ = ("control", "function", "function_name", "iin", "headers", "problems")

    def __init__(self, control: int, function: int, iin: int | None = None) -> None:
        self.control = control
        self.function = function
        self.function_name = name_of(FUNCTIONS, function)
        self.iin = iin
        self.headers: list[ObjectHeader] = []
        self.problems: list[Problem] = []

    @property
    def seq(self) -> int:
        return self.control & 0x0F

    @property
    def is_response(self) -> bool:
        return self.function in RESPONSE_FUNCTIONS


def parse_fragment(data: bytes) -> Fragment | None:
    """Parse one reassembled fragment; None when shorter than a request header."""
    if len(data) < 2:
        return None
    frag = Fragment(data[0], data[1])
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
        self.frag = frag
        self.data = data
        self.pos = pos
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
        prefix, rng = (qualifier >> 4) & 0x07, qualifier & 0x0F
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
            start, stop = _PAIR[width].unpack_from(self.data, self.take(2 * width, "range"))
            hdr.start, hdr.stop = start, stop
            if stop < start:
                # Impossible range, but its size on the wire is known: report it, take it as
                # empty and go on with the next header (as Wireshark does).
                self.problem("dnp3.bad_range", "range stop below start", start=start, stop=stop)
                return
            hdr.count = stop - start + 1
        elif rng in RANGE_COUNT:
            width = RANGE_COUNT[rng]
            hdr.count = _UINT[width].unpack_from(self.data, self.take(width, "count"))[0]

    def objects(self, hdr: ObjectHeader, spec: ObjectSpec, prefix: int) -> None:
        if spec.kind == NONE:
            return
        if prefix == 0 and spec.kind == BITS:
            self.packed(hdr, spec)
            return
        width = PREFIX_WIDTH[prefix]
        if prefix == 0 and spec.kind == FIXED and hdr.count * spec.size > len(self.data) - self.pos:
            self.problem("dnp3.truncated_object", "objects run past the end of the fragment", count=hdr.count)
            raise _Stop
        if hdr.count * max(width, 1) > len(self.data) - self.pos:
            self.problem("dnp3.bad_range", "object count impossible for the remaining data", count=hdr.count)
            raise _Stop
        if spec.kind == FIXED and prefix < 4:
            self.fixed_run(hdr, spec, width)
            return
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

    def fixed_run(self, hdr: ObjectHeader, spec: ObjectSpec, width: int) -> None:
        """Fixed-size objects, bare or each behind an index prefix: one struct call for the whole run."""
        assert spec.layout is not None and spec.build is not None
        unit = width + spec.size
        start = self.pos
        whole = min(hdr.count, (len(self.data) - start) // unit)
        n = self.admit(hdr, whole, start, unit)
        run = memoryview(self.data)[start:start + n * unit]
        build = spec.build
        if width == 0:
            base = hdr.start if hdr.start is not None else 0
            hdr.points += [build(base + i, *raw) for i, raw in enumerate(spec.layout.iter_unpack(run))]
        else:       # each object is its index followed by its fields: the builder's arguments as they are
            hdr.points += [build(*raw) for raw in spec.indexed[width].iter_unpack(run)]
        self.pos = start + whole * unit
        if whole < hdr.count:
            # The data ends inside the next object: report it as reading it one field at a time would.
            self.take(width, "index prefix")
            self.take(spec.size, "object")

    def one(self, hdr: ObjectHeader, spec: ObjectSpec, index: int, size: int | None) -> None:
        if spec.kind == ATTR and size is None:
            at = self.take(2, "attribute type and length")
            dtype, length = self.data[at], self.data[at + 1]
            raw = self.data[self.take(length, "attribute value"):self.pos]
            if self.admit(hdr, 1, self.pos, 0):
                hdr.points.append(Attribute(index, dtype, decode_attribute(dtype, raw)))
            return
        if size is None:
            if spec.kind == FIXED or spec.kind == OCTETS:
                size = spec.size
            elif spec.kind == BITS:
                size = 1                         # index-prefixed packed objects take one octet each
            else:
                self.problem("dnp3.unknown_object", "variable-size object without a size prefix",
                             group=hdr.group, variation=hdr.variation)
                raise _Stop
        raw = self.data[self.take(size, "object"):self.pos]
        if self.admit(hdr, 1, self.pos, 0):
            hdr.points.append(self.decode(spec, index, raw))

    def decode(self, spec: ObjectSpec, index: int, raw: bytes) -> Point:
        """One object whose octets are known (a size prefix may have given fewer than its layout needs)."""
        if spec.layout is not None and spec.build is not None:
            if len(raw) < spec.size:
                self.problem("dnp3.truncated_object", "object shorter than its layout", need=spec.size,
                             have=len(raw))
                raise _Stop
            return spec.build(index, *spec.layout.unpack_from(raw))
        if spec.decode is not None:
            return spec.decode(index, raw)
        if spec.kind == BITS:
            if not raw:
                self.problem("dnp3.truncated_object", "empty object where a packed point needs an octet", need=1,
                             have=0)
                raise _Stop
            return Value(index, raw[0])
        return Opaque(index, len(raw), raw[:64])

    def packed(self, hdr: ObjectHeader, spec: ObjectSpec) -> None:
        nbytes = (hdr.count * spec.bits + 7) // 8
        raw = self.data[self.take(nbytes, "packed objects"):self.pos]
        base = hdr.start if hdr.start is not None else 0
        bits = spec.bits
        mask = (1 << bits) - 1
        n = self.admit(hdr, hdr.count, self.pos, 0)
        hdr.points += [Value(base + i, (raw[(i * bits) >> 3] >> ((i * bits) & 7)) & mask) for i in range(n)]

    def admit(self, hdr: ObjectHeader, available: int, start: int, unit: int) -> int:
        """How many of ``available`` further objects of ``hdr`` to decode: at most 256 per header and
        4,096 per fragment; the rest are walked, not decoded, and mark the header truncated.  The
        fragment cap is reported once, at the object that met it (``start + (n + 1) * unit``)."""
        room = MAX_POINTS_PER_HEADER - len(hdr.points)
        n = min(available, room, MAX_POINTS - self.decoded)
        if n < available:
            hdr.points_truncated = True
            if n < min(available, room) and not self.capped:
                self.capped = True
                self.frag.problems.append(("dnp3.too_many_objects",
                                           f"more than {MAX_POINTS} values in one fragment; rest not decoded",
                                           {"offset": start + (n + 1) * unit}))
        self.decoded += n
        return n
