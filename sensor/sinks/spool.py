"""A disk-backed spool: the write-ahead log of one network sink.

Every message a sink sends is first appended here; the sink moves the
acknowledged position forward once the receiver has confirmed it (see
``sensor.sinks.syslog``).  Whatever lies past the acknowledged position when the
receiver is unreachable, or when the sensor stops, is replayed in order later,
by this process or by the next one that opens the same directory.

Layout of the directory::

    0000000001.seg  0000000002.seg ...   append-only segments of records
    ack                                   "<segment> <offset>": first record not yet acknowledged

A record is ``>II`` (payload length, CRC-32 of the payload) then the payload.
A torn record at the end of the last segment (a crash mid-write) fails its
length or CRC check and is cut off when the spool is opened.

Durability: each record goes to the OS in one unbuffered write (a crash of
the sensor loses nothing appended; a failed or short write, e.g. a full disk,
is seen at once: the spool then refuses further messages and counts them as
dropped, with the reason in ``error``).  Segments are fsync'ed when one is closed, on :meth:`sync` (the
sink calls it at checkpoints and at the end) and on :meth:`close`; the ack
file is replaced atomically (write, fsync, rename).  An ack that is lost in a
crash only means some messages are sent twice; every alert carries a stable id
so the receiver can drop the duplicate.

The bound is on the bytes not yet acknowledged.  An append that would pass it
is refused and counted in ``dropped`` (the newest message is the one lost:
the spool never rewrites what it already holds).
"""
from __future__ import annotations

import errno
import os
import struct
import zlib
from collections.abc import Iterator

RECORD = struct.Struct(">II")
SEGMENT_SUFFIX = ".seg"
ACK_FILE = "ack"
Position = tuple[int, int]  # (segment number, byte offset in it)


class SpoolError(Exception):
    """The spool directory cannot be created, read or written."""


def _segment_name(number: int) -> str:
    return f"{number:010d}{SEGMENT_SUFFIX}"


class Spool:
    def __init__(self, directory: str, max_bytes: int = 64 << 20, segment_bytes: int = 4 << 20) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.dropped = 0
        self.dropped_bytes = 0
        self.dirty = False
        self.error: str | None = None   # set once writing failed: nothing more is accepted
        try:
            os.makedirs(directory, exist_ok=True)
            self.segments = sorted(int(n[:-len(SEGMENT_SUFFIX)]) for n in os.listdir(directory)
                                   if n.endswith(SEGMENT_SUFFIX) and n[:-len(SEGMENT_SUFFIX)].isdigit())
            self.ack_pos = self._read_ack()
            self._drop_acked_segments()
            if not self.segments:
                self.segments = [self.ack_pos[0]]
                open(self._path(self.ack_pos[0]), "ab").close()
            self.sizes = {n: os.path.getsize(self._path(n)) for n in self.segments}
            self._repair_tail()
            self.pending = sum(1 for _ in self.read_from(self.ack_pos))
            self.writer = open(self._path(self.segments[-1]), "ab", buffering=0)  # noqa: SIM115 (kept open)
        except OSError as exc:
            raise SpoolError(f"spool directory {directory}: {exc.strerror or exc}") from exc

    # -- positions -------------------------------------------------------------------------------------

    def _path(self, number: int) -> str:
        return os.path.join(self.directory, _segment_name(number))

    @property
    def end(self) -> Position:
        last = self.segments[-1]
        return (last, self.sizes[last])

    @property
    def pending_bytes(self) -> int:
        first = self.ack_pos[0]
        return sum(size for n, size in self.sizes.items() if n >= first) - self.ack_pos[1]

    def _read_ack(self) -> Position:
        try:
            with open(os.path.join(self.directory, ACK_FILE), encoding="ascii") as fh:
                seg, off = fh.read().split()
            pos = (int(seg), int(off))
        except FileNotFoundError:
            return (self.segments[0] if self.segments else 1, 0)
        except ValueError:   # a damaged ack file: replay everything still on disk (duplicates, not losses)
            return (self.segments[0] if self.segments else 1, 0)
        if self.segments and pos[0] < self.segments[0]:
            return (self.segments[0], 0)
        return pos

    def _drop_acked_segments(self) -> None:
        for n in [n for n in self.segments if n < self.ack_pos[0]]:
            os.remove(self._path(n))
            self.segments.remove(n)

    def _repair_tail(self) -> None:
        """Cut a torn record off the end of the last segment (a crash during append)."""
        last = self.segments[-1]
        good = 0
        start = self.ack_pos[1] if self.ack_pos[0] == last else 0
        for (_, off), _payload in self._read_segment(last, start):
            good = off
        good = max(good, start)
        if good < self.sizes[last]:
            with open(self._path(last), "r+b") as fh:
                fh.truncate(good)
            self.sizes[last] = good
        if self.ack_pos[0] == last and self.ack_pos[1] > good:
            self.ack_pos = (last, good)

    # -- writing ---------------------------------------------------------------------------------------

    def fits(self, length: int) -> bool:
        """Would a payload of ``length`` bytes stay within the bound?"""
        return self.pending_bytes + RECORD.size + length <= self.max_bytes

    def append(self, payload: bytes) -> bool:
        """Add one message; False (and counted in ``dropped``) past the bound or once the disk failed."""
        size = RECORD.size + len(payload)
        if self.error is not None or not self.fits(len(payload)):
            self.dropped += 1
            self.dropped_bytes += len(payload)
            return False
        try:
            last = self.segments[-1]
            if self.sizes[last] and self.sizes[last] + size > self.segment_bytes:
                last = self._roll()
            record = RECORD.pack(len(payload), zlib.crc32(payload)) + payload
            written = self.writer.write(record)   # unbuffered: the OS has it, or we know it does not
            if written != len(record):
                raise OSError(errno.ENOSPC, f"short write ({written} of {len(record)} bytes)")
        except OSError as exc:   # e.g. disk full: stop here (a torn record is cut off at the next open)
            self._fail(exc)
            self.dropped += 1
            self.dropped_bytes += len(payload)
            return False
        self.sizes[last] += size
        self.pending += 1
        self.dirty = True
        return True

    def _roll(self) -> int:
        self.sync()
        self.writer.close()
        number = self.segments[-1] + 1
        self.segments.append(number)
        self.sizes[number] = 0
        self.writer = open(self._path(number), "ab", buffering=0)  # noqa: SIM115 (kept open)
        return number

    def _fail(self, exc: OSError) -> None:
        if self.error is None:
            self.error = f"spool {self.directory}: {exc.strerror or exc}"

    def sync(self) -> None:
        """Flush appended records to the disk."""
        if self.dirty and self.error is None:
            try:
                os.fsync(self.writer.fileno())
            except OSError as exc:
                self._fail(exc)
            self.dirty = False

    # -- reading and acknowledging ---------------------------------------------------------------------

    def read_from(self, pos: Position) -> Iterator[tuple[Position, bytes]]:
        """Records from ``pos`` to the end, each with the position just after it."""
        for n in [n for n in self.segments if n >= pos[0]]:
            yield from self._read_segment(n, pos[1] if n == pos[0] else 0)

    def _read_segment(self, number: int, offset: int) -> Iterator[tuple[Position, bytes]]:
        with open(self._path(number), "rb") as fh:
            fh.seek(offset)
            while True:
                head = fh.read(RECORD.size)
                if len(head) < RECORD.size:
                    return
                length, crc = RECORD.unpack(head)
                payload = fh.read(length)
                if len(payload) < length or zlib.crc32(payload) != crc:
                    return
                offset += RECORD.size + length
                yield (number, offset), payload

    def ack(self, pos: Position, count: int, persist: bool = True) -> None:
        """Everything before ``pos`` (``count`` records) has reached the receiver."""
        if pos <= self.ack_pos:
            return
        self.ack_pos = pos
        self.pending = max(0, self.pending - count)
        if persist or pos[0] > self.segments[0]:   # a whole segment is done with: record it and free it
            self.persist_ack()

    def persist_ack(self) -> None:
        try:
            self._persist_ack()
        except OSError as exc:   # the in-memory position stays right; a lost ack only means duplicates
            self._fail(exc)

    def _persist_ack(self) -> None:
        last = self.segments[-1]
        if self.ack_pos == (last, self.sizes[last]) and self.sizes[last] >= self.segment_bytes // 2:
            self.ack_pos = (self._roll(), 0)   # all acknowledged: start a fresh segment, free the old ones
        path = os.path.join(self.directory, ACK_FILE)
        with open(path + ".tmp", "w", encoding="ascii") as fh:
            fh.write(f"{self.ack_pos[0]} {self.ack_pos[1]}\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(path + ".tmp", path)
        for n in [n for n in self.segments[:-1] if n < self.ack_pos[0]]:
            os.remove(self._path(n))
            self.segments.remove(n)
            del self.sizes[n]

    def close(self) -> None:
        self.sync()
        self.persist_ack()
        try:
            self.writer.close()
        except OSError as exc:
            self._fail(exc)
