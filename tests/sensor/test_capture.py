"""Capture readers and L2-L4 decoding: every link type, pcapng, gzip, VLANs, IPv6, fragments, bad files."""
from __future__ import annotations

import gzip
import struct

import pytest
from scapy.all import IP, TCP, UDP, CookedLinux, Dot1Q, Ether, IPv6, Loopback, Raw, fragment  # type: ignore
from scapy.layers.l2 import CookedLinuxV2  # type: ignore

from otsensor.sensor.capture import CaptureError, open_capture
from otsensor.sensor.decode import Defragmenter, decode

MODBUS_REQ = bytes.fromhex("0001 0000 0006 01 03 0000 0002")


def modbus_ip(src="10.1.1.1", dst="10.1.1.2", sport=40000, flags="PA", seq=1):
    return IP(src=src, dst=dst) / TCP(sport=sport, dport=502, flags=flags, seq=seq) / Raw(MODBUS_REQ)


def pcap_bytes(linktype: int, frames: list[bytes], endian: str = "<", nano: bool = False) -> bytes:
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)]
    for i, frame in enumerate(frames):
        frac = 500_000_000 if nano else 500_000
        out.append(struct.pack(endian + "IIII", 1_700_000_000 + i, frac, len(frame), len(frame)) + frame)
    return b"".join(out)


def pcapng_block(btype: int, body: bytes) -> bytes:
    body += b"\x00" * (-len(body) % 4)
    n = len(body) + 12
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


def pcapng_bytes(interfaces: list[tuple[int, int | None]], packets: list[tuple[int, int, bytes]]) -> bytes:
    """interfaces: (linktype, tsresol option or None); packets: (interface, ticks, frame)."""
    shb = pcapng_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    idbs = []
    for linktype, tsresol in interfaces:
        opts = b""
        if tsresol is not None:
            opts = struct.pack("<HHB3x", 9, 1, tsresol) + struct.pack("<HH", 0, 0)
        idbs.append(pcapng_block(1, struct.pack("<HHI", linktype, 0, 65535) + opts))
    epbs = [pcapng_block(6, struct.pack("<IIIII", ifid, ticks >> 32, ticks & 0xFFFFFFFF, len(f), len(f)) + f)
            for ifid, ticks, f in packets]
    return shb + b"".join(idbs) + b"".join(epbs)


def read_all(path) -> list[tuple[float, int, bytes]]:
    with open_capture(str(path)) as reader:
        return list(reader)


def decoded_tcp(linktype: int, frame: bytes):
    p = decode(linktype, frame, Defragmenter(), 0.0)
    assert p is not None
    return p


LINK_FRAMES = {
    1: lambda: bytes(Ether(src="00:1b:1b:01:02:03") / modbus_ip()),
    113: lambda: bytes(CookedLinux(src=b"\x00\x1b\x1b\x01\x02\x03", lladdrlen=6, proto=0x0800) / modbus_ip()),
    276: lambda: bytes(CookedLinuxV2(src=b"\x00\x1b\x1b\x01\x02\x03", lladdrlen=6, proto=0x0800) / modbus_ip()),
    101: lambda: bytes(modbus_ip()),
    228: lambda: bytes(modbus_ip()),
    0: lambda: bytes(Loopback(type=2) / modbus_ip()),
    108: lambda: struct.pack("!I", 2) + bytes(modbus_ip()),
}


@pytest.mark.parametrize("linktype", sorted(LINK_FRAMES))
def test_every_link_type_decodes_to_the_tcp_payload(tmp_path, linktype):
    path = tmp_path / "x.pcap"
    path.write_bytes(pcap_bytes(linktype, [LINK_FRAMES[linktype]()]))
    [(ts, lt, frame)] = read_all(path)
    assert ts == pytest.approx(1_700_000_000.5)
    p = decoded_tcp(lt, frame)
    assert p[3] == bytes([10, 1, 1, 1]) and p[4] == bytes([10, 1, 1, 2])
    assert (p[5], p[7], p[10]) == (6, 502, MODBUS_REQ)
    if linktype in (1, 113, 276):
        assert p[2] == bytes.fromhex("001b1b010203")


@pytest.mark.parametrize("endian,nano", [("<", False), (">", False), ("<", True), (">", True)])
def test_pcap_byte_orders_and_resolutions(tmp_path, endian, nano):
    path = tmp_path / "x.pcap"
    path.write_bytes(pcap_bytes(1, [bytes(Ether() / modbus_ip())] * 3, endian, nano))
    got = read_all(path)
    assert len(got) == 3
    assert got[2][0] == pytest.approx(1_700_000_002.5)


def test_pcapng_several_interfaces_and_link_types(tmp_path):
    eth = bytes(Ether() / modbus_ip(src="10.0.0.1"))
    raw = bytes(modbus_ip(src="10.0.0.2"))
    data = pcapng_bytes([(1, None), (101, 9)],
                        [(0, 1_700_000_000_250_000, eth), (1, 1_700_000_000_500_000_000, raw)])
    path = tmp_path / "x.pcapng"
    path.write_bytes(data)
    got = read_all(path)
    assert [lt for _, lt, _ in got] == [1, 101]
    assert got[0][0] == pytest.approx(1_700_000_000.25)
    assert got[1][0] == pytest.approx(1_700_000_000.5)
    assert decoded_tcp(got[1][1], got[1][2])[3] == bytes([10, 0, 0, 2])


def test_gzip_compressed_capture(tmp_path):
    path = tmp_path / "x.pcap.gz"
    path.write_bytes(gzip.compress(pcap_bytes(1, [bytes(Ether() / modbus_ip())] * 5)))
    assert len(read_all(path)) == 5


def test_vlan_and_qinq_tags():
    single = bytes(Ether() / Dot1Q(vlan=10) / modbus_ip())
    double = bytes(Ether(type=0x88A8) / Dot1Q(vlan=100) / Dot1Q(vlan=200) / modbus_ip())
    assert decoded_tcp(1, single)[:2] == (10, 0)
    p = decoded_tcp(1, double)
    assert p[:2] == (100, 200) and p[10] == MODBUS_REQ


def test_ipv6_tcp():
    frame = bytes(Ether() / IPv6(src="fd00::1", dst="fd00::2") / TCP(sport=40000, dport=502, flags="PA") / Raw(MODBUS_REQ))
    p = decoded_tcp(1, frame)
    assert len(p[3]) == 16 and p[10] == MODBUS_REQ


def test_ipv4_fragments_are_reassembled_in_any_order():
    datagram = IP(src="10.0.0.1", dst="10.0.0.2", id=77) / UDP(sport=20000, dport=20000) / Raw(b"\x05\x64" + b"x" * 120)
    frags = [bytes(Ether() / f) for f in fragment(datagram, fragsize=40)]
    assert len(frags) >= 3
    defrag = Defragmenter()
    results = [decode(1, f, defrag, 0.0) for f in reversed(frags)]
    assert results[:-1] == [None] * (len(frags) - 1)
    assert results[-1][10] == b"\x05\x64" + b"x" * 120
    assert defrag.reassembled == 1 and not defrag.pending


def test_fragment_table_is_bounded():
    defrag = Defragmenter(max_datagrams=8)
    for i in range(100):
        frag = IP(src="10.0.0.1", dst="10.0.0.2", id=i, flags="MF") / Raw(b"a" * 16)
        decode(101, bytes(frag), defrag, float(i))
    assert len(defrag.pending) <= 8 and defrag.dropped >= 92


@pytest.mark.parametrize("content,message", [
    (b"", "empty file"),
    (b"hello world, not a capture", "not a pcap or pcapng"),
    (pcap_bytes(147, []), "unsupported link type 147"),
    (b"\xd4\xc3\xb2\xa1\x02\x00", "global header is truncated"),
])
def test_bad_files_raise_one_clear_error(tmp_path, content, message):
    path = tmp_path / "bad.pcap"
    path.write_bytes(content)
    with pytest.raises(CaptureError) as info:
        read_all(path)
    assert message in str(info.value) and str(path) in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(CaptureError, match="no such file"):
        open_capture(str(tmp_path / "nope.pcap"))


@pytest.mark.parametrize("cut", [10, 30])
def test_truncated_capture_keeps_what_came_before(tmp_path, cut):
    data = pcap_bytes(1, [bytes(Ether() / modbus_ip())] * 4)
    path = tmp_path / "cut.pcap"
    path.write_bytes(data[:-cut])
    reader = open_capture(str(path))
    got = list(reader)
    assert len(got) == 3
    assert reader.truncated and "truncated at byte" in reader.truncated and "after 3 packets" in reader.truncated
