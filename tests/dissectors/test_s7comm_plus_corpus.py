"""S7comm-plus on the corpus S7-1200 captures (tshark 4.0 has no S7comm-plus dissector).

The expectations below were read by hand from the frames' hex (tshark -x), not
from our output: e.g. paket_stop.pcapng frame 127 is
``72 03 0056 20 <32-byte digest> 31 0000 04f2 0000 0009 0000038c 34 00000034 01 9077 00 08 01 ...``
= V3 with integrity part, Request, SetVariable, sequence 9, session 0x38c, object 52
(CPU exec unit), attribute 2167 (operatingStateREQ), value 1 (STOP); frame 128 is its
Response (opcode 0x32, same function and sequence).  Frame 94 is the V1 CreateObject
(sequence 1, session 0x120) that opens the ServerSession.
"""
from __future__ import annotations

import json
import socket

import pytest

from otsensor.dissectors.base import DissectorFault
from otsensor.dissectors.s7comm.plus_record import S7PlusRecord
from tests.dissectors.s7comm_support import corpus_dir, manifest_files, run_capture

S7PLUS_DIR = corpus_dir() / "agentcarter-s7plus" / "Wireshark Paketler"

# file -> expected (client ip, version, function, sequence, session id, integrity, operation, state)
HAND_CHECKED = {
    "paket_stop.pcapng": [
        ("192.168.55.5", 1, "CreateObject", 1, 0x120, False, "session_setup", None),   # frames 94/95
        ("192.168.55.5", 3, "SetVariable", 9, 0x38C, True, "cpu_stop", "STOP"),      # frames 127/128
    ],
    "s71200_OnlineStopStart.pcapng": [
        ("192.168.55.5", 3, "SetVariable", 0x3A, 0x394, True, "cpu_stop", "STOP"),   # frames 71/77
        ("192.168.55.5", 3, "SetVariable", 0x46, 0x394, True, "cpu_start", "RUN"),   # frames 277/279
    ],
    "yeni/online_stop_yeni_yeni.pcapng": [
        ("192.168.55.5", 3, "SetVariable", 0x59, 0x392, True, "cpu_stop", "STOP"),   # frames 12/16
    ],
}
CONTROL = ("session_setup", "cpu_stop", "cpu_start")


@pytest.mark.parametrize("name", sorted(HAND_CHECKED))
def test_hand_checked_s7comm_plus_operations(name: str) -> None:
    path = S7PLUS_DIR / name
    if not path.exists():
        pytest.skip(f"corpus file {name} not present")
    seen = []
    for (ip, _port), rec in run_capture(path):
        if isinstance(rec, S7PlusRecord) and rec.operation_name in CONTROL:
            assert rec.matched and rec.response_opcode == "0x32" and rec.opcode == "0x31" and rec.is_orig
            seen.append((socket.inet_ntoa(ip), rec.version, rec.function_name, rec.sequence_number,
                         rec.session_id, rec.integrity_part, rec.operation_name, rec.requested_state))
    assert seen == HAND_CHECKED[name]


def test_session_setup_reports_the_assigned_session_id() -> None:
    """paket_stop.pcapng frame 95 (CreateObject response) returns object ids 0x38c, 0x38d; the client's
    later requests on that connection carry session id 0x38c (frames 97, 104, 127)."""
    path = S7PLUS_DIR / "paket_stop.pcapng"
    if not path.exists():
        pytest.skip("corpus not present")
    records = [(client, r) for client, r in run_capture(path) if isinstance(r, S7PlusRecord)]
    (setup_client, setup), = [(c, r) for c, r in records if r.operation_name == "session_setup"]
    assert setup.assigned_session_id == 0x38C
    later = {r.session_id for c, r in records if c == setup_client and r.session_id and r.version != 1}
    assert later == {0x38C}


def test_stop_and_start_carry_control_tags() -> None:
    path = S7PLUS_DIR / "s71200_OnlineStopStart.pcapng"
    if not path.exists():
        pytest.skip("corpus not present")
    tags = [sorted(r.op().tags) for _, r in run_capture(path) if isinstance(r, S7PlusRecord) and r.op().tags]
    assert tags == [["plc_stop"], ["plc_start"]]


S7_FILES = manifest_files("s7comm")   # matches both s7comm= and s7comm-plus(...)= counts


@pytest.mark.parametrize("path", S7_FILES, ids=[str(p.relative_to(corpus_dir())) for p in S7_FILES])
def test_every_s7_corpus_file_runs_clean(path) -> None:
    records = [rec for _, rec in run_capture(path)]
    bugs = [r.to_dict() for r in records if isinstance(r, DissectorFault)]
    assert not bugs, bugs[:5]
    assert records, "no S7 records at all"
    for rec in records:           # every record must serialise to JSON
        json.dumps(rec.to_dict())
