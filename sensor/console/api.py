"""The console's routes: pages and JSON answers built from the store (no HTTP plumbing here, see server.py)."""
from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from otsensor.baselines.diff import AcceptError
from otsensor.baselines.learn import BaselineError
from otsensor.sensor.console import inventory
from otsensor.sensor.console.alert_index import AlertQuery
from otsensor.sensor.console.baseline_view import (BaselineFiles, accept_into_new, default_new_name, learned,
                                                   side_by_side)
from otsensor.sensor.console.device import device_view
from otsensor.sensor.console.health import RateTracker, health_view
from otsensor.sensor.console.pages import page
from otsensor.sensor.console.store import Store, StoreUnavailable

MAX_ACCEPT = 1_000


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def json_response(data: Any, status: int = 200) -> Response:
    return Response(status, orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS, default=str))


def error(status: int, message: str) -> Response:
    return json_response({"error": message}, status)


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, str]
    session: str
    body: Any = None


Handler = Callable[["Console", Request, re.Match], Response]


class Console:
    """The application: a store over DIR, the baselines it may read, and whether it may write."""

    def __init__(self, store: Store, directory: str | None, baselines: BaselineFiles, read_only: bool,
                 csrf: Callable[[str], str], source: str | None = None) -> None:
        self.store = store
        self.directory = os.path.abspath(directory) if directory else None     # None: ClickHouse only
        self.source = source or self.directory or ""      # what the pages say they show
        self.baselines = baselines
        self.read_only = read_only
        self.csrf = csrf
        self.rates = RateTracker()
        self.accept_lock = threading.Lock()
        self.accepted: dict[str, str] = {}      # alert id -> the baseline file it was accepted into

    def handle(self, request: Request) -> Response | None:
        for method, pattern, handler in ROUTES:
            if method == request.method:
                m = pattern.fullmatch(request.path)
                if m:
                    try:
                        return handler(self, request, m)
                    except StoreUnavailable as exc:    # the database went away: say so, it may come back
                        return error(503, str(exc))
        return None

    def html(self, request: Request, name: str, **extra: str) -> Response:
        text = page(name, self.csrf(request.session), self.read_only, self.source, extra)
        return Response(200, text.encode(), "text/html; charset=utf-8")


def _page(name: str) -> Handler:
    return lambda console, request, m: console.html(request, name)


def _device_page(console: Console, request: Request, m: re.Match) -> Response:
    return console.html(request, "device", ip=m.group(1))


def _overview(console: Console, request: Request, m: re.Match) -> Response:
    store = console.store
    return json_response({"directory": console.directory, "source": console.source, "read_only": console.read_only,
                          "baseline": console.baselines.current, "assets": len(store.assets()),
                          "edges": len(store.graph()["edges"]),
                          "alerts": store.alerts(AlertQuery(limit=1))["all"], "problems": store.problems()})


def _map(console: Console, request: Request, m: re.Match) -> Response:
    return json_response(console.store.network_map())


def _inventory_rows(console: Console, params: dict[str, str]) -> list[dict[str, Any]]:
    store = console.store
    rows = store.cached("inventory", store.version(),
                          lambda: inventory.rows(store.assets(), store.placements(), store.host_alerts()))
    text, role, zone, protocol = (params.get(k, "") for k in ("q", "role", "zone", "protocol"))
    return [r for r in rows if inventory.matches(r, text, role, zone, protocol)]


def _assets(console: Console, request: Request, m: re.Match) -> Response:
    return json_response({"assets": _inventory_rows(console, request.params)})


def _assets_csv(console: Console, request: Request, m: re.Match) -> Response:
    text = inventory.to_csv(_inventory_rows(console, request.params))
    return Response(200, text.encode(), "text/csv; charset=utf-8",
                    {"Content-Disposition": 'attachment; filename="assets.csv"'})


def _device(console: Console, request: Request, m: re.Match) -> Response:
    view = device_view(console.store, m.group(1))
    return json_response(view) if view is not None else error(404, f"no device {m.group(1)} here")


def _alerts(console: Console, request: Request, m: re.Match) -> Response:
    result = console.store.alerts(AlertQuery.from_params(request.params))
    for a in result["alerts"]:
        a["accepted_into"] = console.accepted.get(a["id"])
    return json_response(result)


def _facets(console: Console, request: Request, m: re.Match) -> Response:
    return json_response(console.store.alert_facets())


def _alert(console: Console, request: Request, m: re.Match) -> Response:
    found = console.store.alert(m.group(1))
    return json_response(found) if found is not None else error(404, "no such alert")


def _baseline(console: Console, request: Request, m: re.Match) -> Response:
    try:
        return json_response(learned(console.baselines.resolve(request.params.get("file"))))
    except BaselineError as exc:
        return error(404, str(exc))


def _baseline_files(console: Console, request: Request, m: re.Match) -> Response:
    current = console.baselines.current
    return json_response({"current": current, "files": console.baselines.listing(),
                          "new_name": default_new_name(current), "read_only": console.read_only})


def _baseline_diff(console: Console, request: Request, m: re.Match) -> Response:
    try:
        old = console.baselines.resolve(request.params.get("old"))
        new = console.baselines.resolve(request.params.get("new"))
        return json_response(side_by_side(old, new))
    except BaselineError as exc:
        return error(400, str(exc))


def _accept(console: Console, request: Request, m: re.Match) -> Response:
    """Accept alerts into a new baseline file (beside the current one), through `baseline accept`'s code."""
    if console.read_only:
        return error(403, "this console is read-only")
    body = request.body if isinstance(request.body, dict) else {}
    ids = body.get("ids")
    if not isinstance(ids, list) or not ids or len(ids) > MAX_ACCEPT or not all(isinstance(i, str) for i in ids):
        return error(400, f"name 1 to {MAX_ACCEPT} alert ids")
    with console.accept_lock:
        try:
            source = console.baselines.resolve(None)
        except BaselineError as exc:
            return error(409, str(exc))
        alerts = console.store.raw_alerts(ids)
        missing = sorted(set(ids) - {a.get("id") for a in alerts})
        if missing:
            return error(404, f"no alert with id {', '.join(missing)}")
        try:
            result = accept_into_new(source, alerts, str(body.get("output") or default_new_name(source)))
        except (AcceptError, BaselineError) as exc:
            return error(400, str(exc))
        except OSError as exc:
            return error(500, f"cannot write the new baseline: {exc.strerror or exc}")
        console.baselines.current = result["written"]
        for alert_id in ids:
            console.accepted[alert_id] = result["written"]
    return json_response(result)


def _health(console: Console, request: Request, m: re.Match) -> Response:
    return json_response(health_view(console.store, console.directory, console.rates))


IP = r"([0-9A-Fa-f:.]{2,45})"
ROUTES: list[tuple[str, re.Pattern, Handler]] = [(method, re.compile(path), handler) for method, path, handler in (
    ("GET", r"/", _page("map")),
    ("GET", r"/inventory", _page("inventory")),
    ("GET", r"/alerts", _page("alerts")),
    ("GET", r"/baseline", _page("baseline")),
    ("GET", r"/health", _page("health")),
    ("GET", r"/device/" + IP, _device_page),
    ("GET", r"/api/overview", _overview),
    ("GET", r"/api/map", _map),
    ("GET", r"/api/assets", _assets),
    ("GET", r"/api/assets\.csv", _assets_csv),
    ("GET", r"/api/device/" + IP, _device),
    ("GET", r"/api/alerts", _alerts),
    ("GET", r"/api/alerts/facets", _facets),
    ("GET", r"/api/alert/([0-9a-f]{1,64})", _alert),
    ("GET", r"/api/baseline", _baseline),
    ("GET", r"/api/baseline/files", _baseline_files),
    ("GET", r"/api/baseline/diff", _baseline_diff),
    ("POST", r"/api/baseline/accept", _accept),
    ("GET", r"/api/health", _health),
)]
