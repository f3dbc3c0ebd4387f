"""Where the shared corpus of public ICS captures is, and what its MANIFEST says about each file.

The corpus is optional: ``$OTSENSOR_CORPUS``, else ``../shared/corpus`` beside the repository.
Every helper here returns nothing when it is absent, so tests that use it skip cleanly.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]


def corpus_dir() -> Path:
    override = os.environ.get("OTSENSOR_CORPUS")
    return Path(override) if override else REPO.parent / "shared" / "corpus"


def manifest() -> list[dict[str, str]]:
    """MANIFEST.tsv rows as dicts (empty when the corpus is absent)."""
    path = corpus_dir() / "MANIFEST.tsv"
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"))) for line in lines[1:] if line.strip()]


def manifest_files(wanted: Callable[[dict[str, str]], bool]) -> list[Path]:
    """Existing corpus files whose MANIFEST row satisfies ``wanted``, each once, in MANIFEST order."""
    root = corpus_dir()
    files: list[Path] = []
    for row in manifest():
        path = root / row["file"]
        if wanted(row) and path.exists() and path not in files:
            files.append(path)
    return files


def pdus(row: dict[str, str]) -> str:
    """The MANIFEST's tshark PDU counts column (e.g. 'modbus_adu=129;s7comm=30')."""
    return row.get("ot_pdus_by_tshark_4.0.17", "")
