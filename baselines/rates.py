"""Request and write rates per (source, device, protocol, function): learned peaks, and floods above them.

Requests are counted in fixed windows of ``WINDOW_S`` seconds of capture
time.  The baseline's ``request_rates`` keeps, per key, the most requests one
window held.  While analysing, a window whose count passes
``max(3 x learned peak, learned peak + rate_burst_min)`` raises one alert for
that window, as the crossing happens: a write flood (hundreds of writes a
second from a known writer) or a poll flood.  A key the baseline never saw
has a learned peak of 0, so only the absolute burst size counts.
"""
from __future__ import annotations

from typing import Any

from otsensor.dissectors.base import Category, Op

WINDOW_S = 10.0
MAX_KEYS = 20_000
COUNTED = frozenset({Category.READ, Category.WRITE, Category.CONTROL, Category.DIAGNOSTIC, Category.RECON,
                     Category.PROGRAM})


def rate_key(client: str, server: str, protocol: str, function: str) -> str:
    return f"{client} -> {server} {protocol} {function}"


class RateMeter:
    """Requests per key in the current window, and the most any window held."""

    def __init__(self) -> None:
        self.current: dict[str, list[float]] = {}   # key -> [window index, count]
        self.peak: dict[str, int] = {}

    def count(self, key: str, ts: float) -> int:
        """Count one request at ``ts``; returns how many its window now holds (0 when the table is full)."""
        window = ts // WINDOW_S
        slot = self.current.get(key)
        if slot is None:
            if len(self.current) >= MAX_KEYS:
                return 0
            slot = self.current[key] = [window, 0]
        if slot[0] != window:
            slot[0], slot[1] = window, 0
        slot[1] += 1
        n = int(slot[1])
        if n > self.peak.get(key, 0):
            self.peak[key] = n
        return n

    def to_baseline(self) -> dict[str, dict[str, Any]]:
        return {k: {"peak_per_window": n, "window_s": WINDOW_S} for k, n in sorted(self.peak.items())}

    def to_state(self) -> dict[str, Any]:
        return {"current": self.current, "peak": self.peak}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "RateMeter":
        meter = cls()
        meter.current = {k: [float(w), int(n)] for k, (w, n) in state.get("current", {}).items()}
        meter.peak = {k: int(n) for k, n in state.get("peak", {}).items()}
        return meter


def counted(op: Op) -> bool:
    return op.category in COUNTED


def flood_threshold(learned_peak: int, burst_min: int) -> int:
    return max(3 * learned_peak, learned_peak + burst_min)


class RateRules:
    """The detection side: one alert per window that passes its key's threshold."""

    def __init__(self, raise_alert: Any) -> None:
        self.raise_alert = raise_alert
        self.meter = RateMeter()

    def observe(self, baseline: dict[str, Any], burst_min: int, flow: Any, record: Any, op: Op,
                client: str, server: str, protocol: str) -> None:
        key = rate_key(client, server, protocol, op.function)
        n = self.meter.count(key, record.ts)
        learned = baseline.get("request_rates", {}).get(key, {}).get("peak_per_window", 0)
        threshold = flood_threshold(learned, burst_min)
        if n != threshold + 1:
            return
        writes = op.category == Category.WRITE
        self.raise_alert("write_flood" if writes else "request_flood", record.ts,
                         f"{client} sent more than {threshold} {protocol} {op.function} requests to {server} "
                         f"within {WINDOW_S:g}s; learned peak {learned}", key, flow, record,
                         function=op.function, src=client, dst=server,
                         baseline=f"peak {learned} per {WINDOW_S:g}s of {key}",
                         fold={"kind": "rate", "table": "request_rates", "key": key,
                               "value": {"peak_per_window": n, "window_s": WINDOW_S}})
