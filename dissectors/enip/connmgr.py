"""Connection Manager (class 0x06) service data: Forward Open, Large Forward Open, Forward Close,
Unconnected Send (CIP Vol. 1 section 3-5.5).
"""
from __future__ import annotations

import struct

from otsensor.dissectors.enip import tables as T
from otsensor.dissectors.enip.cip import Message, parse_request, parse_response
from otsensor.dissectors.enip.epath import parse_path

# priority/tick, timeout ticks, O->T id, T->O id, serial, vendor, originator serial, multiplier, 3 reserved
_FO_HEAD = struct.Struct("<BBIIHHIB3x")
_FO_RPI_SMALL = struct.Struct("<IH")     # RPI, network connection parameters (16 bit)
_FO_RPI_LARGE = struct.Struct("<II")     # RPI, network connection parameters (32 bit)
_FO_OK = struct.Struct("<IIHHIIIBB")     # O->T id, T->O id, serial, vendor, orig serial, O->T API, T->O API, size
_FO_FAIL = struct.Struct("<HHIBB")       # serial, vendor, orig serial, remaining path size, reserved
_FC_HEAD = struct.Struct("<BBHHIBB")     # priority/tick, ticks, serial, vendor, orig serial, path size, reserved
_FC_OK = struct.Struct("<HHIBB")         # serial, vendor, orig serial, application reply size, reserved
_UCS_HEAD = struct.Struct("<BBH")        # priority/tick, timeout ticks, embedded message size

_CONN_TYPES = {0: "null", 1: "multicast", 2: "point-to-point", 3: "reserved"}
_PRIORITIES = {0: "low", 1: "high", 2: "scheduled", 3: "urgent"}
_TRIGGERS = {0: "cyclic", 1: "change-of-state", 2: "application"}


def _net_params(value: int, large: bool) -> dict:
    """Network connection parameters (Vol. 1 3-5.5.1.1): size, fixed/variable, priority, type, owner."""
    if large:
        size, fixed, prio, ctype, owner = value & 0xFFFF, (value >> 25) & 1, (value >> 26) & 3, \
            (value >> 29) & 3, (value >> 31) & 1
    else:
        size, fixed, prio, ctype, owner = value & 0x1FF, (value >> 9) & 1, (value >> 10) & 3, \
            (value >> 13) & 3, (value >> 15) & 1
    return {"size": size, "variable": bool(fixed), "priority": _PRIORITIES[prio],
            "type": _CONN_TYPES[ctype], "redundant_owner": bool(owner)}


def _forward_open(msg: Message, _depth: int, large: bool = False) -> None:
    data = msg.data
    tick, ticks, ot_id, to_id, serial, vendor, oserial, mult = _FO_HEAD.unpack_from(data, 0)
    rpi = _FO_RPI_LARGE if large else _FO_RPI_SMALL
    pos = _FO_HEAD.size
    ot_rpi, ot_params = rpi.unpack_from(data, pos)
    to_rpi, to_params = rpi.unpack_from(data, pos + rpi.size)
    pos += 2 * rpi.size
    transport, words = data[pos], data[pos + 1]
    conn_path = parse_path(data[pos + 2:pos + 2 + 2 * words])
    if conn_path.error:
        msg.flag(conn_path.error, "connection path: " + conn_path.reason)
    ot, to = _net_params(ot_params, large), _net_params(to_params, large)
    msg.info.update({
        "priority_time_tick": tick, "timeout_ticks": ticks,
        "o_t_connection_id": f"0x{ot_id:08x}", "t_o_connection_id": f"0x{to_id:08x}",
        "connection_serial": f"0x{serial:04x}", "originator_vendor_id": vendor,
        "originator_serial": f"0x{oserial:08x}", "timeout_multiplier": mult,
        "o_t_rpi_us": ot_rpi, "t_o_rpi_us": to_rpi, "o_t_size": ot["size"], "t_o_size": to["size"],
        "o_t_connection_type": ot["type"], "t_o_connection_type": to["type"],
        "o_t_priority": ot["priority"], "t_o_priority": to["priority"],
        "transport_class": transport & 0x0F, "transport_trigger": _TRIGGERS.get((transport >> 4) & 7, "reserved"),
        "transport_direction": "server" if transport & 0x80 else "client",
        "connection_path": conn_path.text(),
    })
    if conn_path.key is not None:   # the electronic key: what the originator expects the target to be
        msg.info["target_key"] = dict(conn_path.key)


def _large_forward_open(msg: Message, depth: int) -> None:
    _forward_open(msg, depth, large=True)


def _forward_open_reply(msg: Message, _depth: int, _request: Message | None) -> None:
    if msg.status == 0:
        ot_id, to_id, serial, vendor, oserial, ot_api, to_api, _size, _r = _FO_OK.unpack_from(msg.data, 0)
        msg.info.update({"o_t_connection_id": f"0x{ot_id:08x}", "t_o_connection_id": f"0x{to_id:08x}",
                         "connection_serial": f"0x{serial:04x}", "originator_vendor_id": vendor,
                         "originator_serial": f"0x{oserial:08x}", "o_t_api_us": ot_api, "t_o_api_us": to_api})
    elif len(msg.data) >= _FO_FAIL.size:
        serial, vendor, oserial, _remaining, _r = _FO_FAIL.unpack_from(msg.data, 0)
        msg.info.update({"connection_serial": f"0x{serial:04x}", "originator_vendor_id": vendor,
                         "originator_serial": f"0x{oserial:08x}"})


def _forward_close(msg: Message, _depth: int) -> None:
    tick, ticks, serial, vendor, oserial, words, _r = _FC_HEAD.unpack_from(msg.data, 0)
    conn_path = parse_path(msg.data[_FC_HEAD.size:_FC_HEAD.size + 2 * words])
    msg.info.update({"priority_time_tick": tick, "timeout_ticks": ticks, "connection_serial": f"0x{serial:04x}",
                     "originator_vendor_id": vendor, "originator_serial": f"0x{oserial:08x}",
                     "connection_path": conn_path.text()})


def _forward_close_reply(msg: Message, _depth: int, _request: Message | None) -> None:
    if len(msg.data) >= _FC_OK.size:
        serial, vendor, oserial, _size, _r = _FC_OK.unpack_from(msg.data, 0)
        msg.info.update({"connection_serial": f"0x{serial:04x}", "originator_vendor_id": vendor,
                         "originator_serial": f"0x{oserial:08x}"})


def _unconnected_send(msg: Message, depth: int) -> None:
    """Vol. 1 3-5.5.2: the embedded request, a pad byte if its size is odd, then the route path."""
    tick, ticks, size = _UCS_HEAD.unpack_from(msg.data, 0)
    body = msg.data[_UCS_HEAD.size:_UCS_HEAD.size + size]
    if len(body) < size:
        msg.flag("cip.truncated", f"embedded request of {size} bytes beyond the message")
    msg.info.update({"priority_time_tick": tick, "timeout_ticks": ticks})
    if depth < 4 and body:
        msg.embedded = parse_request(body, depth + 1)
    pos = _UCS_HEAD.size + size + (size & 1)
    if pos + 2 <= len(msg.data):
        words = msg.data[pos]
        route = parse_path(msg.data[pos + 2:pos + 2 + 2 * words])
        msg.route_path = route.text() if route.ports else (route.text() or None)


def _unconnected_send_reply(msg: Message, depth: int, request: Message | None) -> None:
    """A failed Unconnected Send answers with service 0xD2 and a remaining path size byte."""
    if msg.data:
        msg.info["remaining_path_size"] = msg.data[0]


REQUEST_DECODERS = {
    T.FORWARD_OPEN: _forward_open, T.LARGE_FORWARD_OPEN: _large_forward_open,
    T.FORWARD_CLOSE: _forward_close, T.UNCONNECTED_SEND: _unconnected_send,
}
RESPONSE_DECODERS = {
    T.FORWARD_OPEN: _forward_open_reply, T.LARGE_FORWARD_OPEN: _forward_open_reply,
    T.FORWARD_CLOSE: _forward_close_reply, T.UNCONNECTED_SEND: _unconnected_send_reply,
}


def parse_reply_to(buf: bytes, request: Message | None) -> Message:
    """Parse a response against its request; a successful Unconnected Send is answered by the
    embedded service's own response (Vol. 1 3-5.5.2), so decode it against the embedded request."""
    if (request is not None and request.embedded is not None and buf
            and (buf[0] & 0x7F) == request.embedded.service and request.service == T.UNCONNECTED_SEND):
        return parse_response(buf, request.embedded)
    return parse_response(buf, request)
