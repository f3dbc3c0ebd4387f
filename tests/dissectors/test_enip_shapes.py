"""Short service data is the named anomaly, a decoder bug is a fault (never traffic), the I/O connection
table shared across flows is bounded, and a flow's parser reuses the request paths it decoded."""
from __future__ import annotations

import json
import random

import pytest

from otsensor.dissectors.base import Anomaly, DissectorFault
from otsensor.dissectors.enip import connections
from otsensor.dissectors.enip import tables as T
from otsensor.dissectors.enip.cip import MAX_PATHS, CipParser
from otsensor.dissectors.enip.connections import MAX_CONNECTIONS, IOConnections
from otsensor.dissectors.enip.dissector import EnipDissector
from otsensor.dissectors.enip.message import Message
from otsensor.dissectors.enip.records import CipRecord
from tests.dissectors import test_enip_units as U
from tests.dissectors.test_enip_fuzz import REPLIES, REQUESTS, feed_streams, mutate

ORIG, RESP = U.ORIG, U.RESP
SYMBOL = bytes.fromhex("9103 414243 00")                  # tag 'ABC'
ROUTER, CM, PCCC = bytes.fromhex("20022401"), bytes.fromhex("20062401"), U.PCCC_PATH


def names(records: list) -> list[str]:
    return [r.name for r in records if isinstance(r, Anomaly)]


# (label, request, reply or None): the data is cut where the service still needs bytes
SHORT = [
    ("write tag without element count", U.cip_request(0x4d, SYMBOL, U.h("c400")), None),
    ("write tag fragmented without offset", U.cip_request(0x53, SYMBOL, U.h("c400 0100")), None),
    ("structure type without its handle", U.cip_request(0x4d, SYMBOL, U.h("a000")), None),
    ("read tag fragmented without offset", U.cip_request(0x52, SYMBOL, U.h("0100")), None),
    ("read modify write masks beyond the data", U.cip_request(0x4e, SYMBOL, U.h("0400 ff")), None),
    ("attribute ids beyond the data", U.cip_request(0x03, U.IDENTITY_PATH, U.h("0300 0100")), None),
    ("service offsets beyond the data", U.cip_request(0x0a, ROUTER, U.h("0300 0800")), None),
    ("service packet without a count", U.cip_request(0x0a, ROUTER, U.h("01")), None),
    ("unconnected send header cut", U.cip_request(0x52, CM, U.h("05")), None),
    ("forward close cut short", U.cip_request(0x4e, CM, U.h("059d 0100")), None),
    ("large forward open cut short", U.cip_request(0x5b, CM, U.h("059d") + bytes(30)), None),
    ("pccc without a requestor id", U.cip_request(0x4b, PCCC, b""), None),
    ("pccc without a function code", U.cip_request(0x4b, PCCC, U.REQUESTOR + U.h("0f00 3412")), None),
    ("pccc address field cut", U.cip_request(0x4b, PCCC, U.REQUESTOR + U.h("0f00 3412 aa 04 ff")), None),
    ("pccc address without its file type", U.cip_request(0x4b, PCCC, U.REQUESTOR + U.h("0f00 3412 aa 04 07")),
     None),
    ("forward open reply cut short", U.cip_request(0x54, CM), U.cip_reply(0x54, 0, bytes(10))),
    ("read reply structure without handle", U.cip_request(0x4c, SYMBOL, U.h("0100")), U.cip_reply(0x4c, 0, U.h("a000"))),
    ("pccc reply cut short", U.cip_request(0x4b, PCCC, U.REQUESTOR + U.h("0f00 3512 a2 08 08 8a 03 00")),
     U.cip_reply(0x4b, 0, U.h("07 4d00"))),
]


@pytest.mark.parametrize("label, asked, reply", SHORT, ids=[s[0] for s in SHORT])
def test_short_service_data_is_named(label, asked, reply):
    frames = [(U.REGISTER_REQ, ORIG), (asked, ORIG)] + ([(reply, RESP)] if reply else [])
    out = U.run(frames)
    assert "cip.bad_service_data" in names(out), label
    assert not [r for r in out if isinstance(r, DissectorFault)]
    (rec,) = U.of(out, CipRecord)
    assert rec.to_dict()["malformed"] is True
    for r in out:
        json.dumps(r.to_dict())
        r.op()


class FaultyParser(CipParser):
    """A parser whose Unconnected Send decoder has a bug."""

    def _unconnected_send(self, msg: Message, depth: int, request: Message | None) -> None:
        raise IndexError("simulated decoder bug")


class FaultyDissector(EnipDissector):
    def __init__(self) -> None:
        super().__init__()
        self.parser = FaultyParser()


def test_a_decoder_bug_is_a_fault_and_the_stream_goes_on():
    d = FaultyDissector()
    out = []
    for i, (frame, direction) in enumerate([(U.READ_REQ, ORIG), (U.READ_RSP, RESP), (U.GAA_REQ, ORIG),
                                            (U.GAA_RSP, RESP)]):
        out += d.feed(frame, direction, float(i))
    (fault,) = [r for r in out if isinstance(r, DissectorFault)]
    assert fault.name == f"{T.PROTOCOL}.dissector_error" and "IndexError: simulated decoder bug" in fault.reason
    assert "cip.bad_service_data" not in names(out) and fault.name not in T.ANOMALIES
    assert [r.service_name for r in U.of(out, CipRecord)] == ["Unconnected Send", "Get Attributes All"]


@pytest.mark.parametrize("seed", range(60))
def test_mutated_streams_never_fault(seed):
    """Every check is explicit: hostile bytes give named anomalies, never a decoder exception."""
    rng = random.Random(5000 + seed)
    out = feed_streams([(mutate(REQUESTS, rng), ORIG), (mutate(REPLIES, rng), RESP)], bytewise=False)
    assert not [r.reason for r in out if isinstance(r, DissectorFault)]
    assert all(name in T.ANOMALIES for name in names(out))


def test_io_connections_are_one_table_per_run_and_bounded():
    shared: dict = {}
    assert connections(shared) is connections(shared) and connections({}) is not connections(shared)
    table = IOConnections()
    for i in range(MAX_CONNECTIONS // 2 + 1):       # two ids per Forward Open
        table.record_forward_open(None, 2 * i, 2 * i + 1, 1.0 + i)
    assert table.lookup_io(0) is None and table.lookup_io(1) is None          # the oldest are forgotten
    last = table.lookup_io(MAX_CONNECTIONS + 1)
    assert last is not None and (last.direction, last.rpi_us, last.ts) == ("t_o", None, 1.0 + MAX_CONNECTIONS // 2)
    assert last.op_detail() == (("direction", "t_o"), ("rpi_us", None))


def test_a_flow_parser_reuses_decoded_paths_within_a_bound():
    parser = CipParser()
    read = bytes.fromhex("0e03 20012401 3007")                # Get Attribute Single, identity attribute 7
    first, second = parser.request(read), parser.request(read)
    assert first is not second and first.path is second.path
    assert (first.path.class_id, first.path.attribute_id, first.path.text()) == (1, 7, "class 0x01 instance 0x01 "
                                                                                         "attribute 0x07")
    for i in range(MAX_PATHS):
        parser.path(bytes([0x20, i & 0xFF, 0x25, 0x00, i >> 8, 0x00]))
    assert parser.request(read).path is not first.path          # forgotten once the bound was reached


def test_a_symbol_with_a_superscript_index_has_no_start():
    """A tag name's own bytes may read "A[²]": isdigit() accepts "²", int() does not."""
    name = "A[\xb2]".encode("latin-1")
    path = bytes([0x91, len(name)]) + name + b"\0" * (len(name) & 1)
    recs = U.run([(U.cip_request(0x4c, path, U.h("0100")), ORIG), (U.cip_reply(0x4c, 0, U.h("c300 0100")), RESP)])
    (rec,) = U.of(recs, CipRecord)
    op = rec.op()
    assert rec.symbol == "A[\xb2]" and (op.space, op.start, op.count) == ("A", None, 1)


@pytest.mark.parametrize("value", [0, 0x1F, 0xC8ED8F5A, 0xFFFFFFFF, 1 << 32, (1 << 40) + 7])
def test_hex8_writes_ids_as_the_format_does(value):
    assert T.hex8(value) == f"0x{value:08x}" and T.hex8(value) == f"0x{value:08x}"   # formatted, then recalled


def test_hex8_remembers_a_bounded_number_of_ids():
    for value in range(T.MAX_HEX8 + 10):
        assert T.hex8(value) == f"0x{value:08x}"
    assert len(T._HEX8) <= T.MAX_HEX8


def test_an_io_connections_columns_and_op_are_the_same_for_each_datagram():
    table = IOConnections()
    table.record_forward_open(None, 0x10, 0x11, 2.5)
    conn = table.lookup_io(0x11)
    first: dict = {"ts": 3.0}
    conn.fill_row(first)
    second: dict = {"ts": 4.0, "is_orig": False}
    conn.fill_row(second)
    assert list(first) == ["ts", "fo_ts", "fo_direction", "fo_rpi_us"]
    assert second == {"ts": 4.0, "is_orig": False, "fo_ts": 2.5, "fo_direction": "t_o", "fo_rpi_us": None}
    op = conn.io_op(0x11)
    assert (op.space, op.ok, op.detail) == ("connection 0x00000011", True, (("direction", "t_o"), ("rpi_us", None)))
    assert conn.io_op(0x11) is op and conn.io_op(0x12).space.endswith("12")
