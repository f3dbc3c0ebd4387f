"""Finding the first message of a stream the capture joined in the middle of a message.

A live capture often starts inside long-lived sessions; a PDU spanning several
segments can then begin mid-message.  Before a flow is confirmed, bytes that
do not start with a header are searched for a message that is unmistakably
ENIP: a strict header whose body is exactly consumed by its structure (CPF
items summing to the length, RegisterSession's fixed body).  Non-ENIP traffic
finds none within the window and the flow is rejected.

The choice does not depend on how the stream was chunked: candidates are
ranked by where they end (then where they start), and only candidates that
start in the first ``WINDOW`` bytes and end within ``LIMIT`` count, so feeding
a stream whole or one byte at a time picks the same message or rejects alike.
"""
from __future__ import annotations

from typing import Final

import heapq

from otsensor.dissectors.enip import encap
from otsensor.dissectors.enip import tables as T
from otsensor.dissectors.enip.encap import HEADER_LEN, Header

WINDOW: Final = 8192           # a first message must start within this many bytes
LIMIT: Final = WINDOW + 4096   # and end within this many
REJECT: Final = -1
_STRICT_COMMANDS: Final = frozenset({T.LIST_SERVICES, T.LIST_IDENTITY, T.LIST_INTERFACES, T.REGISTER_SESSION,
                              T.UNREGISTER_SESSION, T.SEND_RR_DATA, T.SEND_UNIT_DATA})


def _strict_header(hdr: Header, is_request: bool) -> bool:
    return (hdr.command in _STRICT_COMMANDS and hdr.options == 0 and hdr.status in T.ENIP_STATUSES
            and encap.plausible(hdr, is_request))


def _exact_cpf(body: bytes, offset: int) -> bool:
    """The CPF at ``offset`` holds 1-4 items and ends exactly at the end of ``body``."""
    if offset + 2 > len(body):
        return False
    count = int.from_bytes(body[offset:offset + 2], "little")
    pos = offset + 2
    for _ in range(count):
        if pos + 4 > len(body):
            return False
        pos += 4 + int.from_bytes(body[pos + 2:pos + 4], "little")
    return 1 <= count <= 4 and pos == len(body)


def valid_message(hdr: Header, body: bytes) -> bool:
    if hdr.command == T.REGISTER_SESSION:
        return body == b"\x01\x00\x00\x00"
    if hdr.command == T.UNREGISTER_SESSION:
        return not body
    if hdr.command in (T.SEND_RR_DATA, T.SEND_UNIT_DATA):
        return _exact_cpf(body, 6)
    return not body or _exact_cpf(body, 0)


class Pickup:
    """Per-direction search state, kept while the flow is unconfirmed."""

    def __init__(self, is_request: bool) -> None:
        self.is_request = is_request
        self.next_pos = 1          # position 0 is the ordinary path's
        self.pending: list[tuple[int, int]] = []   # (end, start) of candidate messages

    def offer(self, buf: bytes | bytearray) -> int | None:
        """Start of the first message, REJECT when there is none, or None while undecided."""
        last = min(len(buf) - HEADER_LEN, WINDOW - 1)
        while self.next_pos <= last:
            hdr = encap.parse_header(buf, self.next_pos)
            end = self.next_pos + HEADER_LEN + hdr.length
            if _strict_header(hdr, self.is_request) and end <= LIMIT:
                heapq.heappush(self.pending, (end, self.next_pos))
            self.next_pos += 1
        while self.pending and self.pending[0][0] <= len(buf):
            end, start = heapq.heappop(self.pending)
            hdr = encap.parse_header(buf, start)
            if valid_message(hdr, bytes(buf[start + HEADER_LEN:end])):
                return start
        if len(buf) >= LIMIT or (self.next_pos >= WINDOW and not self.pending):
            return REJECT
        return None
