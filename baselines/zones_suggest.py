"""Draft a zones file from observed traffic, for an engineer to review.

Hosts are grouped by subnet (/24 for IPv4, /64 for IPv6).  A subnet with
hosts serving industrial protocols becomes a level-1 control zone; one whose
hosts only poll or program them becomes a level-2 supervisory zone; the rest
are enterprise (level 4), noted when they talk to the Internet.  Conduits are
proposed for the industrial-protocol edges seen between zones: within OT they
are written enabled, from IT they are written commented out, because such a
flow may be exactly what the sensor should flag.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any

from otsensor.baselines.addresses import is_public, network_sort_key, parse, sort_key, subnet_of
from otsensor.baselines.graph import CommGraph
from otsensor.baselines.inventory import OT_PROTOCOLS, Inventory

ROLE_LEVEL = {"plc_rtu": 1, "gateway": 1, "hmi_scada": 2, "engineering_workstation": 2}


def private_subnet_of(ip: str) -> str | None:
    """The subnet of a host in private, loopback or link-local space (public space is left to `internet`)."""
    addr = parse(ip)
    if addr is None or not (addr.is_private or addr.is_loopback or addr.is_link_local):
        return None
    return subnet_of(ip)


def suggest(inventory: Inventory, graph: CommGraph) -> dict[str, Any]:
    """Zones and conduits as plain data: {"zones": [...], "conduits": [...]} with evidence comments."""
    internet_talkers = {a if is_public(b) else b for (a, b, _) in graph.edges if is_public(a) != is_public(b)}
    members: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for ip, asset in inventory.assets.items():
        net = private_subnet_of(ip)
        if net is not None:
            members[net].append((ip, asset.role()[0]))
    zones = []
    zone_of_net: dict[str, str] = {}
    for net in sorted(members, key=network_sort_key):
        hosts = sorted(members[net], key=lambda h: sort_key(h[0]))
        levels = [ROLE_LEVEL[r] for _, r in hosts if r in ROLE_LEVEL]
        talkers = [ip for ip, _ in hosts if ip in internet_talkers]
        if levels:
            level, kind = min(levels), "ot"
            prefix = "control" if level == 1 else "supervisory"
        else:
            level, kind, prefix = 4, "it", "enterprise"
        name = f"{prefix}-{net.split('/')[0].replace('.', '-').replace(':', '-').strip('-')}"
        zone_of_net[net] = name
        evidence = [f"{ip} {role}" + (" (talks to the Internet)" if ip in talkers else "") for ip, role in hosts]
        zones.append({"name": name, "cidrs": [net], "level": level, "kind": kind, "evidence": evidence})
    conduits: dict[tuple[str, str, str], dict[str, Any]] = {}
    kinds = {z["name"]: z["kind"] for z in zones}
    for (client, server, protocol) in sorted(graph.edges):
        if protocol not in OT_PROTOCOLS:
            continue
        a, b = private_subnet_of(client), private_subnet_of(server)
        if a is None or b is None or zone_of_net[a] == zone_of_net[b]:
            continue
        key = (zone_of_net[a], zone_of_net[b], protocol)
        c = conduits.setdefault(key, {"from": key[0], "to": key[1], "protocols": [protocol], "hosts": set(),
                                      "enabled": kinds[key[0]] == "ot"})
        c["hosts"].add(client)
    out_conduits = [dict(c, hosts=sorted(c["hosts"])) for c in conduits.values()]
    return {"zones": zones, "conduits": out_conduits}


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
