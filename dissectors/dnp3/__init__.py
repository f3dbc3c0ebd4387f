"""DNP3 (IEEE 1815-2012) over TCP and UDP: link, transport and application layers.

Modules: ``crc`` (CRC-16/DNP), ``link`` (framing), ``transport`` (fragment reassembly),
``app`` (fragment and object headers), ``objects`` (group/variation catalogue),
``tables`` (codes and anomaly names), ``records`` and ``dissector``.
"""
from __future__ import annotations

from typing import Any

from otsensor.dissectors.base import Direction
from otsensor.dissectors.dnp3.dissector import Dnp3Dissector
from otsensor.dissectors.dnp3.link import header_crc_ok
from otsensor.dissectors.registry import Registration

PORT = 20000


def probe(data: bytes, direction: Direction) -> bool:
    """DNP3 when the payload starts with 0x05 0x64 and a link header whose CRC verifies."""
    return header_crc_ok(bytes(data[:10]))


def _factory(shared: dict[str, Any]) -> Dnp3Dissector:
    return Dnp3Dissector(shared)


REGISTRATIONS = (
    Registration("dnp3", _factory, probe, frozenset({PORT}), frozenset({PORT})),
)

__all__ = ["REGISTRATIONS", "Dnp3Dissector", "probe"]
