"""Detection settings from the sensor configuration: allowances per host, maintenance windows, thresholds.

In the sensor's TOML configuration::

    [detection]
    engineering_stations = ["10.10.2.30"]
    select_before_operate = true          # the site always uses SBO (default: learned per outstation)
    recon_sweep_devices = 5
    aggregation_window_s = 3600           # longest one occurrence of an alert aggregates firings
    recurrence_quiet_s = 300              # after this long quiet, a firing is a new occurrence

    [[detection.allow]]                   # never alert on this rule for these hosts
    rule = "program_download"
    hosts = ["10.10.2.30"]

    [[detection.maintenance]]             # planned work: these rules are quiet in this window
    start = "2026-11-26T08:00:00Z"
    end = "2026-11-26T12:00:00Z"
    rules = ["plc_stop", "plc_start", "program_download"]
    hosts = ["10.10.1.30"]
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from otsensor.baselines.rules.catalog import RULES
from otsensor.baselines.schema import (
    BOOLEAN, INTEGER, IP_ADDRESSES, NUMBER, STRING, TIME, Key, Section, above, at_least, between, did_you_mean, each,
    list_of, parses,
)


class PolicyError(ValueError):
    pass


@dataclass(frozen=True)
class Allowance:
    rules: frozenset[str]            # empty: every rule
    hosts: frozenset[str]            # empty: every host; otherwise either end of the alert
    start: float | None = None
    end: float | None = None

    def covers(self, rule: str, src: str | None, dst: str | None, ts: float) -> bool:
        if self.rules and rule not in self.rules:
            return False
        if self.hosts and src not in self.hosts and dst not in self.hosts:
            return False
        if self.start is not None and ts < self.start:
            return False
        if self.end is not None and ts > self.end:
            return False
        return True


@dataclass
class DetectionConfig:
    engineering_stations: frozenset[str] = frozenset()
    select_before_operate: bool | None = None
    recon_sweep_devices: int = 5
    scan_hosts: int = 10             # hosts one source tried without exchanging data
    scan_ports: int = 10             # ports of one host one source tried without exchanging data
    scan_ot_hosts: int = 5           # control-zone hosts one source tried, never having spoken to them (baseline)
    aggregation_window_s: float = 3600.0
    recurrence_quiet_s: float = 300.0
    rate_burst_min: int = 30         # requests of one kind in one 10 s window above the learned peak: a flood
    error_burst_per_minute: int = 10
    anomaly_min_count: int = 10
    packet_loss_frames: int = 10         # a live sensor alerts when, in one stats interval, it lost this many
    packet_loss_fraction: float = 0.001  # ... and at least this share of what arrived
    allowances: list[Allowance] = field(default_factory=list)

    def allowed(self, rule: str, src: str | None, dst: str | None, ts: float) -> bool:
        return any(a.covers(rule, src, dst, ts) for a in self.allowances)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DetectionConfig":
        """The settings of a ``[detection]`` table that :data:`DETECTION` has validated."""
        cfg = cls()
        cfg.engineering_stations = frozenset(d.get("engineering_stations", []))
        cfg.select_before_operate = d.get("select_before_operate")
        cfg.recon_sweep_devices = int(d.get("recon_sweep_devices", cfg.recon_sweep_devices))
        cfg.scan_hosts = int(d.get("scan_hosts", cfg.scan_hosts))
        cfg.scan_ports = int(d.get("scan_ports", cfg.scan_ports))
        cfg.scan_ot_hosts = int(d.get("scan_ot_hosts", cfg.scan_ot_hosts))
        cfg.aggregation_window_s = float(d.get("aggregation_window_s", cfg.aggregation_window_s))
        cfg.recurrence_quiet_s = float(d.get("recurrence_quiet_s", cfg.recurrence_quiet_s))
        cfg.rate_burst_min = int(d.get("rate_burst_min", cfg.rate_burst_min))
        cfg.error_burst_per_minute = int(d.get("error_burst_per_minute", cfg.error_burst_per_minute))
        cfg.anomaly_min_count = int(d.get("anomaly_min_count", cfg.anomaly_min_count))
        cfg.packet_loss_frames = int(d.get("packet_loss_frames", cfg.packet_loss_frames))
        cfg.packet_loss_fraction = float(d.get("packet_loss_fraction", cfg.packet_loss_fraction))
        for entry in d.get("allow", []):
            cfg.allowances.append(Allowance(_rules(entry), frozenset(entry.get("hosts", []))))
        for entry in d.get("maintenance", []):
            cfg.allowances.append(Allowance(_rules(entry), frozenset(entry.get("hosts", [])),
                                            _time(entry["start"]), _time(entry["end"])))
        return cfg


def _rules(entry: dict[str, Any]) -> frozenset[str]:
    return frozenset(entry.get("rules") or ([entry["rule"]] if entry.get("rule") else []))


def _time(value: Any) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, datetime):
        return value.timestamp()
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise PolicyError(f"not a time: {value!r} (use ISO 8601, e.g. 2026-11-26T08:00:00Z)") from None


def _known_rule(name: str) -> str | None:
    return None if name in RULES else f"unknown rule {name!r}{did_you_mean(name, sorted(RULES))}"


WHEN = "an ISO 8601 time (e.g. 2026-11-26T08:00:00Z)"
_ALLOW_KEYS = {"rule": Key(STRING, _known_rule), "rules": Key(list_of(STRING), each(_known_rule)),
               "hosts": Key(list_of(STRING), IP_ADDRESSES)}
_WINDOW = Key(TIME, parses(_time, WHEN), required=WHEN)

# The [detection] section of the sensor configuration (sensor/config.py puts it in the file's schema).
DETECTION = Section(keys={
    "engineering_stations": Key(list_of(STRING), IP_ADDRESSES),
    "select_before_operate": Key(BOOLEAN),
    "recon_sweep_devices": Key(INTEGER, at_least(1)),
    "scan_hosts": Key(INTEGER, at_least(1)),
    "scan_ports": Key(INTEGER, at_least(1)),
    "scan_ot_hosts": Key(INTEGER, at_least(1)),
    "aggregation_window_s": Key(NUMBER, above(0)),
    "recurrence_quiet_s": Key(NUMBER, above(0)),
    "rate_burst_min": Key(INTEGER, at_least(1)),
    "error_burst_per_minute": Key(INTEGER, at_least(1)),
    "anomaly_min_count": Key(INTEGER, at_least(1)),
    "packet_loss_frames": Key(INTEGER, at_least(1)),
    "packet_loss_fraction": Key(NUMBER, between(0, 1)),
}, sections={
    "allow": Section(_ALLOW_KEYS, array=True),
    "maintenance": Section({**_ALLOW_KEYS, "start": _WINDOW, "end": _WINDOW}, array=True),
})
