"""Link-layer header types the sensor decodes (tcpdump.org LINKTYPE_ values)."""
from __future__ import annotations

from typing import Final

ETHERNET: Final = 1
NULL: Final = 0          # BSD loopback: 4-byte address family in the capturing host's byte order
LOOP: Final = 108        # OpenBSD loopback: the same family in network byte order
RAW: Final = 101         # raw IPv4/IPv6, version from the first nibble
RAW_DLT12: Final = 12    # DLT_RAW as written by some platforms
RAW_DLT14: Final = 14
IPV4: Final = 228
IPV6: Final = 229
LINUX_SLL: Final = 113
LINUX_SLL2: Final = 276

LINKTYPE_NAMES = {
    ETHERNET: "Ethernet",
    NULL: "BSD loopback",
    LOOP: "OpenBSD loopback",
    RAW: "raw IP",
    RAW_DLT12: "raw IP",
    RAW_DLT14: "raw IP",
    IPV4: "raw IPv4",
    IPV6: "raw IPv6",
    LINUX_SLL: "Linux cooked (SLL)",
    LINUX_SLL2: "Linux cooked v2 (SLL2)",
}
