"""DNP3 object catalogue (IEEE 1815-2012 Annex A): name, wire size and value decoder per
group/variation, as one table.

An entry is an :class:`ObjectSpec`.  ``kind`` says how the object's size is known:

* ``fixed``: ``size`` bytes, decoded by a precompiled ``struct`` layout;
* ``bits``: packed, ``bits`` (1 or 2) per point (g1v1, g3v1, g10v1, g12v3, g80v1);
* ``none``: no object data (variation 0, class data g60, ...);
* ``octets``: the variation is the length (g110-g113 strings);
* ``attr``: device attribute, data type + length + value (g0);
* ``sized``: variable, size given by the qualifier's size prefix (g70 files, g120 auth).
"""
from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from otsensor.dissectors.dnp3.tables import (
    ATTRIBUTE_TYPES,
    AUTH_ERRORS,
    COMMAND_STATUS,
    FILE_MODES,
    FILE_STATUS,
    OPERATION_TYPES,
    TRIP_CLOSE_CODES,
    name_of,
)

Decoder = Callable[[bytes], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class ObjectSpec:
    name: str
    kind: str = "fixed"
    size: int = 0
    bits: int = 0
    decode: Decoder | None = None


def _layout(*fields: tuple[str, str]) -> tuple[int, Decoder]:
    """Compile ``(name, code)`` pairs to (size, decoder).

    Codes are struct codes plus ``T`` (48-bit ms time, A.4), ``FB`` (flags whose bit 7 is
    the binary state), ``FD`` (flags whose bits 6-7 are the double-bit state).
    """
    fmt = "<" + "".join("IH" if code == "T" else ("B" if code in ("FB", "FD") else code) for _, code in fields)
    st = struct.Struct(fmt)

    def decode(data: bytes) -> dict[str, Any]:
        raw = st.unpack_from(data)
        out: dict[str, Any] = {}
        i = 0
        for name, code in fields:
            if code == "T":
                out[name] = raw[i] | (raw[i + 1] << 32)
                i += 2
                continue
            value = raw[i]
            i += 1
            if code == "FB":
                out["flags"], out["value"] = value, (value >> 7) & 1
            elif code == "FD":
                out["flags"], out["value"] = value, (value >> 6) & 3
            else:
                out[name] = value
        return out

    return st.size, decode


def _fixed(name: str, *fields: tuple[str, str]) -> ObjectSpec:
    size, decode = _layout(*fields)
    return ObjectSpec(name, "fixed", size, 0, decode)


F, FB, FD, T, ST = ("flags", "B"), ("", "FB"), ("", "FD"), ("time", "T"), ("status", "B")
I32, I16, U32, U16 = ("value", "i"), ("value", "h"), ("value", "I"), ("value", "H")
F32, F64 = ("value", "f"), ("value", "d")
REL = ("rel_time", "H")


def _crob(data: bytes) -> dict[str, Any]:
    """g12v1/v2 control block (A.8.1): control code, count, on-time, off-time, status."""
    code, count, on_time, off_time, status = _CROB.unpack_from(data)
    return {
        "control_code": code,
        "trip_control_code": TRIP_CLOSE_CODES[code >> 6],
        "clear_bit": bool(code & 0x20),
        "queue_bit": bool(code & 0x10),
        "operation_type": name_of(OPERATION_TYPES, code & 0x0F, 1),
        "execute_count": count, "on_time": on_time, "off_time": off_time,
        "status": status & 0x7F, "status_code": name_of(COMMAND_STATUS, status & 0x7F),
    }


_CROB = struct.Struct("<BBIIB")


def _ao(fields: tuple[str, str]) -> ObjectSpec:
    size, decode = _layout(fields, ST)

    def with_status(data: bytes) -> dict[str, Any]:
        out = decode(data)
        out["status_code"] = name_of(COMMAND_STATUS, out["status"] & 0x7F)
        return out

    return ObjectSpec("Analog Output Block", "fixed", size, 0, with_status)


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


def decode_attribute(data_type: int, raw: bytes) -> Any:
    """Value of a g0 device attribute (A.1.1.2) by its data type code."""
    table = {2: _ATTR_UINT, 3: _ATTR_INT, 4: _ATTR_FLT}.get(data_type)
    if table is not None:
        fmt = table.get(len(raw))
        return struct.unpack(fmt, raw)[0] if fmt else raw.hex()
    if data_type == 1:                       # VSTR: visible string
        return raw.decode("latin-1").rstrip("\x00")
    return raw.hex()


_U16, _U32, _U16U16 = struct.Struct("<H"), struct.Struct("<I"), struct.Struct("<HH")


def _file_command(data: bytes) -> dict[str, Any]:
    """g70v3 (A.24.3): name offset/size, created, permissions, auth key, size, mode, block, request id, name."""
    if len(data) < 26:
        return {"truncated": True}
    off, size = _U16U16.unpack_from(data)
    mode, block, req = struct.unpack_from("<HHH", data, 20)
    return {"file_name": data[off:off + size].decode("latin-1", "replace") if off >= 26 else data[26:26 + size].decode("latin-1", "replace"),
            "file_size": _U32.unpack_from(data, 16)[0], "mode": name_of(FILE_MODES, mode), "max_block_size": block,
            "request_id": req}


def _file_status(data: bytes) -> dict[str, Any]:
    """g70v4 (A.24.4): handle, size, max block size, request id, status."""
    if len(data) < 13:
        return {"truncated": True}
    handle, size, block, req, status = struct.unpack_from("<IIHHB", data)
    return {"file_handle": handle, "file_size": size, "max_block_size": block, "request_id": req,
            "status_code": name_of(FILE_STATUS, status)}


def _file_transport(data: bytes) -> dict[str, Any]:
    """g70v5 (A.24.5): handle, block number (bit 31 = last block), file data."""
    if len(data) < 8:
        return {"truncated": True}
    handle, block = struct.unpack_from("<II", data)
    return {"file_handle": handle, "block": block & 0x7FFFFFFF, "last": bool(block >> 31), "data_length": len(data) - 8}


def _file_transport_status(data: bytes) -> dict[str, Any]:
    if len(data) < 9:
        return {"truncated": True}
    handle, block, status = struct.unpack_from("<IIB", data)
    return {"file_handle": handle, "block": block & 0x7FFFFFFF, "status_code": name_of(FILE_STATUS, status)}


def _file_descriptor(data: bytes) -> dict[str, Any]:
    """g70v7 (A.24.7): name offset/size, type, size, created, permissions, request id, name."""
    if len(data) < 20:
        return {"truncated": True}
    _offset, size = _U16U16.unpack_from(data)
    ftype, fsize = struct.unpack_from("<HI", data, 4)
    return {"file_name": data[20:20 + size].decode("latin-1", "replace"), "file_type": ftype, "file_size": fsize}


def _auth_challenge(data: bytes) -> dict[str, Any]:
    """g120v1-v3, v5-v7: challenge/key sequence number and user number lead the object."""
    if len(data) < 6:
        return {"truncated": True}
    seq, user = struct.unpack_from("<IH", data)
    return {"sequence": seq, "user": user}


def _auth_error(data: bytes) -> dict[str, Any]:
    """g120v7 (A.45.7): sequence, user, association id, error code, time, text."""
    out = _auth_challenge(data)
    if len(data) >= 9:
        out["error"] = name_of(AUTH_ERRORS, data[8])
    return out


def _text(data: bytes) -> dict[str, Any]:
    return {"value": data.decode("latin-1", "replace")}


def _sized(name: str, decode: Decoder | None = None) -> ObjectSpec:
    return ObjectSpec(name, "sized", decode=decode)


def _none(name: str) -> ObjectSpec:
    return ObjectSpec(name, "none")


def _bits(name: str, bits: int) -> ObjectSpec:
    return ObjectSpec(name, "bits", bits=bits)


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
    12: {0: _none("Control Block Default Variation"), 1: ObjectSpec("Control Relay Output Block", "fixed", 11, 0, _crob),
         2: ObjectSpec("Pattern Control Block", "fixed", 11, 0, _crob), 3: _bits("Pattern Mask", 1)},
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


def object_spec(group: int, variation: int) -> ObjectSpec | None:
    """The catalogue entry for a group/variation, or None when the pair is unknown."""
    if group == 0:
        if variation in (254,):
            return _none(ATTRIBUTE_NAMES[254])
        return ObjectSpec(ATTRIBUTE_NAMES.get(variation, f"Device Attribute {variation}"), "attr")
    octets = _OCTET_GROUPS.get(group)
    if octets is not None:
        return ObjectSpec(octets, "none") if variation == 0 else ObjectSpec(octets, "octets", variation)
    return OBJECTS.get(group, {}).get(variation)


def object_name(group: int, variation: int) -> str:
    spec = object_spec(group, variation)
    return spec.name if spec is not None else f"unknown-g{group}v{variation}"


__all__ = ["ATTRIBUTE_TYPES", "ObjectSpec", "decode_attribute", "object_name", "object_spec"]
