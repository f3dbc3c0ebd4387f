"""Which build of otsensor's modules Python imports: the compiled one, or the Python source beside it.

The hot path is compiled with mypyc from these same ``.py`` files; each
compiled module (``name.cpython-*.so``) sits next to its source, and Python
normally prefers it.  This finder, installed by each package's ``__init__``
before anything else of otsensor is imported, makes every otsensor module
import from its source instead:

* when ``OTSENSOR_PURE=1`` (the pure-Python build: for comparing the two, or
  for a machine where the compiled build misbehaves);
* when any source is newer than its compiled file (an edited checkout whose
  extension was not rebuilt; ``pip install -e .`` rebuilds it), with one
  warning.  All or nothing: compiled modules call each other's classes
  directly, so one fresh source beside stale compiled neighbours would not
  be what runs.

This module is import plumbing, not a dissector, and is never compiled.
"""
from __future__ import annotations

import glob
import importlib.machinery
import importlib.util
import os
import sys
import warnings
from importlib.abc import MetaPathFinder
from importlib.machinery import EXTENSION_SUFFIXES, ExtensionFileLoader, ModuleSpec, SourceFileLoader
from types import ModuleType
from typing import Sequence

PREFIX = "otsensor."
PACKAGES = ("sensor", "dissectors", "baselines")
BUILD: dict[str, str] = {}   # "build": "compiled" or "pure", decided once per process


def pure_requested() -> bool:
    return os.environ.get("OTSENSOR_PURE", "") not in ("", "0")


def stale_sources() -> list[str]:
    """Sources edited after their compiled module was built (empty for an installed wheel)."""
    here = os.path.dirname(os.path.abspath(__file__))
    roots = [os.path.join(os.path.dirname(here), name) for name in PACKAGES]
    stale = []
    for root in roots:
        for suffix in EXTENSION_SUFFIXES:
            for compiled in glob.glob(os.path.join(root, "**", "*" + suffix), recursive=True):
                source = compiled[:-len(suffix)] + ".py"
                if os.path.exists(source) and os.path.getmtime(source) > os.path.getmtime(compiled):
                    stale.append(source)
    return stale


class SourceFirst(MetaPathFinder):
    """Finds otsensor modules as their Python source, never as a compiled extension."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if not fullname.startswith(PREFIX) or path is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not isinstance(spec.loader, ExtensionFileLoader) or spec.origin is None:
            return None
        source = os.path.join(os.path.dirname(spec.origin), fullname.rsplit(".", 1)[1] + ".py")
        if not os.path.exists(source):
            return None   # the compiled support library itself: never imported by the sources
        return importlib.util.spec_from_file_location(fullname, source, loader=SourceFileLoader(fullname, source))


def install() -> None:
    """Decide once per process which build runs; put the finder first when it is the source."""
    if BUILD:
        return
    stale = [] if pure_requested() else stale_sources()
    if stale:
        warnings.warn(f"otsensor: {len(stale)} source file(s) changed since the compiled build (e.g. "
                      f"{os.path.basename(stale[0])}); running the Python sources (rebuild: pip install -e .)",
                      RuntimeWarning, stacklevel=3)
    pure = pure_requested() or bool(stale)
    if pure:
        sys.meta_path.insert(0, SourceFirst())
    BUILD["build"] = "pure" if pure else "compiled"


def compiled_modules() -> list[str]:
    """The otsensor modules running compiled in this process (for `otsensor --version` and the tests)."""
    return sorted(name for name, module in list(sys.modules.items())
                  if name.startswith(PREFIX) and isinstance(getattr(module, "__loader__", None), ExtensionFileLoader)
                  and not name.endswith("__mypyc"))
