"""Unit tests of the DNP3 dissector: annotated hex from real captures and built frames.

Frames are built with a bitwise CRC written here from the definition in IEEE 1815-2012
9.2.3.1 (not with the dissector's table-driven one), so CRC errors on either side show.
"""
from __future__ import annotations

import random
import struct

import pytest

from otsensor.dissectors.base import Anomaly, Category, Direction, DissectorFault, Tag
from otsensor.dissectors.dnp3 import REGISTRATIONS, Dnp3Dissector, probe
from otsensor.dissectors.dnp3.crc import crc16
from otsensor.dissectors.dnp3.tables import ANOMALIES, FUNCTIONS, name_of
from otsensor.dissectors.registry import TCP, UDP, default_registry

ORIG, RESP = Direction.ORIG, Direction.RESP


def H(text: str) -> bytes:
    """Hex with ``#`` comments and any whitespace."""
    return bytes.fromhex("".join(line.split("#")[0] for line in text.splitlines()).replace(" ", ""))


def crc_bitwise(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA6BC if crc & 1 else crc >> 1
    return ~crc & 0xFFFF


def frame(user: bytes, control: int = 0xC4, dst: int = 10, src: int = 1) -> bytes:
    """A link frame around ``user`` data (transport header included), CRCs computed here."""
    head = struct.pack("<2sBBHH", b"\x05\x64", 5 + len(user), control, dst, src)
    out = head + struct.pack("<H", crc_bitwise(head))
    for i in range(0, len(user), 16):
        block = user[i:i + 16]
        out += block + struct.pack("<H", crc_bitwise(block))
    return out


def segmented(app: bytes, **kw) -> bytes:
    """A fragment cut into transport segments of up to 249 octets, each in its own link frame."""
    segs = [app[i:i + 249] for i in range(0, len(app), 249)]
    return b"".join(frame(bytes([(0x40 if i == 0 else 0) | (0x80 if i == len(segs) - 1 else 0) | i]) + seg, **kw)
                    for i, seg in enumerate(segs))


def request(app: bytes, **kw) -> bytes:
    """One-segment fragment (transport FIR|FIN seq 0) from master 1 to outstation 10."""
    return frame(b"\xc0" + app, **kw)


def response(app: bytes, **kw) -> bytes:
    kw.setdefault("control", 0x44)
    kw.setdefault("dst", 1)
    kw.setdefault("src", 10)
    return frame(b"\xc0" + app, **kw)


def run(*chunks: tuple[Direction, bytes], close: bool = True) -> list:
    d = Dnp3Dissector({})
    out = []
    for direction, data in chunks:
        out += d.feed(data, direction, 1.0)
    if close:
        out += d.close(2.0)
    return out


def logs(records: list, log: str) -> list:
    return [r for r in records if r.LOG == log]


def anomaly_names(records: list) -> list[str]:
    return [r.name for r in records if isinstance(r, Anomaly)]


# Integrity poll as dnp3py's master sent it (pcaps/dnp3_scada.pcap, frame 8).
INTEGRITY_POLL = H("""
    05 64        # start octets
    14           # length: 20 = 5 + 15 user octets
    c4           # control: DIR=1 (from master), PRM=1, function 4 UNCONFIRMED_USER_DATA
    0a 00        # destination 10 (outstation)
    01 00        # source 1 (master)
    8f ed        # header CRC
    c0           # transport: FIN FIR seq 0
    c0 01        # application control FIR FIN seq 0; function READ
    3c 02 06     # g60v2 class 1, qualifier 0x06 all
    3c 03 06     # g60v3 class 2
    3c 04 06     # g60v4 class 3
    3c 01 06     # g60v1 class 0
    8a 51        # data block CRC
""")
# Its response header and first objects, from the same capture (frame 10), rebuilt short:
# RESPONSE with IIN 0x9000 and g30v1 range 0-1 (flags + int32 each).
AI_RESPONSE = response(H("""
    c0 81 90 00           # FIR FIN seq 0, RESPONSE, IIN1=0x90 (DEVICE_RESTART, NEED_TIME), IIN2=0
    1e 01 00 00 01        # g30v1, qualifier 0x00 (8-bit start/stop), 0..1
    01 0a 00 00 00        # index 0: flags ONLINE, value 10
    01 f6 ff ff ff        # index 1: flags ONLINE, value -10
"""))


def test_crc_matches_capture_and_bitwise_definition():
    assert crc16(INTEGRITY_POLL[:8]) == 0xED8F
    rng = random.Random(7)
    for _ in range(50):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
        assert crc16(data) == crc_bitwise(data)


def test_integrity_poll_and_response_pair():
    recs = run((ORIG, INTEGRITY_POLL), (RESP, AI_RESPONSE))
    assert anomaly_names(recs) == []
    (tx,) = logs(recs, "dnp3")
    d = tx.to_dict()
    assert (d["fc_request"], d["fc_reply"], d["iin"]) == ("READ", "RESPONSE", 0x9000)
    assert d["iin_flags"] == ["DEVICE_RESTART", "NEED_TIME"]
    assert (d["link_src"], d["link_dst"], d["matched"]) == (1, 10, True)
    assert d["objects"] == ["g60v2", "g60v3", "g60v4", "g60v1"]
    objs = [o.to_dict() for o in logs(recs, "dnp3_objects")]
    assert objs[0] == {"function_code": "READ", "object_type": "Class 1 Data", "group": 60, "variation": 2,
                       "qualifier": "0x06", "object_count": None, "range_low": None, "range_high": None}
    assert objs[-1]["object_type"] == "32-Bit Analog Input"
    assert (objs[-1]["object_count"], objs[-1]["range_low"], objs[-1]["range_high"]) == (2, 0, 1)
    (pts,) = logs(recs, "dnp3_points")
    assert pts.to_dict()["points"] == [{"index": 0, "flags": 1, "value": 10}, {"index": 1, "flags": 1, "value": -10}]
    op = tx.op()
    assert (op.category, op.function, op.space, op.ok, op.unit) == (Category.READ, "READ", "g60", True, 10)


def test_several_frames_per_segment_and_frames_split_across_segments():
    whole = run((ORIG, INTEGRITY_POLL + INTEGRITY_POLL), (RESP, AI_RESPONSE))
    d = Dnp3Dissector({})
    split = []
    stream = INTEGRITY_POLL + INTEGRITY_POLL
    for i in range(0, len(stream), 7):
        split += d.feed(stream[i:i + 7], ORIG, 1.0)
    split += d.feed(AI_RESPONSE, RESP, 1.0) + d.close(2.0)
    assert [r.to_dict() for r in split] == [r.to_dict() for r in whole]
    # same sequence number twice: the first request is reported unanswered, the second paired
    assert [t.matched for t in logs(whole, "dnp3")] == [False, True]


def test_transport_reassembles_fragment_over_two_link_frames():
    objects = b"".join(struct.pack("<BBBBB", 30, 1, 0, i, i) + b"\x01" + struct.pack("<i", i) for i in range(60))
    app = b"\xc0\x81\x00\x00" + objects                   # 4 + 600 bytes: needs 3 segments of <= 249
    recs = run((ORIG, INTEGRITY_POLL), (RESP, segmented(app, control=0x44, dst=1, src=10)))
    assert anomaly_names(recs) == []
    assert len(logs(recs, "dnp3_objects")) == 4 + 60
    assert logs(recs, "dnp3")[0].matched


def test_repeated_segment_is_a_link_retry_not_an_error():
    first, last = frame(b"\x40\xc0\x01"), frame(b"\x81\x3c\x01\x06")
    recs = run((ORIG, first + first + last))
    assert anomaly_names(recs) == []
    assert [o.object_type for o in logs(recs, "dnp3_objects")] == ["Class 0 Data"]


def bad(name: str, chunks, expected: str):
    return pytest.param(chunks, expected, id=name)


GOOD_HEADER = frame(b"\xc0\xc0\x01\x3c\x01\x06")
BAD_FRAMES = [
    bad("header CRC", [(ORIG, GOOD_HEADER[:8] + b"\x00\x00" + GOOD_HEADER[10:])], "dnp3.bad_crc"),
    bad("data block CRC", [(ORIG, GOOD_HEADER[:-2] + b"\xde\xad")], "dnp3.bad_crc"),
    bad("length below 5", [(ORIG, GOOD_HEADER), (ORIG, frame(b"")[:2] + b"\x03" + frame(b"")[3:8]
                                                  + struct.pack("<H", crc_bitwise(frame(b"")[:2] + b"\x03" + frame(b"")[3:8])))],
        "dnp3.bad_length"),
    bad("junk between frames", [(ORIG, GOOD_HEADER + b"GARBAGE" + GOOD_HEADER)], "dnp3.junk_bytes"),
    bad("undefined link function", [(ORIG, frame(b"", control=0xC5))], "dnp3.unknown_link_function"),
    bad("segment without FIR", [(ORIG, frame(b"\x81\xc0\x01"))], "dnp3.transport_no_first"),
    bad("segment out of sequence", [(ORIG, frame(b"\x40\xc0\x01") + frame(b"\x83\x3c\x01\x06"))],
        "dnp3.transport_out_of_sequence"),
    bad("FIR before FIN", [(ORIG, frame(b"\x40\xc0\x01") + frame(b"\xc5\xc0\x01"))], "dnp3.transport_incomplete"),
    bad("stream ends inside fragment", [(ORIG, frame(b"\x40\xc0\x01"))], "dnp3.transport_incomplete"),
    bad("undefined function", [(ORIG, request(b"\xc0\x70"))], "dnp3.unknown_function"),
    bad("response without IIN", [(RESP, response(b"\xc0\x81\x00"))], "dnp3.truncated_fragment"),
    bad("unknown object with data", [(ORIG, request(b"\xc0\x02\x63\x01\x00\x00\x00\xff"))], "dnp3.unknown_object"),
    bad("reserved qualifier", [(ORIG, request(b"\xc0\x01\x1e\x01\x70"))], "dnp3.bad_qualifier"),
    bad("stop below start", [(ORIG, request(b"\xc0\x01\x1e\x01\x00\x05\x02"))], "dnp3.bad_range"),
    bad("objects past the end", [(RESP, response(b"\xc0\x81\x00\x00\x1e\x01\x00\x00\x09\x01\x02"))],
        "dnp3.truncated_object"),
    bad("count impossible for data", [(RESP, response(b"\xc0\x81\x00\x00\x02\x02\x28\xff\xff\x00"))], "dnp3.bad_range"),
    # qualifier 0x5B: 2-octet size prefix, 1-octet count; a CROB of 3 octets where its layout needs 11
    bad("size prefix below the layout", [(ORIG, request(H("c0 05  0c 01 5b 01  03 00  81 01 00")))],
        "dnp3.truncated_object"),
    # qualifier 0x4B: 1-octet size prefix; a packed binary input of 0 octets
    bad("empty size-prefixed point", [(RESP, response(H("c0 81 00 00  01 01 4b 01  00")))], "dnp3.truncated_object"),
]


@pytest.mark.parametrize("chunks,expected", BAD_FRAMES)
def test_bad_frames_give_named_anomalies(chunks, expected):
    recs = run(*chunks)
    names = anomaly_names(recs)
    assert expected in names, names
    assert all(n in ANOMALIES for n in names)
    # decoding goes on: a valid poll after the bad bytes still parses
    d = Dnp3Dissector({})
    for direction, data in chunks:
        d.feed(data, direction, 1.0)
    d.gap(ORIG, 0, 1.0)
    after = d.feed(INTEGRITY_POLL, ORIG, 1.0)
    assert logs(after, "dnp3_objects")


@pytest.mark.parametrize("code,name", sorted(FUNCTIONS.items()))
def test_every_ieee1815_function_is_named(code, name):
    app = bytes([0xC0, code]) + (b"\x00\x00" if code >= 0x81 else b"")
    recs = run((ORIG, request(app)))
    names = anomaly_names(recs)
    assert "dnp3.unknown_function" not in names
    tx = logs(recs, "dnp3")
    assert tx and name in (tx[0].fc_request, tx[0].fc_reply)


def test_unknown_codes_get_named_fallback():
    assert name_of(FUNCTIONS, 0x40) == "unknown-0x40"


# (name, group, variation, qualifier and range octets, object data, expected first point)
OBJECTS = [
    ("binary input packed", 1, 1, "00 00 09", "01 02", {"index": 0, "value": 1}),
    ("binary input with flags", 1, 2, "00 03 03", "81", {"index": 3, "flags": 0x81, "value": 1}),
    ("binary event with time", 2, 2, "17 01 05", "81 e8 03 00 00 00 00", {"index": 5, "flags": 0x81, "value": 1, "time": 1000}),
    ("double-bit input", 3, 2, "00 00 00", "81", {"index": 0, "flags": 0x81, "value": 2}),
    ("binary output status", 10, 2, "00 02 02", "01", {"index": 2, "flags": 1, "value": 0}),
    ("32-bit counter", 20, 1, "00 00 00", "01 10 27 00 00", {"index": 0, "flags": 1, "value": 10000}),
    ("frozen counter with time", 21, 5, "00 00 00", "01 05 00 00 00 10 00 00 00 00 00",
     {"index": 0, "flags": 1, "value": 5, "time": 16}),
    ("float analog input", 30, 5, "00 07 07", "01 00 00 28 42", {"index": 7, "flags": 1, "value": 42.0}),
    ("analog event float with time", 32, 7, "28 01 00 04 00", "01 00 00 80 bf 02 00 00 00 00 00",
     {"index": 4, "flags": 1, "value": -1.0, "time": 2}),
    ("analog output status", 40, 1, "00 00 00", "01 64 00 00 00", {"index": 0, "flags": 1, "value": 100}),
    ("time and date", 50, 1, "07 01", "00 00 00 00 01 00", {"index": 0, "time": 1 << 32}),
    ("time delay fine", 52, 2, "07 01", "e8 03", {"index": 0, "milliseconds": 1000}),
    ("internal indications", 80, 1, "00 07 07", "01", {"index": 7, "value": 1}),
]


@pytest.mark.parametrize("name,group,var,qual,data,expected", OBJECTS, ids=[o[0] for o in OBJECTS])
def test_object_values_decoded(name, group, var, qual, data, expected):
    app = b"\xc0\x81\x00\x00" + bytes([group, var]) + H(qual) + H(data)
    recs = run((RESP, response(app)))
    assert anomaly_names(recs) == []
    (pts,) = logs(recs, "dnp3_points")
    assert pts.to_dict()["points"][0] == expected


CROB_SELECT = request(H("""
    c0 03             # FIR FIN seq 0, SELECT
    0c 01 28 01 00    # g12v1 CROB, qualifier 0x28 (2-octet index prefix, 2-octet count), count 1
    05 00             # index 5
    81                # control code: TCC=2 (Trip), op type 1 (Pulse On)
    02                # count
    f4 01 00 00       # on-time 500 ms
    fa 00 00 00       # off-time 250 ms
    00                # status
"""))


def test_crob_select_control_record_and_op():
    app = H("c0 81 00 00 0c 01 28 01 00 05 00 81 02 f4 01 00 00 fa 00 00 00 00")
    recs = run((ORIG, CROB_SELECT), (RESP, response(app)))
    ctl = [c.to_dict() for c in logs(recs, "dnp3_control")]
    assert ctl[0] == {
        "block_type": "Control Relay Output Block", "function_code": "SELECT", "index_number": 5,
        "trip_control_code": "Trip", "operation_type": "Pulse On", "clear_bit": False, "queue_bit": False,
        "execute_count": 2, "on_time": 500, "off_time": 250, "status_code": None, "value": None,
        "link_src": 1, "link_dst": 10}
    assert ctl[1]["function_code"] == "RESPONSE" and ctl[1]["status_code"] == "Success"
    op = logs(recs, "dnp3")[0].op()
    assert (op.category, op.space, op.start, op.count, op.values, op.ok) == (
        Category.WRITE, "g12", 5, 1, ("Pulse On",), True)
    assert op.tags == {Tag.SELECT}


def test_analog_output_direct_operate_refused():
    req = request(H("c0 05  29 02 17 01 03  d2 04 00"))       # g41v2 index 3 value 1234
    rsp = response(H("c0 81 00 00  29 02 17 01 03  d2 04 04"))  # status 4 Not Supported
    recs = run((ORIG, req), (RESP, rsp))
    ctl = logs(recs, "dnp3_control")
    assert [(c.block_type, c.value, c.status_code) for c in ctl] == [
        ("Analog Output Block", 1234, None), ("Analog Output Block", 1234, "Not Supported")]
    op = logs(recs, "dnp3")[0].op()
    assert (op.space, op.start, op.values, op.ok, op.tags) == ("g41", 3, (1234,), False, {Tag.DIRECT_OPERATE})


# (request application octets, category, tags, space)
OPS = [
    ("c0 0d", Category.CONTROL, {Tag.RESTART}, None),
    ("c0 0e", Category.CONTROL, {Tag.RESTART}, None),
    ("c0 12", Category.CONTROL, {Tag.PLC_STOP}, None),
    ("c0 11", Category.CONTROL, {Tag.PLC_START}, None),
    ("c0 15 3c 02 06", Category.CONTROL, {Tag.DISABLE_UNSOLICITED}, "g60"),
    ("c0 01 00 fe 06", Category.RECON, {Tag.IDENTITY_READ}, "g0"),
    ("c0 02 32 01 07 01 00 00 00 00 00 00", Category.WRITE, {Tag.CLOCK_SET}, "g50"),
    ("c0 01 1e 00 00 00 03", Category.READ, set(), "g30"),
    ("c0 06 0c 01 17 01 02 03 01 00 00 00 00 00 00 00 00 00", Category.WRITE, {Tag.DIRECT_OPERATE}, "g12"),
    ("c0 1b 46 03 5b 01 1a 00 1a 00 03 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00",
     Category.PROGRAM, {Tag.FILE_TRANSFER, Tag.PROGRAM_DELETE}, "g70"),
]


@pytest.mark.parametrize("app,category,tags,space", OPS)
def test_operations_categorised(app, category, tags, space):
    recs = run((ORIG, request(H(app))))
    op = logs(recs, "dnp3")[0].op()
    assert (op.category, set(op.tags), op.space) == (category, tags, space)


@pytest.mark.parametrize("mode,name,category,tags", [
    (2, "WRITE", Category.PROGRAM, {Tag.FILE_TRANSFER, Tag.PROGRAM_DOWNLOAD}),
    (3, "APPEND", Category.PROGRAM, {Tag.FILE_TRANSFER, Tag.PROGRAM_DOWNLOAD}),
    (1, "READ", Category.READ, {Tag.FILE_TRANSFER}),
])
def test_open_file_mode_decides_category(mode, name, category, tags):
    path = b"/cfg/setpoints.txt"
    # g70v3 file command (A.24.3): name offset 26, name size, created (6), permissions, auth key,
    # file size, operational mode, max block size, request id, then the name
    cmd = struct.pack("<HH", 26, len(path)) + b"\x00" * 6 + struct.pack("<HIIHHH", 0, 0, 100, mode, 1024, 7) + path
    app = b"\xc0\x19" + bytes([70, 3, 0x5B, 1]) + struct.pack("<H", len(cmd)) + cmd
    recs = run((ORIG, request(app)))
    op = logs(recs, "dnp3")[0].op()
    assert (op.category, set(op.tags)) == (category, tags)
    (pts,) = logs(recs, "dnp3_points")
    assert pts.points[0].file_name == "/cfg/setpoints.txt" and pts.points[0].mode == name


def test_broadcast_destination_tagged():
    recs = run((ORIG, request(H("c0 0d"), dst=0xFFFF)))
    assert Tag.BROADCAST in logs(recs, "dnp3")[0].op().tags


def test_identity_of_stations_and_device_attributes():
    vendor = b"ACME RTU"
    rsp = response(b"\xc0\x81\x00\x00" + bytes([0, 252, 0x00, 0, 0, 1, len(vendor)]) + vendor
                   + bytes([0, 248, 0x00, 0, 0, 1, 4]) + b"SN42")
    recs = run((ORIG, request(H("c0 01 00 fe 06"))), (RESP, rsp))
    ids = [r.identity() for r in recs if r.identity() is not None]
    assert (ORIG, {"link_address": 1, "dnp3_role": "master"}) in ids
    assert (RESP, {"link_address": 10, "dnp3_role": "outstation"}) in ids
    assert (RESP, {"vendor": "ACME RTU"}) in ids
    assert (RESP, {"serial_number": "SN42"}) in ids


def test_unanswered_request_emitted_at_close_and_pending_bounded():
    recs = run((ORIG, INTEGRITY_POLL))
    assert [(t.fc_request, t.matched) for t in logs(recs, "dnp3")] == [("READ", False)]
    d = Dnp3Dissector({})
    out = []
    for master in range(520):                       # distinct masters: 520 distinct pending keys
        out += d.feed(request(H("c0 01 3c 01 06"), src=master), ORIG, 1.0)
    assert anomaly_names(out).count("dnp3.too_many_pending") == 20
    assert len(d._pending) == 500
    assert len(logs(out, "dnp3")) == 20
    assert len(logs(d.close(2.0), "dnp3")) == 500


def test_points_and_headers_capped():
    many = b"\xc0\x81\x00\x00" + bytes([1, 2, 0x01]) + struct.pack("<HH", 0, 599) + b"\x01" * 600
    recs = run((RESP, segmented(many, control=0x44, dst=1, src=10)))
    (pts,) = logs(recs, "dnp3_points")
    assert len(pts.points) == 256 and pts.to_dict()["points_truncated"] is True
    recs = run((ORIG, segmented(b"\xc0\x01" + b"\x3c\x01\x06" * 300)))
    assert "dnp3.too_many_objects" in anomaly_names(recs)
    assert len(logs(recs, "dnp3_objects")) == 256


def test_confirm_reject_and_probe():
    d = Dnp3Dissector({})
    assert d.feed(b"GET / HTTP/1.1\r\n\r\n", ORIG, 1.0) == [] and d.rejected
    d = Dnp3Dissector({})
    d.feed(INTEGRITY_POLL, ORIG, 1.0)
    assert d.confirmed and not d.rejected
    assert probe(INTEGRITY_POLL, ORIG)
    assert not probe(INTEGRITY_POLL[:8] + b"\x00\x00", ORIG)
    assert not probe(b"\x05\x64", ORIG)


def test_gap_resynchronises():
    d = Dnp3Dissector({})
    out = d.feed(INTEGRITY_POLL[:15], ORIG, 1.0) + d.gap(ORIG, 100, 1.0) + d.feed(INTEGRITY_POLL, ORIG, 1.0)
    assert anomaly_names(out) == ["dnp3.gap"]
    assert len(logs(out, "dnp3_objects")) == 4


def test_registration_ports_and_registry():
    (reg,) = REGISTRATIONS
    assert reg.name == "dnp3" and 20000 in reg.tcp_ports and 20000 in reg.udp_ports
    registry = default_registry()
    assert registry.by_port(TCP, 20000).name == "dnp3" and registry.by_port(UDP, 20000).name == "dnp3"
    assert registry.by_content(TCP, INTEGRITY_POLL, ORIG).name == "dnp3"
    assert isinstance(reg.factory({}), Dnp3Dissector)


class BrokenOnWrite(Dnp3Dissector):
    """A dissector with a bug on WRITE fragments, to see the safety net (the real one never raises)."""

    def _fragment(self, data, frame, direction, ts, out):
        if data[1] == 0x02:
            raise ValueError("bug")
        super()._fragment(data, frame, direction, ts, out)


def test_a_dissector_bug_is_a_fault_not_traffic():
    d = BrokenOnWrite({})
    out = d.feed(request(H("c0 02 32 01 07 01 00 00 00 00 00 00")), ORIG, 1.0)
    (fault,) = [r for r in out if isinstance(r, Anomaly)]
    assert isinstance(fault, DissectorFault) and fault.name == "dnp3.dissector_error" and fault.name not in ANOMALIES
    assert "ValueError: bug" in fault.reason and fault.direction == ORIG
    after = d.feed(INTEGRITY_POLL, ORIG, 1.0)       # the stream goes on
    assert logs(after, "dnp3_objects") and anomaly_names(after) == []


def test_records_are_json_serialisable():
    import json

    recs = run((ORIG, INTEGRITY_POLL), (RESP, AI_RESPONSE), (ORIG, CROB_SELECT))
    for r in recs:
        json.dumps(r.to_dict())
