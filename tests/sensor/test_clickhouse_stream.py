"""Batches streamed to a real clickhouse-server (Debian's 18.16) while they fill (sensor/clickhouse/stream.py):
the server stores exactly the rows of the run's JSONL files, each batch's rows numbered from 0 without a gap,
a stream the server refuses or that is cut off goes the delivery thread's way without losing a row, and on the
old servers' ReplacingMergeTree without doubling one."""
from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path

import orjson

from otsensor.sensor.clickhouse.batches import Lines
from otsensor.sensor.clickhouse.sink import ClickHouseSink
from tests.cli import otsensor
from tests.sensor.clickhouse_rows import mismatches
from tests.sensor.test_clickhouse_compression import Relay
from tests.sensor.test_clickhouse_json import sink_config
from tests.sensor.test_clickhouse_sink import EVERY_PROTOCOL, ZONES, config, summary_sink, wait_for

ROW_ID_BITS = 20


def test_batches_streamed_in_pieces_store_exactly_the_rows_of_the_jsonl(clickhouse, tmp_path):
    relay = Relay(clickhouse.http_port)
    out = tmp_path / "out"
    try:
        proc = otsensor("analyze", *EVERY_PROTOCOL, "--zones", ZONES, "-o", out, "-q", "--config",
                        config(tmp_path, clickhouse, "stream-1", batch_rows=40, piece_bytes=2048,
                               http_port=relay.port))
    finally:
        relay.close()
    assert proc.returncode == 0, proc.stderr
    assert mismatches(clickhouse, out, "stream-1") == {}
    sink = summary_sink(out)
    assert sink["delivered"] == sink["accepted"] > 0 and sink["spooled"] == sink["rejected"] == 0
    # every batch's rows carry _row = batch id << 20 | index, the indexes 0..n-1: pieces numbered in step
    by_batch: dict[int, list[int]] = defaultdict(list)
    for (row_id,) in clickhouse.query("SELECT _row FROM otsensor.modbus FINAL WHERE sensor_id = 'stream-1'"):
        by_batch[row_id >> ROW_ID_BITS].append(row_id & ((1 << ROW_ID_BITS) - 1))
    assert len(by_batch) >= 3
    assert all(sorted(indexes) == list(range(len(indexes))) for indexes in by_batch.values())
    assert sum(map(len, by_batch.values())) == sink["tables"]["modbus"]["sent"]
    # the inserts went as streams: a request with a chunked body for every batch of 40 rows (several pieces)
    inserts = bytes(relay.sent).split(b"POST /?query=INSERT")[1:]
    streamed = [r for r in inserts if b"Transfer-Encoding: chunked" in r.split(b"\r\n\r\n", 1)[0]]
    full_modbus = sum(len(indexes) == 40 for indexes in by_batch.values())
    assert full_modbus >= 2 and len(streamed) >= full_modbus


def test_a_stream_the_server_refuses_goes_the_delivery_threads_way_and_its_rows_are_kept(clickhouse, tmp_path):
    """A column whose type the rows do not fit (the table altered under the sensor: ``unit`` as a String, into
    which 18.16 reads no JSON number) makes the server refuse the streamed insert: the batch goes to the
    delivery thread, which tries it reshaped, then sets it aside: every row counted rejected and kept in
    rejected.jsonl, none stored, none lost."""
    first = tmp_path / "first"
    assert otsensor("analyze", EVERY_PROTOCOL[0], "-o", first, "-q", "--config",
                    config(tmp_path, clickhouse, "stream-setup")).returncode == 0
    clickhouse.query("ALTER TABLE otsensor.modbus MODIFY COLUMN unit Nullable(String)")
    try:
        out = tmp_path / "out"
        proc = otsensor("analyze", EVERY_PROTOCOL[0], "-o", out, "-q", "--config",
                        config(tmp_path, clickhouse, "stream-2", batch_rows=40, piece_bytes=2048))
        stored = clickhouse.query("SELECT count() FROM otsensor.modbus WHERE sensor_id = 'stream-2'")
    finally:
        clickhouse.query("ALTER TABLE otsensor.modbus MODIFY COLUMN unit Nullable(UInt64)")
    assert proc.returncode == 0, proc.stderr
    sink = summary_sink(out)
    sent = sink["tables"]["modbus"]["sent"]
    assert sent > 80 and sink["tables"]["modbus"] == {"sent": sent, "delivered": 0, "spooled": 0, "dropped": 0,
                                                      "rejected": sent}
    assert stored == [(0,)]
    kept = [json.loads(line)["row"] for line in (Path(sink["spool_dir"]) / "rejected.jsonl").open()]
    written = [json.loads(line) for line in (out / "modbus.jsonl").open()]
    assert sorted(kept, key=json.dumps) == sorted(written, key=json.dumps)
    assert sink["tables"]["conn"]["delivered"] == sink["tables"]["conn"]["sent"] > 0


def test_a_batch_whose_last_piece_never_comes_is_stored_with_the_pieces_that_came(clickhouse, tmp_path):
    """The sensor died mid-batch (its pipe ended): the delivery process stores the pieces it has of the batch,
    numbered as they came."""
    sink = ClickHouseSink(sink_config(clickhouse, "stream-3"), str(tmp_path))
    sink.start()
    rows = modbus_lines("Cpiece", 9)
    for start in (0, 4):
        sink.take_piece("modbus", 0xBEEF, Lines(b"\n".join(rows[start:start + 4]), 4), start, False)
    sink.close()
    report = sink.report()
    assert report["tables"]["modbus"]["delivered"] == 8 and report["spooled"] == 0
    stored = clickhouse.query("SELECT uid, _row FROM otsensor.modbus WHERE sensor_id = 'stream-3' ORDER BY _row")
    assert stored == [(f"Cpiece{n}", 0xBEEF << ROW_ID_BITS | n) for n in range(8)]


def modbus_lines(prefix: str, count: int) -> list[bytes]:
    return [orjson.dumps({"ts": 1780000000.0 + n, "uid": f"{prefix}{n}", "func": "READ_COILS", "unit": 1})
            for n in range(count)]


def test_a_stream_cut_off_is_stored_in_part_and_the_batch_sent_again_merges_with_it(clickhouse, tmp_path):
    """18.16 takes a connection's end for the end of the rows: a stream cut off mid-batch leaves the rows it
    had sent stored.  The batch then goes whole to the delivery thread with its id, and on the old servers'
    ReplacingMergeTree each re-sent row merges with its first copy (``_row``): FINAL holds each row once."""
    sink = ClickHouseSink(sink_config(clickhouse, "stream-4"), str(tmp_path))
    sink.start()
    rows = modbus_lines("Ccut", 9)
    stored = "SELECT count() FROM otsensor.modbus WHERE sensor_id = 'stream-4'"
    for start in (0, 4):
        sink.take_piece("modbus", 0xCAFE, Lines(b"\n".join(rows[start:start + 4]), 4), start, False)
    stream = sink.streams[0xCAFE]
    wait_for(lambda: not stream.items and stream.conn is not None)
    time.sleep(0.3)                       # the second piece on its way
    stream.abort()
    wait_for(lambda: clickhouse.query(stored) == [(8,)])
    sink.take_piece("modbus", 0xCAFE, Lines(rows[8], 1), 8, True)
    sink.close()
    report = sink.report()
    assert report["tables"]["modbus"]["delivered"] == 9 and report["spooled"] == 0
    final = clickhouse.query("SELECT uid, _row FROM otsensor.modbus FINAL WHERE sensor_id = 'stream-4' ORDER BY _row")
    assert final == [(f"Ccut{n}", 0xCAFE << ROW_ID_BITS | n) for n in range(9)]


def test_no_stream_to_a_server_whose_dedup_token_would_drop_a_part_stored_batch(clickhouse, tmp_path):
    sink = ClickHouseSink(sink_config(clickhouse, "stream-5"), str(tmp_path))
    sink.start()
    try:
        assert sink._open_stream("modbus", 1) is not None          # 18.16: streams
        sink.modern = True                                         # a server from 22.3: dedup tokens
        assert sink._open_stream("modbus", 2) is None
    finally:
        sink.modern = False
        for stream in list(sink.streams.values()):
            stream.finish(("modbus", stream.batch_id, Lines(b"", 0)))
        sink.close()
