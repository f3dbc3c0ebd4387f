"""conn.log as Zeek writes it, from Zeek's view of a connection (tcp.py) and our flow.

Columns and rules of base/protocols/conn/main.zeek: duration and byte
counts only when the duration is above zero, local_orig/local_resp only
when some network is local, conn_state decided from the two endpoint states
in Zeek's order, history as Zeek's letters, ``ip_proto`` from Zeek 7.1 on.
"""
from __future__ import annotations

import re
from typing import Any, Final

from otsensor.dissectors.base import Column
from otsensor.sensor.zeek.format import zeek_time
from otsensor.sensor.zeek.site import LocalNets
from otsensor.sensor.zeek.tcp import (
    CLOSED,
    ESTABLISHED,
    INACTIVE,
    PARTIAL,
    RESET,
    SYN_ACK_SENT,
    SYN_SENT,
    TCP,
    UDP,
    ConnModel,
)

ICMP_PROTOS: Final = (1, 58)
CONN_COLUMNS: Final = tuple(Column(*c.split(":")) for c in ["ts:time", "uid:string", "id.orig_h:addr", "id.orig_p:port", "id.resp_h:addr", "id.resp_p:port", "proto:enum", "service:string", "duration:interval", "orig_bytes:count", "resp_bytes:count", "conn_state:string", "local_orig:bool", "local_resp:bool", "missed_bytes:count", "history:string", "orig_pkts:count", "orig_ip_bytes:count", "resp_pkts:count", "resp_ip_bytes:count", "tunnel_parents:set[string]"])
IP_PROTO_COLUMN: Final = Column("ip_proto", "count")
RSTOS0: Final = re.compile(r"\^?S[^HAFGIQ]*R.*")


def conn_state(zc: ConnModel, transport: int) -> str:
    """Conn::conn_state, in the order of its tests."""
    if transport == TCP:
        os, rs = zc.orig.state, zc.resp.state
        o_inactive, r_inactive = os in (INACTIVE, PARTIAL), rs in (INACTIVE, PARTIAL)
        if rs == RESET:
            if os in (SYN_SENT, SYN_ACK_SENT) or (os == RESET and zc.orig.size() == 0 and zc.resp.size() == 0):
                return "REJ"
            return "RSTRH" if o_inactive else "RSTR"
        if os == RESET:
            if r_inactive:
                return "RSTOS0" if RSTOS0.fullmatch("".join(zc.history)) else "OTH"
            return "RSTO"
        if rs == CLOSED and os == CLOSED:
            return "SF"
        if os == CLOSED:
            return "SH" if r_inactive else "S2"
        if rs == CLOSED:
            return "SHR" if o_inactive else "S3"
        if os == SYN_SENT and rs == INACTIVE:
            return "S0"
        if os == ESTABLISHED and rs == ESTABLISHED:
            return "S1"
        return "OTH"
    if transport == UDP:
        o_active, r_active = zc.udp_len[0] >= 0, zc.udp_len[1] >= 0
        if o_active:
            return "SF" if r_active else "S0"
        return "SHR" if r_active else "OTH"
    return "OTH"


def transport_name(transport: int) -> str | None:
    """Zeek's transport_proto of a connection; None for the ones Zeek before 7.1 did not log."""
    return {TCP: "tcp", UDP: "udp", 1: "icmp", 58: "icmp"}.get(transport)


def conn_values(flow: Any, zc: ConnModel, services: list[str], local: LocalNets,
                ip_proto: bool) -> list[Any]:
    """The conn.log row of a flow, in CONN_COLUMNS order (and ip_proto when asked for)."""
    same = zc.same
    o, r = (0, 1) if same else (1, 0)
    ids = (flow.orig_h, flow.orig_p, flow.resp_h, flow.resp_p) if same else \
        (flow.resp_h, flow.resp_p, flow.orig_h, flow.orig_p)
    start, last = zeek_time(zc.start), zeek_time(zc.last)
    duration = last - start
    if flow.transport == TCP:
        sizes: tuple[int | None, int | None] = (zc.orig.size(), zc.resp.size())
    elif flow.transport == UDP:
        sizes = (max(zc.udp_len[0], 0), max(zc.udp_len[1], 0))
    else:
        sizes = (flow.bytes[o], flow.bytes[r])
    if duration <= 0:
        sizes = (None, None)
    missed = sum(stream.gap_bytes for stream in flow.reasm) if flow.reasm else 0
    row = [zeek_time(zc.start), flow.uid, *ids, transport_name(flow.transport) or "unknown_transport",
           ",".join(services) or None, duration if duration > 0 else None, sizes[0], sizes[1],
           conn_state(zc, flow.transport), local.is_local(ids[0]), local.is_local(ids[2]), missed,
           "".join(zc.history) or None, flow.pkts[o], flow.ip_bytes[o], flow.pkts[r], flow.ip_bytes[r], None]
    if ip_proto:
        row.append(flow.transport)
    return row
