"""The network map's layout, computed on the server: Purdue level -> horizontal band, zone -> column group.

Deterministic (the same directory always draws the same map) and linear in the size of the graph, so the
browser only draws: 2,000 nodes and 5,000 edges stay smooth on a canvas.  Bands run from level 5 at the top
to level 0 at the bottom, with the DMZ (3.5) between 4 and 3 and hosts with no known level last.  Inside a
band, each zone is a column group as wide as its hosts need; inside a zone, hosts sit in a grid ordered by
role and address.
"""
from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass
from typing import Any

from otsensor.baselines.zones import IT_SIDE, Zone, is_control_zone

MIN_WIDTH, MAX_WIDTH = 800.0, 2400.0   # world units (the browser fits them to the canvas): wider for more hosts
SPACING = 34.0                 # between hosts in a zone's grid
BAND_PAD = 40.0                # above and below each band's grid (room for its label)
ZONE_GAP = 30.0
GUTTER = 150.0                 # left of the zones: the band's level label
MIN_RADIUS, MAX_RADIUS = 4.0, 14.0
LEVEL_ORDER = (5.0, 4.0, 3.5, 3.0, 2.0, 1.0, 0.0, None)
LEVEL_NAMES = {5.0: "Level 5|enterprise, internet", 4.0: "Level 4|business network", 3.5: "Level 3.5|DMZ",
               3.0: "Level 3|site operations", 2.0: "Level 2|supervisory control",
               1.0: "Level 1|basic control", 0.0: "Level 0|process", None: "Level unknown|no zone, no role"}
ROLE_ORDER = ("plc_rtu", "hmi_scada", "engineering_workstation", "it_host", "unknown")
# Without a zones file, a host's level is estimated from its role (and shown as estimated).
ROLE_LEVEL = {"plc_rtu": 1.0, "hmi_scada": 2.0, "engineering_workstation": 2.0, "it_host": 4.0}


@dataclass(frozen=True)
class Placement:
    zone: str
    level: float | None
    kind: str
    source: str          # "zones" (a zones file), "conn" (conn.jsonl tags) or "role" (estimated)

    def as_zone(self) -> Zone:
        return Zone(self.zone, self.level, self.kind)


def kind_of_level(level: float | None) -> str:
    """The zone kind a Purdue level implies, for zones known only by name and level (conn.jsonl tags)."""
    if level is None:
        return "unknown"
    return "external" if level >= 5 else "it" if level >= 4 else "dmz" if level > 3 else "ot"


def estimate(role: str) -> Placement:
    level = ROLE_LEVEL.get(role)
    return Placement("(no zones)", level, kind_of_level(level), "role")


def crossing(src: Placement, dst: Placement) -> bool:
    """IT reaching into OT: a flow from an IT or external zone into a level 0-2 zone."""
    return src.kind in IT_SIDE and is_control_zone(dst.as_zone())


def ip_key(ip: str) -> tuple:
    try:
        addr = ipaddress.ip_address(ip)
        return (addr.version, int(addr))
    except ValueError:
        return (9, 0, ip)


def radius(traffic: int, top: int) -> float:
    if traffic <= 0 or top <= 0:
        return MIN_RADIUS
    return MIN_RADIUS + (MAX_RADIUS - MIN_RADIUS) * math.log1p(traffic) / math.log1p(top)


def layout(nodes: list[dict[str, Any]], edges: list[dict[str, Any]], placements: dict[str, Placement],
           host_alerts: dict[str, int], edge_alerts: dict[tuple[str, str, str], int]) -> dict[str, Any]:
    """Positions for every node and the drawing list of edges (endpoints as node indexes)."""
    traffic: dict[str, int] = {}
    for e in edges:
        for end in (e.get("source"), e.get("target")):
            traffic[end] = traffic.get(end, 0) + int(e.get("bytes") or 0)
    top = max(traffic.values(), default=0)
    width = GUTTER + min(MAX_WIDTH, max(MIN_WIDTH, SPACING * 4 * math.ceil(math.sqrt(len(nodes)))))
    bands: dict[float | None, dict[str, list[dict[str, Any]]]] = {}
    for n in nodes:
        p = placements[n["id"]]
        bands.setdefault(p.level, {}).setdefault(p.zone, []).append(n)
    out_nodes: list[dict[str, Any]] = []
    out_bands, out_zones = [], []
    y = 0.0
    for level in [lv for lv in LEVEL_ORDER if lv in bands]:
        height = _place_band(bands[level], y, width, out_nodes, out_zones, placements, level)
        level_name, purpose = LEVEL_NAMES[level].split("|")
        out_bands.append({"level": level, "label": level_name, "purpose": purpose, "y": y, "height": height})
        y += height
    index = {n["id"]: i for i, n in enumerate(out_nodes)}
    for n in out_nodes:
        n["r"] = round(radius(traffic.get(n["id"], 0), top), 1)
        n["bytes"] = traffic.get(n["id"], 0)
        n["alerts"] = host_alerts.get(n["id"], 0)
    return {"width": width, "height": y, "spacing": SPACING, "gutter": GUTTER, "bands": out_bands, "zones": out_zones, "nodes": out_nodes,
            "edges": [_edge(e, index, placements, edge_alerts) for e in edges
                      if e.get("source") in index and e.get("target") in index]}


def _place_band(zones: dict[str, list[dict[str, Any]]], top: float, band_width: float, out_nodes: list,
                out_zones: list, placements: dict[str, Placement], level: float | None) -> float:
    """Lay one band's zones side by side, each as wide as its share of hosts; returns the band's height."""
    names = sorted(zones, key=lambda z: (z == "(no zones)", z))
    total = sum(len(zones[z]) for z in names)
    usable = band_width - GUTTER - ZONE_GAP * len(names)
    x = GUTTER
    rows_needed = 1
    cells = []
    for name in names:
        hosts = sorted(zones[name], key=lambda n: (_role_rank(n.get("role")), ip_key(n["id"])))
        width = max(SPACING * 2, usable * len(hosts) / total)
        cols = max(1, int(width // SPACING))
        rows_needed = max(rows_needed, math.ceil(len(hosts) / cols))
        cells.append((name, hosts, x, width, cols))
        x += width + ZONE_GAP
    height = rows_needed * SPACING + 2 * BAND_PAD
    for name, hosts, left, width, cols in cells:
        kind = placements[hosts[0]["id"]].kind
        out_zones.append({"name": name, "level": level, "kind": kind, "x": left, "y": top + BAND_PAD / 2,
                          "width": width, "height": height - BAND_PAD, "hosts": len(hosts)})
        offset = (width - min(cols, len(hosts)) * SPACING) / 2 + SPACING / 2
        for i, n in enumerate(hosts):
            row, col = divmod(i, cols)
            p = placements[n["id"]]
            out_nodes.append({"id": n["id"], "x": round(left + offset + col * SPACING, 1),
                              "y": round(top + BAND_PAD + row * SPACING + SPACING / 2, 1),
                              "role": n.get("role") or "unknown", "zone": p.zone, "level": p.level,
                              "level_source": p.source, "label": _label(n)})
    return height


def _role_rank(role: str | None) -> int:
    return ROLE_ORDER.index(role) if role in ROLE_ORDER else len(ROLE_ORDER)


def _label(node: dict[str, Any]) -> str:
    identity = node.get("identity") or {}
    name = identity.get("product_name") or identity.get("model") or identity.get("module_name") or ""
    return f"{node['id']} {name}".strip()


def _edge(e: dict[str, Any], index: dict[str, int], placements: dict[str, Placement],
          edge_alerts: dict[tuple[str, str, str], int]) -> dict[str, Any]:
    src, dst, protocol = e["source"], e["target"], e.get("protocol") or e.get("key") or ""
    functions = e.get("functions") or {}
    top = sorted(functions.items(), key=lambda kv: (-kv[1], kv[0]))[:8]
    return {"s": index[src], "t": index[dst], "protocol": protocol, "flows": e.get("flows", 0),
            "bytes": e.get("bytes", 0), "functions": dict(top), "more_functions": max(0, len(functions) - 8),
            "operations": e.get("operations") or {},
            "crossing": crossing(placements[src], placements[dst]),
            "alerts": edge_alerts.get((src, dst, protocol), 0)}
