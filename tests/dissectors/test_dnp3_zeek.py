"""The DNP3 Zeek events our records give, against the events Zeek's own btests print for the same traces.

Zeek's testing/btest/scripts/base/protocols/dnp3 tests print every DNP3
event with its arguments (``output`` in their baselines, in the shared
corpus).  The arguments the ICSNPP and base scripts use (the application
headers, each object header's count and range as Zeek computes them, quirks
included, and each control block) must come out of our fragments the same,
in the same order.
"""
from __future__ import annotations

import pytest
from otsensor.dissectors.base import Direction
from otsensor.dissectors.dnp3.app import parse_fragment
from otsensor.dissectors.dnp3.points import Crob
from otsensor.dissectors.dnp3.records import Dnp3Transaction
from otsensor.dissectors.dnp3.zeek import (
    REQUEST_OBJECT_FUNCTIONS,
    RESPONSE_OBJECT_FUNCTIONS,
    Dnp3Script,
    fragment_event,
    object_header_args,
)
from otsensor.dissectors.zeek import ZeekConn

from tests.corpus import corpus_dir
from tests.dissectors.dnp3_support import run_pcap

BTEST = corpus_dir() / "zeek" / "testing" / "btest"
TESTS = ("dnp3_udp_en_spon", "dnp3_udp_read", "dnp3_udp_select_operate", "dnp3_udp_write")
WATCHED = ("dnp3_application_request_header", "dnp3_application_response_header", "dnp3_object_header",
           "dnp3_crob", "dnp3_pcb")


def zeek_events(test: str) -> list[str]:
    output = BTEST / "Baseline" / f"scripts.base.protocols.dnp3.{test}" / "output"
    return [line for line in output.read_text().splitlines() if line.split(",")[0] in WATCHED]


def our_events(test: str) -> list[str]:
    records = [r for r in run_pcap(BTEST / "Traces" / "dnp3" / f"{test}.pcap") if isinstance(r, Dnp3Transaction)]
    events = sorted((e for r in records for e in r.zeek_events()), key=lambda e: e.ts)
    # Zeek's originator is the master here (it flips a UDP flow whose first packet came from port 20000)
    master = next(e.direction for e in events if not e.data.is_response)
    out = []
    for event in events:
        frag, orig = event.data, event.direction == master
        flag = "T" if orig else "F"
        if orig:
            out.append(f"dnp3_application_request_header, T, {frag.control}, {frag.function}")
        else:
            out.append(f"dnp3_application_response_header, F, {frag.control}, {frag.function}, {frag.iin}")
        if frag.function not in (REQUEST_OBJECT_FUNCTIONS if orig else RESPONSE_OBJECT_FUNCTIONS):
            continue
        for hdr in frag.headers:
            number, low, high = object_header_args(hdr)
            out.append(f"dnp3_object_header, {flag}, {hdr.group << 8 | hdr.variation}, {hdr.qualifier}, {number}, "
                       f"{low}, {high}")
            kind = {(12, 1): "dnp3_crob", (12, 2): "dnp3_pcb"}.get((hdr.group, hdr.variation))
            out += [f"{kind}, {flag}, {p.control_code}, {p.execute_count}, {p.on_time}, {p.off_time}, {p.status}"
                    for p in hdr.points if kind and isinstance(p, Crob)]
    return out


@pytest.mark.parametrize("test", TESTS)
def test_events_match_zeeks(test):
    if not (BTEST / "Traces" / "dnp3" / f"{test}.pcap").exists():
        pytest.skip(f"Zeek's DNP3 traces not in the corpus at {corpus_dir()}")
    assert our_events(test) == zeek_events(test)


def _script_rows(*messages: tuple[Direction, str]) -> list:
    """Rows the DNP3 script writes for fragments (hex) sent on one connection, then for its removal."""
    script, conn = Dnp3Script(), ZeekConn("C1", "tcp")
    rows = []
    for i, (direction, data) in enumerate(messages):
        frag = parse_fragment(bytes.fromhex(data))
        rows += script.event(conn, fragment_event(float(i), direction, frag))
    return rows + script.removed(conn, 99.0)


def test_unanswered_request_is_logged_when_the_connection_goes():
    rows = _script_rows((Direction.ORIG, "c1 01 3c 02 06"), (Direction.ORIG, "c2 0d"))   # READ, then COLD_RESTART
    assert [(r.log.path, r.ts, r.values) for r in rows] == [
        ("dnp3_objects", 0.0, {"function_code": "READ", "object_type": "Class 1 Data"}),
        ("dnp3", 1.0, {"fc_request": "COLD_RESTART"})]


def test_control_rows_follow_icsnpp():
    # DIRECT_OPERATE of one CROB at index 7 (prefix 0x17), latch on, then its echo with status 4 (Not Supported)
    crob = "0c 01 17 01 07 03 01 64 00 00 00 64 00 00 00"
    rows = _script_rows((Direction.ORIG, f"c3 05 {crob} 00"), (Direction.RESP, f"c3 81 00 00 {crob} 04"))
    control = [r.values for r in rows if r.log.path == "dnp3_control"]
    assert [(v["function_code"], v["index_number"], v["operation_type"], v["status_code"]) for v in control] == [
        ("DIRECT_OPERATE", 7, "Latch On", None), ("RESPONSE", 7, "Latch On", "Not Supported")]
    assert [r.values for r in rows if r.log.path == "dnp3"] == [
        {"fc_request": "DIRECT_OPERATE", "fc_reply": "RESPONSE", "iin": 0}]


def test_object_rows_keep_zeeks_range_quirks():
    # a RESPONSE: one binary input by 16-bit count and index (0x28, whose rf_low Zeek reads byte-swapped), and
    # class 0 ("all objects", 0xffff); then an unsolicited response, which ICSNPP does not log
    response = "c4 81 00 00 01 02 28 01 00 07 00 81 3c 01 06"
    rows = _script_rows((Direction.RESP, response), (Direction.RESP, "f5 82 00 00 01 02 28 01 00 07 00 01"))
    assert [r.values for r in rows if r.log.path == "dnp3_objects"] == [
        {"function_code": "RESPONSE", "object_type": "Binary Input With Status", "object_count": 1,
         "range_low": 256, "range_high": 0},
        {"function_code": "RESPONSE", "object_type": "Class 0 Data", "object_count": 0, "range_low": 65535,
         "range_high": 65535}]
