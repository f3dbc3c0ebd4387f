"""ARP for IPv4 over Ethernet (RFC 826), with the address-conflict kinds of RFC 5227.

Sans-I/O like every dissector: the ARP body and the link facts of its frame (Ethernet source and
destination, VLAN tags) go in, an :class:`ArpMessage` and a closed set of anomalies come out. ARP has
no flow: the pipeline writes each message to arp.jsonl and hands it to the analyzers that learn
IP-to-MAC bindings (baselines/layer2.py).

A body too short or with other address sizes than Ethernet's 6 and IPv4's 4 cannot give addresses:
only an anomaly comes out. A body that parses but breaks a rule (an Ethernet source other than the
sender MAC, a group address as sender, an opcode ARP does not define) gives the message and an anomaly.
"""
from __future__ import annotations

import struct
from typing import Any, ClassVar, Final

from otsensor.dissectors.base import Anomaly, Column, Record, columns

PROTOCOL: Final = "arp"
HTYPE_ETHERNET: Final = 1
HTYPE_IEEE802: Final = 6        # RFC 1042: Token Ring / 802 networks; some stacks use it on Ethernet
PTYPE_IPV4: Final = 0x0800
ARP_BODY: Final = 28            # htype..tpa for Ethernet and IPv4 (RFC 826)
ZERO_MAC: Final = b"\x00" * 6
ZERO_IP: Final = b"\x00" * 4

# RFC 826 and RFC 903 (RARP), RFC 2390 (InARP); anything else is unknown-<n>
OPCODES: Final = {1: "request", 2: "reply", 3: "rarp-request", 4: "rarp-reply", 8: "inarp-request",
                  9: "inarp-reply"}
REQUEST: Final = 1
REPLY: Final = 2

# The closed anomaly set, public names (anomalies.jsonl ``name``)
TRUNCATED: Final = "arp.truncated"
BAD_HARDWARE_TYPE: Final = "arp.bad_hardware_type"
BAD_PROTOCOL_TYPE: Final = "arp.bad_protocol_type"
BAD_ADDRESS_LENGTH: Final = "arp.bad_address_length"
UNKNOWN_OPCODE: Final = "arp.unknown_opcode"
SENDER_MAC_MISMATCH: Final = "arp.sender_mac_mismatch"
GROUP_SENDER_MAC: Final = "arp.group_sender_mac"
INVALID_SENDER_IP: Final = "arp.invalid_sender_ip"
ANOMALIES: Final = frozenset({TRUNCATED, BAD_HARDWARE_TYPE, BAD_PROTOCOL_TYPE, BAD_ADDRESS_LENGTH, UNKNOWN_OPCODE,
                              SENDER_MAC_MISMATCH, GROUP_SENDER_MAC, INVALID_SENDER_IP})

_HEADER = struct.Struct("!HHBBH")   # htype, ptype, hlen, plen, opcode


def mac_str(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def ipv4_str(raw: bytes) -> str:
    return f"{raw[0]}.{raw[1]}.{raw[2]}.{raw[3]}"


def is_group_mac(raw: bytes) -> bool:
    """Broadcast or multicast (the I/G bit of the first octet): never one device."""
    return bool(raw) and bool(raw[0] & 1)


def arp_kind(opcode: int, sender_ip: bytes, target_ip: bytes, target_mac: bytes) -> str:
    """What an ARP message is for: RFC 5227's probe (a request from 0.0.0.0 checking an address is free)
    and announcement (a request for one's own address), a gratuitous reply (a reply about one's own
    address, which nobody asked for), or a plain request or reply."""
    if opcode == REQUEST:
        if sender_ip == target_ip:   # (0.0.0.0 asking for 0.0.0.0 too, as Wireshark reads it)
            return "announcement"
        return "probe" if sender_ip == ZERO_IP else "request"
    if opcode == REPLY:
        return "gratuitous_reply" if sender_ip == target_ip else "reply"
    return OPCODES.get(opcode, f"unknown-{opcode}")


class ArpMessage(Record):
    """One ARP message, with the frame's link facts: addresses as text, ``gratuitous`` when a host
    speaks about its own address (announcement or gratuitous reply)."""

    __slots__ = ("vlan", "inner_vlan", "eth_src", "eth_dst", "opcode", "op_name", "kind", "sender_mac",
                 "sender_ip", "target_mac", "target_ip", "gratuitous")
    LOG: ClassVar[str] = "arp"
    COLUMNS: ClassVar[tuple[Column, ...]] = columns(
        "vlan:count inner_vlan:count eth_src:string eth_dst:string operation:string kind:string "
        "sender_mac:string sender_ip:addr target_mac:string target_ip:addr gratuitous:bool")

    def __init__(self, ts: float, vlan: int, inner_vlan: int, eth_src: str, eth_dst: str, opcode: int, kind: str,
                 sender_mac: str, sender_ip: str, target_mac: str, target_ip: str) -> None:
        self.ts = ts
        self.vlan = vlan
        self.inner_vlan = inner_vlan
        self.eth_src = eth_src
        self.eth_dst = eth_dst
        self.opcode = opcode
        self.op_name = OPCODES.get(opcode, f"unknown-{opcode}")
        self.kind = kind
        self.sender_mac = sender_mac
        self.sender_ip = sender_ip
        self.target_mac = target_mac
        self.target_ip = target_ip
        self.gratuitous = kind in ("announcement", "gratuitous_reply")

    def fields(self) -> tuple[Any, ...]:
        """What ``ArpMessage(*fields)`` takes to build this message again (a worker sends it: sensor/parallel)."""
        return (self.ts, self.vlan, self.inner_vlan, self.eth_src, self.eth_dst, self.opcode, self.kind,
                self.sender_mac, self.sender_ip, self.target_mac, self.target_ip)

    def fill_row(self, row: dict[str, Any]) -> None:
        if self.vlan:
            row["vlan"] = self.vlan
        if self.inner_vlan:
            row["inner_vlan"] = self.inner_vlan
        if self.eth_src:
            row["eth_src"] = self.eth_src
        if self.eth_dst:
            row["eth_dst"] = self.eth_dst
        row["operation"] = self.op_name
        row["kind"] = self.kind
        row["sender_mac"] = self.sender_mac
        row["sender_ip"] = self.sender_ip
        row["target_mac"] = self.target_mac
        row["target_ip"] = self.target_ip
        row["gratuitous"] = self.gratuitous

    def __repr__(self) -> str:
        return (f"ArpMessage({self.ts!r}, {self.kind!r}, {self.sender_mac} {self.sender_ip} -> "
                f"{self.target_mac} {self.target_ip}, vlan={self.vlan})")


def parse_arp(body: bytes, ts: float, eth_src: bytes, eth_dst: bytes, vlan: int = 0,
              inner_vlan: int = 0) -> tuple[ArpMessage | None, list[Anomaly]]:
    """The ARP message in ``body`` (the frame past its Ethernet and VLAN headers, padding included) and
    its anomalies; ``eth_src``/``eth_dst`` are b"" when the link type has none (Linux cooked captures)."""
    if len(body) < 8:
        return None, [_anomaly(ts, TRUNCATED, f"{len(body)} bytes, the ARP header takes 8", vlan)]
    htype, ptype, hlen, plen, opcode = _HEADER.unpack_from(body, 0)
    if hlen != 6 or plen != 4:
        return None, [_anomaly(ts, BAD_ADDRESS_LENGTH, f"hardware length {hlen}, protocol length {plen} "
                               "(Ethernet and IPv4 take 6 and 4)", vlan)]
    if len(body) < ARP_BODY:
        return None, [_anomaly(ts, TRUNCATED, f"{len(body)} bytes, an Ethernet/IPv4 ARP message takes {ARP_BODY}",
                               vlan)]
    if ptype != PTYPE_IPV4:
        return None, [_anomaly(ts, BAD_PROTOCOL_TYPE, f"protocol type 0x{ptype:04x}, IPv4 is 0x0800", vlan)]
    sha, spa, tha, tpa = body[8:14], body[14:18], body[18:24], body[24:28]
    msg = ArpMessage(ts, vlan, inner_vlan, mac_str(eth_src) if len(eth_src) == 6 else "",
                     mac_str(eth_dst) if len(eth_dst) == 6 else "", opcode, arp_kind(opcode, spa, tpa, tha),
                     mac_str(sha), ipv4_str(spa), mac_str(tha), ipv4_str(tpa))
    return msg, _rule_breaks(msg, htype, opcode, sha, spa, eth_src)


def _rule_breaks(msg: ArpMessage, htype: int, opcode: int, sha: bytes, spa: bytes,
                 eth_src: bytes) -> list[Anomaly]:
    out = []
    ts, vlan = msg.ts, msg.vlan
    if htype not in (HTYPE_ETHERNET, HTYPE_IEEE802):
        out.append(_anomaly(ts, BAD_HARDWARE_TYPE, f"hardware type {htype}, Ethernet is 1", vlan, msg))
    if opcode not in OPCODES:
        out.append(_anomaly(ts, UNKNOWN_OPCODE, f"opcode {opcode}", vlan, msg))
    if len(eth_src) == 6 and eth_src != sha:
        # a host answers for itself; another source speaking for it is a spoofing tool or a proxy
        out.append(_anomaly(ts, SENDER_MAC_MISMATCH, f"Ethernet source {msg.eth_src} sends ARP for sender "
                            f"{msg.sender_mac}", vlan, msg))
    if is_group_mac(sha) or sha == ZERO_MAC:
        out.append(_anomaly(ts, GROUP_SENDER_MAC, f"sender MAC {msg.sender_mac} is no single device", vlan, msg))
    if spa[0] >= 224 or spa[0] == 127 or (spa == ZERO_IP and opcode != REQUEST):
        out.append(_anomaly(ts, INVALID_SENDER_IP, f"sender address {msg.sender_ip} in a {msg.op_name}", vlan, msg))
    return out


def _anomaly(ts: float, name: str, reason: str, vlan: int, msg: ArpMessage | None = None) -> Anomaly:
    detail: dict[str, Any] = {}
    if vlan:
        detail["vlan"] = vlan
    if msg is not None:
        detail.update(sender_mac=msg.sender_mac, sender_ip=msg.sender_ip, eth_src=msg.eth_src)
    return Anomaly(ts, PROTOCOL, name, reason, detail=detail or None)
