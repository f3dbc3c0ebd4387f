"""A device page: identity, peers, functions used, address ranges read and written, written values, alerts."""
from __future__ import annotations

from typing import Any

from otsensor.sensor.console.alert_index import AlertQuery
from otsensor.sensor.console.inventory import row
from otsensor.sensor.console.store import Store

MAX_DEVICE_ALERTS = 200


def peer_edges(edges: list[dict[str, Any]], ip: str) -> list[dict[str, Any]]:
    """The device's edges, each from its own point of view: the peer, and whether the device is client or server."""
    out = []
    for e in edges:
        if ip not in (e["source"], e["target"]):
            continue
        as_client = e["source"] == ip
        out.append({"peer": e["target"] if as_client else e["source"], "as": "client" if as_client else "server",
                    "protocol": e.get("protocol") or e.get("key"), "flows": e.get("flows", 0),
                    "packets": e.get("packets", 0), "bytes": e.get("bytes", 0),
                    "first_seen": e.get("first_seen"), "last_seen": e.get("last_seen"),
                    "functions": e.get("functions") or {}, "operations": e.get("operations") or {},
                    "server_ports": e.get("server_ports") or [], "units": e.get("units") or [],
                    "error_responses": e.get("error_responses", 0),
                    "ranges_read": e.get("ranges_read") or {}, "ranges_written": e.get("ranges_written") or {}})
    return sorted(out, key=lambda p: (p["as"], p["protocol"] or "", p["peer"]))


def functions_used(peers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Function counts per protocol and side (issued as a client, served as a server)."""
    totals: dict[tuple[str, str, str], int] = {}
    for p in peers:
        for name, count in p["functions"].items():
            key = (p["as"], p["protocol"] or "", name)
            totals[key] = totals.get(key, 0) + int(count)
    return [{"as": a, "protocol": proto, "function": f, "count": n} for (a, proto, f), n in sorted(totals.items())]


def address_ranges(peers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ranges read and written on this device (as the server), by client and address space."""
    out = []
    for p in peers:
        if p["as"] != "server":
            continue
        for access, spaces in (("read", p["ranges_read"]), ("written", p["ranges_written"])):
            for space, ranges in sorted(spaces.items()):
                out.append({"client": p["peer"], "protocol": p["protocol"], "space": space, "access": access,
                            "ranges": ranges})
    return out


def device_view(store: Store, ip: str) -> dict[str, Any] | None:
    asset = store.asset(ip)
    graph = store.graph()
    node = next((n for n in graph["nodes"] if n["id"] == ip), None)
    if asset is None and node is None:
        return None
    if asset is None:
        asset = {"ip": ip, "role": node.get("role"), "identity": node.get("identity") or {},
                 "macs": [{"mac": m, "vendor": None} for m in node.get("macs") or ()]}
    alerts = store.alerts(AlertQuery(host=ip, limit=MAX_DEVICE_ALERTS))
    placement = store.placements().get(ip)
    peers = peer_edges(graph["edges"], ip)
    return {"asset": row(asset, placement, alerts["total"]),
            "identity_history": asset.get("identity_history") or [],
            "protocol_facts": asset.get("protocol_facts") or {},
            "peers": peers, "functions": functions_used(peers), "ranges": address_ranges(peers),
            "written": store.written_values(ip), "alerts": alerts}
