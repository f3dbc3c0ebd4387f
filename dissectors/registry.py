"""Explicit registration of dissectors by port and by content probe.

Each protocol package exposes a ``REGISTRATIONS`` tuple; :func:`default_registry`
lists those packages by name.  Nothing registers itself on import.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from otsensor.dissectors.base import Direction, Dissector

TCP = 6
UDP = 17


@dataclass(frozen=True, slots=True)
class Registration:
    """How the pipeline finds a protocol: its ports, its probe and its factory.

    ``factory(shared)`` builds a dissector for one flow; ``shared`` is a dict
    the pipeline creates once per run, through which dissectors of different
    flows may share bounded state (e.g. CIP connection ids set up by a
    Forward Open on TCP and used by I/O on UDP).  ``probe(data, direction)``
    says whether the first payload of a flow looks like this protocol.
    """

    name: str
    factory: Callable[[dict[str, Any]], Dissector]
    probe: Callable[[bytes, Direction], bool]
    tcp_ports: frozenset[int] = frozenset()
    udp_ports: frozenset[int] = frozenset()
    # Given a flow's first PDU, who sent it (ORIG for a request, RESP for a response), when the bytes
    # tell; the pipeline uses it to orient connections picked up mid-stream on non-standard ports.
    sender: Callable[[bytes], Direction | None] | None = None


class Registry:
    """Looks dissectors up by (transport, port) and by content."""

    def __init__(self, registrations: list[Registration] | tuple[Registration, ...] = ()) -> None:
        self._all: list[Registration] = []
        self._by_port: dict[tuple[int, int], Registration] = {}
        for reg in registrations:
            self.register(reg)

    def register(self, reg: Registration) -> None:
        self._all.append(reg)
        for port in reg.tcp_ports:
            self._by_port.setdefault((TCP, port), reg)
        for port in reg.udp_ports:
            self._by_port.setdefault((UDP, port), reg)

    @property
    def registrations(self) -> tuple[Registration, ...]:
        return tuple(self._all)

    def by_port(self, transport: int, port: int) -> Registration | None:
        return self._by_port.get((transport, port))

    def is_known_port(self, transport: int, port: int) -> bool:
        return (transport, port) in self._by_port

    def by_content(self, transport: int, data: bytes, direction: Direction) -> Registration | None:
        """The first registration whose probe accepts ``data``; probes must not raise, but are guarded."""
        for reg in self._all:
            if transport == TCP and not reg.tcp_ports and reg.udp_ports:
                continue
            if transport == UDP and not reg.udp_ports and reg.tcp_ports:
                continue
            try:
                if reg.probe(data, direction):
                    return reg
            except Exception:  # a probe bug must not take the sensor down
                continue
        return None


def default_registry() -> Registry:
    """Every protocol the sensor ships, in probe order (most specific probe first)."""
    from otsensor.dissectors import dnp3, enip, modbus, s7comm

    return Registry([*modbus.REGISTRATIONS, *s7comm.REGISTRATIONS, *dnp3.REGISTRATIONS, *enip.REGISTRATIONS])
