"""DNP3 masters and outstations: who commands each outstation, from which link address, who reports unsolicited.

Learned per outstation (``IP link-address``): the hosts that sent it requests
(its masters), the link-layer source addresses those requests carried, and
whether it sent unsolicited responses.  Against that baseline:

* ``dnp3_second_master``: a host that is not a learned master sends requests
  to the outstation (a rogue or second master);
* ``dnp3_unexpected_master_address``: a request whose link source address was
  never learned for the outstation (a master impersonated, or a new one);
* ``dnp3_unsolicited_unknown``: unsolicited responses from an outstation never
  learned to send them (an unknown outstation, or a spoofed report);
* ``dnp3_time_set``: a time set (a write of g50 time objects, Record Current
  Time, Delay Measurement) by a host that is not the outstation's learned master.

The rules fire only where the baseline knows the outstation (an outstation it
never saw is ``new_edge`` / ``new_asset``), except the unsolicited one.
"""
from __future__ import annotations

from typing import Any, Callable

from otsensor.baselines.inventory import FlowLike
from otsensor.dissectors.base import Op, Record, Tag
from otsensor.dissectors.dnp3.records import LINK_SRC
from otsensor.dissectors.dnp3.tables import BROADCAST_ADDRESSES

MAX_OUTSTATIONS = 10_000
MAX_PER_OUTSTATION = 64      # masters or link addresses kept per outstation
UNSOLICITED = "UNSOLICITED_RESPONSE"
TIME_FUNCTIONS = frozenset({"RECORD_CURRENT_TIME", "DELAY_MEASURE"})   # the time-sync procedures (FC 24, 23)


def outstation_key(ip: str, link: int | None) -> str:
    return f"{ip} {link}"


def request_link(op: Op) -> int | None:
    """The link source address of a DNP3 request (None for responses)."""
    for key, value in op.detail or ():
        if key == LINK_SRC:
            return int(value)
    return None


def is_time_set(op: Op) -> bool:
    return Tag.CLOCK_SET in op.tags or op.function in TIME_FUNCTIONS


class Dnp3Stations:
    """The learning side: per outstation, its masters, their link addresses, and unsolicited reporting."""

    def __init__(self) -> None:
        self.masters: dict[str, set[str]] = {}
        self.links: dict[str, set[int]] = {}
        self.unsolicited: set[str] = set()

    def note(self, client: str, server: str, op: Op) -> None:
        if op.protocol != "dnp3" or op.unit is None:
            return
        if op.function == UNSOLICITED:
            if len(self.unsolicited) < MAX_OUTSTATIONS:
                self.unsolicited.add(outstation_key(server, op.unit))
            return
        link = request_link(op)
        if link is None or op.unit in BROADCAST_ADDRESSES:
            return
        key = outstation_key(server, op.unit)
        if key not in self.masters and len(self.masters) >= MAX_OUTSTATIONS:
            return
        masters, links = self.masters.setdefault(key, set()), self.links.setdefault(key, set())
        if len(masters) < MAX_PER_OUTSTATION:
            masters.add(client)
        if len(links) < MAX_PER_OUTSTATION:
            links.add(link)

    def to_baseline(self) -> dict[str, dict[str, Any]]:
        keys = sorted(set(self.masters) | self.unsolicited)
        return {key: {"masters": sorted(self.masters.get(key, ())), "master_links": sorted(self.links.get(key, ())),
                      "unsolicited": key in self.unsolicited} for key in keys}

    def to_state(self) -> dict[str, dict[str, Any]]:
        """As JSON, for a live sensor's checkpoint: the baseline's own form."""
        return self.to_baseline()

    def restore(self, state: dict[str, dict[str, Any]]) -> None:
        """Take back what :meth:`to_state` wrote (KeyError, TypeError or ValueError when it is not that;
        nothing changes then)."""
        masters = {key: {str(ip) for ip in entry["masters"]} for key, entry in state.items() if entry["masters"]}
        links = {key: {int(n) for n in entry["master_links"]} for key, entry in state.items()
                 if entry["master_links"]}
        unsolicited = {key for key, entry in state.items() if bool(entry["unsolicited"])}
        self.masters, self.links, self.unsolicited = masters, links, unsolicited


class Dnp3StationRules:
    """The detection side: each request or unsolicited response checked against the learned stations."""

    def __init__(self, raise_alert: Callable[..., None]) -> None:
        self.raise_alert = raise_alert

    def observe(self, baseline: dict[str, Any], flow: FlowLike, record: Record, op: Op, client: str,
                server: str) -> None:
        learned = baseline.get("dnp3_stations")
        if learned is None or op.protocol != "dnp3" or op.unit is None:
            return
        key = outstation_key(server, op.unit)
        entry = learned.get(key)
        if op.function == UNSOLICITED:
            if entry is None or not entry["unsolicited"]:
                self._unsolicited(flow, record, op, client, server, entry is not None)
            return
        link = request_link(op)
        if link is None or op.unit in BROADCAST_ADDRESSES:
            return
        masters = entry["masters"] if entry is not None else []
        if is_time_set(op) and client not in masters:
            self._alert("dnp3_time_set", flow, record, op, client, server,
                        f"{client} set the time of outstation {op.unit} at {server} ({op.function})",
                        f"{client}>{key}:time", f"masters of {key}: {', '.join(masters) or 'none'}")
        if entry is None or not masters:
            return
        if client not in masters:
            self._alert("dnp3_second_master", flow, record, op, client, server,
                        f"{client} sent {op.function} to outstation {op.unit} at {server}, whose master is "
                        f"{', '.join(masters)}", f"{client}>{key}", f"masters of {key}: {', '.join(masters)}")
        links = entry["master_links"]
        if link not in links:
            self._alert("dnp3_unexpected_master_address", flow, record, op, client, server,
                        f"{client} sent {op.function} to outstation {op.unit} at {server} from link address "
                        f"{link}, never used by its masters", f"{client}>{key}:{link}",
                        f"master link addresses of {key}: {', '.join(map(str, links)) or 'none'}")

    def _unsolicited(self, flow: FlowLike, record: Record, op: Op, client: str, server: str, known: bool) -> None:
        key = outstation_key(server, op.unit)
        what = "an outstation that never reported unsolicited" if known else "an outstation never learned"
        self.raise_alert("dnp3_unsolicited_unknown", record.ts,
                         f"unsolicited response from {server} (link address {op.unit}) to {client}: {what}",
                         f"{key}:unsolicited", flow, record, function=op.function, src=server, dst=client,
                         baseline=f"outstations learned to report unsolicited: {key} not among them",
                         fold={"kind": "allow", "rule": "dnp3_unsolicited_unknown", "src": server, "dst": client})

    def _alert(self, rule: str, flow: FlowLike, record: Record, op: Op, client: str, server: str, message: str,
               identifier: str, learned: str) -> None:
        self.raise_alert(rule, record.ts, message, identifier, flow, record, function=op.function, src=client,
                         dst=server, baseline=learned,
                         fold={"kind": "allow", "rule": rule, "src": client, "dst": server})
