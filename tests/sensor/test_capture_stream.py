"""The capture readers on a pipe that cannot seek: records are handed on as soon as their bytes arrive."""
from __future__ import annotations

import gzip
import os
import threading
import zlib
from pathlib import Path

import pytest

from otsensor.sensor.capture import CaptureError, open_capture, open_stream

PCAPS = Path(__file__).resolve().parents[2] / "pcaps"


def pipe_reader(data_parts: list[bytes], gate: threading.Event | None = None, gate_after: int = 0,
                late: list | None = None):
    """A reader on the read end of a pipe fed by a thread; the thread waits for ``gate`` after part
    ``gate_after`` (5 s at most: then it notes in ``late`` that the reader never asked it to go on)."""
    read_fd, write_fd = os.pipe()

    def feed() -> None:
        with os.fdopen(write_fd, "wb", buffering=0) as out:
            for i, part in enumerate(data_parts):
                out.write(part)
                if gate is not None and i == gate_after and not gate.wait(5) and late is not None:
                    late.append(i)

    threading.Thread(target=feed, daemon=True).start()
    return open_stream(os.fdopen(read_fd, "rb"), "<pipe>")   # buffered, as a caller would open it


@pytest.mark.parametrize("name", ["modbus_hmi.pcap", "s7_hmi.pcap", "dnp3_scada.pcap"])
def test_a_pipe_reads_like_the_file(name):
    data = (PCAPS / name).read_bytes()
    with open_capture(str(PCAPS / name)) as reader:
        expected = list(reader)
    parts = [data[i:i + 777] for i in range(0, len(data), 777)]   # records split across reads
    with pipe_reader(parts) as reader:
        assert list(reader) == expected


def test_gzip_on_a_pipe():
    data = gzip.compress((PCAPS / "modbus_it.pcap").read_bytes())
    with open_capture(str(PCAPS / "modbus_it.pcap")) as reader:
        expected = list(reader)
    with pipe_reader([data[:1], data[1:3], data[3:]]) as reader:
        assert list(reader) == expected


@pytest.mark.parametrize("compress", [False, True], ids=["pcap", "pcap.gz"])
def test_a_record_is_handed_on_before_the_writer_sends_more(compress):
    """A live pipe (tcpdump -w -) is not waited on until a whole read chunk has arrived."""
    data = (PCAPS / "modbus_hmi.pcap").read_bytes()
    first_record_end = 24 + 16 + int.from_bytes(data[24 + 8:24 + 12], "little")
    head, tail = data[:first_record_end], data[first_record_end:]
    if compress:
        packer = zlib.compressobj(wbits=31)   # a gzip stream flushed after the first record, as gzip -c does
        head = packer.compress(head) + packer.flush(zlib.Z_SYNC_FLUSH)
        tail = packer.compress(tail) + packer.flush()
    gate, late = threading.Event(), []
    with pipe_reader([head, tail], gate, gate_after=0, late=late) as reader:
        packets = iter(reader)
        first = next(packets)           # would block forever (the writer waits) if the reader wanted more
        gate.set()
        rest = list(packets)
    assert not late, "the reader waited for more bytes before handing on the first record"
    assert len(rest) + 1 == 269 and first[2] == data[24 + 16:first_record_end]


def test_a_stream_that_is_not_a_capture_is_one_error():
    with pytest.raises(CaptureError, match=r"<pipe>: not a pcap or pcapng capture \(starts with 68656c6c\)"):
        pipe_reader([b"hello world"])
    with pytest.raises(CaptureError, match="<pipe>: empty file"):
        pipe_reader([])


def test_a_stream_cut_mid_record_keeps_what_came_before():
    data = (PCAPS / "modbus_hmi.pcap").read_bytes()
    with pipe_reader([data[:-10]]) as reader:
        packets = list(reader)
    assert len(packets) == 268
    assert "capture truncated" in reader.truncated
