"""DNP3 transport function (IEEE 1815-2012 clause 8): reassembles application fragments
from the one-octet-header segments carried in link user data.

Header octet: FIN (0x80), FIR (0x40), sequence 0..63.  Segments of one fragment carry
consecutive sequence numbers; a fragment starts with FIR and ends with FIN.
Reassembly is per link (source, destination) pair, bounded in size and in streams.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any

MAX_FRAGMENT = 65536              # application fragments are usually <= 2048 bytes; never buffer more
MAX_STREAMS = 16                  # (source, destination) pairs reassembled at once per flow direction


class _Stream:
    __slots__ = ("buffer", "last_seq", "active", "last_segment")

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.last_seq = -1
        self.active = False
        self.last_segment = b""


class TransportEvent:
    """An anomaly of the transport function: ``name`` from the closed set, a human ``reason``."""

    __slots__ = ("name", "reason", "detail")

    def __init__(self, name: str, reason: str, detail: dict[str, Any]) -> None:
        self.name = name
        self.reason = reason
        self.detail = detail


class Reassembler:
    """Feed segments per stream key; get back complete fragments and anomalies."""

    def __init__(self) -> None:
        self._streams: OrderedDict[tuple[int, int], _Stream] = OrderedDict()

    def add(self, key: tuple[int, int], segment: bytes) -> tuple[bytes | None, list[TransportEvent]]:
        events: list[TransportEvent] = []
        if not segment:
            return None, events
        header = segment[0]
        fin, fir, seq = bool(header & 0x80), bool(header & 0x40), header & 0x3F
        stream = self._stream(key, events)
        if stream.active and segment == stream.last_segment:
            # The same segment again: a link-layer retry (CONFIRMED_USER_DATA resent when
            # the ACK was lost).  The transport receive rules (clause 8) discard a duplicate.
            return None, events
        if fir and fin and not stream.active:
            # A whole fragment in one segment, the usual case: nothing to buffer.  (``last_segment``
            # is only compared while a fragment is in progress, so it need not be kept here.)
            stream.last_seq = seq
            return bytes(segment[1:]), events
        stream.last_segment = bytes(segment)
        if fir:
            if stream.active:
                events.append(TransportEvent(
                    "dnp3.transport_incomplete", "new first segment before the previous fragment ended",
                    {"buffered": len(stream.buffer), "seq": seq}))
            stream.buffer = bytearray(segment[1:])
            stream.active = True
        elif not stream.active:
            events.append(TransportEvent(
                "dnp3.transport_no_first", "segment without FIR and no fragment in progress", {"seq": seq}))
            stream.last_seq = seq
            return None, events
        elif seq != (stream.last_seq + 1) & 0x3F:
            events.append(TransportEvent(
                "dnp3.transport_out_of_sequence", "segment sequence does not follow the previous one",
                {"expected": (stream.last_seq + 1) & 0x3F, "seq": seq}))
            self._abandon(stream, seq)
            return None, events
        else:
            stream.buffer += segment[1:]
        stream.last_seq = seq
        if len(stream.buffer) > MAX_FRAGMENT:
            events.append(TransportEvent(
                "dnp3.fragment_too_large", f"fragment exceeds {MAX_FRAGMENT} bytes", {"size": len(stream.buffer)}))
            self._abandon(stream, seq)
            return None, events
        if fin:
            fragment = bytes(stream.buffer)
            self._abandon(stream, seq)
            return fragment, events
        return None, events

    def reset(self) -> None:
        """Forget partial fragments (after a capture gap nothing buffered can be trusted)."""
        self._streams.clear()

    def pending(self) -> int:
        return sum(1 for s in self._streams.values() if s.active)

    def _stream(self, key: tuple[int, int], events: list[TransportEvent]) -> _Stream:
        stream = self._streams.get(key)
        if stream is None:
            if len(self._streams) >= MAX_STREAMS:
                old_key, _old = self._streams.popitem(last=False)
                events.append(TransportEvent(
                    "dnp3.too_many_streams", f"more than {MAX_STREAMS} link address pairs; oldest dropped",
                    {"dropped": list(old_key)}))
            stream = self._streams[key] = _Stream()
        else:
            self._streams.move_to_end(key)
        return stream

    @staticmethod
    def _abandon(stream: _Stream, seq: int) -> None:
        stream.buffer = bytearray()
        stream.active = False
        stream.last_seq = seq
