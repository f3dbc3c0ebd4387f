"""TCP stream reassembly for one direction of a connection.

Delivers payload in sequence order: retransmitted and overlapping bytes are
delivered once (the first copy wins, as most receiving stacks do), segments
that arrive early wait for the hole before them to fill, and when a hole
cannot fill (the segment was lost before the mirror port saw it) the hole
becomes a gap event so the dissector can resynchronise.  A stream picked up
mid-connection starts at the first segment seen.  Buffered bytes and
segments are capped, so a hostile or broken sender cannot grow memory.
"""
from __future__ import annotations

from typing import Final

SEQ_MOD: Final = 1 << 32
HALF: Final = 1 << 31
# What holding a segment costs beyond its bytes: the bytes object's header, its sequence-number key and
# its slot in the table (97 to 111 bytes measured by bench/flow_memory.py).  Counted, so that a sender of
# tiny out-of-order segments cannot hold ten times what the budget says.
HELD_SEGMENT_COST = 128


class Budget:
    """Memory held out of order across every stream of a run, against one limit.

    Per-stream caps alone would let many streams together hold caps x flows;
    past the shared limit, a stream that holds data gives up its hole at once.
    It is the out-of-order half of the flow memory budget (see FlowTable).
    """

    __slots__ = ("used", "limit", "exceeded", "peak")

    def __init__(self, limit: int = 256 << 20) -> None:
        self.used = 0       # held bytes, plus HELD_SEGMENT_COST per held segment
        self.limit = limit
        self.exceeded = 0   # holes given up because of the shared limit
        self.peak = 0


class StreamReassembler:
    """In-order delivery of one direction: ``push`` returns a list of ``bytes`` (data) and ``int`` (gap size)."""

    __slots__ = ("next_seq", "pending", "pending_bytes", "max_bytes", "max_segments",
                 "gaps", "gap_bytes", "dup_bytes", "budget")

    def __init__(self, max_bytes: int = 256 << 10, max_segments: int = 256, budget: Budget | None = None) -> None:
        self.next_seq: int | None = None
        self.pending: dict[int, bytes] = {}
        self.pending_bytes = 0
        self.max_bytes = max_bytes
        self.max_segments = max_segments
        self.budget = budget or Budget()
        self.gaps = 0
        self.gap_bytes = 0
        self.dup_bytes = 0

    def syn(self, seq: int) -> None:
        """The SYN consumes one sequence number; data starts right after it."""
        if self.next_seq is None:
            self.next_seq = (seq + 1) % SEQ_MOD

    def push(self, seq: int, data: bytes) -> list:
        if self.next_seq is None:
            self.next_seq = seq
        rel = (seq - self.next_seq) % SEQ_MOD
        if rel >= HALF:  # starts before what was already delivered: retransmission or overlap
            overlap = SEQ_MOD - rel
            if overlap >= len(data):
                self.dup_bytes += len(data)
                return []
            self.dup_bytes += overlap
            data = data[overlap:]
            rel = 0
        if rel == 0:
            self.next_seq = (self.next_seq + len(data)) % SEQ_MOD
            if not self.pending:
                return [data]
            out: list = [data]
            self._drain(out)
            return out
        self._hold(seq, data)
        if self.pending_bytes > self.max_bytes or len(self.pending) > self.max_segments:
            return self._skip_hole()
        if self.budget.used > self.budget.limit:
            self.budget.exceeded += 1
            return self._skip_hole()
        return []

    def acked(self, ack: int) -> list:
        """The peer acknowledged up to ``ack``: holes below it were lost before the mirror port, not delayed."""
        out: list = []
        while self.pending and self.next_seq is not None:
            nxt = self.next_seq
            covered = (ack - nxt) % SEQ_MOD
            if covered == 0 or covered >= HALF:
                break
            first = min((s - nxt) % SEQ_MOD for s in self.pending)
            hole = min(covered, first)
            self.gaps += 1
            self.gap_bytes += hole
            out.append(hole)
            self.next_seq = (nxt + hole) % SEQ_MOD
            before = len(out)
            self._drain(out)
            if len(out) == before:
                break
        return out

    def _account(self, delta: int, segments: int) -> None:
        """``delta`` bytes and ``segments`` segments more (or fewer) held."""
        self.pending_bytes += delta
        budget = self.budget
        budget.used += delta + segments * HELD_SEGMENT_COST
        if budget.used > budget.peak:
            budget.peak = budget.used

    def discard(self) -> None:
        """Drop what is held (the stream is no longer followed), returning its bytes to the budget."""
        self._account(-self.pending_bytes, -len(self.pending))
        self.pending.clear()

    def flush(self) -> list:
        """End of stream: deliver what is held, with a gap for each hole that never filled."""
        out: list = []
        while self.pending:
            out.extend(self._skip_hole())
        return out

    def _hold(self, seq: int, data: bytes) -> None:
        old = self.pending.get(seq)
        if old is None:
            self.pending[seq] = data
            self._account(len(data), 1)
        elif len(data) > len(old):
            self.pending[seq] = data
            self._account(len(data) - len(old), 0)
        else:
            self.dup_bytes += len(data)

    def _skip_hole(self) -> list:
        """Give up on the hole before the earliest held segment: report it as a gap and move on."""
        assert self.next_seq is not None
        nxt = self.next_seq
        first = min(self.pending, key=lambda s: (s - nxt) % SEQ_MOD)
        hole = (first - nxt) % SEQ_MOD
        out: list = []
        if hole and hole < HALF:
            self.gaps += 1
            self.gap_bytes += hole
            out.append(hole)
            self.next_seq = first
        self._drain(out)
        return out

    def _drain(self, out: list) -> None:
        """Deliver held segments that are now in order (trimming what overlaps delivered data)."""
        pending = self.pending
        while pending:
            nxt = self.next_seq
            assert nxt is not None
            progressed = False
            for seq in list(pending):
                rel = (seq - nxt) % SEQ_MOD
                if rel == 0 or rel >= HALF:
                    data = pending.pop(seq)
                    self._account(-len(data), -1)
                    skip = 0 if rel == 0 else SEQ_MOD - rel
                    if skip < len(data):
                        out.append(data[skip:])
                        self.next_seq = (nxt + len(data) - skip) % SEQ_MOD
                    else:
                        self.dup_bytes += len(data)
                    progressed = True
                    break
            if not progressed:
                return
