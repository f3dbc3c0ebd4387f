"""`otsensor serve --clickhouse URL`: the console over the tables the ClickHouse sink writes (Debian's
clickhouse-server 18.16 with the compatible schema, started by tests/sensor/clickhouse_server.py).

The scenario plant is analysed once with both `-o DIR` and `--clickhouse` (sensor "north"), and a second
sensor ("south") writes one of its captures into the same database.  One console serves DIR, one serves
ClickHouse for north only, one the whole fleet; every API answer of the first two must be the same, except
for what legitimately differs, normalised in :func:`same` and said there.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest

from otsensor.baselines.alerts import SEVERITY_RANK
from tests.sensor.clickhouse_server import PASSWORD, running_server
from tests.sensor.ports import free_port
from tests.sensor.console_support import SCENARIOS, Client, Serve, alerts_of, assets_of, otsensor, screenshot

ZONES = SCENARIOS / "zones.toml"
SOUTH_CAPTURE = SCENARIOS / "attack_it_modbus_write.pcap"
NOT_IN_THE_TABLE = ("occurrence", "first_id")     # alerts.jsonl keys the alerts table has no column for
FEED_QUERIES = ["", "sort=severity", "sort=count&order=asc", "sort=rule", "sort=last_seen&order=asc",
                "severity=high", "protocol=modbus", "host=127.10.1.10", "technique=T0855", "tactic=collection",
                "q=WRITE", "rule=it_ot_boundary_crossing&sort=count", "severity=critical&q=stop"]


def sink_config(directory: Path, url: str, sensor: str, http_port: int | None = None, **extra: str) -> Path:
    path = directory / f"{sensor}.toml"
    lines = [f'url = "{url}"', f'sensor_id = "{sensor}"', "flush_interval = 0.2",
             *([f"http_port = {http_port}"] if http_port else []),   # the sink's inserts go over HTTP
             *(f'{k} = "{v}"' for k, v in extra.items())]
    path.write_text("[clickhouse]\n" + "\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def fleet(clickhouse, tmp_path_factory):
    """(north's DIR, its baseline, south's DIR): the plant as north, one attack capture as south."""
    root = tmp_path_factory.mktemp("chconsole")
    baseline = root / "baselines" / "baseline.json"
    baseline.parent.mkdir()
    otsensor("baseline", "learn", str(SCENARIOS / "benign_learn.pcap"), "--zones", str(ZONES), "-o", str(baseline))
    north, south = root / "north", root / "south"
    otsensor("analyze", *map(str, sorted(SCENARIOS.glob("*.pcap"))), "--zones", str(ZONES), "--baseline",
             str(baseline), "-o", str(north), "-q", "--config", str(sink_config(root, clickhouse.url, "north", clickhouse.http_port)))
    otsensor("analyze", str(SOUTH_CAPTURE), "--zones", str(ZONES), "-o", str(south), "-q",
             "--config", str(sink_config(root, clickhouse.url, "south", clickhouse.http_port)))
    for out in (north, south):
        sink = json.loads((out / "summary.json").read_text())["sinks"][0]
        assert sink["delivered"] == sink["accepted"] > 0, sink
    return north, baseline, south


@pytest.fixture(scope="module")
def consoles(clickhouse, fleet):
    """(from DIR, from ClickHouse for north, from ClickHouse for every sensor)."""
    north, baseline, _ = fleet
    started = [Serve(str(north), "--bind", "127.0.0.1:0", "--baseline", str(baseline)),
               Serve("--clickhouse", clickhouse.url, "--sensor", "north", "--bind", "127.0.0.1:0",
                     "--baseline", str(baseline)),
               Serve("--clickhouse", clickhouse.url, "--bind", "127.0.0.1:0")]
    yield [Client(s.url) for s in started]
    for s in started:
        s.stop()


def same(x):
    """What legitimately differs between the two stores, taken out:
    - ``sensor_id`` (alerts) and ``sensors`` (assets, edges): only ClickHouse knows which sensor wrote a row;
    - ``occurrence`` and ``first_id`` of an alert's detail: alerts.jsonl has them, the alerts table has no column;
    - the order of a device's written values: the files hold them in the order the captures were read, the
      store in time order (each point is the same);
    - the overview's ``directory`` and ``source``: where the console reads."""
    if isinstance(x, dict):
        out = {k: same(v) for k, v in x.items()
               if k not in ("sensor_id", "sensors", "directory", "source", *NOT_IN_THE_TABLE)}
        if "points" in out:
            out["points"] = sorted(out["points"], key=lambda p: (p["ts"], p["value"]))
        return out
    if isinstance(x, list):
        return [same(v) for v in x]
    return x


def sort_key(sort: str, a: dict) -> tuple:
    """The feed's sort key: alerts equal on it may come in either order (the files' order is arrival)."""
    return {"ts": (a["ts"], a["id"]), "last_seen": (a["last_seen"], a["id"]), "count": (a["count"], a["ts"]),
            "severity": (SEVERITY_RANK.get(a["severity"], 2), a["ts"]), "rule": (a["rule"], a["ts"])}[sort]


def assert_same_feed(a: list[dict], b: list[dict], sort: str) -> None:
    """The same alerts, in the same order up to ties of the sort key."""
    a, b = same(a), same(b)
    assert [sort_key(sort, x) for x in a] == [sort_key(sort, x) for x in b]
    assert sorted(map(json.dumps, a)) == sorted(map(json.dumps, b))


def test_every_endpoint_answers_as_from_the_directory(fleet, consoles):
    north, _, _ = fleet
    files, store, _ = consoles
    for path in ("/api/assets", "/api/map", "/api/alerts/facets", "/api/overview",
                 "/api/assets?role=plc_rtu", "/api/assets?q=modbus&zone=cell"):
        assert same(store.json(path)) == same(files.json(path)), path
    assert store.get("/api/assets.csv")[2] == files.get("/api/assets.csv")[2]
    for asset in assets_of(north):
        path = f"/api/device/{asset['ip']}"
        assert same(store.json(path)) == same(files.json(path)), path
    written = store.json("/api/device/127.10.1.10")["written"]
    assert sum(len(s["points"]) for s in written) > 10
    alerts = alerts_of(north)
    for alert in alerts:
        path = f"/api/alert/{alert['id']}"
        assert same(store.json(path)) == same(files.json(path)), path
    assert store.get("/api/alert/00000000")[0] == files.get("/api/alert/00000000")[0] == 404
    assert store.get("/api/device/10.99.99.99")[0] == 404


@pytest.mark.parametrize("query", FEED_QUERIES)
def test_the_alert_feed_pages_sorts_and_filters_as_from_the_directory(consoles, query):
    files, store, _ = consoles
    sort = urllib.parse.parse_qs(query).get("sort", ["ts"])[0]
    whole = {}
    for name, client in (("files", files), ("store", store)):
        whole[name] = client.json(f"/api/alerts?{query}&limit=500")
    assert whole["store"]["total"] == whole["files"]["total"] and whole["store"]["all"] == whole["files"]["all"]
    assert whole["files"]["total"] > 0 or query.startswith("severity=critical")
    assert_same_feed(whole["store"]["alerts"], whole["files"]["alerts"], sort)
    # a page is the slice of the whole at its offset
    page = store.json(f"/api/alerts?{query}&offset=3&limit=7")
    assert [x["id"] for x in page["alerts"]] == [x["id"] for x in whole["store"]["alerts"][3:10]]


def test_health_without_dir_shows_the_records_clickhouse_holds_and_says_what_it_cannot(fleet, consoles):
    north, _, _ = fleet
    health = consoles[1].json("/api/health")
    assert health["records"] == json.loads((north / "summary.json").read_text())["records"]
    assert not health["live"] and health["files"] == [] and "not available from ClickHouse" in health["notice"]
    assert consoles[1].get("/files/summary.json")[0] == 404
    assert consoles[0].json("/api/health")["notice"] is None


def test_two_sensors_share_the_database_and_the_sensor_filter_keeps_them_apart(fleet, consoles):
    north, _, south = fleet
    _, only_north, everyone = consoles
    both = set(a["ip"] for a in assets_of(north)) & set(a["ip"] for a in assets_of(south))
    assert "127.10.1.10" in both
    device = everyone.json("/api/device/127.10.1.10")
    assert device["asset"]["sensors"] == ["north", "south"]
    assert only_north.json("/api/device/127.10.1.10")["asset"]["sensors"] == ["north"]
    every_ip = {a["ip"] for a in assets_of(north)} | {a["ip"] for a in assets_of(south)}
    assert {a["ip"] for a in everyone.json("/api/assets")["assets"]} == every_ip
    feed = everyone.json("/api/alerts?limit=500")
    assert feed["total"] == len(alerts_of(north)) + len(alerts_of(south))
    assert {(a["sensor_id"], a["id"]) for a in feed["alerts"]} == \
        {("north", a["id"]) for a in alerts_of(north)} | {("south", a["id"]) for a in alerts_of(south)}
    assert {a["sensor_id"] for a in only_north.json("/api/alerts?limit=500")["alerts"]} == {"north"}


INJECTIONS = ["' OR 1=1 --", "x'); DROP TABLE otsensor.alerts; --", "\\' OR ''='", "%(sensor)s", "%s%s%s",
              "modbus' UNION SELECT * FROM system.users --", "127.10.1.10' OR '1'='1"]


def test_sql_in_filters_is_only_text_to_match(clickhouse, consoles):
    files, store, everyone = consoles
    before = clickhouse.query("SELECT count() FROM otsensor.alerts")
    for text in INJECTIONS:
        for name in ("rule", "protocol", "host", "technique", "tactic", "q", "severity"):
            q = urllib.parse.urlencode({name: text, "limit": 500})
            for client in (store, everyone):
                status, _, body = client.get(f"/api/alerts?{q}")
                assert status == 200, (name, text, body[:200])
                assert json.loads(body)["total"] == files.json(f"/api/alerts?{q}")["total"] == 0 or name == "severity"
        assert store.get(f"/api/device/{urllib.parse.quote(text)}")[0] == 404
        assert store.get(f"/api/alert/{urllib.parse.quote(text)}")[0] == 404
    assert clickhouse.query("SELECT count() FROM otsensor.alerts") == before


def test_accept_into_baseline_takes_the_alerts_from_clickhouse(fleet, consoles, tmp_path):
    north, baseline, _ = fleet
    chosen = [a["id"] for a in alerts_of(north) if a["rule"] == "new_edge" and a.get("baseline_fold")][:2]
    assert len(chosen) == 2
    c = consoles[1]
    status, _, data = c.post_json("/api/baseline/accept", {"ids": chosen, "output": "from-clickhouse.json"},
                                  csrf=c.csrf())
    assert status == 200, data
    written = Path(json.loads(data)["written"])
    cli = tmp_path / "cli.json"
    otsensor("baseline", "accept", str(baseline), str(north / "alerts.jsonl"), *[x for i in chosen for x in ("--id", i)],
             "-o", str(cli))
    assert json.loads(written.read_text()) == json.loads(cli.read_text())
    assert c.post_json("/api/baseline/accept", {"ids": ["0123abcd"]}, csrf=c.csrf())[0] == 404


def serve_fails(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "otsensor.sensor.cli", "serve", "--bind", "127.0.0.1:0", *args],
                          capture_output=True, text=True, timeout=60)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("otsensor: error: "), proc.stderr
    return lines[0]


def test_a_bad_url_server_or_password_is_one_error_line(clickhouse, fleet, tmp_path):
    assert "unsupported URL" in serve_fails("--clickhouse", "http://127.0.0.1/otsensor")
    assert "127.0.0.1" in serve_fails("--clickhouse", f"clickhouse://127.0.0.1:{free_port()}/otsensor")
    assert "DIR" in serve_fails()
    assert "no table" in serve_fails("--clickhouse", clickhouse.url.replace("/otsensor", "/default"))
    assert "doesn't exist" in serve_fails("--clickhouse", clickhouse.url.replace("/otsensor", "/nothing"))
    wrong = clickhouse.url.replace("127.0.0.1", "sensor:wrong@127.0.0.1")
    assert "sensor" in serve_fails("--clickhouse", wrong)
    # the password from the [clickhouse] section's password_file, as the sink reads it
    secret = tmp_path / "pass"
    secret.write_text(PASSWORD + "\n")
    config = sink_config(tmp_path, "clickhouse://unused/otsensor", "x", password_file=str(secret))
    s = Serve("--clickhouse", clickhouse.url.replace("127.0.0.1", "sensor@127.0.0.1"), "--config", str(config),
              "--bind", "127.0.0.1:0")
    try:
        assert Client(s.url).json("/api/alerts?limit=1")["all"] > 0
    finally:
        s.stop()


@pytest.fixture
def own_server():
    """A server this test may stop and start again."""
    yield from running_server()


def test_the_server_going_away_is_a_503_and_the_console_recovers(own_server, tmp_path):
    otsensor("analyze", str(SOUTH_CAPTURE), "--zones", str(ZONES), "-o", str(tmp_path / "out"), "-q",
             "--config", str(sink_config(tmp_path, own_server.url, "solo", own_server.http_port)))
    s = Serve("--clickhouse", own_server.url, "--bind", "127.0.0.1:0")
    try:
        c = Client(s.url)
        before = c.json("/api/alerts?severity=high")
        assert before["total"] > 0
        own_server.stop()
        time.sleep(1.2)          # past the store's once-a-second look at the tables
        for path in ("/api/alerts?severity=high&sort=count", "/api/map", "/api/device/127.10.1.10"):
            status, headers, body = c.get(path)
            assert status == 503 and headers["content-type"] == "application/json", (path, status, body[:200])
            assert "ClickHouse" in json.loads(body)["error"]
        assert c.get("/alerts")[0] == 200          # the pages themselves still load
        own_server.start()
        time.sleep(1.2)
        assert c.json("/api/alerts?severity=high") == before
        assert c.json("/api/map")["nodes"]
    finally:
        assert s.stop() == 0
    assert "Traceback" not in s.proc.stderr.read()


@pytest.fixture(scope="module")
def browser():
    from tests.sensor.console_support import chrome, chrome_missing
    if chrome_missing():
        pytest.skip(chrome_missing())
    driver = chrome()
    yield driver
    driver.quit()


def test_the_map_and_the_alert_feed_render_from_clickhouse(fleet, consoles, browser):
    from tests.sensor.test_console_browser import by_css, errors, wait
    north, _, _ = fleet
    everyone = consoles[2]
    graph = json.loads((north / "graph.json").read_text())
    served = everyone.json("/api/map")
    browser.get(everyone.base.geturl())
    canvas = wait(browser, lambda d: (by_css(d, "#map[data-drawn-nodes]") or [None])[0])
    assert int(canvas.get_attribute("data-drawn-nodes")) == len(served["nodes"]) >= len(graph["nodes"])
    assert int(canvas.get_attribute("data-drawn-edges")) == len(served["edges"]) >= len(graph["edges"])
    screenshot(browser, "clickhouse-map")
    browser.get(everyone.base.geturl() + "alerts")
    feed = everyone.json("/api/alerts?limit=100")
    wait(browser, lambda d: len(by_css(d, "tr.alert-row")) == min(feed["total"], 100))
    assert {r.get_attribute("data-id") for r in by_css(browser, "tr.alert-row")} == {a["id"] for a in feed["alerts"]}
    assert "sensor south" in by_css(browser, "#alerts")[0].text
    screenshot(browser, "clickhouse-alerts")
    assert errors(browser) == []


def test_the_modern_schema_answers_the_same(fleet, tmp_path):
    """The store's SQL on a current engine (chDB) with the modern schema (DateTime64 times, IPv6 addresses,
    LowCardinality names), over north's rows as the sink converts them, against DirStore in-process."""
    from otsensor.sensor.clickhouse.tables import all_tables
    from otsensor.sensor.console.alert_index import AlertQuery
    from otsensor.sensor.console.chstore import ClickHouseStore
    from otsensor.sensor.console.device import device_view
    from otsensor.sensor.console.store import DirStore
    from tests.sensor.clickhouse_modern import ChdbReader, create_modern_tables, engine, insert_rows
    from tests.sensor.clickhouse_rows import run_rows

    north, _, _ = fleet
    session = engine(tmp_path / "db")
    tables = all_tables()
    create_modern_tables(session, tables)
    for n, (name, table) in enumerate(tables.items()):
        if rows := run_rows(north, name):
            insert_rows(session, table, rows, "north", n + 1, tmp_path)
    reader = ChdbReader(session)
    engines = dict(reader.rows("SELECT name, engine FROM system.tables WHERE database = 'otsensor'")[1])
    store, files = ClickHouseStore(reader, engines, "north"), DirStore(str(north))
    assert store.modern
    for view in ("assets", "graph", "network_map", "alert_facets", "host_alerts"):
        assert same(getattr(store, view)()) == same(getattr(files, view)()), view
    for asset in assets_of(north):
        assert same(device_view(store, asset["ip"])) == same(device_view(files, asset["ip"])), asset["ip"]
    for alert in alerts_of(north):
        assert same(store.alert(alert["id"])) == same(files.alert(alert["id"]))
    for query in FEED_QUERIES:
        q = AlertQuery.from_params({k: v[0] for k, v in urllib.parse.parse_qs(query).items()} | {"limit": "500"})
        a, b = store.alerts(q), files.alerts(q)
        assert (a["total"], a["all"]) == (b["total"], b["all"]), query
        assert_same_feed(a["alerts"], b["alerts"], q.sort)
    session.close()
