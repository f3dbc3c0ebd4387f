"""ARP traffic of a small cell, built with scapy and written to pcaps: the benign routine and the attacks.

A gateway (10.1.1.1), a PLC (10.1.1.10) and an HMI (10.1.1.20) on one segment; the HMI refreshes the PLC's
and the gateway's entries every 30 s as Linux does, a new device comes up with RFC 5227 probes and an
announcement, and the HMI polls the PLC over Modbus/TCP (so the cell is an industrial subnet).
"""
from __future__ import annotations

from pathlib import Path

import pytest

scapy = pytest.importorskip("scapy.all")

BROADCAST = "ff:ff:ff:ff:ff:ff"
GATEWAY, GATEWAY_MAC = "10.1.1.1", "00:1d:9c:00:00:01"
PLC, PLC_MAC = "10.1.1.10", "00:1b:1b:00:00:10"
HMI, HMI_MAC = "10.1.1.20", "00:0e:8c:00:00:20"
LAPTOP, LAPTOP_MAC = "10.1.1.99", "00:1c:06:00:00:99"
ATTACKER_MAC = "02:66:66:66:66:66"
START = 1_800_000_000.0


def at(ts: float, packet):
    packet.time = ts
    return packet


def request(ts: float, mac: str, ip: str, target: str, vlan: int = 0):
    eth = scapy.Ether(src=mac, dst=BROADCAST)
    if vlan:
        eth = eth / scapy.Dot1Q(vlan=vlan)
    return at(ts, eth / scapy.ARP(op=1, hwsrc=mac, psrc=ip, pdst=target))


def reply(ts: float, mac: str, ip: str, to_mac: str, to_ip: str, eth_src: str | None = None):
    return at(ts, scapy.Ether(src=eth_src or mac, dst=to_mac) /
              scapy.ARP(op=2, hwsrc=mac, psrc=ip, hwdst=to_mac, pdst=to_ip))


def gratuitous(ts: float, mac: str, ip: str):
    return at(ts, scapy.Ether(src=mac, dst=BROADCAST) / scapy.ARP(op=2, hwsrc=mac, psrc=ip, hwdst=BROADCAST, pdst=ip))


def modbus_poll(ts: float, n: int) -> list:
    """One Modbus/TCP read of holding registers and its answer, HMI -> PLC, on a connection of its own."""
    sport = 40000 + n
    hmi = scapy.Ether(src=HMI_MAC, dst=PLC_MAC) / scapy.IP(src=HMI, dst=PLC)
    plc = scapy.Ether(src=PLC_MAC, dst=HMI_MAC) / scapy.IP(src=PLC, dst=HMI)
    query = bytes.fromhex(f"{n & 0xffff:04x}0000000601030000000a")
    answer = bytes.fromhex(f"{n & 0xffff:04x}00000017010314") + bytes(20)
    return [at(ts, hmi / scapy.TCP(sport=sport, dport=502, flags="S", seq=1)),
            at(ts + 0.001, plc / scapy.TCP(sport=502, dport=sport, flags="SA", seq=100, ack=2)),
            at(ts + 0.002, hmi / scapy.TCP(sport=sport, dport=502, flags="PA", seq=2, ack=101) / query),
            at(ts + 0.003, plc / scapy.TCP(sport=502, dport=sport, flags="PA", seq=101, ack=14) / answer),
            at(ts + 0.004, hmi / scapy.TCP(sport=sport, dport=502, flags="R", seq=14))]


def routine(start: float = START, minutes: int = 10) -> list:
    """The cell's normal ARP: the HMI refreshing its entries, each answered by its owner; Modbus polls."""
    packets = []
    for i in range(minutes * 2):
        t = start + 30 * i
        packets += [request(t, HMI_MAC, HMI, PLC), reply(t + 0.001, PLC_MAC, PLC, HMI_MAC, HMI),
                    request(t + 1, HMI_MAC, HMI, GATEWAY), reply(t + 1.001, GATEWAY_MAC, GATEWAY, HMI_MAC, HMI),
                    request(t + 2, PLC_MAC, PLC, HMI), reply(t + 2.001, HMI_MAC, HMI, PLC_MAC, PLC)]
        packets += modbus_poll(t + 5, i)
    return packets


def device_comes_up(start: float, mac: str, ip: str) -> list:
    """RFC 5227: three probes from 0.0.0.0, then two announcements."""
    return [request(start + i, mac, "0.0.0.0", ip) for i in range(3)] + \
        [at(start + 5 + i, scapy.Ether(src=mac, dst=BROADCAST) / scapy.ARP(op=1, hwsrc=mac, psrc=ip, pdst=ip))
         for i in range(2)]


def write(path: Path, packets: list) -> Path:
    scapy.wrpcap(str(path), sorted(packets, key=lambda p: float(p.time)))
    return path
