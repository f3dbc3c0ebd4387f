"""Which worker owns a frame: a deterministic, symmetric hash of its flow key.

Deterministic across processes (the hash of a tuple of integers: Python salts the hash of str and bytes
per process, never that of an int) and symmetric (both directions of a flow land on the same worker), as
PACKET_FANOUT's hash mode is for live capture.

A worker is given every frame of a file and most are another worker's: :func:`frame_owner` finds the
owner of a plain TCP or UDP frame from its raw bytes, without decoding it (no payload copy, no decoded
tuple), with the same :func:`owner` that :func:`shard_of` applies to a decoded frame.
"""
from __future__ import annotations

import struct
from typing import Final

from otsensor.sensor.decode import ETH_IPV4, TCP, UDP, link_header

# EtherNet/IP ties flows together: a Forward Open on a TCP 44818 session names the connection ids that
# implicit I/O then uses on UDP 2222 (dissectors/enip/connections.py). Sharding these ports by the IP pair
# alone puts a session and the I/O it opened on the same worker, so that state never crosses workers.
ENIP_PAIRED_PORTS: Final = frozenset({2222, 44818})
UNKNOWN: Final = -1    # frame_owner: the frame must be decoded to tell (see there)

# The IPv4 header as decode.py reads it (RFC 791), with the addresses as integers: version+IHL, total
# length, flags+fragment offset, protocol, source, destination
_IPV4_PEEK: Final = struct.Struct("!BxH2xHxB2xII")
_PORTS: Final = struct.Struct("!HH")


def owner(src: int, dst: int, transport: int, sport: int, dport: int, vlan: int, inner: int, workers: int) -> int:
    """The worker (0 .. workers-1) owning a flow, from its addresses as integers and the rest of its key."""
    if (transport == TCP or transport == UDP) and (sport in ENIP_PAIRED_PORTS or dport in ENIP_PAIRED_PORTS):
        return hash((src, dst) if src <= dst else (dst, src)) % workers
    a = (src << 16) | sport
    b = (dst << 16) | dport
    return hash((a, b, transport, vlan, inner) if a <= b else (b, a, transport, vlan, inner)) % workers


def shard_of(p: tuple, workers: int) -> int:
    """The worker owning a decoded frame ``p`` (what sensor.decode.decode returns)."""
    src: bytes = p[3]
    dst: bytes = p[4]
    return owner(int.from_bytes(src, "big"), int.from_bytes(dst, "big"), p[5], p[6], p[7], p[0], p[1], workers)


def frame_owner(linktype: int, frame: bytes, workers: int) -> int:
    """The worker owning an undecoded frame, when it is one that decode.decode takes as it is: an IPv4
    datagram, not a fragment, carrying a TCP or UDP header whole (behind any VLAN tags). Anything else is
    UNKNOWN (a fragment, IPv6, ICMP, a frame that is not IP, a header cut short): it is decoded to tell,
    so fragments are reassembled and malformed frames are counted exactly as one process does."""
    etype, off, vlan, inner, _mac = link_header(linktype, frame)
    if etype != ETH_IPV4 or len(frame) < off + 20:
        return UNKNOWN
    vihl, total, frag, proto, src, dst = _IPV4_PEEK.unpack_from(frame, off)
    ihl = (vihl & 0x0F) * 4
    if ihl < 20 or total < ihl or frag & 0x3FFF or (proto != TCP and proto != UDP):
        return UNKNOWN
    l4 = off + ihl
    if min(off + total, len(frame)) - l4 < (20 if proto == TCP else 8):
        return UNKNOWN
    sport, dport = _PORTS.unpack_from(frame, l4)
    return owner(src, dst, proto, sport, dport, vlan, inner, workers)
