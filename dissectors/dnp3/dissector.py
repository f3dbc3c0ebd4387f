"""The DNP3 stream dissector: link frames -> transport reassembly -> application fragments
-> records, with request/response pairing per flow.

Roles come from the link DIR bit (set on frames from a master), not from the TCP
direction, because an outstation may be the side that opened the connection.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, ClassVar

from mypy_extensions import mypyc_attr

from otsensor.dissectors.base import Anomaly, Direction, Dissector, DissectorFault, Record
from otsensor.dissectors.dnp3 import link
from otsensor.dissectors.dnp3.app import Fragment, ObjectHeader, parse_fragment
from otsensor.dissectors.dnp3.points import Crob, FileCommand, OutputBlock, Scalar
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
CONTROL_BLOCKS = {(12, 1): "Control Relay Output Block", (12, 2): "Pattern Control Block",
                  **{(41, variation): "Analog Output Block" for variation in range(1, 5)}}
DIRECTIONS = (Direction.ORIG, Direction.RESP)


@mypyc_attr(allow_interpreted_subclasses=True)   # tests subclass it to watch or break its steps
class Dnp3Dissector(Dissector):
    name: ClassVar[str] = "dnp3"
    # the base's flags, declared here too so that a type check of this package alone knows them
    confirmed: bool
    rejected: bool

    def __init__(self, shared: dict[str, Any] | None = None) -> None:
        super().__init__()
        # per direction (indexed by Direction)
        self._buf = [bytearray(), bytearray()]
        self._reasm = [Reassembler(), Reassembler()]
        self._checked = [False, False]
        self._junk_bytes = [0, 0]              # skipped bytes not yet reported, and the first 16 of them
        self._junk_head = [b"", b""]
        # requests awaiting their response, by (master, outstation, sequence)
        self._pending: OrderedDict[tuple[int, int, int], Dnp3Transaction] = OrderedDict()
        self._stations: set[tuple[int, int, str]] = set()
        self._stations_capped = False

    # -- contract -------------------------------------------------------------------------
    def feed(self, data: bytes, direction: Direction, ts: float) -> list[Record]:
        out: list[Record] = []
        try:
            self._feed(data, direction, ts, out)
        except Exception as exc:  # noqa: BLE001 - a bug, not traffic: reported, and the stream goes on
            self._buf[direction].clear()
            self._reasm[direction].reset()
            out.append(DissectorFault(ts, "dnp3", "feed", exc, direction))
        return out

    def gap(self, direction: Direction, nbytes: int, ts: float) -> list[Record]:
        out: list[Record] = []
        self._flush_junk(direction, ts, out)
        self._buf[direction].clear()
        self._reasm[direction].reset()
        out.append(self._anomaly(ts, "dnp3.gap", f"{nbytes} bytes lost; partial frames and fragments dropped",
                                 direction, {"bytes": nbytes}))
        return out

    def close(self, ts: float) -> list[Record]:
        out: list[Record] = []
        for direction in DIRECTIONS:
            left = self._buf[direction]
            if left:                    # a partial frame or junk the stream ended on
                self._note_junk(direction, left, len(left))
                left.clear()
            self._flush_junk(direction, ts, out)
            if self._reasm[direction].pending():
                out.append(self._anomaly(ts, "dnp3.transport_incomplete", "stream ended inside a fragment", direction))
        while self._pending:
            _key, txn = self._pending.popitem(last=False)
            out.append(txn)
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
            kind, nxt, frame = link.next_frame(buf, pos)
            if kind == link.NEED:
                break
            if kind == link.JUNK:       # reported once the next frame start shows where it ends
                self._note_junk(direction, buf[pos:min(nxt, pos + 16)], nxt - pos)
                pos = nxt
                continue
            self._flush_junk(direction, ts, out)
            if frame is not None:
                self.confirmed = True
                self._frame(frame, direction, ts, out)
            elif kind == link.BAD_HEADER_CRC:
                out.append(self._anomaly(ts, "dnp3.bad_crc", "link header CRC mismatch", direction,
                                         {"where": "header", "header": bytes(buf[pos:pos + 10]).hex()}))
            else:
                out.append(self._anomaly(ts, "dnp3.bad_length", f"link length {buf[pos + 2]} below 5", direction))
            pos = nxt
        del buf[:pos]

    def _note_junk(self, direction: Direction, skipped: bytes | bytearray, count: int) -> None:
        self._junk_bytes[direction] += count
        self._junk_head[direction] = (self._junk_head[direction] + bytes(skipped[:16]))[:16]

    def _flush_junk(self, direction: Direction, ts: float, out: list[Record]) -> None:
        count = self._junk_bytes[direction]
        if count:
            out.append(self._anomaly(ts, "dnp3.junk_bytes", "bytes skipped looking for 0x0564", direction,
                                     {"bytes": count, "data": self._junk_head[direction].hex()}))
            self._junk_bytes[direction], self._junk_head[direction] = 0, b""

    def _frame(self, frame: link.LinkFrame, direction: Direction, ts: float, out: list[Record]) -> None:
        self._station(frame, direction, ts, out)
        primary, function = frame.primary, frame.function
        if function not in (LINK_PRIMARY_FUNCTIONS if primary else LINK_SECONDARY_FUNCTIONS):
            out.append(self._anomaly(ts, "dnp3.unknown_link_function", "link function undefined for its direction",
                                     direction, {"control": frame.control}))
        if frame.bad_blocks:
            out.append(self._anomaly(ts, "dnp3.bad_crc", "link data block CRC mismatch; frame data dropped",
                                     direction, {"where": "block", "blocks": list(frame.bad_blocks),
                                                 "src": frame.source, "dst": frame.destination}))
            return
        if not primary or function not in LINK_USER_DATA or not frame.data:
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
        fname = frag.function_name
        for name, reason, detail in frag.problems:
            out.append(self._anomaly(ts, name, reason, direction, {"function": fname, **detail}))
        for hdr in frag.headers:
            out.append(Dnp3Object(ts, fname, hdr.name, hdr.group, hdr.variation, hdr.qualifier,
                                  None if hdr.qualifier & 0x0F == RANGE_ALL else hdr.count, hdr.start, hdr.stop))
            if hdr.points:
                self._values(ts, frag, hdr, frame, direction, out)
        self._pair(frag, frame, direction, ts, out)

    @staticmethod
    def _values(ts: float, frag: Fragment, hdr: ObjectHeader, frame: link.LinkFrame, direction: Direction,
                out: list[Record]) -> None:
        """A header's values: one record of points, or one control record per control block."""
        fname = frag.function_name
        block = CONTROL_BLOCKS.get((hdr.group, hdr.variation))
        if block is None:
            out.append(Dnp3Points(ts, fname, hdr.name, hdr.group, hdr.variation, hdr.points, hdr.points_truncated,
                                  direction))
            return
        is_reply = frag.function in (FC_RESPONSE, FC_UNSOLICITED)
        src, dst = frame.source, frame.destination
        for p in hdr.points:
            if isinstance(p, Crob):
                out.append(Dnp3Control(ts, block, fname, p.index, p.trip_control_code, p.operation_type, p.clear_bit,
                                       p.queue_bit, p.execute_count, p.on_time, p.off_time,
                                       p.status_code if is_reply else None, None, src, dst))
            elif isinstance(p, OutputBlock):
                out.append(Dnp3Control(ts, block, fname, p.index, status_code=p.status_code if is_reply else None,
                                       value=p.value, link_src=src, link_dst=dst))

    def _pair(self, frag: Fragment, frame: link.LinkFrame, direction: Direction, ts: float,
              out: list[Record]) -> None:
        code = frag.function
        if code == FC_RESPONSE or code == FC_AUTH_RESP:
            txn = self._pending.pop((frame.destination, frame.source, frag.seq), None)
            if txn is None:
                out.append(self._lone_response(frag, frame, direction, ts))
            else:
                out.append(txn.reply(frag.function_name, frag.iin, _control_status_ok(frag), True,
                                     (ts, direction, frag)))
            return
        if frag.is_response:                        # unsolicited
            out.append(self._lone_response(frag, frame, direction, ts))
            return
        txn = Dnp3Transaction(ts, frame.source, frame.destination, frag.seq, code, frag.function_name,
                              tuple(_summary(h) for h in frag.headers), _file_mode(frag.headers), frag, direction)
        if code in NO_RESPONSE_FUNCTIONS:
            out.append(txn)
            return
        key = (frame.source, frame.destination, frag.seq)
        old = self._pending.pop(key, None)
        if old is not None:                         # same sequence again: a retry or a new request
            out.append(old)
        self._pending[key] = txn
        if len(self._pending) > MAX_PENDING:
            _k, oldest = self._pending.popitem(last=False)
            out.append(self._anomaly(ts, "dnp3.too_many_pending", f"more than {MAX_PENDING} unanswered requests",
                                     None, {"oldest_function": oldest.fc_request}))
            out.append(oldest)

    @staticmethod
    def _lone_response(frag: Fragment, frame: link.LinkFrame, direction: Direction, ts: float) -> Dnp3Transaction:
        return Dnp3Transaction(ts, frame.source, frame.destination, frag.seq).reply(
            frag.function_name, frag.iin, _control_status_ok(frag), False, (ts, direction, frag))

    @staticmethod
    def _anomaly(ts: float, name: str, reason: str, direction: Direction | None,
                 detail: dict[str, Any] | None = None) -> Anomaly:
        assert name in ANOMALIES, name
        return Anomaly(ts, "dnp3", name, reason, direction, detail)


def _summary(hdr: ObjectHeader) -> HeaderSummary:
    """A request header for the transaction: range and the values it writes or commands."""
    points = hdr.points
    values: list[Scalar | None] = []
    items: list[tuple[int, Scalar]] = []
    if hdr.group == 12:                 # the operation each control block commands
        values = [p.operation_type if isinstance(p, Crob) else None for p in points]
        items = [(p.index, _control_code(p)) for p in points if isinstance(p, Crob)]
    else:
        for p in points:
            value = p.reported()
            if value is not None:
                values.append(value)
        if hdr.group == 41:
            items = [(p.index, p.value) for p in points if isinstance(p, OutputBlock)]
    start = hdr.start if hdr.start is not None else (points[0].index if points else None)
    return HeaderSummary(hdr.group, hdr.variation, hdr.qualifier, start, hdr.count, tuple(values), tuple(items))


def _control_code(crob: Crob) -> str:
    """A CROB's control code in words: the trip/close code when set, the operation, and the clear bit."""
    trip = crob.trip_control_code
    words = crob.operation_type if trip == "Nul" else f"{trip} {crob.operation_type}"
    return f"{words} Clear" if crob.clear_bit else words


def _control_status_ok(frag: Fragment) -> bool | None:
    statuses = [p.status for h in frag.headers if h.group in (12, 41) for p in h.points
                if isinstance(p, (Crob, OutputBlock))]
    return all(s == 0 for s in statuses) if statuses else None


def _file_mode(headers: list[ObjectHeader]) -> str | None:
    for h in headers:
        if h.group == 70 and h.variation == 3 and h.points:
            first = h.points[0]
            return first.mode if isinstance(first, FileCommand) else None
    return None
