"""The one piece of state EtherNet/IP shares across flows: I/O connections set up by Forward Open.

A Forward Open travels on a TCP session (explicit messaging, port 44818); the
connection it opens carries implicit I/O on UDP 2222, a different flow, whose
datagrams name only a connection id.  :class:`IOConnections` is where the first
leaves what the second needs.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, ClassVar, Final

from otsensor.dissectors.base import Category, Op, round6
from otsensor.dissectors.enip.connmgr import ForwardOpen
from otsensor.dissectors.enip.tables import hex8

MAX_CONNECTIONS: Final = 4096     # connection ids remembered per run (two per Forward Open)


class IOConnection:
    """What the Forward Open said about one direction (``o_t`` or ``t_o``) of the connection it opened.

    The request's parameters are absent when the request could not be decoded; the direction, the
    reply's time and the RPI slot are always there.
    """

    __slots__ = ("request", "ts", "direction", "rpi_us", "_columns", "_io_op", "_io_id")
    COLUMNS: ClassVar[str] = ("fo_connection_serial:string fo_originator_vendor_id:count fo_originator_serial:string "
                              "fo_transport_class:count fo_transport_trigger:string fo_connection_path:string "
                              "fo_ts:time fo_direction:string fo_rpi_us:count")

    def __init__(self, request: ForwardOpen | None, ts: float, direction: str, rpi_us: int | None) -> None:
        self.request = request
        self.ts = ts
        self.direction = direction
        self.rpi_us = rpi_us
        # every I/O datagram of the connection writes the same columns and means the same operation:
        # both are made at the first datagram and kept (cip_io is a third of a busy capture's rows)
        self._columns: dict[str, Any] | None = None
        self._io_op: Op | None = None
        self._io_id = -1   # the connection id _io_op names

    def fill_row(self, row: dict[str, Any]) -> None:
        columns = self._columns
        if columns is None:
            columns = self._columns = self._column_values()
        row.update(columns)

    def _column_values(self) -> dict[str, Any]:
        row: dict[str, Any] = {}
        fo = self.request
        if fo is not None:
            owner = fo.owner
            row["fo_connection_serial"] = f"0x{owner.serial:04x}"
            row["fo_originator_vendor_id"] = owner.vendor
            row["fo_originator_serial"] = f"0x{owner.originator_serial:08x}"
            row["fo_transport_class"] = fo.transport_class
            row["fo_transport_trigger"] = fo.trigger
            row["fo_connection_path"] = fo.connection_path
        row["fo_ts"] = self.ts
        row["fo_direction"] = self.direction
        row["fo_rpi_us"] = self.rpi_us
        return row

    def io_op(self, connection_id: int) -> Op:
        """The operation each datagram on the connection is (its space names the connection): made once."""
        op = self._io_op
        if op is None or self._io_id != connection_id:
            op = self._io_op = Op("cip", "I/O Data", Category.OTHER, space=io_space(connection_id), ok=True,
                                  detail=self.op_detail())
            self._io_id = connection_id
        return op

    def op_detail(self) -> tuple[tuple[str, Any], ...]:
        """The facts an I/O operation shows on its graph edge: direction, RPI, transport class."""
        if self.request is None:
            return (("direction", self.direction), ("rpi_us", self.rpi_us))
        return (("direction", self.direction), ("rpi_us", self.rpi_us),
                ("transport_class", self.request.transport_class))


def io_space(connection_id: int) -> str:
    """The address space an I/O datagram's operation names: its connection."""
    return "connection " + hex8(connection_id)


class IOConnections:
    """Connection id -> the Forward Open that opened it, shared by every EtherNet/IP flow of a run.

    The interface, and all of it (the registry factory makes one per run and hands it to each
    dissector; nothing else reads or writes the table):

    * ``record_forward_open(request, o_t_id, t_o_id, ts)``: an explicit-messaging flow saw a
      successful Forward Open reply naming both connection ids; ``request`` is the decoded
      request (or None), ``ts`` the reply's capture time.  Both ids are remembered.
    * ``lookup_io(connection_id)``: an I/O flow asks what opened the connection its datagram
      names; an :class:`IOConnection` or None.

    Arguments and results are plain values (ints, floats, strings and slotted objects of them), so
    the table can sit behind a channel to another process.  It is bounded: past
    ``MAX_CONNECTIONS`` ids the least recently recorded are forgotten.
    """

    __slots__ = ("_by_id",)

    def __init__(self) -> None:
        self._by_id: OrderedDict[int, IOConnection] = OrderedDict()

    def record_forward_open(self, request: ForwardOpen | None, o_t_id: int, t_o_id: int, ts: float) -> None:
        when = round6(ts)
        table = self._by_id
        for conn_id, direction, rpi in ((o_t_id, "o_t", request.o_t_rpi if request is not None else None),
                                        (t_o_id, "t_o", request.t_o_rpi if request is not None else None)):
            table[conn_id] = IOConnection(request, when, direction, rpi)
            table.move_to_end(conn_id)
        while len(table) > MAX_CONNECTIONS:
            table.popitem(last=False)

    def lookup_io(self, connection_id: int) -> IOConnection | None:
        return self._by_id.get(connection_id)
