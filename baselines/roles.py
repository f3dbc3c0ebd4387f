"""Who a host is: what counts as engineering, which side of a connection issues requests, and asset roles.

One function, :func:`engineering_operation`, decides what an engineering
operation is, for the inventory's roles, the baseline's engineering hosts and
the detector's engineering stations alike, so the three never disagree.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Final, Protocol

from otsensor.dissectors.base import Category, Direction, Op, Tag

OT_PROTOCOLS = frozenset({"modbus", "s7comm", "s7comm_plus", "dnp3", "enip", "cip_io"})
# Protocols that are one stack: a ControlLogix serving EtherNet/IP while it scans its I/O over
# cip_io, or an S7-1500 speaking S7comm and S7comm-plus, is one controller, not a gateway.
FAMILY = {"enip": "cip", "cip_io": "cip", "s7comm": "s7", "s7comm_plus": "s7"}
# What a programming tool does to a controller, most telling first (the name an operation is counted under).
ENGINEERING_TAGS = (Tag.FIRMWARE, Tag.PROGRAM_DOWNLOAD, Tag.PROGRAM_DELETE, Tag.PLC_STOP, Tag.PLC_START,
                    Tag.MODE_CHANGE, Tag.RESTART, Tag.LISTEN_ONLY, Tag.FORCE, Tag.PROGRAM_UPLOAD)
# Routine work a baseline may teach as normal for one station and one controller; stops, starts,
# downloads, deletions, firmware and restarts always alert unless allowed or accepted.
LEARNABLE_TAGS = frozenset({Tag.PROGRAM_UPLOAD, Tag.CLOCK_SET, Tag.IDENTITY_READ})
# Operations that are no work with a device: asking who it is, and opening or keeping a session.
OVERHEAD_CATEGORIES: Final = frozenset({Category.RECON, Category.SESSION})
MAX_SIDED_FLOWS = 50_000


def engineering_operation(op: Op) -> str | None:
    """The name of the engineering operation ``op`` is, or None for a supervisor's routine work.

    Engineering changes what a controller runs or how it runs: logic or firmware transfer
    and deletion (uploads too: that is how a programming tool compares and backs up), stop,
    start, mode changes, restarts, Modbus listen-only, forcing variables, and configuration
    or program changes with no finer tag (S7 compress memory or copy RAM to ROM, DNP3 file
    writes and activate configuration, Logix edit resource).  Routine, not engineering:
    identity reads (an HMI reads them at start-up), setting the clock (SCADA masters and
    HMIs synchronise time), select/operate and direct operate (a SCADA master's job),
    enabling or disabling unsolicited reporting (a DNP3 master's start-up sequence), and
    diagnostic operations, where a mode tag is the device reporting its mode (S7 mode
    transition notices), not a command.
    """
    if op.category == Category.DIAGNOSTIC:
        return None
    if op.tags:   # (most operations, the polls, carry no tag: this is on every record's path)
        for tag in ENGINEERING_TAGS:
            if tag in op.tags:
                return tag
    if op.category == Category.PROGRAM or (op.category == Category.CONTROL and Tag.CONFIG_CHANGE in op.tags):
        for tag in (Tag.CONFIG_CHANGE, Tag.FILE_TRANSFER):
            if tag in op.tags:
                return tag
        return op.function
    return None


def is_work(op: Op) -> bool:
    """Whether ``op`` does something with a device beyond asking who it is or holding a session."""
    return op.category not in OVERHEAD_CATEGORIES


# -- which side issues requests --------------------------------------------------------------------------

class Connection(Protocol):
    uid: str
    orig_h: str
    resp_h: str


def requester_side(ident: tuple[Direction, dict[str, Any]]) -> Direction | None:
    """The side that issues requests, when a record's identity facts say it (a DNP3 station's role)."""
    side, facts = ident
    role = facts.get("dnp3_role")
    if role == "master":
        return side
    if role == "outstation":
        return Direction.RESP if side == Direction.ORIG else Direction.ORIG
    return None


class RequesterSides:
    """Per connection, whether requests come from the responder rather than the originator.

    A DNP3 outstation may open the TCP connection to its master (dial-out) or send the first
    UDP datagram (an unsolicited response); every link frame says whether it comes from the
    master (the DIR bit), and the dissector reports each station's role.  The first role seen
    on a connection decides; connections are remembered only while they last, and at most
    MAX_SIDED_FLOWS at once (past that, the originator is taken as the requester).
    """

    def __init__(self) -> None:
        self.from_responder: dict[str, bool] = {}

    def note(self, flow: Connection, ident: tuple[Direction, dict[str, Any]]) -> None:
        if flow.uid in self.from_responder or len(self.from_responder) >= MAX_SIDED_FLOWS:
            return
        side = requester_side(ident)
        if side is not None:
            self.from_responder[flow.uid] = side == Direction.RESP

    def server_side(self, flow: Connection) -> int:
        """0 when the originator is the server (the side requests go to), else 1."""
        return 0 if self.from_responder.get(flow.uid) else 1

    def ends(self, flow: Connection) -> tuple[str, str]:
        """(client, server): who issues the requests on this connection, and who answers them."""
        if self.from_responder.get(flow.uid):
            return flow.resp_h, flow.orig_h
        return flow.orig_h, flow.resp_h

    def forget(self, flow: Connection) -> None:
        self.from_responder.pop(flow.uid, None)


# -- roles ---------------------------------------------------------------------------------------------

class RoleFacts(Protocol):
    """What the inventory knows of a host (inventory.Asset provides it)."""

    served: Counter
    used: Counter
    clients: set[str]
    servers: set[str]
    engineering: Counter
    work_ops: int
    identity_reads: int
    identity: dict[str, Any]


def decide_role(a: RoleFacts) -> tuple[str, list[str]]:
    """The host's role and the evidence for it, in words an analyst can check against the logs.

    Engineering operations make an engineering workstation.  Serving an industrial protocol
    makes a controller (plc_rtu), or a gateway when the host also polls a protocol of another
    family than the ones it serves (a data concentrator, a protocol converter).  Polling
    controllers makes an HMI/SCADA host; identity reads and session set-up alone do not.
    """
    served = sorted(p for p in a.served if p in OT_PROTOCOLS)
    used = sorted(p for p in a.used if p in OT_PROTOCOLS)
    evidence = _protocol_evidence(a, served, used)
    if a.engineering:
        ops = ", ".join(f"{name} ({n})" for name, n in sorted(a.engineering.items()))
        evidence.append(f"issued {sum(a.engineering.values())} engineering operation(s): {ops}")
        return "engineering_workstation", evidence
    if served:
        families = {FAMILY.get(p, p) for p in served}
        other = [p for p in used if FAMILY.get(p, p) not in families]
        if other:
            evidence.append(f"polls {', '.join(other)} besides serving {', '.join(served)}: a gateway or data "
                            "concentrator")
            return "gateway", evidence
        return "plc_rtu", evidence
    if used and a.work_ops:
        return "hmi_scada", evidence
    if used:
        evidence.append("identity or inventory queries and session set-up only: not enough to tell an HMI from a "
                        "scanner")
        return "unknown", evidence
    if a.served or a.used:
        evidence.append("only non-industrial protocols: " + ", ".join(sorted(set(a.served) | set(a.used)))[:200])
        return "it_host", evidence
    return "unknown", evidence


def _protocol_evidence(a: RoleFacts, served: list[str], used: list[str]) -> list[str]:
    evidence = []
    if served:
        evidence.append(f"serves {', '.join(served)} to {len(a.clients)} client(s)")
    if a.identity.get("dnp3_role"):
        evidence.append(f"DNP3 {a.identity['dnp3_role']} (link address {a.identity.get('link_address')})")
    if used:
        work = f", {a.work_ops} operation(s) beyond identity queries and session set-up" if a.work_ops else ""
        evidence.append(f"client of {', '.join(used)} on {len(a.servers)} server(s){work}")
    if a.identity_reads:
        evidence.append(f"read device identity {a.identity_reads} time(s)")
    return evidence
