"""Baseline learning: what normal looks like, as a readable, stably ordered, diffable JSON document.

The :class:`Observer` analyzer collects, from records and flows: edges and
the functions used on them, the address ranges read and written per server
and address space, the values written to each item at each width, request rates per function, the polling cadence
of periodic requests, who writes to which server, who performs engineering
operations, error and anomaly rates, and the ports each protocol runs on.
``to_baseline`` turns that into the document; the detector runs a second
Observer over the traffic under analysis and compares.

Keys are strings such as ``"10.0.0.2 -> 10.0.0.1 modbus"`` so the file reads
well and diffs line by line.  Every collection is bounded.
"""
from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from typing import Any

from otsensor.baselines.dnp3_stations import Dnp3Stations
from otsensor.baselines.documents import read_document, write_document
from otsensor.baselines.inventory import OT_PROTOCOLS, FlowLike, Inventory, counts
from otsensor.baselines.layer2 import Layer2Learner
from otsensor.baselines.ranges import RangeSet
from otsensor.baselines.rates import RateMeter, counted, rate_key
from otsensor.baselines.roles import LEARNABLE_TAGS, RequesterSides, engineering_operation
from otsensor.baselines.values import ValueLearner, value_ops
from otsensor.baselines.zone_edges import ZoneEdgeLearner
from otsensor.baselines.zones import Zones
from otsensor.dissectors.arp import ArpMessage
from otsensor.dissectors.base import Category, Op, Record, Tag

BASELINE_VERSION = 1
MAX_KEYS = 20_000            # per collection
MAX_INTERVALS = 512          # samples kept per periodic request
MIN_PERIODIC_SAMPLES = 5
MAX_RANGE_INTERVALS = 500_000   # address intervals in all spaces (graph.py says why; past it they widen)
MAX_UNITS = 256              # unit ids (Modbus unit, DNP3 link address, S7 rack/slot) kept per edge
ERROR_BUCKET_S = 60.0


def edge_key(client: str, server: str, protocol: str) -> str:
    return f"{client} -> {server} {protocol}"


def space_key(server: str, protocol: str, space: str) -> str:
    return f"{server} {protocol} {space}"


def cadence_key(client: str, server: str, protocol: str, function: str, space: str | None, start: int | None) -> str:
    return f"{client} -> {server} {protocol} {function} {space or '-'}:{'-' if start is None else start}"


class Observer:
    """An analyzer that accumulates the facts a baseline is made of."""

    def __init__(self, zones: Zones | None = None) -> None:
        self.zones = zones or Zones()
        self.first_ts: float | None = None
        self.last_ts: float | None = None
        self.edges: dict[str, dict[str, Any]] = {}
        self.ranges: dict[str, dict[str, RangeSet]] = {}
        self.intervals = 0   # in every RangeSet of self.ranges (MAX_RANGE_INTERVALS)
        self.written = ValueLearner()
        self.dnp3_stations = Dnp3Stations()
        self.rates = RateMeter()
        self.zone_edges = ZoneEdgeLearner(self.zones)
        self.writers: dict[str, set[str]] = defaultdict(set)
        self.poll_times: dict[str, list[float]] = {}
        self.engineering_hosts: set[str] = set()
        self.engineering_ops: dict[str, Counter] = defaultdict(Counter)
        self.select_servers: set[str] = set()
        self.errors: dict[str, Counter] = defaultdict(Counter)   # edge -> minute bucket -> errors
        self.ops: Counter = Counter()                            # edge -> operations
        self.anomalies: Counter = Counter()
        self.service_ports: dict[str, set[int]] = defaultdict(set)
        self.hosts_seen: set[str] = set()
        self.sides = RequesterSides()
        self.layer2 = Layer2Learner()

    # -- analyzer interface --------------------------------------------------------------------------

    def observe_flow(self, flow: FlowLike) -> None:
        self._time(flow.first_ts)
        self._time(flow.last_ts)
        if len(self.hosts_seen) < MAX_KEYS:
            self.hosts_seen.add(flow.orig_h)
            if flow.pkts[1]:
                self.hosts_seen.add(flow.resp_h)
        client, server = self.sides.ends(flow)
        self.sides.forget(flow)
        self.zone_edges.note(flow)
        self.layer2.flow(flow)
        if flow.service:
            self.service_ports[flow.service].add(flow.resp_p)
            e = self._edge(client, server, flow.service)
            if e is not None:
                e["flows"] += 1
                e["ports"].add(flow.resp_p)

    def observe_arp(self, message: ArpMessage) -> None:
        self._time(message.ts)
        self.layer2.arp(message)

    def observe_record(self, flow: FlowLike, record: Record, op: Op | None, ident: Any = None) -> None:
        self._time(record.ts)
        if record.LOG == "anomalies":
            self.anomalies[getattr(record, "name", "unknown")] += 1
            return
        if ident is not None:
            self.sides.note(flow, ident)
        if op is None:
            return
        protocol = flow.service or op.protocol
        client, server = self.sides.ends(flow)
        ekey = edge_key(client, server, protocol)
        e = self._edge(client, server, protocol)
        if e is None:
            return
        e["functions"][op.function] += 1
        if op.unit is not None and len(e["units"]) < MAX_UNITS:
            e["units"].add(op.unit)
        if op.category == Category.RECON and op.space is not None and len(e["recon_spaces"]) < MAX_UNITS:
            e["recon_spaces"].add(op.space)
        self.ops[ekey] += 1
        if counted(op):
            self.rates.count(rate_key(client, server, protocol, op.function), record.ts)
        if op.ok is False:
            self.errors[ekey][int(record.ts // ERROR_BUCKET_S)] += 1
        self._engineering(op, client, ekey)
        self.dnp3_stations.note(client, server, op)
        if Tag.SELECT in op.tags:
            self.select_servers.add(server)
        extras = record.extra_ops()
        self._access(op, client, server, protocol)
        for extra in extras:
            self._access(extra, client, server, protocol)
        for one in value_ops(op, extras):
            if one.space is not None and one.ok is not False:
                self.written.note(server, protocol, one)
        if op.category == Category.READ:
            self._poll(cadence_key(client, server, protocol, op.function, op.space, op.start), record.ts)

    # -- collection helpers --------------------------------------------------------------------------

    def _engineering(self, op: Op, client: str, ekey: str) -> None:
        """Engineering hosts, and per edge the engineering and learnable operations (a baseline may teach them)."""
        name = engineering_operation(op)
        if name is not None and len(self.engineering_hosts) < MAX_KEYS:
            self.engineering_hosts.add(client)
        learnable = op.tags & (LEARNABLE_TAGS - {Tag.IDENTITY_READ})   # identity reads are learned with the edge
        names = learnable | {name} if name is not None else learnable
        if names and (ekey in self.engineering_ops or len(self.engineering_ops) < MAX_KEYS):
            for one in names:
                self.engineering_ops[ekey][one] += 1

    def _time(self, ts: float) -> None:
        if self.first_ts is None or ts < self.first_ts:
            self.first_ts = ts
        if self.last_ts is None or ts > self.last_ts:
            self.last_ts = ts

    def _edge(self, client: str, server: str, protocol: str) -> dict[str, Any] | None:
        key = edge_key(client, server, protocol)
        e = self.edges.get(key)
        if e is None:
            if len(self.edges) >= MAX_KEYS:
                return None
            e = self.edges[key] = {"client": client, "server": server, "protocol": protocol,
                                   "functions": Counter(), "flows": 0, "ports": set(), "units": set(),
                                   "recon_spaces": set()}
        return e

    def _access(self, op: Any, client: str, server: str, protocol: str) -> None:
        if op.space is None or op.ok is False:
            return
        if op.category == Category.WRITE:
            self.writers[f"{server} {protocol}"].add(client)
            access = "written"
        elif op.category == Category.READ:
            access = "read"
        else:
            return
        skey = space_key(server, protocol, op.space)
        if op.start is not None:
            spaces = self.ranges.get(skey)
            if spaces is None:
                if len(self.ranges) >= MAX_KEYS:
                    return
                spaces = self.ranges[skey] = {}
            full = self.intervals >= MAX_RANGE_INTERVALS
            ranges = spaces.get(access)
            if ranges is None:
                if full:
                    return
                ranges = spaces[access] = RangeSet()
            self.intervals += ranges.add_within(op.start, op.count or 1, full)

    def _poll(self, key: str, ts: float) -> None:
        times = self.poll_times.get(key)
        if times is None:
            if len(self.poll_times) >= MAX_KEYS:
                return
            times = self.poll_times[key] = []
        times.append(ts)
        if len(times) > MAX_INTERVALS + 1:
            del times[0]

    # -- state (a live sensor's checkpoint while it learns: sensor/checkpoint.py) ----------------------

    def to_state(self) -> dict[str, Any]:
        """What was observed so far, as JSON (the connections in progress are not in it)."""
        return {
            "first_ts": self.first_ts, "last_ts": self.last_ts,
            "edges": {k: dict(e, functions=dict(e["functions"]), ports=sorted(e["ports"]), units=sorted(e["units"]),
                              recon_spaces=sorted(e["recon_spaces"])) for k, e in self.edges.items()},
            "ranges": {k: {a: r.to_list() for a, r in v.items()} for k, v in self.ranges.items()},
            "written": self.written.to_state(), "rates": self.rates.to_state(),
            "dnp3_stations": self.dnp3_stations.to_state(),
            "zone_edges": self.zone_edges.to_state(), "writers": {k: sorted(v) for k, v in self.writers.items()},
            "poll_times": self.poll_times, "engineering_hosts": sorted(self.engineering_hosts),
            "engineering_ops": {k: dict(v) for k, v in self.engineering_ops.items()},
            "select_servers": sorted(self.select_servers),
            "errors": {k: {str(b): n for b, n in v.items()} for k, v in self.errors.items()},
            "ops": dict(self.ops), "anomalies": dict(self.anomalies),
            "service_ports": {k: sorted(v) for k, v in self.service_ports.items()},
            "hosts_seen": sorted(self.hosts_seen), "layer2": self.layer2.to_state(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Take back what :meth:`to_state` wrote (nothing changes when it raises KeyError, TypeError,
        ValueError or AttributeError)."""
        first, last = state["first_ts"], state["last_ts"]
        written, rates, zone_edges, layer2 = ValueLearner(), RateMeter(), ZoneEdgeLearner(self.zones), Layer2Learner()
        if "layer2" in state:   # (a checkpoint written before layer 2 was learned has none)
            layer2.restore(state["layer2"])
        written.restore(state["written"])
        dnp3_stations = Dnp3Stations()
        dnp3_stations.restore(state.get("dnp3_stations", {}))   # absent from checkpoints written before it
        rates.restore(state["rates"])
        zone_edges.restore(state["zone_edges"])
        fields = {
            "first_ts": None if first is None else float(first),
            "last_ts": None if last is None else float(last),
            "edges": {k: dict(e, functions=counts(e["functions"]), ports=set(e["ports"]), units=set(e["units"]),
                              recon_spaces=set(e["recon_spaces"])) for k, e in state["edges"].items()},
            "ranges": {k: {a: RangeSet(r) for a, r in v.items()} for k, v in state["ranges"].items()},
            "written": written, "rates": rates, "zone_edges": zone_edges, "dnp3_stations": dnp3_stations,
            "writers": defaultdict(set, {k: set(v) for k, v in state["writers"].items()}),
            "poll_times": {k: [float(t) for t in v] for k, v in state["poll_times"].items()},
            "engineering_hosts": set(state["engineering_hosts"]),
            "engineering_ops": defaultdict(Counter, {k: counts(v) for k, v in state["engineering_ops"].items()}),
            "select_servers": set(state["select_servers"]),
            "errors": defaultdict(Counter, {k: Counter({int(b): int(n) for b, n in v.items()})
                                            for k, v in state["errors"].items()}),
            "ops": counts(state["ops"]), "anomalies": counts(state["anomalies"]),
            "service_ports": defaultdict(set, {k: set(v) for k, v in state["service_ports"].items()}),
            "hosts_seen": set(state["hosts_seen"]), "layer2": layer2,
        }
        for name, value in fields.items():
            setattr(self, name, value)
        self.intervals = sum(len(r) for spaces in self.ranges.values() for r in spaces.values())

    # -- results -------------------------------------------------------------------------------------

    @property
    def duration(self) -> float:
        if self.first_ts is None or self.last_ts is None:
            return 0.0
        return self.last_ts - self.first_ts

    def cadence(self) -> dict[str, dict[str, float]]:
        """Periodic requests: median interval and jitter (median absolute deviation)."""
        out = {}
        for key, times in self.poll_times.items():
            intervals = [b - a for a, b in zip(times, times[1:]) if b > a]
            if len(intervals) < MIN_PERIODIC_SAMPLES:
                continue
            median = statistics.median(intervals)
            jitter = statistics.median(abs(i - median) for i in intervals)
            if median <= 0 or jitter > 0.5 * median:
                continue  # not periodic
            out[key] = {"interval_s": round(median, 4), "jitter_s": round(jitter, 4), "samples": len(intervals)}
        return out

    def error_peaks(self) -> dict[str, dict[str, int]]:
        return {k: {"max_errors_per_minute": max(b.values()), "operations": self.ops[k]}
                for k, b in self.errors.items() if b}


def to_baseline(obs: Observer, inventory: Inventory, files: list[str], zones_file: str | None) -> dict[str, Any]:
    assets = {}
    for ip, asset in inventory.assets.items():
        role, _ = asset.role()
        zone = obs.zones.zone_of(ip)
        assets[ip] = {"role": role, "zone": zone.name, "level": zone.level,
                      "protocols_served": sorted(p for p in asset.served if p in OT_PROTOCOLS),
                      "protocols_used": sorted(p for p in asset.used if p in OT_PROTOCOLS),
                      "identity": dict(sorted(asset.identity.items()))}
    duration = obs.duration
    return {
        "version": BASELINE_VERSION,
        "learned_from": {"files": files, "first_ts": obs.first_ts, "last_ts": obs.last_ts,
                         "duration_s": round(duration, 3)},
        "zones_file": zones_file,
        "assets": assets,
        "edges": {k: {"client": e["client"], "server": e["server"], "protocol": e["protocol"],
                      "ports": sorted(e["ports"]), "flows": e["flows"], "functions": dict(sorted(e["functions"].items())),
                      "units": sorted(e["units"]), "recon_spaces": sorted(e["recon_spaces"])}
                  for k, e in obs.edges.items()},
        "address_ranges": {k: {a: r.to_list() for a, r in sorted(v.items())} for k, v in obs.ranges.items()},
        "written_values": obs.written.to_baseline(),
        "dnp3_stations": obs.dnp3_stations.to_baseline(),
        "request_rates": obs.rates.to_baseline(),
        "zone_edges": obs.zone_edges.to_baseline(),
        "writers": {k: sorted(v) for k, v in obs.writers.items()},
        "cadence": obs.cadence(),
        "engineering_hosts": sorted(obs.engineering_hosts),
        "engineering_operations": {k: dict(sorted(v.items())) for k, v in obs.engineering_ops.items()},
        "select_before_operate": sorted(obs.select_servers),
        "error_peaks": obs.error_peaks(),
        "anomaly_rates": {name: {"count": n, "per_hour": round(n * 3600 / max(duration, 60.0), 3)}
                          for name, n in obs.anomalies.items()},
        "service_ports": {k: sorted(v) for k, v in obs.service_ports.items()},
        "layer2": obs.layer2.to_baseline(),
        "allow": [],
    }


def save_baseline(baseline: dict[str, Any], path: str) -> None:
    write_document(path, baseline, sort_keys=True)


class BaselineError(Exception):
    pass


def load_baseline(path: str) -> dict[str, Any]:
    data = read_document(path, "baseline file", "JSON", json.loads, BaselineError)
    if not isinstance(data, dict) or data.get("version") != BASELINE_VERSION or "edges" not in data:
        raise BaselineError(f"{path}: not an otsensor baseline (version {BASELINE_VERSION})")
    for key in ("assets", "edges", "address_ranges", "written_values", "writers", "cadence", "error_peaks",
                "anomaly_rates", "service_ports", "engineering_operations", "request_rates",
                "zone_edges"):
        data.setdefault(key, {})
    for key in ("engineering_hosts", "select_before_operate", "allow"):
        data.setdefault(key, [])
    return data
