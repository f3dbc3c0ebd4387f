"""Modbus in Zeek's ``modbus.log`` and in ICSNPP's Modbus logs, handled as their scripts handle it.

Zeek's base script (base/protocols/modbus) writes ``modbus.log`` one row per
message.  ICSNPP's (icsnpp-modbus ``scripts/main.zeek``, Zeek 6.1 and
later) keeps a table of requests waiting for their response, and of
responses that came first, by connection and transaction id; for the
functions it handles it writes ``modbus_detailed.log`` once both halves are
there (with the first half's time), and for the others one row per message;
``modbus_mask_write_register.log``, ``modbus_read_write_multiple_registers.log``
and ``modbus_read_device_identification.log`` get one row per message.  Its
quirks are kept here and marked "ICSNPP quirk"; our JSONL keeps the
correct values.
"""
from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

from otsensor.dissectors.base import Direction
from otsensor.dissectors.modbus import details, pdu
from otsensor.dissectors.modbus import tables as t
from otsensor.dissectors.zeek import ZeekConn, ZeekEvent, ZeekLog, ZeekRow, ZeekScript, link_id

if TYPE_CHECKING:
    from otsensor.dissectors.modbus.dissector import ModbusTransaction

MODBUS = ZeekLog("modbus", "tid:count unit:count func:string pdu_type:string exception:string", service="modbus")
DETAILED = ZeekLog("modbus_detailed",
                   "tid:count unit:count func:string address:count quantity:count request_values:vector[count] "
                   "response_values:vector[count] modbus_detailed_link_id:string matched:bool "
                   "request_subfunction_code:string response_subfunction_code:string request_data:string "
                   "response_data:string exception_code:string mei_type:string")
_EXCHANGE = "modbus_detailed_link_id:string tid:count unit:count func:string request_response:string "
MASK_WRITE = ZeekLog("modbus_mask_write_register", _EXCHANGE + "address:count and_mask:count or_mask:count",
                     per_message=True)
READ_WRITE = ZeekLog("modbus_read_write_multiple_registers",
                     _EXCHANGE + "write_start_address:count write_registers:vector[count] read_start_address:count "
                     "read_quantity:count read_registers:vector[count]", per_message=True)
DEVICE_ID = ZeekLog("modbus_read_device_identification",
                    _EXCHANGE + "mei_type:string conformity_level_code:string conformity_level:string "
                    "device_id_code:count object_id_code:string object_id:string object_value:string",
                    per_message=True)

# The functions ICSNPP's script has its own handlers for (handled_modbus_funct_list, Zeek 6.1 and later);
# the others get one generic modbus_detailed row per message.
HANDLED = frozenset({1, 2, 3, 4, 5, 6, 8, 15, 16, 20, 21, 22, 23, 24, 43})
MEI_DEVICE_ID, MEI_CANOPEN = 0x0E, 0x0D
REQUEST, RESPONSE = "request", "response"


def transaction_events(txn: ModbusTransaction) -> tuple[ZeekEvent, ...]:
    """A transaction's messages: the request at its time, the response at its own."""
    events = []
    if txn.request is not None:
        events.append(ZeekEvent(txn.ts, Direction.ORIG, REQUEST, txn))
    if txn.response is not None:
        ts = txn.response_ts if txn.request is not None and txn.response_ts is not None else txn.ts
        events.append(ZeekEvent(ts, Direction.RESP, RESPONSE, txn))
    return tuple(events)


def zeek_func(code: int) -> str:
    """Zeek's build_func: the function's name, ``_EXCEPTION`` appended for an exception response."""
    if code & 0x7F not in t.FUNCTION_NAMES and code & 0x7F not in t.VENDOR_FUNCTION_NAMES or code < 0x80:
        return t.function_name(code)
    return t.function_name(code & 0x7F) + "_EXCEPTION"


def _pdu_type(conn: ZeekConn, direction: Direction) -> str:
    """Zeek's pdu_type: REQ for what its originator sent."""
    return "REQ" if conn.is_orig(direction) else "RESP"


def _parsed(p: details.Pdu | None, code: int) -> bool:
    """Whether Zeek's parser raises the function's event for this PDU (a body too short for its fixed fields
    makes it give up on the PDU)."""
    return p is not None and not (code in pdu.DECODERS and isinstance(p.detail, details.Opaque))


class ModbusScript(ZeekScript):
    """base/protocols/modbus and icsnpp-modbus, one instance per run."""

    LOGS = (MODBUS, DETAILED, MASK_WRITE, READ_WRITE, DEVICE_ID)

    def __init__(self) -> None:
        # ICSNPP's modbus_requests and modbus_responses: connection -> tid -> the pending row
        self.requests: dict[str, dict[int, dict[str, Any]]] = {}
        self.responses: dict[str, dict[int, dict[str, Any]]] = {}

    def event(self, conn: ZeekConn, event: ZeekEvent) -> list[ZeekRow]:
        txn: ModbusTransaction = event.data
        if event.kind == REQUEST:
            return self._request(conn, event.ts, txn)
        return self._response(conn, event.ts, txn)

    def removed(self, conn: ZeekConn, ts: float) -> list[ZeekRow]:
        """ICSNPP quirk: any connection's removal writes every connection's pending rows, matched F."""
        rows = []
        for table, direction in ((self.requests, Direction.ORIG), (self.responses, Direction.RESP)):
            for pending in table.values():
                for values in pending.values():
                    ts0, owner = values.pop("_ts"), values.pop("_conn")
                    rows.append(ZeekRow(DETAILED, ts0, {**values, "matched": False}, direction, owner))
            table.clear()
        return rows

    # -- requests ---------------------------------------------------------------------------------------------

    def _request(self, conn: ZeekConn, ts: float, txn: ModbusTransaction) -> list[ZeekRow]:
        code, req = txn.func_code, txn.request
        assert req is not None
        head = {"tid": txn.tid, "unit": txn.unit}
        rows = [ZeekRow(MODBUS, ts, {**head, "func": zeek_func(code), "pdu_type": _pdu_type(conn, Direction.ORIG)},
                        Direction.ORIG)]
        if code not in HANDLED:
            rows.append(ZeekRow(DETAILED, ts, {**head, "func": t.function_name(code)}, Direction.ORIG))
            return rows
        if not _parsed(req, code):
            return rows
        link = link_id("modbus", conn.uid, txn.tid, ts) if code in (22, 23, 43) else ""
        first = self.responses.get(conn.uid, {}).get(txn.tid)
        if first is not None:   # the response came first: this request completes it
            if code == 8:
                return rows   # ICSNPP quirk: appending to its unset request fields fails; the row stays pending
            del self.responses[conn.uid][txn.tid]
            link = first.get("modbus_detailed_link_id") or link
            _complete_response(first, code, req, link)
            ts0, _ = first.pop("_ts"), first.pop("_conn")
            rows.append(ZeekRow(DETAILED, ts0, {**first, "matched": True}, Direction.RESP))
        else:
            values = {"_ts": ts, "_conn": conn, **head, "func": t.function_name(code), **_request_fields(code, req, link)}
            self.requests.setdefault(conn.uid, {})[txn.tid] = values
        rows += _request_messages(code, head, req, link, ts)
        return rows

    # -- responses --------------------------------------------------------------------------------------------

    def _response(self, conn: ZeekConn, ts: float, txn: ModbusTransaction) -> list[ZeekRow]:
        code, resp, exception = txn.func_code, txn.response, txn.exception_code
        assert resp is not None
        head = {"tid": txn.tid, "unit": txn.unit}
        if exception is not None:
            name = t.exception_name(exception)
            # the response's own function code, where it does not echo the request's
            raw = (code if txn.response_func_code is None else txn.response_func_code) | 0x80
            rows = [ZeekRow(MODBUS, ts, {**head, "func": zeek_func(raw), "pdu_type": _pdu_type(conn, Direction.RESP),
                                         "exception": name}, Direction.RESP)]
            return rows + self._exception(conn, ts, txn, name, raw)
        rows = [ZeekRow(MODBUS, ts, {**head, "func": zeek_func(code), "pdu_type": _pdu_type(conn, Direction.RESP)},
                        Direction.RESP)]
        if code not in HANDLED:
            rows.append(ZeekRow(DETAILED, ts, {**head, "func": t.function_name(code)}, Direction.RESP))
            return rows
        if not _parsed(resp, code):
            return rows
        pending = self.requests.get(conn.uid, {}).pop(txn.tid, None)
        if pending is not None:
            link = pending.get("modbus_detailed_link_id") or ""
            _answer(pending, code, resp)
            ts0, _ = pending.pop("_ts"), pending.pop("_conn")
            rows.append(ZeekRow(DETAILED, ts0, {**pending, "matched": True}, Direction.ORIG))
        else:
            link = link_id("modbus", conn.uid, txn.tid, ts) if code == 43 else ""
            values = {"_ts": ts, "_conn": conn, **head, "func": t.function_name(code), **_response_fields(code, resp, link)}
            self.responses.setdefault(conn.uid, {})[txn.tid] = values
        return rows + _response_messages(code, head, resp, link, ts)

    def _exception(self, conn: ZeekConn, ts: float, txn: ModbusTransaction, name: str,
                   raw: int) -> list[ZeekRow]:
        pending = self.requests.get(conn.uid, {}).pop(txn.tid, None)
        if pending is not None:
            ts0, _ = pending.pop("_ts"), pending.pop("_conn")
            return [ZeekRow(DETAILED, ts0, {**pending, "matched": True, "exception_code": name}, Direction.ORIG)]
        return [ZeekRow(DETAILED, ts, {"tid": txn.tid, "unit": txn.unit, "func": zeek_func(raw),
                                       "exception_code": name}, Direction.RESP)]


# -- what each ICSNPP handler sets ---------------------------------------------------------------------------

def _bits(p: details.Pdu) -> list[int]:
    """Every bit of a read-bits response's data bytes, as Zeek's ModbusCoils vector holds them."""
    return list(pdu.bits(p.body[1:1 + p.body[0]] if p.body else b"", 8 * 256))


def _request_fields(code: int, req: details.Pdu, link: str) -> dict[str, Any]:
    """A request handler's new pending row."""
    if code in (1, 2, 3, 4):
        return {"address": req.address, "quantity": req.quantity}
    if code in (5, 6, 15, 16):
        return {"address": req.address, "quantity": len(req.values or ()), "request_values": req.values}
    if code == 24:
        return {"address": req.address}
    if code in (20, 21):
        return {"quantity": len(req.detail.records) if isinstance(req.detail, details.FileRecords) else 0}
    if code == 22:
        return {"address": req.address, "modbus_detailed_link_id": link}
    if code == 23:
        return {"modbus_detailed_link_id": link}
    if code == 8 and isinstance(req.detail, details.Diagnostic):
        return {"request_subfunction_code": t.diagnostic_name(req.detail.sub_function), "request_data": req.body[2:]}
    if code == 43 and req.body:
        return {"mei_type": _mei_name(req.body[0], "invalid encapsulated interface transport mei-(0x{:02x})"),
                "modbus_detailed_link_id": link}
    return {}


def _complete_response(values: dict[str, Any], code: int, req: details.Pdu, link: str) -> None:
    """A request handler completing the response that came first."""
    if code in (1, 2, 3, 4):
        values.update(address=req.address, quantity=req.quantity)
    elif code == 24:
        values["address"] = req.address
    elif code in (5, 6, 15, 16):
        values.update(address=req.address, quantity=len(req.values or ()), request_values=req.values)
    elif code in (20, 21):
        values["quantity"] = len(req.detail.records) if isinstance(req.detail, details.FileRecords) else 0
    elif code == 43 and req.body:
        misc = _mei_name(req.body[0], "invalid encapsulated interface transport mei-(0x{:02x})")
        values["mei_type"] = _joined_mei(values.get("mei_type"), misc)


def _answer(values: dict[str, Any], code: int, resp: details.Pdu) -> None:
    """A response handler completing its pending request's row."""
    if code in (1, 2):
        bits, quantity = _bits(resp), values.get("quantity") or 0
        values["response_values"] = bits[:quantity]
        if len(bits) > quantity:   # the bits after the last one asked for, as ICSNPP's "padding"
            values["response_data"] = ",".join(map(str, bits[quantity:]))
    elif code in (3, 4, 6):
        values["response_values"] = resp.values
    elif code == 5:
        values.update(response_values=resp.values, address=resp.address, quantity=1)
    elif code == 16:
        values.update(quantity=resp.quantity, address=resp.address)
    elif code == 24:
        if resp.values:
            values["response_values"] = resp.values
        values["quantity"] = len(resp.values or ())
    elif code in (20, 21):
        refs = _file_references(code, resp)
        if refs:
            values["response_data"] = refs
    elif code == 8 and isinstance(resp.detail, details.Diagnostic):
        values["response_data"] = resp.body[2:]
        values["response_subfunction_code"] = t.diagnostic_name(resp.detail.sub_function)
    elif code == 43 and resp.body:
        # ICSNPP quirk: "ox" in its name for an unknown MEI type in a response
        misc = _mei_name(resp.body[0], "unknown encapsulated interface transport mei-(ox{:02x})")
        values["mei_type"] = _joined_mei(values.get("mei_type"), misc)


def _response_fields(code: int, resp: details.Pdu, link: str) -> dict[str, Any]:
    """A response handler's new pending row, when no request is waiting."""
    if code in (1, 2):
        bits = _bits(resp)
        return {"quantity": len(bits), "response_values": bits}
    if code in (3, 4):
        return {"quantity": len(resp.values or ()), "response_values": resp.values}
    if code in (5, 6):
        return {"quantity": 1, "address": resp.address, "response_values": resp.values}
    if code in (15, 16):
        return {"quantity": resp.quantity, "address": resp.address}
    if code == 24:
        return {"quantity": len(resp.values or ()), "response_values": resp.values or None}
    if code in (20, 21):
        return {"response_data": _file_references(code, resp) or None}
    if code in (22, 23):
        return {"address": resp.address if code == 22 else None, "modbus_detailed_link_id": link}
    if code == 8 and isinstance(resp.detail, details.Diagnostic):
        return {"response_subfunction_code": t.diagnostic_name(resp.detail.sub_function),
                "response_data": resp.body[2:]}
    if code == 43 and resp.body:
        return {"mei_type": _mei_name(resp.body[0], "unknown encapsulated interface transport mei-(ox{:02x})"),
                "modbus_detailed_link_id": link}
    return {}


# -- the per-message logs ---------------------------------------------------------------------------------------

def _request_messages(code: int, head: dict[str, Any], req: details.Pdu, link: str, ts: float) -> list[ZeekRow]:
    """FC 22, FC 23 and Read Device Identification requests, in their own logs."""
    base = {**head, "func": t.function_name(code), "modbus_detailed_link_id": link, "request_response": "REQUEST"}
    if code == 22 and isinstance(req.detail, details.MaskWrite):
        return [ZeekRow(MASK_WRITE, ts, {**base, "address": req.address, "and_mask": req.detail.and_mask,
                                         "or_mask": req.detail.or_mask}, Direction.ORIG)]
    if code == 23 and isinstance(req.detail, details.ReadWrite):
        return [ZeekRow(READ_WRITE, ts, {**base, "read_start_address": req.detail.read_address,
                                         "read_quantity": req.detail.read_quantity,
                                         "write_start_address": req.detail.write_address,
                                         "write_registers": req.values}, Direction.ORIG)]
    if code == 43 and req.body[:1] == bytes([MEI_DEVICE_ID]) and len(req.body) >= 3:
        data = req.body[1:]
        return [ZeekRow(DEVICE_ID, ts, {
            **base, "mei_type": "READ-DEVICE-IDENTIFICATION", "device_id_code": data[0],
            # ICSNPP quirk: the object id is named from the table of read device id codes
            "object_id_code": f"0x{data[1]:02x}", "object_id": t.ICSNPP_READ_OBJECT_IDS.get(data[1], "Unknown")},
            Direction.ORIG)]
    return []


def _response_messages(code: int, head: dict[str, Any], resp: details.Pdu, link: str, ts: float) -> list[ZeekRow]:
    base = {**head, "func": t.function_name(code), "modbus_detailed_link_id": link, "request_response": "RESPONSE"}
    if code == 22 and isinstance(resp.detail, details.MaskWrite):
        return [ZeekRow(MASK_WRITE, ts, {**base, "address": resp.address, "and_mask": resp.detail.and_mask,
                                         "or_mask": resp.detail.or_mask}, Direction.RESP)]
    if code == 23:
        return [ZeekRow(READ_WRITE, ts, {**base, "read_registers": resp.values}, Direction.RESP)]
    if code == 43 and resp.body[:1] == bytes([MEI_DEVICE_ID]):
        return _device_objects(base, resp.body[1:], ts)
    return []


def _device_objects(base: dict[str, Any], data: bytes, ts: float) -> list[ZeekRow]:
    """One row per object of a Read Device Identification response, as ICSNPP walks them."""
    if len(data) < 5:
        return []
    base = {**base, "mei_type": "READ-DEVICE-IDENTIFICATION", "device_id_code": data[0],
            "conformity_level_code": f"0x{data[1]:02x}",
            "conformity_level": t.ICSNPP_CONFORMITY_LEVELS.get(data[1], "Unknown")}
    rows, index = [], 5
    for _ in range(data[4]):
        if index + 2 > len(data):
            break   # the script fails on a short object list; the rows written so far stay
        obj, length = data[index], data[index + 1]
        value = data[index + 2:index + 2 + length]
        index += 2 + length
        rows.append(ZeekRow(DEVICE_ID, ts, {**base, "object_id_code": f"0x{obj:02x}",
                                            "object_id": t.ICSNPP_OBJECT_IDS.get(obj, "Unknown"),
                                            "object_value": value}, Direction.RESP))
    return rows


def _file_references(code: int, resp: details.Pdu) -> bytes:
    """ICSNPP's response_data for FC 20/21: each reference of the response as Zeek's fmt("%s") prints the
    record Zeek's parser made of it, joined by ' | '."""
    data = resp.body[1:1 + resp.body[0]] if resp.body else b""
    parts, off = [], 0
    while code == 20 and off + 2 <= len(data):    # ModbusFileRecordResponse: file_len, ref_type, record_data
        length = data[off]
        parts.append(b"[file_len=%d, ref_type=%d, record_data=%s]" % (length, data[off + 1],
                                                                      data[off + 2:off + 2 + length]))
        off += 2 + length
    while code == 21 and off + 7 <= len(data):    # ModbusFileReference: a sub-request with its data
        ref, file_no, rec_no, rec_len = data[off], *struct.unpack_from(">HHH", data, off + 1)
        parts.append(b"[ref_type=%d, file_num=%d, record_num=%d, record_len=%d, record_data=%s]" % (
            ref, file_no, rec_no, rec_len, data[off + 7:off + 7 + 2 * rec_len]))
        off += 7 + 2 * rec_len
    return b" | ".join(parts)


def _mei_name(mei: int, unknown: str) -> str:
    if mei == MEI_CANOPEN:
        return "CANopen"
    if mei == MEI_DEVICE_ID:
        return "Read Device Identification"
    return unknown.format(mei)


def _joined_mei(previous: str | None, misc: str) -> str:
    return misc if not previous else previous if previous == misc else f"{previous} and {misc}"
