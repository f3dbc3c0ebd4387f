"""The schema on both kinds of server, and the README's queries on both: Debian's clickhouse-server 18.16
with the compatible schema (through the sink), and a current engine (chDB) with the modern one (rows
converted and serialised by the sink's own code and clickhouse-driver), over the same analysed captures."""
from __future__ import annotations

import datetime
import json
import re

import pytest
from otsensor.sensor.clickhouse.connection import resolve
from otsensor.sensor.clickhouse.ddl import Flavour, create_statements
from otsensor.sensor.clickhouse.http import HttpInserter
from otsensor.sensor.clickhouse.jsonrows import JsonRows
from otsensor.sensor.clickhouse.tables import all_tables
from otsensor.sensor.clickhouse.zeek_tables import stored_tables
from otsensor.sensor.config import ClickHouseConfig
from otsensor.sensor.sinks.jsonl import encode_line

from tests.cli import PCAPS, REPO, otsensor
from tests.sensor.clickhouse_modern import create_modern_tables, engine, insert_rows
from tests.sensor.clickhouse_rows import run_rows

SCENARIOS = sorted((PCAPS / "scenarios").glob("*.pcap"))
README = (REPO / "README.md").read_text(encoding="utf-8")
SENSOR = "plant-1"
QUERIES = re.findall(r"```sql\n(.*?)```", README.split("### Queries", 1)[1].split("\n## ", 1)[0], re.DOTALL)


def title(query: str) -> str:
    return query.splitlines()[0].lstrip("- ")[:40]


@pytest.fixture(scope="module")
def analysed(clickhouse, tmp_path_factory):
    out = tmp_path_factory.mktemp("plant") / "out"
    config = out.parent / "sensor.toml"
    config.write_text(f'[clickhouse]\nurl = "{clickhouse.url}"\nsensor_id = "{SENSOR}"\n'
                      f'http_port = {clickhouse.http_port}\n')
    proc = otsensor("analyze", *SCENARIOS, "--zones", PCAPS / "scenarios" / "zones.toml", "-o", out, "-q",
                    "--config", config)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="module")
def modern(analysed, tmp_path_factory):
    directory = tmp_path_factory.mktemp("chdb")
    session = engine(directory / "db")
    tables = all_tables()
    create_modern_tables(session, tables)
    for n, (name, table) in enumerate(tables.items()):
        rows = run_rows(analysed, name)
        if rows:
            insert_rows(session, table, rows, SENSOR, n + 1, directory)
    yield session
    session.close()


def capture_end(out) -> int:
    return int(max(row["ts"] for row in run_rows(out, "conn"))) + 1


def normalise(value):
    """One notation for both engines: times as text, IPv4-mapped addresses as IPv4, 64-bit numbers as numbers."""
    if isinstance(value, (list, tuple)):
        return [normalise(v) for v in value]
    if isinstance(value, datetime.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, str):
        if value.startswith("::ffff:"):
            return value[7:]
        if re.fullmatch(r"-?\d+", value):
            return int(value)
    return value


def test_the_readme_has_the_six_queries():
    assert len(QUERIES) == 6, [title(q) for q in QUERIES]


@pytest.mark.parametrize("query", QUERIES, ids=title)
def test_a_documented_query_gives_the_same_answer_on_old_and_current_servers(query, analysed, clickhouse, modern):
    sql = query.replace("now()", f"toDateTime({capture_end(analysed)})")   # "last week" of the capture
    old = [normalise(list(row)) for row in clickhouse.query(sql)]
    current = [normalise(row) for row in json.loads(modern.query(sql, "JSONCompact").bytes())["data"]]
    assert old, "the scenario captures should give this query an answer"
    # the same rows; their order may differ where it follows addresses (text on 18.16, numbers in IPv6)
    assert sorted(map(repr, old)) == sorted(map(repr, current))


def test_the_modern_schema_dedups_a_batch_sent_twice(analysed, modern, tmp_path):
    table = all_tables()["modbus"]
    rows = run_rows(analysed, "modbus")
    for _ in range(2):   # the same batch, as a retry sends it: same id, same token
        insert_rows(modern, table, rows, "retry", 7, tmp_path, token="7")
    stored = modern.query("SELECT count() FROM otsensor.modbus WHERE sensor_id = 'retry'", "CSV").bytes()
    assert int(stored) == len(rows)


def test_the_compatible_schema_merges_a_batch_sent_twice(analysed, clickhouse):
    table = all_tables()["modbus"]
    rows = run_rows(analysed, "modbus")
    types = {name: typ for _, name, typ in clickhouse.query(
        "SELECT table, name, type FROM system.columns WHERE database = 'otsensor' AND table = 'modbus'")}
    shaper = JsonRows(table, types, "retry", frozenset())      # 18.16 has none of the settings the sink uses
    cfg = ClickHouseConfig(url=clickhouse.url, http_port=clickhouse.http_port)
    inserter = HttpInserter(cfg, resolve(cfg))
    for _ in range(2):   # the same batch, as a retry sends it: the same id, so the same _row values
        inserter.insert("INSERT INTO otsensor.modbus FORMAT JSONEachRow",
                        shaper.body([encode_line(row)[:-1] for row in rows], 7), shaper.settings)
    inserter.close()
    conn = clickhouse.client()
    count = "SELECT count() FROM otsensor.modbus {} WHERE sensor_id = 'retry'"
    assert conn.execute(count.format("FINAL"))[0][0] == len(rows)
    conn.execute("OPTIMIZE TABLE otsensor.modbus FINAL")
    assert conn.execute(count.format(""))[0][0] == len(rows)
    conn.disconnect()


def test_init_adds_the_columns_an_older_table_lacks(clickhouse, analysed):
    clickhouse.query("ALTER TABLE otsensor.modbus DROP COLUMN rtt")
    proc = otsensor("clickhouse", "init", clickhouse.url)
    assert proc.returncode == 0, proc.stderr
    assert "ALTER TABLE `otsensor`.`modbus` ADD COLUMN `rtt` Nullable(Float64) AFTER" in proc.stdout
    again = otsensor("clickhouse", "init", clickhouse.url)
    assert again.returncode == 0 and "0 statement(s) run" in again.stdout


def test_schema_prints_each_form():
    modern = otsensor("clickhouse", "schema").stdout
    assert "`ts` DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1))" in modern and "ENGINE = MergeTree" in modern
    assert "non_replicated_deduplication_window" in modern and "TTL" not in modern
    old = otsensor("clickhouse", "schema", "--server-version", "18.16").stdout
    assert "`ts` Float64" in old and "ENGINE = ReplacingMergeTree" in old and "CODEC" not in old
    assert "ORDER BY (`id.resp_h`, `ts`, `_row`)" in old
    cluster = otsensor("clickhouse", "schema", "--cluster", "fleet", "--retention-days", "365").stdout
    assert "CREATE TABLE IF NOT EXISTS `otsensor`.`modbus_local` ON CLUSTER `fleet`" in cluster
    assert "ReplicatedMergeTree('/clickhouse/tables/{shard}/otsensor/modbus_local', '{replica}')" in cluster
    assert "ENGINE = Distributed(`fleet`, `otsensor`, `modbus_local`, cityHash64(`id.resp_h`))" in cluster
    assert "TTL toDateTime(`ts`) + INTERVAL 365 DAY" in cluster


def test_the_cluster_form_is_valid_for_a_current_engine(modern):
    """A single embedded engine cannot replicate, but it parses every statement of the cluster form."""
    for statement in create_statements(stored_tables(), "otsensor", Flavour(True, "fleet", 30)):
        quoted = statement.replace("\\", "\\\\").replace("'", "\\'")
        assert modern.query(f"SELECT formatQuery('{quoted}')", "CSV").bytes()


def test_retention_is_a_ttl_the_current_engine_applies(modern):
    """With retention_days, every table of the modern form gets a TTL that the engine keeps and enforces:
    a row older than the retention is gone after a merge, a recent one stays."""
    for statement in create_statements(stored_tables(), "kept30", Flavour(True, None, 30)):
        modern.query(statement)
    ttls = modern.query("SELECT count() FROM system.tables WHERE database = 'kept30' "
                        "AND create_table_query LIKE '%TTL toDateTime(%) + toIntervalDay(30)%'", "CSV").bytes()
    assert int(ttls) == len(stored_tables())
    modern.query("INSERT INTO kept30.modbus (sensor_id, `id.resp_h`, ts, _row) VALUES "
                 "('ttl', '10.0.0.1', now64(6) - INTERVAL 40 DAY, 1), ('ttl', '10.0.0.1', now64(6), 2)")
    modern.query("OPTIMIZE TABLE kept30.modbus FINAL")
    assert modern.query("SELECT _row FROM kept30.modbus", "CSV").bytes().strip() == b"2"
