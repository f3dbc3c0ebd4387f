"""``--zeek-logs``: DIR/zeek/<path>.log as Zeek with the ICSNPP packages writes them (ASCII, or JSON).

The sink sees what the pipeline sees: each flow's packets (through the
:class:`~otsensor.sensor.zeek.tcp.ZeekConn` it attaches to the flow, Zeek's
view of the connection), each record (which says its Zeek rows itself,
``Record.zeek_rows``) and each flow's end (its conn.log row).  It adds the
connection columns, and writes each row when Zeek would have written it:
rows are ordered by that moment (``ZeekRow.at``: a pair record gives its
request's row the request's time, though we learn it at the response), in a
window of capture time (:data:`REORDER_WINDOW`) bounded in rows; a row that
arrives after its moment has passed is written at once and counted.  Rows
Zeek writes when it removes a connection take the moment Zeek's timers
would remove it; at the end of the input, connections are removed in the
order Zeek's seeded runs (its btests) use, by connection key.
"""
from __future__ import annotations

import heapq
import ipaddress
import itertools
import os
import time
from dataclasses import dataclass, field
from typing import IO, Any, Final

from otsensor.dissectors.base import Direction, Record
from otsensor.dissectors.zeek import AT_ANY_REMOVAL, AT_REMOVAL, MESSAGE_COLUMNS, ZeekLog, ZeekRow
from otsensor.sensor.zeek import format as fmt
from otsensor.sensor.zeek.conn import CONN_COLUMNS, IP_PROTO_COLUMN, conn_values
from otsensor.sensor.zeek.site import LIKELY_TCP, LIKELY_UDP, LocalNets
from otsensor.sensor.zeek.tcp import TCP, UDP, LikelyServer, ZeekConn

REORDER_WINDOW: Final = 60.0     # seconds of capture time a row may wait for earlier rows
REORDER_ROWS: Final = 200_000    # rows held at most; past it the earliest is written early
PREFIX: Final = ("ts:time", "uid:string", "id.orig_h:addr", "id.orig_p:port", "id.resp_h:addr", "id.resp_p:port")
MESSAGE_KINDS: Final = ("bool", "addr", "port", "addr", "port")
END: Final = float("inf")
FORMATS: Final = ("ascii", "json")


@dataclass
class ZeekOptions:
    """How to write: the format, which Zeek release's layout, and the site's local networks."""
    format: str = "ascii"
    version: tuple[int, int] = (7, 2)
    local_nets: list[str] = field(default_factory=list)
    private_address_space_is_local: bool = True

    @property
    def ip_proto(self) -> bool:          # conn.log's ip_proto column: Zeek 7.1 and later
        return self.version >= (7, 1)

    @property
    def private_is_local(self) -> bool:  # Zeek 6.0 made private address space local by default
        return self.private_address_space_is_local and self.version >= (6, 0)


class Tracker:
    """Zeek's view of one flow, fed every packet (the pipeline calls :meth:`packet`)."""

    __slots__ = ("conn", "flow", "likely", "services", "ending")

    def __init__(self, flow: Any, likely: LikelyServer) -> None:
        self.conn = ZeekConn(flow.transport)
        self.flow = flow
        self.likely = likely
        self.services: list[str] = []
        self.ending: tuple[float, bytes] | None = None   # (moment, key) once the flow is being removed

    def packet(self, d: int, flags: int, seq: int, ack: int, length: int, ts: float) -> None:
        flow = self.flow
        sport, dport = (flow.orig_p, flow.resp_p) if d == 0 else (flow.resp_p, flow.orig_p)
        self.conn.packet(d == 0, flags, seq, ack, length, length, ts, self.likely, sport, dport)

    def swapped(self) -> None:
        """Our flow exchanged originator and responder: the same sides keep Zeek's roles."""
        self.conn.same = not self.conn.same


class _Log:
    """One open log file."""

    def __init__(self, path: str, directory: str, names: list[str], kinds: list[str], json: bool) -> None:
        self.names, self.kinds, self.json = names, kinds, json
        self.fh: IO[str] = open(os.path.join(directory, f"{path}.log"), "w", encoding="utf-8", newline="\n",
                                buffering=1 << 16)
        if not json:
            self.fh.write(fmt.ascii_header(path, names, kinds, time.time()))

    def write(self, values: list[Any]) -> None:
        line = fmt.json_line(self.names, values, self.kinds) if self.json else fmt.ascii_line(values, self.kinds)
        self.fh.write(line)
        self.fh.write("\n")

    def close(self) -> None:
        if not self.json:
            self.fh.write(fmt.ascii_footer(time.time()))
        self.fh.close()


class ZeekSink:
    """Writes Zeek's logs for one run into ``directory`` (DIR/zeek)."""

    def __init__(self, directory: str, options: ZeekOptions | None = None) -> None:
        self.directory = directory
        self.options = options or ZeekOptions()
        self.likely = LikelyServer(LIKELY_TCP, LIKELY_UDP)
        self.local = LocalNets(self.options.local_nets, self.options.private_is_local)
        self.logs: dict[str, _Log] = {}
        self.pending: list[tuple[float, bytes, int, str, list[Any], list[str], list[str]]] = []
        self.seq = itertools.count()
        self.released = float("-inf")   # the latest moment written
        self.removals: list[float] = []  # moments of recent connection removals (for AT_ANY_REMOVAL)
        self.rows = 0
        self.late = 0
        os.makedirs(directory, exist_ok=True)

    # -- what the pipeline calls --------------------------------------------------------------------------

    def new_flow(self, flow: Any) -> Tracker:
        return Tracker(flow, self.likely)

    def write_record(self, flow: Any, record: Record, now: float) -> None:
        rows = record.zeek_rows()
        if not rows:
            return
        tracker: Tracker | None = flow.tracker
        if tracker is None:
            return
        for row in rows:
            self._add_row(tracker, row)
        self._release(now - REORDER_WINDOW)

    def end_flow(self, flow: Any, reason: str) -> None:
        """The flow is being removed: rows its dissector gives from now on are written at its removal."""
        tracker: Tracker | None = flow.tracker
        if tracker is not None:
            at = END if reason == "end_of_capture" else tracker.conn.removal_time()
            tracker.ending = (at, zeek_key(flow, tracker.conn) if at == END else b"")

    def write_flow(self, flow: Any, now: float) -> None:
        tracker: Tracker | None = flow.tracker
        if tracker is None:
            return
        if tracker.ending is None:
            self.end_flow(flow, "removed")
        at, key = tracker.ending   # type: ignore[misc]
        if flow.transport in (TCP, UDP, 1, 58) or self.options.ip_proto:
            values = conn_values(flow, tracker.conn, sorted(tracker.services), self.local, self.options.ip_proto)
            columns = CONN_COLUMNS + ((IP_PROTO_COLUMN,) if self.options.ip_proto else ())
            self._push(at, key, "conn", values, [c.name for c in columns], [c.kind for c in columns])
        if at != END:
            self.removals.append(at)
            if len(self.removals) > 4096:
                del self.removals[:2048]
        flow.tracker = None
        self._release(now - REORDER_WINDOW)

    def flush(self) -> None:
        for log in self.logs.values():
            log.fh.flush()

    def close(self) -> None:
        self._release(END)
        for log in self.logs.values():
            log.close()
        self.logs.clear()

    def report(self) -> dict[str, Any]:
        return {"rows": self.rows, "late_rows": self.late, "logs": sorted(self.logs)}

    # -- rows -----------------------------------------------------------------------------------------------

    def _add_row(self, tracker: Tracker, row: ZeekRow) -> None:
        log = row.log
        flow = tracker.flow
        service = log.service
        if service:
            name = service.format(transport="tcp" if flow.transport == TCP else "udp")
            if name not in tracker.services:
                tracker.services.append(name)
        at, key = self._moment(tracker, row)
        zc = tracker.conn
        ids = [flow.orig_h, flow.orig_p, flow.resp_h, flow.resp_p] if zc.same else \
            [flow.resp_h, flow.resp_p, flow.orig_h, flow.orig_p]
        values: list[Any] = [fmt.zeek_time(row.ts), flow.uid, *ids]
        if log.per_message:
            is_orig = None if row.direction is None else (row.direction == Direction.ORIG) == zc.same
            if is_orig is None:
                values.extend([None] * 5)
            else:
                values.extend([is_orig, *(ids if is_orig else ids[2:] + ids[:2])])
        own = row.values
        values.extend(own.get(c.name) for c in log.columns)
        names, kinds = _layout(log)
        self._push(at, key, log.path, values, names, kinds)

    def _moment(self, tracker: Tracker, row: ZeekRow) -> tuple[float, bytes]:
        if row.at == AT_REMOVAL or (row.at == AT_ANY_REMOVAL and tracker.ending is not None):
            if tracker.ending is None:
                self.end_flow(tracker.flow, "removed")
            ending = tracker.ending
            assert ending is not None
            if row.at == AT_ANY_REMOVAL:   # any connection's removal flushes it: the first after the row
                earlier = [r for r in self.removals if r >= row.ts]
                if earlier and min(earlier) < ending[0]:
                    return min(earlier), b""
                return (ending[0], b"") if ending[0] != END else (END, b"")
            return ending
        return fmt.zeek_time(row.at), b""

    def _push(self, at: float, key: bytes, path: str, values: list[Any], names: list[str],
              kinds: list[str]) -> None:
        if at < self.released:   # its moment has passed: written now, out of Zeek's order
            self.late += 1
            self._write(path, values, names, kinds)
            return
        heapq.heappush(self.pending, (at, key, next(self.seq), path, values, names, kinds))
        if len(self.pending) > REORDER_ROWS:
            self._pop()

    def _release(self, until: float) -> None:
        while self.pending and self.pending[0][0] <= until:
            self._pop()

    def _pop(self) -> None:
        at, _, _, path, values, names, kinds = heapq.heappop(self.pending)
        if at != END:
            self.released = max(self.released, at)
        self._write(path, values, names, kinds)

    def _write(self, path: str, values: list[Any], names: list[str], kinds: list[str]) -> None:
        log = self.logs.get(path)
        if log is None:
            log = self.logs[path] = _Log(path, self.directory, names, kinds, self.options.format == "json")
        log.write(values)
        self.rows += 1


_LAYOUTS: dict[int, tuple[list[str], list[str]]] = {}


def _layout(log: ZeekLog) -> tuple[list[str], list[str]]:
    """A log's column names and Zeek types, connection columns first (computed once per log)."""
    known = _LAYOUTS.get(id(log))
    if known is None:
        prefix = [c.split(":") for c in PREFIX]
        names = [n for n, _ in prefix] + (list(MESSAGE_COLUMNS) if log.per_message else [])
        kinds = [k for _, k in prefix] + (list(MESSAGE_KINDS) if log.per_message else [])
        names += [c.name for c in log.columns]
        kinds += [c.kind for c in log.columns]
        known = _LAYOUTS[id(log)] = (names, kinds)
    return known


def zeek_key(flow: Any, zc: ZeekConn) -> bytes:
    """The bytes Zeek compares to order connections when it removes them all at the end of a seeded run (its
    ConnKey: the lower address and port first, addresses as IPv6, ports in network order, the transport)."""
    a = (ipaddress.ip_address(flow.orig_h), flow.orig_p)
    b = (ipaddress.ip_address(flow.resp_h), flow.resp_p)
    raw_a, raw_b = _ip16(a[0]), _ip16(b[0])
    # addr_port_canon_lt compares the ports as stored, in network order, as 16-bit numbers on the host
    swap = lambda p: ((p & 0xFF) << 8) | (p >> 8)  # noqa: E731 - one use
    first, second = ((raw_a, a[1]), (raw_b, b[1])) if (raw_a, swap(a[1])) < (raw_b, swap(b[1])) else \
        ((raw_b, b[1]), (raw_a, a[1]))
    proto = {TCP: 1, UDP: 2}.get(flow.transport, 3 if flow.transport in (1, 58) else 0)
    return first[0] + second[0] + first[1].to_bytes(2, "big") + second[1].to_bytes(2, "big") + bytes([proto])


def _ip16(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bytes:
    return ip.packed if ip.version == 6 else b"\x00" * 10 + b"\xff\xff" + ip.packed
