"""S7comm User-Data (ROSCTR 7): parameter head, data header, and per-group content.

Parameter: head 00 01 12, parameter length (4 or 8), method (0x11 request,
0x12 response/push), type (high nibble) and function group (low nibble),
sub-function, sequence number; in 8-byte parameters also data unit reference,
last-data-unit flag (0 = last) and an error code.  Data: return code,
transport size, length, payload.  SZL lists are decoded in :mod:`szl`.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from otsensor.dissectors.s7comm import szl
from otsensor.dissectors.s7comm.blocks import block_type_name, parse_block_name
from otsensor.dissectors.s7comm.constants import (
    ERROR_CODES,
    G_BLOCK,
    G_CPU,
    G_CYCLIC,
    G_MODE,
    G_TIME,
    RETURN_CODES,
    SUB_READ_SZL,
    TIME_SET_SUBFUNCTIONS,
    UD_GROUPS,
    UD_SUBFUNCTIONS,
    UD_TYPES,
    name_of,
)
from otsensor.dissectors.s7comm.values import s7_timestamp

if TYPE_CHECKING:
    from otsensor.dissectors.s7comm.s7 import S7Pdu

PARAM_HEAD = b"\x00\x01\x12"
DATA_HEAD = struct.Struct(">BBH")        # return code, transport size, length
TYPE_REQUEST, TYPE_RESPONSE, TYPE_PUSH = 0x4, 0x8, 0x0
CYCLIC_SUBSCRIBE = frozenset({0x01, 0x05, 0x07})   # cyclic / change-driven transfer (modify)


@dataclass(slots=True)
class UserData:
    method: int
    type: int
    group: int
    subfunction: int
    sequence: int
    data_unit_ref: int | None = None
    last_data_unit: bool = True
    error_code: int | None = None
    return_code: int | None = None
    payload: bytes = b""
    fields: dict[str, Any] = field(default_factory=dict)
    items: list[dict[str, Any]] = field(default_factory=list)

    @property
    def is_request(self) -> bool:
        return self.type == TYPE_REQUEST

    @property
    def group_name(self) -> str:
        return name_of(UD_GROUPS, self.group, 1)

    @property
    def subfunction_name(self) -> str:
        return name_of(UD_SUBFUNCTIONS.get(self.group, {}), self.subfunction)


def parse_userdata(pdu: S7Pdu) -> None:
    p = pdu.param
    if len(p) < 8:
        pdu.problem("s7comm.bad_userdata", f"User-Data parameter of {len(p)} bytes")
        return
    # S7-300 mode-transition pushes carry head 01 00 10 (length 0x10, method 0): the fields sit at
    # the usual offsets and byte 6 is the current mode (Wireshark decodes them the same way).
    mode_push = p[5] == G_MODE
    if not mode_push and (p[:3] != PARAM_HEAD or p[3] not in (4, 8) or len(p) < 4 + p[3]):
        pdu.problem("s7comm.bad_userdata", f"User-Data parameter head {p[:12].hex()} malformed")
        return
    ud = UserData(method=p[4], type=p[5] >> 4, group=p[5] & 0x0F, subfunction=p[6], sequence=p[7])
    if p[3] == 8 and len(p) >= 12:
        ud.data_unit_ref, ud.last_data_unit = p[8], p[9] == 0
        ud.error_code = struct.unpack_from(">H", p, 10)[0]
    pdu.userdata = ud
    pdu.function = ud.group
    if ud.type not in UD_TYPES:
        pdu.problem("s7comm.bad_userdata", f"User-Data type 0x{ud.type:x}")
    if len(pdu.data) >= DATA_HEAD.size:
        ret, _tsize, length = DATA_HEAD.unpack_from(pdu.data)
        ud.return_code = ret
        ud.payload = pdu.data[DATA_HEAD.size: DATA_HEAD.size + length]
        if len(ud.payload) < length:
            pdu.problem("s7comm.truncated_pdu", f"User-Data payload of {length} bytes truncated to {len(ud.payload)}")
    elif pdu.data:
        pdu.problem("s7comm.bad_userdata", "User-Data data part shorter than its 4-byte header")


def decode_content(ud: UserData, payload: bytes, problems: list[tuple[str, str]]) -> None:
    """Fill ``ud.fields`` from the (reassembled) payload, by function group."""
    try:
        if ud.group == G_CPU and ud.subfunction == SUB_READ_SZL:
            ud.fields.update(szl.decode(payload, ud.is_request, problems))
        elif ud.group == G_TIME:
            _time(ud, payload)
        elif ud.group == G_BLOCK:
            _block(ud, payload)
        elif ud.group == G_CYCLIC and ud.is_request and ud.subfunction in CYCLIC_SUBSCRIBE:
            _cyclic(ud, payload, problems)
    except (struct.error, IndexError, ValueError) as exc:
        problems.append(("s7comm.bad_userdata", f"{ud.group_name}/{ud.subfunction_name}: {exc}"))


def _cyclic(ud: UserData, payload: bytes, problems: list[tuple[str, str]]) -> None:
    """Cyclic subscription: item count (2), time base (1), interval (1), then Read Var item specs."""
    from otsensor.dissectors.s7comm.s7 import parse_var_specs  # local: s7 imports this module lazily too

    count = struct.unpack_from(">H", payload)[0]
    ud.fields.update(cyclic_timebase=payload[2], cyclic_interval=payload[3])
    ud.items = parse_var_specs(payload, 4, count, problems)


def _time(ud: UserData, payload: bytes) -> None:
    carries_clock = (ud.subfunction in TIME_SET_SUBFUNCTIONS and ud.is_request) or (
        ud.subfunction not in TIME_SET_SUBFUNCTIONS and not ud.is_request)
    if carries_clock and len(payload) >= 10:
        ud.fields["clock"] = s7_timestamp(payload[:10])


def _block(ud: UserData, payload: bytes) -> None:
    if not ud.is_request:
        if ud.subfunction == 0x01:          # list blocks: (0x30, type, count) entries
            counts = {}
            for pos in range(0, len(payload) - 3, 4):
                counts[block_type_name(payload[pos: pos + 2]) or "?"] = struct.unpack_from(">H", payload, pos + 2)[0]
            ud.fields["block_counts"] = counts
        return
    if ud.subfunction == 0x02 and len(payload) >= 2:
        ud.fields["block_type"] = block_type_name(payload[:2])
    elif ud.subfunction == 0x03 and len(payload) >= 8:
        ud.fields.update(parse_block_name(payload[:8]))
        ud.fields.pop("filename", None)


def return_name(code: int | None) -> str | None:
    return None if code is None else name_of(RETURN_CODES, code)


def error_name(code: int | None) -> str | None:
    return None if code is None else name_of(ERROR_CODES, code, 4)
