"""Implicit (class 0/1) I/O on UDP 2222 (Vol. 2 2-6.3.3 and 3-3) and its tie to Forward Open.

A successful Forward Open on a TCP flow stores its connection ids in the
pipeline's ``shared`` dict (bounded, oldest forgotten first); an I/O datagram
whose connection id is there gets the Forward Open's parameters in its record.
"""
from __future__ import annotations

import struct
from collections import OrderedDict
from typing import Any

from otsensor.dissectors.base import Anomaly, Direction, Dissector, Record
from otsensor.dissectors.enip import encap
from otsensor.dissectors.enip import tables as T
from otsensor.dissectors.enip.cip import Message
from otsensor.dissectors.enip.records import CipIO

SHARED_KEY = "enip.connections"
MAX_CONNECTIONS = 4096
_SEQ_ADDR = struct.Struct("<II")     # connection id, encapsulation sequence number
_FO_KEYS = ("connection_serial", "originator_vendor_id", "originator_serial", "transport_class",
            "transport_trigger", "connection_path")


def _forward_open(req: Message) -> Message | None:
    if req.embedded is not None:
        req = req.embedded
    if req.service in (T.FORWARD_OPEN, T.LARGE_FORWARD_OPEN) and req.path is not None \
            and req.path.class_id == T.CONNECTION_MANAGER_CLASS:
        return req
    return None


def remember_connection(shared: dict[str, Any], req: Message, resp: Message, ts: float) -> None:
    """Store the connection ids a successful Forward Open established (both directions)."""
    fo = _forward_open(req)
    if fo is None or resp.status != 0 or "o_t_connection_id" not in resp.info:
        return
    table: OrderedDict = shared.setdefault(SHARED_KEY, OrderedDict())
    common = [(key, fo.info[key]) for key in _FO_KEYS if key in fo.info]
    common.append(("ts", round(ts, 6)))
    for role, rpi in (("o_t", "o_t_rpi_us"), ("t_o", "t_o_rpi_us")):
        conn_id = int(resp.info[f"{role}_connection_id"], 16)
        table[conn_id] = tuple(common + [("direction", role), ("rpi_us", fo.info.get(rpi))])
        table.move_to_end(conn_id)
    while len(table) > MAX_CONNECTIONS:
        table.popitem(last=False)


def parse_io(data: bytes) -> tuple[int, int, bytes] | None:
    """Connection id, sequence number and data of an I/O datagram, or None when it is not one."""
    items, err = encap.parse_cpf(data)
    if err or len(items) < 2 or 2 + sum(4 + len(item.data) for item in items) != len(data):
        return None   # an I/O datagram is exactly its items (Vol. 2 2-6)
    addr, payload = items[0], items[1]
    if addr.type_id != T.CPF_SEQUENCED_ADDRESS or len(addr.data) != 8 or payload.type_id != T.CPF_CONNECTED_DATA:
        return None
    conn_id, seq = _SEQ_ADDR.unpack(addr.data)
    return conn_id, seq, payload.data


def probe_io(data: bytes, _direction: Direction) -> bool:
    try:
        return parse_io(data) is not None
    except (struct.error, IndexError, ValueError):  # a probe never raises
        return False


class CipIODissector(Dissector):
    name = "cip_io"

    def __init__(self, shared: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.shared = shared if shared is not None else {}

    def feed(self, data: bytes, direction: Direction, ts: float) -> list[Record]:
        if self.rejected:
            return []
        parsed = parse_io(data)
        if parsed is None:
            if not self.confirmed:
                self.rejected = True
                return []
            return [Anomaly(ts, "cip", "cip.bad_io", f"{len(data)}-byte datagram is not sequenced I/O", direction)]
        self.confirmed = True
        conn_id, seq, payload = parsed
        fo = self.shared.get(SHARED_KEY, {}).get(conn_id, ())
        return [CipIO(ts, direction == Direction.ORIG, conn_id, seq, payload, fo)]
