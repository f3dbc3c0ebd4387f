"""CIP connection originators: a Forward Open from a host that never opened connections to the target.

Explicit and I/O connections to a controller are opened by a known few (the
HMI's connected session, the engineering tool, the I/O scanner).  The
baseline's edges already hold what each client did to each target, Forward
Open and Large Forward Open included, so nothing more is learned: a Forward
Open on an edge whose learned functions have neither is
``cip_new_connection_originator``, whether the edge itself is new or the
client only ever used unconnected messaging before.
"""
from __future__ import annotations

from typing import Any, Callable

from otsensor.baselines.inventory import FlowLike
from otsensor.baselines.learn import edge_key
from otsensor.dissectors.base import Op, Record

FORWARD_OPENS = frozenset({"Forward Open", "Large Forward Open"})


class CipOriginatorRules:
    def __init__(self, raise_alert: Callable[..., None]) -> None:
        self.raise_alert = raise_alert

    def observe(self, baseline: dict[str, Any], flow: FlowLike, record: Record, op: Op, client: str, server: str,
                protocol: str) -> None:
        if op.protocol != "cip" or op.function not in FORWARD_OPENS:
            return
        ekey = edge_key(client, server, protocol)
        learned = baseline["edges"].get(ekey, {}).get("functions", {})
        if FORWARD_OPENS & set(learned):
            return
        openers = sorted(e["client"] for e in baseline["edges"].values()
                         if e["server"] == server and FORWARD_OPENS & set(e["functions"]))
        self.raise_alert("cip_new_connection_originator", record.ts,
                         f"{client} opened a CIP connection to {server} ({op.function}); it never did before",
                         f"{client}>{server}:forward_open", flow, record, function=op.function, src=client,
                         dst=server, baseline=f"originators of connections to {server}: {', '.join(openers) or 'none'}",
                         fold={"kind": "edge", "client": client, "server": server, "protocol": protocol,
                               "function": op.function})
