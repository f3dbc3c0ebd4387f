"""Seeded, reproducible benchmark captures of dense OT traffic, built from struct templates in seconds.

``CAPTURES`` names each capture; :func:`build` writes one.  The same name,
packet count and seed always give the same bytes.  See bench/README.md for
what each holds.
"""
from .catalog import CAPTURES, CaptureSpec, build, one_packet
from .schedule import Summary

__all__ = ["CAPTURES", "CaptureSpec", "Summary", "build", "one_packet"]
