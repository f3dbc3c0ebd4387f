"""The alert feed as SQL over the ClickHouse ``alerts`` table: paging, sorting, filters and facets run on the server.

An alert is re-sent as it aggregates more firings (same ``id``, larger ``count`` and ``last_seen``), and a
retried batch may hold it twice on an old server: every query reads the latest row of each (sensor, id)
(:func:`latest_alerts`), which is what alerts.jsonl's last line for that id says.  Every value a user gives
is a bound parameter (the driver escapes it); only names from this module are written into the SQL.
"""
from __future__ import annotations

import ipaddress
from typing import Any

from otsensor.baselines.alerts import SEVERITY_RANK, attack_techniques
from otsensor.sensor.clickhouse.ddl import quote
from otsensor.sensor.console.alert_index import AlertQuery

# alias -> column: an alert's feed fields, taken from its latest row
LATEST = {"a_ts": "ts", "a_count": "count", "a_rule": "rule", "a_title": "title", "a_severity": "severity",
          "a_category": "category", "a_protocol": "protocol", "a_function": "function", "a_src": "id.orig_h",
          "a_dst": "id.resp_h", "a_message": "message", "a_techniques": "technique_ids"}
RANK = "transform(ifNull(a_severity, ''), %(severity_names)s, %(severity_ranks)s, 2)"   # unknown: medium, as the index
TEXT = ("concat(ifNull(a_title, ifNull(a_rule, '')), ' ', ifNull(a_message, ''), ' ', ifNull(a_rule, ''), ' ', "
        "ifNull(a_function, ''))")
SORTS = {"ts": ("a_ts", "a_id"), "last_seen": ("a_last_seen", "a_id"), "count": ("a_count", "a_ts"),
         "severity": (RANK, "a_ts"), "rule": ("a_rule", "a_ts")}


def latest_alerts(table: str, sensor: str | None, identity: list[str] | tuple[str, ...] = ()) -> str:
    """One row per (sensor, alert id): its latest state.  ``identity`` terms test what every row of an alert
    has alike (its rule, protocol, hosts, techniques: what its id is made of), so they select the rows before
    the grouping: a host's or a rule's alerts are grouped, not all of them."""
    fields = ", ".join(f"argMax({quote(column)}, last_seen) AS {alias}" for alias, column in LATEST.items())
    terms = (*(["sensor_id = %(sensor)s"] if sensor else []), *identity)
    where = f"WHERE {' AND '.join(terms)} " if terms else ""
    return (f"SELECT sensor_id AS a_sensor, id AS a_id, max(last_seen) AS a_last_seen, {fields} "
            f"FROM {table} {where}GROUP BY sensor_id, id")


def base_params(sensor: str | None) -> dict[str, Any]:
    return {"sensor": sensor, "severity_names": list(SEVERITY_RANK), "severity_ranks": list(SEVERITY_RANK.values())}


def _host_condition(host: str, modern: bool) -> str | None:
    """An address column compares with a text address on both schemas; a modern (IPv6) column refuses text that
    is not an address, which can then match nothing."""
    if modern:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return None
    return "(`id.orig_h` = %(host)s OR `id.resp_h` = %(host)s)"


def conditions(q: AlertQuery, modern: bool) -> tuple[list[str], list[str], dict[str, Any]]:
    """The terms of a feed query, on the rows (an alert's identity) and on the alerts' latest states (severity
    and text, which may change as an alert aggregates), and their parameters: AlertQuery.predicates' filters."""
    identity: list[str] = []
    state: list[str] = []
    params: dict[str, Any] = {}
    if q.severity:
        state.append(f"{RANK} >= %(least)s")
        params["least"] = SEVERITY_RANK.get(q.severity, 0)
    if q.rule:
        identity.append("ifNull(rule, '') = %(rule)s")
        params["rule"] = q.rule
    if q.protocol:
        identity.append("ifNull(protocol, '') = %(protocol)s")
        params["protocol"] = q.protocol
    if q.host:
        identity.append(_host_condition(q.host, modern) or "0")
        params["host"] = q.host
    if q.technique:
        identity.append("has(technique_ids, %(technique)s)")
        params["technique"] = q.technique
    if q.tactic:
        ids = sorted(t.id for t in attack_techniques().values() if q.tactic in t.tactics)
        identity.append("hasAny(technique_ids, %(tactic_techniques)s)" if ids else "0")
        params["tactic_techniques"] = ids
    if q.text:
        state.append(f"positionCaseInsensitiveUTF8({TEXT}, %(text)s) > 0")
        params["text"] = q.text
    return identity, state, params


def feed_queries(table: str, q: AlertQuery, sensor: str | None, modern: bool) -> tuple[str, str, dict[str, Any]]:
    """(the query of the page's (sensor, id) pairs, the matching total's query, their parameters).

    The page's query names only the pairs: the server then works out only the columns its filters and sort
    use for every alert (a third of the time of all of them at 100,000 alerts); :func:`rows_query` reads
    the page's rows after."""
    identity, state, params = conditions(q, modern)
    params.update(base_params(sensor), offset=q.offset, limit=q.limit)
    where = f"WHERE {' AND '.join(state)} " if state else ""
    order = " DESC" if q.descending else ""
    keys = (*SORTS[q.sort], "a_sensor", "a_id")
    source = f"({latest_alerts(table, sensor, identity)})"
    page = (f"SELECT a_sensor, a_id FROM {source} {where}"
            f"ORDER BY {', '.join(k + order for k in keys)} LIMIT %(offset)s, %(limit)s")
    total = f"SELECT count() FROM {source} {where}"
    return page, total, params


def rows_query(table: str) -> str:
    """The latest row of each (sensor, id) in %(pairs)s, with the feed's aliases."""
    fields = ", ".join(f"{quote(column)} AS {alias}" for alias, column in LATEST.items())
    return (f"SELECT sensor_id AS a_sensor, id AS a_id, last_seen AS a_last_seen, {fields} FROM {table} "
            "WHERE (sensor_id, id) IN %(pairs)s ORDER BY last_seen DESC LIMIT 1 BY sensor_id, id")


def summary_row(row: dict[str, Any]) -> dict[str, Any]:
    """A feed row as alerts.jsonl would have it (AlertEntry reads it as it reads a line of the file)."""
    out = {column: row[alias] for alias, column in LATEST.items() if alias != "a_techniques"}
    out.update(id=row["a_id"], last_seen=row["a_last_seen"],
               techniques=[{"id": t} for t in row["a_techniques"] or ()])
    return {k: v for k, v in out.items() if v is not None}


def combinations_query(table: str, sensor: str | None) -> str:
    """Alert counts per severity, rule, protocol and technique set: the facets are sums of these."""
    return (f"SELECT a_severity, a_rule, a_protocol, a_techniques, count() "
            f"FROM ({latest_alerts(table, sensor)}) GROUP BY a_severity, a_rule, a_protocol, a_techniques")


def pairs_query(table: str, sensor: str | None) -> str:
    """Alert counts per (client, server, protocol): alerts per host and per map edge."""
    return (f"SELECT a_src, a_dst, a_protocol, count() FROM ({latest_alerts(table, sensor)}) "
            "GROUP BY a_src, a_dst, a_protocol")
