"""ARP decode (dissectors/arp.py through sensor/decode.decode_arp): frames as annotated hex, the bad-frame
table, every truncation, and tshark as the reference decoder for frames scapy builds."""
from __future__ import annotations

import json
import random
import shutil
import subprocess

import pytest

from otsensor.sensor.capture import linktypes as lt
from otsensor.sensor.decode import decode, decode_arp, Defragmenter

ETH = lt.ETHERNET
BROADCAST = "ff ff ff ff ff ff"
PLC = "00 1b 1b 00 00 10"
HMI = "00 0e 8c 00 00 20"


def frame(text: str) -> bytes:
    """Hex with ``#`` comments, as the other dissector tests write frames."""
    return bytes.fromhex(" ".join(line.split("#")[0] for line in text.splitlines()))


def arp_body(op: int, sha: str, spa: str, tha: str, tpa: str, htype: str = "00 01", ptype: str = "08 00",
             lengths: str = "06 04") -> str:
    return f"""
        {htype} {ptype}     # hardware type, protocol type
        {lengths}          # hardware and protocol address lengths
        00 {op:02x}        # opcode
        {sha} {spa}        # sender MAC and IPv4
        {tha} {tpa}        # target MAC and IPv4
    """


REQUEST = frame(f"""
    {BROADCAST} {HMI} 08 06    # Ethernet: to everyone, from the HMI, ARP
    {arp_body(1, HMI, "0a 01 01 14", "00 00 00 00 00 00", "0a 01 01 0a")}
    {"00 " * 18}               # padding to the 60-byte minimum
""")
REPLY = frame(f"{HMI} {PLC} 08 06 {arp_body(2, PLC, '0a 01 01 0a', HMI, '0a 01 01 14')}")
PROBE = frame(f"{BROADCAST} {PLC} 08 06 {arp_body(1, PLC, '00 00 00 00', '00 00 00 00 00 00', '0a 01 01 0a')}")
ANNOUNCE = frame(f"{BROADCAST} {PLC} 08 06 {arp_body(1, PLC, '0a 01 01 0a', '00 00 00 00 00 00', '0a 01 01 0a')}")
GRATUITOUS_REPLY = frame(f"{BROADCAST} {PLC} 08 06 {arp_body(2, PLC, '0a 01 01 0a', BROADCAST, '0a 01 01 0a')}")
VLAN = frame(f"{BROADCAST} {HMI} 81 00 00 0a 08 06 {arp_body(1, HMI, '0a 01 01 14', '00 00 00 00 00 00', '0a 01 01 0a')}")
QINQ = frame(f"""
    {BROADCAST} {HMI}
    88 a8 00 64     # service tag, VLAN 100
    81 00 20 0a     # customer tag, priority 1, VLAN 10
    08 06 {arp_body(1, HMI, '0a 01 01 14', '00 00 00 00 00 00', '0a 01 01 0a')}
""")
SLL = frame(f"""
    00 00 00 01 00 06 {HMI} 00 00 08 06     # Linux cooked: packet type, ARPHRD_ETHER, address length, address, ARP
    {arp_body(1, HMI, '0a 01 01 14', '00 00 00 00 00 00', '0a 01 01 0a')}
""")


def decoded(linktype: int, data: bytes):
    result = decode_arp(linktype, data, 1.5)
    assert result is not None, "not taken for ARP"
    return result


@pytest.mark.parametrize("data,linktype,row", [
    (REQUEST, ETH, {"operation": "request", "kind": "request", "sender_mac": "00:0e:8c:00:00:20",
                    "sender_ip": "10.1.1.20", "target_ip": "10.1.1.10", "eth_dst": "ff:ff:ff:ff:ff:ff",
                    "gratuitous": False}),
    (REPLY, ETH, {"operation": "reply", "kind": "reply", "sender_ip": "10.1.1.10", "target_mac": "00:0e:8c:00:00:20",
                  "eth_src": "00:1b:1b:00:00:10"}),
    (PROBE, ETH, {"kind": "probe", "sender_ip": "0.0.0.0", "gratuitous": False}),
    (ANNOUNCE, ETH, {"kind": "announcement", "gratuitous": True}),
    (GRATUITOUS_REPLY, ETH, {"operation": "reply", "kind": "gratuitous_reply", "gratuitous": True}),
    (VLAN, ETH, {"vlan": 10, "kind": "request"}),
    (QINQ, ETH, {"vlan": 100, "inner_vlan": 10, "sender_ip": "10.1.1.20"}),
    (SLL, lt.LINUX_SLL, {"eth_src": "00:0e:8c:00:00:20", "kind": "request"}),
], ids=["request", "reply", "probe", "announcement", "gratuitous_reply", "vlan", "qinq", "linux_sll"])
def test_arp_messages_decode_with_their_link_facts_and_kind(data, linktype, row):
    message, anomalies = decoded(linktype, data)
    assert anomalies == []
    got = message.to_dict()
    assert {k: got.get(k) for k in row} == row
    assert "eth_dst" not in got if linktype == lt.LINUX_SLL else got["eth_dst"]


def test_ip_frames_are_not_arp_and_arp_frames_are_not_ip():
    assert decode(ETH, REQUEST, Defragmenter(), 0.0) is None       # the IP path never sees ARP
    ip = frame(f"{PLC} {HMI} 08 00 45 00 00 14 00 00 00 00 40 06 00 00 0a 01 01 14 0a 01 01 0a")
    assert decode_arp(ETH, ip, 0.0) is None
    assert decode_arp(lt.RAW, REQUEST, 0.0) is None


@pytest.mark.parametrize("data,name,has_message", [
    (frame(f"{BROADCAST} {HMI} 08 06 00 01 08 00"), "arp.truncated", False),
    (REQUEST[:14 + 20], "arp.truncated", False),
    (frame(f"{BROADCAST} {HMI} 08 06 {arp_body(1, HMI, '0a 01 01 14', PLC, '0a 01 01 0a', lengths='08 04')}"),
     "arp.bad_address_length", False),
    (frame(f"{BROADCAST} {HMI} 08 06 {arp_body(1, HMI, '0a 01 01 14', PLC, '0a 01 01 0a', ptype='86 dd')}"),
     "arp.bad_protocol_type", False),
    (frame(f"{BROADCAST} {HMI} 08 06 {arp_body(1, HMI, '0a 01 01 14', PLC, '0a 01 01 0a', htype='00 20')}"),
     "arp.bad_hardware_type", True),
    (frame(f"{BROADCAST} {HMI} 08 06 {arp_body(7, HMI, '0a 01 01 14', PLC, '0a 01 01 0a')}"),
     "arp.unknown_opcode", True),
    (frame(f"{HMI} 02 66 66 66 66 66 08 06 {arp_body(2, PLC, '0a 01 01 0a', HMI, '0a 01 01 14')}"),
     "arp.sender_mac_mismatch", True),
    (frame(f"{BROADCAST} {BROADCAST} 08 06 {arp_body(2, BROADCAST, '0a 01 01 0a', HMI, '0a 01 01 14')}"),
     "arp.group_sender_mac", True),
    (frame(f"{BROADCAST} {PLC} 08 06 {arp_body(2, PLC, 'e0 00 00 01', HMI, '0a 01 01 14')}"),
     "arp.invalid_sender_ip", True),
    (frame(f"{BROADCAST} {PLC} 08 06 {arp_body(2, PLC, '00 00 00 00', HMI, '0a 01 01 14')}"),
     "arp.invalid_sender_ip", True),
], ids=["header", "body", "hlen", "ptype", "htype", "opcode", "mismatch", "group_sender", "multicast_ip",
        "zero_ip_reply"])
def test_malformed_arp_gives_its_anomaly(data, name, has_message):
    message, anomalies = decoded(ETH, data)
    assert [a.name for a in anomalies] == [name]
    assert anomalies[0].protocol == "arp" and anomalies[0].reason
    assert (message is not None) == has_message


def test_every_truncation_and_random_bodies_give_anomalies_never_an_exception():
    rng = random.Random(826)
    samples = [REQUEST[:n] for n in range(len(REQUEST) + 1)] + [QINQ[:n] for n in range(len(QINQ))]
    samples += [REQUEST[:14] + bytes(rng.randrange(256) for _ in range(rng.randrange(40))) for _ in range(2000)]
    for data in samples:
        result = decode_arp(ETH, data, 0.0)
        if result is not None:
            message, anomalies = result
            assert message is not None or anomalies


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_tshark_reads_the_same_arp_as_the_sensor(tmp_path):
    scapy = pytest.importorskip("scapy.all")
    rng = random.Random(5227)
    frames = []
    for i in range(60):
        op = rng.choice((1, 2))
        sha = "00:1b:1b:%02x:%02x:%02x" % (rng.randrange(256), rng.randrange(256), i)
        spa = rng.choice(("0.0.0.0", f"10.1.{rng.randrange(4)}.{rng.randrange(1, 254)}"))
        tpa = rng.choice((spa, f"10.1.1.{rng.randrange(1, 254)}"))
        pkt = scapy.Ether(src=sha, dst="ff:ff:ff:ff:ff:ff")
        if i % 3 == 0:
            pkt = pkt / scapy.Dot1Q(vlan=rng.randrange(1, 4095))
        frames.append(pkt / scapy.ARP(op=op, hwsrc=sha, psrc=spa, pdst=tpa))
    path = tmp_path / "arp.pcap"
    scapy.wrpcap(str(path), frames)
    fields = ("arp.opcode", "arp.src.hw_mac", "arp.src.proto_ipv4", "arp.dst.hw_mac", "arp.dst.proto_ipv4",
              "vlan.id", "arp.isgratuitous", "arp.isprobe", "arp.isannouncement")
    out = subprocess.run(["tshark", "-r", str(path), "-T", "fields", *sum((["-e", f] for f in fields), [])],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert len(out) == len(frames)
    for raw, line in zip(frames, out):
        opcode, sha, spa, tha, tpa, vlan, gratuitous, probe, announce = (line.split("\t") + [""] * 9)[:9]
        message, anomalies = decoded(ETH, bytes(raw))
        assert (message.opcode, message.sender_mac, message.sender_ip, message.target_mac, message.target_ip) == \
            (int(opcode), sha, spa, tha, tpa)
        assert message.vlan == (int(vlan) if vlan else 0)
        assert (message.kind == "probe") == (probe in ("1", "True"))
        assert (message.kind == "announcement") == (announce in ("1", "True"))
        assert message.gratuitous == (gratuitous in ("1", "True")), json.dumps(message.to_dict())
