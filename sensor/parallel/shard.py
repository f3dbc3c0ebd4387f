"""Which worker owns a frame: a deterministic, symmetric hash of its flow key.

Deterministic across processes (crc32, not Python's per-process salted ``hash``) and symmetric (both
directions of a flow land on the same worker), as PACKET_FANOUT's hash mode is for live capture.
"""
from __future__ import annotations

from zlib import crc32

from otsensor.sensor.decode import TCP, UDP

# EtherNet/IP ties flows together: a Forward Open on a TCP 44818 session names the connection ids that
# implicit I/O then uses on UDP 2222 (dissectors/enip/connections.py). Sharding these ports by the IP pair
# alone puts a session and the I/O it opened on the same worker, so that state never crosses workers.
ENIP_PAIRED_PORTS = frozenset({2222, 44818})


def shard_of(p: tuple, workers: int) -> int:
    """The worker (0 .. workers-1) owning a decoded frame ``p`` (what sensor.decode.decode returns)."""
    vlan, inner, _mac, src, dst, transport, sport, dport = p[:8]
    if transport in (TCP, UDP) and (sport in ENIP_PAIRED_PORTS or dport in ENIP_PAIRED_PORTS):
        lo, hi = (src, dst) if src <= dst else (dst, src)
        return crc32(hi, crc32(lo)) % workers
    a = src + sport.to_bytes(2, "big")
    b = dst + dport.to_bytes(2, "big")
    lo, hi = (a, b) if a <= b else (b, a)
    tail = bytes((transport, vlan >> 8, vlan & 0xFF, inner >> 8, inner & 0xFF))
    return crc32(tail, crc32(hi, crc32(lo))) % workers
