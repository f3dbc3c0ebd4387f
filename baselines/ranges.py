"""Bounded sets of integer intervals: the address ranges read or written on an edge."""
from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Final

MAX_INTERVALS: Final = 256


class RangeSet:
    """Closed integer intervals, merged when they touch; past the cap the closest neighbours merge.

    The intervals are kept sorted and apart (a gap of at least one between neighbours) in two parallel
    lists, so that a look-up or an insertion is a binary search: the graph adds every item of every
    Read/Write request, and a busy edge holds up to ``cap`` intervals.
    """

    __slots__ = ("starts", "ends", "cap")

    def __init__(self, intervals: list[list[int]] | None = None, cap: int = MAX_INTERVALS) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.cap = cap
        for a, b in sorted((interval[0], interval[1]) for interval in intervals or []):
            if self.starts and a <= self.ends[-1] + 1:     # (a baseline file edited by hand may overlap)
                self.ends[-1] = max(self.ends[-1], b)
            else:
                self.starts.append(a)
                self.ends.append(b)

    def add(self, start: int, count: int = 1) -> None:
        if count <= 0:
            return
        lo, hi = start, start + count - 1
        starts, ends = self.starts, self.ends
        after = bisect_right(starts, lo)     # polls repeat the same ranges: the common case adds nothing
        if after and hi <= ends[after - 1]:
            return
        first = bisect_left(ends, lo - 1)    # the intervals that overlap or touch [lo, hi] merge with it
        last = bisect_right(starts, hi + 1, first)
        if first < last:
            lo, hi = min(lo, starts[first]), max(hi, ends[last - 1])
        starts[first:last] = [lo]
        ends[first:last] = [hi]
        while len(starts) > self.cap:
            self._merge_closest()

    def _merge_closest(self) -> None:
        """Join the two neighbours with the smallest gap (the first such pair on a tie)."""
        starts, ends = self.starts, self.ends
        best, best_gap = 0, starts[1] - ends[0]
        for k in range(1, len(starts) - 1):
            gap = starts[k + 1] - ends[k]
            if gap < best_gap:
                best, best_gap = k, gap
        del starts[best + 1]
        del ends[best]

    def contains(self, start: int, count: int = 1) -> bool:
        after = bisect_right(self.starts, start)
        return after > 0 and start + max(count, 1) - 1 <= self.ends[after - 1]

    def to_list(self) -> list[list[int]]:
        return [[a, b] for a, b in zip(self.starts, self.ends)]


def covers(intervals: list[list[int]], start: int, count: int = 1) -> bool:
    """Whether one of ``intervals`` (a learned baseline's list, as it is) holds ``start`` .. ``start + count - 1``:
    for a check made once, without building a RangeSet."""
    lo, hi = start, start + max(count, 1) - 1
    return any(a <= lo and hi <= b for a, b in intervals)
