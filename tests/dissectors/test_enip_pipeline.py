"""EtherNet/IP through the sensor pipeline: non-ENIP traffic on 44818 is not reported as ENIP, a UDP
ListIdentity reply describes the device, and UDP 2222 I/O is tied to a Forward Open seen on TCP."""
from __future__ import annotations

import struct
from pathlib import Path

from tests.dissectors import test_enip_units as U
from tests.dissectors.enip_support import PCAPS, run_pipeline

CLIENT, PLC = bytes([10, 0, 0, 20]), bytes([10, 0, 0, 50])


def _checksum_free_ip(src: bytes, dst: bytes, proto: int, l4: bytes) -> bytes:
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 1, 0, 64, proto, 0, src, dst) + l4


def tcp_frame(src: bytes, sport: int, dst: bytes, dport: int, seq: int, ack: int, flags: int, data: bytes) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0) + data
    return b"\x00" * 12 + b"\x08\x00" + _checksum_free_ip(src, dst, 6, tcp)


def udp_frame(src: bytes, sport: int, dst: bytes, dport: int, data: bytes) -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data
    return b"\x00" * 12 + b"\x08\x00" + _checksum_free_ip(src, dst, 17, udp)


def write_pcap(path: Path, frames: list[bytes]) -> Path:
    with open(path, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        fh.writelines(struct.pack("<IIII", 1_700_000_000 + i, 0, len(frame), len(frame)) + frame for i, frame in enumerate(frames))
    return path


def tcp_session(sport: int, requests: list[bytes], replies: list[bytes]) -> list[bytes]:
    """Handshake, then request/reply pairs, then FIN both ways."""
    syn, ack, fin, psh = 0x02, 0x10, 0x01, 0x08
    c, s = 1000, 5000
    frames = [tcp_frame(CLIENT, sport, PLC, 44818, c, 0, syn, b""),
              tcp_frame(PLC, 44818, CLIENT, sport, s, c + 1, syn | ack, b"")]
    c, s = c + 1, s + 1
    for req, rsp in zip(requests, replies):
        frames.append(tcp_frame(CLIENT, sport, PLC, 44818, c, s, psh | ack, req))
        c += len(req)
        if rsp:
            frames.append(tcp_frame(PLC, 44818, CLIENT, sport, s, c, psh | ack, rsp))
            s += len(rsp)
    frames += [tcp_frame(CLIENT, sport, PLC, 44818, c, s, fin | ack, b""),
               tcp_frame(PLC, 44818, CLIENT, sport, s, c + 1, fin | ack, b"")]
    return frames


def test_http_on_44818_is_not_enip(tmp_path):
    http = [b"GET / HTTP/1.1\r\nHost: plc\r\n\r\n"]
    frames = tcp_session(40000, http, [b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"])
    frames.append(udp_frame(CLIENT, 40001, PLC, 2222, b"not implicit I/O at all"))
    rows, stats = run_pipeline(write_pcap(tmp_path / "http.pcap", frames))
    assert not rows.get("enip") and not rows.get("cip") and not rows.get("cip_io")
    assert not [a for a in rows.get("anomalies", []) if a["protocol"] in ("enip", "cip")]
    assert all(c["service"] is None for c in rows["conn"])
    assert stats["dissector_errors"] == 0


def test_forward_open_on_tcp_ties_io_on_udp(tmp_path):
    frames = tcp_session(40002, [U.REGISTER_REQ, U.FO_REQ], [U.REGISTER_RSP, U.FO_RSP])
    frames.append(udp_frame(CLIENT, 2222, PLC, 2222, U.h("0200 0280 0800 5a8fedc8 09000000 b100 0300 0900 ff")))
    rows, _stats = run_pipeline(write_pcap(tmp_path / "io.pcap", frames))
    (io,) = rows["cip_io"]
    assert io["connection_id"] == "0xc8ed8f5a" and io["sequence_number"] == 9 and io["data_length"] == 3
    assert io["fo_rpi_us"] == 2_000_000 and io["fo_connection_serial"] == "0xabd6" and io["fo_direction"] == "o_t"
    assert {c["service"] for c in rows["conn"]} == {"enip", "cip_io"}


def test_udp_list_identity_reply_describes_the_responder():
    rows, _stats = run_pipeline(PCAPS / "enip_engineering.pcap")
    udp = [r for r in rows["cip_identity"] if r["source"] == "list_identity" and r["id.orig_p"] != 44818
           and r["is_orig"] is False]
    assert udp and all(r["id.resp_h"] == "127.10.1.50" and r["id.resp_p"] == 44818 for r in udp)
    assert {r["product_name"] for r in udp} == {"1756-L61/B LOGIX5561"}


def test_generated_captures_cover_the_brief():
    """Every operation the generator was asked to record is in the captures, decoded."""
    rows = {}
    for name in ("enip_hmi.pcap", "enip_engineering.pcap"):
        for log, items in run_pipeline(PCAPS / name)[0].items():
            rows.setdefault(log, []).extend(items)
    commands = {r["enip_command"] for r in rows["enip"]}
    assert {"Register Session", "List Identity", "List Services", "List Interfaces", "Send RR Data",
            "Send Unit Data", "Unregister Session"} <= commands
    services = {r["cip_service"] for r in rows["cip"]}
    assert {"Read Tag", "Write Tag", "Read Tag Fragmented", "Write Tag Fragmented", "Multiple Service Packet",
            "Get Attributes All", "Get Attributes Single", "Set Attributes Single", "Forward Open",
            "Large Forward Open", "Forward Close", "Reset"} <= services
    assert any(r.get("cip_sequence_count") is not None and r["matched"] for r in rows["cip"])
    reset = [r for r in rows["cip"] if r["cip_service"] == "Reset"]
    assert reset and reset[0]["class_id"] == "0x01" and reset[0].get("enip_status_code") == "0x08"
