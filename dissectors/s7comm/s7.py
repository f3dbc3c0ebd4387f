"""S7comm (protocol id 0x32) PDU parsing: header, Job/Ack_Data parameters and data.

``parse_pdu`` turns one COTP TSDU into an :class:`S7Pdu`; malformed parts are
reported in ``problems`` as (anomaly name, reason) and parsing keeps what it
could decode.  User-Data is decoded in :mod:`dissectors.s7comm.userdata`,
Read/Write Var items in :mod:`items`, block transfer and PI services in
:mod:`blocks`.
"""
from __future__ import annotations

import struct
from typing import Any, Callable, ClassVar, Final

from otsensor.dissectors.s7comm import blocks
from otsensor.dissectors.s7comm.constants import (
    BLOCK_TRANSFER_FUNCTIONS,
    F_PI_SERVICE,
    F_PLC_STOP,
    F_READ_VAR,
    F_SETUP,
    F_WRITE_VAR,
    FUNCTIONS,
    ROSCTR,
    ROSCTR_ACK,
    ROSCTR_ACK_DATA,
    ROSCTR_JOB,
    ROSCTR_USERDATA,
    name_of,
)
from otsensor.dissectors.s7comm.items import parse_data_items, parse_var_specs, parse_write_results
from otsensor.dissectors.s7comm.shapes import Detail, Item, Malformed, S7Pdu, need
from otsensor.dissectors.s7comm.userdata import parse_userdata

PROTOCOL_ID: Final = 0x32
# protocol id, ROSCTR, redundancy id (2), PDU reference (2), parameter length (2), data length (2)
HEADER_SIZE: Final = 10
ERROR_SIZE: Final = 2                           # Ack / Ack_Data only: error class, error code
SETUP: Final = struct.Struct(">BBHHH")          # function, reserved, max AmQ calling, max AmQ called, PDU length
_U16: Final = struct.Struct(">H")


def parse_header(tsdu: bytes) -> S7Pdu:
    """Header and the split into parameter and data parts; raises Malformed if unusable.

    The fields are read byte by byte (big-endian) rather than through ``HEADER.unpack_from``: in the
    compiled build that keeps them native integers, where a struct's tuple gives untyped objects that every
    comparison and sum then goes through the generic object protocol for (a third of this function's cost).
    """
    size = len(tsdu)
    if size < HEADER_SIZE:
        raise Malformed(f"S7comm header needs {HEADER_SIZE} bytes, got {size}")
    proto, rosctr = tsdu[0], tsdu[1]
    if proto != PROTOCOL_ID:
        raise Malformed(f"protocol id 0x{proto:02x} is not S7comm")
    pdu = S7Pdu(rosctr, tsdu[4] << 8 | tsdu[5])
    plen, dlen = tsdu[6] << 8 | tsdu[7], tsdu[8] << 8 | tsdu[9]
    offset = HEADER_SIZE
    if rosctr == ROSCTR_ACK or rosctr == ROSCTR_ACK_DATA:
        if size < offset + ERROR_SIZE:
            raise Malformed("Ack header truncated before error class/code")
        pdu.error_class, pdu.error_code = tsdu[offset], tsdu[offset + 1]
        offset += ERROR_SIZE
    if rosctr not in ROSCTR:
        pdu.problem("s7comm.unknown_rosctr", f"ROSCTR 0x{rosctr:02x}")
    end = offset + plen + dlen
    if end > size:
        pdu.problem("s7comm.truncated_pdu",
                    f"parameter {plen} + data {dlen} bytes declared, {size - offset} present")
    elif end < size:
        pdu.problem("s7comm.bad_length", f"{size - end} bytes after the declared parameter and data parts")
    pdu.param = tsdu[offset: offset + plen]
    pdu.data = tsdu[offset + plen: end]
    return pdu


def parse_pdu(tsdu: bytes, request: S7Pdu | None = None) -> S7Pdu:
    """Parse one S7comm PDU; ``request`` is the paired Job, needed to decode Ack_Data values."""
    pdu = parse_header(tsdu)
    parse_body(pdu, request)
    return pdu


def parse_body(pdu: S7Pdu, request: S7Pdu | None) -> None:
    """The parameter and data parts of a PDU whose header :func:`parse_header` read."""
    if pdu.rosctr == ROSCTR_USERDATA:
        parse_userdata(pdu)
        return
    if not pdu.param:
        return
    function = pdu.function = pdu.param[0]
    if function not in FUNCTIONS:
        pdu.problem("s7comm.unknown_function", f"function 0x{function:02x}")
    decoder = DECODERS.get(function)
    if decoder is not None:
        try:
            if function == F_READ_VAR or function == F_WRITE_VAR:
                _var(pdu, request)      # most PDUs: called directly, not through the table's function object
            else:
                decoder(pdu, request)
        except Malformed as exc:
            pdu.problem(BAD_PART.get(function, "s7comm.truncated_pdu"), f"{name_of(FUNCTIONS, function)}: {exc.reason}")
            if function == F_PI_SERVICE and pdu.rosctr == ROSCTR_JOB:
                # a PI job whose layout is off (snap7's _DELE) still names its service at the end: keep that
                pdu.detail = blocks.fallback_service(pdu.param)


# --- Setup communication ------------------------------------------------------------------
class Setup(Detail):
    __slots__ = ("max_amq_calling", "max_amq_called", "pdu_length")
    COLUMNS: ClassVar[str] = "max_amq_calling:count max_amq_called:count pdu_length:count"

    def __init__(self, max_amq_calling: int, max_amq_called: int, pdu_length: int) -> None:
        self.max_amq_calling = max_amq_calling
        self.max_amq_called = max_amq_called
        self.pdu_length = pdu_length

    def fill_row(self, row: dict[str, Any]) -> None:
        row["max_amq_calling"] = self.max_amq_calling
        row["max_amq_called"] = self.max_amq_called
        row["pdu_length"] = self.pdu_length


def _setup(pdu: S7Pdu, _request: S7Pdu | None) -> None:
    need(pdu.param, SETUP.size, "setup parameter")
    _func, _res, calling, called, pdu_len = SETUP.unpack_from(pdu.param)
    pdu.detail = Setup(calling, called, pdu_len)


# --- Read Var / Write Var -----------------------------------------------------------------
def _var(pdu: S7Pdu, request: S7Pdu | None) -> None:
    if len(pdu.param) < 2:
        raise Malformed("item count missing")
    count = pdu.item_count = pdu.param[1]
    if pdu.rosctr == ROSCTR_JOB:
        pdu.items = parse_var_specs(pdu.param, 2, count, pdu.problems)
        if pdu.function == F_WRITE_VAR:
            parse_data_items(pdu, pdu.items, pdu.items)
    elif pdu.rosctr == ROSCTR_ACK_DATA:
        if pdu.function == F_READ_VAR:
            pdu.items = [Item() for _ in range(count)]
            parse_data_items(pdu, pdu.items, request.items if request is not None else [])
        else:
            pdu.items = parse_write_results(pdu)


# --- PI service and PLC stop --------------------------------------------------------------
def _pi_service(pdu: S7Pdu, _request: S7Pdu | None) -> None:
    if pdu.rosctr != ROSCTR_JOB:
        return
    p = pdu.param
    if pdu.function == F_PLC_STOP:
        # function, 5 unknown bytes, service name length, service name ("P_PROGRAM")
        need(p, 7, "parameter to the service name length")
        name_len = p[6]
        pdu.detail = blocks.PiService(p[7: 7 + name_len].decode("latin-1"))
        return
    # function, 7 unknown bytes, parameter block length (2), block, name length (1), name
    need(p, 10, "parameter to the block length")
    block_len = _U16.unpack_from(p, 8)[0]
    need(p, 11 + block_len, f"parameter with its {block_len}-byte block")
    block = p[10: 10 + block_len]
    name_len = p[10 + block_len]
    name = p[11 + block_len: 11 + block_len + name_len].decode("latin-1")
    if len(name) != name_len:
        raise Malformed(f"service name of {name_len} bytes truncated to {len(name)}")
    pdu.detail = blocks.pi_service(name, block)


DECODERS: Final[dict[int, Callable[[S7Pdu, S7Pdu | None], None]]] = {
    F_SETUP: _setup,
    F_READ_VAR: _var,
    F_WRITE_VAR: _var,
    F_PI_SERVICE: _pi_service,
    F_PLC_STOP: _pi_service,
    **{code: blocks.decode_transfer for code in BLOCK_TRANSFER_FUNCTIONS},
}
BAD_PART: Final[dict[int, str]] = {
    F_PI_SERVICE: "s7comm.bad_pi_service", F_PLC_STOP: "s7comm.bad_pi_service",
    F_READ_VAR: "s7comm.bad_item", F_WRITE_VAR: "s7comm.bad_item",
    **{code: "s7comm.bad_block_transfer" for code in BLOCK_TRANSFER_FUNCTIONS},
}
