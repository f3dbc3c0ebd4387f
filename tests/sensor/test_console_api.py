"""`otsensor serve` as a user runs it: a real server in a subprocess over a real `otsensor analyze` directory.

The directory is the scenario plant (pcaps/scenarios, with its zones and a baseline learned from
benign_learn.pcap).  Every answer is checked against the files it comes from.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import urllib.parse

import pytest

from tests.sensor.console_support import ROOT, Client, Serve, alerts_of, otsensor


def test_every_asset_and_every_alert_is_served(plant, console_server):
    directory, _ = plant
    c = Client(console_server.url)
    assets = json.loads((directory / "assets.json").read_text())["assets"]
    served = c.json("/api/assets")["assets"]
    assert [a["ip"] for a in served] == [a["ip"] for a in assets]
    for row, asset in zip(served, assets):
        assert row["role"] == asset["role"] and row["first_seen"] == asset["first_seen"]
        assert {i["key"]: i["value"] for i in row["identity"]} == asset["identity"]
    expected = {a["id"] for a in alerts_of(directory)}
    assert len(expected) > 20
    seen, offset = [], 0
    while True:
        page = c.json(f"/api/alerts?limit=20&offset={offset}")
        assert page["total"] == len(expected)
        seen += [a["id"] for a in page["alerts"]]
        offset += 20
        if offset >= page["total"]:
            break
    assert sorted(seen) == sorted(expected)


def test_the_map_places_hosts_in_their_zones_and_flags_it_reaching_into_ot(console_server):
    m = Client(console_server.url).json("/api/map")
    nodes = {n["id"]: n for n in m["nodes"]}
    assert (nodes["127.10.1.10"]["zone"], nodes["127.10.1.10"]["level"]) == ("cell", 1.0)
    assert (nodes["127.10.2.20"]["zone"], nodes["127.10.2.20"]["level"]) == ("supervisory", 2.0)
    assert (nodes["127.20.1.50"]["zone"], nodes["127.20.1.50"]["level"]) == ("corporate", 4.0)
    assert [b["level"] for b in m["bands"]] == [4.0, 2.0, 1.0]
    ids = [n["id"] for n in m["nodes"]]
    edge = {(ids[e["s"]], ids[e["t"]], e["protocol"]): e for e in m["edges"]}
    attack = edge[("127.20.1.50", "127.10.1.10", "modbus")]
    assert attack["crossing"] and attack["alerts"] > 0
    assert "WRITE_MULTIPLE_REGISTERS" in attack["functions"]
    polling = edge[("127.10.2.20", "127.10.1.10", "modbus")]
    assert not polling["crossing"]


def test_device_page_shows_identity_peers_ranges_written_values_and_alerts(plant, console_server):
    directory, _ = plant
    d = Client(console_server.url).json("/api/device/127.10.1.10")
    assert d["asset"]["vendor"]["value"] == "OTSensor Test Automation" and d["asset"]["vendor"]["source"] == "modbus"
    peers = {(p["peer"], p["protocol"], p["as"]) for p in d["peers"]}
    assert ("127.10.2.20", "modbus", "server") in peers and ("127.20.1.50", "modbus", "server") in peers
    assert any(r["space"] == "holding_registers" and r["access"] == "written" for r in d["ranges"])
    assert any(f["function"] == "READ_HOLDING_REGISTERS" and f["as"] == "server" for f in d["functions"])
    # the written values are the request values of every write to this device in modbus.jsonl
    expected = []
    for line in (directory / "modbus.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["id.resp_h"] == "127.10.1.10" and row["func"] in ("WRITE_SINGLE_REGISTER", "WRITE_MULTIPLE_REGISTERS") \
                and not row.get("exception_code"):
            expected += [(row["ts"], float(v)) for v in row["request_values"]]
    got = [(p["ts"], p["value"]) for s in d["written"] if s["series"].startswith("modbus holding_registers")
           for p in s["points"]]
    assert sorted(got) == sorted(expected) and (pytest.approx(4000.0) in [v for _, v in got])
    assert d["alerts"]["total"] == sum(1 for a in alerts_of(directory)
                                       if "127.10.1.10" in (a["id.orig_h"], a["id.resp_h"]))
    assert Client(console_server.url).get("/api/device/10.99.99.99")[0] == 404


def test_alert_detail_carries_evidence_and_attack_names_from_the_shipped_tables(plant, console_server):
    directory, _ = plant
    stop = next(a for a in alerts_of(directory) if a["rule"] == "plc_stop")
    detail = Client(console_server.url).json(f"/api/alert/{stop['id']}")
    assert detail["evidence"] == stop["evidence"] and detail["baseline_fold"] == stop["baseline_fold"]
    names = {t["id"]: t for t in detail["techniques"]}
    assert names["T0858"]["name"] == "Change Operating Mode" and "Execution" in names["T0858"]["tactics"]
    page = Client(console_server.url).json("/api/alerts?rule=plc_stop&severity=critical")
    assert [a["id"] for a in page["alerts"]] == [stop["id"]]


def test_inventory_csv_has_every_asset(plant, console_server):
    directory, _ = plant
    status, headers, body = Client(console_server.url).get("/api/assets.csv")
    assert status == 200 and headers["content-type"].startswith("text/csv")
    assert "attachment" in headers["content-disposition"]
    lines = body.decode().splitlines()
    assets = json.loads((directory / "assets.json").read_text())["assets"]
    assert lines[0].startswith("ip,macs,mac_vendors,role")
    assert [line.split(",")[0] for line in lines[1:]] == [a["ip"] for a in assets]
    filtered = Client(console_server.url).get("/api/assets.csv?role=plc_rtu")[2].decode().splitlines()
    assert len(filtered) - 1 == sum(1 for a in assets if a["role"] == "plc_rtu")


def test_every_answer_carries_the_security_headers(console_server):
    c = Client(console_server.url)
    for path in ("/", "/alerts", "/api/overview", "/static/map.js", "/api/nothing"):
        _, headers, _ = c.get(path)
        assert "script-src 'self'" in headers["content-security-policy"], path
        assert "default-src 'none'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"
    assert c.get("/static/../api/overview")[0] == 404
    assert "httponly" in c.get("/")[1].get("set-cookie", "httponly").lower()


def test_a_state_change_needs_the_session_csrf_token_same_origin_and_json(plant, console_server):
    directory, baseline = plant
    stop = next(a for a in alerts_of(directory) if a["rule"] == "plc_stop")
    before = sorted(os.listdir(baseline.parent))
    c = Client(console_server.url)
    token = c.csrf()
    body = {"ids": [stop["id"]], "output": "never.json"}
    assert c.post_json("/api/baseline/accept", body)[0] == 403                          # no token
    assert c.post_json("/api/baseline/accept", body, csrf="0" * 32)[0] == 403          # a wrong one
    assert Client(console_server.url).post_json("/api/baseline/accept", body, csrf=token)[0] == 403   # another session
    assert c.post_json("/api/baseline/accept", body, csrf=token,
                       headers={"Origin": "http://evil.example"})[0] == 403
    status, _, _ = c.request("POST", "/api/baseline/accept", body=b"ids=x",
                             headers={"X-CSRF-Token": token, "Content-Type": "application/x-www-form-urlencoded"})
    assert status == 415
    assert c.get("/api/baseline/accept")[0] == 404                                     # not by GET
    assert sorted(os.listdir(baseline.parent)) == before


def test_accept_writes_the_baseline_that_baseline_accept_writes(plant, console_server, tmp_path):
    directory, baseline = plant
    alerts = alerts_of(directory)
    chosen = [a["id"] for a in alerts if a["rule"] in ("new_writer", "new_edge") and a.get("baseline_fold")][:3]
    assert len(chosen) == 3
    c = Client(console_server.url)
    token = c.csrf()
    status, _, data = c.post_json("/api/baseline/accept", {"ids": chosen, "output": "console-accepted.json"},
                                  csrf=token, headers={"Origin": console_server.url.rstrip("/")})
    assert status == 200, data
    result = json.loads(data)
    assert result["written"] == str(baseline.parent / "console-accepted.json") and len(result["accepted"]) == 3
    cli = tmp_path / "cli.json"
    otsensor("baseline", "accept", str(baseline), str(directory / "alerts.jsonl"),
             *[x for i in chosen for x in ("--id", i)], "-o", str(cli))
    assert json.loads((baseline.parent / "console-accepted.json").read_text()) == json.loads(cli.read_text())
    # never overwrites, never writes elsewhere
    again = c.post_json("/api/baseline/accept", {"ids": chosen, "output": "console-accepted.json"}, csrf=token)
    assert again[0] == 400 and b"already exists" in again[2]
    for name in ("../escape.json", "/tmp/x.json", "sub/x.json", "x.txt"):
        assert c.post_json("/api/baseline/accept", {"ids": chosen, "output": name}, csrf=token)[0] == 400, name
    assert not (baseline.parent.parent / "escape.json").exists()
    # the new file is now the console's baseline; the diff is `baseline diff`'s, side by side
    files = c.json("/api/baseline/files")
    assert files["current"] == result["written"] and str(baseline) in files["files"]
    q = urllib.parse.urlencode({"old": str(baseline), "new": result["written"]})
    diff = c.json(f"/api/baseline/diff?{q}")
    printed = otsensor("baseline", "diff", str(baseline), result["written"]).stdout.splitlines()
    assert diff["lines"] == printed and len(diff["rows"]) == len(printed) > 0
    assert all(r["new"] is not None for r in diff["rows"] if r["change"] == "added")
    learned = c.json("/api/baseline?file=" + urllib.parse.quote(result["written"]))
    assert learned["counts"]["edges"] >= json.loads(baseline.read_text()).get("edges", {}).__len__()
    assert c.get("/api/baseline?file=/etc/passwd")[0] == 404
    feed = c.json("/api/alerts?limit=500")
    assert {a["id"] for a in feed["alerts"] if a["accepted_into"]} == set(chosen)


def test_read_only_console_refuses_to_accept(plant):
    directory, baseline = plant
    s = Serve(str(directory), "--bind", "127.0.0.1:0", "--baseline", str(baseline), "--read-only")
    try:
        c = Client(s.url)
        alert = alerts_of(directory)[0]
        status, _, data = c.post_json("/api/baseline/accept", {"ids": [alert["id"]], "output": "ro.json"},
                                      csrf=c.csrf())
        assert status == 403 and b"read-only" in data
        assert not (baseline.parent / "ro.json").exists()
        assert 'data-readonly="1"' in c.get("/alerts")[2].decode()
    finally:
        s.stop()


def test_only_files_directly_under_dir_are_served(plant, console_server, tmp_path):
    directory, _ = plant
    c = Client(console_server.url)
    status, headers, body = c.get("/files/alerts.jsonl")
    assert status == 200 and body == (directory / "alerts.jsonl").read_bytes()
    assert headers["content-type"] == "application/octet-stream" and "attachment" in headers["content-disposition"]
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the console")
    os.symlink(secret, directory / "link.txt")
    try:
        for path in ("/files/../../etc/passwd", "/files/%2e%2e%2fetc%2fpasswd", "/files/link.txt",
                     "/files/" + urllib.parse.quote(str(secret), safe=""), "/files/nothing.jsonl", "/files/"):
            status, _, body = c.get(path)
            assert status == 404 and b"not for the console" not in body, path
    finally:
        (directory / "link.txt").unlink()


def test_on_loopback_the_host_header_must_name_the_console(console_server):
    port = urllib.parse.urlsplit(console_server.url).port
    c = Client(console_server.url)
    assert c.get("/api/overview", host=f"localhost:{port}")[0] == 200
    assert c.get("/api/overview", host=f"attacker.example:{port}")[0] == 421   # DNS rebinding
    assert c.get("/", host="127.0.0.1:1")[0] == 421


def test_a_configured_token_is_required_even_on_loopback(plant):
    directory, _ = plant
    token = "a-console-token-for-tests-0123456789"
    s = Serve(str(directory), "--bind", "127.0.0.1:0", env={"OTSENSOR_CONSOLE_TOKEN": token})
    try:
        c = Client(s.url)
        assert c.get("/api/overview")[0] == 401
        status, headers, _ = c.get("/inventory")
        assert status == 303 and headers["location"] == "/login"
        assert c.get("/api/overview", headers={"Authorization": f"Bearer {token}"})[0] == 200
        assert c.get("/api/overview", headers={"Authorization": "Bearer wrong"})[0] == 401
        # the login form: CSRF token of the session, then the token
        page = c.get("/login")[2].decode()
        csrf = page.split('name="csrf" value="')[1].split('"')[0]
        status, headers, _ = c.request("POST", "/login", body=urllib.parse.urlencode(
            {"csrf": csrf, "token": "wrong"}).encode(), headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 303 and "failed" in headers["location"]
        status, headers, _ = c.request("POST", "/login", body=urllib.parse.urlencode(
            {"csrf": csrf, "token": token}).encode(), headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 303 and headers["location"] == "/"
        assert c.get("/api/overview")[0] == 200
        # the printed link form: ?token= becomes a session and disappears from the address
        link = Client(s.url)
        status, headers, _ = link.get(f"/alerts?token={token}&x=1")
        assert status == 303 and headers["location"] == "/alerts?x=1"
        assert link.get("/api/overview")[0] == 200
        # a forged cookie is no session
        forged = Client(s.url)
        forged.cookie = "otsensor_console=abc.1.0000"
        assert forged.get("/api/overview")[0] == 401
        assert "configured token" in s.read_line()
    finally:
        s.stop()


def test_tls(plant, certs):
    directory, _ = plant
    s = Serve(str(directory), "--bind", "127.0.0.1:0", "--tls-cert", certs.server_cert, "--tls-key", certs.server_key)
    try:
        assert s.url.startswith("https://")
        ctx = ssl.create_default_context(cafile=certs.ca)
        c = Client(s.url, context=ctx)
        status, headers, _ = c.get("/api/overview")
        assert status == 200 and "max-age" in headers["strict-transport-security"]
        assert "secure" in headers["set-cookie"].lower()
        with pytest.raises(ssl.SSLError):
            Client(s.url, context=ssl.create_default_context()).get("/api/overview")   # not trusted by default
    finally:
        s.stop()


@pytest.mark.parametrize("args, message", [
    (["{dir}", "--clickhouse", "http://127.0.0.1:8123"], "--clickhouse: unsupported URL"),
    (["{dir}", "--sensor", "north"], "--sensor and --config go with --clickhouse"),
    ([], "give an output directory (DIR), or --clickhouse URL"),
    (["{dir}/missing"], "no such directory"),
    (["{dir}", "--bind", "nonsense"], "expected HOST:PORT"),
    (["{dir}", "--baseline", "{dir}/assets.json"], "not an otsensor baseline"),
    (["{dir}", "--zones", "{dir}/nothing.toml"], "no such zones file"),
    (["{dir}", "--tls-cert", "{dir}/summary.json"], "cannot use the TLS certificate"),
])
def test_bad_options_are_one_error_line_and_exit_2(plant, args, message):
    directory, _ = plant
    result = otsensor("serve", *[a.format(dir=directory) for a in args], check=False)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("otsensor: error:") and message in lines[0], result.stderr


def test_an_ipv6_loopback_bind(plant):
    directory, _ = plant
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        s = Serve(str(directory), "--bind", "[::1]:0")
    except AssertionError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    try:
        assert s.url.startswith("http://[::1]:")
        assert Client(s.url).get("/api/overview")[0] == 200
    finally:
        s.stop()


def test_a_port_in_use_is_one_error_line(plant):
    directory, _ = plant
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = otsensor("serve", str(directory), "--bind", f"127.0.0.1:{port}", check=False)
    assert result.returncode == 2 and result.stderr.startswith("otsensor: error: cannot listen on")


def test_a_live_directory_is_followed_as_it_changes(plant, tmp_path):
    source, _ = plant
    directory = tmp_path / "live"
    shutil.copytree(source, directory)
    s = Serve(str(directory), "--bind", "127.0.0.1:0")
    try:
        c = Client(s.url)
        total = c.json("/api/alerts?limit=1")["total"]
        lines = (directory / "alerts.jsonl").read_bytes().splitlines(keepends=True)
        extra = json.loads(lines[0])
        extra["id"] = "feedfacefeedfacefeedface"
        extra["ts"] = max(json.loads(line)["ts"] for line in lines) + 3600
        with open(directory / "alerts.jsonl", "ab") as fh:
            fh.write(json.dumps(extra).encode() + b"\n" + b'{"id": "half-writ')     # and half a line
        wait_for(lambda: c.json("/api/alerts?limit=1")["total"] == total + 1)
        assert c.json("/api/alerts?limit=1")["alerts"][0]["id"] == "feedfacefeedfacefeedface"
        # the hour rotates: what was plain is compressed, the plain file starts again
        import gzip
        with gzip.open(directory / "alerts.2026-11-26T10.jsonl.gz", "wb") as gz:
            gz.write((directory / "alerts.jsonl").read_bytes().rsplit(b"\n", 1)[0] + b"\n")
        (directory / "alerts.jsonl").write_bytes(b"")
        wait_for(lambda: c.json("/api/alerts?limit=1")["total"] == total + 1)
        assert c.json("/api/alerts?limit=1")["total"] == total + 1            # nothing counted twice
        # a half-written assets.json keeps the last good inventory; a whole one replaces it
        before = c.json("/api/assets")["assets"]
        (directory / "assets.json").write_text('{"assets": [{"ip": "10.')
        wait_for(lambda: any("assets.json" in p for p in c.json("/api/health")["problems"]))
        assert c.json("/api/assets")["assets"] == before
        doc = json.loads((source / "assets.json").read_text())
        doc["assets"].append(dict(doc["assets"][0], ip="127.10.9.9"))
        (directory / "assets.json.tmp").write_text(json.dumps(doc))
        os.replace(directory / "assets.json.tmp", directory / "assets.json")
        wait_for(lambda: len(c.json("/api/assets")["assets"]) == len(before) + 1)
        assert "127.10.9.9" in {n["id"] for n in c.json("/api/map")["nodes"]}
        # stats.json makes it a live sensor: counters, and rates between two readings
        write_stats(directory, packets=1000, modbus=100, mtime_offset=-10)
        health = c.json("/api/health")
        wait_for(lambda: c.json("/api/health")["live"])
        write_stats(directory, packets=3000, modbus=300, mtime_offset=0)
        wait_for(lambda: c.json("/api/health")["rates"].get("modbus") == pytest.approx(20.0, rel=0.05))
        health = c.json("/api/health")
        assert health["source"] == "stats.json" and health["counters"]["packets"] == 3000
        assert health["counters"]["kernel_dropped"] == 7 and health["state"] == "running"
        assert health["interfaces"][0]["name"] == "eth1"
    finally:
        s.stop()


def write_stats(directory, packets: int, modbus: int, mtime_offset: float) -> None:
    """A stats.json as `otsensor run` writes it (version 1), ``updated`` that many seconds from now."""
    import time
    from datetime import datetime, timezone
    updated = datetime.fromtimestamp(time.time() + mtime_offset, timezone.utc).isoformat().replace("+00:00", "Z")
    capture = {"kernel_received": packets + 7, "kernel_dropped": 7, "freeze_count": 1, "frames_truncated": 0,
               "interfaces": [{"name": "eth1", "kernel_received": packets + 7, "kernel_dropped": 7,
                               "freeze_count": 1, "frames_truncated": 0, "frames": packets}]}
    doc = {"version": 1, "state": "running", "pid": 1, "started": updated, "updated": updated, "uptime_s": 3600,
           "capture": capture, "packets": packets, "bytes": packets * 90, "undecoded_packets": 0, "flows": 9,
           "flows_active": 3, "flows_timed_out": 0, "flows_evicted": 0,
           "records": {"modbus": modbus, "conn": packets // 10}, "alerts": 0, "errors": 0}
    tmp = directory / "stats.json.tmp"
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, directory / "stats.json")


def wait_for(check, timeout: float = 10.0) -> None:
    import time
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("the console did not follow the change")
        time.sleep(0.2)


def test_the_health_of_a_directory_written_by_otsensor_run(tmp_path):
    """`otsensor run -r CAPTURE` writes a live directory (stats.json); the health page reads it as written."""
    directory = tmp_path / "run"
    capture = ROOT / "pcaps" / "modbus_hmi.pcap"
    result = otsensor("run", "-r", str(capture), "-o", str(directory), "-q", check=False)
    if result.returncode or not (directory / "stats.json").exists():
        pytest.skip(f"otsensor run -r is not available: {result.stderr.strip()[:200]}")
    stats = json.loads((directory / "stats.json").read_text())
    s = Serve(str(directory), "--bind", "127.0.0.1:0")
    try:
        health = Client(s.url).json("/api/health")
        assert health["live"] and health["source"] == "stats.json" and health["state"] == stats["state"]
        assert health["counters"]["packets"] == stats["packets"] > 0
        assert health["records"] == {k: float(v) for k, v in stats["records"].items()}
        assert health["rates"]["modbus"] > 0
        assert health["counters"]["kernel_dropped"] is None        # a stream has no kernel counters
        assert Client(s.url).json("/api/assets")["assets"]
    finally:
        s.stop()
