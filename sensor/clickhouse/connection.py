"""Reaching a ClickHouse server: the URL, credentials, TLS, the driver, and the schema the server holds.

clickhouse-driver (the native protocol) is an optional extra, imported only when a ClickHouse sink or
command runs: ``pip install 'otsensor[clickhouse]'``.
"""
from __future__ import annotations

import importlib.util
import ipaddress
import logging
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from otsensor.sensor.clickhouse.ddl import Flavour, create_statements, migration_statements, parse_version
from otsensor.sensor.clickhouse.tables import Table
from otsensor.sensor.config import ClickHouseConfig

SCHEMES = {"clickhouse": (9000, False), "clickhouses": (9440, True)}
PASSWORD_ENV = "OTSENSOR_CLICKHOUSE_PASSWORD"
INSTALL_HINT = "the ClickHouse output needs clickhouse-driver: pip install 'otsensor[clickhouse]'"


class ClickHouseError(Exception):
    """The server cannot be used as configured; the message is one line."""


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    database: str
    user: str
    password: str
    secure: bool

    @property
    def display(self) -> str:
        """The URL without its password (for reports and messages)."""
        scheme = "clickhouses" if self.secure else "clickhouse"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{self.user}@{host}:{self.port}/{self.database}"


def parse_url(url: str) -> tuple[str, int, str, str | None, str | None, bool]:
    """``clickhouse://[user[:password]@]host[:port]/database`` -> host, port, database, user, password, TLS."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ClickHouseError(f"unsupported URL {url!r}: use clickhouse://[user@]host[:port]/database "
                              "(clickhouses:// for TLS)")
    default_port, secure = SCHEMES[scheme]
    try:
        port = parts.port or default_port
    except ValueError:
        raise ClickHouseError(f"bad port in URL {url!r}") from None
    database = parts.path.strip("/")
    if not parts.hostname or not database or "/" in database or parts.query or parts.fragment:
        raise ClickHouseError(f"bad URL {url!r}: expected {scheme}://[user@]host[:port]/database")
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    return parts.hostname, port, database, user, password, secure


def resolve(cfg: ClickHouseConfig) -> Target:
    """Where to connect and as whom: the password from the URL, else ``password_file``, else
    $OTSENSOR_CLICKHOUSE_PASSWORD, else none."""
    host, port, database, user, password, secure = parse_url(cfg.url)
    if cfg.secure is not None:
        if cfg.secure and not secure and urlsplit(cfg.url).port is None:
            port = SCHEMES["clickhouses"][0]
        secure = cfg.secure
    if password is None and cfg.password_file:
        try:
            with open(cfg.password_file, encoding="utf-8") as fh:
                password = fh.readline().rstrip("\r\n")
        except OSError as exc:
            raise ClickHouseError(f"password_file {cfg.password_file}: {exc.strerror or exc}") from None
    if password is None:
        password = os.environ.get(PASSWORD_ENV, "")
    return Target(host, port, database, user or cfg.user or "default", password, secure)


def compression(cfg: ClickHouseConfig, target: Target) -> str:
    """The block compression to use: ``cfg.compression``, where ``auto`` is none for a server on this machine
    (127.0.0.0/8, ::1, localhost: compressing would cost CPU on both ends to save no network) and LZ4 otherwise."""
    if cfg.compression != "auto":
        return cfg.compression
    return "none" if is_loopback(target.host) else "lz4"


def is_loopback(host: str) -> bool:
    """Is ``host`` a loopback address or the name ``localhost``?  Other names are not looked up: a name
    that resolves to this machine is the exception, and compressing to it only costs CPU."""
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def driver() -> Any:
    """The clickhouse_driver module, or ClickHouseError saying how to install it."""
    try:
        import clickhouse_driver
    except ImportError:
        raise ClickHouseError(INSTALL_HINT) from None
    # it logs each failed connection with a traceback; the sink reports failures itself, in one line
    logging.getLogger("clickhouse_driver").disabled = True
    return clickhouse_driver


def check_driver() -> None:
    """ClickHouseError saying how to install the driver when it is missing; without importing it (0.2 s)."""
    if importlib.util.find_spec("clickhouse_driver") is None:
        raise ClickHouseError(INSTALL_HINT)


def client(cfg: ClickHouseConfig, target: Target, database: str | None = None) -> Any:
    """A (lazily connecting) clickhouse_driver.Client for ``target``."""
    options: dict[str, Any] = {
        "port": target.port, "database": database or target.database, "user": target.user,
        "password": target.password, "connect_timeout": cfg.connect_timeout,
        "send_receive_timeout": cfg.send_timeout, "sync_request_timeout": cfg.connect_timeout,
        "client_name": "otsensor",
        "compression": False if compression(cfg, target) == "none" else compression(cfg, target),
        "settings": {"insert_distributed_sync": 1} if cfg.cluster else {},
    }
    if target.secure:
        options.update(secure=True, verify=cfg.verify, ca_certs=cfg.ca_file, certfile=cfg.cert_file,
                       keyfile=cfg.key_file, server_hostname=cfg.server_name)
    return driver().Client(target.host, **options)


def server_version(conn: Any) -> tuple[int, ...]:
    return parse_version(conn.execute("SELECT version()")[0][0])


def input_settings(conn: Any) -> frozenset[str]:
    """The input format settings the server has (sensor/clickhouse/jsonrows.py uses those it knows)."""
    rows = conn.execute("SELECT name FROM system.settings WHERE name LIKE 'input_format_%'")
    return frozenset(name for (name,) in rows)


def existing_columns(conn: Any, database: str) -> dict[str, dict[str, str]]:
    """table -> column -> type, as the server holds them in ``database``."""
    rows = conn.execute("SELECT table, name, type FROM system.columns WHERE database = %(db)s", {"db": database})
    found: dict[str, dict[str, str]] = {}
    for table, name, typ in rows:
        found.setdefault(table, {})[name] = typ
    return found


def ensure_schema(conn: Any, cfg: ClickHouseConfig, target: Target, tables: dict[str, Table],
                  create: bool = True) -> tuple[tuple[int, ...], dict[str, dict[str, str]], list[str]]:
    """Create what is missing and add missing columns (when ``create``); returns the server's version, the
    column types it then holds, and the statements run."""
    version = server_version(conn)
    flavour = Flavour.for_version(version, cfg.cluster, cfg.retention_days)
    ran: list[str] = []
    if create:
        existing = existing_columns(conn, target.database)
        todo = [s for s in create_statements(tables, target.database, flavour)
                if not _exists(s, existing, target.database)]
        todo += migration_statements(tables, target.database, flavour, existing)
        for statement in todo:
            conn.execute(statement)
            ran.append(statement)
    return version, existing_columns(conn, target.database), ran


def _exists(statement: str, existing: dict[str, dict[str, str]], database: str) -> bool:
    """A CREATE ... IF NOT EXISTS whose object is already there need not be sent (ON CLUSTER ones are slow)."""
    head = statement.split("\n", 1)[0]
    if head.startswith("CREATE DATABASE"):
        return bool(existing)
    name = head.split(".", 1)[1].split(" ", 1)[0].strip("`")
    return name in existing
