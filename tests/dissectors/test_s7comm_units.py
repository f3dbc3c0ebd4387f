"""Unit tests of the S7 dissector on hand-built frames: tables of good PDUs, bad frames, S7comm-plus opcodes."""
from __future__ import annotations

import struct

import pytest

from otsensor.dissectors.base import Category, Direction, DissectorFault, Tag
from otsensor.dissectors.s7comm import REGISTRATIONS, S7Dissector, probe
from otsensor.dissectors.s7comm.anomalies import ANOMALIES
from otsensor.dissectors.s7comm.framing import Framer
from tests.dissectors.s7comm_frames import (
    O,
    R,
    any_item,
    cr,
    data_item,
    dt,
    of,
    plus,
    plus_request,
    plus_response,
    run,
    s7,
    ud_data,
    ud_param,
)

SETUP_JOB = dt(bytes.fromhex(
    "32 01 0000 0001 0008 0000"      # Job, PDU ref 1, param 8, data 0
    "f0 00 0001 0001 01e0"))          # Setup communication: AmQ 1/1, PDU length 480
SETUP_ACK = dt(bytes.fromhex(
    "32 03 0000 0001 0008 0000 0000"  # Ack_Data, PDU ref 1, no error
    "f0 00 0001 0001 00f0"))          # negotiated PDU length 240


def test_cotp_connect_request_gives_tsaps_rack_slot_and_identity() -> None:
    records = run([(O, cr(calling=0x0100, called=0x0102)), (R, cr(called=0x0102, code=0xD0))])
    req, conf = of(records, "cotp")
    d = req.to_dict()
    assert (d["pdu_name"], d["calling_tsap"], d["called_tsap"], d["rack"], d["slot"]) == (
        "CR Connect Request", "0x0100", "0x0102", 0, 2)
    assert d["connection_type"] == "PG" and d["tpdu_size"] == 1024
    assert req.identity() == (Direction.RESP, {"rack": 0, "slot": 2})
    assert conf.to_dict()["pdu_code"] == "0xd0" and conf.identity() is None
    assert req.op().category == Category.SESSION


def test_setup_communication_pairs_and_reports_parameters() -> None:
    (rec,) = of(run([(O, SETUP_JOB), (R, SETUP_ACK)]), "s7comm")
    d = rec.to_dict()
    assert (d["rosctr_name"], d["pdu_reference"], d["function_code"], d["function_name"]) == (
        "Job", 1, "0xf0", "Setup communication")
    assert d["matched"] and d["response_rosctr_code"] == 3 and d["pdu_length"] == 240
    assert d["max_amq_calling"] == 1 and d["error_class"] == "No error"
    assert rec.op().category == Category.SESSION and rec.op().ok is True


def test_read_var_two_items_with_values_and_return_codes() -> None:
    job = dt(s7(1, 7, b"\x04\x02" + any_item(0x84, 1, 10, 4) + any_item(0x83, 0, 2, 1, tsize=0x04)))
    ack = dt(s7(3, 7, b"\x04\x02", data_item(b"\x01\x02\x03\x04") + data_item(b"", ret=0x05, tsize=0)))
    (rec,) = of(run([(O, job), (R, ack)]), "s7comm")
    first, second = rec.to_dict()["items"]
    assert (first["area"], first["db"], first["byte_address"], first["count"], first["transport_size"]) == (
        "DB", 1, 10, 4, "BYTE")
    assert first["return_name"] == "Success" and first["values"] == [1, 2, 3, 4]
    assert (second["area"], second["db"], second["byte_address"], second["return_code"]) == ("M", None, 2, 5)
    op = rec.op()
    assert (op.category, op.space, op.start, op.count, op.ok) == (Category.READ, "DB1", 10, 4, False)


def test_write_var_values_go_into_op() -> None:
    job = dt(s7(1, 8, b"\x05\x01" + any_item(0x82, 0, 3, 1, tsize=0x04), data_item(b"\x12\x34", ret=0x00)))
    ack = dt(s7(3, 8, b"\x05\x01", b"\xff"))
    (rec,) = of(run([(O, job), (R, ack)]), "s7comm")
    op = rec.op()
    assert (op.category, op.space, op.start, op.values, op.ok) == (Category.WRITE, "Q", 3, (0x1234,), True)


def test_timer_items_are_addressed_by_number() -> None:
    job = dt(s7(1, 9, b"\x04\x01" + bytes.fromhex("120a101d0001 0000 1d 000005")))   # T5, TIMER
    ack = dt(s7(3, 9, b"\x04\x01", data_item(b"\x00\x10", tsize=0x09, in_bits=False)))
    (rec,) = of(run([(O, job), (R, ack)]), "s7comm")
    item = rec.to_dict()["items"][0]
    assert (item["area"], item["byte_address"], item["transport_size"]) == ("T", 5, "TIMER")
    assert rec.op().space == "T" and rec.op().start == 5


CONTROL_JOBS = [
    # (label, parameter, expected pi_service, category, tag, extra field check)
    ("plc stop", bytes.fromhex("29 0000000000 09") + b"P_PROGRAM", "P_PROGRAM", Category.CONTROL, Tag.PLC_STOP, {}),
    ("hot start", bytes.fromhex("28 000000000000fd 0000 09") + b"P_PROGRAM", "P_PROGRAM", Category.CONTROL,
     Tag.PLC_START, {"start_type": "hot"}),
    ("cold start", bytes.fromhex("28 000000000000fd 0002") + b"C " + b"\x09P_PROGRAM", "P_PROGRAM",
     Category.CONTROL, Tag.PLC_START, {"start_type": "cold"}),
    ("delete", bytes.fromhex("28 000000000000fd 000a 0100") + b"0A00003P" + b"\x05_DELE", "_DELE",
     Category.PROGRAM, Tag.PROGRAM_DELETE, {}),
    ("insert", bytes.fromhex("28 000000000000fd 000a 0100") + b"0800001P" + b"\x05_INSE", "_INSE",
     Category.PROGRAM, Tag.PROGRAM_DOWNLOAD, {}),
]


@pytest.mark.parametrize("label,param,service,category,tag,extra", CONTROL_JOBS, ids=[c[0] for c in CONTROL_JOBS])
def test_control_jobs(label, param, service, category, tag, extra) -> None:
    ack = dt(s7(3, 3, param[:1]))
    (rec,) = of(run([(O, dt(s7(1, 3, param))), (R, ack)]), "s7comm")
    d = rec.to_dict()
    assert d["pi_service"] == service
    assert rec.op().category == category and tag in rec.op().tags
    for key, value in extra.items():
        assert d[key] == value
    if label in ("delete", "insert"):
        assert d["pi_blocks"][0]["block_type"] == ("DB" if label == "delete" else "OB")


def test_request_download_gives_upload_download_record() -> None:
    param = bytes.fromhex("1a 00 0001 00000000 09") + b"_0A00002P" + b"\x0d1000032000020"
    records = run([(O, dt(s7(1, 16, param))), (R, dt(s7(3, 16, b"\x1a")))])
    (rec,) = of(records, "s7comm")
    (ud,) = of(records, "s7comm_upload_download")
    assert (ud.block_type, ud.block_number, ud.destination_filesystem, ud.blocklength) == ("DB", "00002", "P", 32)
    assert ud.function_name == "Request download" and ud.matched
    assert Tag.PROGRAM_DOWNLOAD in rec.op().tags and rec.op().space == "DB" and rec.op().start == 2


def test_request_download_length_counts_ascii_digits_only() -> None:
    # a Latin-1 superscript three in the load memory length is not a digit of it
    param = bytes.fromhex("1a 00 0001 00000000 09") + b"_0A00002P" + b"\x0d1" + "00\xb3032".encode("latin-1") + b"000020"
    records = run([(O, dt(s7(1, 16, param))), (R, dt(s7(3, 16, b"\x1a")))])
    (ud,) = of(records, "s7comm_upload_download")
    assert ud.blocklength == 32 and of(records, "s7comm")[0].to_dict()["mc7_length"] == 20
    assert not of(records, "anomalies")


def test_start_upload_tags_upload() -> None:
    param = bytes.fromhex("1d 00 0000 00000000 09") + b"_0800001A"
    ack = bytes.fromhex("1d 00 0100 00000007 07") + b"0000264"
    records = run([(O, dt(s7(1, 4, param))), (R, dt(s7(3, 4, ack)))])
    (ud,) = of(records, "s7comm_upload_download")
    assert (ud.block_type, ud.session_id, ud.blocklength) == ("OB", 7, 264)
    assert Tag.PROGRAM_UPLOAD in of(records, "s7comm")[0].op().tags


def _szl_0011() -> bytes:
    recs = [
        struct.pack(">H", 1) + b"6ES7 315-2EH14-0AB0 " + bytes.fromhex("00c0 0003 0000"),
        struct.pack(">H", 6) + b"6ES7 315-2EH14-0AB0 " + bytes.fromhex("00c0 5603 0000"),
        struct.pack(">H", 7) + b" " * 20 + bytes.fromhex("00c0 5603 0201"),
    ]
    return struct.pack(">HHHH", 0x0011, 0, 28, 3) + b"".join(recs)


def _szl_001c() -> bytes:
    texts = {1: b"STATION-7", 2: b"CPU 315-2 PN/DP", 3: b"PLANT-A", 5: b"S C-X4U421302009"}
    recs = [struct.pack(">H", i) + t.ljust(32, b"\x00") for i, t in texts.items()]
    return struct.pack(">HHHH", 0x001C, 0, 34, len(recs)) + b"".join(recs)


def _szl_exchange(szl_id: int, answer: bytes, ref: int = 5) -> list:
    req = dt(s7(7, ref, ud_param(0x44, 0x01, 0), ud_data(struct.pack(">HH", szl_id, 0), ret=0xFF)))
    resp = dt(s7(7, ref, ud_param(0x84, 0x01, 0, long=True), ud_data(answer)))
    return [(O, req), (R, resp)]


def test_szl_0011_identity() -> None:
    records = run(_szl_exchange(0x0011, _szl_0011()))
    (szl,) = of(records, "s7comm_read_szl")
    d = szl.to_dict()
    assert (d["szl_id"], d["szl_id_name"], d["return_code_name"]) == ("0x0011", "Module identification", "Success")
    side, facts = szl.identity()
    assert side == Direction.RESP
    assert facts["order_number"] == "6ES7 315-2EH14-0AB0" and facts["revision"] == "V3.2.1"
    assert facts["hardware_revision"] == "V3.0.0" and facts["vendor"] == "Siemens"
    (rec,) = of(records, "s7comm")
    assert rec.op().category == Category.RECON and Tag.IDENTITY_READ in rec.op().tags


def test_szl_001c_identity() -> None:
    (szl,) = of(run(_szl_exchange(0x001C, _szl_001c())), "s7comm_read_szl")
    _side, facts = szl.identity()
    assert facts == {"station_name": "STATION-7", "module_name": "CPU 315-2 PN/DP", "plant_id": "PLANT-A",
                     "serial_number": "S C-X4U421302009", "vendor": "Siemens"}


def test_userdata_error_is_one_16_bit_code() -> None:
    """Issue 14: 0xd209 is a user-data error code of its own, not class 0xd2 and code 0x09."""
    req = dt(s7(7, 9, ud_param(0x43, 0x03), ud_data(b"0A00001P", ret=0xFF)))        # block info of OB 1
    resp = dt(s7(7, 9, ud_param(0x83, 0x03, long=True, error=0xD209), ud_data(b"", ret=0x0A, tsize=0)))
    (rec,) = of(run([(O, req), (R, resp)]), "s7comm")
    assert (rec.error_class, rec.error_code, rec.error_name) == (
        "Parameter Error", "0xd209", "(At least) one of the given blocks not found on the module")
    assert rec.ok() is False


def test_successful_userdata_reply_says_no_error() -> None:
    """Issue 14: a user-data reply with error code 0 reports it, as a header's error does."""
    (rec,) = of(run(_szl_exchange(0x0011, _szl_0011())), "s7comm")
    assert (rec.error_class, rec.error_code, rec.error_name) == ("No error", "0x0000", "No error")
    assert rec.ok() is True


def test_fragmented_szl_answer_is_reassembled() -> None:
    answer = _szl_001c()
    part1, part2 = answer[:60], answer[60:]
    req = dt(s7(7, 1, ud_param(0x44, 0x01, 0), ud_data(struct.pack(">HH", 0x001C, 0))))
    resp1 = dt(s7(7, 1, ud_param(0x84, 0x01, 3, last=False, long=True), ud_data(part1)))
    follow = dt(s7(7, 2, ud_param(0x44, 0x01, 3, long=True), ud_data(b"", ret=0x0A, tsize=0)))
    resp2 = dt(s7(7, 2, ud_param(0x84, 0x01, 3, last=True, long=True), ud_data(part2)))
    records = run([(O, req), (R, resp1), (O, follow), (R, resp2)])
    (szl,) = of(records, "s7comm_read_szl")
    assert szl.identity()[1]["serial_number"] == "S C-X4U421302009"
    assert len(of(records, "s7comm")) == 2 and not of(records, "anomalies")


USERDATA_OPS = [
    # (type<<4|group, sub-function, payload, category, tag, subfunction name)
    (0x47, 0x02, bytes.fromhex("00 19 26 11 26 09 30 15 00 04"), Category.WRITE, Tag.CLOCK_SET, "Set clock"),
    (0x47, 0x01, b"", Category.READ, None, "Read clock"),
    (0x41, 0x09, b"\x00\x01", Category.WRITE, Tag.FORCE, "Force"),
    (0x41, 0x08, b"\x00\x01", Category.WRITE, Tag.FORCE, "Modify variable"),
    (0x41, 0x0C, b"", Category.CONTROL, Tag.PROGRAM_DELETE, "Memory reset"),
    (0x43, 0x01, b"", Category.RECON, None, "List blocks"),
    (0x45, 0x01, b"", Category.SESSION, None, "PLC password"),
    (0x41, 0x16, b"", Category.DIAGNOSTIC, None, "Flash LED"),
    (0x4A, 0x01, b"", Category.OTHER, None, "unknown-0x01"),
]


@pytest.mark.parametrize("tg,sub,payload,category,tag,name", USERDATA_OPS, ids=[u[5] for u in USERDATA_OPS])
def test_userdata_operations(tg, sub, payload, category, tag, name) -> None:
    req = dt(s7(7, 9, ud_param(tg, sub), ud_data(payload)))
    resp = dt(s7(7, 9, ud_param(0x80 | (tg & 0x0F), sub, long=True), ud_data(b"")))
    (rec,) = of(run([(O, req), (R, resp)]), "s7comm")
    assert rec.subfunction_name == name and rec.op().category == category
    assert tag is None or tag in rec.op().tags
    if name == "Set clock":
        assert rec.to_dict()["clock"] == "2026-11-26T09:30:15.000"


def test_ack_with_error_class_is_not_ok() -> None:
    job = dt(s7(1, 2, bytes.fromhex("1a 00 0001 00000000 09") + b"_0A00003P"))
    ack = dt(s7(2, 2, b"", err=(0x81, 0x04)))
    (rec,) = of(run([(O, job), (R, ack)]), "s7comm")
    assert rec.error_class == "Application relationship" and rec.error_code == "0x04"
    assert rec.error_name.startswith("This service is not implemented") and rec.op().ok is False


def test_dt_reassembly_of_split_tsdu() -> None:
    pdu = s7(1, 1, bytes.fromhex("f0 00 0001 0001 01e0"))
    records = run([(O, dt(pdu[:7], eot=False) + dt(pdu[7:])), (R, SETUP_ACK)])
    assert of(records, "s7comm")[0].matched and not of(records, "anomalies")


def test_unanswered_requests_come_out_at_close_and_pending_is_capped() -> None:
    chunks = [(O, dt(s7(1, ref, b"\x04\x01" + any_item(0x83, 0, ref, 1)))) for ref in range(510)]
    records = run(chunks)
    reads = of(records, "s7comm")
    assert len(reads) == 510 and not any(r.matched for r in reads)
    names = [a.name for a in of(records, "anomalies")]
    assert names.count("s7comm.too_many_pending") == 10


BAD_FRAMES = [
    # (label, bytes after a valid setup exchange, expected anomaly)
    ("tpkt version", b"\x04\x00\x00\x0a" + b"\x00" * 6 + SETUP_JOB, "cotp.bad_tpkt_version"),
    ("tpkt length", b"\x03\x00\x00\x05\x00" + SETUP_JOB, "cotp.bad_tpkt_length"),
    ("cotp li", dt(b"")[:4] + b"\x09\xf0\x80", "cotp.bad_length_indicator"),
    ("cotp type", b"\x03\x00\x00\x07\x02\x30\x80", "cotp.unknown_pdu_type"),
    ("cotp parameter", b"\x03\x00\x00\x0c\x07\xe0\x00\x00\x00\x01\x00\xc1", "cotp.bad_parameter"),
    ("unknown payload", dt(b"\x99\x01\x02"), "cotp.unknown_payload"),
    ("s7 header", dt(b"\x32\x01\x00\x00"), "s7comm.truncated_pdu"),
    ("s7 lengths", dt(s7(1, 4, b"\x04\x01")[:-1]), "s7comm.truncated_pdu"),
    ("s7 trailing", dt(s7(1, 4, b"\x00") + b"\x00\x00"), "s7comm.bad_length"),
    ("rosctr", dt(s7(5, 4, b"\x04\x00")), "s7comm.unknown_rosctr"),
    ("function", dt(s7(1, 4, b"\x77")), "s7comm.unknown_function"),
    ("item overrun", dt(s7(1, 4, b"\x04\x01\x12\x0a\x10\x02\x00")), "s7comm.bad_item"),
    ("item count", dt(s7(1, 4, b"\x04\x02" + any_item(0x83, 0, 1, 1))), "s7comm.item_count_mismatch"),
    ("userdata head", dt(s7(7, 4, b"\x00\x02\x12\x04\x11\x44\x01\x00")), "s7comm.bad_userdata"),
    ("pi service", dt(s7(1, 4, b"\x28\x00\x00\x00\x00\x00\x00\xfd\x00\x30")), "s7comm.bad_pi_service"),
    ("block transfer", dt(s7(1, 4, b"\x1d\x00\x00")), "s7comm.bad_block_transfer"),
    ("setup short", dt(s7(1, 4, b"\xf0\x00\x00\x01")), "s7comm.truncated_pdu"),
    ("plc stop short", dt(s7(1, 4, b"\x29\x00\x00")), "s7comm.bad_pi_service"),
    ("pi block overrun", dt(s7(1, 4, bytes.fromhex("28 000000000000fd 0034 0100") + b"0A00003P")), "s7comm.bad_pi_service"),
    ("cyclic short", dt(s7(7, 4, ud_param(0x42, 0x01), ud_data(b"\x00\x01"))), "s7comm.bad_userdata"),
    ("szl records", _szl_exchange(0x0011, struct.pack(">HHHH", 0x11, 0, 28, 5) + b"\x00" * 30, 9)[1][1], "s7comm.bad_szl"),
    ("unmatched", dt(s7(3, 77, b"\x04\x00")), "s7comm.unmatched_response"),
    ("plus version", dt(plus(0x09, b"\x31")), "s7comm_plus.unknown_version"),
    ("plus opcode", dt(plus(0x01, b"\x55\x00\x00")), "s7comm_plus.unknown_opcode"),
    ("plus trailer", dt(plus(0x01, plus_request(0x04BB, 1))[:-1] + b"\x99"), "s7comm_plus.bad_trailer"),
    ("plus short", dt(plus(0x01, b"\x31\x00")), "s7comm_plus.truncated_pdu"),
    ("plus unmatched", dt(plus(0x01, plus_response(0x04BB, 42))), "s7comm_plus.unmatched_response"),
]


@pytest.mark.parametrize("label,frame,anomaly", BAD_FRAMES, ids=[b[0] for b in BAD_FRAMES])
def test_bad_frames_give_named_anomaly_and_stream_goes_on(label, frame, anomaly) -> None:
    direction = R if label in ("unmatched", "szl records", "plus unmatched") else O
    records = run([(O, SETUP_JOB), (R, SETUP_ACK), (direction, frame), (O, SETUP_JOB), (R, SETUP_ACK)])
    names = [a.name for a in of(records, "anomalies")]
    assert anomaly in names, names
    assert all(name in ANOMALIES for name in names)
    assert sum(1 for r in of(records, "s7comm") if r.matched and r.function_name == "Setup communication") == 2


def test_gap_drops_partial_frame_and_resynchronises() -> None:
    from otsensor.dissectors.s7comm import S7Dissector

    dis = S7Dissector({})
    out = dis.feed(SETUP_JOB[:9], O, 1.0)
    out += dis.gap(O, 100, 2.0)
    out += dis.feed(SETUP_JOB, O, 3.0) + dis.feed(SETUP_ACK, R, 4.0)
    assert [a.name for a in of(out, "anomalies")] == ["cotp.gap"]
    assert of(out, "s7comm")[0].matched


def test_non_s7_bytes_are_rejected_quietly() -> None:
    from otsensor.dissectors.s7comm import S7Dissector

    dis = S7Dissector({})
    out = dis.feed(b"GET / HTTP/1.1\r\n" * 300, O, 1.0)
    assert dis.rejected and not dis.confirmed and out == []


PROBES = [
    (SETUP_JOB, True), (cr(), True), (b"\x03\x00\x00\x16\x11\xe0", True), (b"\x03\x00\x00\x07\x02\xf0\x80", True),
    (b"\x03\x00\x00\x16\x11\x30", False), (b"\x04\x00\x00\x16\x11\xe0", False), (b"\x03\x00\x00\x03\x02\xf0", False),
    (b"GET / ", False), (b"\x03\x00", False), (b"", False),
]


@pytest.mark.parametrize("data,expected", PROBES)
def test_probe(data, expected) -> None:
    assert probe(data, Direction.ORIG) is expected


def test_registration() -> None:
    (reg,) = REGISTRATIONS
    assert reg.name == "s7comm" and reg.tcp_ports == frozenset({102})
    assert reg.factory({}).feed(SETUP_JOB, Direction.ORIG, 0.0) == []


# --- S7comm-plus, one crafted frame per opcode ---------------------------------------------
STOP_BODY = bytes.fromhex("00000034 01 9077 00 08 01")     # object 52, 1 item, attribute 2167, UDInt 1 (STOP)
START_BODY = bytes.fromhex("00000034 01 9077 00 08 03")    # ... value 3 (RUN)


def _plus_pair(version: int, req: bytes, resp: bytes, digest: bool = False) -> list:
    pre = b"\x20" + b"\xaa" * 32 if digest else b""
    return [(O, dt(plus(version, pre + req))), (R, dt(plus(version, pre + resp)))]


PLUS_CASES = [
    # (label, chunks, opcode name, function name, operation, category, tag, integrity)
    ("create object v1", _plus_pair(1, plus_request(0x04CA, 1), plus_response(0x04CA, 1)), "Request",
     "CreateObject", "session_setup", Category.SESSION, None, False),
    ("stop v3", _plus_pair(3, plus_request(0x04F2, 7, body=STOP_BODY), plus_response(0x04F2, 7), True), "Request",
     "SetVariable", "cpu_stop", Category.CONTROL, Tag.PLC_STOP, True),
    ("start v3", _plus_pair(3, plus_request(0x04F2, 8, body=START_BODY), plus_response(0x04F2, 8), True), "Request",
     "SetVariable", "cpu_start", Category.CONTROL, Tag.PLC_START, True),
    ("get multi v2", _plus_pair(2, plus_request(0x054C, 9), plus_response(0x054C, 9)), "Request",
     "GetMultiVariables", "read", Category.READ, None, None),
    ("explore v3", _plus_pair(3, plus_request(0x04BB, 10), plus_response(0x04BB, 10), True), "Request",
     "Explore", "unrecognised", Category.OTHER, None, True),
    ("notification", [(R, dt(plus(3, b"\x20" + b"\x00" * 32 + b"\x33\x70\x00\x0c\x9b")))], "Notification",
     None, "notification", Category.READ, None, True),
    ("keep alive", [(O, dt(plus(0xFE, b"\x00" * 12, trailer=False)))], None, None, "keep_alive", Category.SESSION,
     None, None),
]


@pytest.mark.parametrize("label,chunks,opname,fname,operation,category,tag,integrity", PLUS_CASES,
                         ids=[c[0] for c in PLUS_CASES])
def test_s7comm_plus_opcodes(label, chunks, opname, fname, operation, category, tag, integrity) -> None:
    records = run(chunks)
    (rec,) = of(records, "s7comm_plus")
    assert (rec.opcode_name, rec.function_name, rec.operation_name, rec.integrity_part) == (
        opname, fname, operation, integrity)
    assert rec.op().category == category and (tag is None or tag in rec.op().tags)
    assert rec.matched == (len(chunks) == 2)
    assert not of(records, "anomalies")


def test_s7comm_plus_fragmented_pdu_is_one_record() -> None:
    first = plus(1, plus_request(0x0542, 3, body=b"\x00" * 20), trailer=False)
    cont = plus(1, b"\x00" * 30)
    records = run([(O, dt(first)), (O, dt(cont)), (R, dt(plus(1, plus_response(0x0542, 3))))])
    (rec,) = of(records, "s7comm_plus")
    assert rec.function_name == "SetMultiVariables" and rec.matched and rec.operation_name == "write"


def test_multi_item_write_with_odd_length_padding() -> None:
    items = any_item(0x84, 3, 0, 1, tsize=0x02) + any_item(0x83, 0, 7, 2, tsize=0x02)
    data = data_item(b"\x2a", ret=0x00) + b"\x00" + data_item(b"\x01\x02", ret=0x00)   # pad after odd item
    job = dt(s7(1, 12, b"\x05\x02" + items, data))
    ack = dt(s7(3, 12, b"\x05\x02", b"\xff\x0a"))
    records = run([(O, job), (R, ack)])
    (rec,) = of(records, "s7comm")
    first, second = rec.to_dict()["items"]
    assert (first["db"], first["values"], first["return_code"]) == (3, [42], 0xFF)
    assert (second["area"], second["byte_address"], second["values"], second["return_name"]) == (
        "M", 7, [1, 2], "Object does not exist")
    assert rec.op().values == (42,) and rec.op().ok is False and not of(records, "anomalies")


def test_szl_0132_index4_protection_and_checksums() -> None:
    # answer of tia_s300_goOnline.pcapng frame 34; tshark decodes: key 1, param 0, real 1, bart_sch RUN_P (2),
    # ken_ver1_hw 0x00a4, ken_ver2_hw 0x1b93, ken_ver1_awp 0x1f4a, ken_ver2_awp 0x0144
    answer = bytes.fromhex("0132 0004 0028 0001"
                           "0004 0001 0000 0001 0002 0000 0000 5656 a400 931b 4a1f 4401"
                           "02000001000000000000000000000000")
    (szl,) = of(run(_szl_exchange(0x0132, answer)), "s7comm_read_szl")
    d = szl.to_dict()
    assert (d["protection_level"], d["mode_switch"], d["protection_level_key"]) == (1, "RUN_P", 1)
    assert d["program_checksum"] == "0x1f4a/0x0144" and d["hw_config_checksum"] == "0x00a4/0x1b93"
    assert szl.identity()[1]["program_checksum"] == "0x1f4a/0x0144"


def test_stream_picked_up_mid_connection_after_keepalive_byte() -> None:
    """A capture that starts mid-connection may first show a TCP keep-alive's garbage byte."""
    records = run([(O, b"\x00"), (O, SETUP_JOB), (R, b"\x00" + SETUP_ACK)])
    assert of(records, "s7comm")[0].matched and not of(records, "anomalies")


def test_s7comm_plus_session_setup_assigned_session_id() -> None:
    created = bytes.fromhex("00 02 870c 870d")      # return value 0, 2 object ids: VLQ 908, 909
    chunks = _plus_pair(1, plus_request(0x04CA, 1), plus_response(0x04CA, 1, body=created))
    (rec,) = of(run(chunks), "s7comm_plus")
    assert rec.operation_name == "session_setup" and rec.assigned_session_id == 908


def test_mode_transition_push_from_s7_300() -> None:
    # step7_s300_stop.pcapng frame 4: tshark shows Push -> Mode-transition -> current mode STOP (0)
    push = dt(bytes.fromhex("32 07 0000 0000 0008 0000" "010010 10 00 00 00 00"))
    records = run([(O, SETUP_JOB), (R, SETUP_ACK), (R, push)])
    rec = of(records, "s7comm")[-1]
    assert (rec.function_name, rec.subfunction_name, rec.is_orig) == ("Mode-transition", "STOP", False)
    assert Tag.MODE_CHANGE in rec.op().tags and not of(records, "anomalies")


def test_s7comm_plus_set_variable_target_and_unknown_state() -> None:
    odd_state = bytes.fromhex("00000034 01 9077 00 08 02")       # operatingStateREQ = 2: not STOP (1) / RUN (3)
    (rec,) = of(run(_plus_pair(3, plus_request(0x04F2, 5, body=odd_state), plus_response(0x04F2, 5), True)),
                "s7comm_plus")
    assert (rec.operation_name, rec.requested_state) == ("operating_state_request", "unknown-2")
    assert (rec.object_id, rec.attribute_id) == ("0x00000034", 2167)
    assert rec.op().space == "object 0x00000034" and Tag.MODE_CHANGE in rec.op().tags
    other = bytes.fromhex("0000038c 01 8243 00 02 05")           # paket_stop frame 104: object 0x38c, attr 323
    (rec,) = of(run(_plus_pair(3, plus_request(0x04F2, 6, body=other), plus_response(0x04F2, 6), True)),
                "s7comm_plus")
    assert (rec.operation_name, rec.object_id, rec.attribute_id) == ("write", "0x0000038c", 323)


class _BrokenOnReadVar(S7Dissector):
    """A decoder bug, injected: a Read Var job makes _s7 raise (tests subclass rather than patch)."""

    def _s7(self, tsdu, direction, ts, out) -> None:
        if tsdu[1] == 1 and tsdu[10:11] == b"\x04":
            raise KeyError("injected")
        super()._s7(tsdu, direction, ts, out)


def test_a_decoder_bug_is_a_dissector_fault_and_the_stream_goes_on() -> None:
    read = dt(s7(1, 2, b"\x04\x01" + any_item(0x83, 0, 0, 1)))
    dis = _BrokenOnReadVar({})
    out = dis.feed(read + SETUP_JOB, O, 1.0) + dis.feed(SETUP_ACK, R, 2.0)
    (fault,) = [r for r in out if isinstance(r, DissectorFault)]
    assert fault.name == "s7comm.dissector_error" and fault.name not in ANOMALIES
    assert fault.reason == "S7comm PDU: KeyError: 'injected'" and fault.direction == O
    (setup,) = of(out, "s7comm")              # the PDU after the broken one in the same segment
    assert setup.matched and setup.function_name == "Setup communication"


class _BrokenFramer(Framer):
    def push(self, data: bytes):
        if data.startswith(b"\x03\x00\x00\x1f"):       # the Read Var job's TPKT header
            raise IndexError("injected")
        return super().push(data)


class _BrokenFraming(S7Dissector):
    def __init__(self) -> None:
        super().__init__({})
        self.framers[O] = _BrokenFramer()


def test_a_framing_bug_drops_the_partial_frame_and_framing_resumes() -> None:
    read = dt(s7(1, 2, b"\x04\x01" + any_item(0x83, 0, 0, 1)))
    dis = _BrokenFraming()
    out = dis.feed(SETUP_JOB[:5], O, 1.0) + dis.feed(read, O, 2.0)
    out += dis.feed(SETUP_JOB, O, 3.0) + dis.feed(SETUP_ACK, R, 4.0)
    (fault,) = [r for r in out if isinstance(r, DissectorFault)]
    assert fault.reason == "TPKT/COTP framing: IndexError: injected"
    assert [r.function_name for r in of(out, "s7comm") if r.matched] == ["Setup communication"]
