"""`otsensor serve DIR`: options, checks that fail with one clear line, and the server's start and stop."""
from __future__ import annotations

import argparse
import os
import signal
import ssl
import sys
import threading
from typing import Any

from otsensor.baselines.learn import BaselineError, load_baseline
from otsensor.baselines.zones import Zones, ZonesError, load_zones

DEFAULT_BIND = "127.0.0.1:8800"
TOKEN_ENV = "OTSENSOR_CONSOLE_TOKEN"


class ServeError(Exception):
    """A bad option or file: one line, exit status 2."""


def add_serve_command(sub: Any) -> None:
    p = sub.add_parser("serve", help="a local web console over an output directory or ClickHouse (map, inventory, "
                                     "alerts)")
    p.add_argument("directory", metavar="DIR", nargs="?",
                   help="an output directory of otsensor analyze or run (optional with --clickhouse: then it gives "
                        "the health page's stats.json and summary.json)")
    p.add_argument("--bind", default=DEFAULT_BIND, metavar="HOST:PORT",
                   help=f"where to listen (default {DEFAULT_BIND}; any non-loopback address requires a token)")
    p.add_argument("--baseline", metavar="BASELINE.json",
                   help="the baseline to show and to accept alerts into (a new file is written beside it)")
    p.add_argument("--zones", metavar="ZONES.toml", help="zones file for the map (default: conn.jsonl's zone tags)")
    p.add_argument("--read-only", action="store_true", help="no state-changing action (no accept into baseline)")
    p.add_argument("--token-file", metavar="FILE",
                   help=f"the access token (else ${TOKEN_ENV}; else one is generated and printed once)")
    p.add_argument("--tls-cert", metavar="CERT.pem", help="serve HTTPS with this certificate chain")
    p.add_argument("--tls-key", metavar="KEY.pem", help="the certificate's private key")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME[:PORT]",
                   help="another name this console may be reached by on loopback (e.g. behind an SSH tunnel)")
    p.add_argument("--clickhouse", metavar="URL",
                   help="read assets, graph, alerts and written values from the tables of the ClickHouse sink: "
                        "clickhouse://[user@]host[:port]/database (password: --config's [clickhouse], "
                        "password_file, or $OTSENSOR_CLICKHOUSE_PASSWORD)")
    p.add_argument("--config", metavar="SENSOR.toml",
                   help="sensor configuration whose [clickhouse] gives credentials and TLS for --clickhouse")
    p.add_argument("--sensor", metavar="ID", help="with --clickhouse: only this sensor_id's rows (default: all)")
    p.add_argument("-v", "--verbose", action="store_true", help="log every request on stderr")
    p.set_defaults(func=cmd_serve)


def parse_bind(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ServeError(f"--bind {text!r}: expected HOST:PORT, e.g. 127.0.0.1:8800 or [::1]:8800")
    return host.strip("[]"), int(port)


def read_token(args: argparse.Namespace) -> str | None:
    if args.token_file:
        try:
            with open(args.token_file, encoding="utf-8") as fh:
                token = fh.read().strip()
        except OSError as exc:
            raise ServeError(f"{args.token_file}: cannot read the token: {exc.strerror or exc}") from None
        if len(token) < 16:
            raise ServeError(f"{args.token_file}: a token must be at least 16 characters")
        return token
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token and len(token) < 16:
        raise ServeError(f"${TOKEN_ENV}: a token must be at least 16 characters")
    return token or None


def tls_context(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    if not cert and not key:
        return None
    if not cert:
        raise ServeError("--tls-key needs --tls-cert")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ServeError(f"cannot use the TLS certificate {cert}: {getattr(exc, 'strerror', None) or exc}") from None
    return ctx


def check_directory(directory: str) -> None:
    if not os.path.isdir(directory):
        raise ServeError(f"{directory}: no such directory (give the -o directory of otsensor analyze or run)")
    if not os.access(directory, os.R_OK | os.X_OK):
        raise ServeError(f"{directory}: cannot read the directory")


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        return serve(args)
    except ServeError as exc:
        sys.stderr.write(f"otsensor: error: {exc}\n")
        return 2


def serve(args: argparse.Namespace) -> int:
    from otsensor.sensor.console.api import Console
    from otsensor.sensor.console.baseline_view import BaselineFiles
    from otsensor.sensor.console.security import Guard, is_loopback, new_token
    from otsensor.sensor.console.server import ConsoleServer
    from otsensor.sensor.console.store import DirStore, Store

    if not args.directory and not args.clickhouse:
        raise ServeError("give an output directory (DIR), or --clickhouse URL, or both")
    if (args.sensor or args.config) and not args.clickhouse:
        raise ServeError("--sensor and --config go with --clickhouse URL")
    if args.directory:
        check_directory(args.directory)
    host, port = parse_bind(args.bind)
    zones = _zones(args.zones)
    if args.baseline:
        try:
            load_baseline(args.baseline)
        except BaselineError as exc:
            raise ServeError(str(exc)) from None
    tls = tls_context(args.tls_cert, args.tls_key)
    token = read_token(args)
    generated = token is None and not is_loopback(host)
    if generated:
        token = new_token()
    guard = Guard(host, port, token, tls is not None, frozenset(h.lower() for h in args.allow_host))
    store: Store = DirStore(args.directory, zones) if not args.clickhouse else clickhouse_store(args, zones)
    source = getattr(store, "source", None) or args.directory
    console = Console(store, args.directory, BaselineFiles(args.baseline, args.directory), args.read_only,
                      guard.csrf_token, source)
    try:
        server = ConsoleServer((host, port), console, guard, tls, args.verbose)
    except OSError as exc:
        raise ServeError(f"cannot listen on {args.bind}: {exc.strerror or exc}") from None
    guard.port = server.server_address[1]
    # read the directory and lay out the map now, not on the first request (100,000 alerts take seconds)
    threading.Thread(target=_preload, args=(store,), name="console-preload", daemon=True).start()
    _announce(guard, source, generated, tls is not None, args.read_only)
    signal.signal(signal.SIGTERM, _stop)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def clickhouse_store(args: argparse.Namespace, zones: Zones | None) -> Any:
    """The ClickHouse store, connected and checked now: a bad URL, password or server is one error line."""
    from dataclasses import replace

    from otsensor.sensor.clickhouse.connection import ClickHouseError
    from otsensor.sensor.config import ClickHouseConfig, ConfigError, load_config
    from otsensor.sensor.console.chstore import ClickHouseStore, open_reader

    try:
        base = load_config(args.config).clickhouse if args.config else None
    except ConfigError as exc:
        raise ServeError(str(exc)) from None
    cfg = replace(base, url=args.clickhouse) if base is not None else ClickHouseConfig(args.clickhouse)
    try:
        reader, engines = open_reader(cfg)
    except ClickHouseError as exc:
        raise ServeError(f"--clickhouse: {exc}") from None
    return ClickHouseStore(reader, engines, args.sensor, args.directory, zones)


def _preload(store: Any) -> None:
    """Lay out the map before the first request; a database away now is reported by the requests instead."""
    from otsensor.sensor.console.store import StoreUnavailable
    try:
        store.network_map()
    except StoreUnavailable:
        pass


def _zones(path: str | None) -> Zones | None:
    if not path:
        return None
    try:
        return load_zones(path)
    except ZonesError as exc:
        raise ServeError(str(exc)) from None


def _stop(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt   # SIGTERM ends the console as Ctrl-C does: close the socket, exit 0


def _announce(guard: Any, directory: str | None, generated: bool, tls: bool, read_only: bool) -> None:
    scheme = "https" if tls else "http"
    host = f"[{guard.bind_host}]" if ":" in guard.bind_host else guard.bind_host
    url = f"{scheme}://{host}:{guard.port}/"
    print(f"otsensor: console for {directory} on {url}" + (" (read-only)" if read_only else ""), flush=True)
    if generated:
        # printed once, never written anywhere: whoever started the console hands it on
        print(f"otsensor: access token (shown once): {guard.token}", flush=True)
        print(f"otsensor: open {url}?token={guard.token}", flush=True)
    elif guard.token:
        print("otsensor: the console requires the configured token", flush=True)
    if not guard.local and not tls:
        sys.stderr.write("otsensor: warning: serving on a network address without TLS: the token and the data "
                         "cross the network in clear (use --tls-cert/--tls-key)\n")
    sys.stdout.flush()
