"""Nothing a capture holds ends a run: impossible clocks, a sink that raises, a dissector that raises.

Each is contained where it happens, counted in summary.json, and leaves a sample saying what and where.
"""
from __future__ import annotations

import json
import socket
import struct
from pathlib import Path

import pytest
from scapy.all import IP, TCP, Ether, Raw, rdpcap  # type: ignore

from otsensor.sensor.analyze import analyze
from otsensor.sensor.capture.files import BAD_TIMESTAMP, MAX_TS
from otsensor.sensor.config import SinkConfig
from otsensor.sensor.sinks.syslog import SyslogSink
from tests.sensor.siem_parsers import parse_leef, parse_rfc5424
from tests.sensor.test_capture import pcapng_block
from tests.sensor.test_flows import HMI, PLC, REQ, RESP, rows, run, tcp_session

REPO = Path(__file__).resolve().parents[2]
ENGINEERING = REPO / "pcaps" / "s7_engineering.pcap"   # S7, Modbus, DNP3 and CIP, with alerts
BAD_EVERY = 7


def pcapng_with_bad_clocks(source: Path, dest: Path) -> int:
    """``source`` as pcapng; every BAD_EVERY-th packet claims 2^64-1 seconds (an interface with a 1 s tick)."""
    shb = pcapng_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    micro = pcapng_block(1, struct.pack("<HHI", 1, 0, 65535))
    seconds = pcapng_block(1, struct.pack("<HHI", 1, 0, 65535) + struct.pack("<HHB3xHH", 9, 1, 0, 0, 0))
    blocks, bad = [shb, micro, seconds], 0
    for i, pkt in enumerate(rdpcap(str(source))):
        frame = bytes(pkt)
        if i % BAD_EVERY == BAD_EVERY - 1:
            ifid, ticks = 1, 2**64 - 1
            bad += 1
        else:
            ifid, ticks = 0, round(float(pkt.time) * 1e6)
        blocks.append(pcapng_block(6, struct.pack("<IIIII", ifid, ticks >> 32, ticks & 0xFFFFFFFF,
                                                  len(frame), len(frame)) + frame))
    dest.write_bytes(b"".join(blocks))
    return bad


def udp_receiver() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


def received(sock: socket.socket) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(sock.recv(65535))
        except BlockingIOError:
            return out


def test_impossible_clocks_become_anomalies_and_every_formatter_still_writes(tmp_path):
    """The fuzz case: pcapng times of 2^64-1 s made the LEEF and ECS formatters raise OverflowError."""
    capture = tmp_path / "clocks.pcapng"
    bad = pcapng_with_bad_clocks(ENGINEERING, capture)
    receivers = {fmt: udp_receiver() for fmt in ("leef", "json")}
    sinks = [SyslogSink(SinkConfig(url=f"udp://127.0.0.1:{sock.getsockname()[1]}", format=fmt, records=True),
                        str(tmp_path / "spool")) for fmt, sock in receivers.items()]
    for sink in sinks:
        sink.start()
    out = tmp_path / "out"
    result = analyze([str(capture)], str(out), quiet=True, extra_sinks=sinks)
    assert result.errors == [] and result.exit_code == 0
    stats = json.loads((out / "summary.json").read_text())
    assert stats["anomalies"][BAD_TIMESTAMP] == bad and stats["sink_errors"] == 0
    assert stats["packets"] == len(rdpcap(str(ENGINEERING)))                   # no packet was dropped
    conns = rows(out, "conn")
    assert sum(c["orig_pkts"] + c["resp_pkts"] for c in conns) == stats["packets"] - stats["undecoded_packets"]
    clock_rows = [r for r in rows(out, "anomalies") if r["name"] == BAD_TIMESTAMP]
    assert len(clock_rows) == bad
    assert all(r["detail"]["file"] == str(capture) and r["protocol"] == "capture" for r in clock_rows)
    for path in out.glob("*.jsonl"):
        assert all(0 <= json.loads(line)["ts"] <= MAX_TS for line in path.read_text().splitlines()), path.name
    assert all(r["accepted"] > 0 and r["dropped"] == 0 for r in stats["sinks"])
    leef = [parse_leef(parse_rfc5424(m.decode("utf-8"))["msg"]) for m in received(receivers["leef"])]
    assert leef and all(msg["attrs"]["devTime"][:4].isdigit() for msg in leef)
    ecs = [json.loads(parse_rfc5424(m.decode("utf-8"))["msg"]) for m in received(receivers["json"])]
    assert ecs and all(doc["@timestamp"][:4].isdigit() for doc in ecs)


class RaisingSink:
    """A sink with a bug: every write raises, as a formatter did on a timestamp it could not write."""

    name = "raising"

    def __init__(self) -> None:
        self.calls = 0

    def write(self, log: str, row: dict) -> None:
        self.calls += 1
        raise OverflowError(f"timestamp out of range for platform time_t ({log})")


def test_a_sink_that_raises_is_counted_and_the_other_sinks_get_everything(tmp_path):
    capture = str(REPO / "pcaps" / "scenarios" / "attack_s7_stop_download.pcap")
    clean = analyze([capture], str(tmp_path / "clean"), quiet=True)
    broken = RaisingSink()
    result = analyze([capture], str(tmp_path / "out"), quiet=True, extra_sinks=[broken])
    assert result.exit_code == 0 and result.errors == []
    stats = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert stats["sink_errors"] == broken.calls > 0
    assert any("raising" in s and "OverflowError" in s for s in stats["error_samples"])
    assert any("sink" in w and "raising" in w for w in result.warnings)
    assert rows(tmp_path / "out", "alerts"), "alerts are written at the end, through the same containment"
    for log in ("conn", "s7comm", "cotp", "alerts"):
        mine = [{k: v for k, v in r.items() if k != "uid"} for r in rows(tmp_path / "out", log)]
        assert mine == [{k: v for k, v in r.items() if k != "uid"} for r in rows(tmp_path / "clean", log)], log
    assert clean.stats["records"] == stats["records"]


def test_a_dissector_exception_leaves_a_sample_naming_the_dissector_and_where(tmp_path, monkeypatch):
    from otsensor.dissectors.modbus.dissector import ModbusDissector

    original = ModbusDissector.feed
    calls = []

    def feed(self, data, direction, ts):
        calls.append(1)
        if len(calls) == 2:
            return {}["no such transaction"]   # a real bug's KeyError, raised on the response
        return original(self, data, direction, ts)

    monkeypatch.setattr(ModbusDissector, "feed", feed)
    result, out = run(tmp_path, tcp_session())
    assert result.stats["dissector_errors"] == 1
    [sample] = result.stats["error_samples"]
    [conn] = rows(out, "conn")
    assert "modbus" in sample and "feed" in sample and "KeyError" in sample and "no such transaction" in sample
    assert conn["uid"] in sample and "test_containment.py:" in sample
    assert [r["name"] for r in rows(out, "anomalies")] == ["modbus.dissector_error"]


def session_missing_a_request() -> list:
    """Two requests; the mirror port missed the first, the server's ACK says so: the stream has a gap."""
    c, s = {"src": HMI, "dst": PLC}, {"src": PLC, "dst": HMI}
    pkts = [IP(**c) / TCP(sport=40000, dport=502, flags="S", seq=100),
            IP(**s) / TCP(sport=502, dport=40000, flags="SA", seq=500, ack=101),
            IP(**c) / TCP(sport=40000, dport=502, flags="PA", seq=113, ack=501) / Raw(REQ),
            IP(**s) / TCP(sport=502, dport=40000, flags="PA", seq=501, ack=125) / Raw(RESP)]
    frames = []
    for i, p in enumerate(pkts):
        frame = Ether() / p
        frame.time = 50.0 + i * 0.01
        frames.append(frame)
    return frames


@pytest.mark.parametrize("where", ["close", "gap"])
def test_every_dissector_entry_point_is_sampled(tmp_path, monkeypatch, where):
    from otsensor.dissectors.modbus.dissector import ModbusDissector

    def broken(self, *args):
        raise RuntimeError(f"{where} bug")

    broken.__name__ = where
    monkeypatch.setattr(ModbusDissector, where, broken)
    result, _ = run(tmp_path, tcp_session() if where == "close" else session_missing_a_request())
    assert result.stats["dissector_errors"] == 1
    assert any(f"modbus.{where}" in s and f"{where} bug" in s for s in result.stats["error_samples"])
