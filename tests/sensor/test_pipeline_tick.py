"""Pipeline.tick: time passing with no packet (a quiet live network) still closes idle flows."""
from __future__ import annotations

from otsensor.sensor.capture import linktypes as lt
from otsensor.sensor.pipeline import SWEEP_EVERY, Limits, Pipeline
from tests.sensor.test_flows import tcp_session


class ListSink:
    def __init__(self) -> None:
        self.rows: list[tuple[str, dict]] = []

    def write(self, log: str, row: dict) -> None:
        self.rows.append((log, row))


def fed_pipeline(close: bool) -> tuple[Pipeline, ListSink, float]:
    sink = ListSink()
    pipeline = Pipeline([sink], limits=Limits(tcp_timeout=30.0))
    frames = tcp_session(close=close, t0=1000.0)
    for frame in frames:
        pipeline.packet(float(frame.time), lt.ETHERNET, bytes(frame))
    return pipeline, sink, float(frames[-1].time)


def conn_rows(sink: ListSink) -> list[dict]:
    return [row for log, row in sink.rows if log == "conn"]


def test_a_tick_past_the_timeout_finishes_an_idle_flow():
    pipeline, sink, last = fed_pipeline(close=False)
    pipeline.tick(last + 29.0)
    assert conn_rows(sink) == []              # not idle long enough
    pipeline.tick(last + 31.0 + SWEEP_EVERY)  # a sweep is due and the flow has been idle past 30 s
    rows = conn_rows(sink)
    assert len(rows) == 1 and rows[0]["conn_state"] == "S1"
    assert pipeline.table.timed_out == 1 and pipeline.table.count == 0


def test_a_tick_sweeps_no_more_often_than_packets_do():
    pipeline, sink, last = fed_pipeline(close=True)
    first_sweep_due = pipeline.next_sweep
    pipeline.tick(first_sweep_due - 0.001)
    assert pipeline.table.count == 1          # no sweep before one is due
    pipeline.tick(first_sweep_due)
    assert pipeline.table.count == 0 and conn_rows(sink)[0]["conn_state"] == "SF"   # closed, past its linger
