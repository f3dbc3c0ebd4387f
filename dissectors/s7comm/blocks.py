"""Block names, block transfer (functions 0x1A-0x1F) and PI-service parameters.

Block file names are ASCII: ``_0A00001P`` = file identifier ``_`` (complete
module; ``$`` = header only), block type as two hex digits (``0A`` = DB), block
number as five digits, destination file system (``P`` passive, ``A`` active,
``B`` both).
"""
from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

from otsensor.dissectors.s7comm.constants import (
    BLOCK_TYPES,
    F_END_UPLOAD,
    F_REQ_DOWNLOAD,
    F_START_UPLOAD,
    PI_SERVICES,
    ROSCTR_ACK_DATA,
    ROSCTR_JOB,
    name_of,
)

if TYPE_CHECKING:
    from otsensor.dissectors.s7comm.s7 import S7Pdu

TRANSFER_HEAD = struct.Struct(">BBHI")   # function, status, unknown/error code, session (upload) id


def block_type_name(two_ascii: bytes) -> str | None:
    """``b"0A"`` -> ``"DB"``; unknown or non-hex -> named fallback."""
    try:
        code = int(two_ascii.decode("ascii"), 16)
    except (UnicodeDecodeError, ValueError):
        return f"unknown-{two_ascii.hex()}" if two_ascii else None
    return name_of(BLOCK_TYPES, code)


def parse_block_name(raw: bytes) -> dict[str, Any]:
    """Fields of a block name: type, number, destination file system (8 or 9 ASCII bytes)."""
    name = raw[1:] if raw[:1] in (b"_", b"$") else raw
    out: dict[str, Any] = {"filename": raw.decode("latin-1")}
    if len(name) >= 7:
        out["block_type"] = block_type_name(name[0:2])
        number = name[2:7].decode("latin-1")
        out["block_number"] = number
        if len(name) >= 8:
            out["destination_filesystem"] = name[7:8].decode("latin-1")
    return out


def _digits(raw: bytes) -> int | None:
    text = "".join(ch for ch in raw.decode("latin-1") if ch.isdigit())
    return int(text) if text else None


def decode_transfer(pdu: S7Pdu, _request: S7Pdu | None) -> None:
    """Request download / Download block / Download ended / Start upload / Upload / End upload."""
    p = pdu.param
    if pdu.rosctr == ROSCTR_JOB:
        _func, status, code, session = TRANSFER_HEAD.unpack_from(p)
        pdu.fields.update(function_status=status, session_id=session)
        if pdu.function == F_END_UPLOAD:
            pdu.fields["end_error_code"] = code
        if len(p) > TRANSFER_HEAD.size:
            name_len = p[8]
            raw = p[9: 9 + name_len]
            if len(raw) != name_len:
                raise ValueError(f"file name of {name_len} bytes truncated to {len(raw)}")
            pdu.fields.update(parse_block_name(raw))
            rest = p[9 + name_len:]
            if pdu.function == F_REQ_DOWNLOAD and len(rest) >= 1 + 13:
                # length part: '1', load memory length (6 digits), MC7 code length (6 digits)
                pdu.fields["blocklength"] = _digits(rest[2:8])
                pdu.fields["mc7_length"] = _digits(rest[8:14])
    elif pdu.rosctr == ROSCTR_ACK_DATA and len(p) >= 2:
        pdu.fields["function_status"] = p[1]
        if pdu.function == F_START_UPLOAD and len(p) >= 9:
            pdu.fields["session_id"] = struct.unpack_from(">I", p, 4)[0]
            n = p[8]
            pdu.fields["blocklength"] = _digits(p[9: 9 + n] if n else p[9:])
        if len(pdu.data) >= 4:       # Upload / Download block data: length, 0x00fb, payload
            length = struct.unpack_from(">H", pdu.data)[0]
            pdu.fields["data_length"] = length
            pdu.fields["more_data"] = bool(p[1] & 0x01)


def pi_parameters(service: str, block: bytes) -> dict[str, Any]:
    """Parameters of a PI service: blocks for _INSE/_DELE, start type for P_PROGRAM."""
    out: dict[str, Any] = {"pi_service_name": PI_SERVICES.get(service) or f"unknown-{service}"}
    if service in ("_INSE", "_INS2", "_DELE") and len(block) >= 2:
        count = block[0]
        names = [parse_block_name(block[2 + 8 * i: 10 + 8 * i]) for i in range(min(count, 64))]
        out["pi_blocks"] = [n for n in names if "block_type" in n]
    elif service == "P_PROGRAM":
        args = block.decode("latin-1").strip()
        out["pi_arguments"] = args
        # P_PROGRAM without argument = restart keeping data (snap7's "hot start"); "C" = cold start
        out["start_type"] = "cold" if args.startswith("C") else "hot"
    elif block:
        out["pi_arguments"] = block.decode("latin-1")
    return out


def fallback_service_name(param: bytes) -> str | None:
    """Service name at the end of a PI parameter that did not parse (e.g. snap7's _DELE job)."""
    for name in PI_SERVICES:
        if param.endswith(name.encode("ascii")):
            return name
    return None
