"""``--zeek-logs``: DIR/zeek/<path>.log as Zeek with the ICSNPP packages writes them (ASCII, or JSON).

The sink sees what the pipeline sees: each flow's packets, through the
:class:`Tracker` it attaches to the flow (Zeek's view of the connection,
tcp.py), each chunk of stream its dissector is given, each record, and each
flow's end.  A record says which messages it
holds (``Record.zeek_events``) and which script logs them
(``Record.ZEEK_SCRIPT``, the protocol's Zeek and ICSNPP handlers); chunks
go to the script of a protocol whose Zeek analyzer parses them itself
(``Dissector.ZEEK_STREAM_SCRIPT``); the sink
runs the events through the scripts in capture-time order, as Zeek's event
loop would have, with each connection's removal at the moment Zeek's timers
would remove it (and, at the end of the input, every remaining connection in
the order of Zeek's seeded runs, by connection key).  Pair records give
their request's event late (at the response), so events wait in a window of
capture time (:data:`REORDER_WINDOW`, bounded in events) before they run; an
event older than what already ran runs at once, and is counted.  The sink
adds the connection's columns and writes the rows.  It knows no protocol.
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
from otsensor.dissectors.zeek import (
    MESSAGE_COLUMNS,
    STREAM_DATA,
    STREAM_GAP,
    ZeekConn,
    ZeekEvent,
    ZeekLog,
    ZeekRow,
    ZeekScript,
)
from otsensor.sensor.zeek import format as fmt
from otsensor.sensor.zeek.conn import CONN_COLUMNS, IP_PROTO_COLUMN, conn_values
from otsensor.sensor.zeek.site import LIKELY_TCP, LIKELY_UDP, LocalNets
from otsensor.sensor.zeek.tcp import TCP, UDP, ConnModel, LikelyServer

REORDER_WINDOW: Final = 15.0     # seconds of capture time an event may wait for earlier ones (a flow ends
#                                  up to one sweep, 10 s, after Zeek would end it)
REORDER_EVENTS: Final = 100_000  # events held at most; past it the earliest runs early
PREFIX: Final = ("ts:time", "uid:string", "id.orig_h:addr", "id.orig_p:port", "id.resp_h:addr", "id.resp_p:port")
MESSAGE_KINDS: Final = ("bool", "addr", "port", "addr", "port")
END: Final = float("inf")
EVENT, REMOVAL = 0, 1


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

    __slots__ = ("conn", "ending", "flow", "likely", "model", "services")

    def __init__(self, flow: Any, likely: LikelyServer) -> None:
        self.model = ConnModel(flow.transport)
        self.flow = flow
        self.likely = likely
        self.services: list[str] = []
        self.ending: tuple[float, bytes] | None = None   # (moment, key) once the flow is being removed
        self.conn = ZeekConn(flow.uid, "tcp" if flow.transport == TCP else "udp", self)

    def packet(self, d: int, flags: int, seq: int, ack: int, length: int, ts: float) -> None:
        flow = self.flow
        sport, dport = (flow.orig_p, flow.resp_p) if d == 0 else (flow.resp_p, flow.orig_p)
        self.model.packet(d == 0, flags, seq, ack, length, length, ts, self.likely, sport, dport)

    def swapped(self) -> None:
        """Our flow exchanged originator and responder: the same sides keep Zeek's roles."""
        self.model.same = not self.model.same

    def ids(self) -> list[Any]:
        """id.orig_h/p and id.resp_h/p as Zeek's roles have them."""
        f = self.flow
        return [f.orig_h, f.orig_p, f.resp_h, f.resp_p] if self.model.same else [f.resp_h, f.resp_p, f.orig_h,
                                                                                 f.orig_p]


class _Log:
    """One open log file."""

    def __init__(self, path: str, directory: str, names: list[str], kinds: list[str], json: bool) -> None:
        self.json = json
        self.names, self.kinds = names, kinds
        self.lines = fmt.LineWriter(names, kinds, json)
        self.json_lines: fmt.LineWriter | None = None   # the JSON form of an ASCII log, for the database sinks
        # open for the run, closed by close(): the sink writes rows into it as they come
        self.fh: IO[str] = open(os.path.join(directory, f"{path}.log"), "w", encoding="utf-8",  # noqa: SIM115
                                newline="\n", buffering=1 << 16)
        if not json:
            self.fh.write(fmt.ascii_header(path, names, kinds, time.time()))

    def write(self, values: list[Any]) -> str:
        """Writes the row; returns its line."""
        line = self.lines.line(values)
        self.fh.write(line)
        self.fh.write("\n")
        return line

    def json_line(self, values: list[Any], line: str) -> str:
        """The row in Zeek's JSON form: ``line`` itself when the file is JSON (encoded once)."""
        if self.json:
            return line
        if self.json_lines is None:
            self.json_lines = fmt.LineWriter(self.names, self.kinds, True)
        return self.json_lines.line(values)

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
        self.scripts: dict[type, ZeekScript] = {}
        self.queue: list[tuple[float, bytes, int, int, Any]] = []
        self.seq = itertools.count()
        self.released = float("-inf")   # the latest moment run
        self.rows = 0
        self.late = 0
        self.errors = 0                 # events a script failed on (a bug), with the first few
        self.error_samples: list[str] = []
        # the run's other sinks: those with write_zeek (the ClickHouse sink) get every row in the JSON form;
        # the run's own list, which a live reload refills
        self.outputs: list[Any] = []
        os.makedirs(directory, exist_ok=True)

    # -- what the pipeline calls --------------------------------------------------------------------------

    def new_flow(self, flow: Any) -> Tracker:
        return Tracker(flow, self.likely)

    def stream(self, flow: Any, d: int, item: bytes | int, ts: float) -> None:
        """A chunk of stream (bytes, or the size of a gap) as the flow's dissector gets it: an event for the
        script of a protocol whose Zeek analyzer parses the chunks itself."""
        tracker: Tracker | None = flow.tracker
        script_class = flow.dissector.ZEEK_STREAM_SCRIPT
        if tracker is None or script_class is None:
            return
        kind = STREAM_GAP if item.__class__ is int else STREAM_DATA
        event = ZeekEvent(ts, Direction.ORIG if d == 0 else Direction.RESP, kind, item)
        self._push(fmt.zeek_time(ts), b"", EVENT, (tracker, self._script(script_class), event))
        self._release(ts - REORDER_WINDOW)

    def write_record(self, flow: Any, record: Record, now: float) -> None:
        tracker: Tracker | None = flow.tracker
        script_class = record.ZEEK_SCRIPT
        if tracker is None or script_class is None:
            return
        script = self._script(script_class)
        for event in record.zeek_events():
            self._push(fmt.zeek_time(event.ts), b"", EVENT, (tracker, script, event))
        self._release(now - REORDER_WINDOW)

    def _script(self, script_class: type[ZeekScript]) -> ZeekScript:
        script = self.scripts.get(script_class)
        if script is None:
            script = self.scripts[script_class] = script_class()
        return script

    def end_flow(self, flow: Any, reason: str, now: float) -> None:
        """The flow is being removed: when Zeek's timers remove the connection, or, at the end of the input,
        at Zeek's final removal of every connection still there (a timer due by the last packet has fired)."""
        tracker: Tracker | None = flow.tracker
        if tracker is not None and tracker.ending is None:
            at = fmt.zeek_time(tracker.model.removal_time())
            if reason == "end_of_capture" and at > fmt.zeek_time(now):
                at = END
            tracker.ending = (at, zeek_key(flow) if at == END else b"")

    def write_flow(self, flow: Any, now: float) -> None:
        tracker: Tracker | None = flow.tracker
        if tracker is None:
            return
        self.end_flow(flow, "removed", now)
        at, key = tracker.ending   # type: ignore[misc]
        self._push(at, key, REMOVAL, tracker)
        flow.tracker = None
        self._release(now - REORDER_WINDOW)

    def flush(self) -> None:
        for log in self.logs.values():
            log.fh.flush()

    def close(self) -> None:
        self._release(END)
        for log in self.logs.values():
            log.close()

    def report(self) -> dict[str, Any]:
        return {"rows": self.rows, "late_events": self.late, "script_errors": self.errors,
                "error_samples": self.error_samples, "logs": sorted(self.logs)}

    # -- running events -------------------------------------------------------------------------------------

    def _push(self, at: float, key: bytes, kind: int, item: Any) -> None:
        if at < self.released:   # its moment has passed: run now, out of Zeek's order
            self.late += 1
            self._run(kind, item, at)
            return
        heapq.heappush(self.queue, (at, key, next(self.seq), kind, item))
        if len(self.queue) > REORDER_EVENTS:
            self._pop()

    def _release(self, until: float) -> None:
        while self.queue and self.queue[0][0] <= until:
            self._pop()

    def _pop(self) -> None:
        at, _, _, kind, item = heapq.heappop(self.queue)
        if at != END:
            self.released = max(self.released, at)
        self._run(kind, item, at)

    def _run(self, kind: int, item: Any, at: float) -> None:
        try:
            self._handle(kind, item, at)
        except Exception as exc:  # noqa: BLE001 - a script's bug costs that event's rows, not the run
            self.errors += 1
            if len(self.error_samples) < 10:
                self.error_samples.append(f"{type(exc).__name__}: {exc}"[:300])

    def _handle(self, kind: int, item: Any, at: float) -> None:
        if kind == EVENT:
            tracker, script, event = item
            tracker.conn.same = tracker.model.same
            for row in script.event(tracker.conn, event):
                self._write_row(tracker, row)
            return
        tracker = item
        for script in self.scripts.values():
            for row in script.removed(tracker.conn, at):
                self._write_row(tracker, row)
        self._write_conn(tracker)

    def _write_conn(self, tracker: Tracker) -> None:
        flow = tracker.flow
        if flow.transport not in (TCP, UDP, 1, 58) and not self.options.ip_proto:
            return   # Zeek before 7.1 logs no connection of other IP protocols
        values = conn_values(flow, tracker.model, sorted(tracker.services), self.local, self.options.ip_proto)
        columns = CONN_COLUMNS + ((IP_PROTO_COLUMN,) if self.options.ip_proto else ())
        self._write("conn", values, [c.name for c in columns], [c.kind for c in columns])

    def _write_row(self, tracker: Tracker, row: ZeekRow) -> None:
        if row.conn is not None:
            tracker = row.conn.owner
        log = row.log
        if log.service and not (log.first_service and tracker.services):
            name = log.service.format(transport=tracker.conn.transport)
            if name not in tracker.services:
                tracker.services.append(name)
        ids = tracker.ids()
        values: list[Any] = [fmt.zeek_time(row.ts), tracker.flow.uid, *ids]
        if log.per_message:
            if row.direction is None:
                values.extend([None] * 5)
            else:
                is_orig = (row.direction == Direction.ORIG) == tracker.model.same
                values.extend([is_orig, *(ids if is_orig else ids[2:] + ids[:2])])
        own = row.values
        values.extend(own.get(c.name) for c in log.columns)
        names, kinds = layout(log)
        self._write(log.path, values, names, kinds)

    def _write(self, path: str, values: list[Any], names: list[str], kinds: list[str]) -> None:
        log = self.logs.get(path)
        if log is None:
            log = self.logs[path] = _Log(path, self.directory, names, kinds, self.options.format == "json")
        line = log.write(values)
        self.rows += 1
        for sink in self.outputs:
            write_zeek = getattr(sink, "write_zeek", None)
            if write_zeek is not None:
                write_zeek(path, log.json_line(values, line))


_LAYOUTS: dict[int, tuple[list[str], list[str]]] = {}


def layout(log: ZeekLog) -> tuple[list[str], list[str]]:
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


def zeek_key(flow: Any) -> bytes:
    """The bytes Zeek compares to order connections when it removes them all at the end of a seeded run (its
    ConnKey: the lower address and port first, addresses as IPv6, ports in network order, the transport)."""
    a = (_ip16(flow.orig_h), flow.orig_p)
    b = (_ip16(flow.resp_h), flow.resp_p)
    # addr_port_canon_lt compares the ports as stored, in network order, as 16-bit numbers on the host
    first, second = (a, b) if (a[0], _swap16(a[1])) < (b[0], _swap16(b[1])) else (b, a)
    proto = {TCP: 1, UDP: 2}.get(flow.transport, 3 if flow.transport in (1, 58) else 0)
    return first[0] + second[0] + first[1].to_bytes(2, "big") + second[1].to_bytes(2, "big") + bytes([proto])


def _swap16(port: int) -> int:
    return ((port & 0xFF) << 8) | (port >> 8)


def _ip16(text: str) -> bytes:
    ip = ipaddress.ip_address(text)
    return ip.packed if ip.version == 6 else b"\x00" * 10 + b"\xff\xff" + ip.packed
