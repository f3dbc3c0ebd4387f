"""Which worker owns a frame: a deterministic, symmetric hash of its flow key.

Deterministic across processes (plain integer arithmetic on the key, no salted ``hash``) and symmetric
(both directions of a flow land on the same worker), as PACKET_FANOUT's hash mode is for live capture.

A worker is given every frame of a file and most are another worker's: :func:`frame_owner` finds the
owner of a plain TCP or UDP frame from its raw bytes, without decoding it (no payload copy, no decoded
tuple), with the same :func:`owner` that :func:`shard_of` applies to a decoded frame.
"""
from __future__ import annotations

from typing import Final

from otsensor.sensor.decode import ETH_IPV4, ETHERNET, TCP, UDP, link_header

# EtherNet/IP ties flows together: a Forward Open on a TCP 44818 session names the connection ids that
# implicit I/O then uses on UDP 2222 (dissectors/enip/connections.py). Sharding these ports by the IP pair
# alone puts a session and the I/O it opened on the same worker, so that state never crosses workers.
ENIP_IO_PORT: Final = 2222
ENIP_SESSION_PORT: Final = 44818
UNKNOWN: Final = -1    # frame_owner: the frame must be decoded to tell (see there)
# A prime near 2**31: the flow key folded into one integer (under 2**62, a machine word in the compiled
# build) is reduced by it before the worker count, so every bit of the key moves the worker.
SPREAD: Final = 2_147_483_629


def owner(src: int, dst: int, transport: int, sport: int, dport: int, vlan: int, inner: int, workers: int) -> int:
    """The worker (0 .. workers-1) owning a flow, from its addresses as integers and the rest of its key."""
    if (transport == TCP or transport == UDP) and (_paired(sport) or _paired(dport)):
        lo, hi = (src, dst) if src <= dst else (dst, src)
        return _spread(lo ^ (hi << 7), workers)
    a = (src << 16) | sport
    b = (dst << 16) | dport
    lo, hi = (a, b) if a <= b else (b, a)
    folded = lo ^ (hi << 11) ^ (transport << 1) ^ (vlan << 24) ^ (inner << 36)
    return _spread(folded, workers)


def _spread(folded: int, workers: int) -> int:
    return (folded % SPREAD) % workers


def _paired(port: int) -> bool:
    return port == ENIP_IO_PORT or port == ENIP_SESSION_PORT


def shard_of(p: tuple, workers: int) -> int:
    """The worker owning a decoded frame ``p`` (what sensor.decode.decode returns)."""
    src: bytes = p[3]
    dst: bytes = p[4]
    return owner(int.from_bytes(src, "big"), int.from_bytes(dst, "big"), p[5], p[6], p[7], p[0], p[1], workers)


def frame_owner(linktype: int, frame: bytes, workers: int) -> int:
    """The worker owning an undecoded frame, when it is one that decode.decode takes as it is: an IPv4
    datagram, not a fragment, carrying a TCP or UDP header whole (behind any VLAN tags). Anything else is
    UNKNOWN (a fragment, IPv6, ICMP, a frame that is not IP, a header cut short): it is decoded to tell,
    so fragments are reassembled and malformed frames are counted exactly as one process does.
    The header fields are read byte by byte, in line (RFC 791, RFC 9293): machine integers in the compiled
    build, where a struct would give objects (a helper per 16-bit field cost a call each)."""
    size = len(frame)
    if linktype == ETHERNET and size >= 34 and frame[12] == 0x08 and frame[13] == 0x00:
        off = 14    # the usual frame, untagged Ethernet and IPv4: no link_header tuple and MAC slice to make
        vlan = inner = 0
    else:
        etype, off, vlan, inner, _mac = link_header(linktype, frame)
        if etype != ETH_IPV4 or size < off + 20:
            return UNKNOWN
    ihl = (frame[off] & 0x0F) * 4
    total = (frame[off + 2] << 8) | frame[off + 3]
    proto = frame[off + 9]
    if ihl < 20 or total < ihl or (frame[off + 6] & 0x3F) | frame[off + 7] or (proto != TCP and proto != UDP):
        return UNKNOWN
    l4 = off + ihl
    if min(off + total, size) - l4 < (20 if proto == TCP else 8):
        return UNKNOWN
    src = (frame[off + 12] << 24) | (frame[off + 13] << 16) | (frame[off + 14] << 8) | frame[off + 15]
    dst = (frame[off + 16] << 24) | (frame[off + 17] << 16) | (frame[off + 18] << 8) | frame[off + 19]
    sport = (frame[l4] << 8) | frame[l4 + 1]
    dport = (frame[l4 + 2] << 8) | frame[l4 + 3]
    return owner(src, dst, proto, sport, dport, vlan, inner, workers)
