"""Connection Manager (class 0x06) service data: Forward Open, Large Forward Open, Forward Close
(CIP Vol. 1 section 3-5.5), and the details of Unconnected Send, whose embedded request cip.py parses.
"""
from __future__ import annotations

import struct
from typing import Any, ClassVar, Final

from otsensor.dissectors.enip import tables as T
from otsensor.dissectors.enip.epath import ElectronicKey, parse_path
from otsensor.dissectors.enip.message import Decoder, Detail, Message, need

# priority/tick, timeout ticks, O->T id, T->O id, serial, vendor, originator serial, multiplier, 3 reserved
_FO_HEAD: Final = struct.Struct("<BBIIHHIB3x")
_FO_RPI_SMALL: Final = struct.Struct("<IH")     # RPI, network connection parameters (16 bit)
_FO_RPI_LARGE: Final = struct.Struct("<II")     # RPI, network connection parameters (32 bit)
_FO_OK: Final = struct.Struct("<IIHHIIIBB")   # O->T id, T->O id, serial, vendor, orig serial, O->T API, T->O API, size
_FO_FAIL: Final = struct.Struct("<HHIBB")       # serial, vendor, orig serial, remaining path size, reserved
_FC_HEAD: Final = struct.Struct("<BBHHIBB")     # priority/tick, ticks, serial, vendor, orig serial, path size, reserved
_FC_OK: Final = struct.Struct("<HHIBB")         # serial, vendor, orig serial, application reply size, reserved
UCS_HEAD: Final = struct.Struct("<BBH")         # priority/tick, timeout ticks, embedded message size

_CONN_TYPES: Final = ("null", "multicast", "point-to-point", "reserved")
_PRIORITIES: Final = ("low", "high", "scheduled", "urgent")
_TRIGGERS: Final = {0: "cyclic", 1: "change-of-state", 2: "application"}


class NetParams:
    """Network connection parameters (Vol. 1 3-5.5.1.1): size, fixed/variable, priority, type, owner."""

    __slots__ = ("size", "priority", "type")

    def __init__(self, value: int, large: bool) -> None:
        if large:
            self.size, prio, ctype = value & 0xFFFF, (value >> 26) & 3, (value >> 29) & 3
        else:
            self.size, prio, ctype = value & 0x1FF, (value >> 10) & 3, (value >> 13) & 3
        self.priority = _PRIORITIES[prio]
        self.type = _CONN_TYPES[ctype]


class Owner:
    """The triad naming a connection's originator: connection serial, vendor, originator serial."""

    __slots__ = ("serial", "vendor", "originator_serial")
    COLUMNS: ClassVar[str] = "connection_serial:string originator_vendor_id:count originator_serial:string"

    def __init__(self, serial: int, vendor: int, originator_serial: int) -> None:
        self.serial = serial
        self.vendor = vendor
        self.originator_serial = originator_serial

    def fill_row(self, row: dict[str, Any]) -> None:
        row["connection_serial"] = f"0x{self.serial:04x}"
        row["originator_vendor_id"] = self.vendor
        row["originator_serial"] = f"0x{self.originator_serial:08x}"


class ForwardOpen(Detail):
    """A (Large) Forward Open request: the connection it asks for, in both directions."""

    __slots__ = ("tick", "timeout_ticks", "o_t_id", "t_o_id", "owner", "multiplier", "o_t_rpi", "t_o_rpi", "o_t",
                 "t_o", "transport", "connection_path", "key")
    COLUMNS: ClassVar[str] = (
        "priority_time_tick:count timeout_ticks:count o_t_connection_id:string t_o_connection_id:string "
        + Owner.COLUMNS + " timeout_multiplier:count o_t_rpi_us:count t_o_rpi_us:count o_t_size:count "
        "t_o_size:count o_t_connection_type:string t_o_connection_type:string o_t_priority:string "
        "t_o_priority:string transport_class:count transport_trigger:string transport_direction:string "
        "connection_path:string target_key:json")

    def __init__(self, tick: int, timeout_ticks: int, o_t_id: int, t_o_id: int, owner: Owner, multiplier: int,
                 o_t_rpi: int, t_o_rpi: int, o_t: NetParams, t_o: NetParams, transport: int, connection_path: str,
                 key: ElectronicKey | None) -> None:
        self.tick = tick
        self.timeout_ticks = timeout_ticks
        self.o_t_id = o_t_id
        self.t_o_id = t_o_id
        self.owner = owner
        self.multiplier = multiplier
        self.o_t_rpi = o_t_rpi
        self.t_o_rpi = t_o_rpi
        self.o_t = o_t
        self.t_o = t_o
        self.transport = transport
        self.connection_path = connection_path
        self.key = key

    @property
    def transport_class(self) -> int:
        return self.transport & 0x0F

    @property
    def trigger(self) -> str:
        return _TRIGGERS.get((self.transport >> 4) & 7, "reserved")

    def fill_row(self, row: dict[str, Any]) -> None:
        row["priority_time_tick"] = self.tick
        row["timeout_ticks"] = self.timeout_ticks
        row["o_t_connection_id"] = f"0x{self.o_t_id:08x}"
        row["t_o_connection_id"] = f"0x{self.t_o_id:08x}"
        self.owner.fill_row(row)
        row["timeout_multiplier"] = self.multiplier
        row["o_t_rpi_us"] = self.o_t_rpi
        row["t_o_rpi_us"] = self.t_o_rpi
        row["o_t_size"] = self.o_t.size
        row["t_o_size"] = self.t_o.size
        row["o_t_connection_type"] = self.o_t.type
        row["t_o_connection_type"] = self.t_o.type
        row["o_t_priority"] = self.o_t.priority
        row["t_o_priority"] = self.t_o.priority
        row["transport_class"] = self.transport_class
        row["transport_trigger"] = self.trigger
        row["transport_direction"] = "server" if self.transport & 0x80 else "client"
        row["connection_path"] = self.connection_path
        if self.key is not None:
            row["target_key"] = self.key.as_dict()


class ForwardOpenReply(Detail):
    """A successful Forward Open reply: the connection ids and actual packet intervals the target chose."""

    __slots__ = ("o_t_id", "t_o_id", "owner", "o_t_api", "t_o_api")
    COLUMNS: ClassVar[str] = ("o_t_connection_id:string t_o_connection_id:string " + Owner.COLUMNS
                              + " o_t_api_us:count t_o_api_us:count")

    def __init__(self, o_t_id: int, t_o_id: int, owner: Owner, o_t_api: int, t_o_api: int) -> None:
        self.o_t_id = o_t_id
        self.t_o_id = t_o_id
        self.owner = owner
        self.o_t_api = o_t_api
        self.t_o_api = t_o_api

    def fill_row(self, row: dict[str, Any]) -> None:
        row["o_t_connection_id"] = f"0x{self.o_t_id:08x}"
        row["t_o_connection_id"] = f"0x{self.t_o_id:08x}"
        self.owner.fill_row(row)
        row["o_t_api_us"] = self.o_t_api
        row["t_o_api_us"] = self.t_o_api


class OwnerReply(Detail):
    """A failed Forward Open's or a Forward Close's reply: the connection triad it echoes."""

    __slots__ = ("owner",)
    COLUMNS: ClassVar[str] = Owner.COLUMNS

    def __init__(self, owner: Owner) -> None:
        self.owner = owner

    def fill_row(self, row: dict[str, Any]) -> None:
        self.owner.fill_row(row)


class ForwardClose(Detail):
    __slots__ = ("tick", "timeout_ticks", "owner", "connection_path")
    COLUMNS: ClassVar[str] = ("priority_time_tick:count timeout_ticks:count " + Owner.COLUMNS
                              + " connection_path:string")

    def __init__(self, tick: int, timeout_ticks: int, owner: Owner, connection_path: str) -> None:
        self.tick = tick
        self.timeout_ticks = timeout_ticks
        self.owner = owner
        self.connection_path = connection_path

    def fill_row(self, row: dict[str, Any]) -> None:
        row["priority_time_tick"] = self.tick
        row["timeout_ticks"] = self.timeout_ticks
        self.owner.fill_row(row)
        row["connection_path"] = self.connection_path


class UnconnectedSend(Detail):
    """Unconnected Send's own parameters (its embedded request and route are on the Message)."""

    __slots__ = ("tick", "timeout_ticks")
    COLUMNS: ClassVar[str] = "priority_time_tick:count timeout_ticks:count"

    def __init__(self, tick: int, timeout_ticks: int) -> None:
        self.tick = tick
        self.timeout_ticks = timeout_ticks

    def fill_row(self, row: dict[str, Any]) -> None:
        row["priority_time_tick"] = self.tick
        row["timeout_ticks"] = self.timeout_ticks


class RemainingPath(Detail):
    """A failed Unconnected Send's reply (service 0xD2): the remaining path size."""

    __slots__ = ("size",)
    COLUMNS: ClassVar[str] = "remaining_path_size:count"

    def __init__(self, size: int) -> None:
        self.size = size

    def fill_row(self, row: dict[str, Any]) -> None:
        row["remaining_path_size"] = self.size


DETAILS: Final[tuple[type[Detail], ...]] = (ForwardOpen, ForwardOpenReply, OwnerReply, ForwardClose, UnconnectedSend,
                                     RemainingPath)


def _forward_open(msg: Message, large: bool) -> None:
    data = msg.data
    rpi = _FO_RPI_LARGE if large else _FO_RPI_SMALL
    pos = _FO_HEAD.size + 2 * rpi.size
    need(data, pos + 2, "large forward open" if large else "forward open")
    tick, ticks, ot_id, to_id, serial, vendor, oserial, mult = _FO_HEAD.unpack_from(data, 0)
    ot_rpi, ot_params = rpi.unpack_from(data, _FO_HEAD.size)
    to_rpi, to_params = rpi.unpack_from(data, _FO_HEAD.size + rpi.size)
    transport, words = data[pos], data[pos + 1]
    conn_path = parse_path(data[pos + 2:pos + 2 + 2 * words])
    if conn_path.error:
        msg.flag(conn_path.error, "connection path: " + conn_path.reason)
    msg.detail = ForwardOpen(tick, ticks, ot_id, to_id, Owner(serial, vendor, oserial), mult, ot_rpi, to_rpi,
                             NetParams(ot_params, large), NetParams(to_params, large), transport, conn_path.text(),
                             conn_path.key)


def forward_open(msg: Message, _depth: int, _request: Message | None) -> None:
    _forward_open(msg, large=False)


def large_forward_open(msg: Message, _depth: int, _request: Message | None) -> None:
    _forward_open(msg, large=True)


def forward_open_reply(msg: Message, _depth: int, _request: Message | None) -> None:
    if msg.status == 0:
        need(msg.data, _FO_OK.size, "forward open reply")
        ot_id, to_id, serial, vendor, oserial, ot_api, to_api, _size, _r = _FO_OK.unpack_from(msg.data, 0)
        msg.detail = ForwardOpenReply(ot_id, to_id, Owner(serial, vendor, oserial), ot_api, to_api)
    elif len(msg.data) >= _FO_FAIL.size:
        serial, vendor, oserial, _remaining, _r = _FO_FAIL.unpack_from(msg.data, 0)
        msg.detail = OwnerReply(Owner(serial, vendor, oserial))


def forward_close(msg: Message, _depth: int, _request: Message | None) -> None:
    need(msg.data, _FC_HEAD.size, "forward close")
    tick, ticks, serial, vendor, oserial, words, _r = _FC_HEAD.unpack_from(msg.data, 0)
    conn_path = parse_path(msg.data[_FC_HEAD.size:_FC_HEAD.size + 2 * words])
    msg.detail = ForwardClose(tick, ticks, Owner(serial, vendor, oserial), conn_path.text())


def forward_close_reply(msg: Message, _depth: int, _request: Message | None) -> None:
    if len(msg.data) >= _FC_OK.size:
        serial, vendor, oserial, _size, _r = _FC_OK.unpack_from(msg.data, 0)
        msg.detail = OwnerReply(Owner(serial, vendor, oserial))


def unconnected_send_reply(msg: Message, _depth: int, _request: Message | None) -> None:
    """A failed Unconnected Send answers with service 0xD2 and a remaining path size byte."""
    if msg.data:
        msg.detail = RemainingPath(msg.data[0])


# Unconnected Send's request decoder is cip.py's: it parses the embedded request.
REQUEST_DECODERS: Final[dict[int, Decoder]] = {
    T.FORWARD_OPEN: forward_open, T.LARGE_FORWARD_OPEN: large_forward_open, T.FORWARD_CLOSE: forward_close,
}
RESPONSE_DECODERS: Final[dict[int, Decoder]] = {
    T.FORWARD_OPEN: forward_open_reply, T.LARGE_FORWARD_OPEN: forward_open_reply,
    T.FORWARD_CLOSE: forward_close_reply, T.UNCONNECTED_SEND: unconnected_send_reply,
}
