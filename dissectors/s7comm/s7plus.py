"""S7comm-plus (protocol id 0x72, S7-1200/1500) header decoding.

Frame: 0x72, protocol version, data length (2), data, trailer 0x72 version 00 00
(present only on the last fragment of a PDU).  Version 3 data starts with an
integrity part (digest length 0x20 + 32-byte digest).  Data: opcode (0x31
request, 0x32 response, 0x33 notification), reserved (2), function (2),
reserved (2), sequence number (2), then on requests the session id (4) and on
both a transport-flags byte.  The payload is only partly understood in public
sources, so operations are named only where the unprotected bytes say so
(see :func:`recognise`); everything else is reported as ``unrecognised``.
"""
from __future__ import annotations

import struct

from otsensor.dissectors.s7comm.constants import (
    PLUS_AID_OPERATING_STATE_REQ,
    PLUS_F_CREATE_OBJECT,
    PLUS_F_SET_VARIABLE,
    PLUS_OP_NOTIFICATION,
    PLUS_OP_REQUEST,
    PLUS_OP_RESPONSE,
    PLUS_OP_RESPONSE2,
    PLUS_OPCODES,
    PLUS_OPERATING_STATE_VALUES,
    PLUS_READ_FUNCTIONS,
    PLUS_RID_CPU_EXEC_UNIT,
    PLUS_WRITE_FUNCTIONS,
)
from otsensor.dissectors.s7comm.shapes import Malformed

PROTOCOL_ID = 0x72
HEADER = struct.Struct(">BBH")                 # 0x72, version, data length
FIXED = struct.Struct(">BHHHH")                # opcode, reserved, function, reserved, sequence
VERSIONS = {0x01: "V1", 0x02: "V2", 0x03: "V3", 0xFE: "Extended Keep Alive", 0xFF: "Keep Alive"}
KEEPALIVE_VERSIONS = frozenset({0xFE, 0xFF})
DIGEST_LENGTH = 0x20


class PlusPdu:
    """One S7comm-plus PDU: header, and the fixed part of its data where it is unprotected."""

    __slots__ = ("version", "data_length", "opcode", "function", "sequence", "session_id", "transport_flags",
                 "integrity_part", "last_fragment", "continuation", "body", "problems")

    def __init__(self, version: int, data_length: int, continuation: bool) -> None:
        self.version = version
        self.data_length = data_length
        self.opcode: int | None = None
        self.function: int | None = None
        self.sequence: int | None = None
        self.session_id: int | None = None
        self.transport_flags: int | None = None
        self.integrity_part: bool | None = None
        self.last_fragment = True
        self.continuation = continuation
        self.body = b""
        self.problems: list[tuple[str, str]] = []


class PlusOperation:
    """What a request does, where its unprotected bytes say so: a name and, for SetVariable, its target."""

    __slots__ = ("name", "object_id", "attribute_id", "requested_state")

    def __init__(self, name: str, object_id: int | None = None, attribute_id: int | None = None,
                 requested_state: str | None = None) -> None:
        self.name = name
        self.object_id = object_id
        self.attribute_id = attribute_id
        self.requested_state = requested_state


def parse(tsdu: bytes, continuation: bool) -> PlusPdu:
    """Parse one 0x72 TSDU; ``continuation`` = the previous one in this direction lacked its trailer."""
    if len(tsdu) < HEADER.size:
        raise Malformed(f"S7comm-plus header needs 4 bytes, got {len(tsdu)}")
    _proto, version, dlen = HEADER.unpack_from(tsdu)
    pdu = PlusPdu(version, dlen, continuation)
    if version not in VERSIONS:
        pdu.problems.append(("s7comm_plus.unknown_version", f"version 0x{version:02x}"))
    data = tsdu[HEADER.size: HEADER.size + dlen]
    if len(data) < dlen:
        pdu.problems.append(("s7comm_plus.truncated_pdu", f"{dlen} data bytes declared, {len(data)} present"))
    trailer = tsdu[HEADER.size + dlen:]
    pdu.last_fragment = len(trailer) >= 4
    if trailer and trailer != bytes((PROTOCOL_ID, version, 0, 0)):
        pdu.problems.append(("s7comm_plus.bad_trailer", f"trailer {trailer[:8].hex()}"))
    if version in KEEPALIVE_VERSIONS or continuation:
        return pdu
    _parse_data(pdu, data)
    return pdu


def _parse_data(pdu: PlusPdu, data: bytes) -> None:
    pos = 0
    if pdu.version == 0x03:
        pdu.integrity_part = len(data) > 0 and data[0] == DIGEST_LENGTH
        if pdu.integrity_part:
            pos = 1 + DIGEST_LENGTH
    elif pdu.version == 0x01:
        pdu.integrity_part = False
    if len(data) < pos + 1:
        pdu.problems.append(("s7comm_plus.truncated_pdu", "no opcode"))
        return
    pdu.opcode = data[pos]
    if pdu.opcode not in PLUS_OPCODES:
        pdu.problems.append(("s7comm_plus.unknown_opcode", f"opcode 0x{pdu.opcode:02x}"))
        return
    if pdu.opcode == PLUS_OP_NOTIFICATION:
        return
    if len(data) < pos + FIXED.size:
        pdu.problems.append(("s7comm_plus.truncated_pdu", f"fixed part needs {FIXED.size} bytes"))
        return
    _op, _r1, pdu.function, _r2, pdu.sequence = FIXED.unpack_from(data, pos)
    pos += FIXED.size
    if pdu.opcode == PLUS_OP_REQUEST and len(data) >= pos + 5:
        pdu.session_id = struct.unpack_from(">I", data, pos)[0]
        pos += 4
    if len(data) > pos:
        pdu.transport_flags = data[pos]
        pos += 1
    pdu.body = bytes(data[pos: pos + 64])     # enough for the recognisers below


def is_response(pdu: PlusPdu) -> bool:
    return pdu.opcode in (PLUS_OP_RESPONSE, PLUS_OP_RESPONSE2)


def read_vlq(buf: bytes, pos: int) -> tuple[int, int]:
    """Siemens variable-length uint32: 7 bits per byte, high bit = more bytes follow (max 5 bytes)."""
    value = 0
    for i in range(5):
        if pos + i >= len(buf):
            raise ValueError("VLQ truncated")
        byte = buf[pos + i]
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            return value, pos + i + 1
    raise ValueError("VLQ longer than 5 bytes")


def recognise(pdu: PlusPdu) -> PlusOperation:
    """Name the operation of a request where the unprotected bytes identify it, else 'unrecognised'."""
    if pdu.version in KEEPALIVE_VERSIONS:
        return PlusOperation("keep_alive")
    if pdu.opcode == PLUS_OP_NOTIFICATION:
        return PlusOperation("notification")
    if pdu.function == PLUS_F_CREATE_OBJECT and pdu.version == 0x01:
        return PlusOperation("session_setup")      # the unprotected V1 CreateObject opens the ServerSession
    if pdu.function == PLUS_F_SET_VARIABLE:
        target = set_variable_target(pdu.body)
        object_id, attribute_id = (None, None) if target is None else target
        state = _operating_state_request(pdu.body)
        if state is not None:
            operation = {"STOP": "cpu_stop", "RUN": "cpu_start"}.get(state, "operating_state_request")
            return PlusOperation(operation, object_id, attribute_id, state)
        return PlusOperation("write", object_id, attribute_id)
    if pdu.function in PLUS_READ_FUNCTIONS:
        return PlusOperation("read")
    if pdu.function in PLUS_WRITE_FUNCTIONS:
        return PlusOperation("write")
    return PlusOperation("unrecognised")


def created_object_id(resp: PlusPdu) -> int | None:
    """First object id a CreateObject response returns (return value VLQ, id count VLQ, ids VLQ).

    For the V1 CreateObject that opens a session this is the session id the client's later
    requests carry (paket_stop.pcapng frame 95: ``00 02 870c 870d`` -> 0x38c, used from frame 97 on).
    """
    try:
        _ret, pos = read_vlq(resp.body, 0)
        count, pos = read_vlq(resp.body, pos)
        return read_vlq(resp.body, pos)[0] if count else None
    except ValueError:
        return None


def set_variable_target(body: bytes) -> tuple[int, int] | None:
    """(object id, attribute id) of a SetVariable request: object id (4), item count (VLQ), attribute (VLQ)."""
    try:
        if len(body) < 4:
            return None
        _items, pos = read_vlq(body, 4)
        return struct.unpack_from(">I", body)[0], read_vlq(body, pos)[0]
    except ValueError:
        return None


def _operating_state_request(body: bytes) -> str | None:
    """SetVariable(object 52 = CPU exec unit, attribute 2167 = operatingStateREQ, value): TIA start/stop."""
    if set_variable_target(body) != (PLUS_RID_CPU_EXEC_UNIT, PLUS_AID_OPERATING_STATE_REQ):
        return None
    try:
        _items, pos = read_vlq(body, 4)
        _attribute, pos = read_vlq(body, pos)
        if pos + 2 >= len(body):
            return None
        value, _ = read_vlq(body, pos + 2)       # skip datatype flags and datatype bytes
    except ValueError:
        return None
    return PLUS_OPERATING_STATE_VALUES.get(value, f"unknown-{value}")
