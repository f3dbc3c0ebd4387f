"""The S7 stream dissector: TPKT/COTP framing, S7comm and S7comm-plus, request/response pairing.

Per flow it keeps: one :class:`Framer` per direction, the outstanding S7comm
requests keyed by (direction, PDU reference), the outstanding S7comm-plus
requests keyed by (direction, sequence number), and partial fragmented
User-Data (SZL) answers.  All are capped; overflow yields an anomaly.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any

from otsensor.dissectors.base import Anomaly, Category, Direction, Dissector, Op, Record
from otsensor.dissectors.s7comm import cotp, s7plus
from otsensor.dissectors.s7comm.builders import (
    build_s7_records,
    build_szl_record,
    plus_record,
)
from otsensor.dissectors.s7comm.constants import (
    COTP_DISCONNECT_REASONS,
    COTP_PDU_TYPES,
    G_CPU,
    ROSCTR_JOB,
    ROSCTR_USERDATA,
    SUB_READ_SZL,
    TSAP_CONNECTION_TYPES,
    hexcode,
    name_of,
)
from otsensor.dissectors.s7comm.framing import Framer
from otsensor.dissectors.s7comm.records import CotpRecord
from otsensor.dissectors.s7comm.s7 import PROTOCOL_ID as S7_ID
from otsensor.dissectors.s7comm.s7 import S7Pdu, parse_header, parse_pdu
from otsensor.dissectors.s7comm.userdata import TYPE_PUSH, decode_content

MAX_PENDING = 500
MAX_FRAGMENTED = 16
MAX_FRAGMENT_BYTES = 64 * 1024
MAX_UNCONFIRMED = 4096     # bytes without one valid TPKT/COTP frame before the flow is rejected as not S7


def _other(direction: Direction) -> Direction:
    return Direction.RESP if direction == Direction.ORIG else Direction.ORIG


class S7Dissector(Dissector):
    name = "s7comm"

    def __init__(self, shared: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.framers = {Direction.ORIG: Framer(), Direction.RESP: Framer()}
        self.pending: OrderedDict[tuple[Direction, int], tuple[float, S7Pdu]] = OrderedDict()
        self.plus_pending: OrderedDict[tuple[Direction, int], tuple[float, s7plus.PlusPdu]] = OrderedDict()
        self.plus_continuation = {Direction.ORIG: False, Direction.RESP: False}
        # (response direction, group, sub-function) -> (first ts, request, first response, payload parts, size)
        self.fragments: OrderedDict[tuple[Direction, int, int], list[Any]] = OrderedDict()
        self.unit: int | None = None
        self.unconfirmed_bytes = 0

    # --- contract -------------------------------------------------------------------------
    def feed(self, data: bytes, direction: Direction, ts: float) -> list[Record]:
        out: list[Record] = []
        try:
            for event in self.framers[direction].push(data):
                self._event(event, direction, ts, out)
        except Exception as exc:  # noqa: BLE001 - last line of defence: a bug must not stop the sensor
            self.framers[direction].lose()
            out.append(self._anomaly(ts, "s7comm.decoder_error", f"{type(exc).__name__}: {exc}", direction))
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
                out.append(self._anomaly(ts, "cotp.truncated_stream", f"{len(framer.buf)} bytes of an incomplete frame", direction))
        for key in list(self.fragments):
            self._flush_fragment(key, ts, out)
        for (direction, _ref), (req_ts, req) in self.pending.items():
            out.extend(build_s7_records(req_ts, direction, req, None, self.unit))
        for (direction, _seq), (req_ts, req) in self.plus_pending.items():
            out.append(plus_record(req_ts, direction, req, None))
        self.pending.clear()
        self.plus_pending.clear()
        return out

    # --- events ---------------------------------------------------------------------------
    def _event(self, event: tuple[Any, ...], direction: Direction, ts: float, out: list[Record]) -> None:
        kind = event[0]
        if kind == "anomaly":
            if not self.framers[direction].synced:
                # framing noise before this direction's first valid frame: a stream picked up
                # mid-connection (keep-alive byte, partial frame) or not S7 at all
                return
            out.append(self._anomaly(ts, event[1], event[2], direction))
        elif kind == "cotp":
            self.confirmed = True
            out.append(self._cotp_record(event[1], direction, ts))
        elif kind == "tsdu":
            self._tsdu(event[1], direction, ts, out)

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
        calling = cotp.tsap_value(pdu.params, cotp.CALLING)
        called = cotp.tsap_value(pdu.params, cotp.CALLED)
        ctype, rack, slot = cotp.rack_slot(called)
        facts = None
        if pdu.code == cotp.CR and rack is not None:
            self.unit = (rack << 5) | slot
            facts = {"rack": rack, "slot": slot}
        return CotpRecord(
            ts=ts, is_orig=direction == Direction.ORIG, pdu_code=hexcode(pdu.code), pdu_name=COTP_PDU_TYPES[pdu.code],
            src_ref=pdu.src_ref, dst_ref=pdu.dst_ref,
            calling_tsap=None if calling is None else f"0x{calling:04x}",
            called_tsap=None if called is None else f"0x{called:04x}",
            connection_type=None if ctype is None else name_of(TSAP_CONNECTION_TYPES, ctype),
            rack=rack, slot=slot, tpdu_size=cotp.tpdu_size(pdu.params),
            disconnect_reason=None if pdu.reason is None else name_of(COTP_DISCONNECT_REASONS, pdu.reason),
            operation=Op(protocol="cotp", function=COTP_PDU_TYPES[pdu.code], category=Category.SESSION, unit=self.unit),
            facts=facts,
        )

    # --- S7comm ---------------------------------------------------------------------------
    def _s7(self, tsdu: bytes, direction: Direction, ts: float, out: list[Record]) -> None:
        try:
            head = parse_header(tsdu)
        except ValueError as exc:
            out.append(self._anomaly(ts, "s7comm.truncated_pdu", str(exc), direction))
            return
        self.confirmed = True
        is_request = head.rosctr == ROSCTR_JOB or (
            head.rosctr == ROSCTR_USERDATA and len(head.param) > 5 and head.param[5] >> 4 in (0x4, TYPE_PUSH))
        key = (_other(direction), head.pdu_ref)
        request = None if is_request else self.pending.pop(key, (None, None))
        req_ts, req = (None, None) if request is None else request
        pdu = parse_pdu(tsdu, req)
        self._anomalies(pdu.problems, direction, ts, out)
        if pdu.userdata is not None:
            self._userdata_content(pdu, direction, ts, req, out)
        if is_request and (pdu.userdata is None or pdu.userdata.type != TYPE_PUSH):
            self._remember(self.pending, (direction, pdu.pdu_ref), (ts, pdu), "s7comm", ts, out)
        elif is_request:
            out.extend(build_s7_records(ts, direction, pdu, None, self.unit))
        elif req is None:
            out.append(self._anomaly(ts, "s7comm.unmatched_response", f"PDU reference {pdu.pdu_ref}", direction))
            out.extend(build_s7_records(ts, _other(direction), None, pdu, self.unit))
        else:
            out.extend(build_s7_records(req_ts, _other(direction), req, pdu, self.unit))

    def _userdata_content(self, pdu: S7Pdu, direction: Direction, ts: float, req: S7Pdu | None,
                          out: list[Record]) -> None:
        """Decode user-data content; SZL answers split over several responses are reassembled first."""
        ud = pdu.userdata
        problems: list[tuple[str, str]] = []
        frag_key = (direction, ud.group, ud.subfunction)
        if ud.is_request or ud.type == TYPE_PUSH:
            decode_content(ud, ud.payload, problems)
        elif frag_key in self.fragments:
            entry = self.fragments[frag_key]
            entry[3].append(ud.payload)
            entry[4] += len(ud.payload)
            if entry[4] > MAX_FRAGMENT_BYTES:
                problems.append(("s7comm.fragment_overflow", f"fragmented answer over {MAX_FRAGMENT_BYTES} bytes"))
                del self.fragments[frag_key]
            elif ud.last_data_unit:
                self._flush_fragment(frag_key, ts, out)
        elif not ud.last_data_unit:
            self.fragments[frag_key] = [ts, req, pdu, [ud.payload], len(ud.payload)]
            if len(self.fragments) > MAX_FRAGMENTED:
                oldest = next(iter(self.fragments))
                problems.append(("s7comm.fragment_overflow", "too many fragmented answers in progress"))
                self._flush_fragment(oldest, ts, out)
        else:
            decode_content(ud, ud.payload, problems)
            self._szl_record(ts, direction, req, pdu, out)
        self._anomalies(problems, direction, ts, out)

    def _flush_fragment(self, key: tuple[Direction, int, int], ts: float, out: list[Record]) -> None:
        _first_ts, req, first, parts, _size = self.fragments.pop(key)
        problems: list[tuple[str, str]] = []
        decode_content(first.userdata, b"".join(parts), problems)
        self._anomalies(problems, key[0], ts, out)
        self._szl_record(ts, key[0], req, first, out)

    def _szl_record(self, ts: float, resp_dir: Direction, req: S7Pdu | None, resp: S7Pdu, out: list[Record]) -> None:
        ud = resp.userdata
        if ud.group == G_CPU and ud.subfunction == SUB_READ_SZL:
            out.append(build_szl_record(ts, _other(resp_dir), req, resp))

    # --- S7comm-plus ----------------------------------------------------------------------
    def _plus(self, tsdu: bytes, direction: Direction, ts: float, out: list[Record]) -> None:
        try:
            pdu = s7plus.parse(tsdu, self.plus_continuation[direction])
        except ValueError as exc:
            out.append(self._anomaly(ts, "s7comm_plus.truncated_pdu", str(exc), direction))
            return
        self.confirmed = True
        self.plus_continuation[direction] = not pdu.last_fragment
        self._anomalies(pdu.problems, direction, ts, out)
        if pdu.continuation:
            return
        if pdu.sequence is None or pdu.opcode not in (s7plus.PLUS_OP_REQUEST, s7plus.PLUS_OP_RESPONSE,
                                                       s7plus.PLUS_OP_RESPONSE2):
            out.append(plus_record(ts, direction, pdu, None))
        elif s7plus.is_response(pdu):
            entry = self.plus_pending.pop((_other(direction), pdu.sequence), None)
            if entry is None:
                out.append(self._anomaly(ts, "s7comm_plus.unmatched_response", f"sequence {pdu.sequence}", direction))
                out.append(plus_record(ts, direction, pdu, None))
            else:
                out.append(plus_record(entry[0], _other(direction), entry[1], pdu))
        else:
            self._remember(self.plus_pending, (direction, pdu.sequence), (ts, pdu), "s7comm_plus", ts, out)

    # --- helpers --------------------------------------------------------------------------
    def _remember(self, table: OrderedDict, key: Any, value: Any, proto: str, ts: float, out: list[Record]) -> None:
        if key in table:             # reused reference before an answer: emit the old one unanswered
            self._emit_unanswered(table, key, proto, out)
        table[key] = value
        if len(table) > MAX_PENDING:
            oldest = next(iter(table))
            out.append(self._anomaly(ts, f"{proto}.too_many_pending", f"over {MAX_PENDING} outstanding requests", oldest[0]))
            self._emit_unanswered(table, oldest, proto, out)

    def _emit_unanswered(self, table: OrderedDict, key: Any, proto: str, out: list[Record]) -> None:
        req_ts, req = table.pop(key)
        if proto == "s7comm":
            out.extend(build_s7_records(req_ts, key[0], req, None, self.unit))
        else:
            out.append(plus_record(req_ts, key[0], req, None))

    def _anomalies(self, problems: list[tuple[str, str]], direction: Direction, ts: float, out: list[Record]) -> None:
        for name, reason in problems:
            out.append(self._anomaly(ts, name, reason, direction))

    @staticmethod
    def _anomaly(ts: float, name: str, reason: str, direction: Direction | None) -> Anomaly:
        return Anomaly(ts=ts, protocol=name.split(".", 1)[0], name=name, reason=reason, direction=direction)
