"""The console's one data interface, and its implementation over an output directory.

Every page and API answer is built from a :class:`Store`.  :class:`DirStore` reads what `otsensor analyze`
or a live `otsensor run` writes into DIR and follows it as it changes (files.py); ClickHouseStore
(chstore.py) answers the same methods from the tables the ClickHouse sink writes.
"""
from __future__ import annotations

import gc
import os
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from otsensor.baselines.zones import Zones
from otsensor.sensor.console.alert_index import AlertIndex, AlertQuery
from otsensor.sensor.console.files import JsonDocument, LogFollower, parse_lines
from otsensor.sensor.console.layout import Placement, estimate, ip_key, kind_of_level, layout
from otsensor.sensor.console.written import LOG_BUDGET, WrittenValues

POLL_INTERVAL_S = 0.5        # at most this often a request looks for new data (a few stat calls)
DOCUMENTS = ("assets.json", "graph.json", "summary.json", "stats.json")


class StoreUnavailable(Exception):
    """The store's backend cannot answer now (a database server away): the API answers 503 until it is back."""


class Store(Protocol):
    """What the console reads.  Each method returns plain JSON-ready data."""

    def version(self) -> tuple: ...
    def cached(self, name: str, key: Any, build: Callable[[], Any]) -> Any: ...
    def assets(self) -> list[dict[str, Any]]: ...
    def asset(self, ip: str) -> dict[str, Any] | None: ...
    def graph(self) -> dict[str, Any]: ...
    def placements(self) -> dict[str, Placement]: ...
    def network_map(self) -> dict[str, Any]: ...
    def alerts(self, query: AlertQuery) -> dict[str, Any]: ...
    def alert(self, alert_id: str) -> dict[str, Any] | None: ...
    def alert_facets(self) -> dict[str, Any]: ...
    def host_alerts(self) -> dict[str, int]: ...
    def raw_alerts(self, ids: list[str]) -> list[dict[str, Any]]: ...
    def written_values(self, ip: str) -> list[dict[str, Any]]: ...
    def summary(self) -> dict[str, Any]: ...
    def stats(self) -> dict[str, Any] | None: ...
    def problems(self) -> list[str]: ...
    def notice(self) -> str | None: ...


class ViewCache:
    """Views built once per key: ``get(name, key, build)`` calls ``build()`` only when ``key`` changed."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.views: dict[str, tuple[Any, Any]] = {}

    def get(self, name: str, key: Any, build: Callable[[], Any]) -> Any:
        with self.lock:
            cached = self.views.get(name)
            if cached is not None and cached[0] == key:
                return cached[1]
        value = build()
        with self.lock:
            self.views[name] = (key, value)
        return value


def host_roles(graph: dict[str, Any], assets: list[dict[str, Any]]) -> dict[str, str]:
    roles = {n["id"]: n.get("role") or "unknown" for n in graph["nodes"]}
    for a in assets:
        roles.setdefault(a["ip"], a.get("role") or "unknown")
    return roles


def place_hosts(roles: dict[str, str], zones: Zones | None,
                conn_zones: dict[str, tuple[str, float | None]]) -> dict[str, Placement]:
    """Zone, Purdue level and kind of every host: the zones file, else conn's zone tags, else the role."""
    out = {}
    for ip, role in roles.items():
        if zones is not None:
            z = zones.zone_of(ip)
            out[ip] = Placement(z.name, z.level, z.kind, "zones")
        elif ip in conn_zones:
            zone, level = conn_zones[ip]
            out[ip] = Placement(zone, level, kind_of_level(level), "conn")
        else:
            out[ip] = estimate(role)
    return out


def draw_map(store: Store, edge_alerts: dict[tuple[str, str, str], int]) -> dict[str, Any]:
    """The map's layout from a store's graph, assets, placements and alerts."""
    graph = store.graph()
    nodes = {n["id"]: n for n in graph["nodes"]}
    for a in store.assets():          # an asset the graph does not hold is still drawn
        nodes.setdefault(a["ip"], {"id": a["ip"], "role": a.get("role"), "identity": a.get("identity")})
    ordered = [nodes[ip] for ip in sorted(nodes, key=ip_key)]
    return layout(ordered, graph["edges"], store.placements(), store.host_alerts(), edge_alerts)


class DirStore:
    """A :class:`Store` over DIR.  Thread-safe: the server answers requests on several threads."""

    def __init__(self, directory: str, zones: Zones | None = None) -> None:
        self.directory = directory
        self.zones = zones if zones is not None and zones.configured else None
        self.docs = {name: JsonDocument(os.path.join(directory, name), None) for name in DOCUMENTS}
        self.alert_index = AlertIndex()
        self.alert_log = LogFollower(directory, "alerts")
        self.alert_generation = 0
        self.conn_log = LogFollower(directory, "conn", LOG_BUDGET)
        self.conn_zones: dict[str, tuple[str, float | None]] = {}
        self.conn_generation = 0
        self.values = WrittenValues(directory)
        self.lock = threading.RLock()
        self.last_poll = 0.0
        self.views = ViewCache()

    # -- following the directory ---------------------------------------------------------------------

    def refresh(self, force: bool = False) -> None:
        with self.lock:
            now = time.monotonic()
            if not force and now - self.last_poll < POLL_INTERVAL_S:
                return
            self.last_poll = now
            poll = self.alert_log.poll()
            if poll.reset:
                self.alert_index.clear()
            if poll.reset or poll.lines:
                self.alert_index.add_lines(poll.lines)
                self.alert_generation += 1
                if len(poll.lines) > 10_000:
                    # The index is long-lived: keep the cyclic collector from re-scanning its objects on every
                    # later allocation burst (it cost the first map or inventory request ~0.5 s at 100k alerts).
                    gc.freeze()
            if self.zones is None:
                self._follow_conn()

    def _follow_conn(self) -> None:
        """Zone names and levels per host, from the tags `analyze --zones` writes into conn.jsonl."""
        poll = self.conn_log.poll()
        if poll.reset:
            self.conn_zones = {}
        rows, _ = parse_lines(poll.lines, keep=lambda line: b'"orig_zone"' in line)
        for row in rows:
            for side in ("orig", "resp"):
                ip, zone = row.get(f"id.{side}_h"), row.get(f"{side}_zone")
                if isinstance(ip, str) and isinstance(zone, str) and ip not in self.conn_zones:
                    level = row.get(f"{side}_level")
                    self.conn_zones[ip] = (zone, float(level) if isinstance(level, (int, float)) else None)
        if poll.reset or rows:
            self.conn_generation += 1

    def _doc(self, name: str) -> Any:
        with self.lock:
            return self.docs[name].get()

    def _doc_with_key(self, name: str) -> tuple[Any, Any]:
        """The document and its file signature (a key for what is derived from it)."""
        with self.lock:
            doc = self.docs[name]
            return doc.get(), doc.sig

    # -- the Store interface ---------------------------------------------------------------------------

    def version(self) -> tuple:
        """Changes whenever anything the pages derive from changes (a key for the views' caches)."""
        self.refresh()
        with self.lock:
            self.docs["assets.json"].get()
            self.docs["graph.json"].get()
            return (self.docs["graph.json"].sig, self.docs["assets.json"].sig, self.alert_generation,
                    self.conn_generation)

    def cached(self, name: str, key: Any, build: Callable[[], Any]) -> Any:
        """``build()`` once per ``key``: documents are re-validated only when their files change."""
        return self.views.get(name, key, build)

    def assets(self) -> list[dict[str, Any]]:
        doc, key = self._doc_with_key("assets.json")

        def build() -> list[dict[str, Any]]:
            assets = doc.get("assets") if isinstance(doc, dict) else None
            return [a for a in assets or () if isinstance(a, dict) and isinstance(a.get("ip"), str)]
        return self.cached("assets", key, build)

    def asset(self, ip: str) -> dict[str, Any] | None:
        _, key = self._doc_with_key("assets.json")
        return self.cached("assets_by_ip", key, lambda: {a["ip"]: a for a in self.assets()}).get(ip)

    def graph(self) -> dict[str, Any]:
        doc, key = self._doc_with_key("graph.json")

        def build() -> dict[str, Any]:
            if not isinstance(doc, dict):
                return {"nodes": [], "edges": []}
            nodes = [n for n in doc.get("nodes") or () if isinstance(n, dict) and isinstance(n.get("id"), str)]
            edges = [e for e in doc.get("edges", doc.get("links")) or () if isinstance(e, dict)
                     and isinstance(e.get("source"), str) and isinstance(e.get("target"), str)]
            return {"nodes": nodes, "edges": edges}
        return self.cached("graph", key, build)

    def placements(self) -> dict[str, Placement]:
        """Zone, Purdue level and kind of every host: the zones file, else conn.jsonl's tags, else the role."""
        version = self.version()
        return self.cached("placements", (version[0], version[1], version[3]), self._placements)

    def _placements(self) -> dict[str, Placement]:
        roles = host_roles(self.graph(), self.assets())
        with self.lock:
            return place_hosts(roles, self.zones, self.conn_zones)

    def network_map(self) -> dict[str, Any]:
        return self.cached("map", self.version(), self._network_map)

    def _network_map(self) -> dict[str, Any]:
        with self.lock:
            edge_alerts = self.alert_index.for_edges()
        return draw_map(self, edge_alerts)

    def alerts(self, query: AlertQuery) -> dict[str, Any]:
        self.refresh()
        with self.lock:
            return self.alert_index.query(query)

    def alert(self, alert_id: str) -> dict[str, Any] | None:
        self.refresh()
        with self.lock:
            return self.alert_index.detail(alert_id)

    def alert_facets(self) -> dict[str, Any]:
        self.refresh()
        with self.lock:
            return self.alert_index.facets()

    def host_alerts(self) -> dict[str, int]:
        """Alerts per host (either end), counted once per change of the alerts."""
        self.refresh()
        return self.cached("host_alerts", self.alert_generation, self.alert_index.for_hosts)

    def raw_alerts(self, ids: list[str]) -> list[dict[str, Any]]:
        """The alerts as alerts.jsonl holds them (for `baseline accept`), in the order asked."""
        self.refresh(force=True)
        with self.lock:
            return [d for d in (self.alert_index.detail(i) for i in ids) if d is not None]

    def written_values(self, ip: str) -> list[dict[str, Any]]:
        return self.values.of(ip)     # its own lock: reading large logs must not hold up other pages

    def summary(self) -> dict[str, Any]:
        doc = self._doc("summary.json")
        return doc if isinstance(doc, dict) else {}

    def stats(self) -> dict[str, Any] | None:
        doc = self._doc("stats.json")
        return doc if isinstance(doc, dict) else None

    def problems(self) -> list[str]:
        """Files the console could not read as they are now (shown on the health page)."""
        with self.lock:
            out = [d.error for d in self.docs.values() if d.error]
            out += [f"{name}: not a complete compressed file yet" for name in self.alert_log.unreadable]
            if self.alert_index.bad_lines:
                out.append(f"alerts: {self.alert_index.bad_lines} line(s) that are not alerts were skipped")
        return out

    def notice(self) -> str | None:
        """What the health page cannot show from this store (nothing: DIR holds it all)."""
        return None

    def file_signature(self, name: str) -> tuple | None:
        doc = self.docs.get(name)
        return doc.sig if doc else None
