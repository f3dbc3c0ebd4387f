"""S7comm and S7comm-plus in ICSNPP-s7comm's logs, as its analyzer and scripts write them.

ICSNPP's analyzer reads each chunk of stream Zeek delivers on its own
(zeek_parse.py), so the dissector names :class:`S7commScript` as its
``ZEEK_STREAM_SCRIPT`` and this script gets the chunks, not our records.
It writes, one row per message, with ICSNPP's columns and names
(zeek_names.py):

* ``cotp.log``: every COTP header read (conn.log service ``cotp``);
* ``s7comm.log``: every S7comm header (service ``s7comm``);
* ``s7comm_plus.log``: every S7comm-plus header (service ``s7comm-plus``);
* ``s7comm_read_szl.log``: every Read SZL request and response part;
* ``s7comm_upload_download.log``: every upload/download Job and acknowledgement;
* ``s7comm_known_devices.log``: per connection, the names SZL 0x001c
  (component identification) records carried, written when the
  connection goes (without the message columns, as ICSNPP leaves them unset).

ICSNPP's quirks are kept and marked "ICSNPP quirk" (in zeek_parse.py too):
byte-swapped PDU references, no error for Jobs and user-data requests, a
user-data reply's 16-bit error code as a "Parameter Error", fragmented SZL
parts skipped but the first of several logged, a chunk that does not hold a
whole PDU giving only the events read before its end, and nothing read on a
connection after a gap.  Our JSONL keeps the correct values.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Final

from otsensor.dissectors.s7comm import zeek_names as N
from otsensor.dissectors.s7comm.zeek_names import icsnpp_name
from otsensor.dissectors.s7comm.zeek_parse import JOB, NONE8, NONE16, NONE32, PLC_CONTROL, USER_DATA, parse_chunk
from otsensor.dissectors.zeek import STREAM_DATA, STREAM_GAP, ZeekConn, ZeekEvent, ZeekLog, ZeekRow, ZeekScript

COTP = ZeekLog("cotp", "pdu_code:string pdu_name:string", per_message=True, service="cotp")
S7COMM = ZeekLog("s7comm", "rosctr_code:count rosctr_name:string pdu_reference:count function_code:string "
                           "function_name:string subfunction_code:string subfunction_name:string "
                           "error_class:string error_code:string", per_message=True, service="s7comm")
S7COMM_PLUS = ZeekLog("s7comm_plus", "version:count opcode:string opcode_name:string function_code:string "
                                     "function_name:string", per_message=True, service="s7comm-plus")
READ_SZL = ZeekLog("s7comm_read_szl", "pdu_reference:count method:string szl_id:string szl_id_name:string "
                                      "szl_index:string return_code:string return_code_name:string",
                   per_message=True)
UPLOAD_DOWNLOAD = ZeekLog("s7comm_upload_download",
                          "rosctr:string pdu_reference:count function_name:string function_status:string "
                          "session_id:count blocklength:count filename:string block_type:string "
                          "block_number:string destination_filesystem:string", per_message=True)
KNOWN_DEVICES = ZeekLog("s7comm_known_devices", "automation_system_name:string module_name:string "
                                                "plant_name:string module_serial:string", per_message=True)
# SZL 0x001c record index -> the known-devices column its name fills
DEVICE_FIELDS: Final = {0x0001: "automation_system_name", 0x0002: "module_name", 0x0003: "plant_name",
                        0x0005: "module_serial"}
USERDATA_ERROR_CLASS: Final = 0xFE   # what ICSNPP passes as a user-data message's error class


class _Connection:
    """What ICSNPP keeps per connection: whether a gap stopped its analyzer, and the device names seen."""

    __slots__ = ("device", "gap")

    def __init__(self) -> None:
        self.gap = False
        self.device: dict[str, bytes] | None = None


class S7commScript(ZeekScript):
    """icsnpp-s7comm's analyzer and scripts/icsnpp/s7comm/main.zeek, one instance per run."""

    LOGS = (COTP, S7COMM, S7COMM_PLUS, READ_SZL, UPLOAD_DOWNLOAD, KNOWN_DEVICES)

    def __init__(self) -> None:
        self.connections: dict[str, _Connection] = {}
        self.now = 0.0    # Zeek's network time: the latest chunk's

    def event(self, conn: ZeekConn, event: ZeekEvent) -> list[ZeekRow]:
        state = self.connections.get(conn.uid)
        if state is None:
            state = self.connections[conn.uid] = _Connection()
        self.now = max(self.now, event.ts)
        if event.kind == STREAM_GAP:
            state.gap = True   # ICSNPP quirk: after a gap in either direction it reads nothing more
            return []
        if event.kind != STREAM_DATA or state.gap:
            return []
        events, _violation = parse_chunk(event.data, conn.is_orig(event.direction))
        rows = []
        for raised in events:
            if raised[0] == "ident":
                _, index, name = raised
                if state.device is None:
                    state.device = {}
                state.device[DEVICE_FIELDS[index]] = name.rstrip(b"\x00")
                continue
            log, values = HANDLERS[raised[0]](*raised[1:])
            rows.append(ZeekRow(log, event.ts, values, event.direction))
        return rows

    def removed(self, conn: ZeekConn, ts: float) -> list[ZeekRow]:
        """connection_state_remove: the connection's known-device row, if SZL 0x001c named one."""
        state = self.connections.pop(conn.uid, None)
        if state is None or state.device is None:
            return []
        return [ZeekRow(KNOWN_DEVICES, ts if math.isfinite(ts) else self.now, dict(state.device))]


def _cotp(pdu_type: int) -> tuple[ZeekLog, dict[str, Any]]:
    return COTP, {"pdu_code": f"0x{pdu_type:02x}",
                  "pdu_name": icsnpp_name(N.COTP_PDUS, pdu_type, f"Unknown COTP PDU-0x{pdu_type:02x}")}


def _s7comm(rosctr: int, reference: int, function: int, subfunction: int, plc_control: str, error_class: int,
            error_code: int) -> tuple[ZeekLog, dict[str, Any]]:
    values: dict[str, Any] = {"rosctr_code": rosctr, "rosctr_name": icsnpp_name(N.ROSCTR, rosctr),
                              "pdu_reference": reference}
    if function != NONE8:
        values["function_code"] = f"0x{function:02x}"
        values["function_name"] = _function_name(rosctr, function)
    if subfunction != NONE8:
        values["subfunction_code"] = f"0x{subfunction:02x}"
        names = N.SUBFUNCTIONS.get(function & 0x0F)
        if names is not None:
            values["subfunction_name"] = icsnpp_name(names, subfunction)
    if function == PLC_CONTROL and rosctr == JOB:
        values["subfunction_code"] = plc_control
        values["subfunction_name"] = icsnpp_name(N.PLC_CONTROL_SERVICES, plc_control)
    if error_code not in (NONE8, NONE16):
        values["error_class"], values["error_code"] = _error(error_class, error_code)
    return S7COMM, values


def _function_name(rosctr: int, function: int) -> str:
    if rosctr != USER_DATA:
        return icsnpp_name(N.FUNCTIONS, function)
    prefix = N.USERDATA_TYPES.get(function & 0xF0, "Unknown: ")
    return prefix + icsnpp_name(N.USERDATA_GROUPS, function & 0x0F)


def _error(error_class: int, error_code: int) -> tuple[str, str]:
    """ICSNPP quirk: a user-data reply's error is one 16-bit code, logged as a "Parameter Error" when not 0."""
    if error_class != USERDATA_ERROR_CLASS:
        return (icsnpp_name(N.ERROR_CLASSES, error_class, f"Unknown error class-0x{error_class:02x}"),
                f"0x{error_code:02x}")
    if error_code == 0:
        return N.ERROR_CLASSES[0x00], "0x00"
    return "Parameter Error", f"0x{error_code:02x}"


def _read_szl(reference: int, method: int, return_code: int, szl_id: int,
              szl_index: int) -> tuple[ZeekLog, dict[str, Any]]:
    return READ_SZL, {
        "pdu_reference": reference, "method": icsnpp_name(N.USERDATA_METHODS, method, "Unknown"),
        "szl_id": f"0x{szl_id:04x}", "szl_id_name": icsnpp_name(N.SZL_LISTS, szl_id & 0xFF, "Unknown"),
        "szl_index": f"0x{szl_index:04x}", "return_code": f"0x{return_code:02x}",
        "return_code_name": icsnpp_name(N.RETURN_CODES, return_code, "Unknown")}


def _transfer(rosctr: int, reference: int, function: int, status: int, session: int, length: int,
              filename: bytes) -> tuple[ZeekLog, dict[str, Any]]:
    values: dict[str, Any] = {"rosctr": icsnpp_name(N.ROSCTR, rosctr), "pdu_reference": reference,
                              "function_name": icsnpp_name(N.FUNCTIONS, function)}
    if status != NONE8:
        values["function_status"] = f"0x{status:02x}"
    if session != NONE32:
        values["session_id"] = session
    if length != NONE16:
        values["blocklength"] = length
    if filename:
        # a file name is "_" + block type (2 characters) + block number (5) + file system (1)
        values["filename"] = filename
        values["block_type"] = icsnpp_name(N.BLOCK_TYPES, filename[1:3].decode("latin-1"), "Unknown")
        values["block_number"] = filename[3:8]
        values["destination_filesystem"] = icsnpp_name(N.FILESYSTEMS, filename[8:9].decode("latin-1"), "Unknown")
    return UPLOAD_DOWNLOAD, values


def _plus(version: int, opcode: int, function: int | None) -> tuple[ZeekLog, dict[str, Any]]:
    values: dict[str, Any] = {
        "version": version, "opcode": f"0x{opcode:02x}",
        "opcode_name": icsnpp_name(N.PLUS_OPCODES, opcode, f"Unknown s7comm-plus opcode-0x{opcode:02x}")}
    if function is not None:
        values["function_code"] = f"0x{function:04x}"
        values["function_name"] = icsnpp_name(N.PLUS_FUNCTIONS, function,
                                              f"Unknown s7comm-plus function-0x{function:04x}")
    return S7COMM_PLUS, values


# the event kinds parse_chunk gives -> the row they make
HANDLERS: Final[dict[str, Callable[..., tuple[ZeekLog, dict[str, Any]]]]] = {
    "cotp": _cotp, "s7comm": _s7comm, "szl": _read_szl, "transfer": _transfer, "plus": _plus}
