"""Fuzz-ish tests: random, truncated and mutated bytes never escape ``feed``, state stays bounded,
and feeding a stream whole or one byte at a time gives the same records (h11's fuzz discipline)."""
from __future__ import annotations

import json
import random

import pytest

from otsensor.dissectors.base import Direction
from otsensor.dissectors.s7comm import S7Dissector
from otsensor.dissectors.s7comm.anomalies import ANOMALIES
from otsensor.dissectors.s7comm.dissector import MAX_PENDING
from otsensor.dissectors.s7comm.framing import MAX_BUFFER
from tests.dissectors.s7comm_support import PCAPS, capture_streams
from tests.dissectors.test_s7comm_units import SETUP_ACK, SETUP_JOB

STREAMS = [s for p in sorted(PCAPS.glob("s7_*.pcap")) for s in capture_streams(p)]


def _feed(chunks, split: bool):
    dis = S7Dissector({})
    out = []
    for i, (direction, data) in enumerate(chunks):
        pieces = [data[j:j + 1] for j in range(len(data))] if split else [data]
        for piece in pieces:
            out += dis.feed(piece, direction, float(i))
            _assert_bounded(dis)
    out += dis.close(1e9)
    return dis, [(r.LOG, r.to_dict()) for r in out]


def _assert_bounded(dis: S7Dissector) -> None:
    for framer in dis.framers.values():
        assert len(framer.buf) <= MAX_BUFFER + 4096
    assert len(dis.pending) <= MAX_PENDING and len(dis.plus_pending) <= MAX_PENDING


def _no_bug(records) -> None:
    anomalies = [d for log, d in records if log == "anomalies"]
    assert not [d for d in anomalies if d["name"] == "s7comm.dissector_error"]    # a DissectorFault: a bug
    assert {d["name"] for d in anomalies} <= set(ANOMALIES)      # only names from the closed set
    json.dumps(records)                                           # everything serialises


@pytest.mark.parametrize("index", range(len(STREAMS)))
def test_whole_and_byte_at_a_time_agree(index: int) -> None:
    _dis, whole = _feed(STREAMS[index], split=False)
    _dis, split = _feed(STREAMS[index], split=True)
    assert whole == split
    assert any(log == "s7comm" for log, _ in whole)
    _no_bug(whole)


def _mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.random()
        if not buf:
            break
        pos = rng.randrange(len(buf))
        if kind < 0.5:
            buf[pos] = rng.randrange(256)
        elif kind < 0.7:
            del buf[pos:pos + rng.randint(1, 8)]
        elif kind < 0.85:
            buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        else:
            del buf[pos:]
    return bytes(buf)


@pytest.mark.parametrize("seed", range(150))
def test_mutated_streams_never_raise(seed: int) -> None:
    rng = random.Random(seed)
    stream = STREAMS[seed % len(STREAMS)]
    chunks = [(d, _mutate(rng, data) if rng.random() < 0.3 else data) for d, data in stream]
    _dis, whole = _feed(chunks, split=False)
    _no_bug(whole)
    if seed % 8 == 0:            # the byte-at-a-time run is slow: check equality on a subset
        _dis, split = _feed(chunks, split=True)
        assert whole == split


@pytest.mark.parametrize("seed", range(30))
def test_random_bytes_after_a_valid_setup(seed: int) -> None:
    rng = random.Random(1000 + seed)
    junk = bytes(rng.randrange(256) for _ in range(rng.randint(1, 3000)))
    # random bytes shaped like a TPKT frame half of the time, so the inner decoders get exercised
    if seed % 2:
        body = b"\x02\xf0\x80" + bytes([rng.choice([0x32, 0x72])]) + junk[:400]
        junk = b"\x03\x00" + (len(body) + 4).to_bytes(2, "big") + body
    _dis, records = _feed([(Direction.ORIG, SETUP_JOB), (Direction.RESP, SETUP_ACK),
                           (Direction.ORIG, junk), (Direction.RESP, junk[::-1])], split=False)
    _no_bug(records)
