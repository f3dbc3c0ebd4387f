"""`otsensor clickhouse schema` (print the DDL) and `otsensor clickhouse init URL` (create and migrate)."""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from typing import Any


def add_command(sub: Any) -> None:
    from otsensor.sensor.cli import ArgumentParser
    p = sub.add_parser("clickhouse", help="the ClickHouse schema: print it, or create and migrate it on a server")
    cmds = p.add_subparsers(dest="clickhouse_command", metavar="ACTION", parser_class=ArgumentParser)
    cmds.required = True
    s = cmds.add_parser("schema", help="print the DDL of every table (no server needed)")
    s.add_argument("--database", default="otsensor", help="database the tables go in")
    s.add_argument("--server-version", default="24.8", metavar="X.Y",
                   help="the server the DDL is for: before 22.3 the compatible form (Debian's 18.16 is one)")
    _add_layout_options(s)
    s.set_defaults(func=cmd_schema)
    i = cmds.add_parser("init", help="create the database and tables on a server, and add columns older tables lack")
    i.add_argument("url", metavar="URL", help="clickhouse://[user@]host[:port]/database (clickhouses:// for TLS)")
    i.add_argument("--config", metavar="SENSOR.toml",
                   help="sensor configuration whose [clickhouse] gives TLS, credentials, cluster and retention")
    _add_layout_options(i)
    i.set_defaults(func=cmd_init)


def _add_layout_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cluster", metavar="NAME",
                   help="ReplicatedMergeTree local tables and Distributed tables ON CLUSTER NAME")
    p.add_argument("--retention-days", type=int, metavar="DAYS",
                   help="TTL: rows older than this are deleted (servers from 22.3; default: kept forever)")


def _fail(message: str) -> int:
    sys.stderr.write(f"otsensor: error: {message}\n")
    return 2


def cmd_schema(args: argparse.Namespace) -> int:
    from otsensor.sensor.clickhouse.ddl import Flavour, create_statements, parse_version
    from otsensor.sensor.clickhouse.zeek_tables import stored_tables

    version = parse_version(args.server_version)
    if not version:
        return _fail(f"--server-version {args.server_version!r}: expected a version such as 24.8")
    flavour = Flavour.for_version(version, args.cluster, args.retention_days or 0)
    sys.stdout.write("".join(f"{s};\n\n" for s in create_statements(stored_tables(), args.database, flavour)))
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from otsensor.sensor.clickhouse import connection
    from otsensor.sensor.clickhouse.ddl import MODERN_FROM
    from otsensor.sensor.clickhouse.zeek_tables import stored_tables
    from otsensor.sensor.config import ClickHouseConfig, ConfigError, load_config

    try:
        base = load_config(args.config).clickhouse if args.config else None
    except ConfigError as exc:
        return _fail(str(exc))
    cfg = replace(base, url=args.url) if base is not None else ClickHouseConfig(args.url)
    if args.cluster is not None:
        cfg = replace(cfg, cluster=args.cluster)
    if args.retention_days is not None:
        cfg = replace(cfg, retention_days=args.retention_days)
    try:
        target = connection.resolve(cfg)
        conn = connection.client(cfg, target, database="default")
        try:
            version, _, ran = connection.ensure_schema(conn, cfg, target, stored_tables())
        finally:
            conn.disconnect()
    except connection.ClickHouseError as exc:
        return _fail(str(exc))
    except Exception as exc:  # noqa: BLE001 - the driver's errors (network, login, DDL) as one line
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return _fail(f"{target.display}: {first}")
    form = "modern" if version >= MODERN_FROM else "compatible"
    sys.stdout.write(f"{target.display}: ClickHouse {'.'.join(map(str, version))}, {form} schema; "
                     f"{len(ran)} statement(s) run\n")
    for statement in ran:
        sys.stdout.write("  " + statement.split("\n", 1)[0] + "\n")
    return 0
