"""Network sinks for a run: built from the configuration and options, closed and reported at the end."""
from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any, TextIO

from otsensor.sensor.config import ClickHouseConfig, ConfigError, SensorConfig, SinkConfig, sinks_from_args
from otsensor.sensor.sinks.errors import SinkError

SetupError = (ConfigError, SinkError)


def build_sinks(args: Any, outdir: str, config: SensorConfig | None = None) -> list[Any]:
    """The syslog sinks of ``--config`` and ``--syslog`` and the ClickHouse sink of ``[clickhouse]`` or
    ``--clickhouse`` (or of ``config``, already read from them), connected once (a TLS or login error fails here).

    Raises ConfigError or SinkError with a one-line message naming the file or sink.
    """
    config = config or sinks_from_args(args)
    sinks: list[Any] = []
    names: set[str] = set()
    try:
        for cfg in config.sinks:
            from otsensor.sensor.sinks.syslog import SyslogSink   # only when a syslog sink is configured
            sink = SyslogSink(cfg, spool_dir_of(cfg, config, outdir))
            if sink.name in names:
                raise SinkError(f"sink {sink.name!r} is configured twice (give one a different name)")
            names.add(sink.name)
            sinks.append(sink)
            sink.start()
        if config.clickhouse is not None:
            sinks.append(_clickhouse_sink(config.clickhouse, config, outdir))
    except BaseException:
        for sink in sinks:
            sink.close()
        raise
    return sinks


def _clickhouse_sink(cfg: ClickHouseConfig, config: SensorConfig, outdir: str) -> Any:
    from otsensor.sensor.clickhouse.process import ProcessSink  # its driver only when used
    from otsensor.sensor.clickhouse.sink import SinkSetupError
    try:
        sink = ProcessSink(cfg, spool_dir_of(cfg, config, outdir))
        sink.start()
    except SinkSetupError as exc:
        raise SinkError(str(exc)) from None
    return sink


def spool_dir_of(cfg: SinkConfig | ClickHouseConfig, config: SensorConfig, outdir: str) -> str:
    """Where a sink's spool directory goes: its own setting, [sinks] spool_dir, or OUTPUT/spool."""
    return cfg.spool_dir or config.spool_dir or os.path.join(outdir, "spool")


def spool_names_in(config: SensorConfig, outdir: str) -> set[str]:
    """The entries of ``outdir`` that the sinks' spools occupy: each run must keep them."""
    base = os.path.realpath(outdir)
    names = set()
    spools = [os.path.join(spool_dir_of(cfg, config, outdir), cfg.name or syslog_name(cfg)) for cfg in config.sinks]
    if config.clickhouse is not None:
        spools.append(spool_dir_of(config.clickhouse, config, outdir))
    for spool in spools:
        spool = os.path.realpath(spool)
        inside = os.path.relpath(spool, base)
        if not inside.startswith(os.pardir):
            names.add(inside.split(os.sep)[0])
    return names


def syslog_name(cfg: SinkConfig) -> str:
    """A syslog sink's default name (its spool's folder)."""
    from otsensor.sensor.sinks.syslog import default_name
    return default_name(cfg)


def close_sinks(sinks: Iterable[Any], records: Any, warnings: list[str]) -> list[dict[str, Any]]:
    """Close every network sink (delivering or spooling what is left) and report on each.

    Messages lost because a spool was full are also written as one ``sink_drops`` row per sink to
    ``records`` (the run's file sink), and each sink that could not deliver everything adds a warning.
    """
    reports = []
    for sink in sinks:
        report = getattr(sink, "report", None)
        if report is None:
            continue
        try:
            sink.close()
        except Exception as exc:   # even a bug here must not cost the outputs written after the sinks close
            warnings.append(f"sink {sink.name!r}: closing failed: {getattr(exc, 'strerror', None) or exc}")
        rep = report()
        reports.append(rep)
        if rep["dropped"]:
            records.write("sink_drops", {"sink": rep["name"], "url": rep["url"], "dropped": rep["dropped"],
                                         "spool_dir": rep["spool_dir"], "reason": "spool full"})
            warnings.append(f"sink {rep['name']!r}: {rep['dropped']} message(s) dropped: spool full "
                            f"(raise spool_max_bytes)")
        if rep.get("spool_error"):
            warnings.append(f"sink {rep['name']!r}: {rep['spool_error']}")
        warnings.extend(f"sink {rep['name']!r}: {problem}" for problem in rep.get("problems", ()))
        if rep["spooled"]:
            warnings.append(f"sink {rep['name']!r}: {rep['spooled']} message(s) not delivered, kept in "
                            f"{rep['spool_dir']} for the next run ({rep['last_error'] or 'receiver unreachable'})")
    return reports


def print_sinks(reports: list[dict[str, Any]], out: TextIO) -> None:
    if not reports:
        return
    out.write("\nSinks\n")
    out.write(f"  {'sink':44} {'sent':>8} {'delivered':>9} {'spooled':>8} {'dropped':>8} {'filtered':>8}\n")
    out.writelines(f"  {r['name'][:44]:44} {r['accepted']:>8,} {r['delivered']:>9,} {r['spooled']:>8,} "
                   f"{r['dropped']:>8,} {r['filtered']:>8,}\n" for r in reports)
