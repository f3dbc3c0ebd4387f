"""What is the Internet to a plant: public addresses outside the plant's own public space.

Many plants and labs are numbered from public space (a company's or a
university's own range), so "public" cannot mean "the Internet".  Without a
zones file the sensor learns the plant's public space from the industrial
conversations it sees: a public /16 (IPv6: a /48, a site's prefix) is the
plant's when a host in it serves an industrial protocol to a client in the
same /16.  A public address outside every such scope is the Internet, even
when it speaks an industrial protocol itself: that is a PLC polled from
elsewhere on the Internet, or a plant host polling a server out there.  A
plant that polls public-addressed controllers from private space, or spans
several public /16s, says so with a zones file (`otsensor zones suggest`).
"""
from __future__ import annotations

import ipaddress
from typing import Callable, Iterable

from otsensor.baselines.addresses import is_public, parse
from otsensor.baselines.roles import OT_PROTOCOLS

SCOPE_PREFIX = {4: 16, 6: 48}
MAX_HOSTS = 100_000


def plant_scope(ip: str) -> str | None:
    """The /16 (IPv4) or /48 (IPv6) of a public address; None for any other address."""
    addr = parse(ip)
    if addr is None or not is_public(ip):
        return None
    return str(ipaddress.ip_network(f"{ip}/{SCOPE_PREFIX[addr.version]}", strict=False))


class PlantSpace:
    """The hosts that speak industrial protocols, and the public scopes the plant occupies (bounded)."""

    def __init__(self) -> None:
        self.speakers: set[str] = set()
        self.scopes: set[str] = set()

    @classmethod
    def from_edges(cls, edges: Iterable[tuple[str, str, str]]) -> "PlantSpace":
        """From (client, server, protocol) edges, as the communication graph holds them."""
        space = cls()
        for client, server, protocol in edges:
            if protocol in OT_PROTOCOLS:
                space.saw(client, server)
        return space

    def saw(self, client: str, server: str) -> None:
        """An industrial conversation: ``client`` polled ``server``."""
        if len(self.speakers) < MAX_HOSTS:
            self.speakers.update((client, server))
        scope = plant_scope(server)
        if scope is not None and scope == plant_scope(client) and len(self.scopes) < MAX_HOSTS:
            self.scopes.add(scope)

    def speaks_ot(self, ip: str) -> bool:
        return ip in self.speakers

    def is_plant(self, ip: str) -> bool:
        """A public address in the plant's public space (private space is the plant's anyway)."""
        scope = plant_scope(ip)
        return scope is not None and scope in self.scopes

    def is_internet(self, ip: str) -> bool:
        return is_public(ip) and not self.is_plant(ip)

    def internet_peer(self, a: str, b: str, external: Callable[[str], bool]) -> str | None:
        """The end of an a-b conversation that is the Internet while the other end speaks an industrial
        protocol; ``external`` says which addresses the zones put outside (public space, by default)."""
        for host, other in ((a, b), (b, a)):
            if self.speaks_ot(host) and external(other) and not self.is_plant(other):
                return other
        return None
