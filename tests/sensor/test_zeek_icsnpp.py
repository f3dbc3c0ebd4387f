"""Our zeek/*.log against the ICSNPP packages' own btests, row for row (ts and uid masked).

tests/zeek_reference/icsnpp-<protocol>/ holds each package's test scripts,
traces and baselines as published (cisagov/icsnpp-*, BSD-3; README there).
Each test runs as btest would (tests/sensor/zeek_btest.py).  The packages'
btests do not diff conn.log, but their baselines hold one: it is compared
too, with the Zeek release that wrote it (before 6.0 private address space
was not local: local_orig and local_resp unset).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.sensor.zeek_btest import diff, have_tools, run_reference

REFERENCE = Path(__file__).resolve().parents[1] / "zeek_reference"
# (package, test): the Zeek release whose conn.log layout the baseline shows
CASES = {
    ("icsnpp-modbus", "basic"): "7.0",
    ("icsnpp-dnp3", "basic"): "5.2",
    ("icsnpp-enip", "basic"): "7.0",
    ("icsnpp-enip", "multiple_service_request"): "7.0",
    ("icsnpp-enip", "set_attr_single_service"): "7.0",
    ("icsnpp-s7comm", "s7comm_plus"): "5.2",
    ("icsnpp-s7comm", "s7ident"): "5.2",
    ("icsnpp-s7comm", "snap7"): "5.2",
}

# logs not written yet (README, "Using otsensor with Zeek and Malcolm tools"); strict: the case still runs,
# and one that starts to pass while listed here fails
NOT_YET: dict[str, str] = {}


def _case(package: str, test: str) -> object:
    marks = [pytest.mark.xfail(strict=True, reason=NOT_YET[package])] if package in NOT_YET else []
    return pytest.param(package, test, marks=marks, id=f"{package}-{test}")


def _paths(package: str, test: str) -> tuple[Path, Path, Path, Path]:
    root = REFERENCE / package
    return (root / "analyzer" / f"{test}.zeek", root / "baseline" / f"analyzer.{test}", root / "traces",
            root / "scripts" / "diff-remove-timestamps")


def _config(tmp_path: Path, version: str) -> tuple[str, ...]:
    config = tmp_path / "sensor.toml"
    config.write_text(f'[zeek]\nversion = "{version}"\n')
    return ("--config", str(config))


@pytest.mark.skipif(not have_tools(), reason="bash and sed run the reference tests' commands")
@pytest.mark.parametrize("package,test", [_case(*case) for case in sorted(CASES)])
def test_icsnpp_btest(tmp_path, package, test):
    script, baselines, traces, canonifier = _paths(package, test)
    extra = _config(tmp_path, CASES[package, test])
    problems = run_reference(script, baselines, traces, canonifier, tmp_path, extra)
    if (baselines / "conn.log").exists():
        problems += diff(tmp_path / "out" / "zeek" / "conn.log", baselines / "conn.log", canonifier)
    assert not problems, "\n".join(problems)
