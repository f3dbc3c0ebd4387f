"""RangeSet (the address ranges of an edge and of a baseline) against the plainest model of what it means."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from otsensor.baselines.ranges import RangeSet, covers


def model_add(intervals: list[list[int]], start: int, count: int, cap: int) -> list[list[int]]:
    """Append the interval, sort, join what overlaps or touches, then join the closest neighbours (the first
    pair on a tie) while there are more than ``cap``: the meaning RangeSet.add must keep, done the slow way."""
    if count <= 0:
        return intervals
    joined: list[list[int]] = []
    for a, b in sorted([*intervals, [start, start + count - 1]]):
        if joined and a <= joined[-1][1] + 1:
            joined[-1][1] = max(joined[-1][1], b)
        else:
            joined.append([a, b])
    while len(joined) > cap:
        gaps = [joined[k + 1][0] - joined[k][1] for k in range(len(joined) - 1)]
        k = gaps.index(min(gaps))
        joined[k:k + 2] = [[joined[k][0], joined[k + 1][1]]]
    return joined


ADDS = st.lists(st.tuples(st.integers(-5, 400), st.integers(-1, 12)), max_size=120)


@settings(max_examples=300, deadline=None)
@given(ADDS, st.integers(2, 12))
def test_add_keeps_the_models_intervals_under_the_cap(adds, cap):
    ranges, model = RangeSet(cap=cap), []
    for start, count in adds:
        ranges.add(start, count)
        model = model_add(model, start, count, cap)
        assert ranges.to_list() == model


@settings(max_examples=200, deadline=None)
@given(ADDS, st.integers(-10, 410), st.integers(0, 20))
def test_contains_answers_as_the_intervals_listed(adds, start, count):
    ranges = RangeSet()
    for one, n in adds:
        ranges.add(one, n)
    listed = ranges.to_list()
    expected = any(a <= start and start + max(count, 1) - 1 <= b for a, b in listed)
    assert ranges.contains(start, count) is expected
    assert covers(listed, start, count) is expected


def test_intervals_given_out_of_order_or_overlapping_are_joined_first():
    """A baseline file edited by hand: its ranges are taken as the set of addresses they cover."""
    ranges = RangeSet([[20, 25], [0, 3], [4, 9], [22, 30], [40, 40]])
    assert ranges.to_list() == [[0, 9], [20, 30], [40, 40]]
    ranges.add(31, 9)
    assert ranges.to_list() == [[0, 9], [20, 40]]
    assert ranges.contains(5, 5) and not ranges.contains(5, 6) and ranges.contains(25)
