"""Reading a gzip-compressed capture so that damage costs only what comes after it.

The standard library's ``gzip.GzipFile`` raises ``EOFError`` on a cut stream
and ``zlib.error`` (not an ``OSError``) on corrupt deflate data, and a large
``read`` that meets either loses everything it had decompressed in that call.
A capture cut short while it was copied, or damaged on disk, should instead
behave like a cut pcap: every packet before the damage is analysed, and the
damage is reported with where it is.  So :class:`GzipStream` hands over every
byte zlib could produce before the damage, then raises
:class:`GzipDataError` on the next read.
"""
from __future__ import annotations

import zlib
from typing import Protocol

READ_SIZE = 64 << 10         # compressed bytes per step
GZIP_WBITS = 16 + zlib.MAX_WBITS   # zlib parses the gzip header and checks the trailer's CRC-32 and length
GZIP_FIRST_BYTE = 0x1F

_ZLIB_REASONS = {   # what zlib's terse messages mean for a capture file
    "incorrect data check": "the CRC-32 in the gzip trailer does not match the data",
    "incorrect length check": "the length in the gzip trailer does not match the data",
    "incorrect header check": "bad gzip header",
}


class Readable(Protocol):
    """What the readers read from: a binary file, a pipe, or a view of one (``read(n)`` returns bytes)."""

    def read(self, n: int, /) -> bytes: ...


class GzipDataError(Exception):
    """The gzip data is cut short or corrupt; everything before the damage was returned."""


class GzipStream:
    """A forward-only, read-only view of the decompressed bytes of a gzip file (every member, in order)."""

    def __init__(self, raw: Readable) -> None:
        self.raw = raw             # its read returns what has arrived (see files._Prefixed)
        self.error: GzipDataError | None = None   # the damage, once met
        self._member: zlib._Decompress | None = None   # the current member's decompressor; None between members
        self._input = b""          # compressed bytes read but not yet decompressed
        self._out = b""            # decompressed bytes not yet handed over
        self._compressed_pos = 0   # bytes of the file given to zlib so far
        self._end = False

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes; fewer only at the end or just before the damage, which the next call raises."""
        return self._take(n, whole=True)

    def read1(self, n: int) -> bytes:
        """Up to ``n`` bytes of what has arrived (on a pipe, a read does not wait for more than that)."""
        return self._take(n, whole=False)

    def _take(self, n: int, whole: bool) -> bytes:
        parts, have = [self._out], len(self._out)
        while have < n and (whole or not have) and not self._end and self.error is None:
            data = self._inflate()
            parts.append(data)
            have += len(data)
        buf = b"".join(parts)
        if not buf and self.error is not None:
            raise self.error
        self._out = buf[n:]
        return buf[:n]

    def _inflate(self) -> bytes:
        """Decompress the next piece of the file; at damage, return what came before it and set ``error``."""
        chunk = self._input or self.raw.read(READ_SIZE)
        self._input = b""
        if not chunk:
            if self._member is not None:
                self.error = GzipDataError(f"gzip data cut short: the file ends at byte {self._compressed_pos} "
                                           "before the end of the compressed stream")
            self._end = True
            return b""
        if self._member is None:   # a new member, or the zero padding some tools write after the last one
            padded = len(chunk)
            chunk = chunk.lstrip(b"\x00")
            self._compressed_pos += padded - len(chunk)
            if not chunk:
                return b""
            if chunk[0] != GZIP_FIRST_BYTE:
                self.error = GzipDataError(f"bytes at byte {self._compressed_pos} after the end of the gzip data "
                                           "are not gzip data")
                return b""
            self._member = zlib.decompressobj(GZIP_WBITS)
        member = self._member
        before = member.copy()   # a few microseconds; lets a failure be replayed to find where it starts
        try:
            out = member.decompress(chunk)
        except zlib.error as exc:
            return self._salvage(before, chunk, exc)
        if member.eof:
            self._input = member.unused_data
            self._member = None
        self._compressed_pos += len(chunk) - len(self._input)
        return out

    def _salvage(self, member: zlib._Decompress, chunk: bytes, exc: zlib.error) -> bytes:
        """Replay the failed chunk a byte at a time: keep all zlib produced before the byte it rejected."""
        parts = []
        for i in range(len(chunk)):
            try:
                parts.append(member.decompress(chunk[i:i + 1]))
            except zlib.error:
                self._compressed_pos += i
                break
        message = str(exc).rsplit(": ", 1)[-1]
        reason = _ZLIB_REASONS.get(message, f"corrupt compressed data ({message})")
        self.error = GzipDataError(f"gzip data damaged at byte {self._compressed_pos}: {reason}")
        return b"".join(parts)
