"""The baseline page: what was learned, two baselines side by side, and accepting alerts into a new file.

Comparison and acceptance go through the code of `otsensor baseline diff|accept` (baselines/diff.py):
the console shows the same differences the command prints and writes the same document it would.
"""
from __future__ import annotations

import os
import re
from typing import Any

from otsensor.baselines.diff import AcceptError, accept, diff_baselines
from otsensor.baselines.learn import BaselineError, load_baseline, save_baseline
from otsensor.sensor.console.files import signature
from otsensor.sensor.console.store import DOCUMENTS

NEW_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,120}\.json$")
DIFF_LINE = re.compile(r"^(?P<op>[-+]) (?P<path>.*?) = (?P<value>.*)$|^~ (?P<cpath>.*?): (?P<old>.*) -> (?P<new>.*)$")


class BaselineFiles:
    """The baselines the console may read: the one given to `serve`, its neighbours, and any in DIR.

    A file is listed only if it loads as an otsensor baseline, so no other document is ever read out.
    """

    def __init__(self, baseline: str | None, directory: str | None) -> None:
        self.current = os.path.abspath(baseline) if baseline else None
        self.folders = sorted(({os.path.abspath(directory)} if directory else set()) |
                              ({os.path.dirname(self.current)} if self.current else set()))
        self._checked: dict[str, tuple] = {}    # path -> (signature, is a baseline): each file parsed once

    def listing(self) -> list[str]:
        found = []
        for folder in self.folders:
            try:
                names = sorted(n for n in os.listdir(folder) if n.endswith(".json") and n not in DOCUMENTS)
            except OSError:
                continue
            found += [path for path in (os.path.join(folder, n) for n in names) if self._is_baseline(path)]
        return found

    def _is_baseline(self, path: str) -> bool:
        sig = signature(path)
        known = self._checked.get(path)
        if known is None or known[0] != sig:
            try:
                load_baseline(path)
                known = (sig, True)
            except BaselineError:
                known = (sig, False)
            self._checked[path] = known
        return known[1]

    def resolve(self, path: str | None) -> str:
        """A listed baseline path (the current one when none is named); anything else is refused."""
        wanted = os.path.abspath(path) if path else self.current
        if wanted is None:
            raise BaselineError("no baseline: start the console with --baseline BASELINE.json")
        if wanted not in self.listing():
            raise BaselineError(f"{path}: not one of the baselines this console can read")
        return wanted


def learned(path: str) -> dict[str, Any]:
    doc = load_baseline(path)
    counts = {k: len(v) for k, v in doc.items() if isinstance(v, (dict, list))}
    return {"path": path, "counts": counts, "baseline": doc}


def side_by_side(old_path: str, new_path: str) -> dict[str, Any]:
    """`baseline diff` lines as rows with an old and a new column."""
    lines = diff_baselines(load_baseline(old_path), load_baseline(new_path))
    rows = []
    for line in lines:
        m = DIFF_LINE.match(line)
        if m is None:
            continue
        if m.group("op") == "-":
            rows.append({"change": "removed", "path": m.group("path"), "old": m.group("value"), "new": None})
        elif m.group("op") == "+":
            rows.append({"change": "added", "path": m.group("path"), "old": None, "new": m.group("value")})
        else:
            rows.append({"change": "changed", "path": m.group("cpath"), "old": m.group("old"), "new": m.group("new")})
    return {"old": old_path, "new": new_path, "lines": lines, "rows": rows}


def accept_into_new(source: str, alerts: list[dict[str, Any]], new_name: str) -> dict[str, Any]:
    """Fold the alerts into a copy of ``source`` written as ``new_name`` beside it; never overwrites a file."""
    if not NEW_NAME.match(new_name or ""):
        raise AcceptError("the new baseline's name must be a plain file name ending in .json (letters, digits, . _ -)")
    target = os.path.join(os.path.dirname(source), new_name)
    if os.path.exists(target):
        raise AcceptError(f"{new_name} already exists: choose another name (the console never overwrites a baseline)")
    if not alerts:
        raise AcceptError("no alert selected")
    baseline = load_baseline(source)
    done = [accept(baseline, alert) for alert in alerts]
    save_baseline(baseline, target)
    return {"source": source, "written": target, "accepted": done}


def default_new_name(source: str | None) -> str:
    if not source:
        return "baseline-accepted.json"
    stem = os.path.basename(source)[:-5] if source.endswith(".json") else os.path.basename(source)
    folder = os.path.dirname(source)
    n = 1
    while os.path.exists(os.path.join(folder, f"{stem}-accepted-{n}.json")):
        n += 1
    return f"{stem}-accepted-{n}.json"
