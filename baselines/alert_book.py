"""The detector's open alerts: one per (rule, identifier), aggregated while they recur, written when closed.

An alert that fires again within the aggregation window and before a quiet gap is the same occurrence and
is merged into the open one; a later firing closes the open one (written, linked to the new one). The book
is bounded: past MAX_OPEN_ALERTS the longest-quiet tenth is closed early, so a flood of distinct alerts
costs writes, not memory.
"""
from __future__ import annotations

from typing import Any, Callable

from otsensor.baselines.alerts import SEVERITY_RANK, Alert
from otsensor.baselines.policy import DetectionConfig

MAX_OPEN_ALERTS = 20_000     # past this, the longest-quiet alerts are closed (written) early


class AlertBook:
    def __init__(self, config: DetectionConfig, emit: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.config = config            # the detector's settings (replaced on a live sensor's reload)
        self.open: dict[tuple[str, str], Alert] = {}
        self.closed: list[Alert] = []   # closed alerts waiting for drain() when there is no emit callback
        self.emit = emit                # writes an alert as soon as its aggregation window closes

    def add(self, alert: Alert) -> None:
        key = (alert.rule, alert.identifier)
        current = self.open.get(key)
        if current is not None and self._same_occurrence(current, alert):
            current.merge(alert)
            if alert.severity != current.severity and _rank(alert.severity) > _rank(current.severity):
                current.severity = alert.severity
            return
        if current is not None:   # a recurrence: the first occurrence is written, this one links to it
            current.recur(alert)
            self._close(current)
        self.open[key] = alert
        if len(self.open) > MAX_OPEN_ALERTS:
            for stale in sorted(self.open, key=lambda k: self.open[k].last_seen)[:MAX_OPEN_ALERTS // 10]:
                self._close(self.open.pop(stale))

    def drain(self) -> list[Alert]:
        """Every alert not yet written (closed, then still open), in the order of their first firing; the
        book is empty after."""
        alerts = sorted(self.closed + list(self.open.values()), key=lambda a: (a.first_seen, a.rule, a.identifier))
        self.closed, self.open = [], {}
        return alerts

    def state(self) -> list[dict[str, Any]]:
        """The alerts still aggregating, as JSON (a live sensor's checkpoint: sensor/checkpoint.py)."""
        return [dict(alert.to_dict(), running_total=alert.running_total) for alert in self.open.values()]

    def restore(self, state: list[dict[str, Any]]) -> None:
        """Aggregate on into the alerts :meth:`state` wrote: their next firings are not new.
        Nothing changes when it raises KeyError, TypeError or ValueError."""
        alerts = [Alert.from_dict(row) for row in state]
        for alert, row in zip(alerts, state):
            alert.running_total = bool(row["running_total"])
        self.open.update({(a.rule, a.identifier): a for a in alerts})

    def _same_occurrence(self, current: Alert, alert: Alert) -> bool:
        quiet = alert.first_seen - current.last_seen
        return quiet <= self.config.recurrence_quiet_s and \
            alert.first_seen - current.first_seen <= self.config.aggregation_window_s

    def _close(self, alert: Alert) -> None:
        if self.emit is None:
            self.closed.append(alert)
            return
        self.emit(alert.to_dict())


def _rank(severity: str) -> int:
    return SEVERITY_RANK.get(severity, 0)
