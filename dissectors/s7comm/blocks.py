"""Block names, block transfer (functions 0x1A-0x1F) and PI-service parameters.

Block file names are ASCII: ``_0A00001P`` = file identifier ``_`` (complete
module; ``$`` = header only), block type as two hex digits (``0A`` = DB), block
number as five digits, destination file system (``P`` passive, ``A`` active,
``B`` both).
"""
from __future__ import annotations

import struct
from typing import Any, ClassVar

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
from otsensor.dissectors.s7comm.shapes import Detail, Malformed, S7Pdu, need

TRANSFER_HEAD = struct.Struct(">BBHI")   # function, status, unknown/error code, session (upload) id
_U32 = struct.Struct(">I")
_U16 = struct.Struct(">H")


def block_type_name(two_ascii: bytes) -> str | None:
    """``b"0A"`` -> ``"DB"``; unknown or non-hex -> named fallback."""
    try:
        code = int(two_ascii.decode("ascii"), 16)
    except (UnicodeDecodeError, ValueError):
        return f"unknown-{two_ascii.hex()}" if two_ascii else None
    return name_of(BLOCK_TYPES, code)


class BlockName:
    """A block file name and what it says: type, number, destination file system (8 or 9 ASCII bytes)."""

    __slots__ = ("filename", "block_type", "block_number", "destination_filesystem")

    def __init__(self, raw: bytes) -> None:
        name = raw[1:] if raw[:1] in (b"_", b"$") else raw
        self.filename = raw.decode("latin-1")
        self.block_type: str | None = None
        self.block_number: str | None = None              # None: too short to name a block
        self.destination_filesystem: str | None = None
        if len(name) >= 7:
            self.block_type = block_type_name(name[0:2])
            self.block_number = name[2:7].decode("latin-1")
            if len(name) >= 8:
                self.destination_filesystem = name[7:8].decode("latin-1")

    def fill(self, out: dict[str, Any], with_filename: bool = True) -> None:
        if with_filename:
            out["filename"] = self.filename
        if self.block_number is not None:
            out["block_type"] = self.block_type
            out["block_number"] = self.block_number
            if self.destination_filesystem is not None:
                out["destination_filesystem"] = self.destination_filesystem

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        self.fill(out)
        return out


def _digits(raw: bytes) -> int | None:
    """The number the ASCII digits of ``raw`` spell, other bytes skipped (str.isdigit would take ² and ³)."""
    text = "".join(ch for ch in raw.decode("latin-1") if "0" <= ch <= "9")
    return int(text) if text else None


class TransferJob(Detail):
    """A block transfer job: status, session id, the block's file name and (request download) its lengths."""

    __slots__ = ("function_status", "session_id", "end_error_code", "name", "has_lengths", "blocklength",
                 "mc7_length")
    COLUMNS: ClassVar[str] = ("function_status:count session_id:count end_error_code:count filename:string "
                              "block_type:string block_number:string destination_filesystem:string "
                              "blocklength:count mc7_length:count")

    def __init__(self, function_status: int, session_id: int, end_error_code: int | None) -> None:
        self.function_status = function_status
        self.session_id = session_id
        self.end_error_code = end_error_code          # End upload only
        self.name: BlockName | None = None
        self.has_lengths = False                      # Request download: the length part was present
        self.blocklength: int | None = None
        self.mc7_length: int | None = None

    def fill_row(self, row: dict[str, Any]) -> None:
        row["function_status"] = self.function_status
        row["session_id"] = self.session_id
        if self.end_error_code is not None:
            row["end_error_code"] = self.end_error_code
        if self.name is not None:
            self.name.fill(row)
        if self.has_lengths:
            row["blocklength"] = self.blocklength
            row["mc7_length"] = self.mc7_length


class TransferAck(Detail):
    """A block transfer answer: status, (start upload) session id and length, (upload/download) data size."""

    __slots__ = ("function_status", "upload_started", "session_id", "blocklength", "has_data", "data_length",
                 "more_data")
    COLUMNS: ClassVar[str] = ("function_status:count session_id:count blocklength:count data_length:count "
                              "more_data:bool")

    def __init__(self, function_status: int) -> None:
        self.function_status = function_status
        self.upload_started = False                   # Start upload: session id and block length follow
        self.session_id = 0
        self.blocklength: int | None = None
        self.has_data = False                         # Upload / Download block: a data part follows
        self.data_length = 0
        self.more_data = False

    def fill_row(self, row: dict[str, Any]) -> None:
        row["function_status"] = self.function_status
        if self.upload_started:
            row["session_id"] = self.session_id
            row["blocklength"] = self.blocklength
        if self.has_data:
            row["data_length"] = self.data_length
            row["more_data"] = self.more_data


def decode_transfer(pdu: S7Pdu, _request: S7Pdu | None) -> None:
    """Request download / Download block / Download ended / Start upload / Upload / End upload."""
    p = pdu.param
    if pdu.rosctr == ROSCTR_JOB:
        need(p, TRANSFER_HEAD.size, "transfer parameter")
        _func, status, code, session = TRANSFER_HEAD.unpack_from(p)
        job = TransferJob(status, session, code if pdu.function == F_END_UPLOAD else None)
        pdu.detail = job
        if len(p) > TRANSFER_HEAD.size:
            name_len = p[8]
            raw = p[9: 9 + name_len]
            if len(raw) != name_len:
                raise Malformed(f"file name of {name_len} bytes truncated to {len(raw)}")
            job.name = BlockName(raw)
            rest = p[9 + name_len:]
            if pdu.function == F_REQ_DOWNLOAD and len(rest) >= 1 + 13:
                # length part: '1', load memory length (6 digits), MC7 code length (6 digits)
                job.has_lengths = True
                job.blocklength = _digits(rest[2:8])
                job.mc7_length = _digits(rest[8:14])
    elif pdu.rosctr == ROSCTR_ACK_DATA and len(p) >= 2:
        ack = TransferAck(p[1])
        pdu.detail = ack
        if pdu.function == F_START_UPLOAD and len(p) >= 9:
            ack.upload_started = True
            ack.session_id = _U32.unpack_from(p, 4)[0]
            n = p[8]
            ack.blocklength = _digits(p[9: 9 + n] if n else p[9:])
        if len(pdu.data) >= 4:       # Upload / Download block data: length, 0x00fb, payload
            ack.has_data = True
            ack.data_length = _U16.unpack_from(pdu.data)[0]
            ack.more_data = bool(p[1] & 0x01)


class PiService(Detail):
    """A PI-Service (or PLC Stop) job: the service and its parameters (blocks, start type, arguments)."""

    __slots__ = ("service", "service_name", "blocks", "arguments", "start_type", "parse_note")
    COLUMNS: ClassVar[str] = ("pi_service:string pi_service_name:string pi_blocks:json pi_arguments:string "
                              "start_type:string pi_parse:string")

    def __init__(self, service: str, service_name: str | None = None) -> None:
        self.service = service
        self.service_name = service_name      # None for PLC Stop, which names its service only
        self.blocks: list[BlockName] | None = None
        self.arguments: str | None = None
        self.start_type: str | None = None
        self.parse_note: str | None = None    # why only part of the parameter was understood

    def fill_row(self, row: dict[str, Any]) -> None:
        row["pi_service"] = self.service
        if self.service_name is not None:
            row["pi_service_name"] = self.service_name
        if self.blocks is not None:
            row["pi_blocks"] = [block.as_dict() for block in self.blocks]
        if self.arguments is not None:
            row["pi_arguments"] = self.arguments
        if self.start_type is not None:
            row["start_type"] = self.start_type
        if self.parse_note is not None:
            row["pi_parse"] = self.parse_note


def pi_service(service: str, block: bytes) -> PiService:
    """A PI service with its parameters: blocks for _INSE/_DELE, start type for P_PROGRAM."""
    pi = PiService(service, PI_SERVICES.get(service) or f"unknown-{service}")
    if service in ("_INSE", "_INS2", "_DELE") and len(block) >= 2:
        count = block[0]
        names = [BlockName(block[2 + 8 * i: 10 + 8 * i]) for i in range(min(count, 64))]
        pi.blocks = [n for n in names if n.block_number is not None]
    elif service == "P_PROGRAM":
        args = block.decode("latin-1").strip()
        pi.arguments = args
        # P_PROGRAM without argument = restart keeping data (snap7's "hot start"); "C" = cold start
        pi.start_type = "cold" if args.startswith("C") else "hot"
    elif block:
        pi.arguments = block.decode("latin-1")
    return pi


def fallback_service(param: bytes) -> PiService | None:
    """The service named at the end of a PI parameter that did not parse (e.g. snap7's _DELE job)."""
    for name in PI_SERVICES:
        if param.endswith(name.encode("ascii")):
            service = PiService(name, PI_SERVICES[name])
            service.parse_note = "service name only"
            return service
    return None
