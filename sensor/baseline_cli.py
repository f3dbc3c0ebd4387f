"""`otsensor baseline learn|diff|accept` and `otsensor zones suggest`."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from otsensor.baselines.diff import AcceptError, accept, diff_baselines
from otsensor.baselines.graph import CommGraph
from otsensor.baselines.inventory import Inventory
from otsensor.baselines.learn import BaselineError, Observer, load_baseline, save_baseline, to_baseline
from otsensor.baselines.zones import Zones, ZonesError, load_zones
from otsensor.baselines.zones_suggest import suggest, to_toml
from otsensor.sensor.analyze import RunResult, read_files
from otsensor.sensor.pipeline import Pipeline


def _fail(message: str) -> int:
    sys.stderr.write(f"otsensor: error: {message}\n")
    return 2


def _report(result: RunResult) -> None:
    for line in result.errors:
        sys.stderr.write(f"otsensor: error: {line}\n")
    for line in result.warnings:
        sys.stderr.write(f"otsensor: warning: {line}\n")


def _nothing_read(result: RunResult, what: str, output: str) -> int | None:
    """Zero packets: one error line and exit 2, before anything is written (a file at ``output`` is kept).

    A baseline learned from nothing would make the next run call every asset new; an empty draft
    would replace a reviewed zones file.
    """
    if result.stats.get("packets"):
        return None
    why = "; ".join(result.errors + result.warnings) or "the captures hold no packets"
    return _fail(f"no packets read, {what} not written to {output}: {why}")


def observe(paths: list[str], zones: Zones) -> tuple[Inventory, CommGraph, Observer, RunResult]:
    """Run captures through the pipeline with only the learning analyzers (no files written)."""
    inventory, graph, observer = Inventory(), CommGraph(), Observer(zones)
    pipeline = Pipeline([], [inventory, graph, observer])
    result = RunResult({})
    read_files(pipeline, paths, result, None)
    result.stats = pipeline.finish()
    return inventory, graph, observer, result


def cmd_learn(args: argparse.Namespace) -> int:
    try:
        zones = load_zones(args.zones) if args.zones else Zones()
    except ZonesError as exc:
        return _fail(str(exc))
    inventory, _, observer, result = observe(args.captures, zones)
    failed = _nothing_read(result, "baseline", args.output)
    if failed is not None:
        return failed
    _report(result)
    baseline = to_baseline(observer, inventory, list(args.captures), args.zones)
    try:
        save_baseline(baseline, args.output)
    except OSError as exc:
        return _fail(f"cannot write {args.output}: {exc.strerror or exc}")
    print(f"baseline: {len(baseline['assets'])} assets, {len(baseline['edges'])} edges, "
          f"{len(baseline['cadence'])} periodic requests, {len(baseline['engineering_hosts'])} engineering "
          f"host(s), learned over {baseline['learned_from']['duration_s']:.0f}s -> {args.output}")
    return result.exit_code


def cmd_diff(args: argparse.Namespace) -> int:
    try:
        old, new = load_baseline(args.old), load_baseline(args.new)
    except BaselineError as exc:
        return _fail(str(exc))
    lines = diff_baselines(old, new)
    for line in lines:
        print(line)
    if not lines:
        print("no differences")
    return 1 if lines and args.exit_code else 0


def cmd_accept(args: argparse.Namespace) -> int:
    try:
        baseline = load_baseline(args.baseline)
    except BaselineError as exc:
        return _fail(str(exc))
    alerts = _load_alerts(args.alerts)
    if alerts is None:
        return _fail(f"{args.alerts}: cannot read alerts (expected alerts.jsonl from otsensor analyze)")
    wanted = set(args.id)
    if not wanted and not args.all:
        return _fail("name the alerts to accept with --id ID (repeatable) or --all")
    found = [a for a in alerts if args.all or a.get("id") in wanted]
    missing = wanted - {a.get("id") for a in found}
    if missing:
        return _fail(f"no alert with id {', '.join(sorted(missing))} in {args.alerts}")
    try:
        for alert in found:
            print(accept(baseline, alert))
    except AcceptError as exc:
        return _fail(str(exc))
    save_baseline(baseline, args.output or args.baseline)
    return 0


def _load_alerts(path: str) -> list[dict[str, Any]] | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]
    except (OSError, json.JSONDecodeError):
        return None


def cmd_suggest(args: argparse.Namespace) -> int:
    inventory, graph, _, result = observe(args.captures, Zones())
    failed = _nothing_read(result, "zones", args.output)
    if failed is not None:
        return failed
    _report(result)
    draft = suggest(inventory, graph)
    text = to_toml(draft, list(args.captures))
    try:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    except OSError as exc:
        return _fail(f"cannot write {args.output}: {exc.strerror or exc}")
    print(f"zones: {len(draft['zones'])} zone(s), {len(draft['conduits'])} conduit(s) drafted -> {args.output}")
    return result.exit_code


def add_commands(sub: Any, positive: Any) -> None:
    b = sub.add_parser("baseline", help="learn, compare and amend a behaviour baseline")
    bsub = b.add_subparsers(dest="baseline_command", metavar="ACTION", parser_class=type(b))
    bsub.required = True
    p = bsub.add_parser("learn", help="learn a baseline from captures of normal operation")
    p.add_argument("captures", nargs="+", metavar="CAPTURE", help="pcap or pcapng files of normal operation")
    p.add_argument("--zones", metavar="ZONES.toml", help="zones and conduits file")
    p.add_argument("-o", "--output", required=True, metavar="BASELINE.json", help="the baseline to write")
    p.set_defaults(func=cmd_learn)
    p = bsub.add_parser("diff", help="print what changed between two baselines")
    p.add_argument("old", metavar="OLD", help="the earlier baseline")
    p.add_argument("new", metavar="NEW", help="the later baseline")
    p.add_argument("--exit-code", action="store_true", help="exit 1 when they differ")
    p.set_defaults(func=cmd_diff)
    p = bsub.add_parser("accept", help="fold alerts' behaviour into a baseline (false positives)")
    p.add_argument("baseline", metavar="BASELINE", help="the baseline to amend")
    p.add_argument("alerts", metavar="ALERTS.jsonl", help="alerts.jsonl of an 'otsensor analyze' run")
    p.add_argument("--id", action="append", default=[], metavar="ALERT_ID", help="alert id (repeatable)")
    p.add_argument("--all", action="store_true", help="accept every alert in the file")
    p.add_argument("-o", "--output", metavar="NEW_BASELINE", help="write here instead of updating BASELINE")
    p.set_defaults(func=cmd_accept)
    z = sub.add_parser("zones", help="zones and conduits")
    zsub = z.add_subparsers(dest="zones_command", metavar="ACTION", parser_class=type(z))
    zsub.required = True
    p = zsub.add_parser("suggest", help="draft a zones file from traffic, for review")
    p.add_argument("captures", nargs="+", metavar="CAPTURE", help="pcap or pcapng files")
    p.add_argument("-o", "--output", required=True, metavar="ZONES.toml", help="the draft zones file to write")
    p.set_defaults(func=cmd_suggest)


def load_detection_inputs(args: argparse.Namespace) -> tuple[Zones, dict | None, Any] | str:
    """Zones, baseline and [detection] settings for analyze; an error message instead when one is bad."""
    from otsensor.baselines.policy import DetectionConfig, PolicyError
    from otsensor.sensor.config import ConfigError, read_config
    try:
        zones = load_zones(args.zones) if args.zones else Zones()
        baseline = load_baseline(args.baseline) if args.baseline else None
    except (ZonesError, BaselineError) as exc:
        return str(exc)
    detection = DetectionConfig()
    if getattr(args, "config", None):
        try:
            detection = DetectionConfig.from_dict(read_config(args.config).get("detection", {}))
        except ConfigError as exc:
            return str(exc)
        except PolicyError as exc:
            return f"{args.config}: [detection]: {exc}"
    return zones, baseline, detection

