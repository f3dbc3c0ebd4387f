"""``round6``, the rounding every row's times go through, is ``round(x, 6)`` for every float.

It takes a shortcut (an integer division) where the product with 1e6 lies far from a rounding tie,
and leaves the rest to ``round``; these check both sides of that line, on capture-like times and on
any double."""
from __future__ import annotations

import math
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from otsensor.dissectors.base import round6


def same(x: float) -> bool:
    expected, got = round(x, 6), round6(x)
    return got == expected and math.copysign(1.0, got) == math.copysign(1.0, expected)


@settings(max_examples=3000)
@given(st.floats(allow_nan=False))
def test_any_double_rounds_as_round_does(x: float) -> None:
    assert same(x)


@settings(max_examples=3000)
@given(st.integers(0, 4_000_000_000), st.integers(0, 999_999_999))
def test_capture_times_round_as_round_does(seconds: int, nanoseconds: int) -> None:
    assert same(seconds + nanoseconds / 1e9)
    assert same(seconds + (nanoseconds // 1000) * 1e-6)   # a microsecond pcap's times
    assert same((seconds * 1_000_000 + nanoseconds // 1000) * 1e-6)   # a pcapng's, in microsecond units


@given(st.integers(1, 2 ** 51))
def test_times_at_a_tie_round_as_round_does(n: int) -> None:
    tie = (n + 0.5) / 1e6
    for x in (tie, math.nextafter(tie, 0.0), math.nextafter(tie, math.inf)):
        assert same(x)


def test_the_edges_of_the_shortcut() -> None:
    values = [0.0, -0.0, 1e-6, 0.9999995e-6, 2.0 ** 51 / 1e6, 2.0 ** 51 / 1e6 + 1, -1.5, math.inf, -math.inf,
              1764234567.1234565, 1764234567.123456, sys.float_info.max, -sys.float_info.max]
    assert all(same(x) for x in values)
    assert math.isnan(round6(math.nan))
    # a quarter-microsecond either side of a tie, on small and on 2026-sized times
    near_ties = [n / 1e6 + d for n in (1, 3, 1_780_000_000_313_801) for d in (5e-7, -5e-7, 4.9e-7, 5.1e-7)]
    assert all(same(x) for x in near_ties)
