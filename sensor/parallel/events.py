"""What crosses from a worker to the aggregator: events, the order they replay in, and flow and record views.

Every event is ``(key, kind, ...)``. ``key`` places it in the order one process would have produced
it: ``(frame index, phase, a, b)``. Every worker sees every frame index, so keys compare across workers:

* ``(i, RENEW, first_ts, order)``: a new capture file starts at frame ``i`` and every open flow is
  finished first, oldest first (Pipeline.new_capture);
* ``(i, SWEEP, order, 0)``: the idle sweep that frame ``i`` triggers, which finishes flows in the order
  they were opened (``order`` is the index of the frame that opened a flow: one flow per frame at most);
* ``(i, PACKET, 0, 0)``: frame ``i`` itself, which only its owner processes;
* ``(i, AFTER, 0, 0)``: what reading the next frame produced (capture anomalies, worker 0 only);
* ``(END, RENEW, first_ts, order)``: the end of input, flows finished oldest first (FlowTable.finish_all).

Within one key the events of one worker keep their order, and no two workers share a key that both
produce events for, so ``heapq.merge`` over the workers' streams replays the single-process order.
"""
from __future__ import annotations

from typing import Any, Final

import orjson

from otsensor.dissectors.base import Op, Record
from otsensor.sensor.flows.table import Flow, proto_name, protocol_key

RENEW: Final = -1
SWEEP: Final = 0
PACKET: Final = 1
AFTER: Final = 2
END: Final = 1 << 62          # after every frame index

# Event kinds (the second element of an event). A line is a row as the JSONL sink writes it: orjson's UTF-8
# bytes, newline included (sinks/jsonl.py encode_line), so the aggregator's files take it as it is.
ROW: Final = 0       # (key, ROW, log, line): a row another component wrote (capture anomalies)
RECORD: Final = 1    # (key, RECORD, log, line, uid, snapshot | None, service, ts, op, ident, extra_ops), each
#                      op as op_fields(op)
FLOW: Final = 2      # (key, FLOW, conn line, snapshot): a flow finished
TICK: Final = 3      # (key, TICK): nothing before ``key`` is still to come from this worker
ARP: Final = 4       # (key, ARP, line, ArpMessage.fields()): an ARP message (worker 0 only)

ID_FIELDS: Final = ("ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p")


def snapshot(flow: Flow) -> tuple:
    """What the analyzers read of a flow (baselines.inventory.FlowLike), as plain values."""
    return (flow.uid, flow.orig_h, flow.orig_p, flow.resp_h, flow.resp_p, flow.transport, flow.service,
            flow.first_ts, flow.last_ts, list(flow.macs), list(flow.pkts), list(flow.bytes),
            dict(flow.extra), flow.vlan)  # copies: a batch
    # is pickled later, when the live lists have moved on


def op_fields(op: Op) -> tuple:
    """An Op as its constructor's arguments: a compiled Op does not pickle (mypyc classes do not)."""
    return (op.protocol, op.function, op.category, op.space, op.start, op.count, op.values, op.ok, op.tags,
            op.unit, op.detail)


def op_of(f: tuple) -> Op:
    """The Op that op_fields gave ``f`` of (each argument passed by position: a direct native call)."""
    return Op(f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9], f[10])


class FlowView:
    """A worker's flow as the aggregator's analyzers see it: the FlowLike fields, updated in place when
    the flow finishes (an analyzer holding it sees the final counts, as it would hold the live flow)."""

    __slots__ = ("uid", "orig_h", "orig_p", "resp_h", "resp_p", "transport", "service", "first_ts", "last_ts",
                 "macs", "pkts", "bytes", "extra", "vlan")

    def __init__(self, snap: tuple) -> None:
        self.update(snap)

    def update(self, snap: tuple) -> None:
        (self.uid, self.orig_h, self.orig_p, self.resp_h, self.resp_p, self.transport, self.service,
         self.first_ts, self.last_ts, self.macs, self.pkts, self.bytes, self.extra, self.vlan) = snap

    @property
    def proto(self) -> str:
        return proto_name(self.transport)

    @property
    def protocol_key(self) -> str:
        return protocol_key(self.service, self.transport, self.resp_p)


class RecordView(Record):
    """A worker's record as the analyzers read it: ts, LOG, extra_ops() and (for alert evidence, rarely)
    to_dict(), which is parsed back from the row the worker already encoded instead of being shipped.
    A Record (the analyzers are compiled and check it); its log is the instance's, read through ``LOG``
    as a record class's constant is (one class for every log: no class made per log at run time)."""

    __slots__ = ("log", "line", "extras")

    def __init__(self, ts: float, log: str, line: bytes, extras: tuple[Op, ...]) -> None:
        super().__init__(ts)
        self.log = log
        self.line = line
        self.extras = extras

    @property
    def LOG(self) -> str:   # type: ignore[override]  # (a constant of each record class; here the row's)
        return self.log

    def extra_ops(self) -> tuple[Op, ...]:
        return self.extras

    def to_dict(self) -> dict[str, Any]:
        row: dict[str, Any] = orjson.loads(self.line)
        for name in ID_FIELDS:
            row.pop(name, None)
        return row
