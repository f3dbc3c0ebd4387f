"""`baseline diff` and `baseline accept`: what changed between two baselines, and folding alerts in."""
from __future__ import annotations

import json
from typing import Any, Iterator

from otsensor.baselines import layer2, values
from otsensor.baselines.ranges import RangeSet

# Parts of the document that describe the learning run rather than the plant.
NOT_COMPARED = ("learned_from", "version")


def flatten(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Leaf facts as (path, JSON value), so two baselines compare fact by fact."""
    if isinstance(value, dict) and value:
        for key in sorted(value):
            yield from flatten(value[key], f"{path}/{key}" if path else str(key))
    elif isinstance(value, list) and value and all(isinstance(v, (str, int, float)) for v in value) \
            and not _is_pair(value):
        for item in sorted(value, key=str):
            yield f"{path}[]", json.dumps(item)
    else:
        yield path, json.dumps(value, sort_keys=True)


def _is_pair(value: list) -> bool:
    return len(value) == 2 and all(isinstance(v, (int, float)) for v in value)


def diff_baselines(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Lines '- path = value' (only in old), '+ path = value' (only in new), '~ path: a -> b' (changed)."""
    a = {k: v for k, v in old.items() if k not in NOT_COMPARED}
    b = {k: v for k, v in new.items() if k not in NOT_COMPARED}
    fa, fb = set(flatten(a)), set(flatten(b))
    only_a, only_b = fa - fb, fb - fa
    old_by_path: dict[str, list[str]] = {}
    for path, val in only_a:
        old_by_path.setdefault(path, []).append(val)
    new_by_path: dict[str, list[str]] = {}
    for path, val in only_b:
        new_by_path.setdefault(path, []).append(val)
    lines = []
    for path in sorted(set(old_by_path) | set(new_by_path)):
        olds, news = sorted(old_by_path.get(path, [])), sorted(new_by_path.get(path, []))
        if len(olds) == 1 and len(news) == 1 and not path.endswith("[]"):
            lines.append(f"~ {path}: {olds[0]} -> {news[0]}")
            continue
        lines.extend(f"- {path} = {v}" for v in olds)
        lines.extend(f"+ {path} = {v}" for v in news)
    return lines


class AcceptError(Exception):
    pass


def accept(baseline: dict[str, Any], alert: dict[str, Any]) -> str:
    """Fold an alert's behaviour into the baseline; returns what was done, in words."""
    fold = alert.get("baseline_fold")
    if not fold:
        raise AcceptError(f"alert {alert.get('id')} ({alert.get('rule')}) carries no baseline fact to fold in")
    folds = [fold, *fold.get("also", [])]
    for one in folds:
        handler = FOLDERS.get(one.get("kind"))
        if handler is None:
            raise AcceptError(f"alert {alert.get('id')}: unknown fold kind {one.get('kind')!r}")
        handler(baseline, one)
    return f"{alert.get('rule')} {alert.get('id')}: {fold['kind']} folded in" + \
        (f" ({len(folds)} firings)" if len(folds) > 1 else "")


def _fold_asset(b: dict, f: dict) -> None:
    b["assets"].setdefault(f["ip"], f.get("info", {}))


def _fold_edge(b: dict, f: dict) -> None:
    key = f"{f['client']} -> {f['server']} {f['protocol']}"
    e = b["edges"].setdefault(key, {"client": f["client"], "server": f["server"], "protocol": f["protocol"],
                                     "ports": [], "flows": 0, "functions": {}})
    if f.get("port") is not None and f["port"] not in e["ports"]:
        e["ports"] = sorted(e["ports"] + [f["port"]])
    for function in ([f["function"]] if f.get("function") else []) + list(f.get("functions", [])):
        e["functions"].setdefault(function, 1)


def _fold_writer(b: dict, f: dict) -> None:
    key = f"{f['server']} {f['protocol']}"
    writers = b["writers"].setdefault(key, [])
    if f["client"] not in writers:
        writers.append(f["client"])
        writers.sort()


def _fold_range(b: dict, f: dict) -> None:
    key = f"{f['server']} {f['protocol']} {f['space']}"
    spaces = b["address_ranges"].setdefault(key, {})
    rs = RangeSet(spaces.get(f["access"], []))
    rs.add(f["start"], f.get("count") or 1)
    spaces[f["access"]] = rs.to_list()


def _fold_cadence(b: dict, f: dict) -> None:
    if f.get("interval_s") is None:
        b["cadence"].pop(f["key"], None)
    else:
        b["cadence"][f["key"]] = {"interval_s": f["interval_s"], "jitter_s": f.get("jitter_s", 0), "samples": 0}


def _fold_rate(b: dict, f: dict) -> None:
    b[f["table"]][f["key"]] = f["value"]


def _fold_service_port(b: dict, f: dict) -> None:
    ports = b["service_ports"].setdefault(f["protocol"], [])
    if f["port"] not in ports:
        ports.append(f["port"])
        ports.sort()


def _fold_identity(b: dict, f: dict) -> None:
    b["assets"].setdefault(f["ip"], {}).setdefault("identity", {}).update(f["facts"])


def _fold_allow(b: dict, f: dict) -> None:
    entry = {k: f[k] for k in ("rule", "src", "dst") if f.get(k) is not None}
    if entry not in b["allow"]:
        b["allow"].append(entry)


def _fold_zone_edge(b: dict, f: dict) -> None:
    b.setdefault("zone_edges", {}).setdefault(f["key"], {"flows": 1, "service": f.get("service")})


def _fold_engineering_host(b: dict, f: dict) -> None:
    if f["ip"] not in b["engineering_hosts"]:
        b["engineering_hosts"] = sorted(b["engineering_hosts"] + [f["ip"]])


FOLDERS = {
    "asset": _fold_asset, "edge": _fold_edge, "writer": _fold_writer, "range": _fold_range,
    "value": values.fold, "cadence": _fold_cadence, "rate": _fold_rate, "service_port": _fold_service_port,
    "identity": _fold_identity, "zone_edge": _fold_zone_edge, "allow": _fold_allow,
    "engineering_host": _fold_engineering_host, **layer2.FOLDERS,
}
