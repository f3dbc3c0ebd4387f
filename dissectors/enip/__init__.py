"""EtherNet/IP encapsulation and CIP (explicit and implicit messaging).

Registrations: ``enip`` on TCP 44818 (a byte stream) and on UDP 44818
(datagrams: ListIdentity and friends), and ``cip_io`` on UDP 2222 (implicit
I/O).  The probe accepts only a plausible encapsulation header, so other
traffic on 44818 is not reported as ENIP.
"""
from __future__ import annotations

from typing import Any, Final

from otsensor.dissectors.base import Direction
from otsensor.dissectors.enip import encap
from otsensor.dissectors.enip.connections import IOConnections
from otsensor.dissectors.enip.dissector import EnipDissector
from otsensor.dissectors.enip.iolink import CipIODissector, probe_io
from otsensor.dissectors.registry import Registration

ENIP_PORT: Final = 44818
IO_PORT: Final = 2222
SHARED_KEY: Final = "enip.connections"   # the run's IOConnections, in the registry's shared dict


def probe(data: bytes, direction: Direction) -> bool:
    """A whole plausible encapsulation header whose length agrees with the bytes seen.

    The first payload of a flow holds at least the first message; a length
    longer than the payload is allowed (segmented), shorter only when another
    plausible header follows.
    """
    if len(data) < encap.HEADER_LEN:
        return False
    hdr = encap.parse_header(data)
    if not encap.plausible(hdr, direction == Direction.ORIG):
        return False
    end = encap.HEADER_LEN + hdr.length
    if end >= len(data):
        return True
    return len(data) - end >= encap.HEADER_LEN and encap.plausible(encap.parse_header(data, end))


def connections(shared: dict[str, Any]) -> IOConnections:
    """The run's table of I/O connections: made on the first flow, then the same for every flow."""
    table = shared.get(SHARED_KEY)
    if not isinstance(table, IOConnections):
        table = shared[SHARED_KEY] = IOConnections()
    return table


def _tcp_factory(shared: dict[str, Any]) -> EnipDissector:
    return EnipDissector(connections(shared), datagram=False)


def _udp_factory(shared: dict[str, Any]) -> EnipDissector:
    return EnipDissector(connections(shared), datagram=True)


def _io_factory(shared: dict[str, Any]) -> CipIODissector:
    return CipIODissector(connections(shared))


REGISTRATIONS: tuple[Registration, ...] = (
    Registration("enip", _tcp_factory, probe, tcp_ports=frozenset({ENIP_PORT})),
    Registration("enip", _udp_factory, probe, udp_ports=frozenset({ENIP_PORT})),
    Registration("cip_io", _io_factory, probe_io, udp_ports=frozenset({IO_PORT})),
)
