"""Running the real `otsensor` command in its own process, from the repository (as a user would)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PCAPS = REPO / "pcaps"


def otsensor(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "otsensor.sensor.cli", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout, check=False)


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return proc.stderr.splitlines()
