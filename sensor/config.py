"""The sensor's TOML configuration ([sinks], [detection]) and the command-line equivalents.

Example ``sensor.toml``::

    [sinks]
    spool_dir = "/var/spool/otsensor"        # default: <output>/spool

    [[sinks.syslog]]
    url = "tls://siem.example:6514"
    format = "cef"                           # cef | leef | json | rfc5424
    min_severity = "medium"                  # info | low | medium | high | critical
    records = false                          # true: protocol records too, not only alerts
    ca_file = "/etc/otsensor/ca.pem"
    cert_file = "/etc/otsensor/sensor.pem"   # optional client certificate
    key_file = "/etc/otsensor/sensor.key"
    facility = "local4"
    app_name = "otsensor"
    hostname = "sensor-01"
    structured_data = { "site@32473" = { plant = "north", cell = "3" } }

The file is validated whole against :data:`SENSOR_FILE` (``baselines.schema``): a mistake is one
:class:`ConfigError` naming the file, the section and the key.  A new section is a declaration there.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, replace
from typing import Any

from otsensor.baselines.alerts import SEVERITIES
from otsensor.baselines.documents import read_document
from otsensor.baselines.policy import DETECTION
from otsensor.baselines.schema import (
    BOOLEAN, CIDRS, INTEGER, NUMBER, STRING, TABLE, Key, Section, above, at_least, between, either, list_of,
    one_of, validate,
)
from otsensor.sensor.run_config import CAPTURE, LIVE_DETECTION, RUN   # `otsensor run`'s options ([capture], [run])

FORMATS = ("cef", "leef", "json", "rfc5424")
HEADERS = ("rfc5424", "rfc3164")
CONFIRMS = ("close", "tcp")
FACILITIES = {name: code for code, name in enumerate(
    ("kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp",
     "ntp", "security", "console", "solaris-cron", "local0", "local1", "local2", "local3", "local4", "local5",
     "local6", "local7"))}
SD_NAME = re.compile(r'^[!#-<>-\\^-~]{1,32}$')   # RFC 5424 6.3.2: printable US-ASCII but = SP ] "


class ConfigError(Exception):
    """The configuration file or a sink option is wrong; the message says where."""


@dataclass
class SinkConfig:
    url: str
    format: str = "cef"
    min_severity: str = "info"
    records: bool = False
    name: str | None = None
    header: str = "rfc5424"               # rfc3164: the old BSD header, LF-framed on TCP/TLS
    bom: bool | None = None               # RFC 5424 BOM before MSG; default: only for the plain rfc5424 format
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None        # name checked in the server certificate (default: the URL host)
    facility: str | int = "local4"
    app_name: str = "otsensor"
    hostname: str | None = None           # default: this machine's name
    structured_data: dict[str, dict[str, str]] = field(default_factory=dict)
    sd_id: str = "otsensor@32473"         # element carrying the alert fields in the rfc5424 format
    max_message_size: int = 8192          # UDP: longer messages are truncated (and counted)
    spool_dir: str | None = None
    spool_max_bytes: int = 64 << 20
    connect_timeout: float = 3.0
    drain_timeout: float = 10.0           # at the end of a run: time allowed to deliver what is pending
    confirm: str = "close"                # "tcp" for receivers that never close a half-closed connection
    confirm_every: int = 500              # stream sinks: messages between delivery confirmations
    confirm_interval: float = 2.0         # ... or seconds
    backoff_initial: float = 0.5
    backoff_max: float = 30.0

    @property
    def with_bom(self) -> bool:
        """Receivers route CEF and LEEF on ^CEF: / ^LEEF: and JSON parsers reject a leading BOM, so RFC
        5424's byte order mark (6.4) goes only before the human-readable text of the rfc5424 format."""
        return self.format == "rfc5424" if self.bom is None else self.bom


def facility_code(value: str | int) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value if 0 <= value <= 23 else None
    return FACILITIES.get(str(value).lower())


@dataclass
class ClickHouseConfig:
    """The [clickhouse] section (or --clickhouse URL): where records, alerts, assets and graph edges go."""

    url: str                              # clickhouse://[user[:password]@]host[:port]/database (clickhouses://: TLS)
    secure: bool | None = None            # TLS to the native secure port (9440); default: from the URL scheme
    user: str | None = None               # default: from the URL, else "default"
    password_file: str | None = None      # production: the password from a file (or $OTSENSOR_CLICKHOUSE_PASSWORD)
    ca_file: str | None = None            # TLS: CA bundle that signed the server's certificate (system CAs if unset)
    cert_file: str | None = None          # TLS: optional client certificate ...
    key_file: str | None = None           # ... and its key
    verify: bool = True                   # TLS: check the server's certificate and name
    server_name: str | None = None        # TLS: the name expected in the certificate (default: the URL host)
    sensor_id: str | None = None          # written on every row (default: this machine's name)
    name: str | None = None               # names the sink and its spool directory (default: from the URL)
    cluster: str | None = None            # Replicated local tables + Distributed tables ON CLUSTER this name
    create_tables: bool = True            # create missing tables and add missing columns at start
    retention_days: int = 0               # TTL on servers that have it; 0 keeps rows forever
    batch_rows: int = 50_000              # a table's batch is sent when it holds this many rows ...
    flush_interval: float = 5.0           # ... or is this many seconds old
    piece_bytes: int = 1 << 18            # a batch leaves for the delivery process in pieces of about this
                                          # many bytes while it fills, streamed to old servers (0: whole
                                          # batches only, for a proxy without chunked requests)
    compression: str = "auto"             # auto | lz4 | zstd | none (block compression of each insert; auto:
                                          # none to a server on loopback, LZ4 to any other)
    http_port: int | None = None          # inserts go over HTTP(S) to this port (default 8123, 8443 with TLS)
    max_memory_rows: int = 500_000        # rows waiting in memory before they are written to the spool
    spool_dir: str | None = None
    spool_max_bytes: int = 1 << 30
    connect_timeout: float = 5.0
    send_timeout: float = 60.0
    drain_timeout: float = 30.0           # at the end of a run: time allowed to deliver what is pending
    backoff_initial: float = 0.5
    backoff_max: float = 30.0


@dataclass
class SensorConfig:
    sinks: list[SinkConfig] = field(default_factory=list)
    spool_dir: str | None = None
    clickhouse: ClickHouseConfig | None = None


def _facility(value: str | int) -> str | None:
    return None if facility_code(value) is not None else f"expected a name like local4 or a number 0-23, not {value!r}"


def _sd_id(value: str) -> str | None:
    return None if SD_NAME.match(value) else f"expected an SD-ID (RFC 5424 6.3.2; e.g. name@32473), not {value!r}"


def _structured_data(value: dict[str, Any]) -> str | None:
    for sd_id, params in value.items():
        if not SD_NAME.match(sd_id) or not isinstance(params, dict):
            return f"has a bad SD-ID {sd_id!r} (RFC 5424 6.3.2; e.g. name@32473 = {{ key = \"value\" }})"
        for name in params:
            if not SD_NAME.match(name):
                return f"has a bad PARAM-NAME {name!r} in {sd_id}"
    return None


_PATH, _SECONDS = Key(STRING), Key(NUMBER, above(0))
# One [[sinks.syslog]] table: every field of SinkConfig (a test holds the two together).
SYSLOG = Section(array=True, keys={
    "url": Key(STRING, required="udp://, tcp:// or tls://host:port"),
    "format": Key(STRING, one_of(FORMATS)), "min_severity": Key(STRING, one_of(SEVERITIES)),
    "records": Key(BOOLEAN), "name": Key(STRING), "header": Key(STRING, one_of(HEADERS)), "bom": Key(BOOLEAN),
    "ca_file": _PATH, "cert_file": _PATH, "key_file": _PATH, "server_name": Key(STRING),
    "facility": Key(either(STRING, INTEGER), _facility), "app_name": Key(STRING), "hostname": Key(STRING),
    "structured_data": Key(TABLE, _structured_data), "sd_id": Key(STRING, _sd_id),
    "max_message_size": Key(INTEGER, at_least(1)), "spool_dir": _PATH, "spool_max_bytes": Key(INTEGER, at_least(1)),
    "connect_timeout": _SECONDS, "drain_timeout": Key(NUMBER, at_least(0)), "confirm": Key(STRING, one_of(CONFIRMS)),
    "confirm_every": Key(INTEGER, at_least(1)), "confirm_interval": _SECONDS,
    "backoff_initial": _SECONDS, "backoff_max": _SECONDS,
})
SINKS = Section(keys={"spool_dir": _PATH}, sections={"syslog": SYSLOG})
ZEEK_LOGS = ("ascii", "json", "off")
ZEEK_VERSION = re.compile(r"^(\d+)\.(\d+)$")


def _zeek_version(value: str) -> str | None:
    m = ZEEK_VERSION.match(value)
    if m and (5, 0) <= (int(m[1]), int(m[2])) < (100, 0):
        return None
    return f"expected a Zeek release like 7.0 (5.0 or later), not {value!r}"


# [zeek]: the Zeek logs (--zeek-logs), the Zeek release whose layout they follow, and Site::local_nets
ZEEK = Section(keys={"logs": Key(STRING, one_of(ZEEK_LOGS)), "version": Key(STRING, _zeek_version),
                     "local_nets": Key(list_of(STRING), CIDRS), "private_address_space_is_local": Key(BOOLEAN)})
COMPRESSIONS = ("auto", "lz4", "zstd", "none")
_COUNT = Key(INTEGER, at_least(1))
# [clickhouse]: every field of ClickHouseConfig (a test holds the two together).
CLICKHOUSE = Section(keys={
    "url": Key(STRING, required="clickhouse://host:port/database"), "secure": Key(BOOLEAN), "user": Key(STRING),
    "password_file": _PATH, "ca_file": _PATH, "cert_file": _PATH, "key_file": _PATH, "verify": Key(BOOLEAN),
    "server_name": Key(STRING), "sensor_id": Key(STRING), "name": Key(STRING), "cluster": Key(STRING), "create_tables": Key(BOOLEAN),
    "retention_days": Key(INTEGER, at_least(0)), "batch_rows": Key(INTEGER, between(1, 1 << 20)),
    "flush_interval": _SECONDS, "compression": Key(STRING, one_of(COMPRESSIONS)), "max_memory_rows": _COUNT,
    "piece_bytes": Key(INTEGER, between(0, 1 << 30)), "http_port": Key(INTEGER, between(1, 65535)),
    "spool_dir": _PATH, "spool_max_bytes": _COUNT, "connect_timeout": _SECONDS, "send_timeout": _SECONDS,
    "drain_timeout": Key(NUMBER, at_least(0)), "backoff_initial": _SECONDS, "backoff_max": _SECONDS,
})
# The whole sensor configuration file; a new section is one more entry.
SENSOR_FILE = Section(sections={"sinks": SINKS, "capture": CAPTURE, "run": RUN, "zeek": ZEEK, "clickhouse": CLICKHOUSE,
                                "detection": Section({**DETECTION.keys, **LIVE_DETECTION}, DETECTION.sections)})


def sink_from_table(table: dict[str, Any], where: str) -> SinkConfig:
    """A sink from one [[sinks.syslog]] table (or the --syslog options), ``where`` naming it in messages."""
    validate(table, Section(SYSLOG.keys), where, ConfigError)
    return SinkConfig(**table)


def read_config(path: str) -> dict[str, Any]:
    """The sensor configuration file as validated data; ConfigError naming the file when it cannot be used."""
    data = read_document(path, "configuration file", "TOML", lambda raw: tomllib.loads(raw.decode()), ConfigError)
    validate(data, SENSOR_FILE, path, ConfigError)
    return data


def load_config(path: str) -> SensorConfig:
    data = read_config(path)
    sinks = data.get("sinks", {})
    clickhouse = data.get("clickhouse")
    return SensorConfig(sinks=[SinkConfig(**table) for table in sinks.get("syslog", [])],
                        spool_dir=sinks.get("spool_dir"),
                        clickhouse=ClickHouseConfig(**clickhouse) if clickhouse is not None else None)


def zeek_from_args(args: Any) -> Any:
    """The Zeek log options (sensor/zeek/sink.py ZeekOptions) of ``--zeek-logs`` and ``[zeek]``, or None when
    the Zeek logs are not wanted.  Raises ConfigError."""
    from otsensor.sensor.zeek.sink import ZeekOptions

    table = read_config(args.config).get("zeek", {}) if getattr(args, "config", None) else {}
    logs = getattr(args, "zeek_logs", None) or table.get("logs", "off")
    if logs == "off":
        return None
    major, minor = table.get("version", "7.2").split(".")
    return ZeekOptions(format=logs, version=(int(major), int(minor)), local_nets=list(table.get("local_nets", [])),
                       private_address_space_is_local=table.get("private_address_space_is_local", True))


def sinks_from_args(args: Any) -> SensorConfig:
    """The sinks named by ``--config`` and by ``--syslog`` options (command-line sinks come last); a
    ``--clickhouse`` URL replaces the file's [clickhouse] url and keeps its other settings."""
    config = load_config(args.config) if getattr(args, "config", None) else SensorConfig()
    for url in getattr(args, "syslog", None) or ():
        config.sinks.append(sink_from_table(
            {"url": url, "format": args.syslog_format, "min_severity": args.syslog_min_severity,
             "records": bool(args.syslog_records)}, f"--syslog {url}"))
    url = getattr(args, "clickhouse", None)
    if url:
        config.clickhouse = ClickHouseConfig(url) if config.clickhouse is None else \
            replace(config.clickhouse, url=url)
    if getattr(args, "spool_dir", None):
        config.spool_dir = args.spool_dir
    return config
