"""Every file of the shared corpus through the whole sensor, in-process: nothing may escape.

The corpus (``../shared/corpus`` beside the repository, or ``$OTSENSOR_CORPUS``)
holds public captures of every protocol the sensor knows and many it does not,
listed in MANIFEST.tsv, plus a few files that are not captures (Zeek test
baselines).  For each file, ``sensor.analyze.analyze`` must return normally:

* a capture listed in the MANIFEST: no error, and ``dissector_errors`` 0 in
  summary.json (a dissector that raises is contained by the pipeline and counted
  there, so a non-zero count names a dissector bug);
* a file that is not a capture: exactly one clear error line naming the file
  (the CLI prints it as ``otsensor: error: ...``), no traceback, exit status 2.

Each file is its own test case, so a failure names the file.  The whole run
takes about 40 s on a 2-core machine; files slower than SLOW_S are printed.
"""
from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest

from tests.corpus import corpus_dir, manifest

CAPTURE_MAGICS = (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d",
                  b"\x0a\x0d\x0d\x0a", b"\x1f\x8b")
SLOW_S = 5.0


def corpus_files() -> list[str]:
    root = corpus_dir()
    if not root.is_dir():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.name != "MANIFEST.tsv")


FILES = corpus_files()
LISTED = {row["file"] for row in manifest()}


def run(path: Path, outdir: Path):
    from otsensor.sensor.analyze import analyze

    err = io.StringIO()
    started = time.monotonic()
    result = analyze([str(path)], str(outdir), quiet=True, out=io.StringIO(), err=err, progress=False)
    elapsed = time.monotonic() - started
    if elapsed > SLOW_S:
        print(f"\nslow: {path.name} took {elapsed:.1f}s ({path.stat().st_size} bytes)")
    return result, err.getvalue()


def test_corpus_present_and_listed() -> None:
    if not FILES:
        pytest.skip(f"no corpus at {corpus_dir()} (set OTSENSOR_CORPUS)")
    missing = sorted(LISTED - set(FILES))
    assert not missing, f"MANIFEST lists files that are absent: {missing[:20]}"


@pytest.mark.parametrize("name", FILES or ["<no corpus>"])
def test_corpus_file_runs_without_unexpected_exception(name: str, tmp_path: Path) -> None:
    if not FILES:
        pytest.skip(f"no corpus at {corpus_dir()} (set OTSENSOR_CORPUS)")
    path = corpus_dir() / name
    with path.open("rb") as fh:
        looks_like_capture = fh.read(4).startswith(CAPTURE_MAGICS)
    result, stderr = run(path, tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert "Traceback" not in stderr
    assert summary["dissector_errors"] == 0, dissector_errors(tmp_path)
    assert summary["analyzer_errors"] == 0, summary["error_samples"]
    if name in LISTED or looks_like_capture:
        assert result.errors == [], result.errors
        assert summary["packets"] > 0
    else:
        assert len(result.errors) == 1 and str(path) in result.errors[0], result.errors
        assert result.exit_code == 2
        assert stderr.startswith(f"otsensor: error: {path}"), stderr


def dissector_errors(outdir: Path) -> str:
    """The contained dissector exceptions, by protocol and message, for the assertion message."""
    lines = []
    anomalies = outdir / "anomalies.jsonl"
    if anomalies.is_file():
        for line in anomalies.read_text().splitlines():
            record = json.loads(line)
            if record["name"].endswith(".dissector_error"):
                lines.append(f"{record['protocol']} flow {record.get('uid')}: {record['reason']}")
    return "\n".join(lines[:20])
