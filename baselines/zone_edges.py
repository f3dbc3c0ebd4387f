"""Every connection that enters or moves inside a control zone, industrial or not: learned, and new ones raised.

Industrial edges are the graph's (``edges``, ``new_edge``).  This component
keeps the others: a connection that exchanged data with a host in an ``ot``
zone (with zones) or with a host the baseline knows serves an industrial
protocol (without zones), by client, server, transport and port, with what it
carried as the sensor guessed it from the payload (``service_guess`` of the
flow: ssh, tls, smb, http, rdp, vnc, telnet) or else from the port.  The
baseline's ``zone_edges`` holds them; a connection not in it raises
``ot_new_service``: SMB, SSH or a TLS session between OT hosts is how an
attacker who already owns the HMI moves and talks to its controller.
"""
from __future__ import annotations

from typing import Any, Callable

from otsensor.baselines.inventory import OT_PROTOCOLS, FlowLike
from otsensor.baselines.zones import Zones
from otsensor.dissectors.content import guess_by_port

MAX_KEYS = 20_000
REMOTE_ACCESS = frozenset({"ssh", "smb", "rdp", "vnc", "telnet", "winrm", "msrpc"})
PROTOCOL_NAMES = {6: "tcp", 17: "udp"}


def zone_edge_key(flow: FlowLike) -> str:
    return f"{flow.orig_h} -> {flow.resp_h} {PROTOCOL_NAMES.get(flow.transport, flow.proto)}/{flow.resp_p}"


def carried(flow: FlowLike) -> tuple[str | None, str]:
    """What the connection carried, and how that is known ("content", "port" or "unknown")."""
    guess = flow.extra.get("service_guess")
    if guess:
        return guess, "content"
    by_port = guess_by_port(flow.resp_p)
    return (by_port, "port") if by_port else (None, "unknown")


def _candidate(flow: FlowLike) -> bool:
    """Not industrial, and data went both ways (a probe without data is the scan rules' business)."""
    return flow.service not in OT_PROTOCOLS and bool(flow.bytes[0]) and bool(flow.bytes[1])


class ZoneEdgeLearner:
    """The learning side: the non-industrial connections of the traffic that reach OT hosts."""

    def __init__(self, zones: Zones) -> None:
        self.zones = zones
        self.edges: dict[str, dict[str, Any]] = {}

    def note(self, flow: FlowLike) -> None:
        if not _candidate(flow) or (self.zones.configured and self.zones.zone_of(flow.resp_h).kind != "ot"):
            return
        key = zone_edge_key(flow)
        edge = self.edges.get(key)
        if edge is None:
            if len(self.edges) >= MAX_KEYS:
                return
            service, _ = carried(flow)
            edge = self.edges[key] = {"flows": 0, "service": service}
        edge["flows"] += 1

    def to_baseline(self) -> dict[str, dict[str, Any]]:
        return dict(sorted(self.edges.items()))

    @classmethod
    def from_state(cls, zones: Zones, state: dict[str, dict[str, Any]]) -> "ZoneEdgeLearner":
        """Back from :meth:`to_baseline` (which is also its state: plain JSON)."""
        learner = cls(zones)
        learner.edges = {k: {"flows": int(e["flows"]), "service": e.get("service")} for k, e in state.items()}
        return learner


class ZoneEdgeRules:
    """The detection side: ``ot_new_service`` for a connection the baseline's ``zone_edges`` lacks."""

    def __init__(self, raise_alert: Callable[..., None]) -> None:
        self.raise_alert = raise_alert

    def observe_flow(self, baseline: dict[str, Any], zones: Zones, flow: FlowLike) -> None:
        if not _candidate(flow):
            return
        if zones.configured:
            inside = zones.zone_of(flow.resp_h)
            if inside.kind != "ot":
                return
            where = f"zone {inside.name}"
        else:
            served = baseline["assets"].get(flow.resp_h, {}).get("protocols_served")
            if not served:
                return
            where = f"a host serving {', '.join(served)}"
        key = zone_edge_key(flow)
        if key in baseline.get("zone_edges", {}):
            return
        service, how = carried(flow)
        remote = service in REMOTE_ACCESS
        what = f"{service} (by {how})" if service else "an unknown protocol"
        self.raise_alert("ot_new_service", flow.first_ts,
                         f"{flow.orig_h} -> {flow.resp_h} {flow.proto}/{flow.resp_p} in {where}: {what}, "
                         f"{flow.bytes[0]}/{flow.bytes[1]} bytes; never seen in the baseline", key, flow,
                         protocol=service or f"{flow.proto}/{flow.resp_p}",
                         severity="high" if remote else None, extra_techniques=("T0886",) if remote else (),
                         baseline="no such connection into or inside the control zones",
                         fold={"kind": "zone_edge", "key": key, "service": service})
