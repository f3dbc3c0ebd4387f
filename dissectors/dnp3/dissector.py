"""The DNP3 stream dissector: link frames -> transport reassembly -> application fragments
-> records, with request/response pairing per flow.

Roles come from the link DIR bit (set on frames from a master), not from the TCP
direction, because an outstation may be the side that opened the connection.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any

from otsensor.dissectors.base import Anomaly, Direction, Dissector, Record
from otsensor.dissectors.dnp3 import link
from otsensor.dissectors.dnp3.app import Fragment, ObjectHeader, parse_fragment
from otsensor.dissectors.dnp3.records import (
    Dnp3Control,
    Dnp3Object,
    Dnp3Points,
    Dnp3Station,
    Dnp3Transaction,
    HeaderSummary,
)
from otsensor.dissectors.dnp3.tables import (
    ANOMALIES,
    FC_AUTH_RESP,
    FC_RESPONSE,
    FC_UNSOLICITED,
    LINK_PRIMARY_FUNCTIONS,
    LINK_SECONDARY_FUNCTIONS,
    LINK_USER_DATA,
    NO_RESPONSE_FUNCTIONS,
    RANGE_ALL,
)
from otsensor.dissectors.dnp3.transport import Reassembler

MAX_PENDING = 500
MAX_STATIONS = 16
CONTROL_BLOCKS = {(12, 1): "Control Relay Output Block", (12, 2): "Pattern Control Block"}


class _Pending:
    __slots__ = ("dst", "file_mode", "fragment", "headers", "src", "ts")

    def __init__(self, ts: float, fragment: Fragment, src: int, dst: int) -> None:
        self.ts, self.fragment, self.src, self.dst = ts, fragment, src, dst
        self.headers = tuple(_summary(h) for h in fragment.headers)
        self.file_mode = _file_mode(fragment.headers)


class Dnp3Dissector(Dissector):
    name = "dnp3"

    def __init__(self, shared: dict[str, Any] | None = None) -> None:
        super().__init__()
        self._buf = {Direction.ORIG: bytearray(), Direction.RESP: bytearray()}
        self._reasm = {Direction.ORIG: Reassembler(), Direction.RESP: Reassembler()}
        self._checked = {Direction.ORIG: False, Direction.RESP: False}
        self._junk = {Direction.ORIG: [0, b""], Direction.RESP: [0, b""]}   # skipped bytes not yet reported
        self._pending: OrderedDict[tuple[int, int, int], _Pending] = OrderedDict()
        self._stations: set[tuple[int, int, str]] = set()
        self._stations_capped = False

    # -- contract -------------------------------------------------------------------------
    def feed(self, data: bytes, direction: Direction, ts: float) -> list[Record]:
        out: list[Record] = []
        try:
            self._feed(bytes(data), direction, ts, out)
        except Exception as exc:  # noqa: BLE001 - hostile input must never take the sensor down
            self._buf[direction].clear()
            self._reasm[direction].reset()
            out.append(self._anomaly(ts, "dnp3.parser_error", f"{type(exc).__name__}: {exc}"[:200], direction))
        return out

    def gap(self, direction: Direction, nbytes: int, ts: float) -> list[Record]:
        out: list[Record] = []
        self._flush_junk(direction, ts, out)
        self._buf[direction].clear()
        self._reasm[direction].reset()
        return out + [self._anomaly(ts, "dnp3.gap", f"{nbytes} bytes lost; partial frames and fragments dropped",
                              direction, {"bytes": nbytes})]

    def close(self, ts: float) -> list[Record]:
        out: list[Record] = []
        for direction, reasm in self._reasm.items():
            left = self._buf[direction]
            if left:                    # a partial frame or junk the stream ended on
                junk = self._junk[direction]
                junk[0] += len(left)
                junk[1] = (junk[1] + bytes(left[:16]))[:16]
                left.clear()
            self._flush_junk(direction, ts, out)
            if reasm.pending():
                out.append(self._anomaly(ts, "dnp3.transport_incomplete", "stream ended inside a fragment", direction))
        while self._pending:
            _key, pend = self._pending.popitem(last=False)
            out.append(self._transaction(pend, None))
        return out

    # -- link layer -----------------------------------------------------------------------
    def _feed(self, data: bytes, direction: Direction, ts: float, out: list[Record]) -> None:
        if self.rejected:               # detached: whatever follows is not ours
            return
        buf = self._buf[direction]
        buf += data
        if not self._checked[direction]:
            if len(buf) < 2:
                return
            self._checked[direction] = True
            if not self.confirmed and buf[:2] != link.START:     # not DNP3: let the pipeline detach us
                self.rejected = True
                buf.clear()
                return
        pos = 0
        while True:
            kind, value, pos2 = link.next_frame(buf, pos)
            if kind == link.NEED:
                break
            if kind == link.JUNK:       # reported once the next frame start shows where it ends
                junk = self._junk[direction]
                junk[0] += value
                junk[1] = (junk[1] + bytes(buf[pos:pos + min(value, 16)]))[:16]
                pos = pos2
                continue
            self._flush_junk(direction, ts, out)
            if kind == link.FRAME:
                self.confirmed = True
                self._frame(value, direction, ts, out)
            elif kind == link.BAD_HEADER_CRC:
                out.append(self._anomaly(ts, "dnp3.bad_crc", "link header CRC mismatch", direction,
                                         {"where": "header", "header": bytes(buf[pos:pos + 10]).hex()}))
            else:
                out.append(self._anomaly(ts, "dnp3.bad_length", f"link length {value} below 5", direction))
            pos = pos2
        del buf[:pos]

    def _flush_junk(self, direction: Direction, ts: float, out: list[Record]) -> None:
        junk = self._junk[direction]
        if junk[0]:
            out.append(self._anomaly(ts, "dnp3.junk_bytes", "bytes skipped looking for 0x0564", direction,
                                     {"bytes": junk[0], "data": junk[1].hex()}))
            junk[0], junk[1] = 0, b""

    def _frame(self, frame: link.LinkFrame, direction: Direction, ts: float, out: list[Record]) -> None:
        self._station(frame, direction, ts, out)
        table = LINK_PRIMARY_FUNCTIONS if frame.primary else LINK_SECONDARY_FUNCTIONS
        if frame.function not in table:
            out.append(self._anomaly(ts, "dnp3.unknown_link_function", "link function undefined for its direction",
                                     direction, {"control": frame.control}))
        if frame.bad_blocks:
            out.append(self._anomaly(ts, "dnp3.bad_crc", "link data block CRC mismatch; frame data dropped",
                                     direction, {"where": "block", "blocks": list(frame.bad_blocks),
                                                 "src": frame.source, "dst": frame.destination}))
            return
        if not frame.primary or frame.function not in LINK_USER_DATA or not frame.data:
            return
        fragment, events = self._reasm[direction].add((frame.source, frame.destination), frame.data)
        for ev in events:
            out.append(self._anomaly(ts, ev.name, ev.reason, direction, ev.detail))
        if fragment is not None:
            self._fragment(fragment, frame, direction, ts, out)

    def _station(self, frame: link.LinkFrame, direction: Direction, ts: float, out: list[Record]) -> None:
        role = "master" if frame.from_master else "outstation"
        key = (int(direction), frame.source, role)
        if key in self._stations:
            return
        if len(self._stations) >= MAX_STATIONS:
            if not self._stations_capped:
                self._stations_capped = True
                out.append(self._anomaly(ts, "dnp3.too_many_stations", f"more than {MAX_STATIONS} link addresses",
                                         direction))
            return
        self._stations.add(key)
        out.append(Dnp3Station(ts, role, frame.source, direction))

    # -- application layer ----------------------------------------------------------------
    def _fragment(self, data: bytes, frame: link.LinkFrame, direction: Direction, ts: float,
                  out: list[Record]) -> None:
        frag = parse_fragment(data)
        if frag is None:
            out.append(self._anomaly(ts, "dnp3.truncated_fragment", "fragment shorter than 2 bytes", direction))
            return
        for name, reason, detail in frag.problems:
            out.append(self._anomaly(ts, name, reason, direction, {"function": frag.function_name, **detail}))
        fname = frag.function_name
        for hdr in frag.headers:
            out.append(_object_record(ts, fname, hdr))
            self._values(ts, fname, hdr, frame, direction, out)
        self._pair(frag, frame, ts, out)

    def _values(self, ts: float, fname: str, hdr: ObjectHeader, frame: link.LinkFrame, direction: Direction,
                out: list[Record]) -> None:
        if not hdr.points:
            return
        block = CONTROL_BLOCKS.get((hdr.group, hdr.variation)) or ("Analog Output Block" if hdr.group == 41 else None)
        if block is None:
            out.append(Dnp3Points(ts, fname, hdr.name, hdr.group, hdr.variation, tuple(hdr.points),
                                  hdr.points_truncated, direction))
            return
        is_reply = fname in ("RESPONSE", "UNSOLICITED_RESPONSE")
        for index, f in hdr.points:
            out.append(Dnp3Control(
                ts, block, fname, index, f.get("trip_control_code"), f.get("operation_type"), f.get("clear_bit"),
                f.get("queue_bit"), f.get("execute_count"), f.get("on_time"), f.get("off_time"),
                f.get("status_code") if is_reply else None, f.get("value"), frame.source, frame.destination))

    def _pair(self, frag: Fragment, frame: link.LinkFrame, ts: float, out: list[Record]) -> None:
        if frag.function in (FC_RESPONSE, FC_AUTH_RESP):
            pend = self._pending.pop((frame.destination, frame.source, frag.seq), None)
            if pend is None:
                out.append(self._lone_response(frag, frame, ts))
            else:
                out.append(self._transaction(pend, frag))
            return
        if frag.function == FC_UNSOLICITED or frag.is_response:
            out.append(self._lone_response(frag, frame, ts))
            return
        pend = _Pending(ts, frag, frame.source, frame.destination)
        if frag.function in NO_RESPONSE_FUNCTIONS:
            out.append(self._transaction(pend, None))
            return
        key = (frame.source, frame.destination, frag.seq)
        old = self._pending.pop(key, None)
        if old is not None:                         # same sequence again: a retry or a new request
            out.append(self._transaction(old, None))
        self._pending[key] = pend
        if len(self._pending) > MAX_PENDING:
            _k, oldest = self._pending.popitem(last=False)
            out.append(self._anomaly(ts, "dnp3.too_many_pending", f"more than {MAX_PENDING} unanswered requests",
                                     None, {"oldest_function": oldest.fragment.function_name}))
            out.append(self._transaction(oldest, None))

    def _transaction(self, pend: _Pending, reply: Fragment | None) -> Dnp3Transaction:
        """A request with its reply, or unanswered (reply None); stamped with the request's time."""
        return Dnp3Transaction(
            pend.ts, pend.fragment.function_name, reply.function_name if reply else None,
            reply.iin if reply else None, pend.src, pend.dst, pend.fragment.seq, reply is not None,
            pend.headers, _control_status_ok(reply) if reply else None, pend.file_mode)

    def _lone_response(self, frag: Fragment, frame: link.LinkFrame, ts: float) -> Dnp3Transaction:
        return Dnp3Transaction(ts, None, frag.function_name, frag.iin, frame.source, frame.destination,
                               frag.seq, False, (), _control_status_ok(frag), None)

    def _anomaly(self, ts: float, name: str, reason: str, direction: Direction | None,
                 detail: dict | None = None) -> Anomaly:
        assert name in ANOMALIES, name
        return Anomaly(ts, "dnp3", name, reason, direction, detail)


def _object_record(ts: float, fname: str, hdr: ObjectHeader) -> Dnp3Object:
    count = None if hdr.range_code == RANGE_ALL else hdr.count
    return Dnp3Object(ts, fname, hdr.name, hdr.group, hdr.variation, hdr.qualifier, count, hdr.start, hdr.stop)


def _summary(hdr: ObjectHeader) -> HeaderSummary:
    """A request header for the transaction: range and the values it writes or commands."""
    values: list = []
    for _index, f in hdr.points:
        if hdr.group == 12:
            values.append(f.get("operation_type"))
        elif "value" in f:
            values.append(f["value"])
        elif "time" in f:
            values.append(f["time"])
    start = hdr.start if hdr.start is not None else (hdr.points[0][0] if hdr.points else None)
    return HeaderSummary(hdr.group, hdr.variation, hdr.qualifier, start, hdr.count, tuple(values))


def _control_status_ok(frag: Fragment) -> bool | None:
    statuses = [f.get("status") for h in frag.headers if h.group in (12, 41) for _i, f in h.points]
    statuses = [s for s in statuses if s is not None]
    return all(s == 0 for s in statuses) if statuses else None


def _file_mode(headers: list[ObjectHeader]) -> str | None:
    for h in headers:
        if h.group == 70 and h.variation == 3:
            for _i, f in h.points:
                return f.get("mode")
    return None

