"""Per-direction TPKT framing with COTP DT (EOT) reassembly and resynchronisation.

``Framer.push`` takes stream bytes and returns what they completed, in order:
a :class:`CotpPdu` for a connection-management TPDU, ``bytes`` for a
reassembled data unit (TSDU), a :class:`CotpError` for a framing problem.
Memory is bounded: at most one TPKT frame (64 KiB) is buffered and a TSDU is
capped at MAX_TSDU.
"""
from __future__ import annotations

from typing import Final, TypeAlias

from mypy_extensions import mypyc_attr

from otsensor.dissectors.s7comm.cotp import (
    DT,
    TPKT_MAX_LENGTH,
    TPKT_MIN_LENGTH,
    CotpError,
    CotpPdu,
    dt_user_data,
    is_cotp_code,
    parse_cotp,
    tpkt_frame_length,
)

Event: TypeAlias = "CotpPdu | bytes | CotpError"

MAX_TSDU: Final = 64 * 1024
MAX_BUFFER: Final = TPKT_MAX_LENGTH + 4


def plausible_header(buf: bytes | bytearray, pos: int) -> bool:
    """TPKT v3 header followed by a plausible COTP header at ``pos`` (used to resynchronise)."""
    if len(buf) - pos < 6:
        return False
    length = (buf[pos + 2] << 8) | buf[pos + 3]
    li = buf[pos + 4]
    return (buf[pos] == 3 and buf[pos + 1] == 0 and length >= TPKT_MIN_LENGTH
            and 0 < li < length - 4 and is_cotp_code(buf[pos + 5]))


@mypyc_attr(allow_interpreted_subclasses=True)   # tests subclass it to inject a framing bug
class Framer:
    __slots__ = ("buf", "dt_parts", "dt_size", "resync", "synced")

    def __init__(self) -> None:
        self.synced = False            # a valid TPDU has been seen in this direction
        self.buf = bytearray()
        self.dt_parts: list[bytes] = []
        self.dt_size = 0
        self.resync = False

    def push(self, data: bytes) -> list[Event]:
        events: list[Event] = []
        start = 0 if self.buf or self.resync else self._whole_frames(data, events)
        if start < len(data):
            self.buf += data[start:] if start else data
            self._drain(events)
        return events

    def _whole_frames(self, data: bytes, events: list[Event]) -> int:
        """The usual segment, nothing buffered before it: each whole frame's TPDU is read from ``data``
        itself, not copied into the buffer and out again.  Returns where the rest (a partial frame, or
        bytes that are not a TPKT header) starts: the buffered path takes it from there, as it would have."""
        pos, end = 0, len(data)
        while True:
            try:
                length = tpkt_frame_length(data, pos)
            except CotpError:
                return pos
            if length is None or end - pos < length:
                return pos
            self._tpdu(bytes(data[pos + 4: pos + length]), events)   # (bytes of bytes: the same object)
            pos += length

    def _drain(self, events: list[Event]) -> None:
        """Frames out of the buffer, resynchronising after framing noise."""
        while True:
            if self.resync and not self._resynchronise():
                return
            try:
                length = tpkt_frame_length(self.buf)
            except CotpError as exc:
                self._problem(exc, events)
                self.resync = True
                del self.buf[:1]
                continue
            if length is None or len(self.buf) < length:
                return
            frame = bytes(self.buf[4:length])
            del self.buf[:length]
            self._tpdu(frame, events)

    def _problem(self, problem: CotpError, events: list[Event]) -> None:
        # Framing noise before this direction's first valid frame is not reported: a stream picked up
        # mid-connection (keep-alive byte, partial frame) or not S7 at all.
        if self.synced:
            events.append(problem)

    def _resynchronise(self) -> bool:
        """Drop bytes up to the next plausible header; False when more bytes are needed."""
        for pos in range(len(self.buf)):
            if plausible_header(self.buf, pos):
                del self.buf[:pos]
                self.resync = False
                return True
        keep = min(len(self.buf), 5)          # a header may straddle this chunk and the next
        del self.buf[: len(self.buf) - keep]
        return False

    def _tpdu(self, frame: bytes, events: list[Event]) -> None:
        dt = dt_user_data(frame)
        if dt is None:
            try:
                pdu = parse_cotp(frame)
            except CotpError as exc:
                self._problem(exc, events)
                return
            self.synced = True
            if pdu.code != DT:
                events.append(pdu)
                return
            dt = pdu.eot, pdu.user_data
        self.synced = True
        eot, user_data = dt
        self.dt_size += len(user_data)
        if self.dt_size > MAX_TSDU:
            self._problem(CotpError("cotp.reassembly_overflow", f"TSDU over {MAX_TSDU} bytes without EOT"), events)
            self.reset_tsdu()
            return
        if eot and not self.dt_parts:
            events.append(user_data)           # the usual TSDU: one DT, nothing to join
            self.dt_size = 0
            return
        self.dt_parts.append(user_data)
        if eot:
            tsdu = b"".join(self.dt_parts)
            self.reset_tsdu()
            events.append(tsdu)

    def reset_tsdu(self) -> None:
        self.dt_parts, self.dt_size = [], 0

    def lose(self) -> bool:
        """Bytes were lost: drop partial state; True if something was dropped."""
        dropped = bool(self.buf or self.dt_parts)
        self.buf.clear()
        self.reset_tsdu()
        self.resync = True
        return dropped
