"""Sensor health: packets, drops, uptime and per-protocol record rates.

A live `otsensor run` directory has ``stats.json`` (version 1, its format is in README.md "stats.json and the
stats line"; rewritten every 10 s): its counters are shown, kernel counters per interface too, and rates
come from the change between two readings (by their ``updated`` time).  An `otsensor analyze` directory has only ``summary.json``: its
totals are shown, and rates are records per second of the traffic's own time span (first to last seen).
"""
from __future__ import annotations

import os
import threading
import time
from datetime import datetime
from typing import Any

from otsensor.sensor.console.store import Store

# stats.json counters the page leads with: top-level keys, then the capture's (null when reading a stream)
COUNTERS = ("packets", "uptime_s", "flows", "flows_active", "alerts", "errors", "undecoded_packets",
            "flows_evicted")
CAPTURE_COUNTERS = ("kernel_received", "kernel_dropped", "freeze_count", "frames_truncated")


def _when(stats: dict[str, Any], path: str) -> float | None:
    """The reading's time: its ``updated`` stamp, else the file's modification time."""
    try:
        return datetime.fromisoformat(str(stats["updated"])).timestamp()
    except (KeyError, ValueError):
        return _mtime(path)


class RateTracker:
    """Keeps the previous stats.json reading, so two readings give records per second per log."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.previous: tuple[float, dict[str, float]] | None = None
        self.current: tuple[float, dict[str, float]] | None = None
        self.rates: dict[str, float] = {}

    def update(self, when: float, records: dict[str, float]) -> dict[str, float]:
        with self.lock:
            if self.current is None or when > self.current[0]:
                self.previous, self.current = self.current, (when, records)
                if self.previous is not None:
                    dt = when - self.previous[0]
                    self.rates = {log: max(0.0, (n - self.previous[1].get(log, 0)) / dt)
                                  for log, n in records.items()} if dt > 0 else self.rates
            return dict(self.rates)


def _records(doc: dict[str, Any]) -> dict[str, float]:
    records = doc.get("records") if isinstance(doc.get("records"), dict) else {}
    return {k: float(v) for k, v in records.items() if isinstance(v, (int, float))}


def _span(assets: list[dict[str, Any]]) -> float:
    firsts = [a["first_seen"] for a in assets if isinstance(a.get("first_seen"), (int, float))]
    lasts = [a["last_seen"] for a in assets if isinstance(a.get("last_seen"), (int, float))]
    return max(lasts) - min(firsts) if firsts and lasts else 0.0


def health_view(store: Store, directory: str | None, tracker: RateTracker) -> dict[str, Any]:
    """The health page; without DIR (a ClickHouse console) only what the store holds, and a notice saying so."""
    stats = store.stats()
    summary = store.summary()
    out: dict[str, Any] = {"live": stats is not None, "problems": store.problems(),
                           "files": _files(directory) if directory else [], "notice": store.notice()}
    if stats is not None:
        when = _when(stats, os.path.join(directory or "", "stats.json")) or time.time()
        records = _records(stats)
        rates = tracker.update(when, records)
        if not rates:   # one reading so far: the average since start
            uptime = stats.get("uptime_s") if isinstance(stats.get("uptime_s"), (int, float)) else 0
            rates = {k: v / uptime for k, v in records.items()} if uptime else {}
        capture = stats.get("capture") if isinstance(stats.get("capture"), dict) else {}
        counters = {k: stats.get(k) for k in COUNTERS} | {k: capture.get(k) for k in CAPTURE_COUNTERS}
        out.update(source="stats.json", state=stats.get("state"), updated=when, age_s=round(time.time() - when, 1),
                   counters=counters, records=records, rates=rates, raw=_scalars(stats),
                   interfaces=[i for i in capture.get("interfaces") or () if isinstance(i, dict)],
                   stream=capture.get("stream"))
    else:
        records = _records(summary)
        span = _span(store.assets())
        out.update(source=("summary.json" if directory else "ClickHouse") if summary else None,
                   updated=_mtime(os.path.join(directory, "summary.json")) if directory else None,
                   counters={"packets": summary.get("packets"), "flows": summary.get("flows"),
                             "flows_evicted": summary.get("flows_evicted"), "stream_gaps": summary.get("stream_gaps"),
                             "dissector_errors": summary.get("dissector_errors"),
                             "analyzer_errors": summary.get("analyzer_errors"), "traffic_span_s": round(span, 3)},
                   records=records, rates={k: v / span for k, v in records.items()} if span > 0 else {},
                   raw=_scalars(summary), errors=summary.get("errors") or [], warnings=summary.get("warnings") or [],
                   sinks=summary.get("sinks") or [])
    return out


def _scalars(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if isinstance(v, (int, float, str, bool)) or v is None}


def _mtime(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


def _files(directory: str) -> list[dict[str, Any]]:
    out = []
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return out
    for name in names:
        path = os.path.join(directory, name)
        try:
            st = os.stat(path)
        except OSError:
            continue
        if os.path.isfile(path):
            out.append({"name": name, "size": st.st_size, "mtime": st.st_mtime})
    return out
