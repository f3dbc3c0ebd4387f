"""Padded EPATH decoding (CIP Vol. 1 Appendix C-1).

A path is a list of segments; the first byte of each says its type:
port (000x xxxx), logical (001x xxxx: class, instance, member, connection
point, attribute, electronic key), network (010x xxxx), symbolic
(011x xxxx), data (100x xxxx, where 0x91 is the ANSI extended symbol Logix
uses for tag names).  Paths carried in CIP requests are padded: 16- and
32-bit logical values and odd-length symbols carry a pad byte.
"""
from __future__ import annotations

import struct
from typing import Any, Final

from otsensor.dissectors.enip.tables import CIP_CLASSES, hex2, name_or_unknown

MAX_SEGMENTS: Final = 64   # a path of more segments is cut and flagged (cip.path_too_long)

_U16: Final = struct.Struct("<H")
_U32: Final = struct.Struct("<I")
_KEY: Final = struct.Struct("<HHHBB")

# Vol. 1 Table C-1.3: logical types (bits 4..2 of a logical segment).
CLASS: Final = 0
INSTANCE: Final = 1
MEMBER: Final = 2
CONNECTION_POINT: Final = 3
ATTRIBUTE: Final = 4
_OTHER_LOGICAL: Final = {6: "service"}


class ElectronicKey:
    """Format 4 electronic key (Vol. 1 C-1.4.2): what an originator expects the target to be."""

    __slots__ = ("vendor_id", "device_type", "product_code", "major", "minor")

    def __init__(self, vendor_id: int, device_type: int, product_code: int, major: int, minor: int) -> None:
        self.vendor_id = vendor_id
        self.device_type = device_type
        self.product_code = product_code
        self.major = major
        self.minor = minor

    def as_dict(self) -> dict[str, Any]:
        return {"vendor_id": self.vendor_id, "device_type": self.device_type, "product_code": self.product_code,
                "revision": f"{self.major & 0x7F}.{self.minor}", "compatibility": bool(self.major & 0x80)}


class Path:
    """What a path addresses; ``error`` names the anomaly when it did not decode cleanly.

    ``tag`` is the Logix tag name with element indices (``Program:Main.Speed[2]``), set once the whole
    path is decoded; ``parts`` are the readable pieces :meth:`text` joins.  A decoded path is not
    changed afterwards (a flow's parser shares it between the messages that carry the same bytes).
    """

    __slots__ = ("class_id", "instance_id", "attribute_id", "member_id", "connection_point", "symbols", "ports",
                 "key", "parts", "error", "reason", "tag", "_text", "_columns", "ops", "decoders")

    def __init__(self) -> None:
        self.class_id: int | None = None
        self.instance_id: int | None = None
        self.attribute_id: int | None = None
        self.member_id: int | None = None
        self.connection_point: int | None = None
        self.symbols: list[str] = []
        self.ports: list[tuple[int, str]] = []
        self.key: ElectronicKey | None = None
        self.parts: list[str] = []
        self.error: str | None = None
        self.reason = ""
        self.tag: str | None = None
        self._text: str | None = None
        self._columns: dict[str, Any] | None = None
        # what a request on this path means to the analyzers (an Op, made by opmap.cip_op), by element count,
        # service and outcome (one int: opmap.cip_op): a poll repeats the same few; kept with the path, which a
        # flow's parser shares
        self.ops: dict[int, Any] | None = None
        # the service-data decoder of a request or reply on this path (cip._path_decoder), by service << 1 | reply
        self.decoders: dict[int, Any] | None = None

    def _tag(self) -> str:
        out: list[str] = []
        for part in self.parts:
            if part.startswith("["):
                out.append(part)
            elif part.startswith("sym:"):
                out.append(("." if out else "") + part[4:])
        return "".join(out)

    def text(self) -> str:
        """Readable path: ``class 0x01 instance 0x01``, ``Program:Main.Speed[2]``, ``port 1 link 0``."""
        if self._text is None:
            self._text = self._join()
        return self._text

    def columns(self) -> dict[str, Any]:
        """The cip log's columns a request path fills (class_id to request_path, those it has), made once:
        a flow's parser shares its paths, and a poll names the same few over and over."""
        columns = self._columns
        if columns is None:
            columns = self._columns = {}
            if self.class_id is not None:
                columns["class_id"] = hex2(self.class_id)
                columns["class_name"] = name_or_unknown(CIP_CLASSES, self.class_id)
            if self.instance_id is not None:
                columns["instance_id"] = hex2(self.instance_id)
            if self.attribute_id is not None:
                columns["attribute_id"] = hex2(self.attribute_id)
            if self.member_id is not None:
                columns["member_id"] = hex2(self.member_id)
            if self.tag is not None:
                columns["symbol"] = self.tag
            text = self.text()
            if text:
                columns["request_path"] = text
        return columns

    def _join(self) -> str:
        out = ""
        for part in self.parts:
            if part.startswith("["):
                out += part
            elif part.startswith("sym:"):
                out += ("." if out and not out.endswith(" ") and self._after_symbol(out) else (" " if out else "")) \
                    + part[4:]
            else:
                out += (" " if out else "") + part
        return out

    def _after_symbol(self, text: str) -> bool:
        return bool(self.symbols) and (text.endswith("]") or text.split(" ")[-1] in self.symbols)


def _logical(seg: int, data: bytes, pos: int) -> tuple[int | None, int]:
    """Value and length of a padded logical segment at ``pos`` (format in bits 1..0)."""
    fmt = seg & 0x03
    if fmt == 0:
        return (data[pos + 1], 2) if pos + 2 <= len(data) else (None, 0)
    if fmt == 1:
        return (_U16.unpack_from(data, pos + 2)[0], 4) if pos + 4 <= len(data) else (None, 0)
    if fmt == 2:
        return (_U32.unpack_from(data, pos + 2)[0], 6) if pos + 6 <= len(data) else (None, 0)
    return None, 0


def _apply_logical(path: Path, seg: int, value: int) -> None:
    kind = (seg >> 2) & 0x07
    if kind == CLASS:
        if path.class_id is None:
            path.class_id = value
        path.parts.append("class " + hex2(value))
    elif kind == INSTANCE:
        if path.instance_id is None:
            path.instance_id = value
        path.parts.append("instance " + hex2(value))
    elif kind == ATTRIBUTE:
        if path.attribute_id is None:
            path.attribute_id = value
        path.parts.append("attribute " + hex2(value))
    elif kind == MEMBER:
        if path.symbols:   # after a symbol a member segment is an array index (Logix)
            if path.parts and path.parts[-1].startswith("["):
                path.parts[-1] = path.parts[-1][:-1] + f",{value}]"
            else:
                path.parts.append(f"[{value}]")
        else:
            if path.member_id is None:
                path.member_id = value
            path.parts.append(f"member {value}")
    elif kind == CONNECTION_POINT:
        path.connection_point = value
        path.parts.append(f"connection_point {value}")
    else:
        path.parts.append(f"{_OTHER_LOGICAL.get(kind, 'logical')} {value}")


def _port(data: bytes, pos: int) -> tuple[tuple[int, str] | None, int]:
    """Port segment (Vol. 1 C-1.4.1): port id and link address, padded to even length."""
    seg = data[pos]
    port, n = seg & 0x0F, 1
    if seg & 0x10:     # extended link address: size byte, address bytes
        if pos + 2 > len(data):
            return None, 0
        size = data[pos + 1]
        n = 2
    if port == 0x0F:
        if pos + n + 2 > len(data):
            return None, 0
        port = _U16.unpack_from(data, pos + n)[0]
        n += 2
    if seg & 0x10:
        link_bytes = data[pos + n:pos + n + size]
        if len(link_bytes) < size:
            return None, 0
        n += size
        link = link_bytes.decode("ascii", "replace") if link_bytes.isascii() else link_bytes.hex()
    else:
        if pos + n >= len(data):
            return None, 0
        link = str(data[pos + n])
        n += 1
    return (port, link), n + (n & 1)


def _symbol(data: bytes, pos: int) -> tuple[str | None, int]:
    """ANSI extended symbol segment 0x91: length byte, characters, pad to even."""
    if pos + 2 > len(data):
        return None, 0
    size = data[pos + 1]
    raw = data[pos + 2:pos + 2 + size]
    if len(raw) < size:
        return None, 0
    n = 2 + size
    return raw.decode("latin-1"), n + (n & 1)


def parse_path(data: bytes) -> Path:
    """Decode a whole padded EPATH (``data`` is exactly the path bytes)."""
    path = Path()
    pos, count = 0, 0
    while pos < len(data):
        if count >= MAX_SEGMENTS:
            path.error, path.reason = "cip.path_too_long", f"more than {MAX_SEGMENTS} segments"
            break
        count += 1
        n = _segment(path, data, pos)
        if n <= 0:
            path.error = path.error or "cip.bad_path"
            path.reason = path.reason or f"segment 0x{data[pos]:02x} at offset {pos} undecodable"
            break
        pos += n
    if path.symbols:
        path.tag = path._tag()
    return path


def _segment(path: Path, data: bytes, pos: int) -> int:
    """Decode the segment at ``pos`` into ``path``; returns its length, 0 when it cannot be decoded."""
    seg = data[pos]
    kind = seg & 0xE0
    if kind == 0x00:
        item, n = _port(data, pos)
        if item is not None:
            path.ports.append(item)
            path.parts.append(f"port {item[0]} link {item[1]}")
        return n
    if kind == 0x20:
        if seg == 0x34:   # electronic key, format 4 (Vol. 1 C-1.4.2)
            if pos + 10 > len(data):
                return 0
            path.key = ElectronicKey(*_KEY.unpack_from(data, pos + 2))
            path.parts.append("key")
            return 10
        value, n = _logical(seg, data, pos)
        if value is not None:
            _apply_logical(path, seg, value)
        return n
    if seg == 0x91:
        sym, n = _symbol(data, pos)
        if sym is not None:
            path.symbols.append(sym)
            path.parts.append("sym:" + sym)
        return n
    if seg == 0x80:   # simple data segment: word count, words
        if pos + 2 > len(data):
            return 0
        path.parts.append("data")
        return 2 + 2 * data[pos + 1]
    if kind == 0x40:  # network segment: one byte, or 0x50 extended with word count
        if seg == 0x50:
            return 2 + 2 * data[pos + 1] if pos + 2 <= len(data) else 0
        path.parts.append(f"network 0x{seg:02x}")
        return 2
    if kind == 0x60:  # symbolic segment (Vol. 1 C-1.4.4), size in the low 5 bits
        size = seg & 0x1F
        if size == 0 or pos + 1 + size > len(data):
            return 0
        sym = data[pos + 1:pos + 1 + size].decode("latin-1")
        path.symbols.append(sym)
        path.parts.append("sym:" + sym)
        return 1 + size + ((1 + size) & 1)
    return 0
