"""Values written to each device over time, read from the protocol logs (for the device page's chart).

One extractor per log turns a row into (device, series name, value) points when the row is a write that
carries numeric values: Modbus register and coil writes (``request_values``), S7 Write Var items, DNP3
operate commands (analog values; CROB latch/pulse on as 1, off as 0) and CIP Write Tag.  Each log is
followed (files.LogFollower); a cheap byte test skips the reads before any JSON is parsed.
"""
from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from otsensor.sensor.console.files import LogFollower, parse_lines

Point = tuple[str, float]        # series name, value
MAX_SERIES_PER_DEVICE = 64
MAX_POINTS_PER_SERIES = 2_000
MAX_ELEMENTS = 16                # values taken from one multi-register write
LOG_BUDGET = 256 << 20           # newest bytes read per log on a (re)load

MODBUS_SKIPPED = frozenset({"MASK_WRITE_REGISTER", "WRITE_FILE_RECORD"})   # masks and files are not values
DNP3_OPERATES = frozenset({"OPERATE", "DIRECT_OPERATE", "DIRECT_OPERATE_NR"})
CROB_LEVELS = {"Latch On": 1.0, "Pulse On": 1.0, "Close": 1.0, "Latch Off": 0.0, "Pulse Off": 0.0, "Trip": 0.0}
CIP_WRITES = frozenset({"Write Tag", "Write Tag Fragmented"})


def _numbers(values: Any) -> list[float]:
    if not isinstance(values, list):
        return []
    return [float(v) for v in values[:MAX_ELEMENTS] if isinstance(v, (int, float))]


def _indexed(base: str, values: list[float], start: int | None = None) -> Iterator[Point]:
    """One series per element: ``holding_registers 7`` (an address) or ``Speed[0] +1`` (an element)."""
    for i, v in enumerate(values):
        if start is not None:
            yield f"{base} {start + i}", v
        else:
            yield (f"{base} +{i}" if len(values) > 1 else base), v


def modbus_points(row: dict[str, Any]) -> Iterator[Point]:
    func = str(row.get("func", ""))
    if "WRITE" not in func or func in MODBUS_SKIPPED or row.get("exception_code"):
        return
    space = "coils" if "COIL" in func else "holding_registers"
    address = row.get("address")
    yield from _indexed(space, _numbers(row.get("request_values")), address if isinstance(address, int) else None)


def s7comm_points(row: dict[str, Any]) -> Iterator[Point]:
    if row.get("function_name") != "Write Var":
        return
    for item in row.get("items") or ():
        if not isinstance(item, dict):
            continue
        area = item.get("area", "?")
        where = f"DB{item.get('db')}" if area == "DB" else str(area)
        yield from _indexed(f"{where}.{item.get('byte_address')}", _numbers(item.get("values")))


def dnp3_points(row: dict[str, Any]) -> Iterator[Point]:
    if row.get("function_code") not in DNP3_OPERATES:
        return
    index = row.get("index_number")
    if isinstance(row.get("value"), (int, float)):
        yield f"analog output {index}", float(row["value"])
        return
    level = CROB_LEVELS.get(row.get("trip_control_code") or "") if row.get("trip_control_code") != "Nul" else None
    level = CROB_LEVELS.get(row.get("operation_type") or "", level)
    if level is not None:
        yield f"binary output {index}", level


def cip_points(row: dict[str, Any]) -> Iterator[Point]:
    if row.get("cip_service") not in CIP_WRITES or row.get("cip_status") not in (None, "Success"):
        return
    yield from _indexed(str(row.get("symbol") or row.get("request_path") or "tag"), _numbers(row.get("values")))


# log -> (bytes every write row contains, extractor)
EXTRACTORS: dict[str, tuple[bytes, Callable[[dict[str, Any]], Iterator[Point]]]] = {
    "modbus": (b"WRITE", modbus_points),
    "s7comm": (b"Write Var", s7comm_points),
    "dnp3_control": (b"OPERATE", dnp3_points),
    "cip": (b"Write Tag", cip_points),
}


class WrittenValues:
    """Per device, per series, the last points written: {ip: {"modbus holding_registers 5": deque[(ts, v)]}}."""

    def __init__(self, directory: str) -> None:
        self.followers = {log: LogFollower(directory, log, LOG_BUDGET) for log in EXTRACTORS}
        self.series: dict[str, dict[str, dict[str, deque]]] = {log: {} for log in EXTRACTORS}
        self.bad_lines = 0
        self.lock = threading.Lock()

    def refresh(self) -> None:
        for log, follower in self.followers.items():
            poll = follower.poll()
            if poll.reset:
                self.series[log] = {}
            if poll.lines:
                self._add(log, poll.lines)

    def _add(self, log: str, lines: list[bytes]) -> None:
        rows, bad = parse_lines(lines, keep=lambda line: EXTRACTORS[log][0] in line)
        self.bad_lines += bad
        add_points(self.series[log], log, rows)

    def of(self, device: str) -> list[dict[str, Any]]:
        with self.lock:
            self.refresh()
            return series_view(self.series, device)


def add_points(devices: dict[str, dict[str, deque]], log: str, rows: Iterable[dict[str, Any]]) -> None:
    """The points of ``log``'s write rows, per device and series, in row order (the newest kept)."""
    extract = EXTRACTORS[log][1]
    for row in rows:
        device, ts = row.get("id.resp_h"), row.get("ts")
        if not isinstance(device, str) or not isinstance(ts, (int, float)):
            continue
        for name, value in extract(row):
            series = devices.setdefault(device, {})
            points = series.get(name)
            if points is None:
                if len(series) >= MAX_SERIES_PER_DEVICE:
                    continue
                points = series[name] = deque(maxlen=MAX_POINTS_PER_SERIES)
            points.append((ts, value, row.get("id.orig_h")))


def series_view(series: dict[str, dict[str, dict[str, deque]]], device: str) -> list[dict[str, Any]]:
    """One device's series, per log in EXTRACTORS' order and by name, as the device page shows them."""
    out = []
    for log, devices in series.items():
        for name, points in sorted(devices.get(device, {}).items()):
            out.append({"log": log, "series": f"{log} {name}",
                        "points": [{"ts": ts, "value": v, "writer": w} for ts, v, w in points]})
    return out
