"""README.md documents every log a run can write and every anomaly name a dissector can emit.

The lists in the README are written by hand; these tests fail when the code grows a log or an anomaly
that the README does not name (issue 10: ``dnp3_stations.jsonl`` and ``modbus.function_mismatch`` were missing).
"""
from __future__ import annotations

import importlib
import pkgutil
import re

import pytest

import otsensor.dissectors
from otsensor.sensor.sinks.outdir import known_logs
from tests.cli import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    """The README text under a heading, up to the next heading of any level."""
    start = README.index(title)
    following = re.search(r"^#{2,3} ", README[start + len(title):], re.M)
    return README[start:start + len(title) + following.start()] if following else README[start:]


def anomaly_names() -> set[str]:
    """Every name in the ANOMALIES tables of the dissector packages (each package keeps its closed set)."""
    names: set[str] = set()
    for info in pkgutil.walk_packages(otsensor.dissectors.__path__, "otsensor.dissectors."):
        names.update(getattr(importlib.import_module(info.name), "ANOMALIES", {}))
    return names


def test_the_anomaly_tables_were_found():
    assert {"modbus.function_mismatch", "dnp3.bad_crc", "cotp.gap", "cip.bad_path"} <= anomaly_names()


@pytest.mark.parametrize("log", sorted(known_logs()))
def test_the_output_table_names_every_log(log):
    assert f"`{log}.jsonl`" in section("## What `otsensor analyze` writes")


@pytest.mark.parametrize("name", sorted(anomaly_names()))
def test_the_anomalies_section_names_every_anomaly(name):
    assert re.search(rf"`{re.escape(name)}`|\b{re.escape(name)}\b", section("### `anomalies.jsonl`"))
