"""`otsensor run -i IFACE --workers N`: worker processes on PACKET_FANOUT sockets, merged by capture time.

Every capture socket is opened first, with privileges, by the process the user started: N sockets per
interface, one per worker, all joined to one fanout group per interface (capture/fanout.py's program
with the defrag flag), so the kernel hands each socket whole conversations (it picks the socket from the
two IP addresses, either way round; fragments are reassembled first).  Then the workers are forked; each keeps only its own
sockets, decodes only the frames the kernel gave it, follows their flows and dissects them with the
worker pipeline of `analyze --workers` (worker.py: the same events, the same EventChannel), and the
process that started them aggregates: inventory, graph, detector, sinks, stats, checkpoints and SIGHUP
(aggregate.py's Replay, run.py's Runner).

There is no frame index every worker sees, so events are keyed by capture time: ``(mark, worker)``,
where ``mark`` is the highest capture time the worker has handled (so a worker's keys never go back).
With every batch, and on the wall clock every ``TICK_EVERY`` seconds even when its network is quiet, a
worker sends a TICK: its watermark, up to which it has sent everything.  The aggregator's merge
(heapq.merge over the workers' streams) releases an event once every other worker's watermark or next
event has passed it.  An idle worker's watermark follows the wall clock, held back by ``LAG`` (a frame can
wait two ring block timeouts in the kernel before it is read), so the others are never held up by it.

The pipes between workers and aggregator are bounded and block: a worker that cannot send stops reading
its ring, and what the kernel then drops is counted per worker (PACKET_STATISTICS), so nothing is lost
between the processes without being counted.
"""
from __future__ import annotations

import heapq
import os
import pickle
import signal
import time
from operator import itemgetter
from typing import Any, Callable, Iterator

from otsensor.baselines.zones import Zones, ZonesError, load_zones
from otsensor.sensor.analyze import swap_zone_tagger
from otsensor.sensor.capture.live import InterfaceCapture, QuietClock
from otsensor.sensor.capture.ring import FANOUT_NEW, RingConfig
from otsensor.sensor.flows.table import Flow
from otsensor.sensor.live_stats import stats_document
from otsensor.sensor.parallel.aggregate import WorkerLost, Workers, merge_stats
from otsensor.sensor.parallel.events import TICK
from otsensor.sensor.parallel.replay import Replay
from otsensor.sensor.parallel.worker import BATCH_EVENTS, WorkerPipeline, per_worker, worker_process
from otsensor.sensor.pipeline import Limits, Pipeline
from otsensor.sensor.run import Runner

TICK_EVERY = 0.5          # seconds between a worker's watermarks, reports and sweeps on a quiet network
LAG_MARGIN = 0.25         # seconds beyond two ring block timeouts that a frame may wait before it is read
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
CAPTURE_COUNTERS = ("kernel_received", "kernel_dropped", "freeze_count", "frames_truncated")


class FanoutCaptures:
    """The capture sockets of ``count`` workers: for each worker, one ring on every interface."""

    def __init__(self, interfaces: list[str], ring: RingConfig, bpf: str | None, promiscuous: bool,
                 count: int) -> None:
        self.interfaces = interfaces
        self.block_timeout = ring.block_timeout_ms / 1000
        self.captures: list[InterfaceCapture] = []
        try:
            # the first worker's rings create one group per interface (ids the kernel picks, unique in this
            # network namespace: two sensors never share a group); the other workers' rings join them
            first = InterfaceCapture(interfaces, ring, bpf, promiscuous, fanout_group=FANOUT_NEW)
            self.captures.append(first)
            groups = [int(r.fanout_group) for r in first.rings]   # type: ignore[arg-type]
            for _ in range(count - 1):
                self.captures.append(InterfaceCapture(interfaces, ring, bpf, promiscuous, fanout_group=groups))
        except BaseException:
            self.close()
            raise

    def take(self, worker: int) -> InterfaceCapture:
        """Worker ``worker``'s capture, in its own process: the other workers' sockets are closed there."""
        for w, capture in enumerate(self.captures):
            if w != worker:
                capture.close()
        return self.captures[worker]

    def close(self) -> None:
        for capture in self.captures:
            capture.close()


class LiveWorkerPipeline(WorkerPipeline):
    """A worker's pipeline on its fanout sockets: every frame it gets is its own; events keyed by time."""

    def __init__(self, worker: int, workers: int, send: Callable[[bytes], None], limits: Limits,
                 flow_hooks: list[Callable[[Flow], None]], lag: float, zones: ZonesReload) -> None:
        super().__init__(worker, workers, send, limits, flow_hooks)
        self.send = send
        self.zones = zones
        self.lag = lag
        self.mark = 0.0                  # capture time up to which every event was produced
        self.next_tick = time.monotonic() + TICK_EVERY
        self.quiet = QuietClock(time.monotonic())

    def packet(self, ts: float, linktype: int, frame: bytes) -> None:
        self.index += 1                  # (orders the flows opened, as a file's frame index does)
        self._advance(ts)
        Pipeline.packet(self, ts, linktype, frame)   # every frame: the kernel sent this socket whole flows
        channel = self.channel
        if len(channel.batch) >= BATCH_EVENTS:
            channel.flush((self.mark, self.worker))

    def _advance(self, ts: float) -> None:
        if ts > self.mark:
            self.mark = ts
        self.channel.key = (self.mark, self.worker)

    def wall_clock(self, capture: InterfaceCapture) -> None:
        """Called by the capture between ring blocks: sweep a quiet network's flows, send the watermark and
        a report of the counters, every TICK_EVERY seconds."""
        now = time.monotonic()
        if now < self.next_tick:
            return
        self.next_tick = now + TICK_EVERY
        clock = self.quiet.quiet_time(self.stats.packets, self.last_ts, now)
        if clock is not None:
            self._advance(clock)
            self.tick(clock)
        self._advance(time.time() - self.lag)
        self.channel.flush((self.mark, self.worker))
        self.report(capture)
        self.zones.apply(self.flow_hooks)

    def report(self, capture: InterfaceCapture) -> None:
        self.send(pickle.dumps(("stats", {
            "pid": os.getpid(), "capture": capture.statistics(), "flows_active": self.table.count,
            "pipeline": self.stats.as_dict(self.table, self.defrag, self.stream_budget)})))


class ZonesReload:
    """A worker's zones, read again when the aggregator passes on a SIGHUP it accepted (the conn rows are
    tagged where flows end, in the workers; everything else a SIGHUP reloads is the aggregator's)."""

    def __init__(self, path: str | None, tagger: Callable | None) -> None:
        self.path = path
        self.tagger = tagger
        self.asked = False

    def apply(self, hooks: list[Callable]) -> None:
        """Between two ring blocks: the new zones for the flows that end from now on, if asked for."""
        if not self.asked:
            return
        self.asked = False
        try:
            zones = load_zones(self.path) if self.path else Zones()
        except ZonesError:   # changed again since the aggregator read it: its next SIGHUP will say
            return
        self.tagger = swap_zone_tagger(hooks, self.tagger, zones)


def live_worker_main(send: Any, others: list[Any], worker: int, workers: int, captures: FanoutCaptures,
                     limits: Limits, flow_hooks: list[Callable[[Flow], None]], zones: ZonesReload) -> None:
    """A worker process of `run --workers`: read its fanout sockets until SIGTERM or SIGINT, then drain them,
    finish its flows and report.  SIGHUP comes from the aggregator once it has reloaded: the zones."""
    capture = captures.take(worker)
    lag = 2 * captures.block_timeout + LAG_MARGIN

    def capture_shard() -> tuple:
        pipeline = LiveWorkerPipeline(worker, workers, send.send_bytes, per_worker(limits, workers), flow_hooks,
                                      lag, zones)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda signum, frame: capture.stop())
        signal.signal(signal.SIGHUP, lambda signum, frame: setattr(zones, "asked", True))
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)   # blocked by the aggregator across the fork
        capture.tick = lambda: pipeline.wall_clock(capture)
        for ts, linktype, frame in capture:
            pipeline.packet(ts, linktype, frame)
        zones.apply(pipeline.flow_hooks)   # a reload the stop overtook still applies to the last flows
        stats = pipeline.finish()
        pipeline.report(capture)
        capture.close()
        return stats, [], [], False

    worker_process(capture_shard, send, others)


class LiveFleet:
    """The workers as `otsensor run` sees a capture source: stop, statistics, close, and their events."""

    def __init__(self, captures: FanoutCaptures, pipeline: Pipeline, zones_path: str | None,
                 zone_tagger: Callable | None) -> None:
        self.count = len(captures.captures)
        self.interfaces = captures.interfaces
        self.lost: list[str] = []
        self.tick: Callable[[], None] = lambda: None
        # a signal between the fork and a worker's own handlers would kill it: held back until they are set
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            zones = ZonesReload(zones_path, zone_tagger)
            self.workers = Workers(self.count, live_worker_main,
                                   lambda w: (w, self.count, captures, pipeline.limits, pipeline.flow_hooks, zones))
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
            captures.close()   # each worker holds its own sockets now

    def events(self) -> Iterator[tuple]:
        """Every worker's events, merged in capture-time order; a TICK is any worker's watermark."""
        return heapq.merge(*(self._stream(w) for w in range(self.count)), key=itemgetter(0))

    def _stream(self, w: int) -> Iterator[tuple]:
        try:
            yield from self.workers.events(w)
        except WorkerLost as exc:   # its flows are lost; the others finish theirs and the run stops
            self.lost.append(str(exc))
            self.stop()

    def stop(self) -> None:
        self.workers.interrupt(signal.SIGTERM)

    def reload(self) -> None:
        self.workers.interrupt(signal.SIGHUP)

    def close(self) -> None:
        self.workers.stop()

    def statistics(self) -> dict[str, Any]:
        """The capture counters summed over the workers, per interface and in total, and each worker's."""
        per_interface = {name: dict.fromkeys((*CAPTURE_COUNTERS, "frames"), 0) for name in self.interfaces}
        workers = []
        for w in range(self.count):
            report = self.workers.reports.get(w)
            mine = dict.fromkeys(CAPTURE_COUNTERS, 0) if report is None else {
                key: report["capture"][key] for key in CAPTURE_COUNTERS}
            for iface in report["capture"]["interfaces"] if report else ():
                for key, total in per_interface[iface["name"]].items():
                    per_interface[iface["name"]][key] = total + iface[key]
            workers.append({"worker": w + 1, "pid": self.workers.procs[w].pid, **mine,
                            "packets": report["pipeline"]["packets"] if report else 0,
                            "flows_active": report["flows_active"] if report else 0,
                            "alive": self.workers.procs[w].is_alive()})
        totals = {key: sum(worker[key] for worker in workers) for key in CAPTURE_COUNTERS}
        return {**totals, "interfaces": [{"name": name, **counts} for name, counts in per_interface.items()],
                "workers": workers}


class WorkersRunner(Runner):
    """`otsensor run` as the aggregator of a LiveFleet: replays the workers' events into the analyzers and
    sinks, and keeps every wall-clock duty of the single process (stats, documents, SIGHUP, checkpoints)."""

    source: LiveFleet   # type: ignore[assignment]

    def _feed(self) -> None:
        Replay(self.pipeline).run(self._ticking(self.source.events()))

    def _ticking(self, events: Iterator[tuple]) -> Iterator[tuple]:
        tick = self.tick
        for event in events:
            if event[1] == TICK:    # at least every TICK_EVERY seconds from each worker
                tick()
            else:
                yield event

    def _reloaded(self) -> None:
        self.source.reload()   # the workers tag the flows that end from now on with the new zones

    def _move_clock(self, now: float) -> None:
        pass   # the flows are the workers': each sweeps its own on the wall clock

    def _note_stream_end(self) -> None:
        self.result.errors.extend(self.source.lost)

    def _parts(self, final: bool) -> list[dict[str, Any]]:
        workers = self.source.workers
        parts = []
        for w in range(self.source.count):
            if final and w in workers.finals:
                parts.append(workers.finals[w][1])
            elif w in workers.reports:    # (a worker that died: what it reported last)
                parts.append(workers.reports[w]["pipeline"])
        return parts

    def _pipeline_stats(self) -> dict[str, Any]:
        parts = self._parts(final=False)
        return merge_stats(parts, self.pipeline, shared=()) if parts else super()._pipeline_stats()

    def _final_pipeline_stats(self) -> dict[str, Any] | None:
        parts = self._parts(final=True)
        return merge_stats(parts, self.pipeline, shared=()) if parts else None

    def _stats(self, state: str, capture: dict[str, Any]) -> dict[str, Any]:
        doc = stats_document(self, state, capture)
        merged = self._pipeline_stats()
        doc.update({key: merged[key] for key in ("packets", "bytes", "undecoded_packets", "flows",
                                                 "flows_timed_out", "flows_evicted")})
        doc["flows_active"] = sum(worker["flows_active"] for worker in capture["workers"])
        doc["errors"] = merged["dissector_errors"] + merged["analyzer_errors"] + merged["sink_errors"]
        return doc
