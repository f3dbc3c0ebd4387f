"""Modbus/TCP: MBAP framing over a byte stream, request/response pairing, one record per transaction."""
from __future__ import annotations

import struct
from typing import Any, ClassVar

from otsensor.dissectors.base import NO_TAGS, Anomaly, Category, Column, Direction, Dissector, Op, Record, Tag, \
    columns, hexstr
from otsensor.dissectors.modbus import details, pdu
from otsensor.dissectors.modbus import tables as t
from otsensor.dissectors.modbus import zeek

MBAP = struct.Struct(">HHHB")   # transaction id, protocol id, length, unit id
HEADER = 7
MAX_LENGTH = 254                 # unit id + 253-byte PDU (spec 4.1)
# Framing still follows lengths a little past the spec (Schneider Unity FC 90 sends 255), reported as
# modbus.invalid_length; beyond this the header is treated as lost framing.
MAX_FRAMED_LENGTH = 260
MAX_PENDING = 500                # outstanding requests per flow (as Suricata caps Modbus transactions)
REQUEST_TIMEOUT = 30.0           # seconds of capture time before a request counts as unanswered
MAX_ANOMALIES_PER_BUFFER = 16    # resync reports per feed, so a flood of junk cannot flood the log

WRITE_FUNCTIONS = {5, 6, 15, 16, 21, 22, 23}
READ_FUNCTIONS = {1, 2, 3, 4, 20, 23, 24}
DIAG_CATEGORY = {7: Category.DIAGNOSTIC, 8: Category.DIAGNOSTIC, 11: Category.DIAGNOSTIC, 12: Category.DIAGNOSTIC,
                 17: Category.RECON, 43: Category.RECON}


def _detail_columns() -> str:
    """Every column a function-specific detail can write, and its response_ twin where both PDUs carry it."""
    own = " ".join(d.COLUMNS for d in details.DETAILS)
    twins = " ".join(f"response_{c}" for c in ("sub_function:count sub_function_name:string and_mask:count "
                                               "or_mask:count file_records:json mei_type:string mei_code:count "
                                               "read_device_id_code:string mei_data:string data:string").split())
    return f"{own} {twins}"


class ModbusTransaction(Record):
    """One request with its response (or either alone, with ``matched`` false).

    A request waits in the dissector as a transaction without a response; the
    response completes the same object (:meth:`answer`) before it is emitted.
    """

    __slots__ = ("tid", "unit", "func_code", "request", "response", "exception_code", "response_ts", "malformed",
                 "response_func_code")
    LOG: ClassVar[str] = "modbus"
    ZEEK_SCRIPT: ClassVar[Any] = zeek.ModbusScript
    COLUMNS: ClassVar[tuple[Column, ...]] = columns(
        "tid:count unit:count func:string func_code:count func_kind:string address:count quantity:count "
        "request_values:vector[count] response_values:vector[count] exception_code:string matched:bool "
        "pdu_type:string rtt:interval " + _detail_columns() + " malformed:bool response_func_code:count")

    def __init__(self, ts: float, tid: int, unit: int, func_code: int, request: details.Pdu | None,
                 response: details.Pdu | None, exception_code: int | None = None, response_ts: float | None = None,
                 malformed: bool = False, response_func_code: int | None = None) -> None:
        self.ts = ts
        self.tid = tid
        self.unit = unit
        self.func_code = func_code
        self.request = request
        self.response = response
        self.exception_code = exception_code
        self.response_ts = response_ts
        self.malformed = malformed
        self.response_func_code = response_func_code   # the response's own code, when it is not the request's

    def answer(self, response: details.Pdu, exception_code: int | None, ts: float, malformed: bool,
               response_func_code: int | None) -> "ModbusTransaction":
        self.response = response
        self.exception_code = exception_code
        self.response_ts = ts
        self.malformed = malformed or self.malformed
        self.response_func_code = response_func_code
        return self

    @property
    def matched(self) -> bool:
        return self.request is not None and self.response is not None

    @property
    def func(self) -> str:
        return t.function_name(self.func_code)

    def fill_row(self, row: dict[str, Any]) -> None:
        req, resp = self.request, self.response
        matched = req is not None and resp is not None
        row["tid"] = self.tid
        row["unit"] = self.unit
        row["func"] = t.function_name(self.func_code)
        row["func_code"] = self.func_code
        row["func_kind"] = t.function_kind(self.func_code)
        address = req.address if req is not None else None
        quantity = req.quantity if req is not None else None
        if resp is not None:
            address = resp.address if address is None else address
            quantity = resp.quantity if quantity is None else quantity
        row["address"] = address
        row["quantity"] = quantity
        row["request_values"] = req.values if req is not None else None
        row["response_values"] = resp.values if resp is not None else None
        row["exception_code"] = None if self.exception_code is None else t.exception_name(self.exception_code)
        row["matched"] = matched
        row["pdu_type"] = "REQ+RESP" if matched else "REQ" if req is not None else "RESP"
        if self.response_ts is not None:
            row["rtt"] = round(self.response_ts - self.ts, 6)
        if req is not None and req.detail is not None:
            req.detail.fill_row(row)
        if resp is not None and resp.detail is not None:
            _merge_response_detail(row, resp.detail)
        if self.malformed:
            row["malformed"] = True
        if self.response_func_code is not None:
            row["response_func_code"] = self.response_func_code

    def op(self) -> Op:
        fc = self.func_code
        req = self.request
        tags: set[str] = set()
        if fc in WRITE_FUNCTIONS:
            category = Category.WRITE
        elif fc in READ_FUNCTIONS:
            category = Category.READ
        else:
            category = DIAG_CATEGORY.get(fc, Category.OTHER)
        detail = req.detail if req is not None else None
        if fc == 8 and isinstance(detail, details.Diagnostic):
            if detail.sub_function == 1:
                category, tags = Category.CONTROL, {Tag.RESTART}
            elif detail.sub_function == 4:
                category, tags = Category.CONTROL, {Tag.LISTEN_ONLY}
        if fc in (17, 43):
            tags.add(Tag.IDENTITY_READ)
        if self.unit == 0 and req is not None and category == Category.WRITE:
            tags.add(Tag.BROADCAST)
        start = req.address if req is not None else None
        count = req.quantity if req is not None else None
        values = req.values if req is not None and category == Category.WRITE else None
        ok = None if self.response is None else self.exception_code is None
        return Op("modbus", self.func, category, t.FUNCTION_TABLE.get(fc), start, count,
                  tuple(values) if values is not None else None, ok, frozenset(tags) if tags else NO_TAGS, self.unit)

    def extra_ops(self) -> tuple[Op, ...]:
        """FC 23 also reads: its read half, beside the write half that op() describes."""
        detail = self.request.detail if self.request is not None else None
        if not isinstance(detail, details.ReadWrite):
            return ()
        return (Op("modbus", self.func, Category.READ, t.HOLDING_REGISTERS, detail.read_address,
                   detail.read_quantity, None, None if self.response is None else self.exception_code is None,
                   NO_TAGS, self.unit),)

    def zeek_events(self) -> tuple[Any, ...]:
        return zeek.transaction_events(self)

    def identity(self) -> tuple[Direction, dict[str, Any]] | None:
        resp = self.response
        if resp is None or self.exception_code is not None:
            return None
        facts: dict[str, Any] = {}
        detail = resp.detail
        if isinstance(detail, details.Mei) and detail.objects:
            for name, value in detail.objects.items():
                key = DEVICE_ID_KEYS.get(name)
                if key and value:
                    facts[key] = value
        elif isinstance(detail, details.ServerId) and detail.text:
            facts["server_id"] = detail.text
            facts["run_indicator"] = detail.run_indicator
        if not facts:
            return None
        facts["modbus_unit"] = self.unit
        return Direction.RESP, facts


DEVICE_ID_KEYS = {name: key for name, key in t.DEVICE_ID_OBJECTS.values()}


def _merge_response_detail(row: dict[str, Any], detail: details.Detail) -> None:
    """A response's detail columns: beside the request's, or as ``response_<column>`` where both differ."""
    own: dict[str, Any] = {}
    detail.fill_row(own)
    for key, value in own.items():
        if key in row and row[key] != value:
            row[f"response_{key}"] = value
        elif key not in row:
            row[key] = value


class ModbusDissector(Dissector):
    name: ClassVar[str] = "modbus"

    def __init__(self) -> None:
        super().__init__()
        self.buffers = [bytearray(), bytearray()]
        self.synced = [True, True]              # False after a gap until a plausible header is found
        self.pending: list[ModbusTransaction] = []

    # -- the Dissector contract ----------------------------------------------------------------------

    def feed(self, data: bytes, direction: Direction, ts: float) -> list[Record]:
        if self.rejected:
            return []  # not Modbus: later bytes must not be parsed (the pipeline detaches us anyway)
        out: list[Record] = []
        buf = self.buffers[direction]
        if not buf and self.synced[direction] and len(data) >= HEADER + 1:
            # The usual segment: exactly one whole, well-formed ADU and nothing buffered. Parsed in
            # place; the loop below would do the same after copying it through the buffer.
            tid, proto_id, length, unit = MBAP.unpack_from(data)
            if len(data) == HEADER - 1 + length and 2 <= length <= MAX_LENGTH:
                self._frame(bytes(data), tid, proto_id, length, unit, direction, ts, out)
                return out
        buf += data
        resyncs = 0
        while len(buf) >= HEADER + 1:
            if not self.synced[direction]:
                skipped = self._scan(buf)
                if skipped and resyncs < MAX_ANOMALIES_PER_BUFFER:
                    resyncs += 1
                    out.append(self._anomaly(ts, direction, "modbus.resync",
                                             f"skipped {skipped} bytes to the next plausible MBAP header"))
                if len(buf) < HEADER + 1 or not self._plausible(buf):
                    break
                self.synced[direction] = True
            tid, proto_id, length, unit = MBAP.unpack_from(buf)
            if MAX_LENGTH < length <= MAX_FRAMED_LENGTH and proto_id == 0:
                if len(buf) < HEADER - 1 + length:
                    break
                out.append(self._anomaly(ts, direction, "modbus.invalid_length",
                                         f"MBAP length {length} above {MAX_LENGTH} (tid {tid}); decoded anyway"))
            elif not 2 <= length <= MAX_LENGTH:
                if not self.confirmed and proto_id != 0:
                    self.rejected = True  # neither field looks like MBAP: another protocol on this port
                    buf.clear()
                    return out
                out.append(self._anomaly(ts, direction, "modbus.invalid_length",
                                         f"MBAP length {length} (tid {tid})", hexstr(bytes(buf[:HEADER + 1]))))
                self.synced[direction] = False
                del buf[:1]
                continue
            if len(buf) < HEADER - 1 + length:
                break
            frame = bytes(buf[:HEADER - 1 + length])
            del buf[:HEADER - 1 + length]
            self._frame(frame, tid, proto_id, length, unit, direction, ts, out)
        return out

    def gap(self, direction: Direction, nbytes: int, ts: float) -> list[Record]:
        self.buffers[direction].clear()
        self.synced[direction] = False
        return [self._anomaly(ts, direction, "modbus.gap", f"{nbytes} bytes lost; resynchronising on the next header")]

    def close(self, ts: float) -> list[Record]:
        out: list[Record] = []
        for txn in self.pending:
            out.append(txn)
            out.append(self._anomaly(txn.ts, Direction.ORIG, "modbus.unanswered_request",
                                     f"tid {txn.tid} unit {txn.unit} {txn.func} never answered"))
        self.pending.clear()
        for direction in (Direction.ORIG, Direction.RESP):
            rest = self.buffers[direction]
            if rest and self.confirmed:
                out.append(self._anomaly(ts, direction, "modbus.truncated_pdu",
                                         f"stream ended inside an ADU ({len(rest)} bytes)", hexstr(bytes(rest))))
            rest.clear()
        return out

    # -- framing -------------------------------------------------------------------------------------

    @staticmethod
    def _plausible(buf: bytearray, start: int = 0) -> bool:
        _, proto_id, length, _ = MBAP.unpack_from(buf, start)
        return proto_id == 0 and 2 <= length <= MAX_LENGTH and buf[start + HEADER] != 0

    def _scan(self, buf: bytearray) -> int:
        """Drop bytes up to the next plausible MBAP header; returns how many were dropped.

        Without one, keep a short tail that may begin a header split across segments.
        """
        for start in range(0, len(buf) - HEADER):
            if self._plausible(buf, start):
                del buf[:start]
                return start
        dropped = max(0, len(buf) - HEADER)
        del buf[:dropped]
        return dropped

    def _frame(self, frame: bytes, tid: int, proto_id: int, length: int, unit: int,
               direction: Direction, ts: float, out: list[Record]) -> None:
        if proto_id != 0:
            out.append(self._anomaly(ts, direction, "modbus.invalid_protocol_id",
                                     f"protocol id {proto_id} (tid {tid})", hexstr(frame)))
        fc = frame[HEADER]
        body = frame[HEADER + 1:]
        if fc == 0:
            out.append(self._anomaly(ts, direction, "modbus.invalid_function_code", f"function code 0 (tid {tid})"))
            return
        if proto_id == 0:
            self.confirmed = True
        if direction == Direction.ORIG:
            self._request(tid, unit, fc, body, ts, out)
        else:
            self._response(tid, unit, fc, body, ts, out)

    # -- transactions --------------------------------------------------------------------------------

    def _decode(self, fc: int, is_request: bool, body: bytes, req: details.Pdu | None, ts: float,
                direction: Direction, out: list[Record]) -> tuple[details.Pdu, bool]:
        notes: pdu.Notes = []
        try:
            decoded = pdu.decode_body(fc, is_request, body, req, notes)
            bad = False
        except pdu.Malformed as exc:
            decoded, bad = details.Pdu(detail=details.Opaque(body[:256].hex())), True
            decoded.body = body
            notes.append((exc.anomaly, exc.reason))
        for name, reason in notes:
            out.append(self._anomaly(ts, direction, name, f"{t.function_name(fc)}: {reason}"))
        return decoded, bad or bool(notes)

    def _request(self, tid: int, unit: int, fc: int, body: bytes, ts: float, out: list[Record]) -> None:
        decoded, bad = self._decode(fc, True, body, None, ts, Direction.ORIG, out)
        self._expire(ts, out)
        if len(self.pending) >= MAX_PENDING:
            oldest = self.pending.pop(0)
            out.append(oldest)
            out.append(self._anomaly(ts, Direction.ORIG, "modbus.too_many_pending",
                                     f"more than {MAX_PENDING} outstanding requests; tid {oldest.tid} given up"))
        self.pending.append(ModbusTransaction(ts, tid, unit, fc, decoded, None, malformed=bad))

    def _response(self, tid: int, unit: int, fc: int, body: bytes, ts: float, out: list[Record]) -> None:
        base_fc = fc & 0x7F
        is_exception = bool(fc & 0x80)
        req_txn = self._take(tid, unit, base_fc)
        if req_txn is None and is_exception:
            # Some servers answer an undecodable request with 0x80 rather than fc|0x80 (pymodbus 3.16 does):
            # the transaction id and unit still say which request it answers.
            req_txn = self._take(tid, unit, None)
            if req_txn is not None:
                out.append(self._anomaly(ts, Direction.RESP, "modbus.function_mismatch",
                                         f"tid {tid}: exception with function 0x{fc:02x} answers "
                                         f"{t.function_name(req_txn.func_code)}"))
                base_fc = req_txn.func_code
        odd_code = fc & 0x7F if req_txn is not None and req_txn.func_code != fc & 0x7F else None
        exception = None
        bad = False
        if is_exception:
            if len(body) != 1:
                out.append(self._anomaly(ts, Direction.RESP, "modbus.length_mismatch",
                                         f"exception response body of {len(body)} bytes"))
                bad = True
            exception = body[0] if body else 0
            if exception not in t.EXCEPTION_NAMES:
                out.append(self._anomaly(ts, Direction.RESP, "modbus.invalid_exception_code",
                                         f"exception code {exception}"))
            decoded = details.Pdu()
        else:
            decoded, bad = self._decode(base_fc, False, body, req_txn.request if req_txn else None, ts,
                                        Direction.RESP, out)
        if req_txn is None:
            out.append(self._anomaly(ts, Direction.RESP, "modbus.unmatched_response",
                                     f"tid {tid} unit {unit} {t.function_name(base_fc)} without a request"))
            out.append(ModbusTransaction(ts, tid, unit, base_fc, None, decoded, exception, None, bad))
            return
        out.append(req_txn.answer(decoded, exception, ts, bad, odd_code))

    def _take(self, tid: int, unit: int, fc: int | None) -> ModbusTransaction | None:
        for i, txn in enumerate(self.pending):
            if txn.tid == tid and txn.unit == unit and (fc is None or txn.func_code == fc):
                return self.pending.pop(i)
        return None

    def _expire(self, ts: float, out: list[Record]) -> None:
        while self.pending and ts - self.pending[0].ts > REQUEST_TIMEOUT:
            txn = self.pending.pop(0)
            out.append(txn)
            out.append(self._anomaly(txn.ts, Direction.ORIG, "modbus.unanswered_request",
                                     f"tid {txn.tid} unit {txn.unit} {txn.func} not answered within {REQUEST_TIMEOUT:.0f}s"))

    @staticmethod
    def _anomaly(ts: float, direction: Direction, name: str, reason: str, raw: str | None = None) -> Anomaly:
        return Anomaly(ts, "modbus", name, reason, direction, {"bytes": raw} if raw else None)


def probe(data: bytes, direction: Direction) -> bool:
    """Content probe: an MBAP header with protocol id 0, a sane length that fits the segment, a known function."""
    if len(data) < HEADER + 1:
        return False
    _, proto_id, length, _ = MBAP.unpack_from(data)
    fc = data[HEADER] & 0x7F
    return proto_id == 0 and 2 <= length <= MAX_LENGTH and len(data) >= HEADER - 1 + length \
        and fc in t.FUNCTION_NAMES


def sender(data: bytes) -> Direction | None:
    """Request or response, from the shapes that differ (spec 6.1-6.16); None when they look alike."""
    if len(data) < HEADER + 2:
        return None
    length, fc = MBAP.unpack_from(data)[2], data[HEADER]
    if fc & 0x80:
        return Direction.RESP
    if fc in (1, 2, 3, 4):
        if length == 6 and data[HEADER + 1] != 3:
            return Direction.ORIG           # address + quantity; a response of 6 would carry byte count 3
        if data[HEADER + 1] == length - 3:
            return Direction.RESP           # byte count matches what follows
    if fc in (15, 16):
        return Direction.RESP if length == 6 else Direction.ORIG
    return None
