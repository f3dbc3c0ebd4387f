"""Hand-built S7 frames for the unit tests, written from the protocol layout (RFC 1006, ISO 8073, S7comm).

Each builder documents the bytes it lays down; the tests state expected
values independently of the dissector's code.
"""
from __future__ import annotations

import struct

from otsensor.dissectors.base import Direction, Record
from otsensor.dissectors.s7comm import S7Dissector


def tpkt(payload: bytes) -> bytes:
    return b"\x03\x00" + struct.pack(">H", len(payload) + 4) + payload     # version 3, reserved, length


def dt(user_data: bytes, eot: bool = True) -> bytes:
    """COTP DT: LI=2, code 0xF0, EOT bit | TPDU number 0."""
    return tpkt(b"\x02\xf0" + (b"\x80" if eot else b"\x00") + user_data)


def cr(calling: int = 0x0100, called: int = 0x0102, code: int = 0xE0) -> bytes:
    """COTP CR (or CC): dst-ref 0, src-ref 1, class 0, TPDU size 1024, calling and called TSAP."""
    params = b"\xc0\x01\x0a" + b"\xc1\x02" + struct.pack(">H", calling) + b"\xc2\x02" + struct.pack(">H", called)
    body = bytes([code]) + b"\x00\x00\x00\x01\x00" + params
    return tpkt(bytes([len(body)]) + body)


def s7(rosctr: int, ref: int, param: bytes, data: bytes = b"", err: tuple[int, int] | None = None) -> bytes:
    """S7comm header: 0x32, ROSCTR, redundancy id 0, PDU ref, param length, data length[, error class, code]."""
    head = struct.pack(">BBHHHH", 0x32, rosctr, 0, ref, len(param), len(data))
    if rosctr in (2, 3):
        head += bytes(err or (0, 0))
    return head + param + data


def any_item(area: int, db: int, byte: int, count: int, tsize: int = 0x02, bit: int = 0) -> bytes:
    """S7ANY var spec: 0x12, length 10, syntax 0x10, transport size, count, DB, area, 3-byte bit address."""
    return bytes([0x12, 0x0A, 0x10, tsize]) + struct.pack(">HHB", count, db, area) + ((byte << 3) | bit).to_bytes(3, "big")


def data_item(value: bytes, ret: int = 0xFF, tsize: int = 0x04, in_bits: bool = True) -> bytes:
    length = len(value) * 8 if in_bits else len(value)
    return bytes([ret, tsize]) + struct.pack(">H", length) + value


def ud_param(type_group: int, sub: int, seq: int = 0, last: bool = True, long: bool = False, error: int = 0) -> bytes:
    """User-data parameter: 00 01 12, length 4 (or 8), method, type<<4|group, sub-function, sequence (and in 8:
    data unit reference, last-unit flag, 16-bit error code)."""
    if long:
        return (b"\x00\x01\x12\x08\x12" + bytes([type_group, sub, seq]) + bytes([seq, 0 if last else 1])
                + struct.pack(">H", error))
    return b"\x00\x01\x12\x04\x11" + bytes([type_group, sub, seq])


def ud_data(payload: bytes, ret: int = 0xFF, tsize: int = 0x09) -> bytes:
    return bytes([ret, tsize]) + struct.pack(">H", len(payload)) + payload


def plus(version: int, data: bytes, trailer: bool = True) -> bytes:
    """S7comm-plus: 0x72, version, data length, data, trailer 0x72 version 00 00."""
    frame = bytes([0x72, version]) + struct.pack(">H", len(data)) + data
    return frame + (bytes([0x72, version, 0, 0]) if trailer else b"")


def plus_request(function: int, seq: int, session: int = 0x120, body: bytes = b"") -> bytes:
    return b"\x31\x00\x00" + struct.pack(">HHHI", function, 0, seq, session) + b"\x36" + body


def plus_response(function: int, seq: int, body: bytes = b"") -> bytes:
    return b"\x32\x00\x00" + struct.pack(">HHH", function, 0, seq) + b"\x36" + body


def run(chunks: list[tuple[Direction, bytes]], close: bool = True) -> list[Record]:
    dis = S7Dissector({})
    out: list[Record] = []
    for i, (direction, data) in enumerate(chunks):
        out += dis.feed(data, direction, float(i))
    if close:
        out += dis.close(99.0)
    return out


def of(records: list[Record], log: str) -> list[Record]:
    return [r for r in records if r.LOG == log]


O, R = Direction.ORIG, Direction.RESP
