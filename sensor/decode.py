"""Link, IP and transport decoding on the per-packet hot path.

One function, :func:`decode`, turns a frame into a flat tuple.  It is written
as straight-line code with precompiled structs and no per-layer objects,
because on this path every function call and object allocation is paid a
million times per capture (see bench/).  IPv4 fragments go to a bounded
:class:`Defragmenter`.
"""
from __future__ import annotations

import struct
from typing import Final

from otsensor.dissectors.arp import ArpMessage, parse_arp
from otsensor.dissectors.base import Anomaly
from otsensor.sensor.capture import linktypes as lt

ETH_IPV4: Final = 0x0800
ETH_ARP: Final = 0x0806
ETH_IPV6: Final = 0x86DD
ETH_VLAN: Final = (0x8100, 0x88A8, 0x9100)
TCP: Final = 6
UDP: Final = 17
ICMP: Final = 1
ICMP6: Final = 58
ETHERNET: Final = lt.ETHERNET

_H: Final = struct.Struct("!H")
_HH: Final = struct.Struct("!HH")
# One unpack per header on the hot path (RFC 791 / RFC 9293 layouts):
# IPv4 version+IHL, total length, id, flags+fragment offset, protocol, source, destination
_IPV4: Final = struct.Struct("!BxHHHxB2x4s4s")
# TCP ports, sequence number, data offset byte, flags (the acknowledgement number is skipped)
_TCP: Final = struct.Struct("!HHIIBB")
_NULL_LE: Final = struct.Struct("<I")
_NULL_BE: Final = struct.Struct("!I")
# ICMP replies and the requests they answer (RFC 792, RFC 4443).  Zeek logs a request and its reply as one
# connection, with the request's type and code in the port fields: a reply is keyed as the reverse of that.
ICMP_REQUEST_OF_REPLY: Final = {(ICMP, 0): 8, (ICMP, 14): 13, (ICMP, 16): 15, (ICMP, 18): 17, (ICMP6, 129): 128}
IPV6_EXT: Final = (0, 43, 60, 51)  # hop-by-hop, routing, destination options, AH (length in 4-byte units)

# What decode returns for a packet the sensor understands:
# (vlan, inner_vlan, src_mac, src_ip, dst_ip, proto, sport, dport, tcp_flags, seq, payload, ip_len, ack)
# Addresses are raw bytes (4 or 16); conversion to text happens once per flow.


class Defragmenter:
    """IPv4 fragment reassembly (RFC 791), bounded in datagrams and bytes; overlaps keep the first copy."""

    def __init__(self, max_datagrams: int = 1024, max_bytes: int = 64 << 20, timeout: float = 30.0) -> None:
        self.pending: dict[tuple, list] = {}
        self.max_datagrams = max_datagrams
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.buffered = 0
        self.dropped = 0       # datagrams given up (timeout, caps, impossible offsets)
        self.reassembled = 0

    def add(self, key: tuple, offset: int, more: bool, data: bytes, ts: float) -> bytes | None:
        entry = self.pending.get(key)
        if entry is None:
            if len(self.pending) >= self.max_datagrams:
                self._evict_oldest()
            entry = [ts, {}, None]  # first ts, offset -> bytes, total length once the last fragment is seen
            self.pending[key] = entry
        if offset + len(data) > 65535:
            self._drop(key)
            return None
        pieces = entry[1]
        if offset not in pieces:
            pieces[offset] = data
            self.buffered += len(data)
        if not more:
            entry[2] = offset + len(data)
        if self.buffered > self.max_bytes:
            self._evict_oldest()
        return self._complete(key, entry)

    def _complete(self, key: tuple, entry: list) -> bytes | None:
        total = entry[2]
        if total is None:
            return None
        out = bytearray(total)
        covered = 0
        for offset in sorted(entry[1]):
            piece = entry[1][offset]
            if offset > covered:
                return None  # a hole remains
            end = min(offset + len(piece), total)
            if end > covered:
                out[covered:end] = piece[covered - offset:end - offset]
                covered = end
        if covered < total:
            return None
        self._forget(key)
        self.reassembled += 1
        return bytes(out)

    def _forget(self, key: tuple) -> None:
        entry = self.pending.pop(key, None)
        if entry is not None:
            self.buffered -= sum(len(p) for p in entry[1].values())

    def _drop(self, key: tuple) -> None:
        self._forget(key)
        self.dropped += 1

    def _evict_oldest(self) -> None:
        if self.pending:
            self._drop(min(self.pending, key=lambda k: self.pending[k][0]))

    def expire(self, now: float) -> None:
        for key in [k for k, e in self.pending.items() if now - e[0] > self.timeout]:
            self._drop(key)


def link_header(linktype: int, frame: bytes) -> tuple[int, int, int, int, bytes]:
    """(ethertype, offset of the network header, VLAN id, inner VLAN id, source MAC) of a frame's link
    header; ethertype 0 for a frame too short for its link header or a link type without one it knows."""
    vlan = inner = 0
    src_mac = b""
    if linktype == ETHERNET:
        if len(frame) < 14:
            return 0, 0, 0, 0, b""
        src_mac = frame[6:12]
        etype = (frame[12] << 8) | frame[13]
        off = 14
        while etype in ETH_VLAN:
            if len(frame) < off + 4:
                return 0, 0, 0, 0, b""
            tci = (frame[off] << 8) | frame[off + 1]
            if vlan:
                inner = inner or (tci & 0xFFF)
            else:
                vlan = tci & 0xFFF
            etype = (frame[off + 2] << 8) | frame[off + 3]
            off += 4
    elif linktype == lt.LINUX_SLL:
        if len(frame) < 16:
            return 0, 0, 0, 0, b""
        halen = _H.unpack_from(frame, 4)[0]
        src_mac = frame[6:6 + min(halen, 6)] if halen == 6 else b""
        etype = _H.unpack_from(frame, 14)[0]
        off = 16
    elif linktype == lt.LINUX_SLL2:
        if len(frame) < 20:
            return 0, 0, 0, 0, b""
        etype = _H.unpack_from(frame, 0)[0]
        src_mac = frame[12:18] if frame[11] == 6 else b""
        off = 20
    elif linktype in (lt.NULL, lt.LOOP):
        if len(frame) < 4:
            return 0, 0, 0, 0, b""
        fam = (_NULL_BE if linktype == lt.LOOP else _NULL_LE).unpack_from(frame, 0)[0]
        if fam > 0xFFFF:  # written by a host of the other byte order
            fam = _NULL_BE.unpack_from(frame, 0)[0] if linktype == lt.NULL else _NULL_LE.unpack_from(frame, 0)[0]
        etype = ETH_IPV4 if fam == 2 else ETH_IPV6 if fam in (10, 24, 28, 30) else 0
        off = 4
    else:  # raw IP link types
        if not frame:
            return 0, 0, 0, 0, b""
        etype = ETH_IPV4 if frame[0] >> 4 == 4 else ETH_IPV6 if frame[0] >> 4 == 6 else 0
        off = 0
    return etype, off, vlan, inner, src_mac


def decode(linktype: int, frame: bytes, defrag: Defragmenter, ts: float) -> tuple | None:
    """Decode one frame down to the transport payload, or None for frames the sensor does not follow."""
    etype, off, vlan, inner, src_mac = link_header(linktype, frame)
    if etype == ETH_IPV4:
        if len(frame) < off + 20:
            return None
        vihl, total, ip_id, frag, proto, src, dst = _IPV4.unpack_from(frame, off)
        ihl = (vihl & 0x0F) * 4
        if ihl < 20 or total < ihl:
            return None
        end = min(off + total, len(frame))
        l4 = off + ihl
        if frag & 0x3FFF:  # MF set or non-zero offset
            whole = defrag.add((src, dst, ip_id, proto), (frag & 0x1FFF) * 8, bool(frag & 0x2000),
                               frame[l4:end], ts)
            if whole is None:
                return None
            frame, l4, end, total = whole, 0, len(whole), len(whole) + ihl
    elif etype == ETH_IPV6:
        if len(frame) < off + 40:
            return None
        plen = _H.unpack_from(frame, off + 4)[0]
        proto = frame[off + 6]
        src = frame[off + 8:off + 24]
        dst = frame[off + 24:off + 40]
        l4 = off + 40
        end = min(l4 + plen, len(frame))
        total = plen + 40
        while proto in IPV6_EXT and l4 + 2 <= end:
            proto, hlen = frame[l4], frame[l4 + 1]
            l4 += (hlen + 2) * 4 if proto == 51 else (hlen + 1) * 8
        if proto == 44:  # IPv6 fragments are not reassembled; the flow sees no payload from them
            return None
    else:
        return None

    if proto == TCP:
        if end - l4 < 20:
            return None
        sport, dport, seq, ack, doff, flags = _TCP.unpack_from(frame, l4)
        doff = (doff >> 4) * 4
        payload = frame[l4 + doff:end] if doff >= 20 else b""
        return vlan, inner, src_mac, src, dst, TCP, sport, dport, flags, seq, payload, total, ack
    if proto == UDP:
        if end - l4 < 8:
            return None
        sport, dport = _HH.unpack_from(frame, l4)
        return vlan, inner, src_mac, src, dst, UDP, sport, dport, 0, 0, frame[l4 + 8:end], total, 0
    if proto in (ICMP, ICMP6):
        if end - l4 < 2:
            return None
        # Zeek logs ICMP with the type and code in the port fields
        icmp_type, code = frame[l4], frame[l4 + 1]
        request = ICMP_REQUEST_OF_REPLY.get((proto, icmp_type))
        if request is not None:
            return vlan, inner, src_mac, src, dst, proto, code, request, 0, 0, b"", total, 0
        return vlan, inner, src_mac, src, dst, proto, icmp_type, code, 0, 0, b"", total, 0
    return vlan, inner, src_mac, src, dst, proto, 0, 0, 0, 0, b"", total, 0


def decode_arp(linktype: int, frame: bytes, ts: float) -> tuple[ArpMessage | None, list[Anomaly]] | None:
    """An ARP frame's message and anomalies (dissectors/arp.py), or None for a frame that is not ARP.

    Called only for frames :func:`decode` did not follow, so the IP path pays nothing for it.
    """
    etype, off, vlan, inner, src = link_header(linktype, frame)
    if etype != ETH_ARP:
        return None
    dst = frame[0:6] if linktype == ETHERNET else b""
    return parse_arp(frame[off:], ts, src, dst, vlan, inner)
