"""The house rules that code review would otherwise have to catch: imports point one way, dissectors stay sans-I/O."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# A dissector that touches the network, files, the clock, logging or process state is no longer sans-I/O.
SANS_IO_FORBIDDEN = {"socket", "scapy", "dpkt", "pyshark", "logging", "os", "sys", "time", "subprocess",
                     "threading", "asyncio", "random", "sensor", "baselines", "io", "pathlib", "shutil"}
LAYER_FORBIDDEN = {"dissectors": {"sensor", "baselines"}, "baselines": {"sensor"}}


def root_of(module: str) -> str:
    """The top name of an import, seeing through the otsensor namespace (otsensor.sensor.x -> sensor)."""
    parts = module.split(".")
    return parts[1] if parts[0] == "otsensor" and len(parts) > 1 else parts[0]


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(root_of(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            roots.add(root_of(node.module))
    return roots


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


# Import plumbing that chooses the compiled or the source build of every package: it reads the environment
# and the file system by design, and no dissector imports it.
NOT_DISSECTORS = {"dissectors/_loader.py"}


@pytest.mark.parametrize("path", [p for p in modules("dissectors") if str(p.relative_to(ROOT)) not in NOT_DISSECTORS],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_dissectors_are_sans_io(path):
    bad = imported_roots(path) & SANS_IO_FORBIDDEN
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


@pytest.mark.parametrize("package", sorted(LAYER_FORBIDDEN))
def test_imports_point_one_way(package):
    offenders = {str(p.relative_to(ROOT)): sorted(imported_roots(p) & LAYER_FORBIDDEN[package])
                 for p in modules(package)}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_every_protocol_is_registered():
    from otsensor.dissectors.registry import default_registry
    names = {r.name for r in default_registry().registrations}
    assert {"modbus", "s7comm", "dnp3", "enip"} <= names, names


def test_no_dissector_module_holds_mutable_global_state():
    """Module-level names bound to mutable containers that something mutates would be shared between flows."""
    for path in modules("dissectors"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        mutated_globals = set()
        top = {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets
               if isinstance(t, ast.Name)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Global):
                mutated_globals.update(node.names)
        assert not (mutated_globals & top), f"{path.relative_to(ROOT)} rebinds module globals {mutated_globals & top}"
