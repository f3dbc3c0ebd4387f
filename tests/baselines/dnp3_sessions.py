"""DNP3 conversations built byte by byte for the baselines tests: requests from a master's link address
to an outstation's, their echoed responses, and unsolicited responses, as TCP sessions (replay.session).

Frames are built by tests/dissectors/test_dnp3_units.py's helpers (CRCs computed there, bitwise)."""
from __future__ import annotations

import struct
from dataclasses import dataclass

from tests.baselines.replay import Segment
from tests.dissectors.test_dnp3_units import frame

SELECT, OPERATE, DIRECT_OPERATE, WRITE, RECORD_CURRENT_TIME, READ = 0x03, 0x04, 0x05, 0x02, 0x18, 0x01
LATCH_ON, LATCH_OFF, CLOSE_PULSE_ON = 0x03, 0x04, 0x41


def crobs(*points: tuple[int, int], variation: int = 1) -> bytes:
    """A g12 header (one-octet index prefix) of control relay output blocks: (index, control code) each."""
    body = b"".join(struct.pack("<BBBIIB", index, code, 1, 100, 100, 0) for index, code in points)
    return bytes([12, variation, 0x17, len(points)]) + body


def analog_outputs(*points: tuple[int, int], variation: int = 2) -> bytes:
    """A g41 header of analog output blocks: v1 a 32-bit value, v2 a 16-bit one (index, value) each."""
    fmt = "<BiB" if variation == 1 else "<BhB"
    return bytes([41, variation, 0x17, len(points)]) + b"".join(struct.pack(fmt, i, v, 0) for i, v in points)


def time_object(ms: int) -> bytes:
    """g50v1 (absolute time), one object, range-less count qualifier."""
    return bytes([50, 1, 0x07, 1]) + ms.to_bytes(6, "little")


@dataclass
class Conversation:
    """Requests from ``master`` to ``outstation`` link addresses, each echoed by a response."""

    master: int = 1
    outstation: int = 10
    t: float = 1_800_000_000.0
    seq: int = 0

    def __post_init__(self) -> None:
        self.segments: list[Segment] = []

    def request(self, function: int, objects: bytes = b"", gap: float = 1.0) -> Conversation:
        self.t += gap
        app_control = 0xC0 | (self.seq & 0x0F)
        self.segments.append(Segment(self.t, True, self._frame(bytes([app_control, function]) + objects)))
        echo = objects if function in (SELECT, OPERATE, DIRECT_OPERATE) else b""
        response = bytes([app_control, 0x81, 0x00, 0x00]) + echo
        self.segments.append(Segment(self.t + 0.01, False, self._frame(response, from_master=False)))
        self.seq += 1
        return self

    def unsolicited(self, objects: bytes = b"", gap: float = 1.0) -> Conversation:
        self.t += gap
        app = bytes([0xF0 | (self.seq & 0x0F), 0x82, 0x00, 0x00]) + objects    # FIR FIN CON UNS
        self.segments.append(Segment(self.t, False, self._frame(app, from_master=False)))
        self.seq += 1
        return self

    def _frame(self, app: bytes, from_master: bool = True) -> bytes:
        if from_master:
            return frame(b"\xc0" + app, control=0xC4, dst=self.outstation, src=self.master)
        return frame(b"\xc0" + app, control=0x44, dst=self.master, src=self.outstation)
