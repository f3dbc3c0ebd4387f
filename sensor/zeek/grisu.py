"""The shortest-digits algorithm Zeek's JSON writer prints doubles with (rapidjson's, Grisu2).

Grisu2 (F. Loitsch, "Printing Floating-Point Numbers Quickly and Accurately
with Integers", PLDI 2010) gives digits that read back as the same double,
usually but not always the shortest: where it gives one digit more or less
than Python's repr, Zeek's JSON shows Grisu2's (``2153226000.123457`` for
the double nearest 2153226000.123456789).  This is the algorithm with
64-bit arithmetic as rapidjson's writer runs it; the layout of the digits
(``1e21``, ``0.0001``, ``.0`` for whole numbers) is format.json_double's.
"""
from __future__ import annotations

import struct
from fractions import Fraction
from typing import Final

MASK64: Final = (1 << 64) - 1
HIDDEN_BIT: Final = 1 << 52
POW10: Final = tuple(10 ** i for i in range(20))


def _cached_power(index: int) -> tuple[int, int]:
    """10**(-348 + 8*index) as a 64-bit significand (rounded to nearest) and a binary exponent."""
    value = Fraction(10) ** (-348 + 8 * index)
    exponent = value.numerator.bit_length() - value.denominator.bit_length() - 64
    while value / Fraction(2) ** exponent >= 1 << 64:
        exponent += 1
    while value / Fraction(2) ** exponent < 1 << 63:
        exponent -= 1
    return round(value / Fraction(2) ** exponent), exponent


CACHED_POWERS: Final = tuple(_cached_power(i) for i in range(87))


def _mul(f1: int, e1: int, f2: int, e2: int) -> tuple[int, int]:
    """The upper 64 bits of a 64x64-bit product, rounded as the 32-bit halves sum them."""
    a, b, c, d = f1 >> 32, f1 & 0xFFFFFFFF, f2 >> 32, f2 & 0xFFFFFFFF
    ac, bc, ad, bd = a * c, b * c, a * d, b * d
    tmp = (bd >> 32) + (ad & 0xFFFFFFFF) + (bc & 0xFFFFFFFF) + (1 << 31)
    return (ac + (ad >> 32) + (bc >> 32) + (tmp >> 32)) & MASK64, e1 + e2 + 64


def _normalize(f: int, e: int) -> tuple[int, int]:
    shift = 64 - f.bit_length()
    return f << shift, e - shift


def grisu2(value: float) -> tuple[str, int]:
    """Digits and decimal exponent of a positive, finite double: value ~= int(digits) * 10**exponent."""
    bits = struct.unpack("<Q", struct.pack("<d", value))[0]
    biased, significand = (bits >> 52) & 0x7FF, bits & (HIDDEN_BIT - 1)
    f, e = (significand + HIDDEN_BIT, biased - 1075) if biased else (significand, -1074)
    # the boundaries halfway to the neighbouring doubles, at m+'s normalized exponent
    plus_f, plus_e = (f << 1) + 1, e - 1
    while not plus_f & (HIDDEN_BIT << 1):
        plus_f, plus_e = plus_f << 1, plus_e - 1
    plus_f, plus_e = plus_f << 10, plus_e - 10
    minus_f, minus_e = ((f << 2) - 1, e - 2) if f == HIDDEN_BIT else ((f << 1) - 1, e - 1)
    minus_f <<= minus_e - plus_e
    dk = (-61 - plus_e) * 0.30102999566398114 + 347
    k = int(dk)
    if dk - k > 0.0:
        k += 1
    index = (k >> 3) + 1
    decimal_exponent = -(-348 + (index << 3))
    cf, ce = CACHED_POWERS[index]
    w_f, w_e = _mul(*_normalize(f, e), cf, ce)
    wp_f, wp_e = _mul(plus_f, plus_e, cf, ce)
    wm_f, _ = _mul(minus_f, plus_e, cf, ce)
    wm_f += 1
    wp_f -= 1
    return _digit_gen(w_f, w_e, wp_f, wp_e, wp_f - wm_f, decimal_exponent)


def _digit_gen(w_f: int, w_e: int, mp_f: int, mp_e: int, delta: int, k: int) -> tuple[str, int]:
    one_e = mp_e
    one_f = 1 << -one_e
    wp_w = (mp_f - w_f) & MASK64
    p1 = mp_f >> -one_e
    p2 = mp_f & (one_f - 1)
    kappa = len(str(p1)) if p1 else 1
    digits: list[int] = []
    while kappa > 0:
        d, p1 = divmod(p1, POW10[kappa - 1])
        if d or digits:
            digits.append(d)
        kappa -= 1
        rest = (p1 << -one_e) + p2
        if rest <= delta:
            _round(digits, delta, rest, (POW10[kappa] << -one_e) & MASK64, wp_w)
            return "".join(map(str, digits)), k + kappa
    while True:
        p2 *= 10
        delta = (delta * 10) & MASK64
        d = p2 >> -one_e
        if d or digits:
            digits.append(d)
        p2 &= one_f - 1
        kappa -= 1
        if p2 < delta:
            index = -kappa
            _round(digits, delta, p2, one_f, (wp_w * (POW10[index] if index < 20 else 0)) & MASK64)
            return "".join(map(str, digits)), k + kappa


def _round(digits: list[int], delta: int, rest: int, ten_kappa: int, wp_w: int) -> None:
    """Moves the last digit down while that brings the number closer to the double (GrisuRound)."""
    while rest < wp_w and delta - rest >= ten_kappa and \
            ((rest + ten_kappa) & MASK64 < wp_w or wp_w - rest > ((rest + ten_kappa) & MASK64) - wp_w):
        digits[-1] -= 1
        rest = (rest + ten_kappa) & MASK64
