"""The compiled build (mypyc, setup.py) and the pure-Python build are one implementation with one output.

Both builds analyse every committed capture and every corpus capture, each in its own process
(``OTSENSOR_PURE=1`` selects the sources, dissectors/_loader.py), and every file they write must
be byte-identical (summary.json less its wall-clock ``elapsed_s``).  CI installs the compiled
build and sets ``OTSENSOR_EXPECT_BUILD=compiled``, so a build that silently fell back to pure
Python fails here instead of passing unnoticed.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.corpus import corpus_dir, manifest

ROOT = Path(__file__).resolve().parents[1]
DRIVER = """
import io, json, sys
from otsensor.sensor.analyze import analyze
from otsensor.dissectors import _loader
out = sys.argv[1]
paths = json.load(open(sys.argv[2]))
for i, path in enumerate(paths):
    analyze([path], f"{out}/{i}", quiet=True, progress=False, out=io.StringIO(), err=io.StringIO())
json.dump({"build": _loader.BUILD["build"], "compiled": _loader.compiled_modules()}, open(f"{out}/build.json", "w"))
"""


def captures() -> list[str]:
    paths = [str(p) for p in sorted((ROOT / "pcaps").rglob("*.pcap"))]
    root = corpus_dir()
    paths += [str(root / row["file"]) for row in manifest() if (root / row["file"]).is_file()]
    return paths


def compiled_available() -> bool:
    return any(ROOT.glob("sensor/_native__mypyc*")) or _installed_compiled()


def _installed_compiled() -> bool:
    import otsensor.sensor as pkg
    return any(Path(pkg.__file__).parent.glob("_native__mypyc*"))


def start_build(tmp: Path, pure: bool, paths_file: Path) -> subprocess.Popen:
    env = dict(os.environ, OTSENSOR_PURE="1" if pure else "0")
    return subprocess.Popen([sys.executable, "-c", DRIVER, str(tmp), str(paths_file)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def finish_build(proc: subprocess.Popen, tmp: Path) -> dict:
    _, err = proc.communicate()
    assert proc.returncode == 0, err[-3000:]
    return json.loads((tmp / "build.json").read_text())


def test_the_expected_build_is_running():
    expected = os.environ.get("OTSENSOR_EXPECT_BUILD")
    if not expected:
        pytest.skip("OTSENSOR_EXPECT_BUILD not set (CI sets it)")
    import otsensor.sensor.pipeline  # noqa: F401 - imports the hot path
    from otsensor.dissectors import _loader
    assert _loader.BUILD["build"] == expected
    if expected == "compiled":
        assert "otsensor.sensor.decode" in _loader.compiled_modules()


def test_compiled_and_pure_builds_write_identical_files(tmp_path):
    if not compiled_available():
        pytest.skip("no compiled build installed (pure-Python install)")
    if os.environ.get("OTSENSOR_PURE", "") not in ("", "0"):
        pytest.skip("this run is the pure-Python pass; the comparison runs in the compiled pass")
    paths_file = tmp_path / "paths.json"
    paths = captures()
    paths_file.write_text(json.dumps(paths))
    runs = [start_build(tmp_path / "compiled", False, paths_file), start_build(tmp_path / "pure", True, paths_file)]
    compiled = finish_build(runs[0], tmp_path / "compiled")
    pure = finish_build(runs[1], tmp_path / "pure")
    assert compiled["build"] == "compiled" and compiled["compiled"], compiled
    assert pure["build"] == "pure" and not pure["compiled"], pure
    differ = []
    for i, path in enumerate(paths):
        a, b = tmp_path / "compiled" / str(i), tmp_path / "pure" / str(i)
        names = sorted(p.name for p in a.iterdir()) if a.is_dir() else []
        assert names == (sorted(p.name for p in b.iterdir()) if b.is_dir() else []), path
        for name in names:
            if (a / name).is_dir():
                continue
            left, right = (a / name).read_bytes(), (b / name).read_bytes()
            if name == "summary.json":
                left, right = (json.dumps({k: v for k, v in json.loads(x).items() if k != "elapsed_s"})
                               for x in (left, right))
            if left != right:
                differ.append(f"{Path(path).name}: {name}")
    assert not differ, differ[:20]


def test_compiled_and_pure_builds_learn_identical_baselines(tmp_path):
    """The learning analyzers are compiled too (values, rates, recon): a baseline learned from every committed
    capture is the same file from both builds (a value range once came out as 100.0 compiled and 100 pure)."""
    if not compiled_available():
        pytest.skip("no compiled build installed (pure-Python install)")
    if os.environ.get("OTSENSOR_PURE", "") not in ("", "0"):
        pytest.skip("this run is the pure-Python pass; the comparison runs in the compiled pass")
    paths = [str(p) for p in sorted((ROOT / "pcaps").rglob("*.pcap"))]
    learned = {}
    for build, pure in (("compiled", "0"), ("pure", "1")):
        out = tmp_path / f"{build}.json"
        proc = subprocess.run([sys.executable, "-m", "otsensor.sensor.cli", "baseline", "learn", *paths,
                               "--zones", str(ROOT / "pcaps" / "scenarios" / "zones.toml"), "-o", str(out)],
                              env=dict(os.environ, OTSENSOR_PURE=pure), capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-3000:]
        learned[build] = out.read_bytes()
    assert learned["compiled"] == learned["pure"]
