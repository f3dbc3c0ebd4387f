"""A ClickHouse batch in pieces (sensor/clickhouse/batches.py): the capture side hands each piece of a batch
over as soon as it holds ``piece_bytes``, so the delivery process streams the batch while it fills.  The pieces
of a batch, joined, are exactly its rows in order, numbered from 0 without a gap; a batch still holds exactly
``batch_rows`` rows, and one sealed by age ends with its last piece."""
from __future__ import annotations

import orjson
import pytest

from otsensor.sensor.clickhouse.batches import (UNBOUNDED, Batcher, Lines, decode_batch, encode_batch, joined,
                                                piece_from, piece_head)
from otsensor.sensor.config import ClickHouseConfig


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Recorder(Batcher):
    """Keeps every piece handed over: (table, batch id, lines, rows, start, last)."""

    def __init__(self, piece_bytes: int, batch_rows: int, clock: Clock | None = None) -> None:
        cfg = ClickHouseConfig(url="clickhouse://127.0.0.1/otsensor", batch_rows=batch_rows, flush_interval=5.0)
        super().__init__(cfg, ["modbus", "conn"], clock or Clock(), piece_bytes)
        self.seen: list[tuple[str, int, bytes, int, int, bool]] = []

    def hand_over_piece(self, table: str, batch_id: int, rows: Lines, start: int, last: bool) -> None:
        self.seen.append((table, batch_id, bytes(rows.body), rows.count, start, last))


def row(n: int) -> dict:
    return {"ts": 1780000000.0 + n, "uid": f"C{n}", "func": "READ_HOLDING_REGISTERS", "values": list(range(n % 9))}


def batches(seen: list) -> dict[int, list]:
    out: dict[int, list] = {}
    for piece in seen:
        out.setdefault(piece[1], []).append(piece)
    return out


@pytest.mark.parametrize("piece_bytes", [1, 200, 1000, 5000])
def test_the_pieces_of_each_batch_are_its_rows_in_order_numbered_without_a_gap(piece_bytes):
    sink = Recorder(piece_bytes, batch_rows=37)
    lines = [orjson.dumps(row(n)) for n in range(100)]
    for n in range(100):
        sink.write("modbus", row(n))
    sink.seal_all()
    by_batch = batches(sink.seen)
    assert [sum(p[3] for p in pieces) for pieces in by_batch.values()] == [37, 37, 26]
    written = []
    for pieces in by_batch.values():
        assert [p[4] for p in pieces] == [sum(q[3] for q in pieces[:i]) for i in range(len(pieces))]   # starts
        assert [p[5] for p in pieces] == [False] * (len(pieces) - 1) + [True]                          # last
        for _, _, body, count, _, last in pieces:
            assert (body.split(b"\n") if count else []) == lines[len(written):len(written) + count]
            if count > 1:         # cut at the first row that brought it to piece_bytes (newlines counted)
                assert len(body.rsplit(b"\n", 1)[0]) + 1 < piece_bytes
            if not last:
                assert len(body) + 1 >= piece_bytes
            written += body.split(b"\n") if count else []
    assert written == lines
    assert sink.sent_counts() == {"modbus": 100}


@pytest.mark.parametrize("piece_bytes", [200, UNBOUNDED])
def test_lines_beyond_a_pieces_first_buffer_are_kept_whole(piece_bytes):
    """A piece's buffer is made at piece_bytes and a little more (whole batches: 1 MiB) and doubles when a line
    does not fit: a 100 KB line in a 200-byte piece, and over 4 MiB of lines in one whole batch."""
    sink = Recorder(piece_bytes, batch_rows=1000)
    rows = [dict(row(n), values=list(range(20_000 if n % 7 == 3 else n))) for n in range(300)]
    for r in rows:
        sink.write("modbus", r)
    sink.seal_all()
    body = b"\n".join(piece[2] for piece in sink.seen if piece[3])
    assert body.split(b"\n") == [orjson.dumps(r) for r in rows]
    assert len(body) > 4 << 20
    assert (len(sink.seen) == 1) == (piece_bytes == UNBOUNDED)


def test_a_batch_sealed_by_age_after_all_its_rows_left_ends_with_an_empty_last_piece():
    clock = Clock()
    sink = Recorder(piece_bytes=1, batch_rows=1000, clock=clock)     # every row is a piece of its own
    for n in range(3):
        sink.write("modbus", row(n))
    assert [(p[3], p[4], p[5]) for p in sink.seen] == [(1, 0, False), (1, 1, False), (1, 2, False)]
    clock.now = 6.0
    sink.poll()
    assert [(p[3], p[4], p[5]) for p in sink.seen[3:]] == [(0, 3, True)]
    assert len({p[1] for p in sink.seen}) == 1
    sink.write("modbus", row(3))          # the next row opens a new batch
    sink.seal_all()
    assert sink.seen[-1][1] == sink.seen[-2][1] != sink.seen[0][1]
    assert [p[3:] for p in sink.seen[-2:]] == [(1, 0, False), (0, 1, True)]
    whole = joined([Lines(p[2], p[3]) for p in sink.seen[:4]])
    assert list(whole) == [orjson.dumps(row(n)) for n in range(3)] and len(whole) == 3


def test_tables_are_batched_apart_and_a_log_without_a_table_is_counted_skipped():
    sink = Recorder(piece_bytes=300, batch_rows=4)
    for n in range(6):
        sink.write("modbus", row(n))
        sink.write("conn", {"ts": float(n), "uid": f"C{n}"})
        sink.write("nosuchlog", {"ts": float(n)})
    sink.seal_all()
    assert {p[0] for p in sink.seen} == {"modbus", "conn"}
    for table in ("modbus", "conn"):
        sizes = [sum(p[3] for p in pieces) for pieces in batches([p for p in sink.seen if p[0] == table]).values()]
        assert sizes == [4, 2], table
    assert sink.skipped == {"nosuchlog": 6}


def test_a_sink_that_takes_whole_batches_gets_them_whole():
    got = []

    class Whole(Batcher):
        def hand_over(self, batch):
            got.append((batch[0], batch[1], list(batch[2])))

    sink = Whole(ClickHouseConfig(url="clickhouse://127.0.0.1/otsensor", batch_rows=3), ["modbus"])
    assert sink.piece_bytes == UNBOUNDED
    for n in range(7):
        sink.write("modbus", row(n))
    sink.seal_all()
    assert [len(rows) for _, _, rows in got] == [3, 3, 1]
    assert [line for _, _, rows in got for line in rows] == [orjson.dumps(row(n)) for n in range(7)]
    assert len({batch_id for _, batch_id, _ in got}) == 3


def test_pieces_joined_by_the_default_hand_over_are_the_batch():
    got = []

    class Joining(Batcher):
        def hand_over(self, batch):
            got.append(batch)

    sink = Joining(ClickHouseConfig(url="clickhouse://127.0.0.1/otsensor", batch_rows=10), ["modbus"],
                   piece_bytes=150)
    for n in range(25):
        sink.write("modbus", row(n))
    sink.seal_all()
    assert [len(rows) for _, _, rows in got] == [10, 10, 5]
    assert [line for _, _, rows in got for line in rows] == [orjson.dumps(row(n)) for n in range(25)]
    assert sink.pieces == {}


def test_a_piece_crosses_the_pipe_as_it_is_and_a_whole_batch_reads_as_its_only_piece():
    rows = Lines(bytearray(b'{"ts":1.0}\n{"ts":2.0}'), 2)
    table, batch_id, lines, start, last = piece_from(piece_head("modbus", 77, rows.count, 40, False), rows.body)
    assert (table, batch_id, list(lines), len(lines), start, last) == (
        "modbus", 77, [b'{"ts":1.0}', b'{"ts":2.0}'], 2, 40, False)
    assert lines.body is rows.body                     # the lines as the capture gathered them: not copied
    _, _, empty, start, last = piece_from(piece_head("conn", 5, 0, 9, True), b"")
    assert (len(empty), list(empty), start, last) == (0, [], 9, True)
    spooled = encode_batch(("modbus", 78, rows))      # a spool's batch: one record, a last piece from row 0
    table, batch_id, lines, start, last = piece_from(*spooled.split(b"\n", 1))
    assert (table, batch_id, list(lines), start, last) == ("modbus", 78, list(rows), 0, True)
    assert list(decode_batch(spooled)[2]) == list(rows)
