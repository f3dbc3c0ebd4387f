"""Modbus/TCP dissector unit tests: annotated hex ADUs, bad frames, framing, fuzz.

Hex constants are written from the MODBUS Application Protocol Specification
V1.1b3 (section numbers in the comments) and MODBUS Messaging on TCP/IP V1.0b
(MBAP header: transaction id, protocol id 0, length = unit + PDU bytes, unit).
``#`` starts a comment inside a constant.
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otsensor.dissectors.base import Anomaly, Direction
from otsensor.dissectors.modbus import REGISTRATIONS, ModbusDissector, ModbusTransaction

ORIG, RESP = Direction.ORIG, Direction.RESP


def h(text: str) -> bytes:
    """Hex with spaces, newlines and ``# comments``."""
    return bytes.fromhex("".join(line.split("#")[0] for line in text.splitlines()))


def run(*parts: tuple[Direction, bytes], close: bool = True) -> list:
    d = ModbusDissector()
    out = []
    for direction, data in parts:
        out += d.feed(data, direction, 1.0)
    if close:
        out += d.close(2.0)
    return out


def transactions(records: list) -> list[dict]:
    return [r.to_dict() for r in records if isinstance(r, ModbusTransaction)]


def anomalies(records: list) -> list[str]:
    return [r.name for r in records if isinstance(r, Anomaly)]


def one(req: bytes, resp: bytes) -> dict:
    txns = transactions(run((ORIG, req), (RESP, resp)))
    assert len(txns) == 1, txns
    return txns[0]


# -- every public function code, request and response --------------------------------------------------------

CASES = [
    ("fc1 read coils (6.1)",
     "00 01 0000 0006 01  01  0013 0005        # tid 1, unit 1, FC 1, start 19, 5 coils",
     "00 01 0000 0004 01  01  01 0d            # 1 byte: coils 19..23 = 1,0,1,1,0",
     {"func": "READ_COILS", "address": 19, "quantity": 5, "response_values": [1, 0, 1, 1, 0], "matched": True}),
    ("fc2 read discrete inputs (6.2)",
     "00 02 0000 0006 01  02  00c4 0003        # start 196, 3 inputs",
     "00 02 0000 0004 01  02  01 06            # 0,1,1",
     {"func": "READ_DISCRETE_INPUTS", "address": 196, "quantity": 3, "response_values": [0, 1, 1]}),
    ("fc3 read holding registers (6.3)",
     "00 03 0000 0006 11  03  006b 0003        # unit 17, start 107, 3 registers",
     "00 03 0000 0009 11  03  06 022b 0000 0064",
     {"func": "READ_HOLDING_REGISTERS", "unit": 17, "address": 107, "quantity": 3,
      "response_values": [555, 0, 100]}),
    ("fc4 read input registers (6.4)",
     "00 04 0000 0006 01  04  0008 0001",
     "00 04 0000 0005 01  04  02 000a",
     {"func": "READ_INPUT_REGISTERS", "address": 8, "quantity": 1, "response_values": [10]}),
    ("fc5 write single coil (6.5)",
     "00 05 0000 0006 01  05  00ac ff00        # coil 172 ON",
     "00 05 0000 0006 01  05  00ac ff00        # echo",
     {"func": "WRITE_SINGLE_COIL", "address": 172, "quantity": 1}),
    ("fc6 write single register (6.6)",
     "00 06 0000 0006 01  06  0001 0003",
     "00 06 0000 0006 01  06  0001 0003",
     {"func": "WRITE_SINGLE_REGISTER", "address": 1, "quantity": 1, "request_values": [3]}),
    ("fc7 read exception status (6.7)",
     "00 07 0000 0002 01  07",
     "00 07 0000 0003 01  07  6d",
     {"func": "READ_EXCEPTION_STATUS", "response_values": [0x6D]}),
    ("fc8/0 return query data (6.8.1)",
     "00 08 0000 0006 01  08  0000 a537",
     "00 08 0000 0006 01  08  0000 a537",
     {"func": "DIAGNOSTICS", "sub_function": 0}),
    ("fc8/1 restart communications option",
     "00 09 0000 0006 01  08  0001 ff00        # clear the event log too",
     "00 09 0000 0006 01  08  0001 ff00",
     {"func": "DIAGNOSTICS", "sub_function": 1}),
    ("fc8/4 force listen only mode",
     "00 0a 0000 0006 01  08  0004 0000",
     "00 0a 0000 0006 01  08  0004 0000",
     {"func": "DIAGNOSTICS", "sub_function": 4}),
    ("fc8/11 return bus message count",
     "00 0b 0000 0006 01  08  000b 0000",
     "00 0b 0000 0006 01  08  000b 0123",
     {"func": "DIAGNOSTICS", "sub_function": 11}),
    ("fc11 get comm event counter (6.9)",
     "00 0c 0000 0002 01  0b",
     "00 0c 0000 0006 01  0b  ffff 0108        # status busy, 264 events",
     {"func": "GET_COMM_EVENT_COUNTER", "status": 0xFFFF, "event_count": 264}),
    ("fc12 get comm event log (6.10)",
     "00 0d 0000 0002 01  0c",
     "00 0d 0000 000b 01  0c  08 0000 0108 0121 20 00   # 8 bytes: status, events, messages, 2 events",
     {"func": "GET_COMM_EVENT_LOG", "event_count": 264, "message_count": 289}),
    ("fc15 write multiple coils (6.11)",
     "00 0e 0000 0009 01  0f  0013 000a 02 cd 01   # coils 19..28",
     "00 0e 0000 0006 01  0f  0013 000a",
     {"func": "WRITE_MULTIPLE_COILS", "address": 19, "quantity": 10,
      "request_values": [1, 0, 1, 1, 0, 0, 1, 1, 1, 0]}),
    ("fc16 write multiple registers (6.12)",
     "00 0f 0000 000b 01  10  0001 0002 04 000a 0102",
     "00 0f 0000 0006 01  10  0001 0002",
     {"func": "WRITE_MULTIPLE_REGISTERS", "address": 1, "quantity": 2, "request_values": [10, 258]}),
    ("fc17 report server id (6.13)",
     "00 10 0000 0002 01  11",
     "00 10 0000 0008 01  11  05 41 42 43 44 ff   # id 'ABCD', run indicator ON",
     {"func": "REPORT_SLAVE_ID", "server_id_text": "ABCD", "run_indicator": "ON"}),
    ("fc20 read file record (6.14)",
     "00 11 0000 000a 01  14  07 06 0004 0001 0002   # ref 6, file 4, record 1, 2 registers",
     "00 11 0000 0009 01  14  06 05 06 0dfe 0020   # 6 bytes: sub-response of 5 bytes, ref 6, 2 registers",
     {"func": "READ_FILE_RECORD",
      "file_records": [{"reference_type": 6, "file_number": 4, "record_number": 1, "record_length": 2}],
      "response_file_records": [{"reference_type": 6, "values": [0x0DFE, 0x0020]}]}),
    ("fc21 write file record (6.15)",
     "00 12 0000 000c 01  15  09 06 0004 0007 0001 06af   # file 4, record 7, one register",
     "00 12 0000 000c 01  15  09 06 0004 0007 0001 06af",
     {"func": "WRITE_FILE_RECORD", "file_records": [{"reference_type": 6, "file_number": 4, "record_number": 7,
                                                     "record_length": 1, "values": [0x06AF]}]}),
    ("fc22 mask write register (6.16)",
     "00 13 0000 0008 01  16  0004 00f2 0025",
     "00 13 0000 0008 01  16  0004 00f2 0025",
     {"func": "MASK_WRITE_REGISTER", "address": 4, "and_mask": 0xF2, "or_mask": 0x25}),
    ("fc23 read/write multiple registers (6.17)",
     "00 14 0000 0011 01  17  0003 0006 000e 0003 06 00ff 00ff 00ff",
     "00 14 0000 000f 01  17  0c 00fe 0acd 0001 0003 000d 00ff",
     {"func": "READ_WRITE_MULTIPLE_REGISTERS", "read_address": 3, "read_quantity": 6, "write_address": 14,
      "write_quantity": 3, "request_values": [255, 255, 255],
      "response_values": [0xFE, 0xACD, 1, 3, 0xD, 0xFF]}),
    ("fc24 read FIFO queue (6.18)",
     "00 15 0000 0004 01  18  04de",
     "00 15 0000 000a 01  18  0006 0002 01b8 1284   # byte count 6, 2 registers",
     {"func": "READ_FIFO_QUEUE", "address": 0x04DE, "quantity": 2, "response_values": [0x1B8, 0x1284]}),
    ("fc43/13 CANopen general reference (6.20)",
     "00 16 0000 0005 01  2b  0d 01 02",
     "00 16 0000 0005 01  2b  0d 01 02",
     {"func": "ENCAP_INTERFACE_TRANSPORT", "mei_type": "CANopen", "mei_code": 13}),
]


@pytest.mark.parametrize("req, resp, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_function_code_request_and_response(req: str, resp: str, expected: dict) -> None:
    got = one(h(req), h(resp))
    assert got["matched"] is True and got["exception_code"] is None
    assert {k: got.get(k) for k in expected} == expected
    assert got["func_code"] == h(req)[7]
    assert got["tid"] == int.from_bytes(h(req)[:2], "big")


def test_every_function_code_in_the_table_is_covered() -> None:
    public = {1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 15, 16, 17, 20, 21, 22, 23, 24, 43}  # spec 5.1
    assert {h(c[1])[7] for c in CASES} == public


# -- exceptions (spec 7) -----------------------------------------------------------------------------------

EXCEPTIONS = [
    ("83 02", 3, "ILLEGAL_DATA_ADDRESS"),
    ("81 01", 1, "ILLEGAL_FUNCTION"),
    ("90 03", 16, "ILLEGAL_DATA_VALUE"),
    ("83 04", 3, "SLAVE_DEVICE_FAILURE"),
    ("83 06", 3, "SLAVE_DEVICE_BUSY"),
    ("83 0b", 3, "GATEWAY_TARGET_DEVICE_FAILED_TO_RESPOND"),
]
REQUESTS = {1: "01 0000 0001", 3: "03 0000 0001", 16: "10 0000 0001 02 0007"}


@pytest.mark.parametrize("pdu, fc, name", EXCEPTIONS)
def test_exception_response(pdu: str, fc: int, name: str) -> None:
    body = h(REQUESTS[fc])
    req = h("0042 0000") + (len(body) + 1).to_bytes(2, "big") + b"\x01" + body
    got = one(req, h(f"0042 0000 0003 01 {pdu}"))
    assert (got["func_code"], got["exception_code"], got["matched"]) == (fc, name, True)


def test_exception_with_undefined_code_is_an_anomaly() -> None:
    records = run((ORIG, h("0001 0000 0006 01 03 0000 0001")), (RESP, h("0001 0000 0003 01 83 07")))
    assert "modbus.invalid_exception_code" in anomalies(records)
    assert transactions(records)[0]["exception_code"] == "unknown-7"


# -- FC 43/14 read device identification (6.21) -------------------------------------------------------------

DEVICE_ID_REQUEST = "0020 0000 0005 01  2b 0e 03 00     # MEI 14, extended stream, from object 0"
DEVICE_ID_RESPONSE = """
0020 0000 002e 01  2b 0e 03        # length 46; MEI 14, read code 3
83 00 00 08                        # conformity 0x83, no more follows, next 0, 8 objects
00 04 41 63 6d 65                  # 0 VendorName 'Acme'
01 03 50 43 31                     # 1 ProductCode 'PC1'
02 03 31 2e 32                     # 2 MajorMinorVersion '1.2'
03 04 68 74 74 70                  # 3 VendorURL 'http'
04 02 50 4e                        # 4 ProductName 'PN'
05 02 4d 4e                        # 5 ModelName 'MN'
06 02 55 41                        # 6 UserApplicationName 'UA'
80 02 58 59                        # 0x80 private object 'XY'
"""


def test_device_identification_objects() -> None:
    req, resp = h(DEVICE_ID_REQUEST), h(DEVICE_ID_RESPONSE)
    assert int.from_bytes(resp[4:6], "big") == len(resp) - 6
    got = one(req, resp)
    assert got["read_device_id_code"] == "EXTENDED_STREAM" and got["object_id"] == 0
    assert got["conformity_level"] == "Extended Identification (Stream, Individual)" and got["more_follows"] is False
    assert got["device_identification"] == {
        "VendorName": "Acme", "ProductCode": "PC1", "MajorMinorVersion": "1.2", "VendorURL": "http",
        "ProductName": "PN", "ModelName": "MN", "UserApplicationName": "UA", "private-128": "XY"}


def test_device_identification_gives_server_identity_and_recon_op() -> None:
    records = run((ORIG, h(DEVICE_ID_REQUEST)), (RESP, h(DEVICE_ID_RESPONSE)))
    txn = next(r for r in records if isinstance(r, ModbusTransaction))
    side, facts = txn.identity()
    assert side == RESP
    assert facts["vendor"] == "Acme" and facts["product_code"] == "PC1" and facts["revision"] == "1.2"
    assert facts["product_name"] == "PN" and facts["model"] == "MN"
    op = txn.op()
    assert op.category == "recon" and "identity_read" in op.tags


@pytest.mark.parametrize("code, name", [(1, "BASIC_STREAM"), (2, "REGULAR_STREAM"), (4, "SPECIFIC_OBJECT")])
def test_device_identification_read_codes(code: int, name: str) -> None:
    req = h(f"0021 0000 0005 01 2b 0e {code:02x} 04")
    resp = h(f"0021 0000 000c 01 2b 0e {code:02x} 83 00 00 01  04 02 50 4e")
    got = one(req, resp)
    assert got["read_device_id_code"] == name and got["device_identification"] == {"ProductName": "PN"}


# -- user-defined and reserved codes (spec 5) ---------------------------------------------------------------

@pytest.mark.parametrize("fc, name, kind", [(65, "unknown-65", "user_defined"), (100, "unknown-100", "user_defined"),
                                            (9, "PROGRAM_484", "reserved"), (90, "PROGRAM_UNITY", "reserved"),
                                            (0x30, "unknown-48", "reserved")])
def test_user_defined_and_reserved_codes_are_recorded(fc: int, name: str, kind: str) -> None:
    got = one(h(f"0030 0000 0004 01 {fc:02x} beef"), h(f"0030 0000 0004 01 {fc:02x} cafe"))
    assert (got["func"], got["func_kind"], got["func_code"], got["matched"]) == (name, kind, fc, True)
    assert got["data"] == "beef"


# -- bad frames ----------------------------------------------------------------------------------------------

BAD_FRAMES = [
    ("protocol id 1", "0001 0001 0006 01 03 0000 0001", "modbus.invalid_protocol_id"),
    ("length 0", "0001 0000 0000 01 03 0000 0001", "modbus.invalid_length"),
    ("length 1", "0001 0000 0001 01 03 0000 0001", "modbus.invalid_length"),
    ("length longer than the PDU needs", "0001 0000 0008 01 03 0000 0001 0000", "modbus.length_mismatch"),
    ("byte count above the data", "0001 0000 000b 01 10 0000 0002 06 0001 0002", "modbus.byte_count_mismatch"),
    ("byte count disagrees with quantity", "0001 0000 000b 01 10 0000 0003 04 0001 0002",
     "modbus.byte_count_mismatch"),
    ("truncated read request", "0001 0000 0004 01 03 0000", "modbus.truncated_pdu"),
    ("truncated mask write", "0001 0000 0006 01 16 0000 0000", "modbus.truncated_pdu"),
    ("function code 0", "0001 0000 0006 01 00 0000 0001", "modbus.invalid_function_code"),
    ("quantity 0", "0001 0000 0006 01 03 0000 0000", "modbus.quantity_out_of_range"),
    ("quantity 126 registers", "0001 0000 0006 01 03 0000 007e", "modbus.quantity_out_of_range"),
    ("coil value not 0000/ff00", "0001 0000 0006 01 05 0000 1234", "modbus.invalid_value"),
]


@pytest.mark.parametrize("frame, anomaly", [b[1:] for b in BAD_FRAMES], ids=[b[0] for b in BAD_FRAMES])
def test_bad_frame_gives_its_anomaly(frame: str, anomaly: str) -> None:
    good = h("0002 0000 0006 01 03 0000 0001")
    d = ModbusDissector()
    d.feed(good, ORIG, 1.0)  # a confirmed flow: bad frames after good ones are reported, not rejected
    records = d.feed(h(frame), ORIG, 1.0) + d.feed(h("0003 0000 0006 01 03 0000 0002"), ORIG, 1.0)
    assert anomaly in anomalies(records)
    records += d.close(2.0)
    assert 3 in {t["tid"] for t in transactions(records)}, "the stream goes on after a bad frame"


def test_length_just_above_the_spec_is_framed_and_reported() -> None:
    """Schneider Unity (FC 90) sends MBAP length 255 (iti-ics-tools modicon_test.pcap frame 19).

    The dissector used to treat it as lost framing and drop the ADU and what followed it in the segment.
    """
    body = bytes([0x5A, 0x00]) + bytes(range(252))
    adu = h("0007 0000 00ff 00") + body
    assert len(adu) == 6 + 255
    records = run((ORIG, adu + h("0008 0000 0004 00 5a 0004")))
    assert [t["tid"] for t in transactions(records)] == [7, 8]
    assert anomalies(records).count("modbus.invalid_length") == 1


def test_not_modbus_on_port_502_is_rejected_before_confirming() -> None:
    d = ModbusDissector()
    assert d.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", ORIG, 1.0) == []
    assert d.rejected and not d.confirmed


def test_probe() -> None:
    probe = REGISTRATIONS[0].probe
    assert probe(h("0001 0000 0006 01 03 0000 0001"), ORIG)
    assert not probe(h("0001 0001 0006 01 03 0000 0001"), ORIG)
    assert not probe(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc", ORIG)


# -- pairing -------------------------------------------------------------------------------------------------

def test_unanswered_request_and_unmatched_response() -> None:
    records = run((ORIG, h("0001 0000 0006 01 03 0000 0001")), (RESP, h("0009 0000 0005 01 03 02 0007")))
    names = anomalies(records)
    assert "modbus.unanswered_request" in names and "modbus.unmatched_response" in names
    assert sorted(t["pdu_type"] for t in transactions(records)) == ["REQ", "RESP"]


def test_pairing_by_tid_out_of_order() -> None:
    reqs = h("0001 0000 0006 01 03 0000 0001  0002 0000 0006 01 04 0000 0001")
    resps = h("0002 0000 0005 01 04 02 0009  0001 0000 0005 01 03 02 0008")
    txns = transactions(run((ORIG, reqs), (RESP, resps)))
    assert {(t["tid"], t["func_code"], tuple(t["response_values"])) for t in txns} == {(1, 3, (8,)), (2, 4, (9,))}
    assert all(t["matched"] for t in txns)


# -- framing across segments ---------------------------------------------------------------------------------

STREAM_REQ = h(DEVICE_ID_REQUEST) + h("0001 0000 000b 01 10 0001 0002 04 000a 0102")
STREAM_RESP = h(DEVICE_ID_RESPONSE) + h("0001 0000 0006 01 10 0001 0002")


def test_adu_split_at_every_byte_position_gives_the_same_records() -> None:
    whole = transactions(run((ORIG, STREAM_REQ), (RESP, STREAM_RESP)))
    assert len(whole) == 2
    for cut in range(1, len(STREAM_REQ)):
        parts = run((ORIG, STREAM_REQ[:cut]), (ORIG, STREAM_REQ[cut:]), (RESP, STREAM_RESP))
        assert transactions(parts) == whole, f"request stream cut at {cut}"
        assert anomalies(parts) == []
    for cut in range(1, len(STREAM_RESP)):
        parts = run((ORIG, STREAM_REQ), (RESP, STREAM_RESP[:cut]), (RESP, STREAM_RESP[cut:]))
        assert transactions(parts) == whole, f"response stream cut at {cut}"


def test_two_adus_in_one_segment() -> None:
    txns = transactions(run((ORIG, STREAM_REQ), (RESP, STREAM_RESP)))
    assert [t["tid"] for t in txns] == [0x20, 1] and all(t["matched"] for t in txns)


def test_gap_then_resynchronisation() -> None:
    d = ModbusDissector()
    first = h("0001 0000 0006 01 03 0000 0001")
    second = h("0002 0000 0006 01 03 0010 0002")
    records = d.feed(first, ORIG, 1.0)
    records += d.feed(second[:5], ORIG, 1.0)   # half an ADU, then the rest is lost
    records += d.gap(ORIG, 7, 1.0)
    records += d.feed(h("00 01 02") + h("0003 0000 0006 01 03 0020 0003"), ORIG, 1.0)  # tail junk, next ADU
    records += d.close(2.0)
    names = anomalies(records)
    assert "modbus.gap" in names and "modbus.resync" in names
    assert [(t["tid"], t["address"]) for t in transactions(records)] == [(1, 0), (3, 0x20)]


# -- fuzz: whole vs one byte at a time -----------------------------------------------------------------------

def feed_whole(chunks: list[tuple[int, bytes]]) -> list[dict]:
    d = ModbusDissector()
    out = []
    for direction, data in chunks:
        out += d.feed(data, Direction(direction), 1.0)
    return summarise(out + d.close(2.0))


def feed_bytewise(chunks: list[tuple[int, bytes]]) -> list[dict]:
    d = ModbusDissector()
    out = []
    for direction, data in chunks:
        for i in range(len(data)):
            out += d.feed(data[i:i + 1], Direction(direction), 1.0)
    return summarise(out + d.close(2.0))


def summarise(records: list) -> list[dict]:
    """Transactions in full; anomalies by name and direction (resync reports are per feed call, bounded)."""
    out = []
    for r in records:
        if isinstance(r, ModbusTransaction):
            out.append(r.to_dict())
        elif r.name != "modbus.resync":
            out.append({"anomaly": r.name, "direction": r.direction})
    return out


ADU_PARTS = st.builds(
    lambda tid, proto, unit, fc, body, length_delta: (
        tid.to_bytes(2, "big") + proto.to_bytes(2, "big")
        + max(0, len(body) + 2 + length_delta).to_bytes(2, "big") + bytes([unit, fc]) + body),
    st.integers(0, 0xFFFF), st.sampled_from([0, 0, 0, 1]), st.integers(0, 255),
    st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 15, 16, 17, 20, 21, 22, 23, 24, 43, 65, 0x83, 0x90, 0xAB]),
    st.binary(max_size=40), st.sampled_from([0, 0, 0, -1, 1, -3, 5]))
STREAMS = st.lists(st.tuples(st.sampled_from([0, 1]), st.one_of(ADU_PARTS, st.binary(max_size=30))), max_size=12)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(STREAMS)
def test_fuzz_whole_and_bytewise_never_raise_and_agree(chunks: list[tuple[int, bytes]]) -> None:
    assert feed_whole(chunks) == feed_bytewise(chunks)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(STREAMS)
def test_fuzz_after_a_confirmed_adu(chunks: list[tuple[int, bytes]]) -> None:
    """As above, on a flow already confirmed as Modbus (so junk is parsed and resynchronised, not rejected)."""
    chunks = [(0, h("0001 0000 0006 01 03 0000 0001")), (1, h("0001 0000 0005 01 03 02 0007")), *chunks]
    assert feed_whole(chunks) == feed_bytewise(chunks)


def test_file_record_response_with_a_zero_length_record() -> None:
    """A sub-response whose length byte is 0 has no values (hypothesis found the compiled build raising
    SystemError on it: a bytes slice ending before its start)."""
    records = run((ORIG, h("0002 0000 0004 01 14 01 00")), (RESP, h("0002 0000 0005 01 14 02 00 00")))
    [tx] = transactions(records)
    assert tx["func"] == "READ_FILE_RECORD" and tx["response_file_records"] == [{"reference_type": 0, "values": []}]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600))
def test_fuzz_random_bytes_never_raise(data: bytes) -> None:
    for direction in (ORIG, RESP):
        d = ModbusDissector()
        d.feed(data, direction, 1.0)
        d.gap(direction, 5, 1.0)
        d.feed(data[::-1], direction, 1.0)
        d.close(2.0)
