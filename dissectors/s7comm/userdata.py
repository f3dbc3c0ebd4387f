"""S7comm User-Data (ROSCTR 7): parameter head, data header, and per-group content.

Parameter: head 00 01 12, parameter length (4 or 8), method (0x11 request,
0x12 response/push), type (high nibble) and function group (low nibble),
sub-function, sequence number; in 8-byte parameters also data unit reference,
last-data-unit flag (0 = last) and an error code.  Data: return code,
transport size, length, payload.  SZL lists are decoded in :mod:`szl`.
"""
from __future__ import annotations

import struct
from typing import Any, ClassVar, Final

from otsensor.dissectors.s7comm import szl
from otsensor.dissectors.s7comm.blocks import BlockName, block_type_name
from otsensor.dissectors.s7comm.constants import (
    G_BLOCK,
    G_CPU,
    G_CYCLIC,
    G_MODE,
    G_TIME,
    SUB_READ_SZL,
    TIME_SET_SUBFUNCTIONS,
    UD_TYPES,
)
from otsensor.dissectors.s7comm.items import parse_var_specs
from otsensor.dissectors.s7comm.shapes import Detail, Malformed, Problems, S7Pdu, UserData, need
from otsensor.dissectors.s7comm.values import s7_timestamp

PARAM_HEAD: Final = b"\x00\x01\x12"
DATA_HEAD: Final = struct.Struct(">BBH")        # return code, transport size, length
_U16: Final = struct.Struct(">H")
CYCLIC_SUBSCRIBE = frozenset({0x01, 0x05, 0x07})   # cyclic / change-driven transfer (modify)


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
    ud = UserData(p[4], p[5] >> 4, p[5] & 0x0F, p[6], p[7])
    if p[3] == 8 and len(p) >= 12:
        ud.data_unit_ref, ud.last_data_unit = p[8], p[9] == 0
        ud.error_code = _U16.unpack_from(p, 10)[0]
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


def decode_content(ud: UserData, payload: bytes, problems: Problems) -> Detail | None:
    """What the (reassembled) payload says, by function group; a cyclic subscription's items go to ``ud``."""
    try:
        if ud.group == G_CPU and ud.subfunction == SUB_READ_SZL:
            return szl.decode(payload, ud.is_request, problems)
        if ud.group == G_TIME:
            return _time(ud, payload)
        if ud.group == G_BLOCK:
            return _block(ud, payload)
        if ud.group == G_CYCLIC and ud.is_request and ud.subfunction in CYCLIC_SUBSCRIBE:
            return _cyclic(ud, payload, problems)
    except Malformed as exc:
        problems.append(("s7comm.bad_userdata", f"{ud.group_name}/{ud.subfunction_name}: {exc.reason}"))
    return None


class Cyclic(Detail):
    """A cyclic subscription's time base and interval (its variables are the record's items)."""

    __slots__ = ("timebase", "interval")
    COLUMNS: ClassVar[str] = "cyclic_timebase:count cyclic_interval:count"

    def __init__(self, timebase: int, interval: int) -> None:
        self.timebase = timebase
        self.interval = interval

    def fill_row(self, row: dict[str, Any]) -> None:
        row["cyclic_timebase"] = self.timebase
        row["cyclic_interval"] = self.interval


def _cyclic(ud: UserData, payload: bytes, problems: Problems) -> Cyclic:
    """Cyclic subscription: item count (2), time base (1), interval (1), then Read Var item specs."""
    need(payload, 4, "cyclic subscription header")
    count = _U16.unpack_from(payload)[0]
    content = Cyclic(payload[2], payload[3])
    ud.items = parse_var_specs(payload, 4, count, problems)
    return content


class Clock(Detail):
    """The PLC clock a Set clock request carries or a Read clock answer returns (None if not a valid date)."""

    __slots__ = ("clock",)
    COLUMNS: ClassVar[str] = "clock:string"

    def __init__(self, clock: str | None) -> None:
        self.clock = clock

    def fill_row(self, row: dict[str, Any]) -> None:
        row["clock"] = self.clock


def _time(ud: UserData, payload: bytes) -> Clock | None:
    carries_clock = (ud.subfunction in TIME_SET_SUBFUNCTIONS and ud.is_request) or (
        ud.subfunction not in TIME_SET_SUBFUNCTIONS and not ud.is_request)
    if carries_clock and len(payload) >= 10:
        return Clock(s7_timestamp(payload[:10]))
    return None


class BlockCounts(Detail):
    """List blocks answer: how many blocks of each type."""

    __slots__ = ("counts",)
    COLUMNS: ClassVar[str] = "block_counts:json"

    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts

    def fill_row(self, row: dict[str, Any]) -> None:
        row["block_counts"] = self.counts


class BlockQuery(Detail):
    """List blocks of type (the type asked for) or Get block info (the block asked about)."""

    __slots__ = ("block_type", "name")
    COLUMNS: ClassVar[str] = "block_type:string block_number:string destination_filesystem:string"

    def __init__(self, block_type: str | None, name: BlockName | None) -> None:
        self.block_type = block_type
        self.name = name

    def fill_row(self, row: dict[str, Any]) -> None:
        if self.name is not None:
            self.name.fill(row, with_filename=False)
        else:
            row["block_type"] = self.block_type


def _block(ud: UserData, payload: bytes) -> Detail | None:
    if not ud.is_request:
        if ud.subfunction == 0x01:          # list blocks: (0x30, type, count) entries
            counts = {}
            for pos in range(0, len(payload) - 3, 4):
                counts[block_type_name(payload[pos: pos + 2]) or "?"] = _U16.unpack_from(payload, pos + 2)[0]
            return BlockCounts(counts)
        return None
    if ud.subfunction == 0x02 and len(payload) >= 2:
        return BlockQuery(block_type_name(payload[:2]), None)
    if ud.subfunction == 0x03 and len(payload) >= 8:
        return BlockQuery(None, BlockName(payload[:8]))
    return None


CONTENTS: tuple[type[Detail], ...] = (Cyclic, Clock, BlockCounts, BlockQuery)
