"""ICSNPP-s7comm's rows for hand-built S7 chunks (dissectors/s7comm/zeek.py), quirks included.

The btests (tests/sensor/test_zeek_icsnpp.py) compare whole captures with
ICSNPP's baselines; these pin the cases those captures do not hold: an error
class of its own, a PI service, a fragmented SZL answer, an S7comm-plus V1
PDU, a PDU split over chunks, a gap, a download's file name, and chunks of
random bytes.  Expected values follow ICSNPP's analyzer and main.zeek.
"""
from __future__ import annotations

import random
import struct

from otsensor.dissectors.base import Direction
from otsensor.dissectors.s7comm.zeek import S7commScript
from otsensor.dissectors.s7comm.zeek_parse import atoi, parse_chunk
from otsensor.dissectors.zeek import STREAM_DATA, STREAM_GAP, ZeekConn, ZeekEvent

from tests.dissectors.s7comm_frames import O, R, cr, dt, plus, plus_request, s7, ud_data, ud_param

READ_VAR = bytes([0x04, 0x01]) + bytes([0x12, 0x0A, 0x10, 0x02, 0, 1, 0, 1, 0x84, 0, 0, 0])


def rows(chunks: list[tuple[Direction, bytes | int]], script: S7commScript | None = None) -> list[tuple[str, dict]]:
    """(log path, values) of the rows ICSNPP writes for the chunks, in order (an int is a gap of that size)."""
    script = script or S7commScript()
    conn = ZeekConn("CTest", "tcp")
    out = []
    for i, (direction, item) in enumerate(chunks):
        kind = STREAM_GAP if isinstance(item, int) else STREAM_DATA
        out += [(row.log.path, row.values) for row in script.event(conn, ZeekEvent(float(i), direction, kind, item))]
    return out


def of(found: list[tuple[str, dict]], path: str) -> list[dict]:
    return [values for log, values in found if log == path]


def test_pdu_reference_is_byte_swapped_and_a_job_logs_no_error():
    found = of(rows([(O, dt(s7(1, 0x0001, READ_VAR))), (R, dt(s7(3, 0x0001, b"\x04\x01", b"\xff\x04\x00\x08\x2a",
                                                                  err=(0x81, 0x04))))]), "s7comm")
    assert found == [
        {"rosctr_code": 1, "rosctr_name": "Job-Request", "pdu_reference": 0x0100, "function_code": "0x04",
         "function_name": "Read Variable"},
        {"rosctr_code": 3, "rosctr_name": "ACK-Data", "pdu_reference": 0x0100, "function_code": "0x04",
         "function_name": "Read Variable", "error_class": "Application relationship error", "error_code": "0x04"}]


def test_plc_control_logs_its_service_as_the_subfunction():
    service = b"_MODU"
    param = b"\x28" + bytes(7) + struct.pack(">H", 0) + bytes([len(service)]) + service
    found = rows([(O, dt(s7(1, 0x0200, param)))])
    assert of(found, "s7comm") == [{"rosctr_code": 1, "rosctr_name": "Job-Request", "pdu_reference": 2,
                                     "function_code": "0x28", "function_name": "PLC Control",
                                     "subfunction_code": "_MODU", "subfunction_name": "PLC Copy Ram to Rom"}]


def test_user_data_errors_as_icsnpp_logs_them():
    request = dt(s7(7, 0x0300, ud_param(0x43, 0x03), ud_data(b"\x30\x41")))
    failed = dt(s7(7, 0x0300, ud_param(0x83, 0x03, long=True, error=0xD209), ud_data(b"", ret=0x0A, tsize=0)))
    fine = dt(s7(7, 0x0300, ud_param(0x83, 0x03, long=True), ud_data(b"\x00")))
    found = of(rows([(O, request), (R, failed), (R, fine)]), "s7comm")
    assert [(v["function_name"], v["subfunction_name"]) for v in found] == [
        ("Request: Block Functions", "Get Block Info"), ("Response: Block Functions", "Get Block Info"),
        ("Response: Block Functions", "Get Block Info")]
    assert [(v.get("error_class"), v.get("error_code")) for v in found] == [
        (None, None), ("Parameter Error", "0xd209"), ("No error", "0x00")]


def _szl_answer(szl_id: int, records: bytes, count: int, seq: int = 0, last: bool = True) -> bytes:
    payload = struct.pack(">HHHH", szl_id, 0, 34, count) + records
    return dt(s7(7, 0x0400, ud_param(0x84, 0x01, seq=seq, last=last, long=True), ud_data(payload)))


def test_szl_parts_logged_as_icsnpp_filters_them():
    request = dt(s7(7, 0x0400, ud_param(0x44, 0x01), ud_data(struct.pack(">HH", 0x0424, 0))))
    found = of(rows([(O, request), (R, _szl_answer(0x0424, b"", 0)),           # whole answer: logged
                     (R, _szl_answer(0x0424, b"", 0, seq=3, last=False)),     # first of several: logged (sic)
                     (R, _szl_answer(0x0424, b"", 0, seq=3, last=True))]),    # the last part: skipped
               "s7comm_read_szl")
    assert [(v["method"], v["szl_id"], v["szl_id_name"], v["return_code_name"]) for v in found] == [
        ("Request", "0x0424", "Modes", "Success"), ("Response", "0x0424", "Modes", "Success"),
        ("Response", "0x0424", "Modes", "Success")]


def test_known_device_written_when_the_connection_goes():
    records = (struct.pack(">H", 1) + b"SNAP7-SERVER".ljust(24, b"\0") + bytes(8)
               + struct.pack(">H", 3) + bytes(32)
               + struct.pack(">H", 5) + b"S C-C2UR28922012".ljust(24, b"\0") + bytes(8)
               + struct.pack(">H", 4) + b"Original Siemens".ljust(32, b"\0"))   # not a name ICSNPP keeps
    script = S7commScript()
    rows([(O, dt(s7(7, 0x0500, ud_param(0x44, 0x01), ud_data(struct.pack(">HH", 0x001C, 0))))),
          (R, _szl_answer(0x001C, records, 4))], script)
    [row] = script.removed(ZeekConn("CTest", "tcp"), 42.0)
    assert (row.log.path, row.ts, row.direction) == ("s7comm_known_devices", 42.0, None)
    assert row.values == {"automation_system_name": b"SNAP7-SERVER", "plant_name": b"",
                          "module_serial": b"S C-C2UR28922012"}
    assert script.removed(ZeekConn("CTest", "tcp"), 43.0) == []


def test_upload_download_file_names_and_lengths():
    name = b"_0A00001P"
    job = b"\x1d\x00\x00\x00" + struct.pack(">I", 0) + bytes([len(name)]) + name
    ack = b"\x1d\x00\x01\x00" + struct.pack(">I", 7) + b"\x07" + b"0000216"
    found = of(rows([(O, dt(s7(1, 0x0600, job))), (R, dt(s7(3, 0x0600, ack)))]), "s7comm_upload_download")
    assert found == [
        {"rosctr": "Job-Request", "pdu_reference": 6, "function_name": "Start Upload", "function_status": "0x00",
         "session_id": 0, "filename": name, "block_type": "Data Block", "block_number": b"00001",
         "destination_filesystem": "Passive"},
        {"rosctr": "ACK-Data", "pdu_reference": 6, "function_name": "Start Upload", "function_status": "0x00",
         "session_id": 7, "blocklength": 216}]


def test_s7comm_plus_v1_is_read_as_if_it_had_a_digest():
    v3 = plus(3, b"\x20" + bytes(32) + plus_request(0x054C, 1))
    v1 = plus(1, plus_request(0x04BB, 2))
    found = rows([(O, dt(v3)), (O, dt(v1))])
    assert of(found, "s7comm_plus") == [{"version": 3, "opcode": "0x31", "opcode_name": "Request",
                                          "function_code": "0x054c", "function_name": "Get Multi Variables"}]
    assert len(of(found, "cotp")) == 2


def test_a_split_pdu_gives_what_its_first_chunk_holds():
    frame = dt(s7(1, 0x0700, READ_VAR))
    events, violation = parse_chunk(frame[:12], True)
    assert (events, violation) == ([("cotp", 0xF)], True)
    assert parse_chunk(frame, True)[1] is False


def test_nothing_is_read_after_a_gap():
    found = rows([(O, cr()), (R, 100), (O, dt(s7(1, 0x0800, READ_VAR)))])
    assert found == [("cotp", {"pdu_code": "0x0e", "pdu_name": "CR Connection Request"})]


def test_atoi_reads_leading_digits():
    assert [atoi(b"0000216"), atoi(b" 12ab"), atoi(b"-3"), atoi(b"x1"), atoi(b"")] == [216, 12, -3, 0, 0]


def test_random_chunks_never_raise():
    rng = random.Random(14)
    frame = dt(s7(7, 0x0900, ud_param(0x84, 0x01, long=True), ud_data(struct.pack(">HHHH", 0x001C, 0, 34, 9))))
    script = S7commScript()
    for _ in range(3000):
        data = bytearray(frame if rng.random() < 0.5 else rng.randbytes(rng.randrange(0, 80)))
        for _ in range(rng.randrange(0, 4)):
            if data:
                data[rng.randrange(len(data))] = rng.randrange(256)
        rows([(rng.choice((O, R)), bytes(data))], script)
