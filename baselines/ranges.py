"""Bounded sets of integer intervals: the address ranges read or written on an edge."""
from __future__ import annotations

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
        if not intervals:     # (a graph makes one per address space it meets: thousands on a busy site)
            return
        for a, b in sorted((interval[0], interval[1]) for interval in intervals):
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
        after = _first_above(starts, lo, 0)     # polls repeat the same ranges: the common case adds nothing
        if after and hi <= ends[after - 1]:
            return
        first = _first_above(ends, lo - 2, 0)   # the intervals that overlap or touch [lo, hi] merge with it
        last = _first_above(starts, hi + 1, first)
        if first == last:       # apart from every interval: a new one (list.insert: no slice object, no list)
            starts.insert(first, lo)
            ends.insert(first, hi)
        else:                   # [lo, hi] joins intervals first .. last - 1 into one
            starts[first] = min(lo, starts[first])
            ends[first] = max(hi, ends[last - 1])
            if last > first + 1:
                del starts[first + 1:last]
                del ends[first + 1:last]
        while len(starts) > self.cap:
            self._merge_closest()

    def __len__(self) -> int:
        return len(self.starts)

    def add_within(self, start: int, count: int, full: bool) -> int:
        """:meth:`add`, for a holder with a budget of intervals: when ``full``, the set keeps the number of
        intervals it has (the address widens the closest one: still true, less precise).  Returns by how
        many intervals the set grew (negative when the address joined some)."""
        before = len(self.starts)
        if full and before:
            self.cap = min(self.cap, before)
        self.add(start, count)
        return len(self.starts) - before

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
        after = _first_above(self.starts, start, 0)
        return after > 0 and start + max(count, 1) - 1 <= self.ends[after - 1]

    def to_list(self) -> list[list[int]]:
        return [[a, b] for a, b in zip(self.starts, self.ends)]


def _first_above(values: list[int], x: int, lo: int) -> int:
    """The index of the first of the sorted ``values`` (from ``lo``) greater than ``x`` (bisect_right, written
    here so that the compiled build runs it inline rather than calling into the bisect module)."""
    hi = len(values)
    while lo < hi:
        mid = (lo + hi) >> 1
        if x < values[mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo


def covers(intervals: list[list[int]], start: int, count: int = 1) -> bool:
    """Whether one of ``intervals`` (a learned baseline's list, as it is) holds ``start`` .. ``start + count - 1``:
    for a check made once, without building a RangeSet."""
    lo, hi = start, start + max(count, 1) - 1
    return any(a <= lo and hi <= b for a, b in intervals)
