"""`otsensor analyze`: run capture files through the pipeline and write everything the sensor knows."""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, TextIO

from otsensor.baselines.detect import Detector
from otsensor.baselines.documents import write_document
from otsensor.baselines.graph import CommGraph, edge_rows, write_graph, write_graphml
from otsensor.baselines.inventory import Inventory
from otsensor.baselines.policy import DetectionConfig
from otsensor.baselines.zones import Zones
from otsensor.dissectors.registry import Registry, default_registry
from otsensor.sensor.capture import CaptureError, open_capture
from otsensor.sensor.pipeline import Limits, Pipeline
from otsensor.sensor.report import PROGRESS_EVERY, Progress, summary_table
from otsensor.sensor.sinks.jsonl import JsonlSink
from otsensor.sensor.sinks.outdir import OutputDir
from otsensor.sensor.sinks.outputs import close_sinks, print_sinks
from otsensor.sensor.sinks.shared import encode_once

if TYPE_CHECKING:   # the Zeek logs' modules are imported only by a run that writes them
    from otsensor.sensor.zeek.sink import ZeekOptions, ZeekSink


@dataclass
class RunResult:
    stats: dict[str, Any]
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 2 if self.errors else 0


def read_files(pipeline: Pipeline, paths: Iterable[str], result: RunResult, progress: Progress | None) -> None:
    """Feed each file to the pipeline; a bad file is one error line, and the others are still read."""
    packet = pipeline.packet
    for path in paths:
        try:
            reader = open_capture(path, pipeline.capture_anomaly)
        except CaptureError as exc:
            result.errors.append(str(exc))
            continue
        show = progress is not None and progress.wanted(reader.size)
        name = os.path.basename(path)
        with reader:
            try:
                n = 0
                packets = iter(reader)
                first = next(packets, None)
                if first is not None:
                    pipeline.new_capture(first[0])
                    packet(*first)
                for ts, linktype, frame in packets:
                    packet(ts, linktype, frame)
                    n += 1
                    if show and not n % PROGRESS_EVERY:
                        progress.update(name, reader.progress(), reader.size, pipeline.frames_read)  # type: ignore[union-attr]
            except CaptureError as exc:  # e.g. a pcapng block naming an undeclared interface
                result.errors.append(f"{exc} (after {reader.packets} packets; those were analysed)")
        if show:
            progress.update(name, reader.size, reader.size, pipeline.frames_read)  # type: ignore[union-attr]
            progress.done()
        result.warnings.extend(reader.warnings)
        if reader.truncated:
            result.warnings.append(reader.truncated)


def default_ports(registry: Registry) -> dict[str, set[int]]:
    """Each protocol's registered ports, for the non-standard-port rule."""
    ports: dict[str, set[int]] = {}
    for reg in registry.registrations:
        ports.setdefault(reg.name, set()).update(reg.tcp_ports | reg.udp_ports)
    return ports


def zone_hook(zones: Zones) -> Callable:
    """Tag each flow's conn.jsonl row with the zones and Purdue levels of its two ends."""
    def tag(flow: Any) -> None:
        flow.extra.update(zones.tag(flow.orig_h, flow.resp_h))
    return tag


def swap_zone_tagger(hooks: list[Callable], old: Callable | None, zones: Zones) -> Callable | None:
    """Replace the zone tagger ``old`` among a pipeline's flow ``hooks`` by one for ``zones`` (none when no
    zone is configured); returns the new tagger.  Flows that end from now on are tagged with ``zones``."""
    if old in hooks:
        hooks.remove(old)
    tagger = zone_hook(zones) if zones.configured else None
    if tagger is not None:
        hooks.insert(0, tagger)
    return tagger


@dataclass
class Analysis:
    """What one run analyses into and writes at its end, shared by `analyze` (files) and `run` (live)."""
    outdir: str
    pipeline: Pipeline
    sink: JsonlSink
    extra_sinks: list[Any]
    inventory: Inventory
    graph: CommGraph
    fanout: "_Fanout"
    extra_analyzers: list[Any]
    started: float
    detector: Detector | None = None   # the run's detector (a live sensor reconfigures it on SIGHUP)
    zone_tagger: Callable | None = None   # the flow hook tagging conn rows with zones (None without zones)
    graphml: bool = False            # also write graph.graphml (through networkx: only when asked)
    zeek: ZeekSink | None = None


def start_analysis(outdir: str, limits: Limits | None = None, extra_sinks: Iterable[Any] = (),
                   extra_analyzers: Iterable[Any] = (), flow_hooks: Iterable[Callable] = (),
                   zones: Zones | None = None, baseline: dict[str, Any] | None = None,
                   detection: DetectionConfig | None = None, graphml: bool = False, sink: Any = None,
                   zeek: ZeekOptions | None = None) -> Analysis:
    """The file sink (``sink``, or plain JSONL files in ``outdir``), inventory, graph, detector and pipeline
    of one run (and the Zeek logs, with ``zeek``)."""
    started = time.monotonic()
    sink = sink if sink is not None else JsonlSink(outdir)
    zeek_sink = None
    if zeek is not None:
        from otsensor.sensor.zeek.sink import ZeekSink
        zeek_sink = ZeekSink(os.path.join(outdir, "zeek"), zeek)
    inventory = Inventory()
    graph = CommGraph()
    zones = zones or Zones()
    extra_sinks = list(extra_sinks)
    if zeek_sink is not None:
        zeek_sink.outputs = extra_sinks   # the same list: a live reload's new sinks get the Zeek rows too
    registry = default_registry()
    detector = Detector(zones, baseline, detection, inventory, default_ports(registry),
                        emit=lambda row: fanout.write("alerts", row))
    extra_analyzers = [detector, *extra_analyzers]
    analyzers = [inventory, graph, *extra_analyzers]
    tagger = zone_hook(zones) if zones.configured else None
    hooks = [tagger, *flow_hooks] if tagger is not None else list(flow_hooks)
    # a sink that reads the JSONL files (ClickHouse: sensor/clickhouse/follow.py) takes no row from the pipeline;
    # the others get the JSONL text as it is
    readers = [extra for extra in extra_sinks if type(sink) is JsonlSink and _reads_files(extra, sink)]
    sinks, shared = encode_once([sink, *(extra for extra in extra_sinks if extra not in readers)])
    pipeline = Pipeline(sinks, analyzers, registry=registry, limits=limits, flow_hooks=hooks,
                        record_sink=zeek_sink)
    if shared is not None:
        shared.failed = pipeline.sink_failed
    fanout = _Fanout(pipeline.write_row)   # the detector's emit finds it when it first fires
    return Analysis(outdir, pipeline, sink, extra_sinks, inventory, graph, fanout, extra_analyzers, started,
                    detector, tagger, graphml, zeek_sink)


def _reads_files(extra: Any, files: JsonlSink) -> bool:
    follow = getattr(extra, "follow", None)
    return follow is not None and follow(files)


def run_summary(run: Analysis, result: RunResult, inputs: list[str], base: dict[str, Any],
                extra_stats: dict[str, Any] | None = None) -> dict[str, Any]:
    """summary.json's statistics: the pipeline's (``base``) and the run's own, with ``extra_stats`` added."""
    stats = dict(base)
    stats["elapsed_s"] = round(time.monotonic() - run.started, 3)
    stats["graph_edges_dropped"] = run.graph.dropped_edges
    stats["files"] = list(inputs)
    stats["errors"] = list(result.errors)
    stats["warnings"] = list(result.warnings)
    stats.update(extra_stats or {})
    return stats


def finish_analysis(run: Analysis, result: RunResult, inputs: list[str],
                    extra_stats: dict[str, Any] | None = None, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """Finish every flow and analyzer, close the sinks and write every output; returns the assets document.

    The run statistics land in ``result.stats`` (and summary.json) with ``extra_stats`` added; ``base`` is
    the pipeline statistics when workers produced them (otherwise the run's pipeline is finished here).
    """
    outdir, sink, fanout = run.outdir, run.sink, run.fanout
    stats = run_summary(run, result, inputs, run.pipeline.finish() if base is None else base, extra_stats)
    stats["errors"], stats["warnings"] = result.errors, result.warnings   # the lists the rest of the run extends
    result.stats = stats
    for analyzer in run.extra_analyzers:
        finish = getattr(analyzer, "finish", None)
        if finish is not None:
            try:
                finish(fanout)
            except Exception as exc:  # a bug: report it, and still write everything else
                result.errors.append(f"internal error in {type(analyzer).__name__}: {type(exc).__name__}: {exc}")
    stats["alerts"] = fanout.by_rule
    stats["sink_errors"] = run.pipeline.stats.sink_errors   # alerts are written after the statistics were taken
    for name, n in run.pipeline.stats.sink_errors_by_sink.items():
        result.warnings.append(f"sink {name}: {n} row(s) could not be written (the other sinks have them; "
                               "see error_samples in summary.json)")
    if run.zeek is not None:   # its last rows go to the other sinks too: closed before them
        run.zeek.close()
        stats["zeek_logs"] = run.zeek.report()
    assets = run.inventory.to_json()
    for extra in run.extra_sinks:   # a database sink stores the inventory and the graph as rows too
        if getattr(extra, "wants_documents", False):
            extra.write_documents(assets["assets"], edge_rows(run.graph))
    stats["sinks"] = close_sinks(run.extra_sinks, sink, result.warnings)   # delivered or spooled, per sink
    if "alerts" not in sink.files:
        open(os.path.join(outdir, "alerts.jsonl"), "w").close()  # detection ran: say so, even when quiet
    sink.close()
    _write_json(os.path.join(outdir, "assets.json"), assets)
    graph = run.graph.node_link(run.inventory)
    write_graph(graph, os.path.join(outdir, "graph.json"))
    if run.graphml:
        write_graphml(graph, os.path.join(outdir, "graph.graphml"))
    _write_json(os.path.join(outdir, "summary.json"), stats)
    return assets


def report_run(result: RunResult, assets: dict[str, Any], outdir: str, quiet: bool,
               out: TextIO, err: TextIO) -> None:
    """Errors and warnings on stderr, one line each; the summary table on ``out`` unless quiet."""
    for line in result.errors:
        err.write(f"otsensor: error: {line}\n")
    for line in result.warnings:
        err.write(f"otsensor: warning: {line}\n")
    if not quiet:
        summary_table(result.stats, assets["assets"], out, outdir)
        print_sinks(result.stats["sinks"], out)


def analyze(paths: list[str], outdir: str, limits: Limits | None = None, out: TextIO | None = None,
            err: TextIO | None = None, quiet: bool = False, progress: bool | None = None,
            extra_sinks: Iterable[Any] = (), extra_analyzers: Iterable[Any] = (),
            flow_hooks: Iterable[Callable] = (), zones: Zones | None = None,
            baseline: dict[str, Any] | None = None, detection: DetectionConfig | None = None,
            output: OutputDir | None = None, force: bool = False, graphml: bool = False,
            zeek: ZeekOptions | None = None, workers: int = 1) -> RunResult:
    """Analyse ``paths`` and replace the results in ``outdir`` with this run's (see sensor/sinks/outdir.py).

    ``output`` is the directory already claimed by the caller (who then abandons it on failure);
    otherwise it is claimed here, ``force`` allowing foreign files in it. Raises OutputError.
    ``workers`` > 1 shards flows across that many processes (sensor/parallel) for the same outputs.
    """
    if workers > 1 and zeek is not None:
        raise ValueError("--zeek-logs needs --workers 1")
    if output is None:   # claim the directory for this run, and give it up again if the run fails
        with OutputDir.claim(outdir, force) as claimed:
            return analyze(paths, outdir, limits=limits, out=out, err=err, quiet=quiet, progress=progress,
                           extra_sinks=extra_sinks, extra_analyzers=extra_analyzers, flow_hooks=flow_hooks,
                           zones=zones, baseline=baseline, detection=detection, output=claimed, graphml=graphml,
                           zeek=zeek, workers=workers)
    out = out or sys.stdout  # looked up per call: a caller (or pytest) may have replaced the streams
    err = err or sys.stderr
    run = start_analysis(output.staging, limits, extra_sinks, extra_analyzers, flow_hooks, zones, baseline,
                         detection, graphml, zeek=zeek)
    result = RunResult({})
    bar = None if quiet else Progress(err, force=bool(progress)) if progress is not False else None
    interrupted = False
    base = None
    try:
        if workers > 1:
            base, interrupted = sharded(run, paths, workers, result, bar)
        else:
            read_files(run.pipeline, paths, result, bar)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if interrupted:
            result.warnings.append("interrupted: analysed what was read so far")
        assets = finish_analysis(run, result, paths, {"interrupted": interrupted}, base)
        output.commit()
    report_run(result, assets, outdir, quiet, out, err)
    return result


def sharded(run: Analysis, paths: list[str], workers: int, result: RunResult,
            bar: Progress | None) -> tuple[dict[str, Any], bool]:
    """Read ``paths`` with ``workers`` worker processes feeding this run; returns the pipeline statistics
    and whether the run was interrupted."""
    from otsensor.sensor.parallel.aggregate import run_workers   # the worker machinery only when asked for

    cpus = os.cpu_count() or 1
    if workers > cpus:
        result.warnings.append(f"--workers {workers} is more than the {cpus} CPU(s) of this machine: "
                               f"the workers take turns, which is slower than --workers {cpus}")
    return run_workers(run.pipeline, paths, workers, result.errors, result.warnings, bar)


class _Fanout:
    """Alerts (most written at the end of a run) go to every sink as records do, counted per rule."""

    def __init__(self, write_row: Callable[[str, dict[str, Any]], None]) -> None:
        self.write_row = write_row   # the pipeline's: a sink that raises is contained and counted
        self.by_rule: dict[str, int] = {}

    def write(self, log: str, row: dict[str, Any]) -> None:
        if log == "alerts":
            key = f"{row.get('severity')} {row.get('rule')}"
            self.by_rule[key] = self.by_rule.get(key, 0) + 1
        self.write_row(log, row)


def _write_json(path: str, data: Any) -> None:
    write_document(path, data)
