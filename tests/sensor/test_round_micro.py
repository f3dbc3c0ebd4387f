"""A row's ts: ``round_micro`` must give the very float ``round(ts, 6)`` gives (the rows' bytes depend on it)."""
from __future__ import annotations

import math
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from otsensor.sensor.pipeline import round_micro


def same_float(a: float, b: float) -> bool:
    """Bit for bit (so -0.0 is not 0.0); any NaN is the same NaN to a row (orjson writes null)."""
    return (math.isnan(a) and math.isnan(b)) or struct.pack("<d", a) == struct.pack("<d", b)


@settings(max_examples=500, deadline=None)
@given(st.integers(0, 2 ** 32 - 1), st.integers(0, 999_999))
def test_a_microsecond_timestamp_rounds_as_round_does(seconds: int, micros: int) -> None:
    # as the pcap reader makes them (and as pcapng's microsecond resolution does)
    for ts in (seconds + micros / 1e6, seconds + micros * 1e-6):
        assert same_float(round_micro(ts), round(ts, 6))


@settings(max_examples=500, deadline=None)
@given(st.integers(0, 2 ** 32 - 1), st.integers(0, 999_999_999))
def test_a_nanosecond_timestamp_rounds_as_round_does(seconds: int, nanos: int) -> None:
    ts = seconds + nanos / 1e9
    assert same_float(round_micro(ts), round(ts, 6))


@settings(max_examples=1000, deadline=None)
@given(st.floats(allow_nan=True, allow_infinity=True))
def test_any_float_rounds_as_round_does(ts: float) -> None:
    assert same_float(round_micro(ts), round(ts, 6))


def test_the_edges() -> None:
    near_ties = [n / 1e6 + d for n in (1, 3, 1_780_000_000_313_801) for d in (5e-7, -5e-7, 4.9e-7, 5.1e-7)]
    limit = 2 ** 51 / 1e6
    for ts in [0.0, -0.0, 1e-6, 5e-7, -5e-7, 1.5e-6, 2.5e-6, limit, limit - 1e-6, limit + 1e-6, 1e300,
               -1780000000.313801, *near_ties]:
        assert same_float(round_micro(ts), round(ts, 6)), ts
