"""Identity reads waiting for a verdict: reconnaissance, or part of a station's normal work?

A read of a device's identity (Modbus FC 43/14 or 17, S7 SZL, CIP ListIdentity or
Get Attributes All on the identity object, DNP3 device attributes) says little
at the moment it happens: an HMI reads the identity of each device when it
starts, then polls it for days; a programming tool reads it when it goes
online, before it uploads or stops anything; a scanner reads it and leaves.
So a read waits until the reader has shown what it is.  Work with the device
(any operation beyond identity queries and session handling, before or after
the read) clears it, and so does being an engineering station; otherwise it
becomes ``recon_identity_read`` RECON_GRACE_S of capture time after the read,
or at the end of the run.  The reads of one reader on one device wait as one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

RECON_GRACE_S = 120.0     # long enough for any start-up sequence, short enough for a live alert
MAX_PAIRS = 50_000        # readers and devices waiting, and pairs seen at work, each


@dataclass
class PendingRead:
    client: str
    server: str
    ts: float
    flow: Any          # the connection and record of the first read, for the alert's evidence
    record: Any
    function: str
    protocol: str
    reads: int = 1


class IdentityReads:
    """Reads per (reader, device) in the order they happened, until a verdict."""

    def __init__(self, grace_s: float = RECON_GRACE_S) -> None:
        self.grace_s = grace_s
        self.pending: dict[tuple[str, str], PendingRead] = {}   # insertion order is time order
        self.worked: set[tuple[str, str]] = set()              # (client, server) that did work together
        self.recon_devices: dict[str, set[str]] = {}            # reader -> devices it read and left alone

    def read(self, client: str, server: str, ts: float, flow: Any, record: Any, function: str,
             protocol: str) -> None:
        if (client, server) in self.worked:
            return
        waiting = self.pending.get((client, server))
        if waiting is not None:
            waiting.reads += 1
        elif len(self.pending) < MAX_PAIRS:
            self.pending[(client, server)] = PendingRead(client, server, ts, flow, record, function, protocol)

    def work(self, client: str, server: str) -> None:
        """``client`` did something with ``server`` beyond asking who it is: its reads are routine."""
        if len(self.worked) < MAX_PAIRS:
            self.worked.add((client, server))
        self.pending.pop((client, server), None)

    def left_alone(self, read: PendingRead) -> int:
        """Count a read found to be reconnaissance; how many devices its reader has read and left alone."""
        devices = self.recon_devices.get(read.client)
        if devices is None:
            if len(self.recon_devices) >= MAX_PAIRS:
                return 0
            devices = self.recon_devices[read.client] = set()
        if len(devices) < 4096:
            devices.add(read.server)
        return len(devices)

    def due(self, now: float) -> list[PendingRead]:
        """Reads whose grace has passed at capture time ``now``, oldest first (cheap when none is due)."""
        out = []
        while self.pending:
            key, first = next(iter(self.pending.items()))
            if first.ts + self.grace_s > now:
                break
            out.append(self.pending.pop(key))
        return out

    def remaining(self) -> list[PendingRead]:
        """Every read still waiting (the end of the run)."""
        out = list(self.pending.values())
        self.pending.clear()
        return out
