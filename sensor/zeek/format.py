"""Zeek's log formats, byte for byte: the ASCII (TSV) writer and the JSON writer (``LogAscii::use_json=T``).

Followed from Zeek's sources: ``src/logging/writers/ascii/Ascii.cc`` (the
header and footer lines), ``src/threading/formatters/Ascii.cc`` and
``JSON.cc`` (values), ``src/Desc.cc`` and ``src/util.cc`` (escaping, doubles).

ASCII: ``-`` for an unset field, ``(empty)`` for an empty string or
container, ``T``/``F``, times and intervals with six decimals, doubles with
up to six decimals and a ``.0`` when whole, containers joined by ``,``.  A
string is written as UTF-8 where it is valid and printable; control bytes,
invalid UTF-8 (the whole string, once one byte is bad), a backslash, the
separator (and inside a container the set separator) are escaped ``\\xNN``
(a backslash as two).  A value that reads as ``-`` or ``(empty)`` has its
first character escaped, and so has a line that would start with ``#``.

JSON: one object per line, unset fields left out, names flattened
(``id.orig_h``), times as epoch seconds, numbers as rapidjson prints them,
strings UTF-8 with invalid bytes written ``\\\\xNN``.
"""
from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from typing import Any, Final

from otsensor.sensor.zeek.grisu import grisu2

# Strings every writer passes through untouched (printable ASCII, no backslash; for the JSON writer no quote,
# for a container no comma): checked first, so that the byte-by-byte rules below run only when needed
_PLAIN_ASCII: Final = re.compile(r"[\x20-\x5b\x5d-\x7e]*")
_PLAIN_IN_SET: Final = re.compile(r"[\x20-\x2b\x2d-\x5b\x5d-\x7e]*")
_PLAIN_JSON: Final = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")
SEPARATOR: Final = "\t"
SET_SEPARATOR: Final = ","
EMPTY: Final = "(empty)"
UNSET: Final = "-"
HEADER_TIME: Final = "%Y-%m-%d-%H-%M-%S"


# -- bytes and strings -----------------------------------------------------------------------------------

def _utf8_char_length(lead: int) -> int:
    """How many bytes a UTF-8 sequence starting with ``lead`` takes (1 for a byte that starts none)."""
    if lead < 0xC0:
        return 1
    return 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4 if lead < 0xF8 else 5 if lead < 0xFC else 6


def _acceptable_char(data: bytes) -> bool:
    """Zeek's check_ok_utf8: a valid sequence that is not a control, private-use or special character."""
    try:
        char = ord(data.decode("utf-8"))
    except (UnicodeDecodeError, TypeError):
        return False
    return not (char <= 0x1F or char == 0x7F or 0x80 <= char <= 0x9F or 0xE000 <= char <= 0xF8FF
                or 0xFFF0 <= char <= 0xFFFF)


def escape_utf8(data: bytes, controls_too: bool) -> str:
    """Zeek's util::escape_utf8: valid, printable UTF-8 kept; otherwise, from the first bad byte on, the
    whole string with every byte outside printable ASCII written ``\\xNN``.

    ``controls_too`` escapes ``\\b \\f \\n \\r \\t`` as well (the ASCII writer); the JSON writer leaves
    those to JSON's own escapes."""
    kept: list[str] = []
    escaped: list[str] = []
    bad = False
    i, n = 0, len(data)
    while i < n:
        byte = data[i]
        if 32 <= byte < 127 or (not controls_too and byte in (8, 12, 10, 13, 9)):
            kept.append(chr(byte))
            escaped.append(chr(byte))
            i += 1
            continue
        if bad:
            escaped.append(f"\\x{byte:02x}")
            i += 1
            continue
        size = _utf8_char_length(byte)
        if i + size > n or not _acceptable_char(data[i:i + size]):
            bad = True
            escaped.append(f"\\x{byte:02x}")
            i += 1
            continue
        escaped.extend(f"\\x{b:02x}" for b in data[i:i + size])
        kept.append(data[i:i + size].decode("utf-8"))
        i += size
    return "".join(escaped if bad else kept)


def _as_bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")


def ascii_string(value: str | bytes, escape_set_separator: bool = False) -> str:
    """A string field as the ASCII writer writes it (without the reserved-value check)."""
    text = value if isinstance(value, str) else value.decode("latin-1")
    if (_PLAIN_IN_SET if escape_set_separator else _PLAIN_ASCII).fullmatch(text):
        return text
    data = _as_bytes(value)
    out: list[str] = []
    start = 0
    for i, byte in enumerate(data):   # the escape points: a backslash and the separators
        if byte == 0x5C or byte == 0x09 or (escape_set_separator and byte == 0x2C):
            out.append(escape_utf8(data[start:i], True))
            out.append("\\\\" if byte == 0x5C else f"\\x{byte:02x}")
            start = i + 1
    out.append(escape_utf8(data[start:], True))
    return "".join(out)


# -- numbers -----------------------------------------------------------------------------------------------

def zeek_time(ts: float) -> float:
    """A capture time as Zeek holds it: whole seconds plus whole microseconds / 1e6, as libpcap hands Zeek a
    timestamp (a nanosecond capture's time cut to the microsecond).

    Our capture time is a double whose last bits are already rounded, so the microseconds are recovered by
    rounding when the time sits on a microsecond (every microsecond capture) and cut otherwise."""
    sec = math.floor(ts)
    micros = (ts - sec) * 1e6
    usec = round(micros)
    if abs(micros - usec) > 0.3:
        usec = math.floor(micros)
    return sec + usec / 1e6


def fixed6(value: float) -> str:
    """A time or interval: std::to_chars fixed, six decimals."""
    return f"{value:.6f}"


def ascii_double(value: float) -> str:
    """A double as ODesc::Add(double, no_exp) writes it: six decimals, trailing zeros dropped, ``.0`` when whole."""
    if math.isnan(value):
        return "nan"
    text = f"{abs(value):.6f}".rstrip("0").removesuffix(".")
    if value < 0:
        text = "-" + text
    if math.isfinite(value) and abs(value - round(value)) < 1e-9:
        text += ".0"
    return text


def json_double(value: float) -> str:
    """A double as rapidjson's Writer::Double prints it: Grisu2's digits (grisu.py), laid out by its Prettify;
    ``null`` for NaN and infinities, as Zeek's writer does."""
    if not math.isfinite(value):
        return "null"
    if value == 0:
        return "-0.0" if math.copysign(1, value) < 0 else "0.0"
    sign = "-" if value < 0 else ""
    digits, k = grisu2(abs(value))            # value = int(digits) * 10**k
    kk = len(digits) + k                      # 10**(kk-1) <= value < 10**kk
    if 0 <= k and kk <= 21:
        return sign + digits + "0" * k + ".0"
    if 0 < kk <= 21:
        return sign + digits[:kk] + "." + digits[kk:]
    if -6 < kk <= 0:
        return sign + "0." + "0" * (-kk) + digits
    if len(digits) == 1:
        return f"{sign}{digits}e{kk - 1}"
    return f"{sign}{digits[0]}.{digits[1:]}e{kk - 1}"


def json_string(value: str | bytes) -> str:
    """A string as Zeek's JSON writer writes it: escape_utf8 without control escapes, then rapidjson's quoting."""
    plain = value if isinstance(value, str) else value.decode("latin-1")
    if _PLAIN_JSON.fullmatch(plain):
        return f'"{plain}"'
    text = escape_utf8(_as_bytes(value), False)
    out = ['"']
    for char in text:
        code = ord(char)
        if char == '"':
            out.append('\\"')
        elif char == "\\":
            out.append("\\\\")
        elif code < 0x20:
            out.append({8: "\\b", 12: "\\f", 10: "\\n", 13: "\\r", 9: "\\t"}.get(code, f"\\u{code:04X}"))
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


# -- values ------------------------------------------------------------------------------------------------

def _ascii_text(value: str | bytes, in_set: bool = False) -> str:
    text = ascii_string(value, in_set)
    if not text:
        return EMPTY
    if text in (UNSET, EMPTY):   # would read as unset or empty: the first character escaped
        return f"\\x{ord(text[0]):02x}{text[1:]}"
    return text


def _ascii_scalar(kind: str, in_set: bool = False) -> Callable[[Any], str]:
    """The function writing one value of ``kind`` (never unset) in the ASCII format."""
    if kind == "bool":
        return lambda v: "T" if v else "F"
    if kind in ("count", "int", "port"):
        return lambda v: str(int(v))
    if kind in ("time", "interval"):
        return fixed6
    if kind == "double":
        return ascii_double
    if kind == "addr":
        return str
    return (lambda v: _ascii_text(v, True)) if in_set else _ascii_text


def ascii_writer(kind: str) -> Callable[[Any], str]:
    """The function writing one field of ``kind`` in the ASCII format (``-`` when unset), chosen once per column."""
    if kind.startswith(("vector[", "set[")):
        element = _ascii_scalar(kind[kind.index("[") + 1:-1], True)
        return lambda v: UNSET if v is None else SET_SEPARATOR.join(map(element, v)) if v else EMPTY
    scalar = _ascii_scalar(kind)
    return lambda v: UNSET if v is None else scalar(v)


def ascii_value(value: Any, kind: str) -> str:
    """One field in the ASCII format."""
    return ascii_writer(kind)(value)


def _json_scalar(kind: str) -> Callable[[Any], str]:
    if kind == "bool":
        return lambda v: "true" if v else "false"
    if kind in ("count", "int", "port"):
        return lambda v: str(int(v))
    if kind in ("time", "interval", "double"):
        return lambda v: json_double(float(v))
    if kind == "addr":
        return lambda v: json_string(str(v))
    return json_string


def json_writer(kind: str) -> Callable[[Any], str]:
    """The function writing one set field of ``kind`` in the JSON format, chosen once per column."""
    if kind.startswith(("vector[", "set[")):
        element = _json_scalar(kind[kind.index("[") + 1:-1])
        return lambda v: "[" + ",".join(map(element, v)) + "]"
    return _json_scalar(kind)


def json_value(value: Any, kind: str) -> str:
    return json_writer(kind)(value)


class LineWriter:
    """Writes rows of one log's columns as lines of one format; the per-column work is chosen once."""

    __slots__ = ("json", "names", "writers")

    def __init__(self, names: list[str], kinds: list[str], json: bool) -> None:
        self.json = json
        self.names = [json_string(n) + ":" for n in names]
        self.writers = [json_writer(k) if json else ascii_writer(k) for k in kinds]

    def line(self, values: list[Any]) -> str:
        if self.json:
            return "{" + ",".join(name + write(v) for name, write, v in zip(self.names, self.writers, values)
                                  if v is not None) + "}"
        line = SEPARATOR.join([write(v) for write, v in zip(self.writers, values)])
        if line.startswith("#"):   # would read as a header line
            line = "\\x23" + line[1:]
        return line


def ascii_line(values: list[Any], kinds: list[str]) -> str:
    return LineWriter(["-"] * len(kinds), kinds, False).line(values)


def json_line(names: list[str], values: list[Any], kinds: list[str]) -> str:
    return LineWriter(names, kinds, True).line(values)


# -- files -------------------------------------------------------------------------------------------------

def header_time(wall: float) -> str:
    """The ``#open``/``#close`` stamp: the wall clock in local time, as Zeek's Ascii::Timestamp."""
    return time.strftime(HEADER_TIME, time.localtime(wall))


def ascii_header(path: str, names: list[str], kinds: list[str], opened: float) -> str:
    return (f"#separator \\x09\n#set_separator{SEPARATOR}{SET_SEPARATOR}\n#empty_field{SEPARATOR}{EMPTY}\n"
            f"#unset_field{SEPARATOR}{UNSET}\n#path{SEPARATOR}{ascii_string(path)}\n"
            f"#open{SEPARATOR}{header_time(opened)}\n#fields{SEPARATOR}{SEPARATOR.join(names)}\n"
            f"#types{SEPARATOR}{SEPARATOR.join(kinds)}\n")


def ascii_footer(closed: float) -> str:
    return f"#close{SEPARATOR}{header_time(closed)}\n"
