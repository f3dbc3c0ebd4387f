"""Link-layer header types the sensor decodes (tcpdump.org LINKTYPE_ values)."""

ETHERNET = 1
NULL = 0          # BSD loopback: 4-byte address family in the capturing host's byte order
LOOP = 108        # OpenBSD loopback: the same family in network byte order
RAW = 101         # raw IPv4/IPv6, version from the first nibble
RAW_DLT12 = 12    # DLT_RAW as written by some platforms
RAW_DLT14 = 14
IPV4 = 228
IPV6 = 229
LINUX_SLL = 113
LINUX_SLL2 = 276

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
