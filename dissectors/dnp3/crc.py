"""DNP3 CRC-16 (IEEE 1815-2012 9.2.3.1): polynomial 0x3D65, reflected, complemented, sent low byte first."""
from __future__ import annotations


def _build_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA6BC if crc & 1 else crc >> 1  # 0xA6BC is 0x3D65 bit-reversed
        table.append(crc)
    return tuple(table)


_TABLE = _build_table()


def crc16(data: bytes | bytearray) -> int:
    """The DNP3 CRC of ``data`` as an integer (compare with the little-endian value on the wire)."""
    crc = 0
    table = _TABLE
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return ~crc & 0xFFFF


def crc_ok(data: bytes, wire: bytes) -> bool:
    """True when the two ``wire`` bytes are the CRC of ``data``."""
    return len(wire) == 2 and crc16(data) == wire[0] | (wire[1] << 8)


def with_crc(data: bytes) -> bytes:
    """``data`` followed by its CRC, as a sender puts it on the wire (used by tests and examples)."""
    return data + crc16(data).to_bytes(2, "little")
