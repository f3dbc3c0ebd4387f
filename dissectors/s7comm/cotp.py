"""TPKT (RFC 1006) framing and ISO 8073 COTP TPDU parsing (RFC 905 section 13).

Pure functions: bytes in, parsed objects out.  S7 runs COTP class 0 over
TPKT on TCP 102; a TSDU may be split over several DT TPDUs, the last of
which carries the EOT bit.
"""
from __future__ import annotations

import struct
from typing import Final

from otsensor.dissectors.s7comm.constants import (
    COTP_PARAM_CALLED_TSAP,
    COTP_PARAM_CALLING_TSAP,
    COTP_PARAM_TPDU_SIZE,
    COTP_PDU_TYPES,
)

TPKT_HEADER: Final = struct.Struct(">BBH")      # version 3, reserved, total length incl. header
COTP_CONN: Final = struct.Struct(">HHB")        # CR/CC/DR: dst-ref, src-ref, class/option (or reason)
TPKT_VERSION: Final = 3
TPKT_MIN_LENGTH: Final = 7                      # 4 bytes TPKT + smallest COTP (DT: LI, code, EOT/NR)
TPKT_MAX_LENGTH: Final = 65535

CR: Final = 0xE0
CC: Final = 0xD0
DR: Final = 0x80
DC: Final = 0xC0
DT: Final = 0xF0
ED: Final = 0x10
AK: Final = 0x60
EA: Final = 0x20
RJ: Final = 0x50
ER: Final = 0x70
# CR/CC carry the credit in the low nibble (class 0: always 0); other codes are the whole byte
_CREDIT_CODES: Final = frozenset({CR, CC, AK, RJ})


class CotpError(ValueError):
    """A COTP TPDU that violates ISO 8073 framing; ``name`` is the anomaly name."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(reason)
        self.name = name
        self.reason = reason


class CotpPdu:
    """One COTP TPDU: its code and the fixed and variable parts of a connection-management header."""

    __slots__ = ("code", "eot", "dst_ref", "src_ref", "class_option", "reason", "params", "user_data")

    def __init__(self, code: int, eot: bool = True, dst_ref: int | None = None, src_ref: int | None = None,
                 user_data: bytes = b"") -> None:
        self.code = code                        # TPDU code with credit nibble removed (0xE0, 0xF0, ...)
        self.eot = eot                          # DT only: last TPDU of the TSDU
        self.dst_ref = dst_ref
        self.src_ref = src_ref
        self.class_option: int | None = None
        self.reason: int | None = None          # DR only
        self.params: dict[int, bytes] = {}
        self.user_data = user_data              # DT/ED payload (S7comm / S7comm-plus)


def tpdu_code(byte: int) -> int:
    """The TPDU code of COTP byte 1 (credit nibble stripped where the code has one)."""
    high = byte & 0xF0
    return high if high in _CREDIT_CODES else byte


def is_cotp_code(byte: int) -> bool:
    return tpdu_code(byte) in COTP_PDU_TYPES


def tpkt_frame_length(buf: bytes | bytearray | memoryview, offset: int = 0) -> int | None:
    """Length of the TPKT frame at ``offset``, None if the header is not complete yet.

    Raises CotpError when the header is not a TPKT header (framing lost).
    """
    if len(buf) - offset < 4:
        return None
    version, _reserved, length = TPKT_HEADER.unpack_from(buf, offset)
    if version != TPKT_VERSION:
        raise CotpError("cotp.bad_tpkt_version", f"TPKT version {version}, expected 3")
    if length < TPKT_MIN_LENGTH:
        raise CotpError("cotp.bad_tpkt_length", f"TPKT length {length} below the minimum of {TPKT_MIN_LENGTH}")
    return length


def dt_user_data(tpdu: bytes) -> tuple[bool, bytes] | None:
    """(EOT, user data) of a well-formed DT TPDU, S7's every data unit, without building a CotpPdu.

    None for anything else, which :func:`parse_cotp` then parses or explains.
    """
    if len(tpdu) < 3 or tpdu[1] != DT:
        return None
    li = tpdu[0]
    if li < 2 or li >= len(tpdu) or li == 255:
        return None
    return bool(tpdu[2] & 0x80), tpdu[li + 1:]


def parse_cotp(tpdu: bytes) -> CotpPdu:
    """Parse one COTP TPDU (the TPKT payload); raises CotpError on a malformed header."""
    if len(tpdu) < 2:
        raise CotpError("cotp.truncated", "COTP TPDU shorter than its 2-byte fixed part")
    li = tpdu[0]
    if li == 0 or li + 1 > len(tpdu) or li == 255:
        raise CotpError("cotp.bad_length_indicator", f"length indicator {li} does not fit a {len(tpdu)}-byte TPDU")
    code = tpdu_code(tpdu[1])
    if code not in COTP_PDU_TYPES:
        raise CotpError("cotp.unknown_pdu_type", f"unknown TPDU code 0x{tpdu[1]:02x}")
    header, user_data = tpdu[: li + 1], tpdu[li + 1:]
    if code in (DT, ED):
        if li < 2:
            raise CotpError("cotp.bad_length_indicator", f"DT/ED header with length indicator {li}")
        return CotpPdu(code, eot=bool(header[2] & 0x80), user_data=user_data)
    if code in (CR, CC, DR, DC):
        return _parse_connection_tpdu(code, header)
    return CotpPdu(code)


def _parse_connection_tpdu(code: int, header: bytes) -> CotpPdu:
    if len(header) < 2 + COTP_CONN.size - (1 if code == DC else 0):
        raise CotpError("cotp.truncated", f"{COTP_PDU_TYPES[code]} header too short ({len(header)} bytes)")
    if code == DC:
        dst, src = struct.unpack_from(">HH", header, 2)
        return CotpPdu(code, dst_ref=dst, src_ref=src)
    dst, src, third = COTP_CONN.unpack_from(header, 2)
    pdu = CotpPdu(code, dst_ref=dst, src_ref=src)
    if code == DR:
        pdu.reason = third
    else:
        pdu.class_option = third
    pdu.params = _parse_params(header[2 + COTP_CONN.size:])
    return pdu


def _parse_params(buf: bytes) -> dict[int, bytes]:
    """Variable part: (code, length, value) triples (RFC 905 13.3.4); stops at a truncated one."""
    params: dict[int, bytes] = {}
    pos = 0
    while pos + 2 <= len(buf):
        code, length = buf[pos], buf[pos + 1]
        if pos + 2 + length > len(buf):
            raise CotpError("cotp.bad_parameter", f"parameter 0x{code:02x} length {length} overruns the header")
        params[code] = bytes(buf[pos + 2: pos + 2 + length])
        pos += 2 + length
    if pos < len(buf):
        raise CotpError("cotp.bad_parameter", f"{len(buf) - pos} stray byte(s) after the last parameter")
    return params


def tsap_value(params: dict[int, bytes], code: int) -> int | None:
    raw = params.get(code)
    if raw is None or not raw:
        return None
    return int.from_bytes(raw[:4], "big")


def rack_slot(tsap: int | None) -> tuple[int | None, int | None, int | None]:
    """(connection type, rack, slot) of an S7 TSAP: high byte type, low byte rack<<5 | slot."""
    if tsap is None or tsap > 0xFFFF:
        return None, None, None
    low = tsap & 0xFF
    return tsap >> 8, low >> 5, low & 0x1F


def tpdu_size(params: dict[int, bytes]) -> int | None:
    raw = params.get(COTP_PARAM_TPDU_SIZE)
    if not raw or raw[0] > 16:
        return None
    return 1 << raw[0]


CALLING, CALLED = COTP_PARAM_CALLING_TSAP, COTP_PARAM_CALLED_TSAP
