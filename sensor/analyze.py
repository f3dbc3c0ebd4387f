"""`otsensor analyze`: run capture files through the pipeline and write everything the sensor knows."""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, TextIO

from baselines.graph import CommGraph, write_graph
from baselines.inventory import Inventory
from sensor.capture import CaptureError, open_capture
from sensor.pipeline import Limits, Pipeline
from sensor.report import PROGRESS_EVERY, Progress, summary_table
from sensor.sinks.jsonl import JsonlSink


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
            reader = open_capture(path)
        except CaptureError as exc:
            result.errors.append(str(exc))
            continue
        show = progress is not None and progress.wanted(reader.size)
        name = os.path.basename(path)
        with reader:
            try:
                n = 0
                for ts, linktype, frame in reader:
                    packet(ts, linktype, frame)
                    n += 1
                    if show and not n % PROGRESS_EVERY:
                        progress.update(name, reader.progress(), reader.size, pipeline.stats.packets)  # type: ignore[union-attr]
            except CaptureError as exc:  # e.g. a pcapng block naming an undeclared interface
                result.errors.append(f"{exc} (after {reader.packets} packets; those were analysed)")
        if show:
            progress.update(name, reader.size, reader.size, pipeline.stats.packets)  # type: ignore[union-attr]
            progress.done()
        if reader.truncated:
            result.warnings.append(reader.truncated)


def analyze(paths: list[str], outdir: str, limits: Limits | None = None, out: TextIO = sys.stdout,
            err: TextIO = sys.stderr, quiet: bool = False, progress: bool | None = None,
            extra_sinks: Iterable[Any] = (), extra_analyzers: Iterable[Any] = (),
            flow_hooks: Iterable[Callable] = ()) -> RunResult:
    started = time.monotonic()
    sink = JsonlSink(outdir)
    inventory = Inventory()
    graph = CommGraph()
    analyzers = [inventory, graph, *extra_analyzers]
    pipeline = Pipeline([sink, *extra_sinks], analyzers, limits=limits, flow_hooks=flow_hooks)
    result = RunResult({})
    bar = None if quiet else Progress(err, force=bool(progress)) if progress is not False else None
    try:
        read_files(pipeline, paths, result, bar)
    except KeyboardInterrupt:
        result.warnings.append("interrupted: analysed what was read so far")
    finally:
        stats = pipeline.finish()
        stats["elapsed_s"] = round(time.monotonic() - started, 3)
        stats["graph_edges_dropped"] = graph.dropped_edges
        stats["files"] = list(paths)
        stats["errors"] = result.errors
        stats["warnings"] = result.warnings
        result.stats = stats
        for analyzer in extra_analyzers:
            finish = getattr(analyzer, "finish", None)
            if finish is not None:
                finish(sink)
        sink.close()
        assets = inventory.to_json()
        _write_json(os.path.join(outdir, "assets.json"), assets)
        write_graph(graph.build(inventory), os.path.join(outdir, "graph.json"), os.path.join(outdir, "graph.graphml"))
        _write_json(os.path.join(outdir, "summary.json"), stats)
    for line in result.errors:
        err.write(f"otsensor: error: {line}\n")
    for line in result.warnings:
        err.write(f"otsensor: warning: {line}\n")
    if not quiet:
        summary_table(stats, assets["assets"], out, outdir)
    return result


def _write_json(path: str, data: Any) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, sort_keys=False, default=str)
        fh.write("\n")
    os.replace(tmp, path)
