"""The run's side of the ClickHouse sink (sensor/clickhouse/process.py): batches piped to a delivery process,
and what happens to them when that process is gone."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict

import orjson
import pytest

from otsensor.sensor.clickhouse.batches import decode_batch, piece_head
from otsensor.sensor.config import ClickHouseConfig
from otsensor.sensor.sinks.spool import Spool

pytest.importorskip("clickhouse_driver")

from otsensor.sensor.clickhouse import process  # noqa: E402
from otsensor.sensor.clickhouse.process import FRAME, ProcessSink, write_all  # noqa: E402

NOWHERE = "clickhouse://127.0.0.1:9/otsensor"   # discard port: nothing listens, the rows wait in the spool


def spooled_rows(path: str) -> list[tuple[str, list]]:
    spool = Spool(path)
    try:
        return [(table, [orjson.loads(line) for line in lines])
                for table, _, lines in map(decode_batch, (payload for _, payload in spool.read_from(spool.ack_pos)))]
    finally:
        spool.close()


def test_with_the_server_away_the_delivery_process_spools_every_batch(tmp_path):
    sink = ProcessSink(ClickHouseConfig(url=NOWHERE, batch_rows=3, drain_timeout=0.2, connect_timeout=0.5),
                       str(tmp_path))
    sink.start()
    for n in range(7):
        sink.write("modbus", {"ts": float(n), "func": "READ_HOLDING_REGISTERS"})
    sink.close()
    report = sink.report()
    assert report["tables"]["modbus"] == {"sent": 7, "delivered": 0, "spooled": 7, "dropped": 0, "rejected": 0}
    stored = spooled_rows(report["spool_dir"])
    assert [row["ts"] for _, rows in stored for row in rows] == [float(n) for n in range(7)]


def test_batches_the_delivery_process_never_took_are_spooled_by_the_run(tmp_path):
    sink = ProcessSink(ClickHouseConfig(url=NOWHERE, batch_rows=2, drain_timeout=0.2, connect_timeout=0.5),
                       str(tmp_path))
    sink.start()
    sink.proc.kill()
    sink.proc.wait()
    for n in range(5):
        sink.write("modbus", {"ts": float(n)})
    sink.close()
    report = sink.report()
    assert report["tables"]["modbus"]["sent"] == 5
    stored = [row["ts"] for _, rows in spooled_rows(report["spool_dir"]) for row in rows]
    assert stored == [float(n) for n in range(5)]
    assert report["spooled"] == 5


def test_rows_the_run_cannot_spool_when_the_delivery_process_died_are_counted_dropped(tmp_path):
    sink = ProcessSink(ClickHouseConfig(url=NOWHERE, batch_rows=2, drain_timeout=0.2, connect_timeout=0.5,
                                        spool_max_bytes=64), str(tmp_path))
    sink.start()
    sink.proc.kill()
    sink.proc.wait()
    for n in range(5):
        sink.write("modbus", {"ts": float(n), "func": "READ_HOLDING_REGISTERS"})
    sink.close()
    report = sink.report()
    assert report["tables"]["modbus"] == {"sent": 5, "delivered": 0, "spooled": 0, "dropped": 5, "rejected": 0}
    assert report["dropped"] == 5
    assert any("was killed by signal 9 before its final report: of the 5 row(s) it had not confirmed, 0 were "
               "spooled by the run and 5 dropped" in p for p in report["problems"]), report["problems"]


def test_a_piece_the_run_did_not_finish_piping_is_left_out_and_the_pieces_before_it_are_kept(tmp_path):
    """The run died mid-piece: the delivery process takes the batch's whole pieces, and no row of the cut one."""
    cfg = ClickHouseConfig(url=NOWHERE, drain_timeout=0.2, connect_timeout=0.5)
    child = subprocess.Popen([sys.executable, "-m", "otsensor.sensor.clickhouse.process", json.dumps(asdict(cfg)),
                              str(tmp_path), ""], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert json.loads(child.stdout.readline()) == {"ready": True}
    whole, cut = b'{"ts":1.0}\n{"ts":2.0}', b'{"ts":3.0}\n{"ts":4.0}'
    for body, start, sent in ((whole, 0, whole), (cut, 2, cut[:7])):   # the second one's lines end too soon
        head = piece_head("modbus", 9, 2, start, False)
        child.stdin.write(FRAME.pack(len(head), len(body)) + head + sent)
    child.stdin.close()
    reports = [json.loads(line) for line in child.stdout]
    assert child.wait(30) == 0
    final = reports[-1]
    assert final["final"] and final["tables"]["modbus"]["spooled"] == 2, final
    assert spooled_rows(final["spool_dir"]) == [("modbus", [{"ts": 1.0}, {"ts": 2.0}])]


def test_write_all_writes_every_part_in_order_whatever_each_system_call_takes(monkeypatch):
    calls = []
    real_writev = os.writev

    def short_writev(fd, views):        # as a signal can cut a write short: at most 7 bytes a call
        calls.append(len(views))
        budget, taken = 7, []
        for view in views:
            taken.append(bytes(view[:budget]))
            budget -= len(taken[-1])
        return real_writev(fd, taken)

    monkeypatch.setattr(process.os, "writev", short_writev)
    read_end, write_end = os.pipe()
    try:
        parts = [b"\x00\x00\x00\x05head\n", bytearray(b""), bytearray(b'{"ts":1.0}\n{"ts":2.0}'), b"!"]
        write_all(write_end, parts)
        assert os.read(read_end, 1000) == b"".join(parts)
        assert calls == [4, 4, 2, 2, 2]     # the parts each call had left: the cut one from where it was cut
    finally:
        os.close(read_end)
        os.close(write_end)


def test_a_confirmed_pieces_buffer_takes_the_next_piece_and_every_row_arrives_as_written(tmp_path):
    sink = ProcessSink(ClickHouseConfig(url=NOWHERE, batch_rows=40, piece_bytes=8192, drain_timeout=0.2,
                                        connect_timeout=0.5), str(tmp_path))
    sink.start()
    # about 370 bytes a row: a batch is a piece cut at 8 KiB (its buffer kept) and a short last one
    rows = [{"ts": float(n), "func": "READ_HOLDING_REGISTERS", "unit": n % 7, "note": f"{n:03d}" * 100}
            for n in range(400)]
    for row in rows[:40]:                # one batch: spooled by the delivery process, confirmed
        sink.write("modbus", row)
    deadline = time.monotonic() + 20
    while not sink.free_buffers and time.monotonic() < deadline:
        time.sleep(0.02)
    kept = {id(body) for body in sink.free_buffers}
    assert kept, "no confirmed piece's buffer came back"
    sink.write("modbus", rows[40])
    assert id(sink.open["modbus"].body) in kept and len(sink.open["modbus"].body) == sink.buffer_size
    for row in rows[41:]:
        sink.write("modbus", row)
    sink.close()
    report = sink.report()
    assert report["tables"]["modbus"] == {"sent": 400, "delivered": 0, "spooled": 400, "dropped": 0, "rejected": 0}
    assert [r for _, batch in spooled_rows(report["spool_dir"]) for r in batch] == rows
