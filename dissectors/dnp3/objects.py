"""DNP3 object catalogue (IEEE 1815-2012 Annex A): name, wire size and value decoder per
group/variation, as one table.  Values decode to the typed points of ``points.py``.

An entry is an :class:`ObjectSpec`.  ``kind`` says how the object's size is known:

* ``fixed``: ``size`` bytes, a precompiled ``struct`` layout and the point its fields build;
* ``bits``: packed, ``bits`` (1 or 2) per point (g1v1, g3v1, g10v1, g12v3, g80v1);
* ``none``: no object data (variation 0, class data g60, ...);
* ``octets``: the variation is the length (g110-g113 strings);
* ``attr``: device attribute, data type + length + value (g0);
* ``sized``: variable, size given by the qualifier's size prefix (g70 files, g120 auth).
"""
from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, Final

from otsensor.dissectors.dnp3.points import (
    AbsoluteTime,
    Authentication,
    CommandEvent,
    Crob,
    FileCommand,
    FileDescriptor,
    FileStatus,
    FileTransport,
    FileTransportStatus,
    Flagged,
    FlaggedRelativeTime,
    FlaggedTime,
    OutputBlock,
    Point,
    Scalar,
    SecurityStatistic,
    Storage,
    TimeDelay,
    Truncated,
    Value,
)
from otsensor.dissectors.dnp3.tables import AUTH_ERRORS, FILE_MODES, name_of

FIXED: Final = "fixed"
BITS: Final = "bits"
NONE: Final = "none"
OCTETS: Final = "octets"
ATTR: Final = "attr"
SIZED: Final = "sized"

# A fixed-size object from its struct fields: build(point index, *the unpacked fields).
Builder = Callable[..., Point]
# A variable-size object from its octets: decode(point index, the object's octets).
Decoder = Callable[[int, bytes], Point]
_INDEX_CODES = {1: "B", 2: "H", 4: "I"}


class ObjectSpec:
    """One catalogue entry.  A ``fixed`` object has a struct ``layout`` and the ``build`` that turns
    its unpacked fields into a point, plus the same layout behind each index prefix width
    (``indexed``), so a run of objects unpacks in one call; a ``sized`` one may have a ``decode``."""

    __slots__ = ("name", "kind", "size", "bits", "layout", "indexed", "build", "decode")

    def __init__(self, name: str, kind: str, size: int = 0, bits: int = 0, layout: struct.Struct | None = None,
                 build: Builder | None = None, decode: Decoder | None = None) -> None:
        self.name = name
        self.kind = kind
        self.size = size
        self.bits = bits
        self.layout = layout
        self.build = build
        self.decode = decode
        self.indexed: dict[int, struct.Struct] = {}
        if layout is not None:
            self.size = layout.size
            self.indexed = {width: struct.Struct("<" + code + layout.format[1:])
                            for width, code in _INDEX_CODES.items()}


def _time(low: int, high: int) -> int:
    """48-bit DNP3 time (A.4: ms since 1970 UTC), read as a 32-bit and a 16-bit little-endian part."""
    return low | high << 32


# Each field layout the catalogue uses, by its field names ("FB"/"FD": a flags octet whose bit 7,
# or bits 6-7, are the binary or double-bit state), and the point it builds: the point class
# itself where the fields are its arguments, else a function that derives them.
SHAPES: dict[tuple[str, ...], Builder] = {
    ("value",): Value,
    ("flags", "value"): Flagged,
    ("FB",): lambda i, f: Flagged(i, f, (f >> 7) & 1),
    ("FD",): lambda i, f: Flagged(i, f, (f >> 6) & 3),
    ("flags", "value", "time"): lambda i, f, v, lo, hi: FlaggedTime(i, f, v, _time(lo, hi)),
    ("FB", "time"): lambda i, f, lo, hi: FlaggedTime(i, f, (f >> 7) & 1, _time(lo, hi)),
    ("FD", "time"): lambda i, f, lo, hi: FlaggedTime(i, f, (f >> 6) & 3, _time(lo, hi)),
    ("FB", "rel_time"): lambda i, f, rel: FlaggedRelativeTime(i, f, (f >> 7) & 1, rel),
    ("FD", "rel_time"): lambda i, f, rel: FlaggedRelativeTime(i, f, (f >> 6) & 3, rel),
    ("status", "value"): CommandEvent,
    ("status", "value", "time"): lambda i, s, v, lo, hi: CommandEvent(i, s, v, _time(lo, hi)),
    ("value", "status"): OutputBlock,
    ("time",): lambda i, lo, hi: AbsoluteTime(i, _time(lo, hi)),
    ("time", "interval"): lambda i, lo, hi, interval: AbsoluteTime(i, _time(lo, hi), interval),
    ("time", "interval", "units"): lambda i, lo, hi, interval, units: AbsoluteTime(i, _time(lo, hi), interval,
                                                                                   units),
    ("seconds",): lambda i, seconds: TimeDelay(i, seconds, False),
    ("milliseconds",): lambda i, milliseconds: TimeDelay(i, milliseconds, True),
    ("overflow", "group", "variation"): Storage,
    ("sequence", "user"): Authentication,
    ("user",): lambda i, user: Authentication(i, None, user),
    ("flags", "association", "value"): SecurityStatistic,
    ("flags", "association", "value", "time"): lambda i, f, a, v, lo, hi: SecurityStatistic(i, f, a, v,
                                                                                             _time(lo, hi)),
}


def _fixed(name: str, *fields: tuple[str, str]) -> ObjectSpec:
    """A fixed-size object from ``(name, code)`` fields: struct codes, plus ``T`` (48-bit time) and
    ``FB``/``FD`` (flags carrying the state)."""
    fmt = "<" + "".join("IH" if code == "T" else ("B" if code in ("FB", "FD") else code) for _, code in fields)
    shape = tuple(code if code in ("FB", "FD") else name for name, code in fields)
    return ObjectSpec(name, FIXED, layout=struct.Struct(fmt), build=SHAPES[shape])


F, FB, FD, T, ST = ("flags", "B"), ("", "FB"), ("", "FD"), ("time", "T"), ("status", "B")
I32, I16, U32, U16 = ("value", "i"), ("value", "h"), ("value", "I"), ("value", "H")
F32, F64 = ("value", "f"), ("value", "d")
REL = ("rel_time", "H")


def _crob(name: str) -> ObjectSpec:
    """g12v1/v2 control block (A.8.1): control code, count, on-time, off-time, status."""
    return ObjectSpec(name, FIXED, layout=struct.Struct("<BBIIB"), build=Crob)


def _ao(fields: tuple[str, str]) -> ObjectSpec:
    return _fixed("Analog Output Block", fields, ST)


def _counter_family(base: str, frozen: bool, event: bool) -> dict[int, ObjectSpec]:
    """g20-g23: the same value layouts appear with and without flags, delta and time."""
    v = {
        1: _fixed(f"32-Bit {base}", F, U32), 2: _fixed(f"16-Bit {base}", F, U16),
        3: _fixed(f"32-Bit Delta {base}", F, U32), 4: _fixed(f"16-Bit Delta {base}", F, U16),
    }
    if frozen or event:
        v[5] = _fixed(f"32-Bit {base} With Time", F, U32, T)
        v[6] = _fixed(f"16-Bit {base} With Time", F, U16, T)
        v[7] = _fixed(f"32-Bit Delta {base} With Time", F, U32, T)
        v[8] = _fixed(f"16-Bit Delta {base} With Time", F, U16, T)
        if frozen and not event:
            v[9] = _fixed(f"32-Bit {base} Without Flag", U32)
            v[10] = _fixed(f"16-Bit {base} Without Flag", U16)
            v[11] = _fixed(f"32-Bit Delta {base} Without Flag", U32)
            v[12] = _fixed(f"16-Bit Delta {base} Without Flag", U16)
    else:
        v[5] = _fixed(f"32-Bit {base} Without Flag", U32)
        v[6] = _fixed(f"16-Bit {base} Without Flag", U16)
        v[7] = _fixed(f"32-Bit Delta {base} Without Flag", U32)
        v[8] = _fixed(f"16-Bit Delta {base} Without Flag", U16)
    return v


def _analog_event_family(base: str, first: tuple[str, str] = F) -> dict[int, ObjectSpec]:
    """g32, g33, g42, g43: 32/16-bit, with time, float/double, with time."""
    return {
        1: _fixed(f"32-Bit {base}", first, I32), 2: _fixed(f"16-Bit {base}", first, I16),
        3: _fixed(f"32-Bit {base} With Time", first, I32, T), 4: _fixed(f"16-Bit {base} With Time", first, I16, T),
        5: _fixed(f"Single-Precision {base}", first, F32), 6: _fixed(f"Double-Precision {base}", first, F64),
        7: _fixed(f"Single-Precision {base} With Time", first, F32, T),
        8: _fixed(f"Double-Precision {base} With Time", first, F64, T),
    }


# --- variable-format objects -------------------------------------------------------------------
_ATTR_UINT = {1: "<B", 2: "<H", 4: "<I"}
_ATTR_INT = {1: "<b", 2: "<h", 4: "<i"}
_ATTR_FLT = {4: "<f", 8: "<d"}
_ATTR_NUMBERS = {2: _ATTR_UINT, 3: _ATTR_INT, 4: _ATTR_FLT}


def decode_attribute(data_type: int, raw: bytes) -> Scalar:
    """Value of a g0 device attribute (A.1.1.2) by its data type code."""
    table = _ATTR_NUMBERS.get(data_type)
    if table is not None:
        fmt = table.get(len(raw))
        value: Scalar = struct.unpack(fmt, raw)[0] if fmt else raw.hex()
        return value
    if data_type == 1:                       # VSTR: visible string
        return raw.decode("latin-1").rstrip("\x00")
    return raw.hex()


_U32, _U16U16 = struct.Struct("<I"), struct.Struct("<HH")
_FILE_COMMAND_TAIL = struct.Struct("<HHH")
_FILE_STATUS = struct.Struct("<IIHHB")
_FILE_BLOCK = struct.Struct("<II")
_FILE_BLOCK_STATUS = struct.Struct("<IIB")
_FILE_TYPE_SIZE = struct.Struct("<HI")
_AUTH_HEAD = struct.Struct("<IH")


def _file_command(index: int, data: bytes) -> Point:
    """g70v3 (A.24.3): name offset/size, created, permissions, auth key, size, mode, block, request id, name."""
    if len(data) < 26:
        return Truncated(index)
    off, size = _U16U16.unpack_from(data)
    mode, block, req = _FILE_COMMAND_TAIL.unpack_from(data, 20)
    name = data[off:off + size] if off >= 26 else data[26:26 + size]
    return FileCommand(index, name.decode("latin-1", "replace"), _U32.unpack_from(data, 16)[0],
                       name_of(FILE_MODES, mode), block, req)


def _file_status(index: int, data: bytes) -> Point:
    """g70v4 (A.24.4): handle, size, max block size, request id, status."""
    if len(data) < _FILE_STATUS.size:
        return Truncated(index)
    handle, size, block, req, status = _FILE_STATUS.unpack_from(data)
    return FileStatus(index, handle, size, block, req, status)


def _file_transport(index: int, data: bytes) -> Point:
    """g70v5 (A.24.5): handle, block number (bit 31 = last block), file data."""
    if len(data) < _FILE_BLOCK.size:
        return Truncated(index)
    handle, block = _FILE_BLOCK.unpack_from(data)
    return FileTransport(index, handle, block & 0x7FFFFFFF, bool(block >> 31), len(data) - 8)


def _file_transport_status(index: int, data: bytes) -> Point:
    if len(data) < _FILE_BLOCK_STATUS.size:
        return Truncated(index)
    handle, block, status = _FILE_BLOCK_STATUS.unpack_from(data)
    return FileTransportStatus(index, handle, block & 0x7FFFFFFF, status)


def _file_descriptor(index: int, data: bytes) -> Point:
    """g70v7 (A.24.7): name offset/size, type, size, created, permissions, request id, name."""
    if len(data) < 20:
        return Truncated(index)
    size = _U16U16.unpack_from(data)[1]
    ftype, fsize = _FILE_TYPE_SIZE.unpack_from(data, 4)
    return FileDescriptor(index, data[20:20 + size].decode("latin-1", "replace"), ftype, fsize)


def _auth_challenge(index: int, data: bytes) -> Point:
    """g120v1-v3, v5-v7: challenge/key sequence number and user number lead the object."""
    if len(data) < _AUTH_HEAD.size:
        return Truncated(index)
    seq, user = _AUTH_HEAD.unpack_from(data)
    return Authentication(index, seq, user)


def _auth_error(index: int, data: bytes) -> Point:
    """g120v7 (A.45.7): sequence, user, association id, error code, time, text."""
    if len(data) < _AUTH_HEAD.size:
        return Truncated(index)
    seq, user = _AUTH_HEAD.unpack_from(data)
    return Authentication(index, seq, user, name_of(AUTH_ERRORS, data[8]) if len(data) >= 9 else None)


def _text(index: int, data: bytes) -> Point:
    return Value(index, data.decode("latin-1", "replace"))


def _sized(name: str, decode: Decoder | None = None) -> ObjectSpec:
    return ObjectSpec(name, SIZED, decode=decode)


def _none(name: str) -> ObjectSpec:
    return ObjectSpec(name, NONE)


def _bits(name: str, bits: int) -> ObjectSpec:
    return ObjectSpec(name, BITS, bits=bits)


OBJECTS: dict[int, dict[int, ObjectSpec]] = {
    1: {0: _none("Binary Input Default Variation"), 1: _bits("Binary Input", 1),
        2: _fixed("Binary Input With Status", FB)},
    2: {0: _none("Binary Input Event Default Variation"), 1: _fixed("Binary Input Event", FB),
        2: _fixed("Binary Input Event With Time", FB, T), 3: _fixed("Binary Input Event With Relative Time", FB, REL)},
    3: {0: _none("Double-bit Input Default Variation"), 1: _bits("Double-bit Input", 2),
        2: _fixed("Double-bit Input With Status", FD)},
    4: {0: _none("Double-bit Input Event Default Variation"), 1: _fixed("Double-bit Input Event", FD),
        2: _fixed("Double-bit Input Event With Time", FD, T),
        3: _fixed("Double-bit Input Event With Relative Time", FD, REL)},
    10: {0: _none("Binary Output Default Variation"), 1: _bits("Binary Output", 1),
         2: _fixed("Binary Output Status", FB)},
    11: {0: _none("Binary Output Event Default Variation"), 1: _fixed("Binary Output Event", FB),
         2: _fixed("Binary Output Event With Time", FB, T)},
    12: {0: _none("Control Block Default Variation"), 1: _crob("Control Relay Output Block"),
         2: _crob("Pattern Control Block"), 3: _bits("Pattern Mask", 1)},
    13: {0: _none("Binary Output Command Event Default Variation"), 1: _fixed("Binary Output Command Event", FB),
         2: _fixed("Binary Output Command Event With Time", FB, T)},
    20: {0: _none("Counter Default Variation"), **_counter_family("Counter", False, False)},
    21: {0: _none("Frozen Counter Default Variation"), **_counter_family("Frozen Counter", True, False)},
    22: {0: _none("Counter Event Default Variation"), **_counter_family("Counter Event", False, True)},
    23: {0: _none("Frozen Counter Event Default Variation"), **_counter_family("Frozen Counter Event", True, True)},
    30: {0: _none("Analog Input Default Variation"), 1: _fixed("32-Bit Analog Input", F, I32),
         2: _fixed("16-Bit Analog Input", F, I16), 3: _fixed("32-Bit Analog Input Without Flag", I32),
         4: _fixed("16-Bit Analog Input Without Flag", I16), 5: _fixed("Single-Precision Analog Input", F, F32),
         6: _fixed("Double-Precision Analog Input", F, F64)},
    31: {0: _none("Frozen Analog Input Default Variation"), 1: _fixed("32-Bit Frozen Analog Input", F, I32),
         2: _fixed("16-Bit Frozen Analog Input", F, I16), 3: _fixed("32-Bit Frozen Analog Input With Time", F, I32, T),
         4: _fixed("16-Bit Frozen Analog Input With Time", F, I16, T),
         5: _fixed("32-Bit Frozen Analog Input Without Flag", I32), 6: _fixed("16-Bit Frozen Analog Input Without Flag", I16),
         7: _fixed("Single-Precision Frozen Analog Input", F, F32), 8: _fixed("Double-Precision Frozen Analog Input", F, F64)},
    32: {0: _none("Analog Input Event Default Variation"), **_analog_event_family("Analog Input Event")},
    33: {0: _none("Frozen Analog Input Event Default Variation"), **_analog_event_family("Frozen Analog Input Event")},
    34: {0: _none("Analog Input Deadband Default Variation"), 1: _fixed("16-Bit Analog Input Deadband", U16),
         2: _fixed("32-Bit Analog Input Deadband", U32), 3: _fixed("Single-Precision Analog Input Deadband", F32)},
    40: {0: _none("Analog Output Status Default Variation"), 1: _fixed("32-Bit Analog Output Status", F, I32),
         2: _fixed("16-Bit Analog Output Status", F, I16), 3: _fixed("Single-Precision Analog Output Status", F, F32),
         4: _fixed("Double-Precision Analog Output Status", F, F64)},
    41: {0: _none("Analog Output Block Default Variation"), 1: _ao(I32), 2: _ao(I16), 3: _ao(F32), 4: _ao(F64)},
    42: {0: _none("Analog Output Event Default Variation"), **_analog_event_family("Analog Output Event")},
    43: {0: _none("Analog Output Command Event Default Variation"),
         **_analog_event_family("Analog Output Command Event", ST)},
    50: {0: _none("Time and Date Default Variation"), 1: _fixed("Time and Date", T),
         2: _fixed("Time and Date With Interval", T, ("interval", "I")), 3: _fixed("Last Recorded Time and Date", T),
         4: _fixed("Indexed Absolute Time and Long Interval", T, ("interval", "I"), ("units", "B"))},
    51: {1: _fixed("Time and Date CTO", T), 2: _fixed("Unsynchronized Time and Date CTO", T)},
    52: {1: _fixed("Time Delay Coarse", ("seconds", "H")), 2: _fixed("Time Delay Fine", ("milliseconds", "H"))},
    60: {1: _none("Class 0 Data"), 2: _none("Class 1 Data"), 3: _none("Class 2 Data"), 4: _none("Class 3 Data")},
    70: {0: _none("File Control Default Variation"), 1: _sized("File Identifier"), 2: _sized("File Authentication"),
         3: _sized("File Command", _file_command), 4: _sized("File Command Status", _file_status),
         5: _sized("File Transport", _file_transport), 6: _sized("File Transport Status", _file_transport_status),
         7: _sized("File Descriptor", _file_descriptor), 8: _sized("File Specification String", _text)},
    80: {1: _bits("Internal Indications", 1)},
    81: {1: _fixed("Storage Object", ("overflow", "B"), ("group", "B"), ("variation", "B"))},
    82: {1: _sized("Device Profile")},
    83: {1: _sized("Private Registration Object"), 2: _sized("Private Registration Object Descriptor")},
    85: {0: _none("Data Set Prototype Default Variation"), 1: _sized("Data Set Prototype")},
    86: {1: _sized("Data Set Descriptor Contents"), 2: _sized("Data Set Descriptor Characteristics"),
         3: _sized("Data Set Descriptor Point Index Attributes")},
    87: {1: _sized("Data Set Present Value")},
    88: {1: _sized("Data Set Snapshot")},
    90: {1: _sized("Application Identifier")},
    91: {1: _sized("Activate Configuration Status")},
    101: {1: _fixed("Small BCD", ("value", "H")), 2: _fixed("Medium BCD", ("value", "I")),
          3: _fixed("Large BCD", ("value", "Q"))},
    102: {0: _none("Unsigned Integer Default Variation"), 1: _fixed("8-Bit Unsigned Integer", ("value", "B"))},
    120: {1: _sized("Authentication Challenge", _auth_challenge), 2: _sized("Authentication Reply", _auth_challenge),
          3: _fixed("Authentication Aggressive Mode Request", ("sequence", "I"), ("user", "H")),
          4: _fixed("Authentication Session Key Status Request", ("user", "H")),
          5: _sized("Authentication Session Key Status", _auth_challenge),
          6: _sized("Authentication Session Key Change", _auth_challenge), 7: _sized("Authentication Error", _auth_error),
          8: _sized("Authentication User Certificate"), 9: _sized("Authentication Message Authentication Code"),
          10: _sized("Authentication Update Key Change Request"), 11: _sized("Authentication Update Key Change Reply"),
          12: _sized("Authentication Update Key Change"), 13: _sized("Authentication Update Key Change Signature"),
          14: _sized("Authentication Update Key Change Confirmation"), 15: _sized("Authentication Update Key Change Sequence")},
    121: {0: _none("Security Statistic Default Variation"),
          1: _fixed("32-Bit Security Statistic", F, ("association", "H"), U32)},
    122: {0: _none("Security Statistic Event Default Variation"),
          1: _fixed("32-Bit Security Statistic Event", F, ("association", "H"), U32),
          2: _fixed("32-Bit Security Statistic Event With Time", F, ("association", "H"), U32, T)},
}

_OCTET_GROUPS = {110: "Octet String", 111: "Octet String Event", 112: "Virtual Terminal Output Block",
                 113: "Virtual Terminal Event Data"}

# g0 device attribute variations (A.1), by name; variations below 209 are user/standard sets.
ATTRIBUTE_NAMES = {
    209: "Secure Authentication Version", 210: "Number of Security Statistics per Association",
    211: "Identification of Support for User-specific Attributes", 212: "Number of Master-Defined Data Set Prototypes",
    213: "Number of Outstation-Defined Data Set Prototypes", 214: "Number of Master-Defined Data Sets",
    215: "Number of Outstation-Defined Data Sets", 216: "Max Binary Outputs per Request", 217: "Local Timing Accuracy",
    218: "Duration of Time Accuracy", 219: "Support for Analog Output Events", 220: "Max Analog Output Index",
    221: "Number of Analog Outputs", 222: "Support for Binary Output Events", 223: "Max Binary Output Index",
    224: "Number of Binary Outputs", 225: "Support for Frozen Counter Events", 226: "Support for Frozen Counters",
    227: "Support for Counter Events", 228: "Max Counter Index", 229: "Number of Counter Points",
    230: "Support for Frozen Analog Inputs", 231: "Support for Analog Input Events", 232: "Max Analog Input Index",
    233: "Number of Analog Input Points", 234: "Support for Double-bit Input Events", 235: "Max Double-bit Input Index",
    236: "Number of Double-bit Input Points", 237: "Support for Binary Input Events", 238: "Max Binary Input Index",
    239: "Number of Binary Input Points", 240: "Max Transmit Fragment Size", 241: "Max Receive Fragment Size",
    242: "Device Manufacturer Software Version", 243: "Device Manufacturer Hardware Version",
    244: "User-assigned Owner Name", 245: "User-assigned Location", 246: "User-assigned ID Code",
    247: "User-assigned Device Name", 248: "Device Serial Number", 249: "DNP3 Subset and Conformance",
    250: "Device Manufacturer Product Name and Model", 252: "Device Manufacturer Name",
    254: "All Attributes Request", 255: "List of Attribute Variations",
}


def _catalogue() -> dict[int, ObjectSpec]:
    """Every group/variation the parser can meet, keyed ``group << 8 | variation`` (one look-up a header)."""
    flat = {group << 8 | variation: spec for group, variations in OBJECTS.items()
            for variation, spec in variations.items()}
    for variation in range(256):
        # g0 device attributes (A.1): each variation one attribute; 254 asks for all of them
        flat[variation] = (_none(ATTRIBUTE_NAMES[254]) if variation == 254 else
                           ObjectSpec(ATTRIBUTE_NAMES.get(variation, f"Device Attribute {variation}"), ATTR))
        for group, name in _OCTET_GROUPS.items():
            flat[group << 8 | variation] = _none(name) if variation == 0 else ObjectSpec(name, OCTETS, variation)
    return flat


CATALOGUE: Final = _catalogue()


def object_spec(group: int, variation: int) -> ObjectSpec | None:
    """The catalogue entry for a group/variation, or None when the pair is unknown."""
    return CATALOGUE.get(group << 8 | variation)


def object_name(group: int, variation: int) -> str:
    spec = object_spec(group, variation)
    return spec.name if spec is not None else f"unknown-g{group}v{variation}"


__all__ = ["CATALOGUE", "ObjectSpec", "decode_attribute", "object_name", "object_spec"]
