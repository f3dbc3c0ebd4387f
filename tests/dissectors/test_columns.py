"""Every log row is what its record class declares: column names and Zeek-style types.

The Zeek and ClickHouse outputs are built from ``Record.COLUMNS``, so a row
key that is not declared, or a value of another type, would be lost or
mistyped there.  Rows come from the whole pipeline over the committed
captures and, when present, a sample of corpus files of each protocol.
"""
from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest

from otsensor.dissectors.base import KINDS, ROW_PREFIX, Column, Record
from otsensor.dissectors.registry import default_registry
from otsensor.sensor.analyze import RunResult, read_files
from otsensor.sensor.parallel.events import RecordView
from otsensor.sensor.pipeline import Pipeline
from tests.corpus import manifest_files, pdus

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = sorted((ROOT / "pcaps").rglob("*.pcap"))
PER_PROTOCOL = 6


def corpus_sample() -> list[Path]:
    sample: list[Path] = []
    for token in ("modbus", "s7comm", "dnp3", "enip"):
        sample += manifest_files(lambda row, token=token: token in pdus(row))[:PER_PROTOCOL]
    return sample


def record_classes() -> list[type[Record]]:
    default_registry()   # imports every protocol package
    found, todo = [], [Record]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    # the workers' record views (sensor/parallel/events.py) stand for records of a log; they declare no columns;
    # and a test's stand-in record (test_flows' Broken, when that test ran earlier) is not the project's
    return [c for c in found if c is not Record and not issubclass(c, RecordView)
            and c.__module__.startswith("otsensor.")]


def declared() -> dict[str, dict[str, str]]:
    """log name -> column -> type, from every record class (classes sharing a log must agree)."""
    logs: dict[str, dict[str, str]] = {}
    for cls in record_classes():
        cols = {c.name: c.kind for c in (*ROW_PREFIX, *cls.COLUMNS)}
        if cls.LOG in logs:
            assert logs[cls.LOG] == cols, f"{cls.__name__} declares other columns for {cls.LOG}"
        logs[cls.LOG] = cols
    return logs


class Rows:
    def __init__(self) -> None:
        self.rows: list[tuple[str, dict[str, Any]]] = []

    def write(self, log: str, row: dict[str, Any]) -> None:
        self.rows.append((log, row))


def fits(kind: str, value: Any) -> bool:
    if value is None:
        return True
    if kind.startswith("vector["):
        return isinstance(value, list) and all(fits(kind[7:-1], v) for v in value)
    checks = {
        "string": lambda v: isinstance(v, str),
        "count": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "port": lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 65535,
        "double": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "time": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "interval": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "bool": lambda v: isinstance(v, bool),
        "addr": lambda v: isinstance(v, str) and bool(ipaddress.ip_address(v)),
        "json": lambda v: isinstance(v, (list, dict)),
    }
    return checks[kind](value)


def test_column_declarations_are_well_formed():
    for cls in record_classes():
        names = [c.name for c in cls.COLUMNS]
        assert len(names) == len(set(names)), f"{cls.__name__} declares a column twice"
        assert not set(names) & {c.name for c in ROW_PREFIX}, f"{cls.__name__} redeclares the row prefix"
        assert all(isinstance(c, Column) and c.kind in KINDS for c in cls.COLUMNS), cls.__name__


@pytest.mark.parametrize("path", CAPTURES + corpus_sample(), ids=lambda p: p.name)
def test_every_row_matches_its_declared_columns(path):
    logs = declared()
    rows = Rows()
    pipeline = Pipeline([rows])
    read_files(pipeline, [str(path)], RunResult({}), None)
    pipeline.finish()
    problems = set()
    for log, row in rows.rows:
        if log == "conn":
            continue    # the connection log is the pipeline's own (sensor/flows/table.py)
        cols = logs.get(log)
        if cols is None:
            problems.add(f"{log}: no record class writes this log")
            continue
        if len(cols) == len(ROW_PREFIX):
            continue    # TODO(issue 11): S7, DNP3 and ENIP records declare their columns next
        for key, value in row.items():
            if key not in cols:
                problems.add(f"{log}.{key}: not declared")
            elif not fits(cols[key], value):
                problems.add(f"{log}.{key}: {value!r:.60} is not {cols[key]}")
    assert not problems, sorted(problems)[:30]
