"""Connections: the Flow record, Zeek-style uids and connection states, and the bounded flow table."""
from __future__ import annotations

import hashlib
import ipaddress
from typing import Any, Callable, Final, Iterable

from otsensor.dissectors.base import ROW_PREFIX, columns
from otsensor.sensor.decode import ICMP, ICMP6, TCP, UDP

# conn.jsonl's columns in Zeek's vocabulary (dissectors/base.py), in row order; the zone columns are
# written with --zones only.  The ClickHouse sink builds its conn table from this.
CONN_COLUMNS = ROW_PREFIX + columns(
    "proto:string service:string duration:interval orig_bytes:count resp_bytes:count conn_state:string "
    "missed_bytes:count history:string orig_pkts:count orig_ip_bytes:count resp_pkts:count resp_ip_bytes:count "
    "orig_l2_addr:string resp_l2_addr:string vlan:count inner_vlan:count "
    "orig_zone:string orig_level:double resp_zone:string resp_level:double")

# IP protocol numbers by IANA's keyword in lower case ("Assigned Internet Protocol Numbers"; 89 by the name
# everyone uses, ospf); ICMPv6 is icmp, as Zeek logs it.  Any other number is written ip-<n>.
PROTO_NAMES = {1: "icmp", 2: "igmp", 4: "ipv4", 6: "tcp", 8: "egp", 9: "igp", 17: "udp", 41: "ipv6", 46: "rsvp",
               47: "gre", 50: "esp", 51: "ah", 58: "icmp", 88: "eigrp", 89: "ospf", 103: "pim", 112: "vrrp",
               115: "l2tp", 132: "sctp", 136: "udplite", 137: "mpls-in-ip"}
# The protocols whose connection ids carry ports (for ICMP the type and code, as Zeek logs them).
PORTED = frozenset({TCP, UDP, ICMP, ICMP6})
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

# TCP flag bits, and what each side did (kept per side as a small bitmask)
FIN: Final = 0x01
SYN: Final = 0x02
RST: Final = 0x04
ACK: Final = 0x10
SAW_SYN: Final = 1
SAW_SYNACK: Final = 2
SAW_FIN: Final = 4
SAW_RST: Final = 8
SAW_DATA: Final = 16

# Zeek's conn.log history: what each side did, in order of first occurrence, the originator's letters in
# upper case (s SYN, h SYN-ACK, a pure ACK, d data, f FIN, r RST).  A packet's letters come from this
# table, indexed by its FIN/SYN/RST/ACK bits and 0x20 for "carries payload".
HISTORY_LETTERS = "shadfr"
HAS_PAYLOAD: Final = 0x20


def _history_mask(index: int) -> int:
    syn, ack, fin, rst, data = index & SYN, index & ACK, index & FIN, index & RST, index & HAS_PAYLOAD
    letters = ("s" if syn and not ack else "") + ("h" if syn and ack else "") + \
        ("a" if ack and not (syn or fin or rst or data) else "") + ("d" if data else "") + \
        ("f" if fin else "") + ("r" if rst else "")
    return sum(1 << HISTORY_LETTERS.index(c) for c in letters)


HISTORY_MASKS: Final = tuple(_history_mask(i) for i in range(64))

# What an open flow costs, as bench/flow_memory.py measures it (tracemalloc and resident memory over 100,000
# flows), rounded up.  A flow with its two table entries: 1.7 KB traced, 1.9 KB resident.  A dissector
# and, on TCP, two reassemblers add 0.9 KB (Modbus) to 2.6 KB (DNP3), and each reassembler's table of
# held segments about 0.2 KB when it first holds one.  A dissector's own tables grow afterwards (up to 500
# outstanding requests, each ~0.3 KB): they are bounded per flow, not accounted here.
FLOW_COST = 2048
FOLLOWED_COST = 3072


def make_uid(seed: bytes) -> str:
    """A Zeek-like connection uid ('C' + 17 base62 chars), derived from the flow so runs are reproducible."""
    n = int.from_bytes(hashlib.blake2b(seed, digest_size=13).digest(), "big")
    chars = []
    for _ in range(17):
        n, r = divmod(n, 62)
        chars.append(BASE62[r])
    return "C" + "".join(chars)


def ip_text(raw: bytes) -> str:
    if len(raw) == 4:
        return f"{raw[0]}.{raw[1]}.{raw[2]}.{raw[3]}"
    return str(ipaddress.IPv6Address(raw))


def mac_text(raw: bytes) -> str | None:
    return ":".join(f"{b:02x}" for b in raw) if len(raw) == 6 else None


def proto_name(transport: int) -> str:
    return PROTO_NAMES.get(transport) or f"ip-{transport}"


def protocol_key(service: str | None, transport: int, resp_p: int) -> str:
    """What a flow carries, as the inventory and graph key it: the industrial protocol once a PDU
    parsed, else the transport and server port (``tcp/443``), or the bare protocol when it has no
    ports (``igmp``)."""
    if service:
        return service
    proto = proto_name(transport)
    return f"{proto}/{resp_p}" if transport in PORTED else proto


class Flow:
    """One connection (TCP) or bidirectional datagram exchange (UDP, ICMP)."""

    __slots__ = ("uid", "keys", "transport", "orig_h", "orig_p", "resp_h", "resp_p", "vlan", "inner_vlan",
                 "first_ts", "last_ts", "pkts", "bytes", "ip_bytes", "tcp_seen", "macs",
                 "dissector", "service", "reasm", "probes_left", "closing", "extra", "hist", "history", "cost",
                 "tracker", "order", "_row_head")

    def __init__(self, uid: str, keys: tuple, transport: int, orig: tuple, resp: tuple,
                 vlan: int, inner_vlan: int, ts: float) -> None:
        self.uid = uid
        self.keys = keys                      # (key as the originator sends, key as the responder sends)
        self.transport = transport
        self.orig_h, self.orig_p = orig
        self.resp_h, self.resp_p = resp
        self.vlan = vlan
        self.inner_vlan = inner_vlan
        self.first_ts = self.last_ts = ts
        self.pkts = [0, 0]                    # indexed by Direction
        self.bytes = [0, 0]                   # transport payload bytes
        self.ip_bytes = [0, 0]
        self.tcp_seen = [0, 0]                # SAW_* bits per side
        self.macs: list[bytes] = [b"", b""]
        self.dissector: Any = None
        self.service: str | None = None
        self.reasm: list | None = None        # two StreamReassemblers once a TCP dissector is attached
        self.probes_left = 4                  # payloads to offer the content probes before giving up
        self.closing = False
        self.extra: dict[str, Any] = {}       # analyzers' per-flow annotations (zones, ...)
        self.hist = [0, 0]                    # history letters seen per side (HISTORY_LETTERS bits)
        self.history: list[str] = []
        self.cost = FLOW_COST                 # bytes accounted for it in the flow table's memory budget
        self.tracker: Any = None              # a record sink's per-flow packet observer (sensor/zeek), if any
        self.order = 0                        # index of the frame that opened it (set by sensor/parallel workers)
        self._row_head: dict[str, Any] | None = None   # see row_head()

    def add_history(self, d: int, mask: int) -> None:
        new = mask & ~self.hist[d]
        self.hist[d] |= mask
        for i, letter in enumerate(HISTORY_LETTERS):
            if new & (1 << i):
                self.history.append(letter.upper() if d == 0 else letter)

    def swap(self) -> None:
        """Exchange originator and responder (the first sender turned out to be the server)."""
        self.keys = (self.keys[1], self.keys[0])
        self.orig_h, self.resp_h = self.resp_h, self.orig_h
        self.orig_p, self.resp_p = self.resp_p, self.orig_p
        for pair in (self.pkts, self.bytes, self.ip_bytes, self.tcp_seen, self.macs, self.hist):
            pair.reverse()
        self.history = [c.lower() if c.isupper() else c.upper() for c in self.history]
        if self.tracker is not None:
            self.tracker.swapped()
        self._row_head = None

    @property
    def proto(self) -> str:
        return proto_name(self.transport)

    @property
    def protocol_key(self) -> str:
        return protocol_key(self.service, self.transport, self.resp_p)

    def id_fields(self) -> dict[str, Any]:
        return {"uid": self.uid, "id.orig_h": self.orig_h, "id.orig_p": self.orig_p,
                "id.resp_h": self.resp_h, "id.resp_p": self.resp_p}

    def row_head(self) -> dict[str, Any]:
        """The first columns of every row of the flow's records, ts then the ids, built once: a row starts
        as a copy (cheaper than building the dict anew) whose ts is then set. Do not change it."""
        head = self._row_head
        if head is None:
            head = self._row_head = {"ts": 0.0, **self.id_fields()}
        return head

    def conn_state(self) -> str:
        """Zeek's conn_state, following the order of its decision (base/protocols/conn/main.zeek)."""
        if self.transport == UDP:
            return "SF" if self.pkts[1] else "S0"
        if self.transport != TCP:
            return "OTH"            # Zeek gives ICMP and other protocols no handshake state
        o, r = self.tcp_seen
        o_inactive = not o & SAW_SYN          # the originator never opened (picked up mid-stream)
        r_inactive = not r & SAW_SYNACK
        if r & SAW_RST:
            if o & SAW_SYN and r_inactive:
                return "REJ"
            return "RSTRH" if o_inactive else "RSTR"
        if o & SAW_RST:
            return "RSTOS0" if r_inactive else "RSTO"
        if o & SAW_FIN and r & SAW_FIN:
            return "SF"
        if o & SAW_FIN:
            return "SH" if r_inactive else "S2"
        if r & SAW_FIN:
            return "SHR" if o_inactive else "S3"
        if o & SAW_SYN and r_inactive and not self.pkts[1]:
            return "S0"
        if not o_inactive and not r_inactive:
            return "S1"
        return "OTH"

    def conn_row(self) -> dict[str, Any]:
        row: dict[str, Any] = {"ts": round(self.first_ts, 6)}
        row.update(self.id_fields())
        row.update({
            "proto": self.proto,
            "service": self.service,
            "duration": round(self.last_ts - self.first_ts, 6),
            "orig_bytes": self.bytes[0],
            "resp_bytes": self.bytes[1],
            "conn_state": self.conn_state(),
            "missed_bytes": sum(r.gap_bytes for r in self.reasm) if self.reasm else 0,
            "history": "".join(self.history) or None,
            "orig_pkts": self.pkts[0],
            "orig_ip_bytes": self.ip_bytes[0],
            "resp_pkts": self.pkts[1],
            "resp_ip_bytes": self.ip_bytes[1],
            "orig_l2_addr": mac_text(self.macs[0]),
            "resp_l2_addr": mac_text(self.macs[1]),
        })
        if self.vlan:
            row["vlan"] = self.vlan
        if self.inner_vlan:
            row["inner_vlan"] = self.inner_vlan
        row.update(self.extra)
        return row


class FlowTable:
    """Flows by 5-tuple and VLANs, each reachable from both directions' keys.

    Bounded twice: past ``max_flows`` the least recently active tenth is
    evicted (finished early and counted); and each flow's cost is accounted
    when it is created and when a dissector attaches or lets go, so that
    past ``max_memory`` bytes the least recently active flows are evicted
    until a tenth of it is free.  Idle flows time out on capture time.
    """

    def __init__(self, finish: Callable[[Flow, str], None], max_flows: int = 200_000,
                 tcp_timeout: float = 300.0, udp_timeout: float = 60.0, close_linger: float = 5.0,
                 max_memory: int = 256 << 20) -> None:
        self.by_key: dict[tuple, tuple[Flow, int]] = {}
        self.finish = finish
        self.max_flows = max_flows
        self.max_memory = max_memory
        self.tcp_timeout = tcp_timeout
        self.udp_timeout = udp_timeout
        self.close_linger = close_linger
        self.count = 0
        self.memory = 0          # bytes accounted for the flows held (their ``cost``)
        self.memory_peak = 0
        self.created = 0
        self.evicted = 0
        self.evicted_for = {"max_flows": 0, "flow_memory": 0}
        self.timed_out = 0

    def add(self, flow: Flow) -> None:
        if self.count >= self.max_flows:
            tenth = max(1, self.max_flows // 10)
            self._evict("max_flows", lambda evicted: evicted >= tenth)
        if self.memory + flow.cost > self.max_memory:
            self._make_room(flow.cost)
        self.by_key[flow.keys[0]] = (flow, 0)
        self.by_key[flow.keys[1]] = (flow, 1)
        self.count += 1
        self.created += 1
        self._account(flow.cost)

    def resize(self, flow: Flow, cost: int) -> None:
        """A held flow now costs ``cost`` (a dissector attached or let go); others make room if it grew."""
        grown = cost - flow.cost
        if grown > 0 and self.memory + grown > self.max_memory:
            self._make_room(grown, keep=flow)
        flow.cost = cost
        self._account(grown)

    def _account(self, delta: int) -> None:
        self.memory += delta
        if self.memory > self.memory_peak:
            self.memory_peak = self.memory

    def remove(self, flow: Flow, reason: str) -> None:
        if self.by_key.pop(flow.keys[0], None) is not None:
            self.by_key.pop(flow.keys[1], None)
            self.count -= 1
            self.finish(flow, reason)
            self.memory -= flow.cost   # after finishing, which may have let its dissector go (resize)

    def flows(self) -> Iterable[Flow]:
        return [f for f, d in self.by_key.values() if d == 0]

    def sweep(self, now: float) -> None:
        """Finish flows idle past their timeout, and closed flows past the linger time."""
        for flow in self.flows():
            idle = now - flow.last_ts
            if flow.closing and idle > self.close_linger:
                self.remove(flow, "closed")
            elif idle > (self.tcp_timeout if flow.transport == TCP else self.udp_timeout):
                self.timed_out += 1
                self.remove(flow, "timeout")

    def _make_room(self, need: int, keep: Flow | None = None) -> None:
        """Evict until ``need`` more bytes fit with a tenth of the budget to spare (a batch amortises the sort)."""
        target = self.max_memory - need - self.max_memory // 10
        self._evict("flow_memory", lambda evicted: self.memory <= target, keep)

    def _evict(self, reason: str, enough: Callable[[int], bool], keep: Flow | None = None) -> None:
        """Finish the least recently active flows early, until ``enough(how many so far)``."""
        evicted = 0
        for flow in sorted(self.flows(), key=lambda f: f.last_ts):
            if enough(evicted):
                return
            if flow is keep:
                continue
            self.evicted += 1
            self.evicted_for[reason] += 1
            self.remove(flow, "evicted")
            evicted += 1

    def finish_all(self) -> None:
        for flow in sorted(self.flows(), key=lambda f: f.first_ts):
            self.remove(flow, "end_of_capture")


def choose_originator(transport: int, flags: int, sport: int, dport: int,
                      is_server_port: Callable[[int, int], bool]) -> bool:
    """True if the sender of a flow's first packet is the originator.

    From the handshake when it was seen; otherwise (capture started
    mid-connection, or UDP) from which side uses a well-known server port.
    """
    if transport == TCP and flags & SYN and not flags & (FIN | RST):  # SYN+FIN/RST is no handshake (crafted)
        return not flags & ACK
    if is_server_port(transport, dport) and not is_server_port(transport, sport):
        return True
    if is_server_port(transport, sport) and not is_server_port(transport, dport):
        return False
    if transport in (TCP, UDP) and (dport < 1024) != (sport < 1024):
        return dport < 1024
    return True
