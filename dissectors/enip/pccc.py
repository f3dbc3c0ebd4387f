"""PCCC carried by CIP Execute PCCC (service 0x4B on class 0x67): the SLC/PLC-5/MicroLogix commands
(Allen-Bradley DF1 protocol manual 1770-6.5.16, chapter 7; CIP Vol. 1 has the requestor id).

Request: requestor id (length byte counting itself, vendor id, serial number, optional bytes), then
CMD, STS, TNS and, for CMD 0x0F/0x06, a function code with its parameters.  Reply: the requestor
id, CMD|0x40, STS, TNS, an extended status byte when STS is 0xF0, and data.  The typed logical
reads and writes name a data-table address (file type, file number, element, sub-element).
"""
from __future__ import annotations

import struct
from typing import Any, ClassVar, Final

from otsensor.dissectors.enip.message import MAX_VALUES, Data, Detail, Message, ResponseData, ShortData, TypedValues, \
    need

# (command, function) -> name; CMD 0x0F and 0x06 carry a function code, others do not.
FUNCTIONS: Final[dict[tuple[int, int | None], str]] = {
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
LOGICAL: Final = {0xA1: (2, False), 0xA2: (3, False), 0xA9: (2, True), 0xAA: (3, True), 0xAB: (3, True)}
# SLC file types -> (letter, struct format of one element or None for raw)
FILE_TYPES: Final[dict[int, tuple[str, str | None]]] = {
    0x82: ("O", "H"), 0x83: ("I", "H"), 0x84: ("S", "H"), 0x85: ("B", "H"), 0x86: ("T", None),
    0x87: ("C", None), 0x88: ("R", None), 0x89: ("N", "h"), 0x8A: ("F", "f"), 0x8D: ("ST", None),
    0x8E: ("A", None), 0x91: ("L", "i"),
}
_U16: Final = struct.Struct("<H")
_REQUESTOR: Final = struct.Struct("<HI")     # vendor id, serial number


def function_name(command: int, function: int | None) -> str:
    name = FUNCTIONS.get((command, function))
    if name is not None:
        return name
    return f"unknown-0x{command:02x}" + ("" if function is None else f"/0x{function:02x}")


class PcccAddress:
    """A typed logical data-table address (file, element, sub-element) and, for a write, what is written."""

    __slots__ = ("file", "element", "sub", "byte_size", "payload")
    COLUMNS: ClassVar[str] = "pccc_address:string pccc_file:string pccc_element:count pccc_byte_size:count"

    def __init__(self, file: str, element: int, sub: int | None, byte_size: int,
                 payload: TypedValues | Data | None) -> None:
        self.file = file                  # e.g. N7: the file type letter and the file number
        self.element = element
        self.sub = sub
        self.byte_size = byte_size
        self.payload = payload

    def fill_row(self, row: dict[str, Any]) -> None:
        row["pccc_address"] = f"{self.file}:{self.element}" + (f".{self.sub}" if self.sub else "")
        row["pccc_file"] = self.file
        row["pccc_element"] = self.element
        row["pccc_byte_size"] = self.byte_size
        if self.payload is not None:
            self.payload.fill_row(row)


class PcccRequest(Detail):
    """Execute PCCC request: the requestor, the command and function, and what the function names."""

    __slots__ = ("vendor", "serial", "command", "tns", "function", "address", "mode", "request_status")
    COLUMNS: ClassVar[str] = ("pccc_requestor_vendor_id:count pccc_requestor_serial:string pccc_command:string "
                              "pccc_tns:count pccc_function:string pccc_function_code:string " + PcccAddress.COLUMNS
                              + " pccc_mode:count pccc_request_status:count")

    def __init__(self, vendor: int, serial: int, command: int, tns: int, function: int | None) -> None:
        self.vendor = vendor
        self.serial = serial
        self.command = command
        self.tns = tns
        self.function = function
        self.address: PcccAddress | None = None
        self.mode: int | None = None               # Change Mode's new mode
        self.request_status: int | None = None     # a non-zero STS in a request

    @property
    def function_name(self) -> str:
        return function_name(self.command, self.function)

    def fill_row(self, row: dict[str, Any]) -> None:
        row["pccc_requestor_vendor_id"] = self.vendor
        row["pccc_requestor_serial"] = f"0x{self.serial:08x}"
        row["pccc_command"] = f"0x{self.command:02x}"
        row["pccc_tns"] = self.tns
        row["pccc_function"] = self.function_name
        if self.function is not None:
            row["pccc_function_code"] = f"0x{self.function:02x}"
        if self.address is not None:
            self.address.fill_row(row)
        elif self.mode is not None:
            row["pccc_mode"] = self.mode
        elif self.request_status is not None:
            row["pccc_request_status"] = self.request_status


class PcccReply(Detail):
    """Execute PCCC reply: reply code, status, extended status, and the data returned (capped hex)."""

    __slots__ = ("reply_code", "status", "extended", "data")
    COLUMNS: ClassVar[str] = "pccc_reply_code:string pccc_status:string pccc_extended_status:string"

    def __init__(self, reply_code: int, status: int, extended: int | None, data: ResponseData | None) -> None:
        self.reply_code = reply_code
        self.status = status
        self.extended = extended
        self.data = data

    def fill_row(self, row: dict[str, Any]) -> None:
        row["pccc_reply_code"] = f"0x{self.reply_code:02x}"
        row["pccc_status"] = f"0x{self.status:02x}"
        if self.extended is not None:
            row["pccc_extended_status"] = f"0x{self.extended:02x}"
        if self.data is not None:
            self.data.fill_row(row)


def _field(data: bytes, pos: int) -> tuple[int, int]:
    """One address field: a byte, or 0xFF followed by a 16-bit value."""
    need(data, pos + 1, "address field")
    if data[pos] == 0xFF:
        need(data, pos + 3, "address field")
        return _U16.unpack_from(data, pos + 1)[0], pos + 3
    return data[pos], pos + 1


def _logical_address(data: bytes, function: int) -> PcccAddress:
    fields, writes = LOGICAL[function]
    need(data, 1, "typed logical address")
    size = data[0]
    file_no, pos = _field(data, 1)
    need(data, pos + 1, "file type")
    ftype = data[pos]
    element, pos = _field(data, pos + 1)
    sub = None
    if fields == 3:
        sub, pos = _field(data, pos)
    entry = FILE_TYPES.get(ftype)
    letter = entry[0] if entry else f"type0x{ftype:02x}"
    payload: TypedValues | Data | None = None
    if writes:
        rest = data[pos:]
        fmt = entry[1] if entry else None
        if fmt and function != 0xAB:
            width = struct.calcsize(fmt)
            count = min(len(rest) // width, MAX_VALUES)
            payload = TypedValues(list(struct.unpack_from(f"<{count}{fmt}", rest)) if count else [])
        else:
            payload = Data(rest)
    return PcccAddress(f"{letter}{file_no}", element, sub, size, payload)


def execute_pccc_request(msg: Message, _depth: int, _request: Message | None) -> None:
    data = msg.data
    need(data, 1, "PCCC requestor id")
    id_len = data[0]
    if id_len < 7 or len(data) < id_len + 4:
        raise ShortData(f"requestor id of {id_len} bytes, message of {len(data)}")
    vendor, serial = _REQUESTOR.unpack_from(data, 1)
    command, status, tns = data[id_len], data[id_len + 1], _U16.unpack_from(data, id_len + 2)[0]
    pos = id_len + 4
    function = None
    if command in (0x06, 0x0F, 0x07):
        need(data, pos + 1, "PCCC function code")
        function = data[pos]
        pos += 1
    request = PcccRequest(vendor, serial, command, tns, function)
    if command == 0x0F and function in LOGICAL:
        request.address = _logical_address(data[pos:], function)
    elif command == 0x0F and function == 0x80 and pos < len(data):
        request.mode = data[pos]
    elif status:
        request.request_status = status
    msg.detail = request


def execute_pccc_reply(msg: Message, _depth: int, _request: Message | None) -> None:
    data = msg.data
    need(data, 1, "PCCC requestor id")
    id_len = data[0]
    if len(data) < id_len + 4:
        raise ShortData(f"reply of {len(data)} bytes, requestor id of {id_len}")
    status = data[id_len + 1]
    pos = id_len + 4
    extended = None
    if status == 0xF0 and pos < len(data):
        extended = data[pos]
        pos += 1
    msg.detail = PcccReply(data[id_len], status, extended, ResponseData(data[pos:]) if pos < len(data) else None)
