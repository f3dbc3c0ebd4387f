"""DNP3 data link layer (IEEE 1815-2012 clause 9): framing, header and block CRCs.

Frame: 0x05 0x64, length (control..user data, CRCs excluded, 5..255), control,
destination (LE), source (LE), header CRC, then user data in blocks of up to 16
bytes each followed by its CRC.
"""
from __future__ import annotations

import struct
from typing import Final

from otsensor.dissectors.dnp3.crc import crc16

START = b"\x05\x64"
HEADER_SIZE = 10
MAX_FRAME = 292                   # 10 + 250 user octets + 16 block CRCs
_HEADER = struct.Struct("<2sBBHHH")

# Results of :func:`next_frame`
FRAME: Final = 0
NEED: Final = 1
JUNK: Final = 2
BAD_HEADER_CRC: Final = 3
BAD_LENGTH: Final = 4


class LinkFrame:
    """One link frame whose header CRC verified."""

    __slots__ = ("length", "control", "destination", "source", "data", "bad_blocks", "size")

    def __init__(self, length: int, control: int, destination: int, source: int, data: bytes,
                 bad_blocks: tuple[int, ...], size: int) -> None:
        self.length = length
        self.control = control
        self.destination = destination
        self.source = source
        self.data = data                # user data, CRCs removed; blocks with a bad CRC left out
        self.bad_blocks = bad_blocks    # indices of 16-byte blocks whose CRC failed
        self.size = size                # bytes the frame occupied on the wire

    @property
    def from_master(self) -> bool:  # DIR bit (9.2.4.1.3.1)
        return bool(self.control & 0x80)

    @property
    def primary(self) -> bool:      # PRM bit
        return bool(self.control & 0x40)

    @property
    def function(self) -> int:
        return self.control & 0x0F


def frame_size(length: int) -> int:
    """Wire size of a frame whose length octet is ``length`` (>= 5)."""
    user = length - 5
    return HEADER_SIZE + user + 2 * ((user + 15) // 16)


def next_frame(buf: bytes | bytearray, pos: int) -> tuple[int, int, LinkFrame | None]:
    """Parse the frame at ``buf[pos:]``.

    Returns ``(kind, new_pos, frame)``: ``FRAME`` with the frame; ``NEED`` (wait for
    more bytes, ``new_pos == pos``); ``JUNK``, having skipped up to the next start octets
    (or up to the last byte, which may begin one); ``BAD_HEADER_CRC`` / ``BAD_LENGTH``
    (the length octet ``buf[pos + 2]`` is below 5), having skipped the two start octets so
    the caller rescans (the length cannot be trusted).
    """
    avail = len(buf) - pos
    if avail < 2:
        return NEED, pos, None
    if buf[pos] != 0x05 or buf[pos + 1] != 0x64:
        nxt = buf.find(START, pos + 1)
        if nxt < 0:
            nxt = len(buf) - 1 if buf[-1] == 0x05 else len(buf)
        return JUNK, nxt, None
    if avail < HEADER_SIZE:
        return NEED, pos, None
    _start, length, control, dst, src, crc = _HEADER.unpack_from(buf, pos)
    if crc16(buf[pos:pos + 8]) != crc:
        return BAD_HEADER_CRC, pos + 2, None
    if length < 5:
        return BAD_LENGTH, pos + 2, None
    size = frame_size(length)
    if avail < size:
        return NEED, pos, None
    data, bad = _unblock(buf, pos + HEADER_SIZE, length - 5)
    return FRAME, pos + size, LinkFrame(length, control, dst, src, data, bad, size)


def _unblock(buf: bytes | bytearray, pos: int, user: int) -> tuple[bytes, tuple[int, ...]]:
    """User data with block CRCs checked and removed (9.2.3.1: one CRC per 16 octets)."""
    if 0 < user <= 16:              # one block: most frames (requests, short responses)
        block = bytes(buf[pos:pos + user])
        if crc16(block) == buf[pos + user] | (buf[pos + user + 1] << 8):
            return block, ()
        return b"", (0,)
    parts = []
    bad = []
    end = pos + user + 2 * ((user + 15) // 16)
    index = 0
    while pos < end:
        stop = min(pos + 16, end - 2)
        chunk = buf[pos:stop]
        if crc16(chunk) == buf[stop] | (buf[stop + 1] << 8):
            parts.append(chunk)
        else:
            bad.append(index)
        pos = stop + 2
        index += 1
    return b"".join(parts), tuple(bad)


def header_crc_ok(data: bytes | bytearray) -> bool:
    """True when ``data`` starts with a DNP3 link header whose CRC verifies (the content probe)."""
    if len(data) < HEADER_SIZE or data[0] != 0x05 or data[1] != 0x64:
        return False
    return crc16(data[:8]) == (data[8] | (data[9] << 8)) and data[2] >= 5
