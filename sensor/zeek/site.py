"""What a Zeek installation knows before it reads a packet: its likely server ports and its local networks.

Both decide conn.log columns: ``likely_server_ports`` which side of a
connection picked up mid-stream Zeek calls the originator (and so the
``^`` in history), ``Site::local_nets`` the ``local_orig``/``local_resp``
columns.  The sets are those of Zeek 7 with its default scripts
(``redef likely_server_ports`` in base/protocols/* and base/packet-protocols/*)
and the ICSNPP packages (S7comm 102/tcp, ENIP/CIP 44818/tcp and /udp,
2222/udp), and Zeek's ``Site::private_address_space`` (base/utils/site.zeek).
"""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Final

LIKELY_TCP: Final = frozenset({
    21, 22, 25, 53, 79, 80, 81, 88, 135, 139, 143, 389, 443, 445, 502, 563, 585, 587, 614, 631, 636, 989, 990,
    992, 993, 995, 1080, 1883, 2811, 3128, 3268, 3389, 5222, 5223, 5269, 6666, 6667, 6668, 6669, 8000, 8080, 8888,
    20000,
    102, 44818,                                  # ICSNPP s7comm, enip
})
LIKELY_UDP: Final = frozenset({
    53, 67, 88, 123, 137, 161, 162, 389, 443, 514, 1812, 2123, 2152, 3389, 3544, 4789, 5060, 5072, 5353, 5355,
    6081, 20000,
    2222, 44818,                                 # ICSNPP enip
})

# Site::private_address_space (Zeek 6.0 and later count it as local unless private_address_space_is_local is F)
PRIVATE_ADDRESS_SPACE: Final = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "2002::/24", "10.0.0.0/8", "2002:a00::/24", "100.64.0.0/10", "2002:6440::/26", "127.0.0.0/8",
    "2002:7f00::/24", "169.254.0.0/16", "2002:a9fe::/32", "172.16.0.0/12", "2002:ac10::/28", "192.0.0.0/24",
    "2002:c000::/40", "192.0.2.0/24", "2002:c000:200::/40", "192.168.0.0/16", "2002:c0a8::/32", "198.18.0.0/15",
    "2002:c612::/31", "198.51.100.0/24", "2002:c633:6400::/40", "203.0.113.0/24", "2002:cb00:7100::/40",
    "240.0.0.0/4", "2002:f000::/20", "255.255.255.255/32", "2002:ffff:ffff::/48", "::/128", "::1/128",
    "64:ff9b:1::/48", "100::/64", "2001::/23", "2001:2::/48", "2001:db8::/32", "fc00::/7", "fe80::/10"))


class LocalNets:
    """Site::local_nets: ``None`` from is_local when no network is local (Zeek then leaves the columns unset)."""

    def __init__(self, networks: Iterable[str], private_is_local: bool) -> None:
        nets = [ipaddress.ip_network(n, strict=False) for n in networks]
        if private_is_local:
            nets.extend(PRIVATE_ADDRESS_SPACE)
        self.networks = tuple(nets)
        self._cache: dict[str, bool] = {}

    def is_local(self, address: str) -> bool | None:
        if not self.networks:
            return None
        known = self._cache.get(address)
        if known is None:
            ip = ipaddress.ip_address(address)
            known = any(ip.version == net.version and ip in net for net in self.networks)
            if len(self._cache) < 65536:
                self._cache[address] = known
        return known
