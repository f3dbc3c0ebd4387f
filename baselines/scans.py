"""Scans: connections that exchanged no data, counted per source toward a host, port or OT-host scan.

A source that tried ``scan_hosts`` hosts, or ``scan_ports`` ports of one
host, without exchanging data is scanning.  A careful attacker touches only
a handful of controllers: so, with a baseline, a source that tried
``scan_ot_hosts`` (5) hosts of the control zones (without zones: hosts the
baseline knows serve an industrial protocol) that it never spoke to in the
baseline is scanning too.  All raise ``network_scan`` for the source, one
aggregated alert whose message states the running totals.
"""
from __future__ import annotations

from typing import Any, Callable

from otsensor.baselines.inventory import FlowLike

MAX_SOURCES = 50_000
MAX_PER_SOURCE = 4096


def spoken_pairs(baseline: dict[str, Any] | None) -> frozenset[tuple[str, str]]:
    """Host pairs (either order) that exchanged anything in the baseline: industrial edges and zone edges."""
    if not baseline:
        return frozenset()
    pairs = {(e["client"], e["server"]) for e in baseline.get("edges", {}).values()}
    for key in baseline.get("zone_edges", {}):
        client, _, rest = key.partition(" -> ")
        pairs.add((client, rest.split(" ", 1)[0]))
    return frozenset(pairs | {(b, a) for a, b in pairs})


class ScanRules:
    def __init__(self, raise_alert: Callable[..., None]) -> None:
        self.raise_alert = raise_alert
        self.probes: dict[str, dict[str, set[int]]] = {}    # source -> host -> ports tried without data
        self.probe_most: dict[str, int] = {}                 # source -> most ports tried on one host
        self.strange_ot: dict[str, set[str]] = {}            # source -> OT hosts tried that it never spoke to

    def probe(self, flow: FlowLike, config: Any, ot_ports: set[int], is_ot_host: Callable[[str], bool],
              spoken: frozenset[tuple[str, str]] | None) -> None:
        """A TCP connection that exchanged no data (``spoken`` is None without a baseline)."""
        src = flow.orig_h
        tried = self.probes.get(src)
        if tried is None:
            if len(self.probes) >= MAX_SOURCES:
                return
            tried = self.probes[src] = {}
        ports = tried.get(flow.resp_h)
        if ports is None:
            if len(tried) >= MAX_PER_SOURCE:
                return
            ports = tried[flow.resp_h] = set()
        if len(ports) < MAX_PER_SOURCE:
            ports.add(flow.resp_p)
        most_ports = self.probe_most[src] = max(self.probe_most.get(src, 0), len(ports))
        strangers = self._strange_ot_hosts(flow, is_ot_host, spoken)
        if len(tried) < config.scan_hosts and most_ports < config.scan_ports and strangers < config.scan_ot_hosts:
            return
        tried_ports = {p for ps in tried.values() for p in ps}
        industrial = sorted(tried_ports & ot_ports)
        self.raise_alert("network_scan", flow.first_ts,
                         f"{src} tried {len(tried)} host(s), up to {most_ports} port(s) on one, without exchanging "
                         f"data" + (f"; {strangers} control-zone host(s) it never spoke to" if strangers else "")
                         + (f"; industrial ports {industrial}" if industrial else ""),
                         f"{src}:scan", flow, protocol=f"{flow.proto}/{flow.resp_p}", running_total=True,
                         fold={"kind": "allow", "rule": "network_scan", "src": src})

    def _strange_ot_hosts(self, flow: FlowLike, is_ot_host: Callable[[str], bool],
                          spoken: frozenset[tuple[str, str]] | None) -> int:
        src, dst = flow.orig_h, flow.resp_h
        seen = self.strange_ot.get(src)
        if spoken is not None and (seen is None or dst not in seen) and (src, dst) not in spoken \
                and is_ot_host(dst):
            if seen is None:
                if len(self.strange_ot) >= MAX_SOURCES:
                    return 0
                seen = self.strange_ot[src] = set()
            if len(seen) < MAX_PER_SOURCE:
                seen.add(dst)
        return len(seen) if seen is not None else 0
