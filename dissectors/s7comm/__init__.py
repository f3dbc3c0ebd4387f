"""Siemens S7 on TCP 102: TPKT/COTP, S7comm (0x32) and S7comm-plus (0x72).

Modules: ``cotp`` (TPKT/COTP TPDUs), ``framing`` (stream framing, DT
reassembly), ``shapes`` (what an S7comm PDU decodes to), ``s7`` / ``items`` /
``userdata`` / ``szl`` / ``blocks`` / ``values`` (S7comm parsing), ``s7plus``
(S7comm-plus parsing), ``constants`` (code tables), ``anomalies`` (the closed
anomaly set), ``records`` and ``plus_record`` (records with their declared
columns), ``ops`` (what an S7comm operation means to the analyzers),
``dissector`` (the per-flow state machine).
"""
from __future__ import annotations

from typing import Any

from otsensor.dissectors.base import Direction
from otsensor.dissectors.registry import Registration
from otsensor.dissectors.s7comm.cotp import TPKT_MIN_LENGTH, is_cotp_code
from otsensor.dissectors.s7comm.dissector import S7Dissector

__all__ = ["REGISTRATIONS", "S7Dissector", "probe"]


def probe(data: bytes, direction: Direction) -> bool:
    """TPKT version 3 header with a plausible length, followed by a known COTP TPDU code."""
    if len(data) < 6 or data[0] != 3 or data[1] != 0:
        return False
    length = (data[2] << 8) | data[3]
    li = data[4]
    return length >= TPKT_MIN_LENGTH and 0 < li < length - 4 and is_cotp_code(data[5])


def _factory(shared: dict[str, Any]) -> S7Dissector:
    return S7Dissector(shared)


REGISTRATIONS = (
    Registration(name="s7comm", factory=_factory, probe=probe, tcp_ports=frozenset({102})),
)
