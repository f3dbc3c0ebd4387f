"""PCCC carried by CIP Execute PCCC (service 0x4B on class 0x67): the SLC/PLC-5/MicroLogix commands
(Allen-Bradley DF1 protocol manual 1770-6.5.16, chapter 7; CIP Vol. 1 has the requestor id).

Request: requestor id (length byte counting itself, vendor id, serial number, optional bytes), then
CMD, STS, TNS and, for CMD 0x0F/0x06, a function code with its parameters.  Reply: the requestor
id, CMD|0x40, STS, TNS, an extended status byte when STS is 0xF0, and data.  The typed logical
reads and writes name a data-table address (file type, file number, element, sub-element).
"""
from __future__ import annotations

import struct
from typing import Any

from otsensor.dissectors.enip.cip import Message, hex_capped
from otsensor.dissectors.enip.logix import MAX_VALUES

# (command, function) -> name; CMD 0x0F and 0x06 carry a function code, others do not.
FUNCTIONS: dict[tuple[int, int | None], str] = {
    (0x01, None): "Unprotected Read", (0x08, None): "Unprotected Write", (0x05, None): "Protected Bit Write",
    (0x02, None): "Unprotected Bit Write", (0x00, None): "Protected Write", (0x04, None): "Protected Read",
    (0x06, 0x00): "Echo", (0x06, 0x03): "Diagnostic Status", (0x06, 0x07): "Diagnostic Counters Reset",
    (0x0F, 0x00): "Word Range Write", (0x0F, 0x01): "Word Range Read", (0x0F, 0x02): "Bit Write",
    (0x0F, 0x11): "Get Edit Resource", (0x0F, 0x12): "Return Edit Resource", (0x0F, 0x26): "Read-Modify-Write",
    (0x0F, 0x3A): "Set CPU Mode", (0x0F, 0x67): "Typed Write", (0x0F, 0x68): "Typed Read",
    (0x0F, 0x80): "Change Mode",
    (0x0F, 0xA1): "Protected Typed Logical Read (2 address fields)",
    (0x0F, 0xA2): "Protected Typed Logical Read (3 address fields)",
    (0x0F, 0xA9): "Protected Typed Logical Write (2 address fields)",
    (0x0F, 0xAA): "Protected Typed Logical Write (3 address fields)",
    (0x0F, 0xAB): "Protected Typed Logical Masked Write (3 address fields)",
}
# function -> (number of address fields, writes data)
LOGICAL = {0xA1: (2, False), 0xA2: (3, False), 0xA9: (2, True), 0xAA: (3, True), 0xAB: (3, True)}
# SLC file types -> (letter, struct format of one element or None for raw)
FILE_TYPES: dict[int, tuple[str, str | None]] = {
    0x82: ("O", "H"), 0x83: ("I", "H"), 0x84: ("S", "H"), 0x85: ("B", "H"), 0x86: ("T", None),
    0x87: ("C", None), 0x88: ("R", None), 0x89: ("N", "h"), 0x8A: ("F", "f"), 0x8D: ("ST", None),
    0x8E: ("A", None), 0x91: ("L", "i"),
}
_U16 = struct.Struct("<H")


def function_name(command: int, function: int | None) -> str:
    name = FUNCTIONS.get((command, function))
    if name is not None:
        return name
    return f"unknown-0x{command:02x}" + ("" if function is None else f"/0x{function:02x}")


def _field(data: bytes, pos: int) -> tuple[int, int]:
    """One address field: a byte, or 0xFF followed by a 16-bit value."""
    if data[pos] == 0xFF:
        return _U16.unpack_from(data, pos + 1)[0], pos + 3
    return data[pos], pos + 1


def _logical_address(msg: Message, data: bytes, function: int) -> None:
    fields, writes = LOGICAL[function]
    size = data[0]
    file_no, pos = _field(data, 1)
    ftype = data[pos]
    element, pos = _field(data, pos + 1)
    sub = None
    if fields == 3:
        sub, pos = _field(data, pos)
    entry = FILE_TYPES.get(ftype)
    letter = entry[0] if entry else f"type0x{ftype:02x}"
    msg.info.update({"pccc_address": f"{letter}{file_no}:{element}" + (f".{sub}" if sub else ""),
                     "pccc_file": f"{letter}{file_no}", "pccc_element": element, "pccc_byte_size": size})
    if writes:
        payload = data[pos:]
        fmt = entry[1] if entry else None
        if fmt and function != 0xAB:
            width = struct.calcsize(fmt)
            count = min(len(payload) // width, MAX_VALUES)
            msg.info["values"] = list(struct.unpack_from(f"<{count}{fmt}", payload)) if count else []
        else:
            msg.info.update(hex_capped(payload))


def execute_pccc_request(msg: Message, _depth: int) -> None:
    data = msg.data
    id_len = data[0]
    if id_len < 7 or len(data) < id_len + 4:
        raise ValueError(f"requestor id of {id_len} bytes, message of {len(data)}")
    vendor, serial = struct.unpack_from("<HI", data, 1)
    command, status, tns = data[id_len], data[id_len + 1], _U16.unpack_from(data, id_len + 2)[0]
    pos = id_len + 4
    function = None
    if command in (0x06, 0x0F, 0x07):
        function = data[pos]
        pos += 1
    msg.info.update({"pccc_requestor_vendor_id": vendor, "pccc_requestor_serial": f"0x{serial:08x}",
                     "pccc_command": f"0x{command:02x}", "pccc_tns": tns,
                     "pccc_function": function_name(command, function)})
    if function is not None:
        msg.info["pccc_function_code"] = f"0x{function:02x}"
    if command == 0x0F and function in LOGICAL:
        _logical_address(msg, data[pos:], function)
    elif command == 0x0F and function == 0x80 and pos < len(data):
        msg.info["pccc_mode"] = data[pos]
    elif status:
        msg.info["pccc_request_status"] = status


def execute_pccc_reply(msg: Message, _depth: int, _request: Message | None) -> None:
    data = msg.data
    id_len = data[0]
    if len(data) < id_len + 4:
        raise ValueError(f"reply of {len(data)} bytes, requestor id of {id_len}")
    status = data[id_len + 1]
    info: dict[str, Any] = {"pccc_reply_code": f"0x{data[id_len]:02x}", "pccc_status": f"0x{status:02x}"}
    pos = id_len + 4
    if status == 0xF0 and pos < len(data):
        info["pccc_extended_status"] = f"0x{data[pos]:02x}"
        pos += 1
    if pos < len(data):
        info.update(hex_capped(data[pos:], "response_data"))
    msg.info.update(info)
