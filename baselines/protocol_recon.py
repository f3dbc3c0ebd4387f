"""Protocol reconnaissance and abuse: unit and link-address enumeration, and commands replayed from another host.

* ``unit_enumeration``: one client addressing, on one server, ``recon_sweep_devices`` (5) unit ids (Modbus
  unit, DNP3 destination link address, S7 rack/slot) that the baseline never saw it use on that edge (the
  baseline's edges keep their ``units``): a Modbus unit-id sweep or a DNP3 link-address enumeration.
* ``object_enumeration``: the same for the objects of reconnaissance operations (S7 SZL lists, CIP
  classes and identity reads): reading 5 SZL ids the baseline never saw read is enumerating the PLC.
* ``replayed_command``: a write or control operation identical to one another client sent to the same server
  earlier in the run (function, object or address space, start, count, values and unit), from a client the
  baseline does not know as a writer of that server: the same CROB from a second master is a replay or a
  masquerade, while redundant SCADA servers and HMIs that the baseline saw write may repeat each other.
"""
from __future__ import annotations

from typing import Any, Callable

from otsensor.baselines.learn import edge_key
from otsensor.dissectors.base import Category, Op

MAX_TRACKED = 50_000
REPLAYED = frozenset({Category.WRITE, Category.CONTROL})


def command_print(server: str, op: Op) -> tuple[Any, ...]:
    return (server, op.protocol, op.function, op.space, op.start, op.count, op.values, op.unit)


class ProtocolRecon:
    def __init__(self, raise_alert: Callable[..., None]) -> None:
        self.raise_alert = raise_alert
        self.targets: dict[tuple[str, str], set[Any]] = {}  # (table, edge) -> targets the baseline lacks
        self.senders: dict[int, str] = {}                     # command fingerprint -> the first client sending it

    def observe(self, baseline: dict[str, Any] | None, sweep: int, flow: Any, record: Any, op: Op,
                client: str, server: str, protocol: str) -> None:
        if baseline is None:
            return
        if op.category in REPLAYED:
            self._replay(baseline, flow, record, op, client, server, protocol)
        edge = baseline["edges"].get(edge_key(client, server, protocol))
        if op.unit is not None:
            self._enumeration("unit_enumeration", "units", op.unit, edge, sweep, flow, record, op, client, server,
                              protocol)
        if op.category == Category.RECON and op.space is not None:
            self._enumeration("object_enumeration", "recon_spaces", op.space, edge, sweep, flow, record, op,
                              client, server, protocol)

    def _enumeration(self, rule: str, table: str, target: Any, edge: dict[str, Any] | None, sweep: int, flow: Any,
                     record: Any, op: Op, client: str, server: str, protocol: str) -> None:
        """Count a target (a unit, an object) the baseline never saw on this edge; past ``sweep``, raise ``rule``."""
        learned = edge.get(table) if edge is not None else []
        if learned is None or target in learned:
            return   # a baseline without this table says nothing
        ekey = edge_key(client, server, protocol)
        seen = self.targets.get((table, ekey))
        if seen is None:
            if len(self.targets) >= MAX_TRACKED:
                return
            seen = self.targets[(table, ekey)] = set()
        if target in seen or len(seen) >= 4096:
            return
        seen.add(target)
        if len(seen) >= sweep:
            what = "unit(s)" if table == "units" else "object(s)"
            shown = ", ".join(map(str, sorted(seen, key=lambda t: (isinstance(t, str), t))[:16]))
            self.raise_alert(rule, record.ts,
                             f"{client} addressed {len(seen)} {protocol} {what} on {server} it never used there: "
                             f"{shown}", f"{ekey}:{table}", flow, record,
                             function=op.function, src=client, dst=server, running_total=True,
                             baseline=f"{table} of {ekey}: {learned or 'none'}",
                             fold={"kind": "allow", "rule": rule, "src": client, "dst": server})

    def _replay(self, baseline: dict[str, Any], flow: Any, record: Any, op: Op, client: str, server: str,
                protocol: str) -> None:
        try:
            fingerprint = hash(command_print(server, op))   # the hash alone: a bounded table of small keys
        except TypeError:   # values that cannot be hashed (nested lists): no verdict
            return
        first = self.senders.get(fingerprint)
        if first is None:
            if len(self.senders) < MAX_TRACKED:
                self.senders[fingerprint] = client
            return
        if first == client or client in baseline["writers"].get(f"{server} {protocol}", ()):
            return   # redundant SCADA servers and HMIs send the same commands: only a stranger replays
        self.raise_alert("replayed_command", record.ts,
                         f"{client} sent {op.protocol} {op.function} {op.space or ''} {op.values or ''} to {server}, "
                         f"the same command {first} sent before", f"{client}>{server}:{op.protocol}:replay",
                         flow, record, function=op.function, src=client, dst=server,
                         baseline=f"{first} sent this command first",
                         fold={"kind": "allow", "rule": "replayed_command", "src": client, "dst": server})
