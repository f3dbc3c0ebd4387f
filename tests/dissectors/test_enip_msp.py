"""Multiple Service Packet offset tables (Vol. 1 A-4.10): truncated tables, offsets out of order, overlapping
the table or past the data, service counts past the data, on requests and replies; each gives its named
anomaly with its reason, the services that lie inside the packet still decode, and nothing raises."""
from __future__ import annotations

import json
import random

import pytest

from otsensor.dissectors.base import Anomaly, Direction
from otsensor.dissectors.enip.dissector import EnipDissector
from otsensor.dissectors.enip.records import CipRecord
from tests.dissectors.test_enip_units import REGISTER_REQ, cip_reply, cip_request, h

ORIG, RESP = Direction.ORIG, Direction.RESP
ROUTER = bytes.fromhex("20022401")                 # class 0x02 (message router) instance 1
GET_IDENTITY = bytes.fromhex("0e 03 20012401 3001")  # Get Attribute Single, identity instance 1 attribute 1


def table(count: int, offsets: list[int]) -> bytes:
    return count.to_bytes(2, "little") + b"".join(o.to_bytes(2, "little") for o in offsets)


def run(frames: list[tuple[bytes, Direction]]) -> list:
    d = EnipDissector()
    out = d.feed(REGISTER_REQ, ORIG, 1.0)
    for i, (frame, direction) in enumerate(frames):
        out += d.feed(frame, direction, 2.0 + i)
    return out + d.close(9.0)


def anomalies(out: list) -> list[tuple[str, str]]:
    return [(r.name, r.reason) for r in out if isinstance(r, Anomaly)]


def services(out: list) -> list[tuple[int | None, str]]:
    return [(r.msp_index, r.service_name) for r in out if isinstance(r, CipRecord)]


# (label, MSP request data, anomalies, the services decoded (index, name) after the packet's own record)
REQUESTS = [
    ("two services", table(2, [6, 14]) + GET_IDENTITY * 2, [],
     [(0, "Get Attributes Single"), (1, "Get Attributes Single")]),
    ("no services", table(0, []), [], []),
    ("count only", b"\x02", [("cip.bad_service_data", "service 0x0a data: multiple service packet: 1 bytes, needs 2")],
     []),
    ("table cut short: count past the data", table(3, [8]),
     [("cip.bad_service_data", "service 0x0a data: multiple service packet of 3 services: 4 bytes, needs 8")], []),
    ("offsets out of order", table(2, [14, 6]) + GET_IDENTITY * 2,
     [("cip.bad_msp", "service 0 offset 14..6 outside the 22-byte packet")], []),
    ("second offset before the first ends", table(3, [8, 16, 12]) + GET_IDENTITY * 2,
     [("cip.bad_msp", "service 1 offset 16..12 outside the 24-byte packet")], [(0, "Get Attributes Single")]),
    ("offset inside the table", table(2, [2, 14]) + GET_IDENTITY * 2,
     [("cip.bad_msp", "service 0 offset 2..14 outside the 22-byte packet")], []),
    ("offset past the data", table(2, [6, 40]) + GET_IDENTITY * 2,
     [("cip.bad_msp", "service 0 offset 6..40 outside the 22-byte packet")], []),
    ("last service starts past the data", table(1, [30]) + GET_IDENTITY,
     [("cip.bad_msp", "service 0 offset 30..12 outside the 12-byte packet")], []),
    ("empty last service", table(2, [6, 14]) + GET_IDENTITY,
     [("cip.truncated", "request of 0 bytes")], [(0, "Get Attributes Single"), (1, "unknown-0x00")]),
]


@pytest.mark.parametrize("label, data, expected, decoded", REQUESTS, ids=[r[0] for r in REQUESTS])
def test_request_tables(label, data, expected, decoded):
    out = run([(cip_request(0x0a, ROUTER, data), ORIG)])
    assert anomalies(out) == expected, label
    assert services(out) == [(None, "Multiple Service Packet")] + decoded, label
    for rec in out:
        json.dumps(rec.to_dict())
        rec.op()


def test_too_many_services_decodes_the_first_64():
    count = 70
    first = 2 + 2 * count
    data = table(count, [first + 8 * i for i in range(count)]) + GET_IDENTITY * count
    out = run([(cip_request(0x0a, ROUTER, data), ORIG)])
    assert anomalies(out) == [("cip.msp_too_many", "70 services, decoding the first 64")]
    (msp,) = [r for r in out if isinstance(r, CipRecord) and r.msp_index is None]
    assert msp.to_dict()["msp_count"] == 70 and len(msp.to_dict()["msp_services"]) == 64
    # the 64th service runs to the end of the data: it keeps the six services after it as trailing data
    assert len(services(out)) == 65


REPLY_OK = h("8e 00 00 00 0100")   # Get Attribute Single reply, success, one attribute word


@pytest.mark.parametrize("label, reply, expected, answered", [
    ("both answered", table(2, [6, 12]) + REPLY_OK * 2, [], 2),
    ("reply table cut short", table(2, [6]), [("cip.bad_service_data",
                                               "service 0x0a data: multiple service packet of 2 services: "
                                               "4 bytes, needs 6")], 0),
    ("reply offsets out of order", table(2, [12, 6]) + REPLY_OK * 2,
     [("cip.bad_msp", "service 0 offset 12..6 outside the 18-byte packet")], 0),
    ("reply of one byte", b"\x02", [], 0),
])
def test_reply_tables(label, reply, expected, answered):
    request = cip_request(0x0a, ROUTER, table(2, [6, 14]) + GET_IDENTITY * 2)
    out = run([(request, ORIG), (cip_reply(0x0a, 0, reply), RESP)])
    assert anomalies(out) == expected, label
    children = [r for r in out if isinstance(r, CipRecord) and r.msp_index is not None]
    assert [r.matched for r in children] == [True] * answered + [False] * (2 - answered), label


@pytest.mark.parametrize("seed", range(40))
def test_random_tables_never_raise_and_spans_stay_inside(seed):
    """Random counts and offsets, the packet cut anywhere: no exception; a table the data cannot hold is
    short data, one whose offsets are not increasing from the table's end to the data's end is flagged, and
    otherwise every service is decoded."""
    rng = random.Random(seed)
    count = rng.randint(0, 12)
    body = bytes(rng.randrange(256) for _ in range(rng.randint(0, 60)))
    offsets = [rng.randint(0, 2 + 2 * count + len(body) + 4) for _ in range(count)]
    if rng.random() < 0.5:   # mostly well-formed tables
        offsets = sorted(min(max(o, 2 + 2 * count), 2 + 2 * count + len(body)) for o in offsets)
    data = table(count, offsets) + body
    if rng.random() < 0.2:
        data = data[:rng.randint(2, len(data))]
    out = run([(cip_request(0x0a, ROUTER, data), ORIG)])
    names = [name for name, _reason in anomalies(out)]
    ordered = all(a <= b for a, b in zip(offsets, offsets[1:]))
    inside = all(2 + 2 * count <= o <= len(data) for o in offsets)
    children = [r for r in out if isinstance(r, CipRecord) and r.msp_index is not None]
    if len(data) < 2 + 2 * count:
        assert "cip.bad_service_data" in names and not children
    elif ordered and inside:
        assert "cip.bad_msp" not in names and len(children) == count
    else:
        assert "cip.bad_msp" in names and len(children) < count
    for rec in out:
        json.dumps(rec.to_dict())
        rec.op()
