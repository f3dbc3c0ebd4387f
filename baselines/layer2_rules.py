"""The layer-2 rules (arp_spoofing, duplicate_ip, mac_many_ips, arp_flood, new_mac): what they mean is
in baselines/layer2.py; this is the state they keep while a run goes on.

Every claim is an ARP sender's: who holds which address, and since when. IP traffic from local
addresses (Layer2Learner.flow) only tells ``new_mac`` a device is there.
"""
from __future__ import annotations

from typing import Any, Callable

from otsensor.baselines.addresses import subnet_of
from otsensor.baselines.inventory import OT_PROTOCOLS, FlowLike
from otsensor.baselines.layer2 import (FLOOD_GRATUITOUS, FLOOD_TOTAL, FLOOD_WINDOW_S, MANY_IPS, MAX_HOLDERS,
                                       MAX_KEYS, RECENT_S, REQUEST_MEMORY_S, Layer2Learner, claimable)
from otsensor.baselines.zones import Zones
from otsensor.dissectors.arp import REPLY, REQUEST, ArpMessage


class Layer2Rules:
    def __init__(self, raise_alert: Callable[..., None]) -> None:
        self.raise_alert = raise_alert
        self.seen = Layer2Learner()                          # this run's segments and router MACs
        self.holders: dict[str, dict[str, float]] = {}      # address -> MAC -> last ARP claim
        self.asked: dict[str, float] = {}                    # address -> last request for it
        self.windows: dict[str, list[float]] = {}            # MAC -> [window start, gratuitous, all]
        self.new_macs: set[str] = set()                     # MACs new_mac has looked at
        self.ot_subnets: tuple[dict, frozenset[str | None]] | None = None   # (baseline, its OT /24s)

    def observe_arp(self, baseline: dict[str, Any] | None, zones: Zones, msg: ArpMessage) -> None:
        self.seen.arp(msg)
        ts, mac, ip = msg.ts, msg.sender_mac, msg.sender_ip
        unsolicited = msg.gratuitous or (msg.opcode == REPLY and ts - self.asked.get(ip, -1e18) > REQUEST_MEMORY_S)
        self._flood(msg, unsolicited)
        if msg.kind == "request" and (msg.target_ip in self.asked or len(self.asked) < MAX_KEYS):
            self.asked[msg.target_ip] = ts
        learned = (baseline or {}).get("layer2")
        if learned is not None and msg.kind == "probe":
            self._new_mac(learned, baseline, zones, mac, msg.target_ip, msg)
        if not claimable(mac, ip) or msg.opcode not in (REQUEST, REPLY):
            return
        if learned is not None:
            self._new_mac(learned, baseline, zones, mac, ip, msg)
        holders = self.holders.get(ip)
        if holders is None:
            if len(self.holders) >= MAX_KEYS:
                return
            holders = self.holders[ip] = {}
        self._claim(learned or {}, msg, holders, unsolicited)
        if mac not in holders and len(holders) >= MAX_HOLDERS:
            del holders[min(holders, key=holders.__getitem__)]
        holders[mac] = ts
        self._many_ips(learned or {}, msg)

    def observe_flow(self, baseline: dict[str, Any] | None, zones: Zones, flow: FlowLike) -> None:
        learned = (baseline or {}).get("layer2")
        for mac, ip in self.seen.flow(flow):
            if learned is not None:
                self._new_mac(learned, baseline, zones, mac, ip, None, flow)

    # -- the rules -------------------------------------------------------------------------------------

    def _claim(self, learned: dict[str, Any], msg: ArpMessage, holders: dict[str, float], unsolicited: bool) -> None:
        ts, mac, ip = msg.ts, msg.sender_mac, msg.sender_ip
        others = sorted(m for m in holders if m != mac)
        recent = [m for m in others if ts - holders[m] <= RECENT_S]
        if recent:
            self.raise_alert("duplicate_ip", ts, f"{ip} claimed by {mac} and by {', '.join(recent)} within "
                             f"{RECENT_S:.0f}s", ip, record=msg, src=ip, protocol="arp",
                             baseline=f"{ip} held by {', '.join(recent)}",
                             fold={"kind": "allow", "rule": "duplicate_ip", "src": ip, "dst": None})
        bound = learned.get("bindings", {}).get(ip, [])
        previous = others or [m for m in bound if m != mac]
        if not previous:
            return
        severity = self._takeover_severity(msg, unsolicited, bool(recent), bool(bound) and mac not in bound,
                                           mac in holders)
        if severity is None:
            if not recent:   # a reply someone asked for, from the address's new holder: a re-assignment
                holders.clear()
            return
        how = "gratuitous ARP" if msg.gratuitous else "an unsolicited reply" if msg.opcode == REPLY else "a request"
        self.raise_alert("arp_spoofing", ts, f"{mac} took over {ip} (held by {', '.join(previous)}) with {how}"
                         + (f" to {msg.target_ip}" if msg.target_ip != ip else ""),
                         f"{ip}:{mac}", record=msg, src=ip, dst=msg.target_ip if msg.target_ip != ip else None,
                         protocol="arp", severity=severity, baseline=f"{ip} bound to {', '.join(previous)}",
                         fold={"kind": "binding", "ip": ip, "mac": mac})

    @staticmethod
    def _takeover_severity(msg: ArpMessage, unsolicited: bool, holder_alive: bool, against_baseline: bool,
                           held_before: bool) -> str | None:
        """How sure a claim on an address bound to another MAC is an attack; None: it is not one.

        A request rewrites its receivers' entry for the sender as a reply does (RFC 826), but every device
        sends requests: two devices requesting with one address are a duplicate_ip (a misconfiguration as
        often as an attack), and a request is a takeover only against the baseline."""
        if msg.opcode == REQUEST and not msg.gratuitous:
            unsolicited = False
        if unsolicited and (holder_alive or not msg.gratuitous):
            return "high"   # a reply nobody asked for, or gratuitous ARP while the holder still speaks
        if (unsolicited or against_baseline) and not held_before:
            return "medium"   # the holder is quiet: a replaced device, or a quiet hijack
        return None

    def _many_ips(self, learned: dict[str, Any], msg: ArpMessage) -> None:
        mac = msg.sender_mac
        claimed = self.seen.claims.get(mac, set())
        if len(claimed) < MANY_IPS or mac in learned.get("responders", []) or msg.sender_ip not in claimed:
            return
        self.raise_alert("mac_many_ips", msg.ts, f"{mac} claims {len(claimed)} addresses: "
                         f"{', '.join(sorted(claimed)[:10])}", mac, record=msg, src=msg.sender_ip, protocol="arp",
                         running_total=True, fold={"kind": "proxy_arp", "mac": mac})

    def _flood(self, msg: ArpMessage, unsolicited: bool) -> None:
        mac = msg.eth_src or msg.sender_mac
        window = self.windows.get(mac)
        if window is None or msg.ts - window[0] >= FLOOD_WINDOW_S:
            if window is None and len(self.windows) >= MAX_KEYS:
                self.windows = {m: w for m, w in self.windows.items() if msg.ts - w[0] < FLOOD_WINDOW_S}
                if len(self.windows) >= MAX_KEYS:
                    return
            window = self.windows[mac] = [msg.ts, 0.0, 0.0]
        window[1] += unsolicited
        window[2] += 1
        if window[1] == FLOOD_GRATUITOUS or window[2] == FLOOD_TOTAL:
            what = f"{int(window[1])} gratuitous or unsolicited" if window[1] >= FLOOD_GRATUITOUS else \
                f"{int(window[2])}"
            self.raise_alert("arp_flood", msg.ts, f"{mac} sent {what} ARP messages in {FLOOD_WINDOW_S:.0f}s",
                             mac, record=msg, src=msg.sender_ip if msg.sender_ip != "0.0.0.0" else None, protocol="arp",
                             running_total=True, fold={"kind": "allow", "rule": "arp_flood", "src": None, "dst": None})

    def _new_mac(self, learned: dict[str, Any], baseline: dict[str, Any] | None, zones: Zones, mac: str, ip: str,
                 msg: ArpMessage | None, flow: FlowLike | None = None) -> None:
        """``mac`` claimed or probed ``ip`` in ``msg``, or sent from it in ``flow``."""
        known = learned.get("macs")
        if not known or mac in known or mac in self.new_macs or len(self.new_macs) >= MAX_KEYS or \
                self.seen.is_router(mac):
            return   # (a baseline that saw no MAC saw no segment: it cannot tell a new one)
        self.new_macs.add(mac)   # asked once per MAC: a MAC outside the OT segments stays outside them
        if not self._in_ot_segment(baseline or {}, zones, ip):
            return
        where = f"zone {zones.zone_of(ip).name}" if zones.configured else f"subnet {subnet_of(ip)}"
        vlan = msg.vlan if msg is not None else flow.vlan if flow is not None else 0
        ts = msg.ts if msg is not None else flow.first_ts if flow is not None else 0.0
        self.raise_alert("new_mac", ts, f"new device {mac} at {ip} in {where}" + (f", VLAN {vlan}" if vlan else ""),
                         mac, flow, msg, src=ip, protocol="arp" if msg is not None else None,
                         fold={"kind": "mac", "mac": mac, "ip": ip})


    def _in_ot_segment(self, baseline: dict[str, Any], zones: Zones, ip: str) -> bool:
        """An address of an OT zone; without zones, of a /24 where the baseline has industrial assets."""
        if zones.configured:
            return zones.zone_of(ip).kind == "ot"
        if self.ot_subnets is None or self.ot_subnets[0] is not baseline:
            self.ot_subnets = (baseline, ot_subnets(baseline))
        return subnet_of(ip) in self.ot_subnets[1]


def ot_subnets(baseline: dict[str, Any]) -> frozenset[str | None]:
    """The /24s of the baseline's assets that serve or use an industrial protocol."""
    return frozenset(subnet_of(host) for host, a in baseline.get("assets", {}).items()
                     if (set(a.get("protocols_served", [])) | set(a.get("protocols_used", []))) & OT_PROTOCOLS)
