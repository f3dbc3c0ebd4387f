"""A worker: follows the flows its shard owns, dissects them, and sends what happened as events.

A worker sees every frame (each opens the capture itself; the page cache serves them all), decodes it
(so fragments reassemble everywhere and the reassembled datagram reaches its owner) and lets its clock
run on it, so idle sweeps happen at the same capture times as in one process; only the frames whose
flow it owns (parallel/shard.py) go further. It has no sinks and no analyzers of its own: one
:class:`EventChannel` stands in for both and ships rows and records to the aggregator.

:meth:`WorkerPipeline.frame` takes ``(index, ts, linktype, frame)``, the index being the frame's position
in the one stream every worker sees (a file).  A live sensor's workers (live.py) see only their own
frames, from their fanout sockets, and key their events by capture time instead.
"""
from __future__ import annotations

import dataclasses
import os
import pickle
import signal
import sys
from typing import Any, Callable, Iterable

from mypy_extensions import mypyc_attr

from otsensor.dissectors.arp import ArpMessage
from otsensor.dissectors.base import Op, Record
from otsensor.dissectors.registry import default_registry
from otsensor.sensor.decode import decode
from otsensor.sensor.flows.table import Flow
from otsensor.sensor.parallel.events import (AFTER, ARP, END, FLOW, PACKET, RECORD, RENEW, ROW, SWEEP, TICK,
                                             OpNumbers, batch_bytes, ident_fields, snapshot)
from otsensor.sensor.parallel.shard import UNKNOWN, frame_owner, shard_of
from otsensor.sensor.pipeline import Limits, Pipeline, raised_at
from otsensor.sensor.sinks.jsonl import encode_line

BATCH_EVENTS = 512     # events per message through the pipe (events.batch_bytes)
TICK_EVERY = 2048      # frames after which a quiet worker still sends: the merge waits for every worker


class EventChannel:
    """The worker pipeline's only sink and only analyzer: what it writes and observes, as events."""

    name = "workers"

    def __init__(self, send: Callable[[bytes], None], worker: int, workers: int) -> None:
        self.send = send
        self.op_numbers = OpNumbers(worker, workers)
        self.batch: list[tuple] = []
        self.key: tuple = (-1, AFTER, 0, 0)   # where the events produced now belong (events.py)
        self.announced: set[str] = set()      # flows whose snapshot the aggregator has
        self.conn_line = b""

    def write(self, log: str, row: dict[str, Any]) -> None:
        line = encode_line(row)      # the bytes the aggregator's JSONL files take as they are
        if log == "conn":            # the flow's own row: travels with its snapshot (observe_flow, next)
            self.conn_line = line
            return
        self.batch.append((self.key, ROW, log, line))

    def observe_record(self, flow: Flow, record: Record, op: Op | None, ident: Any) -> None:
        # The pipeline wrote the record's row just before asking this: one event carries both.
        key, _, log, line = self.batch[-1]
        snap = None
        if flow.uid not in self.announced:
            self.announced.add(flow.uid)
            snap = snapshot(flow)
        extras = record.extra_ops()
        numbers = self.op_numbers
        self.batch[-1] = (key, RECORD, log, line, flow.uid, snap, flow.service, record.ts,
                          None if op is None else numbers.ref(op), ident_fields(ident),
                          tuple([numbers.ref(extra) for extra in extras]) if extras else ())

    def observe_arp(self, message: ArpMessage) -> None:
        # The pipeline wrote the message's row just before: one event carries both.
        key, _, log, line = self.batch[-1]
        self.batch[-1] = (key, ARP, line, message.fields())

    def observe_flow(self, flow: Flow) -> None:
        self.announced.discard(flow.uid)
        self.batch.append((self.key, FLOW, self.conn_line, snapshot(flow)))

    def flush(self, upto: tuple) -> None:
        """Send the batch, ending with a tick: nothing before ``upto`` will come from this worker."""
        self.batch.append((upto, TICK))
        self.send(batch_bytes(self.batch))
        self.batch = []


@mypyc_attr(allow_interpreted_subclasses=True)   # live.py's LiveWorkerPipeline extends it
class WorkerPipeline(Pipeline):
    """The pipeline of worker ``worker`` of ``workers``: owns its shard's flows, sees every frame's time."""

    def __init__(self, worker: int, workers: int, send: Callable[[bytes], None], limits: Limits,
                 flow_hooks: Iterable[Callable[[Flow], None]] = ()) -> None:
        self.channel = EventChannel(send, worker, workers)
        super().__init__([self.channel], [self.channel], registry=default_registry(), limits=limits,
                         flow_hooks=flow_hooks)
        self.worker = worker
        self.workers = workers
        self.index = -1
        self.stage = PACKET        # what finishes flows now: a sweep, a new capture, the end, or a frame
        self.flush_due = TICK_EVERY
        self.stop_requested = False   # Ctrl-C: stop at the next frame, never halfway through sending a batch

    @property
    def frames_read(self) -> int:
        return self.index + 1   # every frame, not only the ones this worker owns

    def packet(self, ts: float, linktype: int, frame: bytes) -> None:
        """The next frame of a capture file (sensor.analyze.read_files feeds every worker the same files)."""
        self.frame(self.index + 1, ts, linktype, frame)

    def frame(self, index: int, ts: float, linktype: int, frame: bytes) -> None:
        if self.stop_requested:
            raise KeyboardInterrupt
        self.index = index
        channel = self.channel
        if ts >= self.next_sweep:
            self.stage = SWEEP
            self.clock(ts)
            self.stage = PACKET
        elif ts > self.last_ts:
            self.last_ts = ts
        owner = frame_owner(linktype, frame, self.workers)   # most frames: another worker's, not decoded
        if owner == self.worker or owner == UNKNOWN:
            self.own_frame(index, ts, linktype, frame, owner == self.worker)
        if index >= self.flush_due or len(channel.batch) >= BATCH_EVENTS:
            channel.flush((index, PACKET, 0, 0))
            self.flush_due = index + TICK_EVERY

    def own_frame(self, index: int, ts: float, linktype: int, frame: bytes, mine: bool) -> None:
        """Decode a frame that is this worker's (``mine``) or may be (a fragment, a frame that is not IP...)."""
        p = decode(linktype, frame, self.defrag, ts)
        stats = self.stats
        if p is None:
            if self.worker == 0:   # frames no flow owns are counted (and ARP written) once, by the first worker
                stats.packets += 1
                stats.bytes += len(frame)
                self.channel.key = (index, PACKET, 0, 0)
                if not self.link_frame(ts, linktype, frame):
                    stats.undecoded += 1
        elif mine or shard_of(p, self.workers) == self.worker:
            stats.packets += 1
            stats.bytes += len(frame)
            self.channel.key = (index, PACKET, 0, 0)
            self.decoded(ts, p)

    def _new_flow(self, key: tuple, flags: int, ts: float) -> Flow:
        flow = super()._new_flow(key, flags, ts)
        flow.order = self.index
        return flow

    def _finish(self, flow: Flow, reason: str) -> None:
        channel = self.channel
        during = channel.key
        if self.stage == SWEEP:
            channel.key = (self.index, SWEEP, flow.order, 0)
        elif self.stage == RENEW:    # before the new file's first frame, which is the next index
            channel.key = (self.index + 1, RENEW, flow.first_ts, flow.order)
        elif self.stage == END:
            channel.key = (END, RENEW, flow.first_ts, flow.order)
        super()._finish(flow, reason)   # (a flow evicted or reused while a frame is processed: that frame's key)
        channel.key = during

    def new_capture(self, first_ts: float) -> None:
        self.stage = RENEW
        super().new_capture(first_ts)
        self.stage = PACKET

    def capture_anomaly(self, ts: float, name: str, reason: str, detail: dict[str, Any]) -> None:
        if self.worker == 0:   # every worker reads the same file; one of them reports what it had to mend
            self.channel.key = (self.index, AFTER, 0, 0)   # found reading the frame after this one
            super().capture_anomaly(ts, name, reason, detail)

    def finish(self) -> dict[str, Any]:
        self.stage = END
        stats = super().finish()
        self.channel.flush((END + 1, 0, 0, 0))
        return stats


def per_worker(limits: Limits, workers: int) -> Limits:
    """--max-flows and --flow-memory are the whole sensor's: each of ``workers`` gets its share."""
    return dataclasses.replace(limits, max_flows=max(1, limits.max_flows // workers),
                               flow_memory=max(1 << 20, limits.flow_memory // workers))


def worker_main(send: Any, others: list[Any], worker: int, workers: int, paths: list[str], limits: Limits,
                flow_hooks: list[Callable[[Flow], None]], progress: Any) -> None:
    """A worker process of `analyze --workers`: read ``paths`` and send events through ``send``."""
    from otsensor.sensor.analyze import RunResult, read_files

    def read_shard() -> tuple:
        pipeline = WorkerPipeline(worker, workers, send.send_bytes, per_worker(limits, workers), flow_hooks)

        def stop_reading(signum: int, frame: Any) -> None:
            """Ctrl-C (or the aggregator passing it on): stop reading, then finish the flows held."""
            pipeline.stop_requested = True

        signal.signal(signal.SIGINT, stop_reading)
        result = RunResult({})
        interrupted = False
        try:
            read_files(pipeline, paths, result, progress)
        except KeyboardInterrupt:
            interrupted = True
        return pipeline.finish(), result.errors, result.warnings, interrupted

    worker_process(read_shard, send, others)


def worker_process(body: Callable[[], tuple], send: Any, others: list[Any]) -> None:
    """Run a worker's ``body`` in the forked process and end it: ("done", *what body returns) through
    ``send`` (a multiprocessing Connection), or ("failed", what went wrong).  ``others`` are the read ends
    of its own pipe and of those of the workers started before it, which the fork copied: closed, so that
    only the aggregator holds a read end (if it dies, writing fails)."""
    for conn in others:
        conn.close()
    code = 0
    try:
        send.send_bytes(pickle.dumps(("done", *body())))
    except BaseException as exc:  # a bug: tell the aggregator in one line, and go
        code = 1
        try:
            send.send_bytes(pickle.dumps(("failed", f"{type(exc).__name__}: {exc}{raised_at(exc)}")))
        except Exception:  # noqa: BLE001 - the aggregator is gone too: nobody left to tell
            pass
    finally:
        sys.stderr.flush()
        os._exit(code)   # a forked copy of the aggregator: never run its exit handlers or flush its files
