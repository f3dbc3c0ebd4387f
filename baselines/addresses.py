"""Address facts the baselines share: one order for both IP families, and the subnet a host is in.

A plant network carries IPv4 and IPv6 side by side (if only the link-local
fe80:: addresses every Windows and Linux host uses), and ``ipaddress``
refuses to compare the two families: every sort or comparison of addresses
goes through these functions.
"""
from __future__ import annotations

import ipaddress
from functools import lru_cache

SUBNET_PREFIX = {4: 24, 6: 64}     # how hosts are grouped: a /24 is the usual IPv4 LAN, /64 the IPv6 one


def parse(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(ip)
    except ValueError:
        return None


@lru_cache(maxsize=65536)
def is_host(ip: str) -> bool:
    """Whether an address can be one device: not multicast, not unspecified, not the limited broadcast.

    A datagram to 255.255.255.255 or to a multicast group (CIP ListIdentity, IGMP, mDNS, SSDP) is sent to
    many hosts and answered, if at all, from the responders' own addresses: the group is never an asset.
    """
    addr = parse(ip)
    if addr is None:
        return False
    return not (addr.is_multicast or addr.is_unspecified or ip == "255.255.255.255")


def sort_key(ip: str) -> tuple[int, int, str]:
    """IPv4 before IPv6, each in numeric order; text that is no address sorts last."""
    addr = parse(ip)
    return (9, 0, ip) if addr is None else (addr.version, int(addr), "")


def network_sort_key(cidr: str) -> tuple[int, int, int]:
    net = ipaddress.ip_network(cidr, strict=False)
    return (net.version, int(net.network_address), net.prefixlen)


def subnet_of(ip: str) -> str | None:
    """The /24 (IPv4) or /64 (IPv6) of a host address; None for what is no single host.

    Multicast, broadcast (a .255 IPv4 destination, taken as the /24's broadcast) and the
    unspecified address (0.0.0.0, :: of DHCP and duplicate address detection) are not hosts.
    """
    addr = parse(ip)
    if addr is None or addr.is_multicast or addr.is_unspecified:
        return None
    if addr.version == 4 and ip.endswith(".255"):
        return None
    return str(ipaddress.ip_network(f"{ip}/{SUBNET_PREFIX[addr.version]}", strict=False))


def is_public(ip: str) -> bool:
    """Globally routed unicast space (the Internet, or a plant numbered from public space)."""
    addr = parse(ip)
    return addr is not None and addr.is_global and not addr.is_multicast
