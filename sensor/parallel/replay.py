"""The aggregator's hot loop: the workers' batches merged into one order and replayed into the analysis.

Compiled with the hot path (setup.py): every record of the run passes through :meth:`Replay.run`, so
this is the aggregator's share of the per-record work, besides the analyzers and sinks it feeds.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

import orjson

from otsensor.dissectors.arp import ArpMessage
from otsensor.sensor.parallel.events import ARP, FLOW, RECORD, ROW, FlowView, OpTable, RecordView, ident_of
from otsensor.sensor.pipeline import Pipeline


def merged(streams: list[Iterator[list[tuple]]]) -> Iterator[tuple]:
    """The events of every worker's batches in key order (each stream's own keys never go back); at equal
    keys the earlier stream's first, as heapq.merge orders them. A batch is taken from a stream only once
    the merge has used up the one before, so a slow worker holds the merge, never the other way round."""
    batches: list[list[tuple]] = []
    positions: list[int] = []
    live: list[int] = []
    for w, stream in enumerate(streams):
        batches.append([])
        positions.append(0)
        if _refill(streams, batches, positions, w):
            live.append(w)
    while live:
        best = live[0]
        for w in live[1:]:
            if batches[w][positions[w]][0] < batches[best][positions[best]][0]:
                best = w
        # the bound: the smallest head of the others (their events at the same key come after, if later streams)
        bound: tuple | None = None
        bound_w = -1
        for w in live:
            if w != best:
                head = batches[w][positions[w]][0]
                if bound is None or head < bound:
                    bound, bound_w = head, w
        batch, i = batches[best], positions[best]
        n = len(batch)
        if bound is None:
            while i < n:
                yield batch[i]
                i += 1
        else:
            while i < n:
                key = batch[i][0]
                if key < bound or (key == bound and best < bound_w):
                    yield batch[i]
                    i += 1
                else:
                    break
        positions[best] = i
        if i == n and not _refill(streams, batches, positions, best):
            live.remove(best)


def _refill(streams: list[Iterator[list[tuple]]], batches: list[list[tuple]], positions: list[int],
            w: int) -> bool:
    """The next non-empty batch of stream ``w`` in place of its last; False once the stream has ended."""
    for batch in streams[w]:
        if batch:
            batches[w] = batch
            positions[w] = 0
            return True
    return False


class Replay:
    """Feeds merged events to the run's sinks and analyzers exactly as its Pipeline would have."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.views: dict[str, FlowView] = {}
        self.ops = OpTable()
        # How each sink takes a worker's line: as it is (write_line), as text, or parsed back into its row.
        self.writers: list[tuple[Any, Callable[[str, bytes], None] | None, Callable[[str, str], None] | None]] = [
            (sink, getattr(sink, "write_line", None), getattr(sink, "write_text", None)) for sink in pipeline.sinks]

    def write(self, log: str, line: bytes) -> None:
        row = None
        for sink, write_line, write_text in self.writers:
            try:
                if write_line is not None:
                    write_line(log, line)
                elif write_text is not None:
                    write_text(log, line[:-1].decode())
                else:
                    row = row if row is not None else orjson.loads(line)
                    sink.write(log, row)
            except Exception as exc:
                self.pipeline.sink_failed(sink, log, exc)

    def run(self, events: Iterable[tuple]) -> None:
        views, pipeline, ops = self.views, self.pipeline, self.ops
        analyzers: list[Any] = pipeline.analyzers   # (they read a FlowView as they read a Flow)
        for event in events:
            kind: int = event[1]
            if kind == RECORD:
                log: str = event[2]
                line: bytes = event[3]
                uid: str = event[4]
                ref = event[8]
                extras: tuple = event[10]
                op = None if ref is None else ops.op(ref)
                if extras:
                    extras = tuple([ops.op(extra) for extra in extras])
                self.write(log, line)
                view = views.get(uid)
                if view is None:
                    view = views[uid] = FlowView(event[5])
                view.service = event[6]
                record = RecordView(event[7], log, line, extras)
                ident = ident_of(event[9])
                try:
                    for analyzer in analyzers:
                        analyzer.observe_record(view, record, op, ident)
                except Exception as exc:  # as Pipeline._emit: a bug costs one record's analysis
                    pipeline._contained("analyzer_errors", log, exc)
            elif kind == FLOW:
                self.flow(event[2], event[3])
            elif kind == ROW:
                self.write(event[2], event[3])
            elif kind == ARP:
                self.write(ArpMessage.LOG, event[2])
                pipeline.observe_arp(ArpMessage(*event[3]))

    def flow(self, line: bytes, snap: tuple) -> None:
        self.write("conn", line)
        view = self.views.pop(snap[0], None)
        if view is None:
            view = FlowView(snap)
        else:
            view.update(snap)
        analyzers: list[Any] = self.pipeline.analyzers
        for analyzer in analyzers:
            try:
                analyzer.observe_flow(view)
            except Exception as exc:
                self.pipeline._contained("analyzer_errors", "conn", exc)
