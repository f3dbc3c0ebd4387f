"""Implicit (class 0/1) I/O on UDP 2222 (Vol. 2 2-6.3.3 and 3-3) and its tie to Forward Open.

A successful Forward Open on a TCP flow is recorded in the run's
:class:`~otsensor.dissectors.enip.connections.IOConnections`; an I/O datagram
whose connection id is there gets the Forward Open's parameters in its record.
"""
from __future__ import annotations

import struct
from typing import ClassVar, Final

from otsensor.dissectors.base import Anomaly, Direction, Dissector, Record
from otsensor.dissectors.enip import encap
from otsensor.dissectors.enip import tables as T
from otsensor.dissectors.enip.connections import IOConnections
from otsensor.dissectors.enip.records import CipIO

_SEQ_ADDR: Final = struct.Struct("<II")     # connection id, encapsulation sequence number
# The usual datagram whole: item count 2, sequenced address item (type, length 8, connection id, sequence
# number), connected data item (type, length); its data follows, to the end. Read byte by byte (typed ints).
_USUAL_SIZE: Final = 18


def parse_io(data: bytes) -> tuple[int, int, bytes] | None:
    """Connection id, sequence number and data of an I/O datagram, or None when it is not one."""
    size = len(data)
    if size >= _USUAL_SIZE and encap.le16(data, 0) == 2 and encap.le16(data, 2) == T.CPF_SEQUENCED_ADDRESS \
            and encap.le16(data, 4) == 8 and encap.le16(data, 14) == T.CPF_CONNECTED_DATA \
            and _USUAL_SIZE + encap.le16(data, 16) == size:
        return encap.le32(data, 6), encap.le32(data, 10), data[_USUAL_SIZE:]
    items, err = encap.parse_cpf(data)
    if err or len(items) < 2 or 2 + sum(4 + len(item.data) for item in items) != len(data):
        return None   # an I/O datagram is exactly its items (Vol. 2 2-6)
    addr, payload = items[0], items[1]
    if addr.type_id != T.CPF_SEQUENCED_ADDRESS or len(addr.data) != 8 or payload.type_id != T.CPF_CONNECTED_DATA:
        return None
    conn_id, seq = _SEQ_ADDR.unpack(addr.data)
    return conn_id, seq, payload.data


def probe_io(data: bytes, _direction: Direction) -> bool:
    return parse_io(data) is not None


class CipIODissector(Dissector):
    name: ClassVar[str] = "cip_io"

    def __init__(self, connections: IOConnections | None = None) -> None:
        super().__init__()
        self.confirmed = False    # as in EnipDissector: restated for mypy run on this package alone
        self.rejected = False
        self.connections = connections if connections is not None else IOConnections()

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
        return [CipIO(ts, direction == Direction.ORIG, conn_id, seq, payload, self.connections.lookup_io(conn_id))]
