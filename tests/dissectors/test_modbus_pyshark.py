"""The same Modbus capture read through pyshark (tshark's decoder driven from Python) and through otsensor.

The bulk differential tests call tshark's JSON output directly (faster on the corpus); this one keeps
the pyshark route honest on the committed captures: every ADU pyshark shows is in the sensor's records.
"""
from __future__ import annotations

import shutil
from collections import Counter

import pytest

from tests.dissectors.modbus_support import PCAPS, read_jsonl, run_sensor

pyshark = pytest.importorskip("pyshark")
CAPTURES = sorted(PCAPS.glob("modbus_*.pcap"))


def pyshark_adus(path) -> Counter:
    """(client port, direction, transaction id, unit, function code) of every Modbus/TCP ADU."""
    seen: Counter = Counter()
    capture = pyshark.FileCapture(str(path), display_filter="mbtcp", keep_packets=False)
    try:
        for packet in capture:
            for mbtcp, modbus in zip(packet.get_multiple_layers("mbtcp"), packet.get_multiple_layers("modbus")):
                to_server = int(packet.tcp.dstport) == 502
                client_port = int(packet.tcp.srcport if to_server else packet.tcp.dstport)
                fc = int(modbus.func_code) & 0x7F
                seen[(client_port, "request" if to_server else "response", int(mbtcp.trans_id),
                      int(mbtcp.unit_id), fc)] += 1
    finally:
        capture.close()
    return seen


def sensor_adus(records: list[dict]) -> Counter:
    seen: Counter = Counter()
    for rec in records:
        fc = rec.get("response_func_code", rec["func_code"])
        if rec["pdu_type"] in ("REQ", "REQ+RESP"):
            seen[(rec["id.orig_p"], "request", rec["tid"], rec["unit"], rec["func_code"])] += 1
        if rec["pdu_type"] in ("RESP", "REQ+RESP"):
            seen[(rec["id.orig_p"], "response", rec["tid"], rec["unit"], fc)] += 1
    return seen


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_every_adu_pyshark_shows_is_in_the_records(path, tmp_path):
    theirs = pyshark_adus(path)
    run_sensor([path], tmp_path)
    ours = sensor_adus(read_jsonl(tmp_path / "modbus.jsonl"))
    assert sum(theirs.values()) > 0
    missing = theirs - ours
    extra = ours - theirs
    assert not missing and not extra, f"pyshark only: {sorted(missing)[:20]}\notsensor only: {sorted(extra)[:20]}"
