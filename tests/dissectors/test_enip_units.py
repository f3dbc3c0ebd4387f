"""Unit tests of the EtherNet/IP + CIP dissector: annotated frames (taken from the cpppo, pylogix and
pycomm3 captures in pcaps/), EPATH and name tables, op()/identity(), bad frames, rejection, caps."""
from __future__ import annotations

import json

import pytest

from otsensor.dissectors.base import Anomaly, Category, Direction, Tag
from otsensor.dissectors.enip import REGISTRATIONS, probe
from otsensor.dissectors.enip import tables as T
from otsensor.dissectors.enip.connections import IOConnections
from otsensor.dissectors.enip.dissector import MAX_PENDING, EnipDissector
from otsensor.dissectors.enip.encap import Header
from otsensor.dissectors.enip.epath import parse_path
from otsensor.dissectors.enip.iolink import CipIODissector
from otsensor.dissectors.enip.pickup import LIMIT
from otsensor.dissectors.enip.records import CipIdentity, CipIO, CipRecord, EnipRecord

ORIG, RESP = Direction.ORIG, Direction.RESP


def h(text: str) -> bytes:
    """Hex with '#' comments and whitespace, one field per line."""
    return bytes.fromhex("".join(line.split("#", 1)[0] for line in text.splitlines()).replace(" ", ""))


def encap(command: int, body: bytes, session: int = 0xBE01620A, status: int = 0, context: bytes = b"0" + b"\0" * 7
          ) -> bytes:
    return (command.to_bytes(2, "little") + len(body).to_bytes(2, "little") + session.to_bytes(4, "little")
            + status.to_bytes(4, "little") + context + b"\0\0\0\0" + body)


REGISTER_REQ = h("""
6500 0400          # Register Session, length 4
00000000 00000000  # session 0, status 0
0000000000000000   # sender context
00000000           # options
0100 0000          # protocol version 1, option flags 0
""")
REGISTER_RSP = h("6500 0400 0a6201be 00000000 0000000000000000 00000000 0100 0000")

# Send RR Data carrying Unconnected Send (0x52, class 6 instance 1) -> Read Tag 'Speed'[0], 10 elements
READ_REQ = h("""
6f00 2c00 0a6201be 00000000 3000000000000000 00000000
00000000 0800                 # interface handle 0, timeout 8
0200 0000 0000 b200 1c00      # 2 items: null address; unconnected data of 28 bytes
52 02 2006 2401               # Unconnected Send, path 2 words: class 0x06 instance 0x01
05 9d 0e00                    # priority/tick 5, timeout ticks 157, embedded size 14
4c 05 9105 5370656564 00 2800 # Read Tag, path 5 words: symbol 'Speed' + pad, member 0
0a00                          # 10 elements
0100 0100                     # route path 1 word, reserved; port 1 link 0
""")
READ_RSP = h("""
6f00 2a00 0a6201be 00000000 3000000000000000 00000000
00000000 0000 0200 0000 0000 b200 1a00
cc 00 00 00                   # Read Tag reply, status 0
c300                          # INT
0000 0000 0000 0000 0000 0000 0000 0000 0000 0000   # ten zeros
""")
# Multiple Service Packet inside Unconnected Send: read Speed[0], Level[1], Temp[0]; write Level[2] = 99
MSP_REQ = h("""
6f00 6a00 2e823c54 00000000 3000000000000000 00000000 00000000 0800 0200 0000 0000 b200 5a00
52 02 2006 2401 05 9d 4c00                                     # Unconnected Send, 76-byte request
0a 02 2002 2401                                                 # MSP to the message router
0400 0a00 1800 2600 3200                                        # 4 services at 10, 24, 38, 50
4c 05 9105 5370656564 00 2800 0100                              # Read Tag Speed[0]
4c 05 9105 4c6576656c 00 2801 0100                              # Read Tag Level[1]
4c 04 9104 54656d70 2800 0100                                   # Read Tag Temp[0]
4d 05 9105 4c6576656c 00 2802 c400 0100 63000000                # Write Tag Level[2] DINT 99
0100 0100
""")
MSP_RSP = h("""
6f00 3e00 2e823c54 00000000 3000000000000000 00000000 00000000 0000 0200 0000 0000 b200 2e00
8a 00 00 00 0400 0a00 1200 1c00 2600        # MSP reply, 4 replies
cc 00 00 00 c300 0a00                       # INT 10
cc 00 00 00 c400 00000000                   # DINT 0
cc 00 00 00 ca00 00000000                   # REAL 0.0
cd 00 00 00                                 # Write Tag ok
""")
# Forward Open (class 3, cyclic, RPI 2 s) to the message router, and its reply
FO_REQ = h("""
6f00 4000 4682f69a 00000000 0000000000000000 00000000 00000000 0800 0200 0000 0000 b200 3000
54 02 2006 2401         # Forward Open to the Connection Manager
05 9d                   # priority/tick, timeout ticks
d6ab0000 ffffffff       # O->T id, T->O id
d6ab 3412 01000000      # connection serial, originator vendor, originator serial
00 000000               # timeout multiplier, reserved
80841e00 fe43           # O->T RPI 2000000 us, parameters 0x43fe: point-to-point, 510 bytes
80841e00 fe43           # T->O RPI, parameters
a3                      # transport: server, application trigger, class 3
03 0100 2002 2401       # connection path: port 1 link 0, class 2, instance 1
""")
FO_RSP = h("""
6f00 2e00 4682f69a 00000000 0000000000000000 00000000 00000000 0000 0200 0000 0000 b200 1e00
d4 00 00 00
5a8fedc8 ffffffff d6ab 3412 01000000 80841e00 80841e00 00 00
""")
# connected Read Tag 'Speed'[0] x4 (sequence count 0) over the connection, and its reply
CONN_REQ = h("""
7000 2400 4682f69a 00000000 0000000000000000 00000000 00000000 0000 0200
a100 0400 5a8fedc8      # connected address: connection id 0xc8ed8f5a
b100 1000 0000          # connected data, 16 bytes; sequence count 0
4c 05 9105 5370656564 00 2800 0400
""")
CONN_RSP = h("""
7000 2400 4682f69a 00000000 0000000000000000 00000000 00000000 0000 0200
a100 0400 5a8fedc8 b100 1000 0000
cc 00 00 00 c300 0a00 1400 1e00 0000
""")
LIST_IDENTITY_RSP = h("""
6300 3c00 00000000 00000000 0000000000000000 00000000
0100 0c00 3600          # 1 item: CIP identity, 54 bytes
0100                    # encapsulation version 1
0002 af12 00000000 0000000000000000   # sockaddr (big-endian): AF_INET, port 44818, 0.0.0.0
0100 0e00 3600          # vendor 1, device type 14, product code 54
14 0b 6031 1a066c00     # revision 20.11, status 0x3160, serial 0x006c061a
14 313735362d4c36312f42204c4f47495835353631   # '1756-L61/B LOGIX5561'
ff                      # state
""")
# Get Attributes All on identity class 1 instance 1 (pylogix), unconnected, and its reply
GAA_REQ = h("""
6f00 1600 09592802 00000000 0000000000000000 00000000 00000000 0000 0200 0000 0000
b200 0600 01 02 2001 2401   # Get Attributes All, path class 0x01 instance 0x01
""")
GAA_RSP = h("""
6f00 3b00 09592802 00000000 0000000000000000 00000000 00000000 0000 0200 0000 0000 b200 2b00
81 00 00 00 0100 0e00 3600 14 0b 6031 1a066c00 14 313735362d4c36312f42204c4f47495835353631 ff 000000
""")


def run(pairs: list[tuple[bytes, Direction]], connections: IOConnections | None = None, datagram: bool = False
        ) -> list:
    d = EnipDissector(connections, datagram=datagram)
    out = []
    for i, (frame, direction) in enumerate(pairs):
        out += d.feed(frame, direction, 100.0 + i)
    out += d.close(200.0)
    return out


def of(records: list, cls: type) -> list:
    return [r for r in records if isinstance(r, cls)]


def rows(records: list) -> list:
    """Records as what they write (records compare by their rows)."""
    return [(r.LOG, r.ts, r.to_dict()) for r in records]


def test_register_session_pair_is_two_enip_records():
    recs = run([(REGISTER_REQ, ORIG), (REGISTER_RSP, RESP)])
    assert [r.to_dict()["enip_command"] for r in recs] == ["Register Session", "Register Session"]
    assert recs[1].to_dict()["session_handle"] == "0xbe01620a"
    assert recs[0].op().category == Category.SESSION
    assert recs[1].op() is None


def test_unconnected_read_tag_paired_with_values():
    recs = run([(READ_REQ, ORIG), (READ_RSP, RESP)])
    cip = of(recs, CipRecord)
    assert len(cip) == 1
    row = cip[0].to_dict()
    assert row["cip_service"] == "Read Tag" and row["cip_service_code"] == "0x4c"
    assert row["symbol"] == "Speed[0]" and row["route_path"] == "port 1 link 0"
    assert row["embedded_in"] == "unconnected_send" and row["matched"] is True
    assert row["elements"] == 10 and row["data_type"] == "INT" and row["values"] == [0] * 10
    op = cip[0].op()
    assert (op.category, op.space, op.start, op.count, op.ok) == (Category.READ, "Speed", 0, 10, True)
    json.dumps(row)


def test_multiple_service_packet_embedded_requests_and_replies():
    recs = run([(MSP_REQ, ORIG), (MSP_RSP, RESP)])
    cip = of(recs, CipRecord)
    assert [r.service_name for r in cip] == ["Multiple Service Packet", "Read Tag", "Read Tag", "Read Tag", "Write Tag"]
    assert [r.msp_index for r in cip] == [None, 0, 1, 2, 3]
    assert cip[0].to_dict()["msp_services"] == ["Read Tag", "Read Tag", "Read Tag", "Write Tag"]
    assert cip[1].to_dict()["values"] == [10]
    write = cip[4]
    assert write.symbol == "Level[2]" and write.to_dict()["values"] == [99]
    op = write.op()
    assert (op.category, op.values, op.space, op.start) == (Category.WRITE, (99,), "Level", 2)


def test_forward_open_connected_read_and_io_tie():
    connections = IOConnections()
    recs = run([(FO_REQ, ORIG), (FO_RSP, RESP), (CONN_REQ, ORIG), (CONN_RSP, RESP)], connections)
    fo, read = of(recs, CipRecord)
    row = fo.to_dict()
    assert row["cip_service"] == "Forward Open"
    assert row["o_t_connection_id"] == "0xc8ed8f5a" and row["t_o_connection_id"] == "0xffffffff"
    assert row["o_t_rpi_us"] == 2_000_000 and row["transport_class"] == 3
    assert row["o_t_size"] == 510 and row["o_t_connection_type"] == "point-to-point"
    assert row["connection_path"] == "port 1 link 0 class 0x02 instance 0x01"
    assert fo.op().category == Category.SESSION and ("o_t_rpi_us", 2_000_000) in fo.op().detail
    assert read.sequence_count == 0 and read.connection_id == 0xC8ED8F5A
    assert read.to_dict()["values"] == [10, 20, 30, 0]
    assert connections.lookup_io(0xC8ED8F5A) is not None
    io = CipIODissector(connections).feed(h("0200 0280 0800 5a8fedc8 07000000 b100 0400 0700 0102"), ORIG, 300.0)
    assert isinstance(io[0], CipIO)
    io_row = io[0].to_dict()
    assert io_row["connection_id"] == "0xc8ed8f5a" and io_row["sequence_number"] == 7
    assert io_row["io_data"] == "07000102" and io_row["fo_rpi_us"] == 2_000_000 and io_row["fo_transport_class"] == 3
    assert io[0].op().detail == (("direction", "o_t"), ("rpi_us", 2_000_000), ("transport_class", 3))


def test_list_identity_reply_gives_identity():
    recs = run([(encap(T.LIST_IDENTITY, b"", session=0), ORIG), (LIST_IDENTITY_RSP, RESP)], datagram=True)
    enip = of(recs, EnipRecord)
    assert enip[0].op().tags == frozenset({Tag.IDENTITY_READ}) and enip[0].op().category == Category.RECON
    (ident,) = of(recs, CipIdentity)
    row = ident.to_dict()
    assert row["vendor_name"] == "Rockwell Automation/Allen-Bradley"
    assert row["device_type_name"] == "Programmable Logic Controller"
    assert (row["product_code"], row["revision"], row["serial_number"]) == (54, "20.11", "0x006c061a")
    assert row["socket_port"] == 44818 and row["device_state"] == "0xff"
    side, facts = ident.identity()
    assert side == RESP
    assert facts == {"vendor": "Rockwell Automation/Allen-Bradley", "vendor_id": 1,
                     "device_type": "Programmable Logic Controller", "product_code": 54, "revision": "20.11",
                     "serial_number": "0x006c061a", "product_name": "1756-L61/B LOGIX5561"}


def test_get_attributes_all_identity_reply():
    recs = run([(GAA_REQ, ORIG), (GAA_RSP, RESP)])
    (rec,) = of(recs, CipRecord)
    assert rec.op().category == Category.RECON and Tag.IDENTITY_READ in rec.op().tags
    (ident,) = of(recs, CipIdentity)
    assert ident.identity()[1]["product_name"] == "1756-L61/B LOGIX5561"


def cip_request(service: int, path: bytes, data: bytes = b"") -> bytes:
    msg = bytes([service, len(path) // 2]) + path + data
    cpf = b"\0\0\0\0\0\0" + b"\x02\x00" + b"\0\0\0\0" + b"\xb2\x00" + len(msg).to_bytes(2, "little") + msg
    return encap(T.SEND_RR_DATA, cpf)


def cip_reply(service: int, status: int = 0, data: bytes = b"") -> bytes:
    msg = bytes([service | 0x80, 0, status, 0]) + data
    cpf = b"\0\0\0\0\0\0" + b"\x02\x00" + b"\0\0\0\0" + b"\xb2\x00" + len(msg).to_bytes(2, "little") + msg
    return encap(T.SEND_RR_DATA, cpf)


IDENTITY_PATH = bytes.fromhex("20012401")


@pytest.mark.parametrize("service, path, data, category, tags", [
    (0x05, IDENTITY_PATH, b"", Category.CONTROL, {Tag.RESTART}),                  # Reset identity
    (0x07, bytes.fromhex("208e2401"), b"", Category.CONTROL, {Tag.PLC_STOP}),     # Stop
    (0x06, bytes.fromhex("208e2401"), b"", Category.CONTROL, {Tag.PLC_START}),    # Start
    (0x10, bytes.fromhex("20f52401 3005"), b"\x01", Category.WRITE, set()),       # Set Attribute Single
    (0x10, bytes.fromhex("208b2401 3006"), b"\x01", Category.WRITE, {Tag.CLOCK_SET}),   # Logix clock
    (0x4c, bytes.fromhex("20372401"), b"", Category.PROGRAM, {Tag.PROGRAM_DOWNLOAD, Tag.FILE_TRANSFER}),
    (0x50, bytes.fromhex("20372401"), b"\x00\x01", Category.PROGRAM, {Tag.PROGRAM_DOWNLOAD, Tag.FILE_TRANSFER}),
    (0x02, bytes.fromhex("20372401"), b"\x00\x01", Category.PROGRAM, {Tag.PROGRAM_DOWNLOAD, Tag.FILE_TRANSFER}),
    (0x0e, bytes.fromhex("20012401 3007"), b"", Category.RECON, {Tag.IDENTITY_READ}),
    (0x08, bytes.fromhex("20682400"), b"\x01\x00", Category.PROGRAM, {Tag.PROGRAM_DOWNLOAD}),   # Create program
    (0x4d, bytes.fromhex("20a12401"), b"\x00\x01", Category.PROGRAM, {Tag.FIRMWARE}),            # NVS transfer
    (0x4c, bytes.fromhex("206c2501 0f82"), b"", Category.READ, set()),                             # Read Template
    (0x0e, bytes.fromhex("20f52401 3005"), b"", Category.READ, set()),
    (0x0a, bytes.fromhex("20022401"), b"\x00\x00", Category.OTHER, set()),
])
def test_op_table(service, path, data, category, tags):
    recs = run([(cip_request(service, path, data), ORIG), (cip_reply(service), RESP)])
    rec = of(recs, CipRecord)[0]
    op = rec.op()
    assert (op.category, set(op.tags), op.ok) == (category, tags, True)
    if category == Category.WRITE:
        assert op.values == (data.hex(),)


@pytest.mark.parametrize("hexpath, cls, inst, attr, tag, ports", [
    ("20012401", 0x01, 0x01, None, None, []),
    ("20f5 2401 3005", 0xF5, 1, 5, None, []),
    ("2100 0001 2501 0002 3003", 0x100, 0x200, 3, None, []),        # 16-bit class and instance
    ("9105 5370656564 00 2800", None, None, None, "Speed[0]", []),
    ("9107 50726f6772616d 00 9104 4d61696e 2902 0001 2803", None, None, None, "Program.Main[256,3]", []),
    ("0100", None, None, None, None, [(1, "0")]),
    ("1209 3139322e3136382e31 00 0102", None, None, None, None, [(2, "192.168.1"), (1, "2")]),
    ("34 04 0100 0e00 3600 14 0b", None, None, None, None, []),       # electronic key only
])
def test_epath_table(hexpath, cls, inst, attr, tag, ports):
    path = parse_path(bytes.fromhex(hexpath.replace(" ", "")))
    assert path.error is None
    assert (path.class_id, path.instance_id, path.attribute_id, path.tag, path.ports) == (cls, inst, attr, tag, ports)


@pytest.mark.parametrize("code, cls, symbolic, name", [
    (0x0E, 0x01, False, "Get Attributes Single"), (0x54, 0x06, False, "Forward Open"),
    (0x4E, 0x06, False, "Forward Close"), (0x4E, None, True, "Read Modify Write Tag"),
    (0x52, 0x06, False, "Unconnected Send"), (0x52, None, True, "Read Tag Fragmented"),
    (0x4B, 0x67, False, "Execute PCCC"), (0x4C, 0x37, False, "Initiate Download"),
    (0x3F, 0x01, False, "unknown-0x3f"), (0x60, 0x04, False, "unknown-0x60"),
])
def test_service_names(code, cls, symbolic, name):
    assert T.service_name(code, cls, symbolic) == name


def test_unknown_codes_have_named_fallbacks():
    rec = EnipRecord(1.0, True, Header(0x99, 0, 0, 0x42, b"\0" * 8, 0))
    assert rec.to_dict()["enip_command"] == "unknown-0x0099" and rec.to_dict()["enip_status"] == "unknown-0x42"


# A valid Register Session confirms the flow; each bad frame that follows must give the named anomaly.
BAD_FRAMES = [
    ("cpf count too high", encap(T.SEND_RR_DATA, h("00000000 0000 ff00")), "enip.bad_cpf"),
    ("cpf item beyond data", encap(T.SEND_RR_DATA, h("00000000 0000 0200 0000 0000 b200 ff00 0102")), "enip.bad_cpf"),
    ("empty request path is legal", cip_request(0x0e, b""), None),
    ("path words beyond message", encap(T.SEND_RR_DATA, h("00000000 0000 0200 0000 0000 b200 0400 0e09 2001")),
     "cip.truncated"),
    ("bad path segment", cip_request(0x0e, bytes.fromhex("e0012401")), "cip.bad_path"),
    ("path of 70 segments", cip_request(0x0e, bytes.fromhex("2001") * 70), "cip.path_too_long"),
    ("read tag without element count", cip_request(0x4c, bytes.fromhex("9103 414243 00")), "cip.bad_service_data"),
    ("forward open cut short", cip_request(0x54, bytes.fromhex("20062401"), b"\x05\x9d\x00"), "cip.bad_service_data"),
    ("msp offsets outside", cip_request(0x0a, bytes.fromhex("20022401"), h("0200 0600 ff00 0e00")), "cip.bad_msp"),
    ("msp too many services", cip_request(0x0a, bytes.fromhex("20022401"), (200).to_bytes(2, "little")
                                          + b"".join((402 + 4 * i).to_bytes(2, "little") for i in range(200))
                                          + b"\x0e\x01\x20\x01" * 200), "cip.msp_too_many"),
    ("identity item truncated", encap(T.LIST_IDENTITY, h("0100 0c00 0600 0100 0002 af12")), "enip.bad_identity"),
    ("unconnected send cut", cip_request(0x52, bytes.fromhex("20062401"), h("059d 2000 0e01")), "cip.truncated"),
    ("garbage after confirm", b"\xff" * 40 + REGISTER_REQ, "enip.resync"),
    ("orphan response", cip_reply(0x0e), "cip.unmatched_response"),
    ("connected data of only a sequence count", encap(T.SEND_UNIT_DATA, h("00000000 0000 0200 a100 0400 01000000"
                                                                          " b100 0200 0100")), None),
]


@pytest.mark.parametrize("label, frame, anomaly", BAD_FRAMES, ids=[b[0] for b in BAD_FRAMES])
def test_bad_frames(label, frame, anomaly):
    d = EnipDissector()
    d.feed(REGISTER_REQ, ORIG, 1.0)
    out = d.feed(frame, ORIG, 2.0) + d.close(3.0)
    names = {r.name for r in out if isinstance(r, Anomaly)}
    if anomaly is None:
        assert not names
    else:
        assert anomaly in names, f"{label}: {names}"
        assert anomaly in T.ANOMALIES
    for rec in out:
        json.dumps(rec.to_dict())
        rec.op()


@pytest.mark.parametrize("payload", [
    b"GET / HTTP/1.1\r\nHost: plc\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40,       # TLS client hello
    b"\x00\x01\x00\x00\x00\x06\x01\x03\x00\x00\x00\x0a" + b"\x00" * 20,   # Modbus/TCP
    encap(0x6F, b"\x00" * 16)[:4] + b"\x00" * 8 + b"\x00" * 8 + b"\x01\x00\x00\x00",  # options non-zero
])
def test_non_enip_on_44818_is_rejected(payload):
    assert not probe(payload, ORIG)
    d = EnipDissector()
    out = d.feed(payload, ORIG, 1.0)
    assert out == [] and not d.confirmed          # undecided: maybe a stream joined mid-message
    out += d.feed(payload * (LIMIT // len(payload) + 1), ORIG, 2.0)   # more of it: no ENIP message turns up
    assert d.rejected and not d.confirmed and out == []


def test_stream_joined_mid_message_is_picked_up():
    """The capture starts inside a Read Tag request: the tail is skipped and decoding starts at the
    next whole message, with one anomaly saying so; whole or byte-wise alike."""
    stream = READ_REQ[30:] + b"\x00" * 24 + READ_REQ     # tail, a NOP-looking run of zeros, a message
    whole = EnipDissector()
    out = whole.feed(stream, ORIG, 1.0) + whole.feed(READ_RSP, RESP, 2.0)
    bytewise = EnipDissector()
    out2 = [r for i in range(len(stream)) for r in bytewise.feed(stream[i:i + 1], ORIG, 1.0)]
    out2 += bytewise.feed(READ_RSP, RESP, 2.0)
    assert rows(out) == rows(out2) and whole.confirmed
    (anomaly,) = [r for r in out if isinstance(r, Anomaly)]
    assert anomaly.name == "enip.resync" and f"skipped {len(READ_REQ) - 30 + 24} bytes" in anomaly.reason
    assert [r.symbol for r in of(out, CipRecord)] == ["Speed[0]"]


def test_probe_accepts_real_first_payloads():
    assert probe(REGISTER_REQ, ORIG) and probe(READ_REQ, ORIG) and probe(encap(T.LIST_IDENTITY, b"", 0), ORIG)
    assert not probe(encap(T.LIST_IDENTITY, b"", 0, status=1), ORIG)   # requests carry status 0
    names = sorted({(r.name, tuple(sorted(r.tcp_ports)), tuple(sorted(r.udp_ports))) for r in REGISTRATIONS})
    assert names == [("cip_io", (), (2222,)), ("enip", (), (44818,)), ("enip", (44818,), ())]


def test_pending_requests_are_capped():
    d = EnipDissector()
    out = []
    for i in range(MAX_PENDING + 5):
        out += d.feed(cip_request(0x0e, IDENTITY_PATH + b"\x30\x01"), ORIG, float(i))
    names = [r.name for r in out if isinstance(r, Anomaly)]
    assert names.count("cip.too_many_pending") == 5
    unanswered = of(out, CipRecord)
    assert len(unanswered) == 5 and all(r.direction == "request" and not r.matched for r in unanswered)
    assert len(of(d.close(1e6), CipRecord)) == MAX_PENDING


def test_gap_resynchronises_on_next_header():
    d = EnipDissector()
    d.feed(REGISTER_REQ, ORIG, 1.0)
    out = d.gap(ORIG, 100, 2.0)
    out += d.feed(READ_REQ[10:] + REGISTER_REQ, ORIG, 3.0)
    names = [r.name for r in out if isinstance(r, Anomaly)]
    assert "enip.gap" in names
    assert [r.command for r in of(out, EnipRecord)] == [T.REGISTER_SESSION]


def test_encapsulation_error_answers_pending_request():
    reset = cip_request(0x05, IDENTITY_PATH)
    refused = encap(T.SEND_RR_DATA, b"", status=0x08)
    (rec,) = of(run([(reset, ORIG), (refused, RESP)]), CipRecord)
    op = rec.op()
    assert op.category == Category.CONTROL and Tag.RESTART in op.tags and op.ok is False


def test_io_dissector_rejects_non_io_and_flags_bad_after_confirm():
    d = CipIODissector()
    assert d.feed(b"hello world, not I/O", ORIG, 1.0) == [] and d.rejected
    d = CipIODissector()
    good = h("0200 0280 0800 01000000 01000000 b100 0200 0100")
    assert isinstance(d.feed(good, ORIG, 1.0)[0], CipIO)
    assert d.feed(b"\x02\x00", ORIG, 2.0)[0].name == "cip.bad_io"


def test_routed_identity_describes_the_module_behind_the_responder():
    """An ENBT answering a Get Attributes All routed to slot 0 describes the controller, not itself."""
    inner = bytes.fromhex("01 02 2001 2401")                                     # Get Attributes All, identity
    ucs = bytes.fromhex("059d") + len(inner).to_bytes(2, "little") + inner + bytes.fromhex("0100 0100")
    request = cip_request(0x52, bytes.fromhex("20062401"), ucs)
    reply = GAA_RSP
    (ident,) = of(run([(request, ORIG), (reply, RESP)]), CipIdentity)
    assert ident.to_dict()["route_path"] == "port 1 link 0"
    side, facts = ident.identity()
    assert side == RESP
    assert facts == {"module[port 1 link 0]": "Rockwell Automation/Allen-Bradley 1756-L61/B LOGIX5561 rev 20.11 "
                                              "serial 0x006c061a"}


# pylogix's Large Forward Open (frame 106 of enip_hmi.pcap) and its reply
LFO_REQ = h("""
6f00 4400 1258f7d8 00000000 0000000000000000 00000000 00000000 0000 0200 0000 0000 b200 3400
5b 02 2006 2401            # Large Forward Open to the Connection Manager
0a 0e                      # priority/tick 10, timeout ticks 14
02000020 f1eb0000          # O->T id 0x20000002, T->O id 0x0000ebf1
ba69 3713 2a000000         # serial 0x69ba, vendor 0x1337, originator serial 42
03 000000                  # timeout multiplier 3
34122000 a20f0042          # O->T RPI 2101812 us; parameters 0x42000fa2: 4002 bytes, variable, point-to-point
01402000 a20f0042          # T->O RPI 2113537 us
a3 03 0100 2002 2401       # class 3 server transport; path port 1 link 0, class 2, instance 1
""")
LFO_RSP = h("""
6f00 2e00 1258f7d8 00000000 0000000000000000 00000000 00000000 0000 0200 0000 0000 b200 1e00
db 00 00 00 fcf3e138 f1eb0000 ba69 3713 2a000000 34122000 01402000 00 00
""")


def test_large_forward_open():
    (rec,) = of(run([(LFO_REQ, ORIG), (LFO_RSP, RESP)]), CipRecord)
    row = rec.to_dict()
    assert row["cip_service"] == "Large Forward Open" and row["cip_status"] == "Success"
    assert (row["o_t_rpi_us"], row["t_o_rpi_us"], row["o_t_size"], row["t_o_size"]) == (2101812, 2113537, 4002, 4002)
    assert (row["o_t_connection_type"], row["o_t_priority"], row["transport_class"]) == ("point-to-point", "low", 3)
    assert row["o_t_connection_id"] == "0x38e1f3fc" and row["t_o_connection_id"] == "0x0000ebf1"
    assert (row["connection_serial"], row["originator_vendor_id"], row["originator_serial"]) == \
        ("0x69ba", 0x1337, "0x0000002a")
    assert row["timeout_multiplier"] == 3 and row["o_t_api_us"] == 2101812


def connected(conn_id: int, seq: int, cip: bytes) -> bytes:
    cpf = (b"\0\0\0\0\0\0\x02\x00\xa1\x00\x04\x00" + conn_id.to_bytes(4, "little") + b"\xb1\x00"
           + (len(cip) + 2).to_bytes(2, "little") + seq.to_bytes(2, "little") + cip)
    return encap(T.SEND_UNIT_DATA, cpf)


def test_connected_replies_pair_per_connection():
    """Two connections on one session both use sequence count 1; replies (on the T->O ids) come back
    in the opposite order and still pair with their own requests."""
    fo2_req = FO_REQ.replace(bytes.fromhex("d6ab3412"), bytes.fromhex("d7ab3412"))        # another serial
    fo2_rsp = FO_RSP.replace(bytes.fromhex("5a8fedc8ffffffff"), bytes.fromhex("11111111eeeeeeee"))
    read = bytes.fromhex("4c05 9105 5370656564 00 2800 0100")
    write = bytes.fromhex("4d05 9105 4c6576656c 00 2801 c400 0100 07000000")
    frames = [(FO_REQ, ORIG), (FO_RSP, RESP), (fo2_req, ORIG), (fo2_rsp, RESP),
              (connected(0xC8ED8F5A, 1, read), ORIG), (connected(0x11111111, 1, write), ORIG),
              (connected(0xEEEEEEEE, 1, bytes.fromhex("cd000000")), RESP),
              (connected(0xFFFFFFFF, 1, bytes.fromhex("cc000000 c300 2a00")), RESP)]
    recs = [r for r in of(run(frames), CipRecord) if r.sequence_count == 1]
    assert {(r.service_name, r.matched, r.status) for r in recs} == {("Read Tag", True, 0), ("Write Tag", True, 0)}
    assert [r.to_dict().get("values") for r in recs if r.service_name == "Read Tag"] == [[42]]


@pytest.mark.parametrize("attribute, data, expected", [
    (1, "0100", {"attribute_name": "vendor_id", "value": "1", "vendor_name": "Rockwell Automation/Allen-Bradley"}),
    (2, "0e00", {"attribute_name": "device_type", "value": "14", "device_type_name": "Programmable Logic Controller"}),
    (4, "140b", {"attribute_name": "revision", "value": "20.11"}),
    (6, "1a066c00", {"attribute_name": "serial_number", "value": "0x006c061a"}),
    (7, "03 414243", {"attribute_name": "product_name", "value": "ABC"}),
    (9, "0102", {"response_data": "0102"}),              # not in the table: kept as hex
    (6, "1a06", None),                                   # too short: flagged, no value
])
def test_identity_attribute_single(attribute, data, expected):
    path = IDENTITY_PATH + bytes([0x30, attribute])
    recs = run([(cip_request(0x0e, path), ORIG), (cip_reply(0x0e, 0, bytes.fromhex(data.replace(" ", ""))), RESP)])
    (rec,) = of(recs, CipRecord)
    info = rec.to_dict()
    if expected is None:
        assert "value" not in info and any(isinstance(r, Anomaly) and r.name == "cip.bad_service_data" for r in recs)
    else:
        assert {k: info.get(k) for k in expected} == expected


def test_datagram_anomalies_after_confirmation():
    d = EnipDissector(IOConnections(), datagram=True)
    assert of(d.feed(encap(T.LIST_IDENTITY, b"", 0), ORIG, 1.0), EnipRecord)
    assert [r.name for r in d.feed(b"\xff" * 30, ORIG, 2.0)] == ["enip.bad_header"]
    cut = d.feed(REGISTER_REQ[:-2], ORIG, 3.0)        # a header promising more than the datagram holds
    assert [r.name for r in cut] == ["enip.truncated"]
    assert of(d.feed(REGISTER_REQ, ORIG, 4.0), EnipRecord)   # the next datagram decodes
    assert all(name in T.ANOMALIES for name in ("enip.bad_header", "enip.truncated"))


PCCC_PATH = bytes.fromhex("20672401")          # class 0x67 (PCCC) instance 1
REQUESTOR = bytes.fromhex("07 4d00 e0312b3d")   # id length 7, vendor 0x4d, serial 0x3d2b31e0


@pytest.mark.parametrize("pccc, reply, function, category, tags, space, start, values, ok", [
    # CMD 0x0F FNC 0xAA: write 4 bytes to N7:0 (file 7, type 0x89 integer, element 0, sub 0) = 1, -2
    ("0f 00 3412 aa 04 07 89 00 00 0100 feff", "4f 00 3412", "Protected Typed Logical Write (3 address fields)",
     Category.WRITE, set(), "N7", 0, (1, -2), True),
    # FNC 0xA2: read 8 bytes of F8:3 (element 3)
    ("0f 00 3512 a2 08 08 8a 03 00", "4f 00 3512 0000803f 00000040", "Protected Typed Logical Read (3 address fields)",
     Category.READ, set(), "F8", 3, None, True),
    # file number above 254: 0xFF then a 16-bit value
    ("0f 00 3612 a2 02 ff 2c01 89 05 00", "4f 10 3612", "Protected Typed Logical Read (3 address fields)",
     Category.READ, set(), "N300", 5, None, False),                    # STS 0x10: refused
    ("0f 00 3712 80 01", "4f 00 3712", "Change Mode", Category.CONTROL, {Tag.MODE_CHANGE}, None, None, None, True),
    ("06 00 3812 03", "46 00 3812 00ee", "Diagnostic Status", Category.RECON, {Tag.IDENTITY_READ}, None, None, None,
     True),
    ("0f 00 3912 a3 ff94", "4f 00 3912", "unknown-0x0f/0xa3", Category.OTHER, set(), None, None, None, True),
])
def test_execute_pccc(pccc, reply, function, category, tags, space, start, values, ok):
    request = cip_request(0x4B, PCCC_PATH, REQUESTOR + bytes.fromhex(pccc.replace(" ", "")))
    response = cip_reply(0x4B, 0, REQUESTOR + bytes.fromhex(reply.replace(" ", "")))
    (rec,) = of(run([(request, ORIG), (response, RESP)]), CipRecord)
    info = rec.to_dict()
    assert rec.service_name == "Execute PCCC" and info["pccc_function"] == function
    assert info["pccc_requestor_serial"] == "0x3d2b31e0"
    op = rec.op()
    assert (op.function, op.category, set(op.tags)) == (f"PCCC {function}", category, tags)
    assert (op.space, op.start, op.values, op.ok) == (space, start, values, ok)


def test_execute_pccc_short_requestor_is_flagged():
    request = cip_request(0x4B, PCCC_PATH, bytes.fromhex("03 4d00"))
    recs = run([(request, ORIG)])
    assert [r.name for r in recs if isinstance(r, Anomaly)] == ["cip.bad_service_data"]


def test_io_probe_needs_exact_items():
    from otsensor.dissectors.enip.iolink import probe_io
    good = h("0200 0280 0800 01000000 01000000 b100 0200 0100")
    assert probe_io(good, ORIG)
    assert not probe_io(good + b"\x00", ORIG)            # a trailing byte: not an I/O datagram
    assert not probe_io(good[:-1], ORIG)
