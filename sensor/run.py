"""`otsensor run`: the continuous sensor on live interfaces (or a pcap stream on a pipe), one process.

The same pipeline, analyzers and outputs as `otsensor analyze` (built by
:func:`start_analysis`, written by :func:`finish_analysis`), fed from a live
source until SIGTERM or SIGINT, then every flow is finished and every output
written.  While it runs, the wall clock drives what packets cannot: idle
flows are swept on a quiet network, the JSONL logs are flushed and
``stats.json`` rewritten every ``STATS_FILE_EVERY`` seconds (or every
``--stats-interval`` if shorter), and a stats line goes to stderr every
``--stats-interval`` seconds.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from datetime import datetime, timezone
from typing import Any

from otsensor.baselines.documents import write_document
from otsensor.sensor.analyze import Analysis, RunResult, finish_analysis, report_run, start_analysis
from otsensor.sensor.capture.bpf import FilterError, compile_filter
from otsensor.sensor.capture.files import CaptureError
from otsensor.sensor.capture.live import InterfaceCapture, StreamCapture, open_stream_capture
from otsensor.sensor.capture.privileges import PrivilegeError, drop_privileges
from otsensor.sensor.capture.ring import RingConfig

STATS_FILE_EVERY = 10.0     # seconds between rewrites of stats.json (and flushes of the JSONL logs)
CLOCK_EVERY = 1.0           # seconds between looks at the wall clock
STATS_VERSION = 1


def add_command(sub: Any) -> None:
    from otsensor.sensor.cli import add_analysis_options, add_sink_options, positive_float, positive_int
    p = sub.add_parser("run", help="watch live interfaces (or a pcap stream on stdin) until stopped")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("-i", "--interface", action="append", metavar="IFACE",
                     help="capture on this interface (repeat for several)")
    src.add_argument("-r", "--read", metavar="FILE", help="read a pcap/pcapng stream ('-': standard input)")
    p.add_argument("-o", "--output", required=True, metavar="DIR",
                   help="output directory (created if missing); the previous run's results are replaced at start")
    p.add_argument("--force", action="store_true",
                   help="write into DIR even though it holds files otsensor did not write (they are left alone)")
    p.add_argument("--bpf", metavar="EXPR", help="capture filter in tcpdump syntax (with -i)")
    p.add_argument("--user", metavar="NAME", help="once the capture is open, become this user and keep no privilege")
    p.add_argument("--no-promiscuous", dest="promiscuous", action="store_false",
                   help="only frames addressed to the interface (default: promiscuous, as a mirror port needs)")
    p.add_argument("--ring-block-size", type=positive_int, default=RingConfig.block_size, metavar="BYTES",
                   help=f"ring block size per interface (default {RingConfig.block_size})")
    p.add_argument("--ring-blocks", type=positive_int, default=RingConfig.block_count, metavar="N",
                   help=f"ring blocks per interface (default {RingConfig.block_count})")
    p.add_argument("--ring-frame-size", type=positive_int, default=RingConfig.frame_size, metavar="BYTES",
                   help=f"ring frame size (default {RingConfig.frame_size})")
    p.add_argument("--ring-block-timeout", type=positive_int, default=RingConfig.block_timeout_ms, metavar="MS",
                   help=f"hand a block over after this many ms if not full (default {RingConfig.block_timeout_ms})")
    p.add_argument("--stats-interval", type=positive_float, default=60.0, metavar="SECONDS",
                   help="seconds between stats lines on stderr (default 60)")
    p.add_argument("-q", "--quiet", action="store_true", help="no summary on the terminal at the end")
    add_analysis_options(p)
    add_sink_options(p)
    p.set_defaults(func=cmd_run)


def _fail(message: str) -> int:
    sys.stderr.write(f"otsensor: error: {message}\n")
    return 2


def cmd_run(args: argparse.Namespace) -> int:
    from otsensor.sensor.baseline_cli import load_detection_inputs
    from otsensor.sensor.cli import limits_from_args
    from otsensor.sensor.config import sinks_from_args, zeek_from_args
    from otsensor.sensor.sinks.outdir import OutputDir, OutputError
    from otsensor.sensor.sinks.outputs import SetupError, build_sinks, spool_names_in

    ring = RingConfig(args.ring_block_size, args.ring_blocks, args.ring_frame_size, args.ring_block_timeout)
    if args.bpf is not None and args.read is not None:
        return _fail("--bpf applies to -i capture only")
    problem = ring.check()
    if problem:
        return _fail(problem)
    if args.bpf is not None:
        try:
            compile_filter(args.bpf)   # a typo fails here, before any socket is opened
        except FilterError as exc:
            return _fail(f"--bpf {args.bpf!r}: {exc}")
    inputs = load_detection_inputs(args)
    if isinstance(inputs, str):
        return _fail(inputs)
    zones, baseline, detection = inputs
    try:
        source = (InterfaceCapture(args.interface, ring, args.bpf, args.promiscuous) if args.interface
                  else open_stream_capture(args.read))
    except CaptureError as exc:
        return _fail(str(exc))
    try:
        warning = drop_privileges(args.user) if args.interface or args.user else None
        config = sinks_from_args(args)
        zeek = zeek_from_args(args)
        # claimed as the user the sensor runs as, so that it can write there
        output = OutputDir.claim(args.output, args.force, spool_names_in(config, args.output))
    except (PrivilegeError, OutputError, *SetupError) as exc:  # type: ignore[misc]
        source.close()
        return _fail(str(exc))
    with output:
        try:
            sinks = build_sinks(args, args.output, config)
            output.begin_live()
            analysis = start_analysis(args.output, limits_from_args(args), sinks, zones=zones, baseline=baseline,
                                      detection=detection, graphml=args.graphml, zeek=zeek)
        except SetupError as exc:  # type: ignore[misc]
            source.close()
            return _fail(str(exc))
        except OSError as exc:
            source.close()
            return _fail(f"cannot write output to {args.output}: {exc.strerror or exc}")
        runner = Runner(analysis, source, args.stats_interval, sys.stderr)
        if warning:
            sys.stderr.write(f"otsensor: warning: {warning}\n")
        code = runner.run(args.interface or [args.read], args.quiet)
        output.finish_live()
    return code


class Runner:
    """Feeds a live source to the pipeline, keeps the wall-clock duties, and stops cleanly on a signal."""

    def __init__(self, analysis: Analysis, source: InterfaceCapture | StreamCapture, stats_interval: float,
                 err: Any) -> None:
        self.analysis = analysis
        self.pipeline = analysis.pipeline
        self.source = source
        self.err = err
        self.result = RunResult({})
        self.stats_interval = stats_interval
        self.started = time.monotonic()
        self.started_at = time.time()
        self.next_clock = self.started + CLOCK_EVERY
        self.next_file = self.started          # stats.json is written at once, then every STATS_FILE_EVERY
        self.next_line = self.started + stats_interval
        self.seen_packets = 0
        self.anchor = (0.0, self.started)      # (capture time, monotonic time) when packets last moved on
        source.tick = self.tick

    def run(self, inputs: list[str], quiet: bool) -> int:
        stop = self._on_signal
        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        packet = self.pipeline.packet
        self._write_stats("running", self.source.statistics())
        try:
            for ts, linktype, frame in self.source:
                packet(ts, linktype, frame)
            self._note_stream_end()
        except CaptureError as exc:
            self.result.errors.append(f"{exc} (after {self.pipeline.stats.packets} packets; those were analysed)")
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            capture = self.source.statistics()
            self.source.close()
            assets = finish_analysis(self.analysis, self.result, inputs, {"capture": capture})
            self._write_stats("stopped", capture)
            self.err.write(self._stats_line(capture))
        report_run(self.result, assets, self.analysis.outdir, quiet, sys.stdout, self.err)
        return self.result.exit_code

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.source.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)   # a second Ctrl-C interrupts the shutdown

    def _note_stream_end(self) -> None:
        reader = getattr(self.source, "reader", None)
        if reader is not None and reader.truncated:
            self.result.warnings.append(reader.truncated)

    def tick(self) -> None:
        """Called by the source between frames, often; does what the wall clock says is due."""
        now = time.monotonic()
        if now < self.next_clock:
            return
        self.next_clock = now + CLOCK_EVERY
        pipeline = self.pipeline
        if pipeline.stats.packets != self.seen_packets:
            self.seen_packets = pipeline.stats.packets
            self.anchor = (pipeline.last_ts, now)
        else:
            # no packet since the last look: the capture clock moves on with the wall clock, so a quiet
            # network still closes its flows (an old capture piped in at full speed never gets here)
            pipeline.tick(self.anchor[0] + now - self.anchor[1])
        if now >= self.next_file:
            self.next_file = now + min(STATS_FILE_EVERY, self.stats_interval)
            self.analysis.sink.flush()
            if self.analysis.zeek is not None:
                self.analysis.zeek.flush()
            self._write_stats("running", self.source.statistics())
        if now >= self.next_line:
            self.next_line = now + self.stats_interval
            self.err.write(self._stats_line(self.source.statistics()))
            self.err.flush()

    def stats(self, state: str, capture: dict[str, Any]) -> dict[str, Any]:
        """The stats.json document (its format is in README.md: a console reads it)."""
        pipeline, counts = self.pipeline, self.analysis.sink.counts
        s = pipeline.stats
        return {
            "version": STATS_VERSION, "state": state, "pid": os.getpid(),
            "started": _iso(self.started_at), "updated": _iso(time.time()),
            "uptime_s": round(time.monotonic() - self.started, 3),
            "capture": capture,
            "packets": s.packets, "bytes": s.bytes, "undecoded_packets": s.undecoded,
            "flows": pipeline.table.created, "flows_active": pipeline.table.count,
            "flows_timed_out": pipeline.table.timed_out, "flows_evicted": pipeline.table.evicted,
            "records": dict(sorted(counts.items())), "alerts": counts.get("alerts", 0),
            "errors": s.dissector_errors + s.analyzer_errors,
        }

    def _write_stats(self, state: str, capture: dict[str, Any]) -> None:
        write_document(os.path.join(self.analysis.outdir, "stats.json"), self.stats(state, capture))

    def _stats_line(self, capture: dict[str, Any]) -> str:
        doc = self.stats("", capture)
        fields = {"uptime_s": round(doc["uptime_s"]), "packets": doc["packets"]}
        fields.update({k: capture[k] for k in ("kernel_received", "kernel_dropped", "freeze_count")
                       if capture.get(k) is not None})
        fields.update(flows=doc["flows"], flows_active=doc["flows_active"],
                      records=sum(doc["records"].values()), alerts=doc["alerts"], errors=doc["errors"])
        return "otsensor: stats: " + " ".join(f"{k}={v}" for k, v in fields.items()) + "\n"


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
