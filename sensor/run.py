"""`otsensor run`: the continuous sensor on live interfaces (or a pcap stream on a pipe), one process.

The same pipeline, analyzers and outputs as `otsensor analyze` (built by
:func:`start_analysis`, written by :func:`finish_analysis`), fed from a live
source until SIGTERM or SIGINT, then every flow is finished and every output
written.  Every option can also be set in ``--config`` (sensor/run_config.py).
While it runs, the wall clock drives what packets cannot: idle flows are
swept on a quiet network; every second the logs' rows go to their writer
thread (sensor/sinks/rotating.py: rotation, compression, disk budget) and the
syslog sinks are polled; ``stats.json`` is rewritten every ``STATS_FILE_EVERY``
seconds (or every ``--stats-interval`` if shorter); every ``--stats-interval``
a stats line goes to stderr and losses are checked (sensor/live_stats.py);
every ``--documents-interval`` summary.json, assets.json and graph.json are
rewritten, and the state a restart carries on from (sensor/checkpoint.py); ``--learn`` learns the
baseline first (sensor/learning.py).  SIGHUP reloads zones, baseline and configuration (sensor/reload.py).
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from typing import Any

from otsensor.baselines.documents import encode_document, write_document
from otsensor.sensor.analyze import Analysis, RunResult, finish_analysis, report_run, run_summary, start_analysis
from otsensor.sensor.capture.bpf import FilterError, compile_filter
from otsensor.sensor.capture.files import CaptureError
from otsensor.sensor.capture.live import InterfaceCapture, QuietClock, StreamCapture, open_stream_capture
from otsensor.sensor.capture.privileges import PrivilegeError, drop_privileges
from otsensor.sensor.capture.ring import RingConfig
from otsensor.sensor.checkpoint import Checkpoint, make_state_dir
from otsensor.sensor.learning import LiveLearning
from otsensor.sensor.live_stats import LossWatch, MetricsEndpoint, MetricsError, stats_document, stats_line
from otsensor.sensor.reload import Reloader
from otsensor.sensor.run_config import duration_arg, endpoint_arg, resolve, settable_from_file, size_arg
from otsensor.sensor.sinks.rotating import Rotation, RotatingJsonlSink

STATS_FILE_EVERY = 10.0     # seconds between rewrites of stats.json
CLOCK_EVERY = 1.0           # seconds between looks at the wall clock (rows handed to the writer, sinks polled)


def add_command(sub: Any) -> None:
    from otsensor.sensor.cli import add_analysis_options, add_sink_options, positive_int
    p = sub.add_parser("run", help="watch live interfaces (or a pcap stream on stdin) until stopped")
    src = p.add_mutually_exclusive_group()
    src.add_argument("-i", "--interface", action="append", metavar="IFACE",
                     help="capture on this interface (repeat for several)")
    src.add_argument("-r", "--read", metavar="FILE", help="read a pcap/pcapng stream ('-': standard input)")
    p.add_argument("-o", "--output", metavar="DIR",
                   help="output directory (created if missing); the previous run's logs are archived there")
    p.add_argument("--force", action="store_true",
                   help="write into DIR even though it holds files otsensor did not write (they are left alone)")
    p.add_argument("--bpf", metavar="EXPR", help="capture filter in tcpdump syntax (with -i)")
    p.add_argument("--user", metavar="NAME", help="once the capture is open, become this user and keep no privilege")
    p.add_argument("--no-promiscuous", dest="promiscuous", action="store_false",
                   help="only frames addressed to the interface (default: promiscuous, as a mirror port needs)")
    p.add_argument("--ring-block-size", type=size_arg, default=RingConfig.block_size, metavar="BYTES",
                   help="ring block size per interface")
    p.add_argument("--ring-blocks", type=positive_int, default=RingConfig.block_count, metavar="N",
                   help="ring blocks per interface")
    p.add_argument("--ring-frame-size", type=size_arg, default=RingConfig.frame_size, metavar="BYTES",
                   help="ring frame size")
    p.add_argument("--ring-block-timeout", type=positive_int, default=RingConfig.block_timeout_ms, metavar="MS",
                   help="hand a block over after this many ms if not full")
    p.add_argument("--stats-interval", type=duration_arg, default=60.0, metavar="SECONDS",
                   help="seconds between stats lines on stderr and packet-loss checks")
    p.add_argument("--documents-interval", type=duration_arg, default=60.0, metavar="SECONDS",
                   help="seconds between rewrites of summary.json, assets.json and graph.json")
    p.add_argument("--rotate-interval", type=duration_arg, default=3600.0, metavar="SECONDS",
                   help="logs are rotated at each multiple of this on the UTC clock (3600: every hour, on the hour)")
    p.add_argument("--rotate-size", type=size_arg, default=Rotation.size, metavar="BYTES",
                   help="a log this large is rotated before its interval ends (K, M, G suffixes allowed)")
    p.add_argument("--max-disk", type=size_arg, metavar="BYTES",
                   help="the logs in DIR may take this much; the oldest rotated files are deleted (e.g. 20G)")
    p.add_argument("--write-buffer", type=size_arg, default=Rotation.write_buffer, metavar="BYTES",
                   help="log rows waiting for a slow disk before new ones are dropped (and counted)")
    p.add_argument("--metrics", type=endpoint_arg, metavar="HOST:PORT",
                   help="serve stats as Prometheus text on this loopback address (needs otsensor[metrics])")
    p.add_argument("--learn", type=duration_arg, metavar="DURATION",
                   help="learn the baseline for this long (capture time, e.g. 7d), write DIR/baseline.json, "
                        "then detect with it")
    p.add_argument("--workers", type=positive_int, default=1, metavar="N",
                   help="worker processes sharing the flows of every -i interface (PACKET_FANOUT), merged into "
                        "one set of outputs by this process")
    p.add_argument("-q", "--quiet", action="store_true", help="no summary on the terminal at the end")
    add_analysis_options(p)
    add_sink_options(p)
    p.set_defaults(func=cmd_run, run_defaults=settable_from_file(p))


def _fail(message: str) -> int:
    sys.stderr.write(f"otsensor: error: {message}\n")
    return 2


def _settings(args: argparse.Namespace) -> str | None:
    """Complete ``args`` from --config and the defaults; why they cannot run, or None."""
    from otsensor.sensor.config import ConfigError, read_config
    try:
        file = read_config(args.config) if args.config else {}
    except ConfigError as exc:
        return str(exc)
    problem = resolve(args, file, args.run_defaults)
    if problem:
        return f"{args.config}: {problem}" if args.config and problem.startswith("[") else problem
    if args.bpf is not None and args.read is not None:
        return "--bpf applies to -i capture only"
    if args.learn is not None and args.baseline is not None:
        return "--learn and --baseline: a run either learns its baseline or is given one"
    if args.workers > 1:
        return _workers_problem(args)
    return None


def _workers_problem(args: argparse.Namespace) -> str | None:
    """Why ``--workers N`` cannot run with these settings, or None."""
    if args.read is not None:
        return (f"--workers {args.workers} needs -i: the kernel shares an interface's flows among workers; "
                "a stream on a pipe is read by one process (leave --workers out)")
    if args.learn is not None:
        return "--learn needs --workers 1 (the learning clock runs in one process)"
    return None


def cmd_run(args: argparse.Namespace) -> int:
    from otsensor.sensor.baseline_cli import load_detection_inputs

    problem = _settings(args)
    if problem:
        return _fail(problem)
    ring = RingConfig(args.ring_block_size, args.ring_blocks, args.ring_frame_size, args.ring_block_timeout)
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
    try:
        source = _open_source(args, ring)
    except CaptureError as exc:
        return _fail(str(exc))
    try:
        metrics = MetricsEndpoint(*args.metrics) if args.metrics else None
    except MetricsError as exc:
        source.close()
        return _fail(str(exc))
    code = _run_claimed(args, source, metrics, inputs)
    if metrics is not None:
        metrics.close()
    return code


def _open_source(args: argparse.Namespace, ring: RingConfig) -> Any:
    """The capture: every socket is opened here, before privileges are given up (raises CaptureError)."""
    if args.workers > 1:
        from otsensor.sensor.parallel.live import FanoutCaptures
        return FanoutCaptures(args.interface, ring, args.bpf, args.promiscuous, args.workers)
    if args.interface:
        return InterfaceCapture(args.interface, ring, args.bpf, args.promiscuous)
    return open_stream_capture(args.read)


def _run_claimed(args: argparse.Namespace, source: Any, metrics: MetricsEndpoint | None, inputs: tuple) -> int:
    """Give up privileges, claim the output directory, run until stopped."""
    from otsensor.sensor.cli import collect_less, limits_from_args
    from otsensor.sensor.config import sinks_from_args, zeek_from_args
    from otsensor.sensor.sinks.outdir import OutputDir, OutputError, known_logs
    from otsensor.sensor.sinks.outputs import SetupError, build_sinks, spool_names_in

    zones, baseline, detection = inputs
    collect_less()   # as analyze does (the workers, forked later, inherit it)
    try:
        warning = drop_privileges(args.user) if args.interface or args.user else None
        config = sinks_from_args(args)
        zeek = zeek_from_args(args)
        if zeek is not None and args.workers > 1:
            source.close()
            return _fail("--zeek-logs needs --workers 1 (the Zeek logs follow each flow's packets in one process)")
        # claimed as the user the sensor runs as, so that it can write there
        output = OutputDir.claim(args.output, args.force, spool_names_in(config, args.output))
    except (PrivilegeError, OutputError, *SetupError) as exc:  # type: ignore[misc]
        source.close()
        return _fail(str(exc))
    with output:
        try:
            sinks = build_sinks(args, args.output, config)
            output.begin_live(keep_logs=True)
            rotation = Rotation(args.rotate_interval, args.rotate_size, args.max_disk, args.write_buffer)
            make_state_dir(args.output)
            files = RotatingJsonlSink(args.output, rotation, known_logs())
            analysis = start_analysis(args.output, limits_from_args(args), sinks, zones=zones, baseline=baseline,
                                      detection=detection, graphml=args.graphml, sink=files,
                                      zeek=zeek)
        except SetupError as exc:  # type: ignore[misc]
            source.close()
            return _fail(str(exc))
        except OSError as exc:
            source.close()
            return _fail(f"cannot write output to {args.output}: {exc.strerror or exc}")
        loss = LossWatch(analysis.detector, detection)
        reloader = Reloader(args, analysis, config, loss, sys.stderr)
        learning = LiveLearning(args.learn, analysis, args, sys.stderr) if args.learn else None
        checkpoint = Checkpoint(analysis, learning, sys.stderr)
        checkpoint.restore()
        runner_class = Runner
        if args.workers > 1:   # the workers start from the run as configured now, checkpoint included
            from otsensor.sensor.parallel.live import LiveFleet, WorkersRunner
            source = LiveFleet(source, analysis.pipeline, args.zones, analysis.zone_tagger)
            runner_class = WorkersRunner
        runner = runner_class(analysis, source, args, sys.stderr, loss, reloader, metrics, learning, checkpoint)
        if warning:
            sys.stderr.write(f"otsensor: warning: {warning}\n")
        code = runner.run(args.interface or [args.read], args.quiet)
        output.finish_live()
    return code


class Runner:
    """Feeds a live source to the pipeline, keeps the wall-clock duties, and stops cleanly on a signal."""

    def __init__(self, analysis: Analysis, source: InterfaceCapture | StreamCapture, args: argparse.Namespace,
                 err: Any, loss: LossWatch, reloader: Reloader, metrics: MetricsEndpoint | None,
                 learning: LiveLearning | None = None, checkpoint: Checkpoint | None = None) -> None:
        self.analysis = analysis
        self.learning = learning
        self.checkpoint = checkpoint
        self.pipeline = analysis.pipeline
        self.source = source
        self.err = err
        self.loss = loss
        self.reloader = reloader
        self.metrics = metrics
        self.inputs: list[str] = []
        self.result = RunResult({})
        self.stats_interval = args.stats_interval
        self.documents_interval = args.documents_interval
        self.started = time.monotonic()
        self.started_at = time.time()
        self.next_clock = self.started + CLOCK_EVERY
        self.next_file = self.started          # stats.json is written at once, then every STATS_FILE_EVERY
        self.next_line = self.started + self.stats_interval
        self.next_documents = self.started     # so are the documents, then every --documents-interval
        self.quiet = QuietClock(self.started)
        self.reload_asked = False
        source.tick = self.tick
        if isinstance(source, StreamCapture):
            source.on_anomaly = self.pipeline.capture_anomaly

    def run(self, inputs: list[str], quiet: bool) -> int:
        self.inputs = inputs
        handlers = {signal.SIGTERM: self._on_stop, signal.SIGINT: self._on_stop, signal.SIGHUP: self._on_hup}
        previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
        self._publish("running", self.source.statistics())
        try:
            self._feed()
            self._note_stream_end()
        except CaptureError as exc:
            self.result.errors.append(f"{exc} (after {self.pipeline.stats.packets} packets; those were analysed)")
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            capture = self.source.statistics()
            self.source.close()
            if self.learning is not None:
                self.learning.stop_unfinished()
            if self.checkpoint is not None:
                self.pipeline.finish()   # the connections end first: the checkpoint holds what they taught
                self.checkpoint.save()
            self.loss.check(self._stats("stopping", capture), time.time())   # the last interval's losses
            assets = finish_analysis(self.analysis, self.result, inputs, self._final_extras(capture),
                                     self._final_pipeline_stats())
            doc = self._stats("stopped", capture)
            write_document(os.path.join(self.analysis.outdir, "stats.json"), doc)
            self.err.write(stats_line(doc))
            if self.metrics is not None:
                self.metrics.publish(doc)
        self.result.warnings.extend(self.reloader.warnings)
        report_run(self.result, assets, self.analysis.outdir, quiet, sys.stdout, self.err)
        return self.result.exit_code

    def _feed(self) -> None:
        """Every frame to the pipeline; while learning, each frame's time is compared with the learner's next
        due time first (one comparison: the learning clock is capture time, not how fast frames are read)."""
        packet = self.pipeline.packet
        frames = iter(self.source)
        learning = self.learning
        if learning is not None:
            for ts, linktype, frame in frames:
                if ts >= learning.next:
                    learning.due(ts)
                packet(ts, linktype, frame)
                if learning.done:
                    break
        for ts, linktype, frame in frames:
            packet(ts, linktype, frame)

    def _on_stop(self, signum: int, _frame: Any) -> None:
        self.source.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)   # a second Ctrl-C interrupts the shutdown

    def _on_hup(self, signum: int, _frame: Any) -> None:
        self.reload_asked = True    # done between two frames, by tick(): never in the middle of one

    def _note_stream_end(self) -> None:
        reader = getattr(self.source, "reader", None)
        if reader is not None:
            self.result.warnings.extend(reader.warnings)
            if reader.truncated:
                self.result.warnings.append(reader.truncated)

    def _final_extras(self, capture: dict[str, Any]) -> dict[str, Any]:
        extras: dict[str, Any] = {"capture": capture, "outputs": self.analysis.sink.statistics()}
        if self.reloader.replaced_sinks:
            extras["sinks_replaced"] = self.reloader.replaced_sinks
        return extras

    def tick(self) -> None:
        """Called by the source between frames, often; does what the wall clock says is due."""
        now = time.monotonic()
        if now < self.next_clock:
            return
        self.next_clock = now + CLOCK_EVERY
        self._move_clock(now)
        if self.reload_asked:
            self.reload_asked = False
            if self.reloader.reload():
                self._reloaded()
        self.analysis.sink.flush()
        for sink in self.analysis.extra_sinks:
            poll = getattr(sink, "poll", None)
            if poll is not None:
                poll()
        if now >= self.next_file or now >= self.next_line:
            self.next_file = now + min(STATS_FILE_EVERY, self.stats_interval)
            if self.analysis.zeek is not None:
                self.analysis.zeek.flush()
            doc = self._publish("running", self.source.statistics())
            if now >= self.next_line:
                self.next_line = now + self.stats_interval
                self.loss.check(doc, time.time())
                self.err.write(stats_line(doc))
                self.err.flush()
        if now >= self.next_documents:
            self.next_documents = now + self.documents_interval
            self._write_documents()

    def _move_clock(self, now: float) -> None:
        pipeline = self.pipeline
        clock = self.quiet.quiet_time(pipeline.stats.packets, pipeline.last_ts, now)
        if clock is not None:
            pipeline.tick(clock)
            learning = self.learning
            if learning is not None and learning.started is not None and clock >= learning.next:
                learning.due(clock)

    def _reloaded(self) -> None:
        """The zones, baseline and configuration were read again and are in force."""

    def _final_pipeline_stats(self) -> dict[str, Any] | None:
        """The pipeline statistics at the stop when this process's pipeline does not hold them (workers)."""
        return None

    def _pipeline_stats(self) -> dict[str, Any]:
        pipeline = self.pipeline
        return pipeline.stats.as_dict(pipeline.table, pipeline.defrag, pipeline.stream_budget)

    def _stats(self, state: str, capture: dict[str, Any]) -> dict[str, Any]:
        return stats_document(self, state, capture)

    def _publish(self, state: str, capture: dict[str, Any]) -> dict[str, Any]:
        """stats.json through the log writer (after the rows it counts), and to the metrics endpoint."""
        doc = self._stats(state, capture)
        self.analysis.sink.write_document("stats.json", encode_document(doc))
        if self.metrics is not None:
            self.metrics.publish(doc)
        return doc

    def _write_documents(self) -> None:
        """summary.json, assets.json and graph.json as they stand (graph.graphml, with --graphml, at the stop)."""
        run = self.analysis
        summary = run_summary(run, self.result, self.inputs, self._pipeline_stats(),
                              {"capture": self.source.statistics(), "outputs": run.sink.statistics()})
        summary["alerts"] = dict(run.fanout.by_rule)
        summary["sinks"] = [sink.report() for sink in run.extra_sinks if hasattr(sink, "report")]
        sink = run.sink
        sink.write_document("assets.json", encode_document(run.inventory.to_json()))
        sink.write_document("graph.json", encode_document(run.graph.node_link(run.inventory), sort_keys=True))
        sink.write_document("summary.json", encode_document(summary))
        if self.checkpoint is not None:
            self.checkpoint.save()
