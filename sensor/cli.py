"""The `otsensor` command line."""
from __future__ import annotations

import argparse
import gc
import os
import sys
from typing import Any, Callable

from otsensor.sensor import __version__


class HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default, unless the text already says it or it has none worth
    showing (flags, and options that are unset by default)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if shows_default(action.default) and "default" not in text:
            text += " (default: %(default)s)"
        return text


def shows_default(default: Any) -> bool:
    return default is not None and default is not argparse.SUPPRESS and not isinstance(default, bool) \
        and default != []


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad option is one line on stderr and exit status 2 (no usage dump)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"otsensor: error: {message} (see '{self.prog} --help')\n")
        sys.exit(2)


def build_parser(command: str | None = None) -> ArgumentParser:
    """The command line. With ``command`` (one of COMMANDS) only that command's options are built, so a
    run imports what its own command needs and not every command's modules (the live capture, the web
    console, ClickHouse); any other value builds them all (for ``--help`` and the list of commands)."""
    parser = ArgumentParser(prog="otsensor", description="Passive OT network security sensor.")
    parser.add_argument("--version", action="version", version=f"otsensor {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    sub.required = True
    adders = [COMMANDS[command]] if command in COMMANDS else list(dict.fromkeys(COMMANDS.values()))
    for add in adders:
        add(sub)
    return parser


def add_analyze_command(sub: Any) -> None:
    p = sub.add_parser("analyze", help="analyse pcap/pcapng files and write records, inventory and graph")
    p.add_argument("captures", nargs="+", metavar="CAPTURE", help="pcap or pcapng files (gzip allowed)")
    p.add_argument("-o", "--output", required=True, metavar="DIR",
                   help="output directory (created if missing); each run replaces the previous run's results")
    p.add_argument("--force", action="store_true",
                   help="write into DIR even though it holds files otsensor did not write (they are left alone)")
    p.add_argument("-q", "--quiet", action="store_true", help="no summary on the terminal")
    p.add_argument("--progress", action="store_true", help="show the progress bar even when stderr is not a terminal")
    p.add_argument("--workers", type=positive_int, default=1, metavar="N",
                   help="processes sharing the flows (by a hash of each flow's endpoints), merged into the same "
                        "outputs as one process writes; --max-flows and --flow-memory are divided among them, so "
                        "past those limits evictions may differ from one process (not with --zeek-logs)")
    add_analysis_options(p)
    add_sink_options(p)
    p.set_defaults(func=cmd_analyze)


def add_run_command(sub: Any) -> None:
    from otsensor.sensor.run import add_command
    add_command(sub)


def add_baseline_commands(sub: Any) -> None:
    from otsensor.sensor.baseline_cli import add_commands
    add_commands(sub, positive_int)


def add_serve_command(sub: Any) -> None:
    from otsensor.sensor.console.command import add_serve_command as add
    add(sub)


def add_health_command(sub: Any) -> None:
    from otsensor.sensor.healthcheck import add_command
    add_command(sub)


def add_clickhouse_command(sub: Any) -> None:
    from otsensor.sensor.clickhouse.command import add_command
    add_command(sub)


def add_analysis_options(p: argparse.ArgumentParser) -> None:
    """Flow limits and detection inputs, the same for `analyze` and `run`."""
    p.add_argument("--max-flows", type=positive_int, default=200_000, metavar="N",
                   help="flows held at once before the least recently active are evicted")
    p.add_argument("--flow-memory", type=flow_memory, default=512 << 20, metavar="BYTES",
                   help="memory for open flows, half for their state and half for out-of-order TCP bytes; past it "
                        "the least recently active flows are evicted (at least 1 MiB; default: 536870912, 512 MiB)")
    p.add_argument("--stream-buffer", type=positive_int, default=256 << 10, metavar="BYTES",
                   help="out-of-order bytes held per TCP direction before a gap is declared")
    p.add_argument("--tcp-timeout", type=positive_float, default=300, metavar="SECONDS",
                   help="a TCP connection idle this long (capture time) is finished and written to conn.jsonl")
    p.add_argument("--udp-timeout", type=positive_float, default=60, metavar="SECONDS",
                   help="the same for UDP, ICMP and other IP protocols")
    p.add_argument("--zones", metavar="ZONES.toml", help="zones and conduits (tags conn.jsonl, enables boundary rules)")
    p.add_argument("--baseline", metavar="BASELINE.json", help="baseline from 'otsensor baseline learn'")
    p.add_argument("--config", metavar="SENSOR.toml",
                   help="sensor configuration ([detection] allowances, sinks, [zeek] log settings)")
    p.add_argument("--graphml", action="store_true", help="also write graph.graphml (for Gephi and yEd)")
    p.add_argument("--zeek-logs", nargs="?", const="ascii", choices=("ascii", "json"), metavar="FORMAT",
                   help="also write DIR/zeek/<log>.log as Zeek with the ICSNPP packages writes them: Zeek's TSV "
                        "format (ascii, the default) or its JSON form (--zeek-logs=json)")


def limits_from_args(args: argparse.Namespace):
    from otsensor.sensor.pipeline import Limits
    return Limits(max_flows=args.max_flows, tcp_timeout=args.tcp_timeout, udp_timeout=args.udp_timeout,
                  stream_buffer=args.stream_buffer, flow_memory=args.flow_memory)


def positive(kind: type, noun: str):
    """An argparse type: a number of ``kind`` above zero, with a one-line complaint otherwise."""
    def convert(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {noun}: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
        return value
    return convert


positive_int = positive(int, "a whole number")
positive_float = positive(float, "a number")


def flow_memory(text: str) -> int:
    """--flow-memory: a budget too small to hold a few hundred flows is a mistake, not a setting."""
    value = positive_int(text)
    if value < 1 << 20:
        raise argparse.ArgumentTypeError(f"must be at least 1048576 (1 MiB): {text!r}")
    return value


def add_sink_options(parser: argparse.ArgumentParser) -> None:
    """Syslog sinks on the command line; --config can define more ([[sinks.syslog]], see sensor/config.py)."""
    g = parser.add_argument_group("alerts to a SIEM (syslog)")
    g.add_argument("--syslog", action="append", metavar="URL",
                   help="send alerts to udp://HOST:PORT, tcp://HOST:PORT or tls://HOST:PORT (repeatable)")
    g.add_argument("--syslog-format", choices=("cef", "leef", "json", "rfc5424"), default="cef",
                   help="payload of the --syslog sinks")
    g.add_argument("--syslog-min-severity", choices=("info", "low", "medium", "high", "critical"), default="info",
                   help="send only alerts at least this severe; info sends them all")
    g.add_argument("--syslog-records", action="store_true", help="send protocol records too, not only alerts")
    g.add_argument("--spool-dir", metavar="DIR",
                   help="where undelivered messages wait for the receiver (default: DIR/spool, kept from run to run)")
    c = parser.add_argument_group("records, alerts, assets and graph to ClickHouse")
    c.add_argument("--clickhouse", metavar="URL",
                   help="clickhouse://[user@]host[:port]/database (clickhouses:// for TLS); every log to a table "
                        "of its name ([clickhouse] in --config for the other settings; put passwords there)")


def cmd_analyze(args: argparse.Namespace) -> int:
    from otsensor.sensor.analyze import analyze
    from otsensor.sensor.baseline_cli import _fail as fail
    from otsensor.sensor.baseline_cli import load_detection_inputs
    from otsensor.sensor.config import sinks_from_args, zeek_from_args
    from otsensor.sensor.sinks.outdir import OutputDir, OutputError
    from otsensor.sensor.sinks.outputs import SetupError, build_sinks, spool_names_in

    inputs = load_detection_inputs(args)
    if isinstance(inputs, str):
        return fail(inputs)
    collect_less()
    zones, baseline, detection = inputs
    try:
        config = sinks_from_args(args)
        zeek = zeek_from_args(args)
        if zeek is not None and args.workers > 1:
            return fail("--zeek-logs needs --workers 1 (the Zeek logs follow each flow's packets in one process)")
        with OutputDir.claim(args.output, args.force, spool_names_in(config, args.output)) as output:
            sinks = build_sinks(args, args.output, config)
            result = analyze(args.captures, args.output, limits=limits_from_args(args), quiet=args.quiet,
                             progress=True if args.progress else None, zones=zones, baseline=baseline,
                             detection=detection, extra_sinks=sinks, output=output,
                             graphml=args.graphml, zeek=zeek, workers=args.workers)
    except (OutputError, *SetupError) as exc:
        return fail(str(exc))
    except OSError as exc:
        return fail(f"{args.output}: cannot write the output: {exc.strerror or exc}")
    return result.exit_code


# Each command and what adds it to the parser, in the order `otsensor --help` lists them (baseline_cli adds two).
COMMANDS: dict[str, Callable[[Any], None]] = {
    "analyze": add_analyze_command, "run": add_run_command, "baseline": add_baseline_commands,
    "zones": add_baseline_commands, "serve": add_serve_command, "health": add_health_command,
    "clickhouse": add_clickhouse_command}


def collect_less() -> None:
    """Run the cyclic garbage collector after 10,000 new containers rather than Python's 700.

    A run allocates a row, a record and its op for every PDU, almost none of them in reference cycles,
    so the young-generation collections found little and cost 3% of a run's CPU (0.15 s of the 200k-packet
    mixed bench capture; 0.03 s at 10,000). Cyclic garbage still goes, just in larger batches."""
    gc.set_threshold(10_000, *gc.get_threshold()[1:])


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    args = build_parser(words[0] if words else None).parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        sys.stderr.write("otsensor: interrupted\n")
        return 130
    except Exception as exc:  # a bug: one clear line (the traceback on request), never a wall of text
        if os.environ.get("OTSENSOR_DEBUG"):
            raise
        sys.stderr.write(f"otsensor: internal error: {type(exc).__name__}: {exc} "
                         "(set OTSENSOR_DEBUG=1 for the traceback)\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
