"""EtherNet/IP encapsulation (CIP Vol. 2 chapter 2): header, Common Packet Format, list replies.

Pure functions over bytes; the dissector owns the stream and the records.
"""
from __future__ import annotations

import struct
from typing import Final

from otsensor.dissectors.enip import tables as T
from otsensor.dissectors.enip.identity import IdentityAttributes

HEADER: Final = struct.Struct("<HHII8sI")        # command, length, session, status, sender context, options
HEADER_LEN: Final = HEADER.size            # 24
MAX_LENGTH: Final = 65511                  # Vol. 2 2-3.1: data length fits a 16-bit field less the header
MAX_CPF_ITEMS: Final = 16                  # real messages carry 2-4 items
_ITEM: Final = struct.Struct("<HH")
_RR_PREFIX: Final = struct.Struct("<IH")          # interface handle, timeout (SendRRData / SendUnitData)
_ID_HEAD: Final = struct.Struct("<H")
_SOCKADDR: Final = struct.Struct(">HH4s8x")      # sockaddr is big-endian (Vol. 2 2-6.3.2)
_ID_BODY: Final = struct.Struct("<HHHBBHI")


class Header:
    """An encapsulation header (Vol. 2 2-3)."""

    __slots__ = ("command", "length", "session", "status", "context", "options")

    def __init__(self, command: int, length: int, session: int, status: int, context: bytes, options: int) -> None:
        self.command = command
        self.length = length
        self.session = session
        self.status = status
        self.context = context
        self.options = options


class Item:
    """One Common Packet Format item: its type id and its data."""

    __slots__ = ("type_id", "data")

    def __init__(self, type_id: int, data: bytes) -> None:
        self.type_id = type_id
        self.data = data


class ListedIdentity:
    """A CIP Identity item of a ListIdentity reply: the socket the device listens on, and its identity."""

    __slots__ = ("version", "socket_address", "socket_port", "ident", "truncated")

    def __init__(self, version: int, socket_address: str, socket_port: int, ident: IdentityAttributes,
                 truncated: bool) -> None:
        self.version = version
        self.socket_address = socket_address
        self.socket_port = socket_port
        self.ident = ident
        self.truncated = truncated      # the product name is cut short


class ServiceItem:
    """A List Services reply item: version, capability flags and name."""

    __slots__ = ("version", "capability", "name", "short")

    def __init__(self, version: int, capability: int, name: str, short: bool) -> None:
        self.version = version
        self.capability = capability
        self.name = name
        self.short = short              # the name field is shorter than its 16 bytes


def parse_header(buf: bytes | bytearray, pos: int = 0) -> Header:
    command, length, session, status, context, options = HEADER.unpack_from(buf, pos)
    return Header(command, length, session, status, context, options)


def plausible(hdr: Header, is_request: bool | None = None) -> bool:
    """A header a real stack could send: a known command, options 0, a bounded length.

    Requests must carry status 0 (Vol. 2 2-3.3: the sender sets it to zero);
    replies may carry any status of the table.
    """
    if hdr.command not in T.ENIP_COMMANDS or hdr.options != 0 or hdr.length > MAX_LENGTH:
        return False
    if hdr.command in (T.REGISTER_SESSION,) and hdr.length not in (0, 4):
        return False
    if hdr.command in (T.SEND_RR_DATA, T.SEND_UNIT_DATA) and 0 < hdr.length < 8:
        return False
    if is_request and hdr.status != 0:
        return False
    return hdr.status in T.ENIP_STATUSES or hdr.status < 0x100


def le16(data: bytes, pos: int) -> int:
    """The little-endian 16-bit word at ``pos`` (the caller checked the length): typed ints, no struct call."""
    return data[pos] | data[pos + 1] << 8


def le32(data: bytes, pos: int) -> int:
    """The little-endian 32-bit word at ``pos`` (the caller checked the length)."""
    return data[pos] | data[pos + 1] << 8 | data[pos + 2] << 16 | data[pos + 3] << 24


def parse_cpf(data: bytes, pos: int = 0) -> tuple[list[Item], str | None]:
    """The item list at ``pos``; returns the items and an error text (or None)."""
    size = len(data)
    if pos + 2 > size:
        return [], "no item count"
    count = le16(data, pos)
    pos += 2
    if count > MAX_CPF_ITEMS:
        return [], f"item count {count} above cap {MAX_CPF_ITEMS}"
    items: list[Item] = []
    for _ in range(count):
        if pos + 4 > size:
            return items, "item header truncated"
        type_id, length = le16(data, pos), le16(data, pos + 2)
        end = pos + 4 + length
        if end > size:
            return items, f"item 0x{type_id:04x} length {length} beyond data"
        items.append(Item(type_id, data[pos + 4:end]))
        pos = end
    return items, None


def parse_send_data(data: bytes) -> tuple[int, int, list[Item], str | None]:
    """SendRRData / SendUnitData body: interface handle, timeout, CPF items."""
    if len(data) < _RR_PREFIX.size:
        return 0, 0, [], "shorter than interface handle and timeout"
    handle, timeout = _RR_PREFIX.unpack_from(data, 0)
    items, err = parse_cpf(data, _RR_PREFIX.size)
    return handle, timeout, items, err


def parse_identity_item(data: bytes) -> ListedIdentity | None:
    """CIP Identity item 0x0C of a ListIdentity reply (Vol. 2 2-4.2.3)."""
    need = _ID_HEAD.size + _SOCKADDR.size + _ID_BODY.size + 1
    if len(data) < need:
        return None
    version = _ID_HEAD.unpack_from(data, 0)[0]
    _family, port, addr = _SOCKADDR.unpack_from(data, 2)
    vendor, dtype, product, major, minor, status, serial = _ID_BODY.unpack_from(data, 18)
    name_len = data[32]
    name = data[33:33 + name_len]
    state = data[33 + name_len] if len(data) > 33 + name_len else None
    ident = IdentityAttributes(vendor, dtype, product, f"{major}.{minor}", status, serial,
                               name.decode("latin-1", "replace"), state)
    return ListedIdentity(version, ".".join(str(b) for b in addr), port, ident, len(name) < name_len)


def parse_service_item(data: bytes) -> ServiceItem | None:
    """List Services reply item 0x0100: version, capability flags, 16-byte name (Vol. 2 2-4.6.3).

    Some stacks (cpppo) send a shorter name; it is decoded and ``short`` says so.
    """
    if len(data) < 4:
        return None
    version, flags = _ITEM.unpack_from(data, 0)
    name = data[4:4 + 16]
    return ServiceItem(version, flags, name.split(b"\x00", 1)[0].decode("latin-1", "replace"), len(name) < 16)


def cpf_names(items: list[Item]) -> list[str]:
    return [T.name_or_unknown(T.CPF_ITEMS, item.type_id, 4) for item in items]
