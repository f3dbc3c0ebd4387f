"""The delivery process reading the run's JSONL files (sensor/clickhouse/follow.py): every line once, in order,
in pieces cut at newlines and batches of at most ``batch_rows``, each batch announced with its bytes in the file;
and, when the delivery process dies, the run spooling from the files exactly what it did not confirm."""
from __future__ import annotations

import os
import time

import orjson
import pytest

from otsensor.sensor.clickhouse.batches import decode_batch
from otsensor.sensor.clickhouse.follow import Follower, file_ranges, read_lines
from otsensor.sensor.config import ClickHouseConfig
from otsensor.sensor.sinks.jsonl import JsonlSink, encode_line
from otsensor.sensor.sinks.spool import Spool

NOWHERE = "clickhouse://127.0.0.1:9/otsensor"   # discard port: nothing listens, the rows wait in the spool


class Taken:
    """What a follower hands over: the pieces, and each batch as announced."""

    def __init__(self) -> None:
        self.pieces: list[tuple[str, int, bytes, int, int, bool]] = []
        self.batches: dict[int, list] = {}

    def take(self, table, batch_id, lines, start, last) -> None:
        self.pieces.append((table, batch_id, bytes(lines.body), lines.count, start, last))

    def announce(self, table, batch_id, first, end) -> None:
        self.batches.setdefault(batch_id, [table, first, None])[2] = end

    def rows(self) -> list[dict]:
        return [orjson.loads(line) for _, _, body, count, _, _ in self.pieces if count for line in body.split(b"\n")]


def follower(directory, taken, clock=None, **cfg) -> Follower:
    settings = {"url": NOWHERE, "batch_rows": 7, "piece_bytes": 64, "flush_interval": 3600.0, **cfg}
    extra = {"clock": clock} if clock else {}
    return Follower(str(directory), frozenset({"modbus", "dnp3"}), ClickHouseConfig(**settings), taken.take,
                    taken.announce, lambda: False, **extra)


def test_every_line_is_handed_over_once_in_order_and_a_line_being_written_waits(tmp_path):
    rows = [{"ts": float(n), "pad": "x" * (n % 23)} for n in range(40)]
    lines = b"".join(encode_line(row) for row in rows)
    path = tmp_path / "modbus.jsonl"
    half = lines.index(b"\n", len(lines) // 2) + 5           # ends inside a line
    path.write_bytes(lines[:half])
    taken = Taken()
    reader = follower(tmp_path, taken)
    while reader.step():
        pass
    assert taken.rows() == rows[:len(taken.rows())] and len(taken.rows()) == lines[:half].count(b"\n")
    reader.start()
    with open(path, "ab") as fh:                              # the rest of the line, and more
        fh.write(lines[half:])
    reader.finish({"modbus": len(lines)})
    reader.close()
    assert taken.rows() == rows
    for table, batch_id, body, count, start, last in taken.pieces:
        assert table == "modbus" and count <= 7 and (not count or body.count(b"\n") == count - 1)
    # batches: at most 7 rows, pieces in order from row 0, each announced with its bytes of the file
    spans = sorted((first, end) for _, first, end in taken.batches.values())
    assert spans[0][0] == 0 and spans[-1][1] == len(lines)
    assert all(end == following for (_, end), (following, _) in zip(spans, spans[1:]))
    for batch_id, (_, first, end) in taken.batches.items():
        pieces = [p for p in taken.pieces if p[1] == batch_id]
        assert [p[4] for p in pieces] == [sum(p[3] for p in pieces[:n]) for n in range(len(pieces))]
        assert pieces[-1][5] and not any(p[5] for p in pieces[:-1])
        assert b"\n".join(p[2] for p in pieces if p[3]) + b"\n" == lines[first:end]
        assert sum(p[3] for p in pieces) <= 7


def test_a_line_longer_than_a_piece_is_read_whole(tmp_path):
    rows = [{"ts": 1.0}, {"ts": 2.0, "blob": "y" * 1000}, {"ts": 3.0}]
    data = b"".join(encode_line(row) for row in rows)
    (tmp_path / "modbus.jsonl").write_bytes(data)
    taken = Taken()
    reader = follower(tmp_path, taken)
    reader.start()
    reader.finish({"modbus": len(data)})
    reader.close()
    assert taken.rows() == rows


def test_without_pieces_each_batch_goes_whole(tmp_path):
    rows = [{"ts": float(n)} for n in range(30)]
    data = b"".join(encode_line(row) for row in rows)
    (tmp_path / "dnp3.jsonl").write_bytes(data)
    taken = Taken()
    reader = follower(tmp_path, taken, piece_bytes=0)
    reader.start()
    reader.finish({"dnp3": len(data)})
    assert [(count, start, last) for _, _, _, count, start, last in taken.pieces] == [(7, 0, True)] * 4 + [(2, 0, True)]
    assert taken.rows() == rows


def test_a_batch_older_than_the_flush_interval_is_sealed_with_what_it_has(tmp_path):
    now = [0.0]
    data = b"".join(encode_line({"ts": float(n)}) for n in range(3))
    (tmp_path / "modbus.jsonl").write_bytes(data)
    taken = Taken()
    reader = follower(tmp_path, taken, clock=lambda: now[0], flush_interval=5.0)
    reader.step()
    assert [p[3:] for p in taken.pieces] == [(3, 0, False)]
    now[0] = 5.0
    reader.step()
    assert [p[3:] for p in taken.pieces] == [(3, 0, False), (0, 3, True)]
    (batch_id,) = taken.batches
    assert taken.batches[batch_id] == ["modbus", 0, len(data)]


def test_an_error_while_following_is_kept_for_the_delivery_process_to_raise(tmp_path):
    """A bug in handing rows over stops the following and is kept: the delivery process raises it instead of
    reporting (process.py), and the run spools from the files what was not confirmed."""
    data = b"".join(encode_line({"ts": float(n)}) for n in range(3))
    (tmp_path / "modbus.jsonl").write_bytes(data)

    def broken(*piece):
        raise RuntimeError("broken sink")

    reader = Follower(str(tmp_path), frozenset({"modbus"}), ClickHouseConfig(url=NOWHERE), broken,
                      lambda *batch: None, lambda: False)
    reader.start()
    reader.finish({"modbus": len(data)})
    assert isinstance(reader.error, RuntimeError) and str(reader.error) == "broken sink"


def test_the_parts_of_a_file_are_its_batches_with_what_no_batch_took_yet():
    batches = [(100, 200, 1), (200, None, 2), (0, 100, 3)]
    assert file_ranges(batches, 350) == [(0, 100, 3), (100, 200, 1), (200, 350, 2)]
    assert file_ranges([(0, 50, 4)], 90) == [(0, 50, 4), (50, 90, None)]
    assert file_ranges([], 90) == [(0, 90, None)]
    assert file_ranges([(0, None, 5), (40, 60, 6)], 60) == [(0, 40, 5), (40, 60, 6)]


def test_read_lines_cuts_a_range_into_batches(tmp_path):
    path = tmp_path / "f.jsonl"
    path.write_bytes(b"a\nbb\nccc\ndddd\n")
    assert [(bytes(lines.body), lines.count) for lines in read_lines(str(path), 2, 14, 2)] == [
        (b"bb\nccc", 2), (b"dddd", 1)]


def test_the_run_spools_from_the_files_what_a_killed_delivery_process_did_not_confirm(tmp_path):
    pytest.importorskip("clickhouse_driver")
    from otsensor.sensor.clickhouse.process import ProcessSink
    files = JsonlSink(str(tmp_path / "out"))
    sink = ProcessSink(ClickHouseConfig(url=NOWHERE, batch_rows=300, piece_bytes=4096, drain_timeout=0.2,
                                        connect_timeout=0.5), str(tmp_path / "spool"))
    sink.start()
    assert sink.follow(files)
    rows = [{"ts": float(n)} for n in range(2000)]
    for row in rows[:1000]:
        files.write("modbus", row)
    files.flush()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:   # three full batches spooled by the delivery process and confirmed
        with sink.wake:
            if sum(1 for entry in sink.followed.values() if entry[3]) >= 3:
                break
        time.sleep(0.01)
    with sink.wake:
        assert sum(1 for entry in sink.followed.values() if entry[3]) >= 3, sink.followed
        open_batches = [batch_id for batch_id, entry in sink.followed.items() if not entry[3]]
    sink.proc.kill()
    sink.proc.wait()
    for row in rows[1000:]:
        files.write("modbus", row)
    sink.close()
    report = sink.report()
    assert report["tables"]["modbus"] == {"sent": 2000, "delivered": 0, "spooled": 2000, "dropped": 0, "rejected": 0}
    spool = Spool(report["spool_dir"])
    batches = [decode_batch(payload) for _, payload in spool.read_from(spool.ack_pos)]
    spool.close()
    # a batch spooled by both (the process died between spooling it and saying so) is stored once by its id
    by_id = {batch_id: [orjson.loads(line) for line in lines] for _, batch_id, lines in batches}
    stored = [row for batch in by_id.values() for row in batch]
    assert sorted(stored, key=lambda row: row["ts"]) == rows          # every row once
    assert all(len(batch) <= 300 for batch in by_id.values())
    assert set(open_batches) <= set(by_id)    # a batch it had begun is spooled under its own id
    assert any("was killed by signal 9" in p for p in report["problems"]), report["problems"]
    assert os.path.exists(tmp_path / "out" / "modbus.jsonl")


def test_in_analyze_the_sink_takes_no_row_from_the_pipeline_and_stores_the_files_lines(tmp_path):
    """`analyze`'s pipeline writes each row to the JSONL files only; the delivery process reads them from there:
    its batches (spooled, the server being away) hold the very bytes of the files."""
    pytest.importorskip("clickhouse_driver")
    from otsensor.sensor.analyze import RunResult, finish_analysis, start_analysis
    from otsensor.sensor.clickhouse.process import ProcessSink
    clickhouse = ProcessSink(ClickHouseConfig(url=NOWHERE, batch_rows=5, drain_timeout=0.2, connect_timeout=0.5),
                             str(tmp_path / "spool"))
    clickhouse.start()
    run = start_analysis(str(tmp_path / "out"), extra_sinks=[clickhouse])
    assert run.pipeline.sinks == [run.sink] and run.extra_sinks == [clickhouse]
    rows = [{"ts": float(n), "unit": n % 3, "func": "READ_COILS"} for n in range(23)]
    for row in rows:
        run.pipeline.write_row("modbus", row)
    result = RunResult({})
    finish_analysis(run, result, [])
    report = result.stats["sinks"][0]
    assert report["tables"]["modbus"] == {"sent": 23, "delivered": 0, "spooled": 23, "dropped": 0, "rejected": 0}
    spool = Spool(report["spool_dir"])
    batches = [decode_batch(payload) for _, payload in spool.read_from(spool.ack_pos)]
    spool.close()
    modbus = [lines for table, _, lines in batches if table == "modbus"]
    assert [len(lines) for lines in modbus] == [5, 5, 5, 5, 3]
    assert b"".join(lines.body + b"\n" for lines in modbus) == (tmp_path / "out" / "modbus.jsonl").read_bytes()


def test_files_already_in_the_directory_are_not_followed_and_the_rows_are_piped(tmp_path):
    """A directory that holds a table's file from before (not analyze's fresh staging directory): read from its
    start, it would give the server earlier rows; the sink takes the rows from the pipeline instead."""
    pytest.importorskip("clickhouse_driver")
    from otsensor.sensor.clickhouse.process import ProcessSink
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "dnp3.jsonl").write_bytes(encode_line({"ts": 0.5, "old": True}))
    files = JsonlSink(str(tmp_path / "out"))
    clickhouse = ProcessSink(ClickHouseConfig(url=NOWHERE, drain_timeout=0.2, connect_timeout=0.5),
                             str(tmp_path / "spool"))
    clickhouse.start()
    assert not clickhouse.follow(files)
    for n in range(3):
        clickhouse.write("modbus", {"ts": float(n)})
    clickhouse.close()
    report = clickhouse.report()
    assert set(report["tables"]) == {"modbus"} and report["tables"]["modbus"]["spooled"] == 3
