"""S7comm (protocol id 0x32) PDU parsing: header, Job/Ack_Data parameters and data.

``parse_pdu`` turns one COTP TSDU into an :class:`S7Pdu`; malformed parts are
reported in ``problems`` as (anomaly name, reason) and parsing keeps what it
could decode.  User-Data is decoded in :mod:`dissectors.s7comm.userdata`.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from otsensor.dissectors.s7comm import blocks
from otsensor.dissectors.s7comm.constants import (
    AREA_DB,
    AREA_DI,
    AREAS,
    DATA_TRANSPORT_SIZES,
    F_PI_SERVICE,
    F_PLC_STOP,
    F_READ_VAR,
    F_SETUP,
    F_WRITE_VAR,
    FUNCTIONS,
    LENGTH_IN_BITS,
    RETURN_CODES,
    ROSCTR,
    ROSCTR_ACK,
    ROSCTR_ACK_DATA,
    ROSCTR_JOB,
    ROSCTR_USERDATA,
    SYNTAX_IDS,
    SYNTAX_S7ANY,
    TRANSPORT_SIZES,
    name_of,
)
from otsensor.dissectors.s7comm.values import decode_values

PROTOCOL_ID = 0x32
HEADER = struct.Struct(">BBHHHH")        # protocol id, ROSCTR, redundancy id, PDU ref, param len, data len
ERROR = struct.Struct(">BB")             # Ack / Ack_Data only: error class, error code
S7ANY = struct.Struct(">BHHB")           # transport size, count, DB number, area (+3-byte address)
DATA_ITEM = struct.Struct(">BBH")        # return code, data transport size, length
SETUP = struct.Struct(">BBHHH")          # function, reserved, max AmQ calling, max AmQ called, PDU length
NUMBERED_AREAS = frozenset({0x1C, 0x1D, 0x1E, 0x1F})   # C, T, IEC C, IEC T
MAX_ITEMS = 256                          # S7 allows far fewer; anything above is hostile


@dataclass(slots=True)
class S7Pdu:
    rosctr: int
    pdu_ref: int
    error_class: int | None = None
    error_code: int | None = None
    function: int | None = None
    item_count: int | None = None
    items: list[dict[str, Any]] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)
    param: bytes = b""
    data: bytes = b""
    userdata: Any = None                 # userdata.UserData for ROSCTR 7
    problems: list[tuple[str, str]] = field(default_factory=list)

    def problem(self, name: str, reason: str) -> None:
        self.problems.append((name, reason))


def parse_header(tsdu: bytes) -> S7Pdu:
    """Header and the split into parameter and data parts; raises ValueError if unusable."""
    if len(tsdu) < HEADER.size:
        raise ValueError(f"S7comm header needs {HEADER.size} bytes, got {len(tsdu)}")
    proto, rosctr, _redundancy, pdu_ref, plen, dlen = HEADER.unpack_from(tsdu)
    if proto != PROTOCOL_ID:
        raise ValueError(f"protocol id 0x{proto:02x} is not S7comm")
    pdu = S7Pdu(rosctr=rosctr, pdu_ref=pdu_ref)
    offset = HEADER.size
    if rosctr in (ROSCTR_ACK, ROSCTR_ACK_DATA):
        if len(tsdu) < offset + ERROR.size:
            raise ValueError("Ack header truncated before error class/code")
        pdu.error_class, pdu.error_code = ERROR.unpack_from(tsdu, offset)
        offset += ERROR.size
    if rosctr not in ROSCTR:
        pdu.problem("s7comm.unknown_rosctr", f"ROSCTR 0x{rosctr:02x}")
    end = offset + plen + dlen
    if end > len(tsdu):
        pdu.problem("s7comm.truncated_pdu", f"parameter {plen} + data {dlen} bytes declared, {len(tsdu) - offset} present")
    elif end < len(tsdu):
        pdu.problem("s7comm.bad_length", f"{len(tsdu) - end} bytes after the declared parameter and data parts")
    pdu.param = bytes(tsdu[offset: offset + plen])
    pdu.data = bytes(tsdu[offset + plen: end])
    return pdu


def parse_pdu(tsdu: bytes, request: S7Pdu | None = None) -> S7Pdu:
    """Parse one S7comm PDU; ``request`` is the paired Job, needed to decode Ack_Data values."""
    pdu = parse_header(tsdu)
    if pdu.rosctr == ROSCTR_USERDATA:
        from otsensor.dissectors.s7comm.userdata import parse_userdata  # local: userdata imports this module

        parse_userdata(pdu)
        return pdu
    if not pdu.param:
        return pdu
    pdu.function = pdu.param[0]
    if pdu.function not in FUNCTIONS:
        pdu.problem("s7comm.unknown_function", f"function 0x{pdu.function:02x}")
    decoder = _DECODERS.get(pdu.function)
    if decoder is not None:
        try:
            decoder(pdu, request)
        except (struct.error, IndexError, ValueError) as exc:
            pdu.problem(_BAD_PART.get(pdu.function, "s7comm.truncated_pdu"), f"{name_of(FUNCTIONS, pdu.function)}: {exc}")
            if pdu.function == F_PI_SERVICE and pdu.rosctr == ROSCTR_JOB:
                _pi_fallback(pdu)
    return pdu


def _pi_fallback(pdu: S7Pdu) -> None:
    """A PI job whose layout is off (snap7's _DELE) still names its service at the end: keep that."""
    name = blocks.fallback_service_name(pdu.param)
    if name is not None:
        pdu.fields.update(pi_service=name, pi_service_name=blocks.PI_SERVICES[name], pi_parse="service name only")


# --- Setup communication ------------------------------------------------------------------
def _setup(pdu: S7Pdu, _request: S7Pdu | None) -> None:
    _func, _res, calling, called, pdu_len = SETUP.unpack_from(pdu.param)
    pdu.fields.update(max_amq_calling=calling, max_amq_called=called, pdu_length=pdu_len)


# --- Read Var / Write Var -----------------------------------------------------------------
def _var(pdu: S7Pdu, request: S7Pdu | None) -> None:
    if len(pdu.param) < 2:
        raise ValueError("item count missing")
    pdu.item_count = pdu.param[1]
    if pdu.rosctr == ROSCTR_JOB:
        pdu.items = parse_var_specs(pdu.param, 2, pdu.item_count, pdu.problems)
        if pdu.function == F_WRITE_VAR:
            _parse_data_items(pdu, pdu.items, pdu.items)
    elif pdu.rosctr == ROSCTR_ACK_DATA:
        specs = request.items if request is not None else []
        if pdu.function == F_READ_VAR:
            pdu.items = [{} for _ in range(pdu.item_count)]
            _parse_data_items(pdu, pdu.items, specs)
        else:
            pdu.items = _parse_write_results(pdu)


def parse_var_specs(buf: bytes, pos: int, count: int, problems: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Request items from ``pos``: 0x12, spec length, syntax id, then the address (S7ANY: 10 bytes)."""
    items: list[dict[str, Any]] = []
    for index in range(min(count, MAX_ITEMS)):
        if pos + 3 > len(buf):
            problems.append(("s7comm.item_count_mismatch", f"{count} items declared, {index} present"))
            break
        spec_len, syntax = buf[pos + 1], buf[pos + 2]
        body = buf[pos + 3: pos + 2 + spec_len]
        if pos + 2 + spec_len > len(buf) or spec_len < 1:
            problems.append(("s7comm.bad_item", f"item {index}: specification length {spec_len} overruns the parameter part"))
            break
        items.append(_var_spec(syntax, body, problems, index))
        pos += 2 + spec_len
    return items


def _var_spec(syntax: int, body: bytes, problems: list[tuple[str, str]], index: int) -> dict[str, Any]:
    item: dict[str, Any] = {"syntax_id": name_of(SYNTAX_IDS, syntax)}
    if syntax != SYNTAX_S7ANY:
        item["address_hex"] = body.hex()
        return item
    if len(body) < S7ANY.size + 3:
        problems.append(("s7comm.bad_item", f"item {index}: S7ANY address needs 10 bytes, got {len(body) + 1}"))
        return item
    tsize, count, db, area = S7ANY.unpack_from(body)
    address = int.from_bytes(body[S7ANY.size: S7ANY.size + 3], "big")
    item.update(
        transport_size=name_of(TRANSPORT_SIZES, tsize), transport_size_code=tsize, count=count,
        area=name_of(AREAS, area), area_code=area, db=db if area in (AREA_DB, AREA_DI) else None,
    )
    if area in NUMBERED_AREAS:       # timers and counters are addressed by number, not byte.bit
        item.update(byte_address=address, bit_address=None, number=True)
    else:
        item.update(byte_address=address >> 3, bit_address=address & 0x7)
    return item


def _parse_data_items(pdu: S7Pdu, targets: list[dict[str, Any]], specs: list[dict[str, Any]]) -> None:
    """Data part items: return code, transport size, length, data, pad to even length (not after the last)."""
    pos, data, n = 0, pdu.data, len(targets)
    for index in range(n):
        if pos + DATA_ITEM.size > len(data):
            if pos < len(data) or index < n:
                pdu.problem("s7comm.item_count_mismatch", f"{n} items expected, data for {index}")
            return
        ret, tsize, length = DATA_ITEM.unpack_from(data, pos)
        nbytes = (length + 7) // 8 if tsize in LENGTH_IN_BITS else length
        value = data[pos + DATA_ITEM.size: pos + DATA_ITEM.size + nbytes]
        if len(value) < nbytes:
            pdu.problem("s7comm.bad_item", f"item {index}: {nbytes} data bytes declared, {len(value)} present")
        item = targets[index]
        if pdu.rosctr != ROSCTR_JOB:
            item["return_code"], item["return_name"] = ret, name_of(RETURN_CODES, ret)
        item["data_transport_size"] = name_of(DATA_TRANSPORT_SIZES, tsize)
        spec = specs[index] if index < len(specs) else {}
        if value:
            item["data_hex"] = value[:512].hex()
            item["values"], item["values_truncated"] = decode_values(value, spec.get("transport_size_code"), tsize)
        pos += DATA_ITEM.size + nbytes + (nbytes & 1 if index < n - 1 else 0)


def _parse_write_results(pdu: S7Pdu) -> list[dict[str, Any]]:
    codes = pdu.data[: pdu.item_count or 0]
    if len(codes) != (pdu.item_count or 0):
        pdu.problem("s7comm.item_count_mismatch", f"{pdu.item_count} return codes declared, {len(codes)} present")
    return [{"return_code": c, "return_name": name_of(RETURN_CODES, c)} for c in codes]


# --- PI service and PLC stop --------------------------------------------------------------
def _pi_service(pdu: S7Pdu, _request: S7Pdu | None) -> None:
    if pdu.rosctr != ROSCTR_JOB:
        return
    p = pdu.param
    if pdu.function == F_PLC_STOP:
        # function, 5 unknown bytes, service name length, service name ("P_PROGRAM")
        name_len = p[6]
        pdu.fields["pi_service"] = p[7: 7 + name_len].decode("latin-1")
        return
    # function, 7 unknown bytes, parameter block length (2), block, name length (1), name
    block_len = struct.unpack_from(">H", p, 8)[0]
    block = p[10: 10 + block_len]
    name_len = p[10 + block_len]
    name = p[11 + block_len: 11 + block_len + name_len].decode("latin-1")
    if len(block) != block_len or len(name) != name_len:
        raise ValueError("parameter block or service name truncated")
    pdu.fields["pi_service"] = name
    pdu.fields.update(blocks.pi_parameters(name, block))


_DECODERS = {
    F_SETUP: _setup,
    F_READ_VAR: _var,
    F_WRITE_VAR: _var,
    F_PI_SERVICE: _pi_service,
    F_PLC_STOP: _pi_service,
    **{code: blocks.decode_transfer for code in (0x1A, 0x1B, 0x1C, 0x1D, 0x1E, 0x1F)},
}
_BAD_PART = {
    F_PI_SERVICE: "s7comm.bad_pi_service", F_PLC_STOP: "s7comm.bad_pi_service",
    F_READ_VAR: "s7comm.bad_item", F_WRITE_VAR: "s7comm.bad_item",
    **{code: "s7comm.bad_block_transfer" for code in (0x1A, 0x1B, 0x1C, 0x1D, 0x1E, 0x1F)},
}
