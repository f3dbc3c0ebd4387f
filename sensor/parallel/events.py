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

import marshal
import pickle
from typing import Any, Final

import orjson

from otsensor.dissectors.base import Direction, Op, Record
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
#                      op as OpNumbers.ref gives it and the ident as ident_fields does
FLOW: Final = 2      # (key, FLOW, conn line, snapshot): a flow finished
TICK: Final = 3      # (key, TICK): nothing before ``key`` is still to come from this worker
ARP: Final = 4       # (key, ARP, line, ArpMessage.fields()): an ARP message (worker 0 only)

ID_FIELDS: Final = ("ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p")
# Kinds of op a worker numbers at most (each kept once in the worker and once in the aggregator): past it, an op
# crosses whole every time. Polls repeat a few thousand kinds (the 50,000-frame mix: 4,340 distinct ops).
OP_NUMBERS_MAX: Final = 1 << 16
UNNUMBERED: Final = -1
DIRECTIONS: Final = (Direction.ORIG, Direction.RESP)
# The first byte of every pickle a worker sends (protocol 2 and later open with the PROTO opcode); a batch in
# marshal's format never starts with it (marshal's type codes are ASCII letters, some with bit 7 set as a flag,
# and a list's is "[" or 0xDB).
PICKLED: Final = 0x80


def batch_bytes(batch: list[tuple]) -> bytes:
    """A batch of events as it crosses the pipe: in marshal's format, which writes and reads the plain values
    events are made of (tuples, lists, dicts, strings, bytes, numbers) in about half the time pickle takes.
    A batch holding anything else (a value of a class of a dissector's own) crosses as the pickle of
    ("batch", batch), which keeps its class."""
    try:
        return marshal.dumps(batch)
    except ValueError:   # "unmarshallable object"
        return pickle.dumps(("batch", batch), protocol=pickle.HIGHEST_PROTOCOL)


def batch_of(data: bytes) -> list[tuple] | None:
    """The batch :func:`batch_bytes` made ``data`` of, or None if ``data`` is a pickled message."""
    if data[0] == PICKLED:
        return None
    batch: list[tuple] = marshal.loads(data)
    return batch


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


class OpNumbers:
    """A worker's numbers for the kinds of op it sends. Most records repeat an op seen before (a poll): the
    first crosses as ``(number, op_fields)`` and every later one as its number alone, an integer, which the
    aggregator's :class:`OpTable` turns back into the Op it built the first time (pickling an op's 11 fields
    for every record, and building it again, was most of what a record cost to cross). An op carrying
    written values (they change from one write to the next), with a detail that cannot be hashed, or past
    ``limit`` kinds (OP_NUMBERS_MAX) crosses as ``(UNNUMBERED, op_fields)``. Numbers are ``n * workers + worker``:
    distinct across the workers, whose events the aggregator merges into one stream."""

    def __init__(self, worker: int, workers: int, limit: int = OP_NUMBERS_MAX) -> None:
        self.worker = worker
        self.workers = workers
        self.limit = limit
        self.numbers: dict[tuple, int] = {}

    def ref(self, op: Op) -> object:
        fields = op_fields(op)
        if op.values is not None:
            return (UNNUMBERED, fields)
        key = fields if op.detail is None else _typed(fields, op.detail)
        try:
            number = self.numbers.get(key)
        except TypeError:   # a detail value that cannot be hashed
            return (UNNUMBERED, fields)
        if number is not None:
            return number
        if len(self.numbers) >= self.limit:
            return (UNNUMBERED, fields)
        number = len(self.numbers) * self.workers + self.worker
        self.numbers[key] = number
        return (number, fields)


def _typed(fields: tuple, detail: tuple[tuple[str, Any], ...]) -> tuple:
    """An op's fields with the types of its detail's values: equal values of other types (1, 1.0 and True)
    are other ops, written otherwise (the other fields each have one type: strings, ints, a bool)."""
    return (fields, tuple([type(value) for _, value in detail]))


class OpTable:
    """The aggregator's side of :class:`OpNumbers`: the Op of each number the workers sent. One Op object
    stands for every record of its kind, as a dissector's cached poll op does (ops are immutable)."""

    def __init__(self) -> None:
        self.ops: dict[int, Op] = {}

    def op(self, ref: object) -> Op:
        if isinstance(ref, int):
            return self.ops[ref]
        number: int = ref[0]   # type: ignore[index]
        op = op_of(ref[1])     # type: ignore[index]
        if number != UNNUMBERED:
            self.ops[number] = op
        return op


def ident_fields(ident: tuple[Direction, dict[str, Any]] | None) -> tuple[int, dict[str, Any]] | None:
    """A record's identity with its side as a plain integer: an enum member pickles (and unpickles) by
    looking its class up by name, some hundred times what an integer costs."""
    return None if ident is None else (int(ident[0]), ident[1])


def ident_of(fields: tuple[int, dict[str, Any]] | None) -> tuple[Direction, dict[str, Any]] | None:
    return None if fields is None else (DIRECTIONS[fields[0]], fields[1])


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
