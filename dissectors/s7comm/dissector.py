"""The S7 stream dissector: TPKT/COTP framing, S7comm and S7comm-plus, request/response pairing.

Per flow it keeps: one :class:`Framer` per direction, the outstanding S7comm
requests keyed by (direction, PDU reference), the outstanding S7comm-plus
requests keyed by (direction, sequence number), and partial fragmented
User-Data (SZL) answers.  All are capped; overflow yields an anomaly.
"""
from __future__ import annotations

from typing import Any, Callable, Final, TypeVar

from mypy_extensions import mypyc_attr

from otsensor.dissectors.base import Anomaly, Direction, Dissector, DissectorFault, Record
from otsensor.dissectors.s7comm import cotp, s7plus
from otsensor.dissectors.s7comm.constants import (
    BLOCK_TRANSFER_FUNCTIONS,
    G_CPU,
    ROSCTR_JOB,
    ROSCTR_USERDATA,
    SUB_READ_SZL,
    UD_TYPE_PUSH,
    UD_TYPE_REQUEST,
)
from otsensor.dissectors.s7comm.framing import Event, Framer
from otsensor.dissectors.s7comm.plus_record import S7PlusRecord
from otsensor.dissectors.s7comm.records import CotpRecord, S7commRecord, S7ReadSzlRecord, S7UploadDownloadRecord
from otsensor.dissectors.s7comm.s7 import PROTOCOL_ID as S7_ID
from otsensor.dissectors.s7comm.s7 import parse_body, parse_header
from otsensor.dissectors.s7comm.shapes import Detail, Malformed, Problems, S7Pdu, UserData
from otsensor.dissectors.s7comm.szl import SzlContent
from otsensor.dissectors.s7comm.userdata import decode_content
from otsensor.dissectors.s7comm.zeek import S7commScript

MAX_PENDING: Final = 500
MAX_FRAGMENTED: Final = 16
MAX_FRAGMENT_BYTES: Final = 64 * 1024
MAX_UNCONFIRMED: Final = 4096     # bytes without one valid TPKT/COTP frame before the flow is rejected as not S7


def _other(direction: Direction) -> Direction:
    return Direction.RESP if direction == Direction.ORIG else Direction.ORIG


class Fragments:
    """A User-Data answer arriving in several PDUs: its request, its first PDU and the payload so far."""

    __slots__ = ("request", "first", "parts", "size")

    def __init__(self, request: S7Pdu | None, first: S7Pdu, payload: bytes) -> None:
        self.request = request
        self.first = first
        self.parts = [payload]
        self.size = len(payload)


Pending = TypeVar("Pending", S7commRecord, S7PlusRecord)


@mypyc_attr(allow_interpreted_subclasses=True)   # as Dissector; tests subclass it to inject a decoder bug
class S7Dissector(Dissector):
    name = "s7comm"
    ZEEK_STREAM_SCRIPT = S7commScript   # ICSNPP's analyzer reads each delivered chunk itself (zeek.py)

    def __init__(self, shared: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.framers = {Direction.ORIG: Framer(), Direction.RESP: Framer()}
        # requests waiting for their answer, by (request direction, PDU reference / sequence number)
        self.pending: dict[tuple[Direction, int], S7commRecord] = {}
        self.plus_pending: dict[tuple[Direction, int], S7PlusRecord] = {}
        self.plus_continuation = {Direction.ORIG: False, Direction.RESP: False}
        # (response direction, group, sub-function) -> the answer being reassembled
        self.fragments: dict[tuple[Direction, int, int], Fragments] = {}
        self.unit: int | None = None
        self.unconfirmed_bytes = 0

    # --- contract -------------------------------------------------------------------------
    def feed(self, data: bytes, direction: Direction, ts: float) -> list[Record]:
        out: list[Record] = []
        framer = self.framers[direction]
        try:
            events = framer.push(data)
        except Exception as exc:  # noqa: BLE001 - a framing bug: drop the partial frame, resynchronise, go on
            framer.lose()
            events = []
            out.append(DissectorFault(ts, "s7comm", "TPKT/COTP framing", exc, direction))
        for event in events:
            try:
                self._event(event, direction, ts, out)
            except Exception as exc:  # noqa: BLE001 - a decoder bug costs this data unit, not the stream
                out.append(DissectorFault(ts, "s7comm", _what(event), exc, direction))
        if not self.confirmed:
            self.unconfirmed_bytes += len(data)
            if self.unconfirmed_bytes > MAX_UNCONFIRMED:
                self.rejected = True
        return out

    def gap(self, direction: Direction, nbytes: int, ts: float) -> list[Record]:
        dropped = self.framers[direction].lose()
        self.plus_continuation[direction] = False
        reason = f"{nbytes} bytes lost" + ("; partial frame dropped" if dropped else "")
        return [self._anomaly(ts, "cotp.gap", reason, direction)]

    def close(self, ts: float) -> list[Record]:
        out: list[Record] = []
        for direction, framer in self.framers.items():
            if framer.buf and not framer.resync and self.confirmed:
                out.append(self._anomaly(ts, "cotp.truncated_stream", f"{len(framer.buf)} bytes of an incomplete frame",
                                         direction))
        for key in list(self.fragments):
            self._flush_fragment(key, ts, out)
        for record in self.pending.values():
            self._emit_s7(record, out)
        out.extend(self.plus_pending.values())
        self.pending.clear()
        self.plus_pending.clear()
        return out

    # --- events ---------------------------------------------------------------------------
    def _event(self, event: Event, direction: Direction, ts: float, out: list[Record]) -> None:
        if isinstance(event, bytes):
            self._tsdu(event, direction, ts, out)
        elif isinstance(event, cotp.CotpPdu):
            self.confirmed = True
            out.append(self._cotp_record(event, direction, ts))
        else:
            out.append(self._anomaly(ts, event.name, event.reason, direction))

    def _tsdu(self, tsdu: bytes, direction: Direction, ts: float, out: list[Record]) -> None:
        if not tsdu:
            return
        if tsdu[0] == S7_ID:
            self._s7(tsdu, direction, ts, out)
        elif tsdu[0] == s7plus.PROTOCOL_ID:
            self._plus(tsdu, direction, ts, out)
        else:
            out.append(self._anomaly(ts, "cotp.unknown_payload", f"COTP data starting 0x{tsdu[0]:02x}", direction))

    def _cotp_record(self, pdu: cotp.CotpPdu, direction: Direction, ts: float) -> CotpRecord:
        record = CotpRecord(ts, direction == Direction.ORIG, pdu, self.unit)
        self.unit = record.unit
        return record

    # --- S7comm ---------------------------------------------------------------------------
    def _s7(self, tsdu: bytes, direction: Direction, ts: float, out: list[Record]) -> None:
        try:
            pdu = parse_header(tsdu)
        except Malformed as exc:
            out.append(self._anomaly(ts, "s7comm.truncated_pdu", exc.reason, direction))
            return
        self.confirmed = True
        param = pdu.param
        is_request = pdu.rosctr == ROSCTR_JOB or (
            pdu.rosctr == ROSCTR_USERDATA and len(param) > 5 and param[5] >> 4 in (UD_TYPE_REQUEST, UD_TYPE_PUSH))
        pending = None if is_request else self.pending.pop((_other(direction), pdu.pdu_ref), None)
        req = pending.request if pending is not None else None
        parse_body(pdu, req)
        self._anomalies(pdu.problems, direction, ts, out)
        ud = pdu.userdata
        if ud is not None:
            self._userdata_content(pdu, ud, direction, ts, req, out)
        if is_request and (ud is None or ud.type != UD_TYPE_PUSH):
            self._remember(self.pending, (direction, pdu.pdu_ref), S7commRecord(ts, direction == Direction.ORIG, pdu, None),
                           "s7comm", ts, out, self._emit_s7)
        elif is_request:
            self._emit_s7(S7commRecord(ts, direction == Direction.ORIG, pdu, None), out)
        elif pending is None:
            out.append(self._anomaly(ts, "s7comm.unmatched_response", f"PDU reference {pdu.pdu_ref}", direction))
            self._emit_s7(S7commRecord(ts, direction != Direction.ORIG, None, pdu), out)
        else:
            self._emit_s7(pending.answer(pdu), out)

    def _emit_s7(self, record: S7commRecord, out: list[Record]) -> None:
        """Out with a request/response record (and its block transfer step), tagged with the flow's rack/slot."""
        record.unit = self.unit
        out.append(record)
        main = record.main
        if main.userdata is None and main.function in BLOCK_TRANSFER_FUNCTIONS:
            out.append(S7UploadDownloadRecord(record))

    def _userdata_content(self, pdu: S7Pdu, ud: UserData, direction: Direction, ts: float, req: S7Pdu | None,
                          out: list[Record]) -> None:
        """Decode user-data content; SZL answers split over several responses are reassembled first."""
        problems: Problems = []
        frag_key = (direction, ud.group, ud.subfunction)
        if ud.is_request or ud.type == UD_TYPE_PUSH:
            ud.content = decode_content(ud, ud.payload, problems)
        elif frag_key in self.fragments:
            entry = self.fragments[frag_key]
            entry.parts.append(ud.payload)
            entry.size += len(ud.payload)
            if entry.size > MAX_FRAGMENT_BYTES:
                problems.append(("s7comm.fragment_overflow", f"fragmented answer over {MAX_FRAGMENT_BYTES} bytes"))
                del self.fragments[frag_key]
            elif ud.last_data_unit:
                self._flush_fragment(frag_key, ts, out)
        elif not ud.last_data_unit:
            self.fragments[frag_key] = Fragments(req, pdu, ud.payload)
            if len(self.fragments) > MAX_FRAGMENTED:
                oldest = next(iter(self.fragments))
                problems.append(("s7comm.fragment_overflow", "too many fragmented answers in progress"))
                self._flush_fragment(oldest, ts, out)
        else:
            ud.content = decode_content(ud, ud.payload, problems)
            self._szl_record(ts, direction, req, pdu, ud.content, out)
        self._anomalies(problems, direction, ts, out)

    def _flush_fragment(self, key: tuple[Direction, int, int], ts: float, out: list[Record]) -> None:
        """The reassembled answer's content goes to its SZL record; the first PDU's own record has gone out."""
        entry = self.fragments.pop(key)
        first_ud = entry.first.userdata
        assert first_ud is not None, "only User-Data answers are reassembled"
        problems: Problems = []
        content = decode_content(first_ud, b"".join(entry.parts), problems)
        self._anomalies(problems, key[0], ts, out)
        self._szl_record(ts, key[0], entry.request, entry.first, content, out)

    @staticmethod
    def _szl_record(ts: float, resp_dir: Direction, req: S7Pdu | None, resp: S7Pdu, content: Detail | None,
                    out: list[Record]) -> None:
        ud = resp.userdata
        if ud is not None and ud.group == G_CPU and ud.subfunction == SUB_READ_SZL:
            out.append(S7ReadSzlRecord(ts, resp_dir != Direction.ORIG, req, resp,
                                       content if isinstance(content, SzlContent) else None))

    # --- S7comm-plus ----------------------------------------------------------------------
    def _plus(self, tsdu: bytes, direction: Direction, ts: float, out: list[Record]) -> None:
        try:
            pdu = s7plus.parse(tsdu, self.plus_continuation[direction])
        except Malformed as exc:
            out.append(self._anomaly(ts, "s7comm_plus.truncated_pdu", exc.reason, direction))
            return
        self.confirmed = True
        self.plus_continuation[direction] = not pdu.last_fragment
        self._anomalies(pdu.problems, direction, ts, out)
        if pdu.continuation:
            return
        is_orig = direction == Direction.ORIG
        if pdu.sequence is None or pdu.opcode not in (s7plus.PLUS_OP_REQUEST, s7plus.PLUS_OP_RESPONSE,
                                                       s7plus.PLUS_OP_RESPONSE2):
            out.append(S7PlusRecord(ts, is_orig, pdu))
        elif s7plus.is_response(pdu):
            pending = self.plus_pending.pop((_other(direction), pdu.sequence), None)
            if pending is None:
                out.append(self._anomaly(ts, "s7comm_plus.unmatched_response", f"sequence {pdu.sequence}", direction))
                out.append(S7PlusRecord(ts, is_orig, pdu))
            else:
                out.append(pending.answer(pdu))
        else:
            self._remember(self.plus_pending, (direction, pdu.sequence), S7PlusRecord(ts, is_orig, pdu),
                           "s7comm_plus", ts, out, _append)

    # --- helpers --------------------------------------------------------------------------
    def _remember(self, table: dict[tuple[Direction, int], Pending], key: tuple[Direction, int], record: Pending,
                  proto: str, ts: float, out: list[Record], emit: Callable[[Pending, list[Record]], None]) -> None:
        """A request waits for its answer; the table is capped, and the requests given up go out unanswered."""
        reused = table.pop(key, None)
        if reused is not None:           # reused reference before an answer: emit the old one unanswered
            emit(reused, out)
        table[key] = record
        if len(table) > MAX_PENDING:
            oldest = next(iter(table))
            out.append(self._anomaly(ts, f"{proto}.too_many_pending", f"over {MAX_PENDING} outstanding requests",
                                     oldest[0]))
            emit(table.pop(oldest), out)

    def _anomalies(self, problems: Problems, direction: Direction, ts: float, out: list[Record]) -> None:
        for name, reason in problems:
            out.append(self._anomaly(ts, name, reason, direction))

    @staticmethod
    def _anomaly(ts: float, name: str, reason: str, direction: Direction | None) -> Anomaly:
        return Anomaly(ts, name.split(".", 1)[0], name, reason, direction)


def _append(record: S7PlusRecord, out: list[Record]) -> None:
    out.append(record)


def _what(event: Event) -> str:
    """What a framing event carried, for a fault's reason."""
    if isinstance(event, bytes):
        return {S7_ID: "S7comm PDU", s7plus.PROTOCOL_ID: "S7comm-plus PDU"}.get(event[0] if event else -1,
                                                                               "COTP data")
    return "COTP TPDU" if isinstance(event, cotp.CotpPdu) else "COTP framing problem"
