"""The web console at scale: a synthetic output directory, and the API's latencies over it.

    python bench/console_bench.py                        # 2,000 assets, 5,000 edges, 100,000 alerts
    python bench/console_bench.py --assets 500 --edges 1200 --alerts 20000 --requests 30
    python bench/console_bench.py --keep DIR --screenshot map.png   # keep the directory; draw the map in Chromium
    python bench/console_bench.py --start-clickhouse         # also the same rows in Debian's clickhouse-server
    python bench/console_bench.py --clickhouse clickhouse://127.0.0.1:9000/bench    # ... or in a server of yours

It writes DIR/assets.json, graph.json, alerts.jsonl (alerts built with the sensor's own Alert and rule table),
conn.jsonl (one connection per edge, with zone tags), modbus.jsonl (writes to draw on device pages) and
summary.json for a plant of enterprise, DMZ, site operations, supervisory, cell and field zones; starts
`otsensor serve DIR` on a free loopback port; and times each API request (``--requests`` times each, after
one request that loads the directory).  It prints, per request, the first (uncached: the query's matching set,
the layout or the rows are built then) and the median, 95th percentile and maximum of the repeats, in ms, and writes the figures to bench/console_results.json (git-ignored).
The goal the console is held to: every paged API answer under 100 ms with 100,000 alerts.

With ``--clickhouse URL`` (or ``--start-clickhouse``: Debian's clickhouse-server started unprivileged on a free
loopback port, as the tests start it) the same rows are loaded into ClickHouse with the sink's own schema and
column conversion, `otsensor serve --clickhouse URL` is timed the same way, and both stores' figures are printed
side by side.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import orjson

from otsensor.baselines.alerts import Alert
from otsensor.baselines.rules.catalog import RULES

# (zone, level, kind, share of the hosts, role of most hosts there)
PLANT = (("enterprise", 4.0, "it", 0.12, "it_host"), ("dmz", 3.5, "dmz", 0.02, "it_host"),
         ("site-ops", 3.0, "ot", 0.05, "hmi_scada"), ("supervisory", 2.0, "ot", 0.16, "hmi_scada"),
         ("cell-a", 1.0, "ot", 0.2, "plc_rtu"), ("cell-b", 1.0, "ot", 0.2, "plc_rtu"),
         ("cell-c", 1.0, "ot", 0.15, "plc_rtu"), ("field", 0.0, "ot", 0.1, "plc_rtu"))
PROTOCOLS = (("modbus", 502, ("READ_HOLDING_REGISTERS", "READ_COILS", "WRITE_SINGLE_REGISTER")),
             ("s7comm", 102, ("Read Var", "Write Var", "Setup communication")),
             ("dnp3", 20000, ("READ", "SELECT", "OPERATE")), ("enip", 44818, ("Read Tag", "Write Tag")))
VENDORS = ("Siemens", "Rockwell Automation/Allen-Bradley", "Schneider Electric", "ABB", "OTSensor Test Automation")
T0 = 1_795_000_000.0


def hosts(n: int, rng: random.Random) -> list[dict]:
    out = []
    for zi, (zone, level, kind, share, role) in enumerate(PLANT):
        count = max(1, round(n * share)) if zi < len(PLANT) - 1 else max(1, n - len(out))
        for i in range(count):
            if len(out) >= n:
                break
            ip = f"10.{zi + 1}.{i // 250}.{i % 250 + 1}"
            r = role if rng.random() > 0.05 else ("engineering_workstation" if level == 2 else "unknown")
            out.append({"ip": ip, "zone": zone, "level": level, "kind": kind, "role": r})
    return out


def asset(h: dict, rng: random.Random, clients: list[str], servers: list[str]) -> dict:
    identity = {}
    if h["role"] == "plc_rtu":
        identity = {"vendor": rng.choice(VENDORS), "product_name": f"PLC-{rng.randint(100, 999)}",
                    "revision": f"{rng.randint(1, 4)}.{rng.randint(0, 20)}", "serial_number": f"{rng.getrandbits(32):08x}"}
    mac = ":".join(f"{rng.randint(0, 255):02x}" for _ in range(6))
    return {"ip": h["ip"], "macs": [{"mac": mac, "vendor": None}], "first_seen": T0, "last_seen": T0 + 86_400,
            "role": h["role"], "role_evidence": [f"synthetic {h['role']}"], "protocols_served": {},
            "protocols_used": {}, "ot_clients": sorted(clients)[:50], "ot_servers": sorted(servers)[:50],
            "identity": identity, "identity_history": [{"ts": T0, "source": "modbus", "facts": identity}] if identity else [],
            "protocol_facts": {}}


def edges(hs: list[dict], n: int, rng: random.Random) -> list[tuple[str, str, str, int, tuple]]:
    """Supervisory hosts poll the controllers; one edge in twenty comes from the IT side (crossings)."""
    ot_clients = [h for h in hs if h["role"] != "plc_rtu" and h["kind"] == "ot"]
    it_clients = [h for h in hs if h["role"] != "plc_rtu" and h["kind"] != "ot"] or ot_clients
    servers = [h for h in hs if h["role"] == "plc_rtu"] or hs
    seen, out = set(), []
    while len(out) < n:
        c, s = rng.choice(it_clients if rng.random() < 0.05 else ot_clients), rng.choice(servers)
        proto, port, funcs = rng.choice(PROTOCOLS)
        if (c["ip"], s["ip"], proto) in seen or c is s:
            continue
        seen.add((c["ip"], s["ip"], proto))
        out.append((c["ip"], s["ip"], proto, port, funcs))
    return out


def make_directory(directory: Path, n_assets: int, n_edges: int, n_alerts: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    hs = hosts(n_assets, rng)
    by_ip = {h["ip"]: h for h in hs}
    es = edges(hs, n_edges, rng)
    clients_of: dict[str, list[str]] = {}
    servers_of: dict[str, list[str]] = {}
    for c, s, *_ in es:
        clients_of.setdefault(s, []).append(c)
        servers_of.setdefault(c, []).append(s)
    assets = [asset(h, rng, clients_of.get(h["ip"], []), servers_of.get(h["ip"], [])) for h in hs]
    (directory / "assets.json").write_bytes(orjson.dumps({"assets": assets}))
    nodes = [{"id": a["ip"], "role": a["role"], "identity": a["identity"], "macs": [a["macs"][0]["mac"]]} for a in assets]
    links = [{"source": c, "target": s, "key": p, "protocol": p, "flows": rng.randint(1, 40),
              "packets": rng.randint(10, 10_000), "bytes": rng.randint(1_000, 10_000_000), "first_seen": T0,
              "last_seen": T0 + 86_400, "server_ports": [port], "units": [], "error_responses": 0,
              "functions": {f: rng.randint(1, 5000) for f in funcs}, "operations": {}, "connections": [],
              "ranges_read": {"holding_registers": [[0, rng.randint(10, 120)]]}, "ranges_written": {}}
             for c, s, p, port, funcs in es]
    (directory / "graph.json").write_bytes(orjson.dumps({"directed": True, "multigraph": True, "graph": {},
                                                         "nodes": nodes, "edges": links}))
    with open(directory / "conn.jsonl", "wb") as fh:
        for i, (c, s, p, port, _) in enumerate(es):
            fh.write(orjson.dumps({"ts": T0 + i, "uid": f"C{i:017d}", "id.orig_h": c, "id.orig_p": 40000 + i % 20000,
                                   "id.resp_h": s, "id.resp_p": port, "proto": "tcp", "service": p,
                                   "orig_zone": by_ip[c]["zone"], "orig_level": by_ip[c]["level"],
                                   "resp_zone": by_ip[s]["zone"], "resp_level": by_ip[s]["level"]}) + b"\n")
    modbus = [e for e in es if e[2] == "modbus"][:200]
    with open(directory / "modbus.jsonl", "wb") as fh:
        for i in range(20 * len(modbus)):
            c, s, *_ = modbus[i % len(modbus)]
            fh.write(orjson.dumps({"ts": T0 + i * 30, "uid": "C1", "id.orig_h": c, "id.orig_p": 40000, "id.resp_h": s,
                                   "id.resp_p": 502, "func": "WRITE_SINGLE_REGISTER", "address": 5, "quantity": 1,
                                   "request_values": [rng.randint(0, 100)], "exception_code": None}) + b"\n")
    write_alerts(directory / "alerts.jsonl", es, n_alerts, rng)
    summary = {"packets": 10_000_000, "flows": n_edges * 10, "records": {"modbus": 20 * len(modbus), "conn": n_edges},
               "alerts": {}, "errors": [], "warnings": [], "sinks": []}
    (directory / "summary.json").write_text(json.dumps(summary))


def write_alerts(path: Path, es: list, n: int, rng: random.Random) -> None:
    """Alerts on one edge in twenty (a busy plant's noisy corner), every rule of the catalogue."""
    rules = list(RULES.values())
    noisy = rng.sample(es, max(1, len(es) // 20))
    with open(path, "wb") as fh:
        for i in range(n):
            rule = rules[i % len(rules)]
            c, s, p, port, funcs = noisy[rng.randrange(len(noisy))]
            ts = T0 + i * 0.8
            alert = Alert(rule=rule.name, title=rule.title, severity=rule.severity, category=rule.category,
                          techniques=rule.techniques, first_seen=ts, last_seen=ts + rng.random() * 60,
                          message=f"{c} {funcs[-1]} on {s} ({p})", identifier=f"{c}>{s}:{p}:{i}", src=c, dst=s,
                          src_port=40000 + i % 20000, dst_port=port, transport="tcp", protocol=p, function=funcs[-1],
                          uid=f"C{i:017d}", count=rng.randint(1, 20),
                          fold={"kind": "edge", "client": c, "server": s, "protocol": p, "port": port})
            alert.add_evidence({"uid": f"C{i:017d}", "id.orig_h": c, "id.resp_h": s, "log": p, "ts": ts,
                                "func": funcs[-1], "address": rng.randint(0, 100), "request_values": [rng.randint(0, 99)]})
            fh.write(orjson.dumps(alert.to_dict()) + b"\n")


def get(url: str) -> tuple[float, bytes]:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as response:
        body = response.read()
    return (time.perf_counter() - start) * 1000, body


def requests_to_time(base: str, directory: Path) -> dict[str, str]:
    first = json.loads(get(base + "api/alerts?limit=1")[1])["alerts"][0]
    device = json.loads((directory / "assets.json").read_text())["assets"][-1]["ip"]
    return {
        "alerts, first page": "api/alerts?limit=50",
        "alerts, page at offset 99,000": "api/alerts?limit=50&offset=99000",
        "alerts, by severity": "api/alerts?limit=50&sort=severity",
        "alerts, filtered (high+, modbus)": "api/alerts?limit=50&severity=high&protocol=modbus",
        "alerts, host filter": f"api/alerts?limit=50&host={first['src']}",
        "alerts, text search": "api/alerts?limit=50&q=write",
        "alert detail": f"api/alert/{first['id']}",
        "alert facets": "api/alerts/facets",
        "overview": "api/overview",
        "map (2,000 nodes, 5,000 edges)": "api/map",
        "inventory": "api/assets",
        "device page": f"api/device/{device}",
        "health": "api/health",
    }


def serve(*source: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "otsensor.sensor.cli", "serve", *source, "--bind",
                             "127.0.0.1:0"], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    m = re.search(r"on (http://\S+/)", line)
    if not m:
        proc.terminate()
        raise SystemExit(f"otsensor serve did not start: {line!r}")
    return proc, m.group(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--assets", type=int, default=2000)
    ap.add_argument("--edges", type=int, default=5000)
    ap.add_argument("--alerts", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=20, help="timed requests per API (after one warm-up)")
    ap.add_argument("--keep", metavar="DIR", help="build the directory here and keep it")
    ap.add_argument("--screenshot", metavar="PNG", help="also draw the map in headless Chromium and save it")
    ap.add_argument("--clickhouse", metavar="URL", help="also load the rows into this ClickHouse and serve from it")
    ap.add_argument("--start-clickhouse", action="store_true",
                    help="start Debian's clickhouse-server on a free loopback port for --clickhouse")
    args = ap.parse_args()
    directory = Path(args.keep or tempfile.mkdtemp(prefix="otsensor-console-bench-"))
    start = time.perf_counter()
    make_directory(directory, args.assets, args.edges, args.alerts)
    print(f"built {directory}: {args.assets} assets, {args.edges} edges, {args.alerts} alerts "
          f"({os.path.getsize(directory / 'alerts.jsonl') / 1e6:.0f} MB) in {time.perf_counter() - start:.1f}s")
    server = None
    try:
        results = {"dir": measure([str(directory)], directory, args)}
        if args.start_clickhouse:
            server = start_clickhouse()
            args.clickhouse = server.url
        if args.clickhouse:
            took = load_clickhouse(directory, args.clickhouse)
            print(f"loaded the rows into {args.clickhouse} in {took:.1f}s")
            results["clickhouse"] = measure(["--clickhouse", args.clickhouse], directory, args)
            side_by_side(results)
        (Path(__file__).parent / "console_results.json").write_text(json.dumps(results, indent=2))
    finally:
        if server is not None:
            server.stop()
            shutil.rmtree(server.dir, ignore_errors=True)
        if not args.keep:
            shutil.rmtree(directory, ignore_errors=True)


def measure(source: list[str], directory: Path, args: argparse.Namespace) -> dict:
    """Serve ``source`` and time each request: the first (uncached) and ``args.requests`` repeats."""
    proc, base = serve(*source)
    try:
        first_ms, _ = get(base + "api/alerts?limit=50")
        print(f"serve {' '.join(source)}: first request (loads the data): {first_ms:.0f} ms")
        results: dict = {"first_request_ms": round(first_ms, 1), "apis": {}}
        print(f"{'request':38} {'first ms':>9} {'median ms':>10} {'p95 ms':>8} {'max ms':>8} {'bytes':>10}")
        for name, path in requests_to_time(base, directory).items():
            # the first time: nothing cached for this query (its matching set, layout or rows are built now)
            cold, _ = get(base + path)
            times, size = [], 0
            for _ in range(args.requests):
                ms, body = get(base + path)
                times.append(ms)
                size = len(body)
            times.sort()
            p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
            results["apis"][name] = {"first_ms": round(cold, 2), "median_ms": round(statistics.median(times), 2),
                                     "p95_ms": round(p95, 2), "max_ms": round(times[-1], 2), "bytes": size}
            print(f"{name:38} {cold:9.1f} {statistics.median(times):10.1f} {p95:8.1f} {times[-1]:8.1f} {size:10}")
        rss = _rss_mb(proc.pid)
        results["server_rss_mb"] = rss
        print(f"server resident memory: {rss} MB; load average {os.getloadavg()[0]:.2f}")
        if args.screenshot and source[0] != "--clickhouse":
            results["map_draw"] = screenshot(base, args.screenshot)
        return results
    finally:
        proc.terminate()
        proc.wait(10)


def side_by_side(results: dict) -> None:
    print(f"\n{'request':38} {'DIR first/median ms':>20} {'ClickHouse first/median ms':>27}")
    for name, d in results["dir"]["apis"].items():
        c = results["clickhouse"]["apis"][name]
        print(f"{name:38} {d['first_ms']:9.1f} {d['median_ms']:9.1f} {c['first_ms']:13.1f} {c['median_ms']:12.1f}")


def start_clickhouse():
    """Debian's clickhouse-server as the tests start it (tests/sensor/clickhouse_server.py)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.sensor.clickhouse_server import ClickHouseServer, available
    reason = available()
    if reason:
        raise SystemExit(reason)
    directory = Path(tempfile.mkdtemp(prefix="otsensor-bench-clickhouse-"))
    directory.chmod(0o755)
    server = ClickHouseServer(directory)
    server.start()
    return server


def load_clickhouse(directory: Path, url: str) -> float:
    """The directory's rows into ClickHouse as the sink writes them: its schema, its column conversion, its
    batches of 10,000 rows (one sensor, "bench")."""
    from otsensor.sensor.clickhouse import connection
    from otsensor.sensor.clickhouse.columns import Inserter
    from otsensor.sensor.clickhouse.ddl import quote
    from otsensor.sensor.clickhouse.tables import all_tables
    from otsensor.sensor.config import ClickHouseConfig
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.sensor.clickhouse_rows import run_rows

    start = time.perf_counter()
    cfg = ClickHouseConfig(url)
    target = connection.resolve(cfg)
    conn = connection.client(cfg, target, database="default")
    tables = all_tables()
    _, types, _ = connection.ensure_schema(conn, cfg, target, tables)
    for name in ("assets", "graph_edges", "conn", "modbus", "alerts"):
        rows, inserter = run_rows(directory, name), Inserter(tables[name], types[name], "bench")
        for at in range(0, len(rows), 10_000):
            names, data = inserter.columns(rows[at:at + 10_000], random.getrandbits(43))
            conn.execute(f"INSERT INTO {quote(target.database)}.{quote(name)} ({', '.join(map(quote, names))}) VALUES",
                         data, columnar=True, types_check=False)
    conn.disconnect()
    return time.perf_counter() - start


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def screenshot(base: str, png: str) -> dict:
    """Draw the map in Debian's headless Chromium (through the system chromedriver) and save it."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.sensor.console_support import chrome
    driver = chrome()
    try:
        start = time.perf_counter()
        driver.get(base)
        WebDriverWait(driver, 60).until(lambda d: d.find_element("id", "map").get_attribute("data-drawn-nodes"))
        loaded = (time.perf_counter() - start) * 1000
        draw_ms = driver.execute_script("const t = performance.now(); draw(); return performance.now() - t;")
        driver.save_screenshot(png)
        print(f"map page loaded and drawn in {loaded:.0f} ms; one redraw takes {draw_ms:.1f} ms in Chromium -> {png}")
        return {"page_ms": round(loaded), "redraw_ms": round(draw_ms, 1)}
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
