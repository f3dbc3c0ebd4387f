"""Capture file readers: classic pcap (both byte orders, micro/nanosecond) and pcapng, optionally gzip-compressed.

Readers yield ``(ts, linktype, frame)`` tuples.  They read the file in large
chunks rather than per record, because per-record ``read`` calls dominate the
cost of a pure-Python reader; memory stays bounded by the chunk size whatever
the file size.  The same readers take a stream that cannot seek (``tcpdump -w -``
into a pipe, see :func:`open_stream`): each refill takes what one read returns, so a
record is handed on as soon as its bytes have arrived.  A file cut mid-record ends the iteration and leaves a
``truncated`` message on the reader, so the caller can analyse everything
before the cut and warn where it stopped; a gzip stream cut short or damaged
does the same (see ``gzstream``).  Other oddities the reader reads past (an
unusual pcap version) are left in ``warnings``.
"""
from __future__ import annotations

import struct
from typing import BinaryIO, Callable, Final, Iterator

from otsensor.sensor.capture.gzstream import GzipDataError, GzipStream, Readable
from otsensor.sensor.capture.linktypes import LINKTYPE_NAMES

CHUNK = 4 << 20
MAX_RECORD: Final = 16 << 20   # a record or block above this is corruption, not data (libpcap snaplen is 256 KiB)

PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
GZIP_MAGIC = b"\x1f\x8b"
# libpcap writes 2.4.  Before 2.3, and in DG/UX tcpdump's 543.0, a record header holds the original length
# before the captured one (libpcap's sf-pcap.c reads them swapped); any other version is read as 2.4.
PCAP_VERSION = (2, 4)
PCAP_LENGTHS_SWAPPED = {(2, 0), (2, 1), (2, 2), (543, 0)}

# A packet time outside [0, MAX_TS] is no clock reading but damage (or a crafted file): 2^64-1 seconds
# overflows every date formatter, and no capture can come from before 1970 or after the year 9999, the
# last date ISO 8601, RFC 3339 and Python's datetime can write.  Classic pcap cannot reach it (32-bit
# seconds end in 2106); pcapng's 64-bit ticks can.
MAX_TS = 253_402_300_799.0   # 9999-12-31T23:59:59Z
BAD_TIMESTAMP = "capture.bad_timestamp"

AnomalyHook = Callable[[float, str, str, dict], None]   # (ts, name, reason, detail)


class CaptureError(Exception):
    """The file cannot be read as a capture (the message names the file and the reason)."""


class _Chunked:
    """A forward-only view over a stream, refilled in large chunks."""

    def __init__(self, stream: Readable, initial: bytes = b"") -> None:
        self.stream = stream
        # read1: at most one read of the underlying file or pipe, so a live pipe is not waited on until
        # a whole chunk has arrived (on a regular file one read returns the whole chunk anyway)
        self._read = getattr(stream, "read1", stream.read)
        self.buf = initial
        self.pos = 0
        self.consumed = 0  # bytes of the file before buf[0], for error offsets

    def ensure(self, n: int) -> bool:
        """Make ``n`` bytes available at ``pos``; False at end of file.

        A read error leaves ``buf``, ``pos`` and the offset consistent, so the
        error can say where the data stopped.
        """
        if len(self.buf) - self.pos >= n:
            return True
        rest = self.buf[self.pos:]
        self.consumed += self.pos
        parts = [rest]
        have = len(rest)
        try:
            while have < n:
                more = self._read(max(CHUNK, n - have))
                if not more:
                    break
                parts.append(more)
                have += len(more)
        finally:
            self.buf = b"".join(parts)
            self.pos = 0
        return have >= n

    @property
    def offset(self) -> int:
        return self.consumed + self.pos


def open_capture(path: str, on_anomaly: AnomalyHook | None = None) -> "CaptureReader":
    """Open ``path`` as pcap or pcapng (gzip allowed); raises CaptureError with a one-line reason.

    ``on_anomaly(ts, name, reason, detail)`` hears of each packet the reader had to mend (a bad clock).
    """
    try:
        raw = open(path, "rb")
    except FileNotFoundError:
        raise CaptureError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CaptureError(f"{path}: is a directory, not a capture file") from None
    except OSError as exc:
        raise CaptureError(f"{path}: cannot open: {exc.strerror or exc}") from None
    return open_stream(raw, path, on_anomaly)


def open_stream(raw: BinaryIO, name: str, on_anomaly: AnomalyHook | None = None) -> "CaptureReader":
    """A reader over an open binary stream, seekable or not (a pipe); ``name`` is used in messages.

    The stream is closed with the reader, or at once when it is not a capture.
    """
    try:
        head = _read_exactly(raw, 4)
        stream: Readable = raw
        if head[:2] == GZIP_MAGIC:
            gz = GzipStream(_Prefixed(head, raw))
            head = gz.read(4)
            if len(head) < 4 and gz.error is not None:
                raise gz.error
            stream = gz
        if head in PCAP_MAGICS:
            reader: CaptureReader = PcapReader(name, raw, stream, head)
        elif head == PCAPNG_SHB:
            reader = PcapngReader(name, raw, stream, head)
        else:
            raise CaptureError(f"{name}: " + ("empty file, not a capture" if not head else
                                              f"not a pcap or pcapng capture (starts with {head.hex()})"))
        reader.on_anomaly = on_anomaly
        return reader
    except CaptureError:
        raw.close()
        raise
    except GzipDataError as exc:   # damage before the capture's own header: nothing to analyse
        raw.close()
        raise CaptureError(f"{name}: {exc}, before the capture header was complete") from None
    except OSError as exc:
        raw.close()
        raise CaptureError(f"{name}: cannot read: {exc}") from None


def _read_exactly(stream: Readable, n: int) -> bytes:
    """``n`` bytes, fewer only at end of file (a pipe may return a few bytes per read)."""
    data = stream.read(n)
    while data and len(data) < n:
        more = stream.read(n - len(data))
        if not more:
            break
        data += more
    return data


class _Prefixed:
    """A stream with bytes already read put back in front, so gzip can start on a pipe that cannot seek."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self.head = head
        self.stream = stream
        self._read = getattr(stream, "read1", stream.read)   # what has arrived, not a full buffer (see _Chunked)

    def read(self, n: int = -1) -> bytes:
        if not self.head:
            return self._read(n)
        if n < 0:
            out, self.head = self.head + self.stream.read(), b""
            return out
        out, self.head = self.head[:n], self.head[n:]
        return out


class CaptureReader:
    """Common part of the two readers: file handling, progress and the truncation note."""

    def __init__(self, path: str, raw: BinaryIO, stream: Readable, head: bytes) -> None:
        self.path = path
        self._raw = raw
        self._chunks = _Chunked(stream, head)
        self.truncated: str | None = None
        self.warnings: list[str] = []
        self.packets = 0
        self.bad_timestamps = 0
        self.on_anomaly: AnomalyHook | None = None
        try:
            import os
            self.size = os.fstat(raw.fileno()).st_size
        except OSError:
            self.size = 0

    def progress(self) -> int:
        """Bytes of the underlying file read so far (compressed bytes for gzip)."""
        try:
            return self._raw.tell()
        except (OSError, ValueError):
            return 0

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> "CaptureReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _cut(self, what: str) -> None:
        self.truncated = (f"{self.path}: capture truncated at byte {self._chunks.offset} "
                          f"({what}) after {self.packets} packets; analysed everything before the cut")

    def _read_failed(self, exc: Exception) -> None:
        self.truncated = (f"{self.path}: read error at byte {self._chunks.offset} after "
                          f"{self.packets} packets: {exc}; analysed everything before it")

    def _records(self) -> Iterator[tuple[float, int, bytes]]:
        """Every packet of the file, in order (each format's own loop)."""
        raise NotImplementedError

    def __iter__(self) -> Iterator[tuple[float, int, bytes]]:
        try:
            yield from self._records()
        except GzipDataError as exc:
            self._cut(str(exc))
        except (OSError, EOFError) as exc:
            self._read_failed(exc)

    def _bad_clock(self, ts: float, last_good: float) -> float:
        """A packet whose time is no clock reading keeps its bytes and takes the last good time; reported."""
        self.bad_timestamps += 1
        if self.on_anomaly is not None:
            self.on_anomaly(last_good, BAD_TIMESTAMP,
                            f"packet {self.packets + 1} of {self.path} has timestamp {ts:.6g} s, outside "
                            f"1970..9999; given the previous packet's time",
                            {"file": self.path, "packet": self.packets + 1, "timestamp": ts})
        return last_good


def check_linktype(path: str, linktype: int) -> None:
    if linktype not in LINKTYPE_NAMES:
        raise CaptureError(f"{path}: unsupported link type {linktype}")


class PcapReader(CaptureReader):
    """Classic libpcap format."""

    def __init__(self, path: str, raw: BinaryIO, stream: Readable, head: bytes) -> None:
        super().__init__(path, raw, stream, head)
        endian, self.tick = PCAP_MAGICS[head]
        c = self._chunks
        if not c.ensure(24):
            raise CaptureError(f"{path}: pcap global header is truncated")
        _, major, minor, _, _, snaplen, linktype = struct.unpack_from(endian + "IHHiIII", c.buf, 0)
        c.pos = 24
        self.linktype = linktype & 0x0FFFFFFF  # upper bits may carry FCS length flags
        check_linktype(path, self.linktype)
        swapped = (major, minor) in PCAP_LENGTHS_SWAPPED
        # seconds, fraction and the captured length (the original length is not needed)
        self._rec = struct.Struct(endian + ("II4xI" if swapped else "III4x"))
        if (major, minor) != PCAP_VERSION:
            layout = "original and captured lengths swapped, as libpcap reads it" if swapped else "the 2.4 layout"
            self.warnings.append(f"{path}: pcap version {major}.{minor}, not 2.4: records read with {layout}")

    def _records(self) -> Iterator[tuple[float, int, bytes]]:
        c = self._chunks
        unpack = self._rec.unpack_from
        tick = self.tick
        linktype = self.linktype
        while True:
            if len(c.buf) - c.pos < 16 and not c.ensure(16):
                if len(c.buf) - c.pos:
                    self._cut("partial record header")
                return
            sec, frac, incl = unpack(c.buf, c.pos)
            if incl > MAX_RECORD:
                self._cut(f"impossible record length {incl}")
                return
            end = c.pos + 16 + incl
            if end > len(c.buf):
                if not c.ensure(16 + incl):
                    self._cut("partial packet data")
                    return
                end = c.pos + 16 + incl
            frame = c.buf[c.pos + 16:end]
            c.pos = end
            self.packets += 1
            yield sec + frac * tick, linktype, frame   # no clock check: 32-bit seconds stay within 1970..2106


class PcapngReader(CaptureReader):
    """pcapng: several sections, interfaces and link types; EPB, SPB and the obsolete PB."""

    def __init__(self, path: str, raw: BinaryIO, stream: Readable, head: bytes) -> None:
        super().__init__(path, raw, stream, head)
        self.endian = "<"
        self.interfaces: list[tuple[int, float, int]] = []  # (linktype, tick, snaplen)

    def _records(self) -> Iterator[tuple[float, int, bytes]]:
        c = self._chunks
        last_good = 0.0
        while True:
            if not c.ensure(12):
                if len(c.buf) - c.pos:
                    self._cut("partial block header")
                return
            btype_raw = c.buf[c.pos:c.pos + 4]
            if btype_raw == PCAPNG_SHB:
                self._section_header()
                btype = 0x0A0D0D0A
            else:
                btype = struct.unpack_from(self.endian + "I", c.buf, c.pos)[0]
            blen = struct.unpack_from(self.endian + "I", c.buf, c.pos + 4)[0]
            if blen < 12 or blen % 4 or blen > MAX_RECORD:
                self._cut(f"invalid block length {blen}")
                return
            if not c.ensure(blen):
                self._cut("partial block")
                return
            body = c.buf[c.pos + 8:c.pos + blen - 4]
            c.pos += blen
            if btype == 1:
                self._interface(body)
            elif btype in (6, 3, 2):
                packet = self._packet(btype, body)
                if packet is not None:
                    ts = packet[0]
                    if 0.0 <= ts <= MAX_TS:   # (also False for NaN)
                        last_good = ts
                    else:
                        packet = (self._bad_clock(ts, last_good), packet[1], packet[2])
                    self.packets += 1
                    yield packet

    def _section_header(self) -> None:
        c = self._chunks
        bom = c.buf[c.pos + 8:c.pos + 12]
        if bom == b"\x4d\x3c\x2b\x1a":
            self.endian = "<"
        elif bom == b"\x1a\x2b\x3c\x4d":
            self.endian = ">"
        else:
            raise CaptureError(f"{self.path}: pcapng section header with bad byte-order magic {bom.hex()}")
        self.interfaces = []  # interface ids are per section

    def _interface(self, body: bytes) -> None:
        if len(body) < 8:
            raise CaptureError(f"{self.path}: pcapng interface block too short")
        linktype, _, snaplen = struct.unpack_from(self.endian + "HHI", body, 0)
        check_linktype(self.path, linktype)
        self.interfaces.append((linktype, _tsresol(body[8:], self.endian), snaplen))

    def _packet(self, btype: int, body: bytes) -> tuple[float, int, bytes] | None:
        e = self.endian
        if btype == 3:  # simple packet block: interface 0, no timestamp
            if not self.interfaces or len(body) < 4:
                return None
            orig = struct.unpack_from(e + "I", body, 0)[0]
            linktype, _, snaplen = self.interfaces[0]
            cap = min(orig, snaplen or orig, len(body) - 4)
            return 0.0, linktype, body[4:4 + cap]
        if len(body) < 20:
            return None
        if btype == 6:
            ifid, hi, lo, incl, _ = struct.unpack_from(e + "IIIII", body, 0)
        else:
            ifid, _drops, hi, lo, incl, _ = struct.unpack_from(e + "HHIIII", body, 0)
        if ifid >= len(self.interfaces):
            raise CaptureError(f"{self.path}: packet refers to undeclared interface {ifid}")
        linktype, tick, _ = self.interfaces[ifid]
        return ((hi << 32) | lo) * tick, linktype, body[20:20 + incl]


def _tsresol(options: bytes, endian: str) -> float:
    """The if_tsresol option (code 9); microseconds by default."""
    pos = 0
    while pos + 4 <= len(options):
        code, length = struct.unpack_from(endian + "HH", options, pos)
        if code == 0:
            break
        if code == 9 and length >= 1 and pos + 5 <= len(options):
            v = options[pos + 4]
            return 2.0 ** -(v & 0x7F) if v & 0x80 else 10.0 ** -v
        pos += 4 + ((length + 3) & ~3)
    return 1e-6
