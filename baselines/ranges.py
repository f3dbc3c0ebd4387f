"""Bounded sets of integer intervals: the address ranges read or written on an edge."""
from __future__ import annotations

MAX_INTERVALS = 256


class RangeSet:
    """Closed integer intervals, merged when they touch; past the cap the closest neighbours merge."""

    __slots__ = ("intervals", "cap")

    def __init__(self, intervals: list[list[int]] | None = None, cap: int = MAX_INTERVALS) -> None:
        self.intervals: list[list[int]] = [list(i) for i in intervals or []]
        self.cap = cap

    def add(self, start: int, count: int = 1) -> None:
        if count <= 0:
            return
        lo, hi = start, start + count - 1
        for a, b in self.intervals:  # polls repeat the same ranges: the common case adds nothing
            if a <= lo and hi <= b:
                return
        merged: list[list[int]] = []
        placed = False
        for a, b in self.intervals:
            if b + 1 < lo:
                merged.append([a, b])
            elif hi + 1 < a:
                if not placed:
                    merged.append([lo, hi])
                    placed = True
                merged.append([a, b])
            else:
                lo, hi = min(lo, a), max(hi, b)
        if not placed:
            merged.append([lo, hi])
        merged.sort()
        self.intervals = merged
        while len(self.intervals) > self.cap:
            self._merge_closest()

    def _merge_closest(self) -> None:
        iv = self.intervals
        i = min(range(len(iv) - 1), key=lambda k: iv[k + 1][0] - iv[k][1])
        iv[i:i + 2] = [[iv[i][0], iv[i + 1][1]]]

    def contains(self, start: int, count: int = 1) -> bool:
        lo, hi = start, start + max(count, 1) - 1
        return any(a <= lo and hi <= b for a, b in self.intervals)

    def to_list(self) -> list[list[int]]:
        return [list(i) for i in self.intervals]
