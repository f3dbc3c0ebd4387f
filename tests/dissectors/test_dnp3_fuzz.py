"""Fuzz-ish tests: random, truncated and mutated DNP3 streams never raise out of the
dissector, stay bounded, and give the same records fed whole or one byte at a time."""
from __future__ import annotations

import random
import tracemalloc

import pytest

from otsensor.dissectors.base import Anomaly, Direction, DissectorFault
from otsensor.dissectors.dnp3 import Dnp3Dissector
from otsensor.dissectors.dnp3.app import parse_fragment
from otsensor.dissectors.dnp3.objects import CATALOGUE
from otsensor.dissectors.dnp3.tables import ANOMALIES
from tests.dissectors.dnp3_support import PCAPS
from tests.dissectors.test_dnp3_units import AI_RESPONSE, CROB_SELECT, INTEGRITY_POLL, frame, segmented

ORIG, RESP = Direction.ORIG, Direction.RESP
SEED_STREAMS = [
    (ORIG, INTEGRITY_POLL + CROB_SELECT),
    (RESP, AI_RESPONSE),
    (ORIG, segmented(b"\xc0\x02" + b"\x01\x02\x00\x00\x09" + b"\x81" * 10 + b"\x32\x01\x07\x01" + b"\x00" * 6)),
]


def feed_all(chunks: list[tuple[Direction, bytes]], step: int | None = None) -> list:
    d = Dnp3Dissector({})
    out = []
    for direction, data in chunks:
        if step is None:
            out += d.feed(data, direction, 1.0)
        else:
            for i in range(0, len(data), step):
                out += d.feed(data[i:i + step], direction, 1.0)
    out += d.close(2.0)
    return out


def canonical(records: list) -> list:
    return [(r.LOG, r.to_dict()) for r in records]


def mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randrange(1, 6)):
        kind = rng.randrange(4)
        if kind == 0 and b:
            b[rng.randrange(len(b))] = rng.randrange(256)
        elif kind == 1 and b:
            del b[rng.randrange(len(b)):][: rng.randrange(1, 20)]
        elif kind == 2:
            pos = rng.randrange(len(b) + 1)
            b[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 20)))
        else:
            b = b[: rng.randrange(len(b) + 1)]
    return bytes(b)


def valid_frame_mutation(rng: random.Random) -> bytes:
    """Random application bytes inside frames with correct CRCs, so the deep layers are hit."""
    app = bytes([rng.choice((0xC0, 0xC1, 0x80, 0x40)), rng.choice((1, 2, 3, 5, 0x81, 0x82, rng.randrange(256)))])
    app += bytes(rng.randrange(256) for _ in range(rng.randrange(0, 600)))
    return segmented(app, control=rng.choice((0xC4, 0x44, 0xC3)))


@pytest.mark.parametrize("seed", range(40))
def test_mutated_streams_never_raise_and_chunking_does_not_matter(seed):
    rng = random.Random(seed)
    chunks = [(d, mutate(rng, data)) for d, data in SEED_STREAMS]
    chunks.append((rng.choice((ORIG, RESP)), valid_frame_mutation(rng)))
    whole = feed_all(chunks)
    bytewise = feed_all(chunks, step=1)
    assert canonical(whole) == canonical(bytewise)
    for r in whole:
        if isinstance(r, Anomaly):
            assert r.name in ANOMALIES and not isinstance(r, DissectorFault), r.to_dict()


@pytest.mark.parametrize("seed", range(10))
def test_random_bytes_rejected_or_reported(seed):
    rng = random.Random(1000 + seed)
    data = bytes(rng.randrange(256) for _ in range(rng.randrange(3, 3000)))
    if data.startswith(b"\x05\x64"):
        data = b"\x00" + data
    d = Dnp3Dissector({})
    assert d.feed(data, ORIG, 1.0) == [] and d.rejected           # not DNP3: detach, report nothing
    d = Dnp3Dissector({})                                          # after a valid frame: anomalies only
    out = d.feed(INTEGRITY_POLL, ORIG, 1.0)
    extra = d.feed(data, ORIG, 1.0) + d.close(2.0)
    assert d.confirmed and out
    names = {r.name for r in extra if isinstance(r, Anomaly)}
    assert names and names <= set(ANOMALIES) and "dnp3.dissector_error" not in names


@pytest.mark.parametrize("seed", range(4))
def test_every_catalogue_object_under_any_qualifier_is_decoded_or_reported(seed):
    """Each group/variation the catalogue knows, behind random qualifiers (size and index prefixes
    included) and random octets: parse_fragment reports named problems, never raises."""
    rng = random.Random(2000 + seed)
    for key in CATALOGUE:
        qualifier = rng.choice((0x00, 0x01, 0x06, 0x07, 0x08, 0x17, 0x28, 0x39, 0x4B, 0x5B, 0x6B, 0x1B))
        function = rng.choice((0x02, 0x05, 0x81))
        app = bytes([0xC0, function]) + (b"\x00\x00" if function == 0x81 else b"")
        app += bytes([key >> 8, key & 0xFF, qualifier]) + rng.randbytes(rng.randrange(0, 48))
        frag = parse_fragment(app)
        assert frag is not None and {p[0] for p in frag.problems} <= set(ANOMALIES)
        for hdr in frag.headers:
            for point in hdr.points:
                point.as_dict()


def test_generated_pcap_bytes_truncated_everywhere():
    """Every prefix of a real outstation response stream: no exception, bounded buffer."""
    from tests.dissectors.dnp3_support import run_pcap

    assert any(r.LOG == "dnp3" for r in run_pcap(PCAPS / "dnp3_scada.pcap"))
    stream = AI_RESPONSE * 3
    for cut in range(len(stream)):
        d = Dnp3Dissector({})
        d.feed(stream[:cut], RESP, 1.0)
        assert len(d._buf[RESP]) < 300
        d.close(2.0)


def test_flood_memory_bounded():
    """A flood of requests from ever-new masters and of never-finished fragments stays bounded."""
    tracemalloc.start()
    d = Dnp3Dissector({})
    base = tracemalloc.get_traced_memory()[0]
    for i in range(1200):
        d.feed(frame(b"\xc0\xc0\x01\x3c\x01\x06", src=i & 0xFFFF), ORIG, 1.0)      # unanswered READs
        d.feed(frame(b"\x40" + b"\x00" * 200, src=i & 0xFFFF, dst=i >> 3), RESP, 1.0)  # FIR, never FIN
    grown = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert len(d._pending) <= 500
    assert sum(len(s.buffer) for s in d._reasm[RESP]._streams.values()) <= 16 * 65536
    assert grown < 20_000_000, grown
