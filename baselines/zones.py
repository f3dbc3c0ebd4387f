"""Zones and conduits (IEC 62443), with Purdue levels: which network each host is in, and which flows are allowed.

A zones file (TOML) lists zones with CIDRs, a Purdue level (0-5, 3.5 for the
DMZ) and a kind (ot, dmz, it, external), and the allowed conduits between
them.  Addresses no zone lists fall back to defaults: private, loopback and
link-local space is ``unlisted`` (kind it, level 4: an unknown internal host
is treated as enterprise, the conservative choice for an OT boundary check),
public space is ``internet`` (kind external, level 5), and broadcast or
multicast destinations are ``broadcast`` (no boundary check applies).
"""
from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass, field
from typing import Any

from otsensor.baselines.documents import read_document
from otsensor.baselines.schema import (
    CIDRS, INTEGER, IP_ADDRESSES, NUMBER, STRING, Key, Section, at, between, did_you_mean, each, list_of, one_of,
    validate,
)

KINDS = ("ot", "dmz", "it", "external")
IT_SIDE = frozenset({"it", "external"})
CONTROL_LEVEL_MAX = 2.0       # Purdue levels 0-2: process, basic control, supervisory control


class ZonesError(Exception):
    """A zones file that cannot be used (the message names the file and the problem)."""


@dataclass(frozen=True)
class Zone:
    name: str
    level: float | None
    kind: str
    cidrs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Conduit:
    src: str
    dst: str
    protocols: frozenset[str] = frozenset()   # service names ("modbus") or "tcp/443"
    ports: frozenset[int] = frozenset()
    hosts: frozenset[str] = frozenset()       # hosts allowed on either end of the conduit

    def allows(self, protocol: str, port: int, orig: str, resp: str) -> bool:
        if self.protocols and protocol not in self.protocols:
            return False
        if self.ports and port not in self.ports:
            return False
        if self.hosts and orig not in self.hosts and resp not in self.hosts:
            return False
        return True


UNLISTED = Zone("unlisted", 4, "it")
INTERNET = Zone("internet", 5, "external")
BROADCAST = Zone("broadcast", None, "broadcast")


@dataclass
class Zones:
    zones: list[Zone] = field(default_factory=list)
    conduits: list[Conduit] = field(default_factory=list)
    source: str | None = None

    def __post_init__(self) -> None:
        nets = []
        for zone in self.zones:
            for cidr in zone.cidrs:
                nets.append((ipaddress.ip_network(cidr, strict=False), zone))
        # longest prefix first, so the most specific zone wins
        self._nets = sorted(nets, key=lambda nz: -nz[0].prefixlen)
        self._cache: dict[str, Zone] = {}
        self.by_name = {z.name: z for z in self.zones}

    @property
    def configured(self) -> bool:
        return bool(self.zones)

    def zone_of(self, ip: str) -> Zone:
        zone = self._cache.get(ip)
        if zone is None:
            zone = self._lookup(ip)
            if len(self._cache) < 1 << 16:
                self._cache[ip] = zone
        return zone

    def _lookup(self, ip: str) -> Zone:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return UNLISTED
        for net, zone in self._nets:
            if addr.version == net.version and addr in net:
                return zone
        if addr.is_multicast or (addr.version == 4 and (ip == "255.255.255.255" or ip.endswith(".255"))):
            return BROADCAST
        if addr.is_private or addr.is_loopback or addr.is_link_local:
            return UNLISTED
        return INTERNET

    def conduit_allows(self, src: Zone, dst: Zone, protocol: str, port: int, orig: str, resp: str) -> bool:
        if src.name == dst.name:
            return True
        return any(c.src == src.name and c.dst == dst.name and c.allows(protocol, port, orig, resp)
                   for c in self.conduits)

    def tag(self, orig: str, resp: str) -> dict[str, Any]:
        """The conn.jsonl fields for a flow's two ends."""
        a, b = self.zone_of(orig), self.zone_of(resp)
        return {"orig_zone": a.name, "orig_level": a.level, "resp_zone": b.name, "resp_level": b.level}


def is_control_zone(zone: Zone) -> bool:
    return zone.level is not None and zone.level <= CONTROL_LEVEL_MAX and zone.kind in ("ot", "dmz")


_NAME = "a zone name"


def _named(name: str) -> str | None:
    return None if name.strip() else "expected a name, not an empty string"



# The zones file: its two arrays of tables, every key they may hold.
ZONES_FILE = Section(sections={
    "zones": Section(array=True, keys={
        "name": Key(STRING, _named, required="a name for the zone"), "cidrs": Key(list_of(STRING), CIDRS),
        "level": Key(NUMBER, between(0, 5)), "kind": Key(STRING, one_of(KINDS))}),
    "conduits": Section(array=True, keys={
        "from": Key(STRING, required=_NAME), "to": Key(STRING, required=_NAME), "protocols": Key(list_of(STRING)),
        "ports": Key(list_of(INTEGER), each(between(0, 65535))), "hosts": Key(list_of(STRING), IP_ADDRESSES)}),
})


def load_zones(path: str) -> Zones:
    data = read_document(path, "zones file", "TOML", lambda raw: tomllib.loads(raw.decode()), ZonesError)
    return parse_zones(data, path)


def parse_zones(data: dict[str, Any], source: str = "<zones>") -> Zones:
    """Zones from a parsed zones file; ZonesError (``SOURCE: [[zones]] #1 kind: ...``) when it is wrong."""
    validate(data, ZONES_FILE, source, ZonesError)
    zones = [Zone(z["name"], None if z.get("level") is None else float(z["level"]), z.get("kind", "ot"),
                  tuple(z.get("cidrs", []))) for z in data.get("zones", [])]
    names = [z.name for z in zones] + [UNLISTED.name, INTERNET.name]
    conduits = []
    for i, c in enumerate(data.get("conduits", []), 1):
        for end in ("from", "to"):
            if c[end] not in names:
                why = f"unknown zone {c[end]!r}{did_you_mean(c[end], names)}"
                raise ZonesError(f"{source}: {at(f'[[conduits]] #{i}', end, why)}")
        conduits.append(Conduit(c["from"], c["to"], frozenset(c.get("protocols", [])),
                                frozenset(c.get("ports", [])), frozenset(c.get("hosts", []))))
    return Zones(zones, conduits, source)
