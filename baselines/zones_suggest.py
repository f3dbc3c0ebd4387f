"""Draft a zones file from observed traffic, for an engineer to review.

Hosts are grouped by subnet (/24 for IPv4, /64 for IPv6), in private,
loopback and link-local space and in the plant's own public space (a public
/16 where industrial hosts talk to each other, baselines/internet.py): a plant
numbered from public space gets its zones, while Internet hosts are left to
the default `internet` zone.  A subnet with hosts serving industrial
protocols becomes a level-1 control zone; one whose hosts only poll or
program them becomes a level-2 supervisory zone; the rest are enterprise
(level 4), noted when they talk to the Internet.  Conduits are proposed for
the industrial-protocol edges seen between zones: within OT they are written
enabled, from IT they are written commented out, because such a flow may be
exactly what the sensor should flag.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any

from otsensor.baselines.addresses import is_public, network_sort_key, parse, sort_key, subnet_of
from otsensor.baselines.graph import CommGraph
from otsensor.baselines.internet import PlantSpace
from otsensor.baselines.inventory import OT_PROTOCOLS, Inventory

ROLE_LEVEL = {"plc_rtu": 1, "gateway": 1, "hmi_scada": 2, "engineering_workstation": 2}


def drafted_subnet(ip: str, space: PlantSpace) -> str | None:
    """The subnet a host is drafted in, or None when it is left to the default zones (the Internet)."""
    addr = parse(ip)
    if addr is None or not (addr.is_private or addr.is_loopback or addr.is_link_local or space.is_plant(ip)):
        return None
    return subnet_of(ip)


def suggest(inventory: Inventory, graph: CommGraph) -> dict[str, Any]:
    """Zones and conduits as plain data: {"zones": [...], "conduits": [...]} with evidence comments."""
    space = PlantSpace.from_edges(graph.edges)
    internet_talkers = {a if space.is_internet(b) else b for (a, b, _) in graph.edges
                        if space.is_internet(a) != space.is_internet(b)}
    members: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for ip, asset in inventory.assets.items():
        net = drafted_subnet(ip, space)
        if net is not None:
            members[net].append((ip, asset.role()[0]))
    zones = [_zone(net, sorted(members[net], key=lambda h: sort_key(h[0])), internet_talkers)
             for net in sorted(members, key=network_sort_key)]
    zone_of_net = {z["cidrs"][0]: z["name"] for z in zones}
    kinds = {z["name"]: z["kind"] for z in zones}
    conduits: dict[tuple[str, str, str], dict[str, Any]] = {}
    for (client, server, protocol) in sorted(graph.edges):
        a = zone_of_net.get(drafted_subnet(client, space) or "")
        b = zone_of_net.get(drafted_subnet(server, space) or "")
        if protocol not in OT_PROTOCOLS or a is None or b is None or a == b:
            continue
        c = conduits.setdefault((a, b, protocol), {"from": a, "to": b, "protocols": [protocol], "hosts": set(),
                                                   "enabled": kinds[a] == "ot"})
        c["hosts"].add(client)
    out_conduits = [dict(c, hosts=sorted(c["hosts"])) for c in conduits.values()]
    return {"zones": zones, "conduits": out_conduits}


def _zone(net: str, hosts: list[tuple[str, str]], internet_talkers: set[str]) -> dict[str, Any]:
    levels = [ROLE_LEVEL[r] for _, r in hosts if r in ROLE_LEVEL]
    if levels:
        level, kind = min(levels), "ot"
        prefix = "control" if level == 1 else "supervisory"
    else:
        level, kind, prefix = 4, "it", "enterprise"
    name = f"{prefix}-{net.split('/')[0].replace('.', '-').replace(':', '-').strip('-')}"
    evidence = [f"{ip} {role}" + (" (talks to the Internet)" if ip in internet_talkers else "") for ip, role in hosts]
    if is_public(net.split("/")[0]):
        evidence.insert(0, "public address space: industrial hosts in this /16 (IPv6 /48) talk to each other")
    return {"name": name, "cidrs": [net], "level": level, "kind": kind, "evidence": evidence}


def to_toml(draft: dict[str, Any], sources: list[str]) -> str:
    lines = ["# Zones and conduits drafted by `otsensor zones suggest` from:",
             *[f"#   {s}" for s in sources],
             "# Review every zone's level and kind, and every conduit, before using this file.",
             "# Levels are Purdue levels (0-5, 3.5 for a DMZ); kinds: ot, dmz, it, external.", ""]
    for z in draft["zones"]:
        lines += ["[[zones]]", f"name = {_q(z['name'])}", f"cidrs = [{', '.join(_q(c) for c in z['cidrs'])}]",
                  f"level = {z['level']:g}", f"kind = {_q(z['kind'])}"]
        lines += [f"# {e}" for e in z["evidence"][:50]]
        lines.append("")
    for c in draft["conduits"]:
        mark = "" if c["enabled"] else "# "
        if not c["enabled"]:
            lines.append("# Observed from an IT zone into OT: enable only if this is a sanctioned path.")
        lines += [f"{mark}[[conduits]]", f"{mark}from = {_q(c['from'])}", f"{mark}to = {_q(c['to'])}",
                  f"{mark}protocols = [{', '.join(_q(p) for p in c['protocols'])}]",
                  f"{mark}hosts = [{', '.join(_q(h) for h in c['hosts'])}]", ""]
    return "\n".join(lines)


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
