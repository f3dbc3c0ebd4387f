"""Turn parsed request/response PDUs into records (with their Op and identity facts)."""
from __future__ import annotations

from typing import Any

from otsensor.dissectors.base import Direction, Record
from otsensor.dissectors.s7comm import ops, s7plus
from otsensor.dissectors.s7comm.constants import (
    BLOCK_TRANSFER_FUNCTIONS,
    ERROR_CLASSES,
    ERROR_CODES,
    FUNCTIONS,
    PLUS_FUNCTIONS,
    PLUS_OPCODES,
    RETURN_CODES,
    RETURN_SUCCESS,
    ROSCTR,
    hexcode,
    name_of,
)
from otsensor.dissectors.s7comm.records import S7commRecord, S7PlusRecord, S7ReadSzlRecord, S7UploadDownloadRecord
from otsensor.dissectors.s7comm.s7 import S7Pdu
from otsensor.dissectors.s7comm.szl import szl_id_name

MAX_RECORD_ITEMS = 256
IDENTITY_KEYS = {
    "order_number": "order_number", "module_name": "module_name", "serial_number": "serial_number",
    "firmware_version": "revision", "hardware_version": "hardware_revision", "plant_id": "plant_id",
    "station_name": "station_name", "copyright": "copyright", "module_type": "model",
    "cpu_state": "cpu_state", "protection_level": "protection_level", "mode_switch": "mode_switch",
    "program_checksum": "program_checksum", "hw_config_checksum": "hw_config_checksum",
}


def _merge_items(req: S7Pdu | None, resp: S7Pdu | None) -> list[dict[str, Any]]:
    reqs = (req.items or (req.userdata.items if req.userdata is not None else [])) if req is not None else []
    resps = resp.items if resp is not None else []
    merged = []
    for i in range(max(len(reqs), len(resps))):
        item = dict(reqs[i]) if i < len(reqs) else {}
        if i < len(resps):
            item.update(resps[i])
        merged.append(item)
    return merged


def _extra_fields(req: S7Pdu | None, resp: S7Pdu | None) -> dict[str, Any]:
    """Function-specific fields of both PDUs, flattened into the record."""
    extra: dict[str, Any] = {}
    for pdu in (req, resp):         # the answer's fields win (negotiated PDU size, upload id) ...
        if pdu is not None:
            extra.update(pdu.fields)
            if pdu.userdata is not None:
                extra.update(pdu.userdata.fields)
    if req is not None and req.userdata is not None:      # ... except the SZL id and index asked for
        extra.update({k: v for k, v in req.userdata.fields.items() if k in ("szl_id", "szl_index")})
    ud = (req or resp).userdata if (req or resp) is not None else None
    if ud is not None:
        extra.update(userdata_type=ud.type, sequence_number=ud.sequence)
        if resp is not None and resp.userdata is not None and resp.userdata.return_code is not None:
            extra.update(return_code=hexcode(resp.userdata.return_code),
                         return_name=name_of(RETURN_CODES, resp.userdata.return_code))
    return extra


def _function_names(main: S7Pdu) -> tuple[str | None, str | None, str | None, str | None]:
    """(function code, name, sub-function code, name): user-data reports group and sub-function."""
    ud = main.userdata
    if ud is not None:
        return hexcode(ud.group, 1), ud.group_name, hexcode(ud.subfunction), ud.subfunction_name
    if main.function is None:
        return None, None, None, None
    return hexcode(main.function), name_of(FUNCTIONS, main.function), None, None


def _error(resp: S7Pdu | None) -> tuple[str | None, str | None, str | None]:
    if resp is None:
        return None, None, None
    cls, code = resp.error_class, resp.error_code
    ud = resp.userdata
    if cls is None and ud is not None and ud.error_code:
        cls, code = ud.error_code >> 8, ud.error_code & 0xFF
    if cls is None:
        return None, None, None
    full = (cls << 8) | (code or 0)
    return name_of(ERROR_CLASSES, cls), hexcode(code), name_of(ERROR_CODES, full, 4)


def _ok(resp: S7Pdu | None, items: list[dict[str, Any]]) -> bool | None:
    if resp is None:
        return None
    if resp.error_class or (resp.userdata is not None and resp.userdata.error_code):
        return False
    if resp.userdata is not None and resp.userdata.return_code not in (None, RETURN_SUCCESS):
        return False
    return all(item.get("return_code", RETURN_SUCCESS) == RETURN_SUCCESS for item in items)


def build_s7_records(ts: float, req_dir: Direction, req: S7Pdu | None, resp: S7Pdu | None,
                     unit: int | None) -> list[Record]:
    main = req if req is not None else resp
    assert main is not None
    ud = main.userdata
    items = _merge_items(req, resp)
    extra = _extra_fields(req, resp)
    func_code, func_name, sub_code, sub_name = _function_names(main)
    err_class, err_code, err_name = _error(resp)
    ok = _ok(resp, items)
    op_name = sub_name if ud is not None else (func_name or "none")
    if extra.get("pi_service"):
        op_name = f"{op_name} {extra['pi_service']}"          # e.g. "PI-Service P_PROGRAM"
    op = ops.s7_op(None if ud is not None else main.function, None if ud is None else ud.group,
                   None if ud is None else ud.subfunction, items, extra, ok, unit, op_name)
    record = S7commRecord(
        ts=ts, is_orig=req_dir == Direction.ORIG, rosctr_code=main.rosctr,
        rosctr_name=name_of(ROSCTR, main.rosctr), pdu_reference=main.pdu_ref,
        function_code=func_code, function_name=func_name, subfunction_code=sub_code, subfunction_name=sub_name,
        error_class=err_class, error_code=err_code, error_name=err_name,
        response_rosctr_code=None if resp is None or req is None else resp.rosctr,
        matched=req is not None and resp is not None, item_count=main.item_count,
        items=tuple(items[:MAX_RECORD_ITEMS]), items_truncated=len(items) > MAX_RECORD_ITEMS,
        extra=extra or None, operation=op,
    )
    out: list[Record] = [record]
    if ud is None and main.function in BLOCK_TRANSFER_FUNCTIONS:
        out.append(_transfer_record(ts, req_dir, main, extra, resp, req is not None and resp is not None, op))
    return out


def _transfer_record(ts: float, req_dir: Direction, main: S7Pdu, extra: dict[str, Any], resp: S7Pdu | None,
                     matched: bool, op: Any) -> S7UploadDownloadRecord:
    _cls, _code, err_name = _error(resp)
    return S7UploadDownloadRecord(
        ts=ts, is_orig=req_dir == Direction.ORIG, rosctr=name_of(ROSCTR, main.rosctr),
        pdu_reference=main.pdu_ref, function_name=name_of(FUNCTIONS, main.function or 0),
        function_status=extra.get("function_status"), session_id=extra.get("session_id"),
        blocklength=extra.get("blocklength"), filename=extra.get("filename"), block_type=extra.get("block_type"),
        block_number=extra.get("block_number"), destination_filesystem=extra.get("destination_filesystem"),
        matched=matched, error_code=err_name if err_name != "No error" else None, operation=None,
    )


def build_szl_record(ts: float, req_dir: Direction, req: S7Pdu | None, resp: S7Pdu) -> S7ReadSzlRecord:
    answer = resp.userdata.fields
    fields: dict[str, Any] = dict(answer)
    if req is not None and req.userdata is not None:
        fields.update(req.userdata.fields)      # the id and index asked for win over the echo
        if answer.get("szl_index") not in (None, fields.get("szl_index")):
            fields["response_szl_index"] = f"0x{answer['szl_index']:04x}"

    szl_id, index = fields.get("szl_id"), fields.get("szl_index")
    ret = resp.userdata.return_code
    facts = {IDENTITY_KEYS[k]: v for k, v in answer.items() if k in IDENTITY_KEYS}
    if facts:
        facts["vendor"] = "Siemens"
    extra = {k: v for k, v in fields.items() if k not in ("szl_id", "szl_index")}
    return S7ReadSzlRecord(
        ts=ts, is_orig=req_dir == Direction.ORIG, pdu_reference=(req or resp).pdu_ref,
        method="Request/Response" if req is not None else "Response",
        szl_id=None if szl_id is None else f"0x{szl_id:04x}",
        szl_id_name=None if szl_id is None else szl_id_name(szl_id),
        szl_index=None if index is None else f"0x{index:04x}",
        return_code=hexcode(ret), return_code_name=None if ret is None else name_of(RETURN_CODES, ret),
        matched=req is not None, extra=extra or None, operation=None, facts=facts or None,
    )


def plus_record(ts: float, req_dir: Direction, req: s7plus.PlusPdu, resp: s7plus.PlusPdu | None) -> S7PlusRecord:
    operation, details = s7plus.recognise(req)
    ok = None   # the answer's return value sits in the (partly undocumented) body: not claimed
    func_name = None if req.function is None else name_of(PLUS_FUNCTIONS, req.function, 4)
    return S7PlusRecord(
        ts=ts, is_orig=req_dir == Direction.ORIG, version=req.version,
        opcode=hexcode(req.opcode), opcode_name=None if req.opcode is None else name_of(PLUS_OPCODES, req.opcode),
        function_code=hexcode(req.function, 4), function_name=func_name,
        sequence_number=req.sequence, session_id=req.session_id, integrity_part=req.integrity_part,
        operation_name=operation, requested_state=details.get("requested_state"),
        object_id=None if "object_id" not in details else f"0x{details['object_id']:08x}",
        attribute_id=details.get("attribute_id"),
        assigned_session_id=s7plus.created_object_id(resp) if resp is not None and operation == "session_setup" else None,
        response_opcode=None if resp is None else hexcode(resp.opcode), matched=resp is not None,
        operation=ops.plus_op(operation, func_name, ok, details),
    )
