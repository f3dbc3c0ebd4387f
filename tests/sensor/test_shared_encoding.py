"""One encoding per row for every sink that takes lines (sensor/sinks/shared.py): the same bytes in each, and a
sink that fails costs that sink only, counted by the pipeline as its own sink error."""
from __future__ import annotations

import shutil

import pytest

from otsensor.sensor.clickhouse.batches import decode_batch
from otsensor.sensor.config import ClickHouseConfig
from otsensor.sensor.pipeline import Pipeline
from otsensor.sensor.sinks.jsonl import JsonlSink, encode_line
from otsensor.sensor.sinks.rotating import Rotation, RotatingJsonlSink
from otsensor.sensor.sinks.shared import EncodeOnce, encode_once
from otsensor.sensor.sinks.spool import Spool

ROWS = [{"ts": 1.5, "text": 'quote " and Ünïcødé ✓', "nested": {"a": [1, None]}}, {"ts": 2.0, "n": 2 ** 63}]


def test_lines_are_encoded_once_and_each_sink_gets_the_same_bytes(tmp_path):
    first, second = JsonlSink(str(tmp_path / "a")), JsonlSink(str(tmp_path / "b"))
    sinks, shared = encode_once([first, "not a line sink", second])
    assert isinstance(shared, EncodeOnce) and sinks == [shared, "not a line sink"]
    for row in ROWS:
        shared.write("modbus", row)
    first.close()
    second.close()
    expected = b"".join(encode_line(row) for row in ROWS)
    assert (tmp_path / "a" / "modbus.jsonl").read_bytes() == expected == (tmp_path / "b" / "modbus.jsonl").read_bytes()


def test_one_line_sink_alone_is_left_as_it_is(tmp_path):
    sink = JsonlSink(str(tmp_path))
    assert encode_once([sink]) == ([sink], None)


def test_a_failing_sink_costs_itself_the_row_and_the_pipeline_counts_it(tmp_path):
    good, gone = JsonlSink(str(tmp_path / "good")), JsonlSink(str(tmp_path / "gone"))
    shutil.rmtree(tmp_path / "gone")          # its file cannot be opened: every write to it fails
    sinks, shared = encode_once([good, gone])
    pipeline = Pipeline(sinks)
    shared.failed = pipeline.sink_failed
    for row in ROWS:
        pipeline.write_row("modbus", row)
    good.close()
    assert (tmp_path / "good" / "modbus.jsonl").read_bytes().count(b"\n") == len(ROWS)
    assert pipeline.stats.sink_errors == len(ROWS)
    assert pipeline.stats.sink_errors_by_sink == {"JsonlSink": len(ROWS)}


def test_the_rotating_files_of_a_run_and_clickhouse_share_one_encoding(tmp_path):
    """`otsensor run`'s file sink takes the shared line too: the ClickHouse sink's batches (here spooled, the
    server being away) hold the very bytes of the rotating JSONL file."""
    pytest.importorskip("clickhouse_driver")
    from otsensor.sensor.clickhouse.process import ProcessSink
    files = RotatingJsonlSink(str(tmp_path / "out"), Rotation(), frozenset({"modbus"}))
    clickhouse = ProcessSink(ClickHouseConfig(url="clickhouse://127.0.0.1:9/otsensor", batch_rows=1,
                                              drain_timeout=0.2, connect_timeout=0.5), str(tmp_path / "spool"))
    clickhouse.start()
    sinks, shared = encode_once([files, clickhouse])
    assert sinks == [shared]
    for row in ROWS:
        shared.write("modbus", row)
    files.close()
    clickhouse.close()
    spool = Spool(clickhouse.report()["spool_dir"])
    batches = [decode_batch(payload) for _, payload in spool.read_from(spool.ack_pos)]
    spool.close()
    assert b"".join(rows.body + b"\n" for _, _, rows in batches) == (tmp_path / "out" / "modbus.jsonl").read_bytes()
    assert (tmp_path / "out" / "modbus.jsonl").read_bytes() == b"".join(encode_line(row) for row in ROWS)
