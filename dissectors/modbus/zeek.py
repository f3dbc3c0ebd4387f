"""A Modbus transaction in Zeek's ``modbus.log`` and in ICSNPP's Modbus logs, row for row as they write them.

Zeek's base script writes ``modbus.log`` one row per message.  ICSNPP
(icsnpp-modbus ``scripts/main.zeek``, Zeek 6.1 and later) writes
``modbus_detailed.log`` once per transaction when the response arrives,
with the request's time, for the functions it handles; one row per message
for the others; ``modbus_mask_write_register.log``,
``modbus_read_write_multiple_registers.log`` and
``modbus_read_device_identification.log`` one row per message.  The rules
below follow that script's event handlers; its quirks are kept and marked
"ICSNPP quirk" (our JSONL keeps the correct values).
"""
from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

from otsensor.dissectors.base import Direction
from otsensor.dissectors.modbus import pdu
from otsensor.dissectors.modbus import tables as t
from otsensor.dissectors.zeek import AT_ANY_REMOVAL, ZeekLog, ZeekRow, link_id

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
LOGS = (MODBUS, DETAILED, MASK_WRITE, READ_WRITE, DEVICE_ID)

# The functions ICSNPP's script has its own handlers for (handled_modbus_funct_list, Zeek 6.1 and later);
# the others get one generic modbus_detailed row per message.
HANDLED = frozenset({1, 2, 3, 4, 5, 6, 8, 15, 16, 20, 21, 22, 23, 24, 43})
MEI_DEVICE_ID, MEI_CANOPEN = 0x0E, 0x0D


def zeek_func(code: int) -> str:
    """Zeek's build_func: the function's name, ``_EXCEPTION`` appended for an exception response."""
    if code in t.FUNCTION_NAMES or code & 0x7F not in t.FUNCTION_NAMES:
        return t.function_name(code)
    return t.function_name(code & 0x7F) + ("_EXCEPTION" if code & 0x80 else "")


def transaction_rows(txn: "ModbusTransaction") -> tuple[ZeekRow, ...]:
    req, resp = txn.request, txn.response
    req_ts = txn.ts if req is not None else None
    resp_ts = (txn.response_ts if req is not None else txn.ts) if resp is not None else None
    exception = txn.exception_code
    resp_code = txn.func_code | 0x80 if exception is not None else txn.func_code
    rows: list[ZeekRow] = []
    head = {"tid": txn.tid, "unit": txn.unit}
    if req_ts is not None:
        rows.append(ZeekRow(MODBUS, req_ts, {**head, "func": zeek_func(txn.func_code), "pdu_type": "REQ"},
                            Direction.ORIG))
    if resp_ts is not None:
        rows.append(ZeekRow(MODBUS, resp_ts, {**head, "func": zeek_func(resp_code), "pdu_type": "RESP",
                                              "exception": None if exception is None else t.exception_name(exception)},
                            Direction.RESP))
    rows.extend(_detailed(txn, req_ts, resp_ts, resp_code))
    rows.extend(_message_logs(txn, req_ts, resp_ts))
    return tuple(rows)


def _parsed(p: pdu.Pdu | None, code: int) -> bool:
    """Whether Zeek's parser would have raised the function's event for this PDU (a body too short for its
    fixed fields makes it give up on the PDU)."""
    return p is not None and not (code in pdu.DECODERS and isinstance(p.detail, pdu.Opaque))


def _detailed(txn: "ModbusTransaction", req_ts: float | None, resp_ts: float | None,
              resp_code: int) -> list[ZeekRow]:
    code = txn.func_code
    head: dict[str, Any] = {"tid": txn.tid, "unit": txn.unit}
    if code not in HANDLED:
        rows = []
        if req_ts is not None:
            rows.append(ZeekRow(DETAILED, req_ts, {**head, "func": t.function_name(code)}, Direction.ORIG))
        if resp_ts is not None:
            values = {**head, "func": t.function_name(code)} if txn.exception_code is None else \
                {**head, "func": zeek_func(resp_code), "exception_code": t.exception_name(txn.exception_code)}
            rows.append(ZeekRow(DETAILED, resp_ts, values, Direction.RESP))
        return rows
    req = txn.request if _parsed(txn.request, code) else None
    resp = txn.response if txn.exception_code is not None or _parsed(txn.response, code) else None
    if req is not None and req_ts is not None:
        values = {**head, "func": t.function_name(code), **_request_fields(txn, req)}
        if resp is None or resp_ts is None:
            # ICSNPP quirk: a request never answered is written, matched F, when any connection ends
            values["matched"] = False
            return [ZeekRow(DETAILED, req_ts, values, Direction.ORIG, at=AT_ANY_REMOVAL)]
        if txn.exception_code is not None:
            values["exception_code"] = t.exception_name(txn.exception_code)
        else:
            _answer(values, txn, req, resp)
        values["matched"] = True
        return [ZeekRow(DETAILED, req_ts, values, Direction.ORIG, at=resp_ts)]
    if resp is None or resp_ts is None:
        return []
    if txn.exception_code is not None:
        return [ZeekRow(DETAILED, resp_ts, {**head, "func": zeek_func(resp_code),
                                            "exception_code": t.exception_name(txn.exception_code)}, Direction.RESP)]
    values = {**head, "func": t.function_name(code), **_response_only_fields(txn, resp), "matched": False}
    return [ZeekRow(DETAILED, resp_ts, values, Direction.RESP, at=AT_ANY_REMOVAL)]


def _bits(p: pdu.Pdu) -> list[int]:
    """Every bit of a read-bits response's data bytes, as Zeek's ModbusCoils vector holds them."""
    return list(pdu.bits(p.body[1:1 + p.body[0]] if p.body else b"", 8 * 256))


def _request_fields(txn: "ModbusTransaction", req: pdu.Pdu) -> dict[str, Any]:
    code = txn.func_code
    if code in (1, 2, 3, 4):
        return {"address": req.address, "quantity": req.quantity}
    if code in (5, 6, 15, 16):
        return {"address": req.address, "quantity": len(req.values or ()), "request_values": req.values}
    if code == 24:
        return {"address": req.address}
    if code in (20, 21):
        records = req.detail.records if isinstance(req.detail, pdu.FileRecords) else []
        return {"quantity": len(records)}
    if code == 22:
        return {"address": req.address, "modbus_detailed_link_id": _link(txn)}
    if code == 23:
        return {"modbus_detailed_link_id": _link(txn)}
    if code == 8 and isinstance(req.detail, pdu.Diagnostic):
        return {"request_subfunction_code": _diag_name(req.detail.sub_function), "request_data": req.body[2:]}
    if code == 43 and req.body:
        return {"mei_type": _mei_name(req.body[0], "invalid encapsulated interface transport mei-(0x{:02x})"),
                "modbus_detailed_link_id": _link(txn)}
    return {}


def _answer(values: dict[str, Any], txn: "ModbusTransaction", req: pdu.Pdu, resp: pdu.Pdu) -> None:
    """What each of ICSNPP's response handlers adds to the pending request's row."""
    code = txn.func_code
    if code in (1, 2):
        bits, quantity = _bits(resp), req.quantity or 0
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
    elif code == 8 and isinstance(resp.detail, pdu.Diagnostic):
        values["response_data"] = resp.body[2:]
        values["response_subfunction_code"] = _diag_name(resp.detail.sub_function)
    elif code == 43 and resp.body:
        # ICSNPP quirk: "ox" in its name for an unknown MEI type in a response
        misc = _mei_name(resp.body[0], "unknown encapsulated interface transport mei-(ox{:02x})")
        previous = values.get("mei_type")
        values["mei_type"] = misc if not previous else previous if previous == misc else f"{previous} and {misc}"


def _response_only_fields(txn: "ModbusTransaction", resp: pdu.Pdu) -> dict[str, Any]:
    """A response with no request on record: ICSNPP keeps what the response alone says."""
    code = txn.func_code
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
    if code == 22:
        return {"address": resp.address, "modbus_detailed_link_id": ""}
    if code == 23:
        return {"modbus_detailed_link_id": ""}
    if code == 8 and isinstance(resp.detail, pdu.Diagnostic):
        return {"response_subfunction_code": _diag_name(resp.detail.sub_function), "response_data": resp.body[2:]}
    if code == 43 and resp.body:
        return {"mei_type": _mei_name(resp.body[0], "unknown encapsulated interface transport mei-(ox{:02x})"),
                "modbus_detailed_link_id": _link(txn)}
    return {}


def _message_logs(txn: "ModbusTransaction", req_ts: float | None, resp_ts: float | None) -> list[ZeekRow]:
    """The per-message logs: FC 22, FC 23 and Read Device Identification, request and response alike."""
    code, req, resp = txn.func_code, txn.request, txn.response
    head = {"tid": txn.tid, "unit": txn.unit, "func": t.function_name(code)}
    rows = []
    if req is not None and req_ts is not None and _parsed(req, code):
        link = _link(txn)
        if code == 22 and isinstance(req.detail, pdu.MaskWrite):
            rows.append(ZeekRow(MASK_WRITE, req_ts, {**head, "modbus_detailed_link_id": link,
                                                     "request_response": "REQUEST", "address": req.address,
                                                     "and_mask": req.detail.and_mask, "or_mask": req.detail.or_mask},
                                Direction.ORIG))
        elif code == 23 and isinstance(req.detail, pdu.ReadWrite):
            rows.append(ZeekRow(READ_WRITE, req_ts, {
                **head, "modbus_detailed_link_id": link, "request_response": "REQUEST",
                "read_start_address": req.detail.read_address, "read_quantity": req.detail.read_quantity,
                "write_start_address": req.detail.write_address, "write_registers": req.values}, Direction.ORIG))
        elif code == 43 and req.body[:1] == bytes([MEI_DEVICE_ID]) and len(req.body) >= 3:
            data = req.body[1:]
            rows.append(ZeekRow(DEVICE_ID, req_ts, {
                **head, "modbus_detailed_link_id": link, "request_response": "REQUEST",
                "mei_type": "READ-DEVICE-IDENTIFICATION", "device_id_code": data[0],
                # ICSNPP quirk: the object id is named from the read-device-id-code table
                "object_id_code": f"0x{data[1]:02x}", "object_id": t.ICSNPP_READ_OBJECT_IDS.get(data[1], "Unknown")},
                Direction.ORIG))
    if resp is not None and resp_ts is not None and txn.exception_code is None and _parsed(resp, code):
        link = _link(txn) if req is not None else ""
        if code == 22 and isinstance(resp.detail, pdu.MaskWrite):
            rows.append(ZeekRow(MASK_WRITE, resp_ts, {**head, "modbus_detailed_link_id": link,
                                                      "request_response": "RESPONSE", "address": resp.address,
                                                      "and_mask": resp.detail.and_mask,
                                                      "or_mask": resp.detail.or_mask}, Direction.RESP))
        elif code == 23:
            rows.append(ZeekRow(READ_WRITE, resp_ts, {**head, "modbus_detailed_link_id": link,
                                                      "request_response": "RESPONSE", "read_registers": resp.values},
                                Direction.RESP))
        elif code == 43 and resp.body[:1] == bytes([MEI_DEVICE_ID]):
            link = _link(txn)   # a response alone draws a new id in ICSNPP
            rows.extend(_device_objects(head, link, resp.body[1:], resp_ts))
    return rows


def _device_objects(head: dict[str, Any], link: str, data: bytes, ts: float) -> list[ZeekRow]:
    """One row per object of a Read Device Identification response, as ICSNPP walks them."""
    if len(data) < 5:
        return []
    base = {**head, "modbus_detailed_link_id": link, "request_response": "RESPONSE",
            "mei_type": "READ-DEVICE-IDENTIFICATION", "device_id_code": data[0],
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


def _file_references(code: int, resp: pdu.Pdu) -> bytes:
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


def _link(txn: "ModbusTransaction") -> str:
    return link_id("modbus", txn.tid, txn.unit, txn.func_code, txn.ts)


def _diag_name(sub: int) -> str:
    return t.diagnostic_name(sub)


def _mei_name(mei: int, unknown: str) -> str:
    if mei == MEI_CANOPEN:
        return "CANopen"
    if mei == MEI_DEVICE_ID:
        return "Read Device Identification"
    return unknown.format(mei)
