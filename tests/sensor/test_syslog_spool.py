"""The disk spool: order, acknowledgement, persistence across reopen, torn tails, the bound."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from otsensor.sensor.sinks.spool import Spool


def payloads(spool: Spool) -> list[bytes]:
    return [p for _, p in spool.read_from(spool.ack_pos)]


def test_order_ack_and_reopen(tmp_path) -> None:
    spool = Spool(str(tmp_path), max_bytes=1 << 20, segment_bytes=64)
    sent = [f"message {i} é".encode() for i in range(40)]
    for p in sent:
        assert spool.append(p)
    assert spool.pending == 40 and len(spool.segments) > 3   # small segments: several files
    items = list(spool.read_from(spool.ack_pos))
    assert [p for _, p in items] == sent
    spool.ack(items[14][0], 15)
    assert spool.pending == 25
    spool.close()
    again = Spool(str(tmp_path), max_bytes=1 << 20, segment_bytes=64)
    assert again.pending == 25 and payloads(again) == sent[15:]
    last = list(again.read_from(again.ack_pos))[-1][0]
    again.ack(last, 25)
    assert again.pending == 0 and payloads(again) == []
    again.close()
    segs = [n for n in os.listdir(tmp_path) if n.endswith(".seg")]
    assert len(segs) == 1, segs   # acknowledged segments are deleted


def last_segment(directory) -> str:
    return max(n for n in os.listdir(directory) if n.endswith(".seg"))


def test_torn_tail_is_cut_and_appends_continue(tmp_path) -> None:
    spool = Spool(str(tmp_path))
    for i in range(5):
        spool.append(b"x%d" % i)
    spool.close()
    seg = last_segment(tmp_path)
    with open(tmp_path / seg, "ab") as fh:
        fh.write(b"\x00\x00\x00\x10\x00\x00")   # half a record header: a crash mid-append
    spool = Spool(str(tmp_path))
    assert payloads(spool) == [b"x%d" % i for i in range(5)]
    spool.append(b"after")
    assert payloads(spool)[-1] == b"after"
    spool.close()


def test_corrupt_record_stops_replay_at_the_last_good_one(tmp_path) -> None:
    spool = Spool(str(tmp_path))
    for i in range(3):
        spool.append(b"rec%d" % i)
    spool.close()
    seg = last_segment(tmp_path)
    data = bytearray((tmp_path / seg).read_bytes())
    data[-1] ^= 0xFF   # the last payload no longer matches its CRC
    (tmp_path / seg).write_bytes(bytes(data))
    assert payloads(Spool(str(tmp_path))) == [b"rec0", b"rec1"]


def test_bound_drops_newest_and_counts(tmp_path) -> None:
    spool = Spool(str(tmp_path), max_bytes=100)
    accepted = [spool.append(b"y" * 20) for _ in range(10)]
    assert accepted.count(True) == 3   # 3 * (8 + 20) = 84 bytes; a fourth would pass 100
    assert spool.dropped == 7 and spool.dropped_bytes == 140
    items = list(spool.read_from(spool.ack_pos))
    spool.ack(items[-1][0], 3)
    assert spool.append(b"y" * 20)   # acknowledging frees room


CRASHING_SENSOR = """
import os, socket, sys
sys.path.insert(0, {repo!r})
from otsensor.sensor.config import SinkConfig
from otsensor.sensor.sinks.syslog import SyslogSink
from tests.sensor.alert_samples import make_alert
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()   # nothing listens
sink = SyslogSink(SinkConfig(url=f"tcp://127.0.0.1:{{port}}", name="crash"), {spool!r})
sink.start()
for i in range(20):
    sink.write("alerts", make_alert(i).to_dict())
os._exit(0)   # no close(), no buffer flush: as if killed
"""


def test_messages_spooled_while_unreachable_survive_a_crash(tmp_path) -> None:
    repo = str(Path(__file__).resolve().parents[2])
    script = CRASHING_SENSOR.format(repo=repo, spool=str(tmp_path))
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    spool = Spool(str(tmp_path / "crash"))
    assert spool.pending == 20
    assert all(b"CEF:0|otsensor|" in p for p in payloads(spool))


def test_unpersisted_acks_still_free_whole_segments(tmp_path) -> None:
    spool = Spool(str(tmp_path), segment_bytes=100)
    for i in range(30):
        spool.append(b"z" * 20)
        (pos, _), = list(spool.read_from(spool.ack_pos))
        spool.ack(pos, 1, persist=False)   # what a UDP sink does after each datagram
    assert len([n for n in os.listdir(tmp_path) if n.endswith(".seg")]) <= 2 and spool.pending == 0


FULL_DISK_SENSOR = """
import json, resource, signal, socket, sys
sys.path.insert(0, {repo!r})
from otsensor.sensor.config import SinkConfig
from otsensor.sensor.sinks.syslog import SyslogSink
from tests.sensor.alert_samples import make_alert
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)          # writes past the limit fail with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (3000, 3000))  # a "disk" that fills after 3000 bytes per file
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
sink = SyslogSink(SinkConfig(url=f"tcp://127.0.0.1:{{port}}", name="full", drain_timeout=0.1), {spool!r})
sink.start()
for i in range(40):
    sink.write("alerts", make_alert(i).to_dict())
sink.close()
print(json.dumps(sink.report()))
"""


def test_a_full_disk_is_counted_not_raised(tmp_path) -> None:
    script = FULL_DISK_SENSOR.format(repo=str(Path(__file__).resolve().parents[2]), spool=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["dropped"] > 0 and report["accepted"] + report["dropped"] == 40, report
    assert any(why in report["spool_error"].lower() for why in ("too large", "short write")), report
    assert Spool(str(tmp_path / "full")).pending == report["spooled"]   # what was kept is readable
