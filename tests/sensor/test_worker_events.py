"""What crosses a worker's pipe (sensor/parallel/events.py): ops numbered once sent, identities with a plain side,
and batches in marshal's format, pickled when they hold a value marshal cannot write.

The outputs of `--workers N` against one process are compared in test_workers.py; these are the edge cases the
encoding has to get right whatever a capture holds (a changing write, a detail that cannot be hashed, more kinds
of op than a worker numbers, a value of a dissector's own class)."""
from __future__ import annotations

import pickle
from typing import Any

from otsensor.dissectors.base import Category, Direction, Op
from otsensor.sensor.parallel.aggregate import Workers
from otsensor.sensor.parallel.events import (PICKLED, RECORD, TICK, UNNUMBERED, OpNumbers, OpTable, batch_bytes,
                                             batch_of, ident_fields, ident_of, op_fields)

POLL = Op("modbus", "Read Holding Registers", Category.READ, "holding_registers", 0, 10, ok=True, unit=1)


def same_op(a: Op, b: Op) -> bool:
    return op_fields(a) == op_fields(b)


def test_an_op_crosses_whole_once_then_as_its_number_and_comes_back_as_one_object() -> None:
    numbers, table = OpNumbers(1, 3), OpTable()
    twin = Op("modbus", "Read Holding Registers", Category.READ, "holding_registers", 0, 10, ok=True, unit=1)
    other = Op("modbus", "Read Coils", Category.READ, "coils", 0, 8, ok=True, unit=1)
    refs = [numbers.ref(POLL), numbers.ref(twin), numbers.ref(other), numbers.ref(POLL)]
    assert refs[0] == (1, op_fields(POLL)) and refs[1] == 1 and refs[3] == 1   # worker 1 of 3: 0*3+1
    assert refs[2] == (4, op_fields(other))                                      # 1*3+1
    back = [table.op(ref) for ref in batch_of(batch_bytes(refs))]               # through the wire format
    assert back[0] is back[1] is back[3] and back[2] is not back[0]
    assert same_op(back[0], POLL) and same_op(back[2], other)


def test_numbers_of_different_workers_never_meet() -> None:
    first, second = OpNumbers(0, 2), OpNumbers(1, 2)
    seen = {first.ref(Op("s7comm", f"f{n}", Category.READ))[0] for n in range(50)}  # type: ignore[index]
    seen_too = {second.ref(Op("s7comm", f"f{n}", Category.READ))[0] for n in range(50)}  # type: ignore[index]
    assert len(seen) == len(seen_too) == 50 and not seen & seen_too


def test_written_values_unhashable_details_and_kinds_past_the_limit_cross_whole_every_time() -> None:
    numbers, table = OpNumbers(0, 2, limit=1), OpTable()
    write = Op("modbus", "Write Multiple Registers", Category.WRITE, "holding_registers", 5, 3, (1, 2, 3), ok=True)
    odd = Op("enip", "Forward Open", Category.SESSION, detail=(("rpi_us", [1000, 2000]),))   # a list: no hash
    later = Op("dnp3", "READ", Category.READ, "Class 0")
    refs = [numbers.ref(POLL), numbers.ref(write), numbers.ref(write), numbers.ref(odd), numbers.ref(later),
            numbers.ref(later), numbers.ref(POLL)]
    assert refs[0] == (0, op_fields(POLL)) and refs[6] == 0
    for ref, op in zip(refs[1:6], (write, write, odd, later, later)):
        assert ref == (UNNUMBERED, op_fields(op))
    back = [table.op(ref) for ref in batch_of(batch_bytes(refs))]
    assert [op_fields(op) for op in back] == [op_fields(op) for op in (POLL, write, write, odd, later, later, POLL)]
    assert back[4] is not back[5] and list(table.ops) == [0]   # nothing unnumbered is kept


def test_an_identity_crosses_with_its_side_as_an_integer_and_comes_back_as_the_member() -> None:
    ident = (Direction.RESP, {"vendor": "Siemens", "rack": 0})
    crossed = batch_of(batch_bytes([(ident_fields(ident),)]))[0][0]
    assert type(crossed[0]) is int
    back = ident_of(crossed)
    assert back == ident and back[0] is Direction.RESP
    assert ident_of(ident_fields(None)) is None


def send_unusual_batch(send: Any, others: list[Any]) -> None:
    """A worker whose batch holds an enum member (marshal writes no class of a dissector's own), then ends."""
    for conn in others:
        conn.close()
    batch = [((0, 1, 0, 0), RECORD, (Direction.ORIG, 7)), ((1, 1, 0, 0), TICK)]
    send.send_bytes(batch_bytes(batch))
    send.send_bytes(batch_bytes([((2, 1, 0, 0), TICK)]))
    send.send_bytes(pickle.dumps(("done", {}, [], [], False)))
    send.close()


def test_a_batch_marshal_cannot_write_crosses_pickled_and_keeps_its_classes() -> None:
    assert batch_bytes([((0, 1, 0, 0), RECORD, (Direction.ORIG, 7))])[0] == PICKLED
    assert batch_bytes([((0, 1, 0, 0), RECORD, (0, 7))])[0] != PICKLED
    workers = Workers(1, send_unusual_batch, lambda w: ())
    try:
        batches = list(workers.batches(0))
    finally:
        workers.stop()
    assert batches == [[((0, 1, 0, 0), RECORD, (Direction.ORIG, 7)), ((1, 1, 0, 0), TICK)], [((2, 1, 0, 0), TICK)]]
    assert type(batches[0][0][2][0]) is Direction
    assert workers.finals[0][0] == "done"


def test_details_of_equal_values_but_other_types_are_other_ops() -> None:
    """1, 1.0 and True are equal and hash alike; an op with one of them in its detail must come back with it,
    not with the first op's (the aggregator writes the detail on graph edges)."""
    numbers, table = OpNumbers(0, 1), OpTable()
    ops = [Op("enip", "Forward Open", Category.SESSION, detail=(("transport_class", value),))
           for value in (1, 1.0, True, 1)]
    back = [table.op(ref) for ref in batch_of(batch_bytes([numbers.ref(op) for op in ops]))]
    assert [type(dict(op.detail or ())["transport_class"]) for op in back] == [int, float, bool, int]
    assert back[3] is back[0] and back[1] is not back[0] and back[2] is not back[0]
