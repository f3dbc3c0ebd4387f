"""Packaging that pyproject.toml cannot state: the otsensor namespace and the compiled hot path.

The three top-level folders install as ``otsensor.sensor``, ``otsensor.dissectors`` and
``otsensor.baselines`` (``otsensor`` itself is a namespace package with no code), so the
distribution never collides with another project's top-level ``sensor`` or ``baselines``.

The modules in ``COMPILED`` are also compiled to C with mypyc, from the same ``.py`` files (no
second implementation). The ``.py`` files are installed beside the compiled modules, and
``OTSENSOR_PURE=1`` at run time imports them instead (dissectors/_loader.py). ``OTSENSOR_PURE=1``
at build time skips compilation; so does a machine without a C compiler or the Python headers, with a
warning, and the pure build then runs the same everywhere. Where the toolchain works, a failing
compilation fails the install: a half-compiled package is never shipped.
"""
from __future__ import annotations

import glob
import os
import sys

import sysconfig
import tempfile

from setuptools import find_packages, setup

FOLDERS = ("sensor", "dissectors", "baselines")

# The hot path, compiled: everything a packet and a record pass through, from the frame to the record's
# row and the analyzers that read every record. Each module must pass mypy (the build runs it).
HOT_PATH = ["sensor/capture/files.py", "sensor/decode.py", "sensor/pipeline.py", "sensor/flows/*.py",
            # a worker of --workers N: its pipeline and event channel, and the shard of each frame
            "sensor/parallel/worker.py", "sensor/parallel/shard.py",
            # the aggregator's replay of the workers' events, and what the events carry
            "sensor/parallel/replay.py", "sensor/parallel/events.py",
            # every row's line (the workers' encode_line, the aggregator's and one process's JSONL files)
            "sensor/sinks/jsonl.py",
            # with a second line sink (ClickHouse): the one encoding shared, and each row into its batch
            "sensor/sinks/shared.py", "sensor/clickhouse/batches.py",
            "dissectors/*.py", "dissectors/*/*.py", "baselines/graph.py", "baselines/inventory.py",
            "baselines/roles.py", "baselines/ranges.py", "baselines/addresses.py",
            # the detector and the per-record rules it runs
            "baselines/detect.py", "baselines/alert_book.py", "baselines/values.py", "baselines/rates.py",
            "baselines/recon.py", "baselines/protocol_recon.py", "baselines/scans.py", "baselines/zone_edges.py",
            "baselines/internet.py"]
# Never compiled: package plumbing (__init__, the build loader) and the Zeek scripts and their tables
# (zeek*.py: only with --zeek-logs, and written in the dynamic style of Zeek's own scripts).
NOT_COMPILED = {"__init__.py", "_loader.py"}
COMPILED = sorted(path for pattern in HOT_PATH for path in glob.glob(pattern)
                  if os.path.basename(path) not in NOT_COMPILED and not os.path.basename(path).startswith("zeek"))
# mypyc's support library for the group; placed inside the namespace, not at the top level.
NATIVE_GROUP = "otsensor.sensor._native"
STAGE = os.path.join("build", "mypyc-src")


def namespaced_packages() -> list[str]:
    return [f"otsensor.{folder}" for folder in FOLDERS] + [
        f"otsensor.{folder}.{sub}" for folder in FOLDERS for sub in find_packages(folder)]


def staged_tree() -> str:
    """build/mypyc-src/otsensor/<folder> -> <folder>: the layout under which mypyc sees the module names."""
    root = os.path.join(STAGE, "otsensor")
    os.makedirs(root, exist_ok=True)
    for folder in FOLDERS:
        link = os.path.join(root, folder)
        if not os.path.islink(link):
            os.symlink(os.path.abspath(folder), link)
    return STAGE


def have_c_toolchain() -> bool:
    """Can this machine compile a C extension (a compiler and Python.h)?"""
    from setuptools._distutils.ccompiler import new_compiler
    from setuptools._distutils.sysconfig import customize_compiler

    with tempfile.TemporaryDirectory() as tmp:
        probe = os.path.join(tmp, "probe.c")
        with open(probe, "w") as fh:
            fh.write("#include <Python.h>\nint otsensor_probe(void) { return 0; }\n")
        compiler = new_compiler()
        customize_compiler(compiler)
        try:
            compiler.compile([probe], output_dir=tmp, include_dirs=[sysconfig.get_paths()["include"]])
        except Exception:  # noqa: BLE001 - any failure means: no usable toolchain
            return False
    return True


def remove_stale_extensions(keep: list[str]) -> None:
    """Delete compiled modules an earlier in-place build left beside sources that are no longer compiled
    (``keep``: the sources compiled now). Such a file would still be imported, and would look for its code
    in a support library rebuilt without it."""
    from importlib.machinery import EXTENSION_SUFFIXES

    kept = {os.path.splitext(path)[0] for path in keep}
    for folder in FOLDERS:
        built = {path for suffix in EXTENSION_SUFFIXES
                 for path in glob.glob(os.path.join(folder, "**", "*" + suffix), recursive=True)}
        for path in built:
            directory, name = os.path.split(path)
            module = os.path.join(directory, name.split(".")[0])   # app.cpython-311-x86_64-linux-gnu.so -> app
            if module not in kept and "__mypyc" not in name:
                os.remove(path)


def compiled_extensions() -> list:
    if os.environ.get("OTSENSOR_PURE", "") not in ("", "0"):
        return []   # (compiled modules already in the tree stay: OTSENSOR_PURE=1 at run time skips them)
    try:
        from mypyc.build import mypycify
    except ImportError:
        sys.stderr.write("otsensor: mypy is not available; installing the pure-Python build\n")
        return []
    if not have_c_toolchain():
        sys.stderr.write("otsensor: no C compiler or Python headers; installing the pure-Python build\n")
        return []
    remove_stale_extensions(COMPILED)
    stage = staged_tree()
    os.environ["MYPYPATH"] = stage
    paths = [os.path.join(stage, "otsensor", p) for p in COMPILED]
    return mypycify(["--config-file", "pyproject.toml", "--explicit-package-bases", "--follow-imports=silent", *paths],
                    opt_level="3", group_name=NATIVE_GROUP)


setup(
    packages=namespaced_packages(),
    package_dir={f"otsensor.{folder}": folder for folder in FOLDERS},
    ext_modules=compiled_extensions(),
)
