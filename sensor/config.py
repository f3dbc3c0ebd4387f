"""The sensor's TOML configuration (sinks for now) and the command-line equivalents.

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

A mistake is a :class:`ConfigError` naming the file, the sink and the key.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, fields
from typing import Any

from otsensor.baselines.alerts import SEVERITIES
from otsensor.baselines.documents import read_document

FORMATS = ("cef", "leef", "json", "rfc5424")
HEADERS = ("rfc5424", "rfc3164")
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

    def validate(self, where: str) -> None:
        def bad(key: str, why: str) -> ConfigError:
            return ConfigError(f"{where}: {key} {why}")
        if self.format not in FORMATS:
            raise bad("format", f"must be one of {', '.join(FORMATS)}, not {self.format!r}")
        if self.min_severity not in SEVERITIES:
            raise bad("min_severity", f"must be one of {', '.join(SEVERITIES)}, not {self.min_severity!r}")
        if self.header not in HEADERS:
            raise bad("header", f"must be one of {', '.join(HEADERS)}, not {self.header!r}")
        if self.confirm not in ("close", "tcp"):
            raise bad("confirm", f"must be close or tcp, not {self.confirm!r}")
        if facility_code(self.facility) is None:
            raise bad("facility", f"must be a name like local4 or a number 0-23, not {self.facility!r}")
        for sd_id, params in self.structured_data.items():
            if not SD_NAME.match(sd_id) or not isinstance(params, dict):
                raise bad("structured_data", f"has a bad SD-ID {sd_id!r} (RFC 5424 6.3.2; e.g. name@32473)")
            for name in params:
                if not SD_NAME.match(name):
                    raise bad("structured_data", f"has a bad PARAM-NAME {name!r} in {sd_id}")
        if not SD_NAME.match(self.sd_id):
            raise bad("sd_id", f"is not a valid SD-ID: {self.sd_id!r}")
        for key in ("max_message_size", "spool_max_bytes", "confirm_every"):
            if getattr(self, key) <= 0:
                raise bad(key, "must be positive")


def facility_code(value: str | int) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value if 0 <= value <= 23 else None
    return FACILITIES.get(str(value).lower())


@dataclass
class SensorConfig:
    sinks: list[SinkConfig] = field(default_factory=list)
    spool_dir: str | None = None


_SINK_KEYS = {f.name: f for f in fields(SinkConfig)}
_KEY_TYPES: dict[str, type | tuple[type, ...]] = {
    "records": bool, "bom": bool, "facility": (str, int), "structured_data": dict,
    "max_message_size": int, "spool_max_bytes": int, "confirm_every": int,
    "connect_timeout": (int, float), "drain_timeout": (int, float), "confirm_interval": (int, float),
    "backoff_initial": (int, float), "backoff_max": (int, float),
}


def sink_from_table(table: dict[str, Any], where: str) -> SinkConfig:
    unknown = sorted(set(table) - set(_SINK_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    if "url" not in table:
        raise ConfigError(f"{where}: url is required (udp://, tcp:// or tls://host:port)")
    try:
        cfg = SinkConfig(**table)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    for key, value in table.items():
        if not isinstance(value, _KEY_TYPES.get(key, str)) or isinstance(value, bool) and key not in ("records", "bom"):
            raise ConfigError(f"{where}: {key} has the wrong type ({type(value).__name__})")
    cfg.validate(where)
    return cfg


def read_toml(path: str) -> dict[str, Any]:
    """The sensor configuration file as data; ConfigError naming the file when it cannot be read."""
    return read_document(path, "configuration file", "TOML", lambda raw: tomllib.loads(raw.decode()), ConfigError)


def load_config(path: str) -> SensorConfig:
    data = read_toml(path)
    sinks = data.get("sinks", {})
    if not isinstance(sinks, dict):
        raise ConfigError(f"{path}: [sinks] must be a table")
    out = SensorConfig(spool_dir=sinks.get("spool_dir"))
    syslog = sinks.get("syslog", [])
    if not isinstance(syslog, list):
        raise ConfigError(f"{path}: sinks.syslog must be an array of tables ([[sinks.syslog]])")
    for i, table in enumerate(syslog, 1):
        out.sinks.append(sink_from_table(dict(table), f"{path}: [[sinks.syslog]] #{i}"))
    return out


def sinks_from_args(args: Any) -> SensorConfig:
    """The sinks named by ``--config`` and by ``--syslog`` options (command-line sinks come last)."""
    config = load_config(args.config) if getattr(args, "config", None) else SensorConfig()
    for url in getattr(args, "syslog", None) or ():
        config.sinks.append(sink_from_table(
            {"url": url, "format": args.syslog_format, "min_severity": args.syslog_min_severity,
             "records": bool(args.syslog_records)}, f"--syslog {url}"))
    if getattr(args, "spool_dir", None):
        config.spool_dir = args.spool_dir
    return config
