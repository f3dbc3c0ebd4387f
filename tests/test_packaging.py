"""What a user installs: the declared dependencies are what the code imports, and a built wheel works on its own.

The wheel installs the three folders under one ``otsensor`` namespace (``otsensor.sensor``, ...), so it cannot
overwrite another project's ``sensor`` package; the test installs it into a fresh virtualenv and runs it from a
directory far from this checkout, so nothing of the checkout can leak in.
"""
from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("sensor", "dissectors", "baselines")
# distribution name -> the module it is imported as, where the two differ
IMPORT_NAMES = {"python-snap7": "snap7", "dnp3py": "dnp3", "clickhouse-driver": "clickhouse_driver",
                "prometheus-client": "prometheus_client"}


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def module_of(requirement: str) -> str:
    name = re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].strip()
    return IMPORT_NAMES.get(name, name.replace("-", "_"))


def third_party_imports() -> dict[str, set[str]]:
    """Top-level third-party modules each package file imports: {module: {'top' or 'lazy', ...}}."""
    found: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            top_level = {id(node) for node in tree.body}
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    root = name.split(".")[0]
                    if root in sys.stdlib_module_names or root in ("otsensor", "__future__"):
                        continue
                    found.setdefault(root, set()).add("top" if id(node) in top_level else "lazy")
    return found


def test_runtime_dependencies_are_what_the_code_imports():
    runtime = {module_of(r) for r in project()["dependencies"]}
    extras = {module_of(r) for reqs in project()["optional-dependencies"].values() for r in reqs}
    imported = third_party_imports()
    top_level = {m for m, where in imported.items() if "top" in where}
    assert top_level <= runtime, f"imported at module level but not a runtime dependency: {top_level - runtime}"
    undeclared = set(imported) - runtime - extras
    assert not undeclared, f"imported but declared nowhere: {undeclared}"
    unused = runtime - set(imported)
    assert not unused, f"runtime dependencies nothing imports (move them to an extra): {unused}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Built once, and as the pure-Python build: what is checked here (the namespace, the dependencies, a
    run from another directory) is the same for both, and compiling takes minutes; the compiled build is
    what .ci/run installs and tests/test_builds.py checks."""
    return build_wheel(tmp_path_factory.mktemp("wheel"))


def test_wheel_holds_only_the_otsensor_namespace(wheel):
    with zipfile.ZipFile(wheel) as zf:
        tops = {name.split("/")[0] for name in zf.namelist()}
    assert tops == {"otsensor", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info"}, tops
    assert not any(n == "otsensor/__init__.py" for n in zipfile.ZipFile(wheel).namelist()), \
        "otsensor must stay a namespace package"


def test_installed_wheel_runs_from_another_directory(tmp_path, wheel):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], capture_output=True, text=True)
    if pip.returncode and "Could not find a version" in pip.stderr + pip.stdout:
        pytest.skip("no package index reachable for the runtime dependencies")
    assert pip.returncode == 0, pip.stderr[-2000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "sensor").mkdir()   # a foreign "sensor" package in the working directory must not matter
    (elsewhere / "sensor" / "__init__.py").write_text("raise ImportError('the wrong sensor package')\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    # an engineering session: its alerts are mapped with the ATT&CK tables, data files the wheel must carry
    capture = ROOT / "pcaps" / "s7_engineering.pcap"
    proc = subprocess.run([str(venv / "bin" / "otsensor"), "analyze", str(capture), "-o", "out", "-q"],
                          cwd=elsewhere, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((elsewhere / "out" / "summary.json").read_text())
    assert summary["records"].get("s7comm", 0) > 0
    alerts = [json.loads(line) for line in (elsewhere / "out" / "alerts.jsonl").read_text().splitlines()]
    assert alerts and all(alert["techniques"] and alert["techniques"][0]["name"] for alert in alerts)
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import otsensor.sensor; print(otsensor.sensor.__file__)"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, check=True).stdout
    assert str(venv) in where and str(ROOT) not in where


def build_wheel(tmp_path: Path) -> Path:
    out = tmp_path / "dist"
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                           "-w", str(out), str(ROOT)], capture_output=True, text=True,
                          env={**os.environ, "OTSENSOR_PURE": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    wheels = list(out.glob("otsensor-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]
