"""Protocol reconnaissance and abuse: unit and link-address enumeration, and commands replayed from another host.

* ``unit_enumeration``: one client addressing, on one server, ``recon_sweep_devices`` (5) unit ids (Modbus
  unit, DNP3 destination link address, S7 rack/slot) that the baseline never saw it use on that edge (the
  baseline's edges keep their ``units``): a Modbus unit-id sweep or a DNP3 link-address enumeration.
* ``replayed_command``: a write or control operation identical to one another client sent to the same server
  earlier in the run (function, object or address space, start, count, values and unit): the same CROB
  from a second master is a replay or a masquerade.
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
        self.units: dict[str, set[int]] = {}                # edge -> units it used that the baseline lacks
        self.senders: dict[tuple[Any, ...], str] = {}        # command fingerprint -> the first client sending it

    def observe(self, baseline: dict[str, Any] | None, sweep: int, flow: Any, record: Any, op: Op,
                client: str, server: str, protocol: str) -> None:
        if op.category in REPLAYED:
            self._replay(flow, record, op, client, server)
        if baseline is not None and op.unit is not None:
            self._units(baseline, sweep, flow, record, op, client, server, protocol)

    def _units(self, baseline: dict[str, Any], sweep: int, flow: Any, record: Any, op: Op, client: str,
               server: str, protocol: str) -> None:
        ekey = edge_key(client, server, protocol)
        edge = baseline["edges"].get(ekey)
        learned = edge.get("units") if edge is not None else []
        if learned is None or op.unit in learned:
            return   # a baseline without units says nothing about them
        units = self.units.get(ekey)
        if units is None:
            if len(self.units) >= MAX_TRACKED:
                return
            units = self.units[ekey] = set()
        if op.unit in units or len(units) >= 4096:
            return
        units.add(op.unit)
        if len(units) >= sweep:
            self.raise_alert("unit_enumeration", record.ts,
                             f"{client} addressed {len(units)} {protocol} unit(s) on {server} it never used there: "
                             f"{', '.join(map(str, sorted(units)[:16]))}", f"{ekey}:units", flow, record,
                             function=op.function, src=client, dst=server, running_total=True,
                             baseline=f"units of {ekey}: {learned or 'none'}",
                             fold={"kind": "allow", "rule": "unit_enumeration", "src": client, "dst": server})

    def _replay(self, flow: Any, record: Any, op: Op, client: str, server: str) -> None:
        fingerprint = command_print(server, op)
        try:
            first = self.senders.get(fingerprint)
        except TypeError:   # values that cannot be compared this way (nested lists): no verdict
            return
        if first is None:
            if len(self.senders) < MAX_TRACKED:
                self.senders[fingerprint] = client
            return
        if first == client:
            return
        self.raise_alert("replayed_command", record.ts,
                         f"{client} sent {op.protocol} {op.function} {op.space or ''} {op.values or ''} to {server}, "
                         f"the same command {first} sent before", f"{client}>{server}:{op.protocol}:replay",
                         flow, record, function=op.function, src=client, dst=server,
                         baseline=f"{first} sent this command first",
                         fold={"kind": "allow", "rule": "replayed_command", "src": client, "dst": server})
