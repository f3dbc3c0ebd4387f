"""Asset inventory: one entry per host, built from flows and from what the protocol records reveal.

A host's role is inferred from behaviour, and the evidence is kept beside it
(baselines/roles.py decides): serving an industrial protocol makes a PLC/RTU,
or a gateway when the host also polls another protocol; polling one makes an
HMI/SCADA server; programming, starting or stopping controllers makes an
engineering workstation; plain IT traffic makes an IT host.  Client and
server are who issues the requests and who answers them, which for DNP3 the
link layer says (an outstation may open the connection).
"""
from __future__ import annotations

from collections import Counter
from functools import lru_cache
from typing import Any, Protocol

from otsensor.baselines.addresses import is_host, sort_key
from otsensor.baselines.oui import RegistryMissing, registered_org
from otsensor.baselines.roles import OT_PROTOCOLS, RequesterSides, decide_role, engineering_operation, is_work
from otsensor.dissectors.base import Direction, Op, Record, Tag, columns

__all__ = ["OT_PROTOCOLS", "Asset", "FlowLike", "Inventory"]
MAX_IDENTITY_HISTORY = 32
# One asset of assets.json (Asset.to_dict) in Zeek's vocabulary (dissectors/base.py): the ClickHouse sink's
# assets table, one row per asset per run.
ASSET_COLUMNS = columns(
    "ip:addr macs:json first_seen:time last_seen:time role:string role_evidence:vector[string] "
    "protocols_served:json protocols_used:json ot_clients:vector[string] ot_servers:vector[string] identity:json "
    "identity_history:json protocol_facts:json")


class FlowLike(Protocol):
    """What the analyzers need of a flow (sensor.flows.table.Flow provides it)."""

    uid: str
    orig_h: str
    orig_p: int
    resp_h: str
    resp_p: int
    transport: int
    service: str | None
    first_ts: float
    last_ts: float
    macs: list[bytes]
    vlan: int                      # the outer 802.1Q tag (0: untagged)
    pkts: list[int]
    bytes: list[int]
    extra: dict[str, Any]          # per-flow annotations: zones, the sensor's service_guess

    @property
    def proto(self) -> str: ...

    @property
    def protocol_key(self) -> str: ...


def mac_vendor(mac: str) -> str | None:
    """The IEEE OUI registry's organisation for a MAC (netaddr ships the registry)."""
    first = int(mac[:2], 16)
    if first & 0x03 or mac == "00:00:00:00:00:00":  # locally administered or multicast, or the loopback MAC
        return None
    return oui_vendor(mac[:8])


@lru_cache(maxsize=4096)
def oui_vendor(oui: str) -> str | None:
    """The registry's organisation for a 24-bit OUI ("00:1b:1b"): a look-up costs milliseconds, so once each."""
    try:
        org = registered_org(int(oui.replace(":", ""), 16))
        return None if org is None else org.strip()
    except (ValueError, IndexError):
        return None
    except RegistryMissing:   # the registry files are not where netaddr keeps them: ask netaddr
        return netaddr_org(oui)


def netaddr_org(oui: str) -> str | None:
    """netaddr's own look-up (it parses its whole index first)."""
    try:
        from netaddr import OUI
        from netaddr.core import NotRegisteredError
    except ImportError:  # netaddr is a hard dependency; this only guards a broken install
        return None
    try:
        return OUI(oui.replace(":", "-")).registration().org.strip()
    except (NotRegisteredError, ValueError, IndexError):
        return None


def counts(state: Any) -> Counter:
    """A Counter from its JSON form (a checkpoint): AttributeError or ValueError when it is not one."""
    return Counter({str(key): int(n) for key, n in state.items()})


class Asset:
    __slots__ = ("ip", "macs", "first_seen", "last_seen", "served", "used", "clients", "servers",
                 "engineering", "work_ops", "identity_reads", "identity", "identity_history", "protocol_facts")

    def __init__(self, ip: str, ts: float) -> None:
        self.ip = ip
        self.macs: dict[str, str | None] = {}
        self.first_seen = self.last_seen = ts
        self.served: Counter = Counter()        # protocol -> flows in which this host was the server
        self.used: Counter = Counter()          # protocol -> flows in which this host was the client
        self.clients: set[str] = set()          # who polled this host over an OT protocol (bounded below)
        self.servers: set[str] = set()
        self.engineering: Counter = Counter()   # engineering operation -> times issued (roles.engineering_operation)
        self.work_ops = 0                       # operations issued beyond identity reads and session handling
        self.identity_reads = 0
        self.identity: dict[str, Any] = {}
        self.identity_history: list[dict[str, Any]] = []
        self.protocol_facts: dict[str, set] = {}

    def seen(self, first: float, last: float) -> None:
        self.first_seen = min(self.first_seen, first)
        self.last_seen = max(self.last_seen, last)

    def role(self) -> tuple[str, list[str]]:
        return decide_role(self)

    def issued(self, op: Op) -> None:
        """Count an operation this host issued, by what it says of the host's role."""
        name = engineering_operation(op)
        if name is not None and (name in self.engineering or len(self.engineering) < 64):
            self.engineering[name] += 1
        if is_work(op):
            self.work_ops += 1
        if Tag.IDENTITY_READ in op.tags:
            self.identity_reads += 1

    def to_dict(self) -> dict[str, Any]:
        role, evidence = self.role()
        return {
            "ip": self.ip,
            "macs": [{"mac": m, "vendor": v} for m, v in sorted(self.macs.items())],
            "first_seen": round(self.first_seen, 6),
            "last_seen": round(self.last_seen, 6),
            "role": role,
            "role_evidence": evidence,
            "protocols_served": dict(sorted(self.served.items())),
            "protocols_used": dict(sorted(self.used.items())),
            "ot_clients": sorted(self.clients),
            "ot_servers": sorted(self.servers),
            "identity": dict(sorted(self.identity.items())),
            "identity_history": self.identity_history,
            "protocol_facts": {k: sorted(v) for k, v in sorted(self.protocol_facts.items())},
        }

    def to_state(self) -> dict[str, Any]:
        """Everything this asset knows, as JSON (a live sensor's checkpoint: sensor/checkpoint.py)."""
        return {"ip": self.ip, "macs": self.macs, "first_seen": self.first_seen, "last_seen": self.last_seen,
                "served": dict(self.served), "used": dict(self.used), "clients": sorted(self.clients),
                "servers": sorted(self.servers), "engineering": dict(self.engineering), "work_ops": self.work_ops,
                "identity_reads": self.identity_reads, "identity": self.identity,
                "identity_history": self.identity_history,
                "protocol_facts": {k: [list(x) if isinstance(x, tuple) else x for x in v]
                                   for k, v in self.protocol_facts.items()}}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "Asset":
        """The asset :meth:`to_state` wrote; KeyError, TypeError, ValueError or AttributeError when it is not."""
        asset = cls(str(state["ip"]), float(state["first_seen"]))
        asset.last_seen = float(state["last_seen"])
        asset.macs = dict(state["macs"])
        asset.served, asset.used = counts(state["served"]), counts(state["used"])
        asset.clients, asset.servers = set(state["clients"]), set(state["servers"])
        asset.engineering = counts(state["engineering"])
        asset.work_ops, asset.identity_reads = int(state["work_ops"]), int(state["identity_reads"])
        asset.identity = dict(state["identity"])
        asset.identity_history = list(state["identity_history"])
        asset.protocol_facts = {k: {tuple(x) if isinstance(x, list) else x for x in v}
                                for k, v in state["protocol_facts"].items()}
        return asset


MAX_ASSETS = 100_000   # spoofed sources must not grow the inventory without end
MAX_RECENT = 200_000   # connections whose last operation an analyzer remembers (the flow table's default cap)


class Inventory:
    """The analyzer that builds assets.json."""

    MAX_PEERS = 1024

    def __init__(self, max_assets: int = MAX_ASSETS) -> None:
        self.max_assets = max_assets
        self.assets: dict[str, Asset] = {}
        self.dropped = 0       # hosts not inventoried because the inventory was full
        self.sides = RequesterSides()
        # per connection uid while it lasts and its sides do: the inventoried host that issues its requests
        self.recent: dict[str, Asset] = {}

    def asset(self, ip: str, ts: float) -> Asset:
        a = self.assets.get(ip)
        if a is None:
            if len(self.assets) >= self.max_assets:
                self.dropped += 1
                return Asset(ip, ts)   # observed, then discarded: counted, never stored
            a = self.assets[ip] = Asset(ip, ts)
        return a

    def observe_flow(self, flow: FlowLike) -> None:
        self.recent.pop(flow.uid, None)
        if not is_host(flow.resp_h):   # a broadcast or a multicast group is no asset; its sender is one
            if is_host(flow.orig_h):
                sender = self.asset(flow.orig_h, flow.first_ts)
                sender.seen(flow.first_ts, flow.last_ts)
                sender.used[flow.protocol_key] += 1
            self.sides.forget(flow)
            return
        orig = self.asset(flow.orig_h, flow.first_ts)
        resp = self.asset(flow.resp_h, flow.first_ts)
        orig.seen(flow.first_ts, flow.last_ts)
        if flow.pkts[1]:
            resp.seen(flow.first_ts, flow.last_ts)
        proto = flow.protocol_key
        server_side = self.sides.server_side(flow)
        client, server = (orig, resp) if server_side else (resp, orig)
        self.sides.forget(flow)
        client.used[proto] += 1
        if flow.pkts[server_side]:
            server.served[proto] += 1
        if flow.service in OT_PROTOCOLS:
            if len(server.clients) < self.MAX_PEERS:
                server.clients.add(client.ip)
            if len(client.servers) < self.MAX_PEERS:
                client.servers.add(server.ip)
        for side, asset in ((0, orig), (1, resp)):
            raw = flow.macs[side]
            if len(raw) == 6:
                mac = ":".join(f"{b:02x}" for b in raw)
                if mac not in asset.macs and len(asset.macs) < 16:
                    asset.macs[mac] = mac_vendor(mac)

    def observe_record(self, flow: FlowLike, record: Record, op: Op | None,
                       ident: tuple[Direction, dict[str, Any]] | None) -> None:
        if op is not None:
            client = self.recent.get(flow.uid)
            if client is None:
                client = self.asset(self.sides.ends(flow)[0], record.ts)
                if self.assets.get(client.ip) is client and len(self.recent) < MAX_RECENT:
                    self.recent[flow.uid] = client
            client.issued(op)
        if ident is not None:
            self.sides.note(flow, ident)
            self.recent.pop(flow.uid, None)   # the sides may have changed
            side, facts = ident
            ip = flow.orig_h if side == Direction.ORIG else flow.resp_h
            self.merge_identity(ip, facts, record, record.ts)

    def merge_identity(self, ip: str, facts: dict[str, Any], record: Record, ts: float) -> None:
        asset = self.asset(ip, ts)
        changed = {k: v for k, v in facts.items() if v not in (None, "") and asset.identity.get(k) != v}
        if not changed:
            return
        for key, value in changed.items():
            asset.identity[key] = value
        if len(asset.identity_history) < MAX_IDENTITY_HISTORY:
            asset.identity_history.append({"ts": round(ts, 6), "source": record.LOG, "facts": changed})

    def to_state(self) -> dict[str, Any]:
        """The inventory as JSON, for a live sensor's checkpoint (the connections in progress are not in it)."""
        return {"assets": [a.to_state() for a in self.assets.values()], "dropped": self.dropped}

    def restore(self, state: dict[str, Any]) -> None:
        """Take back what :meth:`to_state` wrote (nothing changes when it raises KeyError, TypeError,
        ValueError or AttributeError)."""
        assets = {a.ip: a for a in map(Asset.from_state, state["assets"])}
        self.assets, self.dropped = assets, int(state["dropped"])
        self.recent.clear()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"assets": [self.assets[ip].to_dict() for ip in sorted(self.assets, key=sort_key)]}
        if self.dropped:
            out["hosts_not_inventoried"] = self.dropped
        return out

