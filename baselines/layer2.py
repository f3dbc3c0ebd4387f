"""Layer 2: the IP-to-MAC bindings of the monitored segments, learned, and the rules that watch them.

ARP is the authority on who holds an address: every ARP sender states a binding (RFC 826), and ARP never
crosses a router, so an address ARP mentions lives on a segment the sensor sees. IP traffic adds the
MACs that send from such local addresses; it never states a binding on its own, because a router's MAC
is the Ethernet source of every address routed through it (a MAC sending from more than
``ROUTER_SOURCES`` local addresses is taken for a router, and its IP traffic binds nothing).

:class:`Layer2Learner` keeps the facts (for the baseline's ``layer2`` section and a checkpoint);
:class:`Layer2Rules` raises, from ARP claims only:

- ``arp_spoofing``: a reply or gratuitous ARP gives an address a MAC other than the one it is bound to
  (bound in the baseline, or claimed in this run), either as a reply nobody asked for or while the old
  MAC is still claiming it; a change against the baseline alone (a replaced device) is medium;
- ``duplicate_ip``: two MACs claim one address within ``RECENT_S``;
- ``mac_many_ips``: one MAC claims ``MANY_IPS`` addresses (a proxy-ARP responder the baseline learned
  is exempt);
- ``arp_flood``: one MAC sends ``FLOOD_GRATUITOUS`` gratuitous or unsolicited ARP, or ``FLOOD_TOTAL``
  ARP messages, in ``FLOOD_WINDOW_S``;
- ``new_mac`` (with a baseline that has a ``layer2`` section): a MAC never seen, claiming or sending
  from an address of an OT zone (without zones: of a subnet where the baseline has industrial assets).

Broadcast and multicast MACs, and addresses that are no host (0.0.0.0, multicast, broadcast), bind
nothing and are never assets.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from otsensor.baselines.addresses import is_host, subnet_of
from otsensor.baselines.inventory import FlowLike, mac_vendor
from otsensor.dissectors.arp import REPLY, REQUEST, ArpMessage, is_group_mac, mac_str

MAX_KEYS = 20_000          # addresses, MACs, subnets kept
MAX_IPS_PER_MAC = 64
MAX_HOLDERS = 16           # MACs remembered per address (a flood of forged senders keeps the latest)
RECENT_S = 60.0            # a MAC that claimed an address this recently still holds it
REQUEST_MEMORY_S = 5.0     # a reply answers a request for its address seen this recently
FLOOD_WINDOW_S = 10.0
FLOOD_GRATUITOUS = 20      # gratuitous ARP or unsolicited replies from one MAC in one window
FLOOD_TOTAL = 200          # ARP messages of any kind from one MAC in one window
MANY_IPS = 5               # addresses one MAC claims before it is "one MAC claiming many IPs"
ROUTER_SOURCES = 8         # local addresses one MAC sends IP from before it is taken for a router


def unicast(mac: str) -> bool:
    return mac != "00:00:00:00:00:00" and not is_group_mac(bytes.fromhex(mac[:2]))


@lru_cache(maxsize=65536)
def local_key(vlan: int, ip: str) -> str | None:
    """The segment an address is on: its /24 and VLAN, as text ("10.0.0.0/24" or "10.0.0.0/24 vlan 10")."""
    subnet = subnet_of(ip)
    if subnet is None:
        return None
    return subnet if not vlan else f"{subnet} vlan {vlan}"


class Layer2Learner:
    """What the segments show: ARP bindings (address -> MACs), every MAC with its addresses and VLANs,
    the segments ARP was seen on, and the MACs that answer for many addresses (proxy ARP)."""

    def __init__(self) -> None:
        self.bindings: dict[str, set[str]] = {}       # address -> MACs that claimed it in ARP
        self.macs: dict[str, dict[str, set]] = {}     # MAC -> {"ips": addresses, "vlans": VLANs}
        self.claims: dict[str, set[str]] = {}         # MAC -> addresses it claimed in ARP
        self.ip_sources: dict[str, set[str]] = {}     # MAC -> local addresses it sent IP from
        self.segments: set[str] = set()               # local_key of ARP senders and targets

    def arp(self, msg: ArpMessage) -> None:
        for ip in (msg.sender_ip, msg.target_ip):
            key = local_key(msg.vlan, ip)
            if key is not None and len(self.segments) < MAX_KEYS:
                self.segments.add(key)
        if msg.kind == "probe":
            self._mac(msg.sender_mac, None, msg.vlan)
        elif claimable(msg.sender_mac, msg.sender_ip) and msg.opcode in (REQUEST, REPLY):
            self._mac(msg.sender_mac, msg.sender_ip, msg.vlan)
            _add(self.bindings, msg.sender_ip, msg.sender_mac, MAX_KEYS)
            _add(self.claims, msg.sender_mac, msg.sender_ip, MAX_KEYS)

    def flow(self, flow: FlowLike) -> list[tuple[str, str]]:
        """The (MAC, address) pairs a flow's local ends show; returns those of MACs not taken for routers."""
        shown: list[tuple[str, str]] = []
        if not self.segments:   # no ARP seen (yet): no address is known to be local
            return shown
        for side, ip in ((0, flow.orig_h), (1, flow.resp_h)):
            raw = flow.macs[side]
            key = local_key(flow.vlan, ip)
            if len(raw) != 6 or key not in self.segments or not is_host(ip):
                continue
            mac = mac_str(raw)
            if not unicast(mac):
                continue
            _add(self.ip_sources, mac, ip, MAX_KEYS)
            if self.is_router(mac):
                continue
            self._mac(mac, ip, flow.vlan)
            shown.append((mac, ip))
        return shown

    def is_router(self, mac: str) -> bool:
        return len(self.ip_sources.get(mac, ())) > ROUTER_SOURCES

    def _mac(self, mac: str, ip: str | None, vlan: int) -> None:
        entry = self.macs.get(mac)
        if entry is None:
            if len(self.macs) >= MAX_KEYS or not unicast(mac):
                return
            entry = self.macs[mac] = {"ips": set(), "vlans": set()}
        if ip is not None and len(entry["ips"]) < MAX_IPS_PER_MAC:
            entry["ips"].add(ip)
        entry["vlans"].add(vlan)

    def responders(self) -> list[str]:
        """MACs that claimed many addresses: proxy-ARP routers, while learning (exempt from mac_many_ips)."""
        return sorted(mac for mac, ips in self.claims.items() if len(ips) >= MANY_IPS)

    # -- documents ---------------------------------------------------------------------------------

    def to_baseline(self) -> dict[str, Any]:
        return {
            "bindings": {ip: sorted(macs) for ip, macs in sorted(self.bindings.items())},
            "macs": {mac: {"ips": sorted(e["ips"]), "vlans": sorted(e["vlans"]), "vendor": mac_vendor(mac)}
                     for mac, e in sorted(self.macs.items())},
            "responders": self.responders(),
            "routers": sorted(mac for mac in self.ip_sources if self.is_router(mac)),
        }

    def to_state(self) -> dict[str, Any]:
        return {"bindings": _lists(self.bindings), "claims": _lists(self.claims),
                "ip_sources": _lists(self.ip_sources), "segments": sorted(self.segments),
                "macs": {mac: {"ips": sorted(e["ips"]), "vlans": sorted(e["vlans"])} for mac, e in self.macs.items()}}

    def restore(self, state: dict[str, Any]) -> None:
        """Take back what :meth:`to_state` wrote (KeyError, TypeError or ValueError when it is not that)."""
        self.bindings = _sets(state["bindings"])
        self.claims = _sets(state["claims"])
        self.ip_sources = _sets(state["ip_sources"])
        self.segments = {str(s) for s in state["segments"]}
        self.macs = {str(mac): {"ips": {str(i) for i in e["ips"]}, "vlans": {int(v) for v in e["vlans"]}}
                     for mac, e in state["macs"].items()}


def claimable(mac: str, ip: str) -> bool:
    """Whether an ARP sender states a binding: one device (unicast MAC) and one host address."""
    return unicast(mac) and ip != "0.0.0.0" and is_host(ip) and not ip.endswith(".255")


def _add(index: dict[str, set[str]], key: str, value: str, limit: int) -> None:
    values = index.get(key)
    if values is None:
        if len(index) >= limit:
            return
        values = index[key] = set()
    if len(values) < MAX_IPS_PER_MAC:
        values.add(value)


def _lists(index: dict[str, set[str]]) -> dict[str, list[str]]:
    return {k: sorted(v) for k, v in index.items()}


def _sets(state: dict[str, Any]) -> dict[str, set[str]]:
    return {str(k): {str(v) for v in values} for k, values in state.items()}


# `otsensor baseline accept`: what each layer-2 alert folds into the baseline (baselines/diff.py)
def _fold_binding(baseline: dict[str, Any], fold: dict[str, Any]) -> None:
    macs = _section(baseline)["bindings"].setdefault(fold["ip"], [])
    if fold["mac"] not in macs:
        macs.append(fold["mac"])


def _fold_mac(baseline: dict[str, Any], fold: dict[str, Any]) -> None:
    _section(baseline)["macs"].setdefault(fold["mac"], {"ips": [fold["ip"]], "vlans": [], "vendor": None})


def _fold_proxy_arp(baseline: dict[str, Any], fold: dict[str, Any]) -> None:
    responders = _section(baseline)["responders"]
    if fold["mac"] not in responders:
        responders.append(fold["mac"])


def _section(baseline: dict[str, Any]) -> dict[str, Any]:
    section = baseline.setdefault("layer2", {})
    for key in ("bindings", "macs"):
        section.setdefault(key, {})
    for key in ("responders", "routers"):
        section.setdefault(key, [])
    return section


FOLDERS = {"binding": _fold_binding, "mac": _fold_mac, "proxy_arp": _fold_proxy_arp}
