"""Alerts per second through the syslog sink, per transport and format, against a real rsyslogd on loopback.

    python bench/syslog_bench.py [--alerts 5000] [--repeat 3]

Starts rsyslogd (see tests/sensor/syslog_receiver.py: UDP, TCP and TLS inputs
writing every message to a file) with certificates made by certtool, then for
each transport (udp, tcp, tls) and payload format (cef, leef, json, rfc5424)
sends ``--alerts`` alerts through a fresh :class:`SyslogSink` (spool
included) and times ``write`` for all of them plus ``close`` (which waits for
the receiver to confirm the last ones).  It counts what rsyslog wrote, so a
UDP loss shows.  In the same run, the reference: building the messages only
(format + syslog header, no spool, no socket).  Best of ``--repeat`` runs.
Needs rsyslog, rsyslog-gnutls and gnutls-bin (certtool).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from otsensor.sensor.config import SinkConfig
from otsensor.sensor.sinks.syslog import SyslogSink
from tests.sensor.alert_samples import make_alert
from tests.sensor.syslog_receiver import Rsyslog, make_certs, missing_tools

FORMATS = ("cef", "leef", "json", "rfc5424")
TRANSPORTS = ("udp", "tcp", "tls")


def format_only(rows: list[dict], fmt: str, spool: str) -> float:
    sink = SyslogSink(SinkConfig(url="udp://127.0.0.1:9", format=fmt), spool)
    started = time.perf_counter()
    for row in rows:
        sink.message("alerts", row)
    elapsed = time.perf_counter() - started
    sink.close()
    return elapsed


def send(rs: Rsyslog, certs, kind: str, fmt: str, rows: list[dict], spool: str, app: str) -> tuple[float, dict]:
    cfg = SinkConfig(url=rs.url(kind), format=fmt, app_name=app, ca_file=certs.ca)
    sink = SyslogSink(cfg, spool)
    sink.start()
    started = time.perf_counter()
    for row in rows:
        sink.write("alerts", row)
    sink.close()
    return time.perf_counter() - started, sink.report()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--alerts", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    reason = missing_tools()
    if reason:
        print(f"skipped: {reason}")
        return 0
    rows = [make_alert(i, message=f"controller {i} stopped | key=value é").to_dict() for i in range(args.alerts)]
    with tempfile.TemporaryDirectory() as tmp:
        certs = make_certs(Path(tmp) / "certs")
        rs = Rsyslog(Path(tmp) / "rsyslog", certs)
        rs.start()
        try:
            table = run_all(rs, certs, rows, Path(tmp), args.repeat)
        finally:
            rs.stop()
    print_table(table, args.alerts)
    return 0


def run_all(rs: Rsyslog, certs, rows: list[dict], tmp: Path, repeat: int) -> dict:
    """Best time per cell; the rounds interleave every cell, so a busy moment on the machine is spread."""
    best: dict = {}
    arrived: dict = {}
    for r in range(repeat):
        for fmt in FORMATS:
            elapsed = format_only(rows, fmt, str(tmp / f"ref-{fmt}-{r}"))
            best[("format only", fmt)] = min(elapsed, best.get(("format only", fmt), elapsed))
            arrived[("format only", fmt)] = len(rows)
            for kind in TRANSPORTS:
                app = f"b{kind}{fmt}{r}"
                elapsed, report = send(rs, certs, kind, fmt, rows, str(tmp / f"spool-{app}"), app)
                assert report["delivered"] == len(rows), report
                got = len(rs.wait_for(kind, app, len(rows), timeout=10))
                if elapsed < best.get((kind, fmt), float("inf")):
                    best[(kind, fmt)], arrived[(kind, fmt)] = elapsed, got
    return {key: (len(rows) / best[key], len(rows), arrived[key]) for key in best}


def print_table(table: dict, n: int) -> None:
    print(f"\nsyslog sink throughput, {n} alerts per run, alerts/s (best of runs)\n")
    print(f"{'sink':12}" + "".join(f"{fmt:>10}" for fmt in FORMATS))
    losses = []
    for kind in ("format only", *TRANSPORTS):
        print(f"{kind:12}" + "".join(f"{table[(kind, fmt)][0]:>10,.0f}" for fmt in FORMATS))
        losses += [f"{kind}/{fmt}: {table[(kind, fmt)][2]} of {n}" for fmt in FORMATS
                   if table[(kind, fmt)][2] != n]
    print("\nwritten by rsyslog: " + ("all, everywhere" if not losses else "; ".join(losses)
                                      + " (UDP has no delivery guarantee)"))


if __name__ == "__main__":
    sys.exit(main())
