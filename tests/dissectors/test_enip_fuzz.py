"""Fuzz-ish tests: random, truncated and mutated ENIP streams and datagrams never raise, records are
JSON-serialisable, op()/identity() never raise, and a stream fed whole or one byte at a time gives
the same records (h11's fuzz-harness idea)."""
from __future__ import annotations

import json
import random

import pytest

from otsensor.dissectors.base import Direction
from otsensor.dissectors.enip import probe
from otsensor.dissectors.enip.dissector import EnipDissector
from otsensor.dissectors.enip.iolink import CipIODissector
from tests.dissectors import test_enip_units as U

ORIG, RESP = Direction.ORIG, Direction.RESP
REQUESTS = U.REGISTER_REQ + U.READ_REQ + U.MSP_REQ + U.FO_REQ + U.CONN_REQ + U.GAA_REQ
REPLIES = U.REGISTER_RSP + U.READ_RSP + U.MSP_RSP + U.FO_RSP + U.CONN_RSP + U.GAA_RSP


def mutate(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        kind = rng.random()
        pos = rng.randrange(len(buf)) if buf else 0
        if kind < 0.5 and buf:
            buf[pos] = rng.randrange(256)                       # flip a byte
        elif kind < 0.7:
            buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 6)))   # insert
        elif kind < 0.85 and buf:
            del buf[pos:pos + rng.randint(1, 6)]                # delete
        else:
            buf = buf[:pos]                                     # truncate
    return bytes(buf)


def feed_streams(streams: list[tuple[bytes, Direction]], bytewise: bool) -> list:
    d = EnipDissector()
    out = []
    for data, direction in streams:
        if bytewise:
            for i in range(len(data)):
                out += d.feed(data[i:i + 1], direction, 1.0)
        else:
            out += d.feed(data, direction, 1.0)
    out += d.close(2.0)
    return out


def check_records(records: list) -> None:
    for rec in records:
        json.dumps(rec.to_dict(), allow_nan=False)
        rec.op()
        rec.identity()


def test_clean_streams_same_whole_and_bytewise():
    streams = [(REQUESTS, ORIG), (REPLIES, RESP)]
    whole = feed_streams(streams, bytewise=False)
    assert U.rows(whole) == U.rows(feed_streams(streams, bytewise=True))
    assert len(whole) > 15
    check_records(whole)


@pytest.mark.parametrize("seed", range(40))
def test_mutated_streams_never_raise_and_agree_bytewise(seed):
    rng = random.Random(seed)
    streams = [(mutate(REQUESTS, rng), ORIG), (mutate(REPLIES, rng), RESP)]
    whole = feed_streams(streams, bytewise=False)
    check_records(whole)
    assert U.rows(whole) == U.rows(feed_streams(streams, bytewise=True))


@pytest.mark.parametrize("seed", range(10))
def test_random_bytes_after_confirmation(seed):
    rng = random.Random(1000 + seed)
    junk = bytes(rng.randrange(256) for _ in range(rng.randint(1, 6000)))
    streams = [(U.REGISTER_REQ + junk + U.READ_REQ, ORIG), (U.REGISTER_RSP + U.READ_RSP, RESP)]
    whole = feed_streams(streams, bytewise=False)
    check_records(whole)
    assert U.rows(whole) == U.rows(feed_streams(streams, bytewise=True))


@pytest.mark.parametrize("seed", range(10))
def test_random_prefix_before_confirmation(seed):
    """A stream joined mid-message (random prefix): pickup or rejection, the same whole or byte-wise."""
    rng = random.Random(3000 + seed)
    prefix = bytes(rng.randrange(256) for _ in range(rng.randint(1, 3000)))
    streams = [(prefix + REQUESTS, ORIG), (REPLIES, RESP)]
    whole = feed_streams(streams, bytewise=False)
    check_records(whole)
    assert U.rows(whole) == U.rows(feed_streams(streams, bytewise=True))
    assert any(getattr(r, "name", None) == "enip.resync" for r in whole)


@pytest.mark.parametrize("cut", range(0, len(U.MSP_REQ), 7))
def test_truncated_then_gap_then_stream_resumes(cut):
    d = EnipDissector()
    out = d.feed(U.REGISTER_REQ + U.MSP_REQ[:cut], ORIG, 1.0)
    out += d.gap(ORIG, 50, 1.5)
    out += d.feed(U.READ_REQ, ORIG, 2.0)
    out += d.close(3.0)
    check_records(out)
    assert any(getattr(r, "symbol", None) == "Speed[0]" for r in out)


@pytest.mark.parametrize("seed", range(30))
def test_mutated_datagrams_and_io_never_raise(seed):
    rng = random.Random(2000 + seed)
    udp = EnipDissector(datagram=True)
    io = CipIODissector()
    out = []
    for base in (U.LIST_IDENTITY_RSP, U.REGISTER_REQ, U.h("0200 0280 0800 01000000 01000000 b100 0200 0100")):
        for _ in range(20):
            data = mutate(base, rng)
            probe(data, ORIG)
            out += udp.feed(data, RESP, 1.0) + io.feed(data, ORIG, 1.0)
    check_records(out)


def test_buffer_is_bounded_by_the_length_field():
    d = EnipDissector()
    d.feed(U.REGISTER_REQ, ORIG, 1.0)
    huge = U.encap(0x6F, b"")[:2] + (65511).to_bytes(2, "little") + U.encap(0x6F, b"")[4:]
    for _ in range(200):
        d.feed(huge + b"\0" * 1000, ORIG, 1.0)
        assert len(d.buffers[0]) <= 24 + 65511 + 1024
