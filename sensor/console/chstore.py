"""The console's :class:`Store` over the ClickHouse tables the sink writes: a fleet of sensors in one database.

Every answer comes from a query with bound parameters (chquery.py for the alert feed); what the pages derive
from whole tables (assets, graph edges, per-host alert counts, facets) is cached per table and rebuilt only
when the table changes, which one look at ``system.parts`` tells (at most once a second).  ``assets`` and
``graph_edges`` hold one row per asset or edge per run: the latest row of each sensor is its current state,
and with several sensors the most recent sensor's row describes an address, naming every sensor that saw it.

What ClickHouse does not hold (a live run's stats.json, a run's summary.json) comes from DIR when one is
given; without it the health page says so.  A server that goes away makes the API answer 503 (the driver
reconnects on the next query once it is back).
"""
from __future__ import annotations

import copy
import logging
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from datetime import datetime
from ipaddress import IPv4Address, IPv6Address
from typing import Any

import orjson

from otsensor.baselines.addresses import sort_key
from otsensor.baselines.zones import Zones
from otsensor.sensor.clickhouse import connection
from otsensor.sensor.clickhouse.ddl import quote
from otsensor.sensor.clickhouse.tables import ROW_ID_COLUMN, Table, all_tables
from otsensor.sensor.console import chquery
from otsensor.sensor.console.alert_index import FACETS, AlertEntry, AlertQuery, facet_view, technique_info
from otsensor.sensor.console.layout import Placement
from otsensor.sensor.console.store import (DirStore, StoreUnavailable, ViewCache, draw_map, host_roles,
                                           place_hosts)
from otsensor.sensor.console.written import EXTRACTORS, MAX_POINTS_PER_SERIES, add_points, series_view

POLL_INTERVAL_S = 1.0          # at most this often the tables' change signal is read
ZONE_TAGS_TTL_S = 60           # conn's zone tags are read again at least this often
CACHED_ANSWERS = 64            # feed pages, devices' values and alert details kept (per state of their tables)
MAX_WRITE_ROWS = 200_000       # newest write rows read per log for a device's chart
NOT_RECORD_LOGS = frozenset({"conn", "alerts", "assets", "graph_edges"})
# per log: the condition that selects its write rows (the extractors then decide, as they do for the files)
WRITES = {"modbus": "positionCaseInsensitive(ifNull(func, ''), 'WRITE') > 0",
          "s7comm": "function_name = 'Write Var'",
          "dnp3_control": "positionCaseInsensitive(ifNull(function_code, ''), 'OPERATE') > 0",
          "cip": "positionCaseInsensitive(ifNull(cip_service, ''), 'Write Tag') > 0"}
NO_DIR = "not available from ClickHouse: serve DIR --clickhouse URL shows a run's stats.json and summary.json"


def _plain(value: Any, kind: str) -> Any:
    """A value as the driver returns it, as the JSONL files hold it."""
    if isinstance(value, datetime):
        return round(value.timestamp(), 6)
    if isinstance(value, IPv6Address):
        return str(value.ipv4_mapped or value)
    if isinstance(value, IPv4Address):
        return str(value)
    if kind == "json" and isinstance(value, str):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    if kind == "bool" and isinstance(value, int):
        return bool(value)
    if isinstance(value, list):
        return [_plain(v, kind[7:-1] if kind.startswith("vector[") else kind) for v in value]
    return value


class Reader:
    """One connection, one query at a time (the driver's client is not thread-safe); any failure of the
    server or the network is :class:`StoreUnavailable`, and the next query connects again."""

    def __init__(self, cfg: Any, target: connection.Target) -> None:
        self.target = target
        self.client = connection.client(cfg, target)
        # its modules log each failed connection with a traceback; the console reports failures in one line
        logging.getLogger("clickhouse_driver").setLevel(logging.CRITICAL + 1)
        self.lock = threading.Lock()

    def rows(self, sql: str, params: dict[str, Any] | None = None) -> tuple[list[str], list[tuple]]:
        with self.lock:
            try:
                rows, types = self.client.execute(sql, params, with_column_types=True)
            except Exception as exc:  # noqa: BLE001 - the driver's errors (network, server) become one line
                self.client.disconnect()
                raise StoreUnavailable(f"ClickHouse {self.target.display}: {_one_line(exc)}") from None
        return [name for name, _ in types], rows

    def dicts(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        names, rows = self.rows(sql, params)
        return [dict(zip(names, row)) for row in rows]

    def close(self) -> None:
        with self.lock:
            self.client.disconnect()


def open_reader(cfg: Any) -> tuple[Reader, dict[str, str]]:
    """Connect and check the database holds the sink's tables: (the reader, table -> engine).
    ClickHouseError (one line) when it cannot be used."""
    target = connection.resolve(cfg)
    connection.check_driver()
    reader = Reader(cfg, target)
    try:
        names, rows = reader.rows("SELECT name, engine FROM system.tables WHERE database = %(db)s",
                                  {"db": target.database})
    except StoreUnavailable as exc:
        reader.close()
        raise connection.ClickHouseError(str(exc).removeprefix("ClickHouse ")) from None
    engines = {name: engine for name, engine in rows}
    missing = sorted({"alerts", "assets", "graph_edges"} - set(engines))
    if missing:
        reader.close()
        raise connection.ClickHouseError(f"{target.display}: no table {', '.join(missing)} (nothing written yet? "
                                         "otsensor clickhouse init creates them)")
    return reader, engines


class ClickHouseStore:
    """A :class:`Store` over the sink's tables; ``sensor`` limits every answer to one sensor's rows."""

    def __init__(self, reader: Reader, engines: dict[str, str], sensor: str | None = None,
                 directory: str | None = None, zones: Zones | None = None) -> None:
        self.reader = reader
        self.database = reader.target.database
        self.engines = engines
        self.modern = not any(e.startswith("Replacing") for e in engines.values())
        self.sensor = sensor or None
        self.zones = zones if zones is not None and zones.configured else None
        self.files = DirStore(directory, zones) if directory else None
        self.tables = all_tables()
        self.views = ViewCache()
        self.lock = threading.Lock()
        self.last_poll = 0.0
        self.signals: dict[str, tuple] = {}
        self.recent: OrderedDict[tuple, Any] = OrderedDict()

    @property
    def source(self) -> str:
        return self.reader.target.display + (f" (sensor {self.sensor})" if self.sensor else "")

    # -- reading tables ----------------------------------------------------------------------------------

    def _name(self, table: str) -> str:
        return f"{quote(self.database)}.{quote(table)}"

    def _where(self, *terms: str) -> str:
        terms = (*(["sensor_id = %(sensor)s"] if self.sensor else []), *terms)
        return f" WHERE {' AND '.join(terms)}" if terms else ""

    def _select(self, table: str, where: tuple[str, ...] = (), tail: str = "", params: dict | None = None,
                final: bool = False) -> list[dict[str, Any]]:
        """Rows of a table with the log's own columns (and sensor_id), as the JSONL files hold them."""
        spec: Table = self.tables[table]
        kinds = {c.name: c.kind for c in spec.all_columns}
        names = ", ".join(quote(c.name) for c in (spec.all_columns[0], *spec.columns))
        final_clause = " FINAL" if final and self.engines.get(table, "").startswith("Replacing") else ""
        sql = f"SELECT {names} FROM {self._name(table)}{final_clause}{self._where(*where)} {tail}"
        rows = self.reader.dicts(sql, {"sensor": self.sensor, **(params or {})})
        return [{k: _plain(v, kinds.get(k, "")) for k, v in row.items()} for row in rows]

    def _signal(self, table: str) -> tuple:
        """Changes whenever the table does (its parts' count, rows and newest modification)."""
        with self.lock:
            now = time.monotonic()
            if now - self.last_poll >= POLL_INTERVAL_S or not self.signals:
                _, rows = self.reader.rows(
                    "SELECT table, count(), sum(rows), max(modification_time) FROM system.parts "
                    "WHERE database = %(db)s AND active GROUP BY table", {"db": self.database})
                self.signals = {row[0]: tuple(row[1:]) for row in rows}
                self.last_poll = now
            return self.signals.get(table, ())

    # -- the Store interface -------------------------------------------------------------------------------

    def version(self) -> tuple:
        return (*(self._signal(t) for t in ("graph_edges", "assets", "alerts")), self._zone_tags_age())

    def _zone_tags_age(self) -> tuple:
        """When conn's zone tags are read again: on a change of the assets, or a minute later (conn grows all the
        time on a live fleet, and reading its tags costs a scan of it; a host's zone seldom changes)."""
        return (self._signal("assets"), int(time.monotonic() // ZONE_TAGS_TTL_S))

    def cached(self, name: str, key: Any, build: Callable[[], Any]) -> Any:
        return self.views.get(name, key, build)

    def assets(self) -> list[dict[str, Any]]:
        return self.cached("assets", self._signal("assets"), self._assets)

    def _assets(self) -> list[dict[str, Any]]:
        rows = self._select("assets", tail="ORDER BY ip, last_seen DESC LIMIT 1 BY sensor_id, ip")
        return [newest for _, newest in sorted(_newest_per(rows, ("ip",)).items(), key=lambda kv: sort_key(kv[0][0]))]

    def asset(self, ip: str) -> dict[str, Any] | None:
        return self.cached("assets_by_ip", self._signal("assets"), lambda: {a["ip"]: a for a in self.assets()}).get(ip)

    def graph(self) -> dict[str, Any]:
        return self.cached("graph", (self._signal("graph_edges"), self._signal("assets")), self._graph)

    def _graph(self) -> dict[str, Any]:
        """graph.json's form: nodes are the assets, edges client -> server per protocol."""
        rows = self._select("graph_edges", tail="ORDER BY client, server, protocol, last_seen DESC "
                                                "LIMIT 1 BY sensor_id, client, server, protocol")
        edges = []
        for (client, server, protocol), row in sorted(_newest_per(rows, ("client", "server", "protocol")).items()):
            attrs = {k: v for k, v in row.items() if k not in ("client", "server", "protocol")}
            edges.append({"source": client, "target": server, "key": protocol, "protocol": protocol, **attrs})
        nodes = [{"id": a["ip"], "role": a.get("role"), "identity": a.get("identity") or {},
                  "macs": sorted(m["mac"] for m in a.get("macs") or () if isinstance(m, dict))}
                 for a in sorted(self.assets(), key=lambda a: a["ip"])]
        known = {n["id"] for n in nodes}
        for edge in edges:      # an end the inventory had no room for is still a node, as in graph.json
            for end in (edge["source"], edge["target"]):
                if end not in known:
                    known.add(end)
                    nodes.append({"id": end})
        return {"nodes": nodes, "edges": edges}

    def placements(self) -> dict[str, Placement]:
        key = (self._signal("graph_edges"), self._signal("assets"), self._zone_tags_age())
        return self.cached("placements", key, self._placements)

    def _placements(self) -> dict[str, Placement]:
        roles = host_roles(self.graph(), self.assets())
        conn_zones = {} if self.zones is not None or "conn" not in self.engines else self._conn_zones()
        return place_hosts(roles, self.zones, conn_zones)

    def _conn_zones(self) -> dict[str, tuple[str, float | None]]:
        """Zone and level per host from the tags `analyze --zones` writes into conn."""
        sides = [f"SELECT `id.{side}_h` AS host, any({side}_zone) AS zone, any({side}_level) AS level "
                 f"FROM {self._name('conn')}{self._where(f'{side}_zone IS NOT NULL')} GROUP BY host"
                 for side in ("orig", "resp")]
        _, rows = self.reader.rows(" UNION ALL ".join(sides), {"sensor": self.sensor})
        out: dict[str, tuple[str, float | None]] = {}
        for host, zone, level in rows:
            out.setdefault(_plain(host, "addr"), (zone, float(level) if level is not None else None))
        return out

    def network_map(self) -> dict[str, Any]:
        return self.cached("map", self.version(), lambda: draw_map(self, self._alert_pairs()[1]))

    def _recent(self, key: tuple, build: Callable[[], Any]) -> Any:
        """The last few answers asked for (feed pages, devices' values, alert details), keyed with the state
        of the tables they come from."""
        with self.lock:
            found = self.recent.get(key)
            if found is not None:
                self.recent.move_to_end(key)
                return found
        found = build()
        with self.lock:
            self.recent[key] = found
            while len(self.recent) > CACHED_ANSWERS:
                self.recent.popitem(last=False)
        return found

    def alerts(self, query: AlertQuery) -> dict[str, Any]:
        found = self._recent(("feed", self._signal("alerts"), query), lambda: self._feed(query))
        return {**found, "alerts": [dict(a) for a in found["alerts"]]}   # the caller adds to each

    def _feed(self, query: AlertQuery) -> dict[str, Any]:
        page, total, params = chquery.feed_queries(self._name("alerts"), query, self.sensor, self.modern)
        pairs = [tuple(pair) for pair in self.reader.rows(page, params)[1]]
        matched = self.reader.rows(total, params)[1][0][0]
        latest = {}
        if pairs:
            for row in self.reader.dicts(chquery.rows_query(self._name("alerts")), {"pairs": tuple(pairs)}):
                row = {k: _plain(v, "") for k, v in row.items()}
                latest[(row["a_sensor"], row["a_id"])] = row
        alerts = [{**AlertEntry(chquery.summary_row(latest[p]), b"").summary(), "sensor_id": p[0]}
                  for p in pairs if p in latest]
        return {"total": matched, "all": self._all_alerts(), "offset": query.offset, "limit": query.limit,
                "alerts": alerts}

    def _all_alerts(self) -> int:
        def count() -> int:
            sql = f"SELECT count() FROM ({chquery.latest_alerts(self._name('alerts'), self.sensor)})"
            return int(self.reader.rows(sql, chquery.base_params(self.sensor))[1][0][0])
        return self.cached("all_alerts", self._signal("alerts"), count)

    def alert(self, alert_id: str) -> dict[str, Any] | None:
        found = self._recent(("alert", self._signal("alerts"), alert_id), lambda: self.raw_alerts([alert_id]))
        return copy.deepcopy(found[0]) if found else None

    def raw_alerts(self, ids: list[str]) -> list[dict[str, Any]]:
        """The alerts as alerts.jsonl holds them (their latest row; the most recent sensor's when several sensors
        raised the same id), with the technique names the feed shows, in the order asked."""
        rows = self._select("alerts", ("id IN %(ids)s",), "ORDER BY last_seen DESC LIMIT 1 BY id", {"ids": tuple(ids)})
        by_id = {}
        for row in rows:
            row["techniques"] = [technique_info(str(t.get("id"))) for t in row.get("techniques") or ()
                                 if isinstance(t, dict)]
            by_id[row["id"]] = row
        return [by_id[i] for i in ids if i in by_id]

    def alert_facets(self) -> dict[str, Any]:
        return self.cached("facets", self._signal("alerts"), self._facets)

    def _facets(self) -> dict[str, Any]:
        sql = chquery.combinations_query(self._name("alerts"), self.sensor)
        counts: dict[str, Counter] = {name: Counter() for name in FACETS}
        for severity, rule, protocol, techniques, n in self.reader.rows(sql, chquery.base_params(self.sensor))[1]:
            entry = AlertEntry({"severity": severity or "medium", "rule": rule or "", "protocol": protocol,
                                "techniques": [{"id": t} for t in techniques]}, b"")
            for name in FACETS:
                values = getattr(entry, name)
                counts[name].update({v: n for v in ((values,) if isinstance(values, str) else values)})
        return facet_view(counts)

    def host_alerts(self) -> dict[str, int]:
        return self._alert_pairs()[0]

    def _alert_pairs(self) -> tuple[dict[str, int], dict[tuple[str, str, str], int]]:
        """Alerts per host (either end) and per (client, server, protocol)."""
        def build() -> tuple[dict[str, int], dict[tuple[str, str, str], int]]:
            hosts: Counter = Counter()
            edges: dict[tuple[str, str, str], int] = {}
            sql = chquery.pairs_query(self._name("alerts"), self.sensor)
            for src, dst, protocol, n in self.reader.rows(sql, chquery.base_params(self.sensor))[1]:
                src, dst = _plain(src, "addr") or "", _plain(dst, "addr") or ""
                hosts.update({h: n for h in {src, dst} - {""}})
                if src and dst:
                    key = (src, dst, protocol or "")
                    edges[key] = edges.get(key, 0) + n
            return dict(hosts), edges
        return self.cached("alert_pairs", self._signal("alerts"), build)

    def written_values(self, ip: str) -> list[dict[str, Any]]:
        key = ("written", ip, *(self._signal(log) for log in EXTRACTORS))
        return self._recent(key, lambda: self._written_values(ip))

    def _written_values(self, ip: str) -> list[dict[str, Any]]:
        """The device's written values from the protocol tables (the newest write rows of each)."""
        series: dict[str, dict[str, dict[str, deque]]] = {log: {} for log in EXTRACTORS}
        for log in EXTRACTORS:
            if log not in self.engines:
                continue
            rows = self._select(log, ("`id.resp_h` = %(ip)s", WRITES[log]),
                                "ORDER BY ts DESC LIMIT %(limit)s", {"ip": ip, "limit": MAX_WRITE_ROWS}, final=True)
            add_points(series[log], log, reversed(rows))
        return series_view(series, ip)

    def summary(self) -> dict[str, Any]:
        """DIR's summary.json when DIR is given; else the records per log the tables hold."""
        if self.files is not None:
            return self.files.summary()
        logs = sorted(t for t in self.engines if t in self.tables and t not in NOT_RECORD_LOGS)
        key = tuple(self._signal(t) for t in logs)
        return self.cached("summary", key, lambda: {"records": self._counts(logs)})

    def _counts(self, logs: list[str]) -> dict[str, int]:
        if not logs:
            return {}
        sql = " UNION ALL ".join(f"SELECT '{log}' AS log, count() AS n FROM {self._name(log)}{self._where()}"
                                 for log in logs)    # the names are the sink's own tables, not user input
        return {log: int(n) for log, n in sorted(self.reader.rows(sql, {"sensor": self.sensor})[1]) if n}

    def stats(self) -> dict[str, Any] | None:
        return self.files.stats() if self.files is not None else None

    def problems(self) -> list[str]:
        return self.files.problems() if self.files is not None else []

    def notice(self) -> str | None:
        return None if self.files is not None else f"Sensor health (stats.json, summary.json): {NO_DIR}"


def _one_line(exc: BaseException) -> str:
    """The driver's message without the server's stack trace ("Code: 81. DB::Exception: Database x doesn't exist")."""
    text = " ".join(str(exc).split("Stack trace")[0].split())
    return text[:300] or type(exc).__name__


def _newest_per(rows: list[dict[str, Any]], key: tuple[str, ...]) -> dict[tuple, dict[str, Any]]:
    """Each key's most recent row (by last_seen), with ``sensors``: every sensor whose rows name it."""
    out: dict[tuple, dict[str, Any]] = {}
    sensors: dict[tuple, set[str]] = {}
    for row in rows:
        k = tuple(row[name] for name in key)
        sensor = row.pop("sensor_id")
        row.pop(ROW_ID_COLUMN, None)
        sensors.setdefault(k, set()).add(sensor)
        if k not in out or (row.get("last_seen") or 0) > (out[k].get("last_seen") or 0):
            out[k] = row
    for k, row in out.items():
        row["sensors"] = sorted(sensors[k])
    return out
